//! Storage: one small trait, and a backend per database behind it.
//!
//! Backends only store and fetch; the protocol that decides what to store lives in
//! [`crate::idempotency`]. Every backend must make the claim of a key, the order and
//! the stored response one atomic, durable commit.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ordergate_core::{Fingerprint, FinishedRecord, IdempotencyKey, Order, StoredResponse};
use uuid::Uuid;

/// A store failure. The cause is for the log; clients only learn "unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the database is shutting down or gone")]
    Closed,
}

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
}

impl NewOrder {
    /// The record's lifetime in milliseconds, as both backends store it.
    pub fn result_ttl_ms(&self) -> i64 {
        crate::clock::millis(self.result_ttl)
    }

    /// The quantity as a SQL integer (validation caps it at 2^53 - 1).
    pub fn quantity_i64(&self) -> i64 {
        i64::try_from(self.order.request.quantity.get()).unwrap_or(i64::MAX)
    }
}

/// A live finished record and how long it has left, by the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub record: FinishedRecord,
    pub ttl_left: Duration,
}

/// What came of an attempt to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Claim, order and response are committed.
    Placed,
    /// The key already has a live finished record (a concurrent request won, or this
    /// is a retry that the store found while placing).
    Exists(Finished),
    /// Another transaction holds the key and did not finish in time.
    InProgress,
    /// The request's lease ran out before the store began its transaction.
    Abandoned,
}

/// The storage trait every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key's finished record, if it has one that has not expired.
    async fn finished(
        &self,
        tenant: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Finished>, StoreError>;

    /// Claims the key and stores the order and its response in one commit, unless the
    /// key has a live record already.
    async fn place(&self, new: NewOrder) -> Result<Placement, StoreError>;

    /// The order JSON of one of the tenant's orders.
    async fn order_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    /// The order JSON of the tenant's newest order placed with `key`, expired or not.
    async fn order_by_key(
        &self,
        tenant: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes up to `batch` expired idempotency records; returns how many went.
    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError>;

    /// Answers when the database does.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether [`Store::place`] finds a live record as cheaply as [`Store::finished`]
    /// does. If so, the protocol does not read before placing a valid order.
    fn place_finds_records(&self) -> bool {
        false
    }
}

/// The shared store handle the server uses.
pub type DynStore = Arc<dyn Store>;

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

    /// The request calls this when its lease runs out; false means the store has it.
    pub fn abandon(&self) -> bool {
        self.state
            .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}
