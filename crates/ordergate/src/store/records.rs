//! The records half of a backend: idempotency records and the orders they placed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ordergate_core::{Fingerprint, LiveRecord, Order, Placement, ScopedKey, StoredResponse};
use uuid::Uuid;

use super::StoreError;

/// An order to place under a key, with the answer to store beside it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub tenant: String,
    pub order: Order,
    pub fingerprint: Fingerprint,
    pub response: StoredResponse,
    /// How long the key's record lives, counted by the store's own clock.
    pub result_ttl: Duration,
    /// Shared with the request: once abandoned, the store must not place the order.
    pub lease: Lease,
    /// Record a pending delivery with the order, in the same commit.
    pub deliver: bool,
}

impl NewOrder {
    /// The record's lifetime in milliseconds, as both backends store it.
    pub fn result_ttl_ms(&self) -> i64 {
        ordergate_core::settings::millis(self.result_ttl)
    }

    /// The limit price as written, for limit orders.
    pub fn limit_price(&self) -> Option<&str> {
        let price = self.order.request.order_type.limit_price();
        price.map(ordergate_core::Price::as_str)
    }

    /// The quantity as a SQL integer (validation caps it at 2^53 - 1).
    pub fn quantity_i64(&self) -> i64 {
        i64::try_from(self.order.request.quantity.get()).unwrap_or(i64::MAX)
    }
}

/// The records half of a backend: claims, placements, lookups, the purge. Backends
/// only store and fetch; the protocol that decides what to store is
/// [`ordergate_core::Submission`].
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// The key's finished record, if it has one that has not expired.
    async fn live_record(&self, key: &ScopedKey) -> Result<Option<LiveRecord>, StoreError>;

    /// Claims the key and stores the order and its response in one commit, unless the
    /// key has a live record already, which it then returns.
    async fn place(&self, new: NewOrder) -> Result<Placement, StoreError>;

    /// The order JSON of one of the tenant's orders.
    async fn order_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    /// The order JSON of the tenant's newest order placed with the key, expired or not.
    async fn order_by_key(&self, key: &ScopedKey) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes up to `batch` expired idempotency records; returns how many went.
    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError>;

    /// Answers when the database does.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stops taking work, finishes what was taken, and ends every thread and task of
    /// the backend, its outbox's included; only then lets go of the database (the
    /// SQLite file lock). Every call after it, on either half, fails with
    /// [`StoreError::Closed`].
    async fn close(&self);
}

/// The records store the server uses.
pub type DynRecords = Arc<dyn RecordStore>;

/// Whether a request still wants its order placed: the request and the store race to
/// move it out of `WAITING`, so exactly one of "abandoned" and "taken" happens. Past
/// its deadline a lease can no longer be taken, even if the request has not noticed
/// yet (a process resumed after SIGSTOP runs its futures before its timers).
#[derive(Debug, Clone, Default)]
pub struct Lease {
    state: Arc<AtomicU8>,
    deadline: Option<Instant>,
}

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Lease {
    /// A lease that expires at `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            state: Arc::default(),
            deadline: Some(deadline),
        }
    }

    /// The store calls this as it starts the transaction; false means: skip the order.
    pub fn take(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.abandon();
        }
        self.state
            .compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// When the request stops waiting for its place in a transaction, if it ever does.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The request calls this when its lease runs out; false means the store has it.
    pub fn abandon(&self) -> bool {
        self.state
            .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}
