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
//! - [`shard`]: which object owns a key, and the shard carried in an order id.
//! - [`wire`]: what the Worker sends an object.
//! - [`object`]: the `KeyShard` Durable Object: the submission driver, lookups and
//!   the purge alarm.
//! - [`store`]: the object's SQL: schema, the one atomic placement, reads, purge.
//! - [`replays`]: the isolate's replay cache (the core's), filled from objects' answers.
//! - [`legacy`]: the old worker's KV namespace, read during the switch-over.
//! - [`platform`]: the two runtime calls workers-rs does not wrap
//!   (`transactionSync`, `crypto.getRandomValues`).
//! - [`respond`]: an `ordergate_core::Answer` as a Worker response.

mod config;
mod entry;
mod legacy;
mod object;
mod platform;
mod replays;
mod respond;
mod shard;
mod store;
mod wire;

pub use object::KeyShard;
