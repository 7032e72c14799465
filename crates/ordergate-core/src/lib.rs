//! # ordergate-core
//!
//! The idempotency protocol and the order domain of ordergate, with no I/O, no async
//! runtime and no clock reads: time and ids are passed in. The native server and the
//! Cloudflare Worker build share it, so it must build for `wasm32-unknown-unknown`.
//!
//! ## Layout
//!
//! - [`key`]: the `Idempotency-Key` header, plain and RFC 8941 forms; a key in its tenant.
//! - [`json`]: body parsing that keeps repeated members, and RFC 8785 canonical form.
//! - [`order`]: order validation into domain types, and the order receipt.
//! - [`price`]: limit prices and notionals as exact decimals, never floats.
//! - [`controls`]: pre-trade controls: the limits file, each tenant's limits, the
//!   checks of a new order.
//! - [`protocol`]: payload fingerprints, finished records, placements, retry verdicts,
//!   outcomes.
//! - [`submission`]: one `POST /orders` as a state machine: facts in, next step out.
//! - [`problem`]: the contract's error codes and their problem+json shape.
//! - [`replay_cache`]: finished answers kept in memory, until their record's expiry.
//! - [`refusal`]: every way a request is refused, and its problem.
//! - [`delivery`]: delivery's rules: the message, the webhook signature, the backoff
//!   and the judgement of an attempt.
//! - [`fix`]: FIX 4.4 for delivery: the tag=value codec, the NewOrderSingle of an
//!   order, sequence checks, and what an ExecutionReport or a reject says.
//! - [`answer`]: HTTP answers as data (status, headers, body) for either build.
//! - [`intake`]: the HTTP-level checks of a request, in the contract's order.
//! - [`legacy`]: replays of the old worker's stored answers during the switch-over.
//! - [`tokens`]: `TENANT:TOKEN` keys and the constant-time token lookup.
//! - [`settings`]: durations and limits, parsed and bounded once for both builds.
//! - [`shard`]: the edge build's key-to-object mapping, order ids that carry their
//!   object, and shard count changes that keep every key's answer.

pub mod answer;
pub mod controls;
pub mod delivery;
pub mod fix;
pub mod intake;
pub mod json;
pub mod key;
pub mod legacy;
pub mod order;
pub mod price;
pub mod problem;
pub mod protocol;
pub mod refusal;
pub mod replay_cache;
pub mod settings;
pub mod shard;
pub mod submission;
pub mod tokens;

pub use answer::Answer;
pub use controls::{ControlRefusal, LimitsError, PreTradeLimits, TenantLimits};
pub use key::{IdempotencyKey, KeyError, ScopedKey};
pub use order::{InvalidOrder, Order, OrderRequest, OrderType, TimeInForce};
pub use price::{Notional, NotionalLimit, Price, PriceError};
pub use problem::{ErrorCode, Problem};
pub use protocol::{
    CorruptRecord, Fingerprint, FinishedRecord, LiveRecord, Outcome, Payload, Placement,
    RETRY_AFTER_SECONDS, RecordRow, RetryVerdict, StoredResponse,
};
pub use refusal::Refusal;
pub use submission::{
    CacheHit, Conclusion, Fact, IN_FLIGHT_WAIT_MS, LegacyImport, LegacyStep, Limits, OrderToPlace,
    Remember, Step, Submission,
};
