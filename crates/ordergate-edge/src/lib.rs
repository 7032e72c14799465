//! # ordergate-edge
//!
//! ordergate as a Cloudflare Worker: the same HTTP API and guarantees as the server,
//! with each key's claim in a SQLite-backed Durable Object. Every rule of the
//! protocol comes from `ordergate_core`; this crate only does the Worker's I/O.
//!
//! ## Layout
//!
//! - [`entry`]: the Worker's `fetch`: routes, and the HTTP checks in the contract's
//!   order before a request reaches an object.
//! - [`config`]: the Worker's variables and secret, read once per isolate.
//! - [`wire`]: what the Worker and an object say to each other: a command, and a
//!   reply that carries the record the Worker may keep.
//! - [`object`]: the `KeyShard` Durable Object: the submission driver, lookups and
//!   the alarm (purge and delivery).
//! - [`store`]: the object's SQL: schema, the one atomic placement (with its
//!   delivery), reads, purge, the outbox.
//! - [`delivery`]: a round of the object's deliveries, sent to the webhook and
//!   judged by `ordergate_core::delivery`.
//! - [`replays`]: the isolate's replay cache (the core's), filled with the records
//!   objects send.
//! - [`legacy`]: the old worker's KV namespace, read during the switch-over.
//! - [`platform`]: the two runtime calls workers-rs does not wrap
//!   (`transactionSync`, `crypto.getRandomValues`).
//! - [`respond`]: an `ordergate_core::Answer` or an object's reply as a Worker
//!   response.
//!
//! Which object owns a key, and how a shard count change keeps every key's answer,
//! is `ordergate_core::shard`'s.

mod config;
mod delivery;
mod entry;
mod legacy;
mod object;
mod platform;
mod replays;
mod respond;
mod store;
mod wire;

pub use object::KeyShard;
