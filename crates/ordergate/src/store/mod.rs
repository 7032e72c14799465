//! Storage: three small traits, and a backend per database behind them.
//!
//! A backend is a [`RecordStore`] (claims, placements, lookups), an [`Outbox`] (the
//! deliveries of accepted orders) and a [`fix::FixStore`] (a FIX session's numbers and
//! sent messages), one database under all three. Backends only store and fetch; the protocol that decides what to store lives in `ordergate-core` and
//! is driven by [`crate::gateway`]. Every backend must make the claim of a key, the
//! order, its stored response and its pending delivery one atomic, durable commit.

mod database_url;
mod error;
pub mod fix;
mod outbox;
pub mod postgres;
mod records;
pub mod sqlite;

use std::sync::Arc;

pub use database_url::DatabaseUrl;
pub use error::{Cause, StoreError};
pub use outbox::{
    Backlog, DeliveredBatch, DeliveryResult, DeliveryStatus, DynOutbox, Outbox, PendingDelivery,
};
pub use records::{DynRecords, Lease, NewOrder, RecordStore};

/// One backend's halves, sharing its database. Close it through the records half
/// once the deliverer has stopped.
#[derive(Clone)]
pub struct Stores {
    pub records: DynRecords,
    pub outbox: DynOutbox,
    /// The FIX session's state, for a `fix://` sink.
    pub fix: Arc<dyn fix::FixStore>,
}

impl Stores {
    /// Every half of one backend.
    pub fn of<B: RecordStore + Outbox + fix::FixStore>(backend: B) -> Self {
        let backend = Arc::new(backend);
        Self {
            records: backend.clone(),
            outbox: backend.clone(),
            fix: backend,
        }
    }
}
