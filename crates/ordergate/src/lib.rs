//! # ordergate
//!
//! An HTTP order gateway: `POST /orders` with an `Idempotency-Key` places at most one
//! order per key and tenant, durably, and replays the original answer on every retry.
//!
//! ## Layout
//!
//! - [`cli`]: the command line and its environment variables.
//! - [`auth`]: API tokens to tenants, constant-time, reloadable.
//! - [`gateway`]: the protocol of `ordergate-core` driven against the store, the
//!   in-process claims and the replay cache; lookups, readiness, and closing.
//! - [`pretrade`]: the limits file, re-read on SIGHUP, and the per-tenant rate
//!   buckets of the pre-trade controls.
//! - [`inflight`]: keys being placed by this process, so same-key retries wait.
//! - [`delivery`]: the outbox's deliverer and its sinks (NATS JetStream, webhooks).
//! - [`store`]: the two storage traits (records, outbox) and their backends
//!   (`store::sqlite`, `store::postgres`).
//! - [`http`]: router, handlers, and the one mapping of errors to problem+json.
//! - [`server`]: accept loop and connection limits (`server::accept`), signals,
//!   graceful shutdown, background purge.
//! - [`telemetry`]: tracing set-up and Prometheus metrics.
//! - [`clock`]: time behind a trait, for tests.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod delivery;
pub mod gateway;
pub mod http;
pub mod inflight;
pub mod pretrade;
pub mod server;
pub mod store;
pub mod telemetry;
