//! Storage: one small trait, and a backend per database behind it.
//!
//! Backends only store and fetch; the protocol that decides what to store lives in
//! `ordergate-core` and is driven by [`crate::gateway`]. Every backend must make the
//! claim of a key, the order and the stored response one atomic, durable commit.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ordergate_core::{
    Fingerprint, FinishedRecord, LiveRecord, Order, Placement, ScopedKey, StoredResponse,
};
use uuid::Uuid;

/// A boxed cause, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A store failure. The cause is for the log; clients only learn "unavailable".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not do what was asked (down, refused, full disk, ...).
    #[error("the database is unavailable")]
    Unavailable(#[source] Cause),
    /// The request's lease ran out while it waited for the store.
    #[error("the request's lease ran out while it waited for the store")]
    LeaseExpired,
    /// Something stored breaks a rule the store relies on: a bug, or a tampered row.
    #[error("broken invariant: {0}")]
    Invariant(&'static str),
    /// The store is closed (the server is shutting down).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Every [`StoreError::kind`], so that each series exists from the start.
    pub const KINDS: [&'static str; 4] = ["unavailable", "lease_expired", "invariant", "closed"];

    /// The label of the `store_errors` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::LeaseExpired => "lease_expired",
            Self::Invariant(_) => "invariant",
            Self::Closed => "closed",
        }
    }

    /// A database failure with a cause of its own.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Self::Unavailable(cause.into())
    }
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
    /// Record a pending delivery with the order, in the same commit.
    pub deliver: bool,
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

/// A finished record's columns as both backends store them, before they are checked.
#[derive(Debug)]
pub struct RecordRow {
    pub fingerprint: Vec<u8>,
    pub status: i64,
    pub location: String,
    pub body: Vec<u8>,
    /// Milliseconds left by the store's clock; live if above 0.
    pub ms_left: i64,
}

impl RecordRow {
    /// The live record these columns hold.
    pub fn into_live(self) -> Result<LiveRecord, StoreError> {
        let fingerprint = <[u8; 32]>::try_from(self.fingerprint.as_slice())
            .map_err(|_| StoreError::Invariant("a stored fingerprint is not 32 bytes"))?;
        let status = u16::try_from(self.status)
            .map_err(|_| StoreError::Invariant("a stored status is out of range"))?;
        Ok(LiveRecord {
            record: FinishedRecord {
                fingerprint: Fingerprint(fingerprint),
                response: StoredResponse {
                    status,
                    location: self.location,
                    body: self.body,
                },
            },
            ms_left: self.ms_left,
        })
    }
}

/// The storage trait every backend implements. Backends only store and fetch; the
/// protocol that decides what to store is [`ordergate_core::Submission`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
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

    /// Leases up to `limit` pending deliveries due by `now_ms`, oldest first, until
    /// `lease_until_ms`: no other caller gets them before then.
    async fn lease_deliveries(
        &self,
        limit: usize,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// Writes what came of sending leased deliveries.
    async fn record_deliveries(&self, results: Vec<DeliveryResult>) -> Result<(), StoreError>;

    /// The delivery of one of the tenant's orders; `None` if the order is unknown or
    /// was accepted without delivery.
    async fn delivery_status(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<Option<DeliveryStatus>, StoreError>;

    /// How many deliveries are pending, and when the oldest was accepted.
    async fn delivery_backlog(&self) -> Result<Backlog, StoreError>;

    /// Stops taking work, finishes what was taken, and ends every thread and task of
    /// the store; only then lets go of the database (the SQLite file lock). Every
    /// call after it fails with [`StoreError::Closed`].
    async fn close(&self);
}

/// A pending delivery, leased for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    pub order_id: Uuid,
    pub sequence: i64,
    pub tenant: String,
    /// The order JSON, as in the 201.
    pub body: Vec<u8>,
    pub accepted_at_ms: i64,
    pub attempts: i64,
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// `sequence` as leased: SQLite finds the row by it (its rowid).
    Delivered {
        order_id: Uuid,
        sequence: i64,
        at_ms: i64,
    },
    /// Not delivered: tried again at `next_at_ms`.
    Retry {
        order_id: Uuid,
        error: String,
        next_at_ms: i64,
    },
    /// Given up (past `--deliver-max-age`).
    Failed { order_id: Uuid, error: String },
}

/// A batch's delivered results, written by one statement, apart from the others
/// (retries and failures), written one by one: the split both backends make.
#[derive(Debug, Default)]
pub struct DeliveredBatch {
    pub order_ids: Vec<Uuid>,
    pub sequences: Vec<i64>,
    /// The latest confirmation time of the batch.
    pub at_ms: i64,
}

impl DeliveredBatch {
    pub fn split(results: &[DeliveryResult]) -> (Self, Vec<&DeliveryResult>) {
        let mut delivered = Self::default();
        let mut others = Vec::new();
        for result in results {
            match result {
                DeliveryResult::Delivered {
                    order_id,
                    sequence,
                    at_ms,
                } => {
                    delivered.order_ids.push(*order_id);
                    delivered.sequences.push(*sequence);
                    delivered.at_ms = delivered.at_ms.max(*at_ms);
                }
                other => others.push(other),
            }
        }
        (delivered, others)
    }
}

/// The answer of `GET /orders/{id}/delivery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<i64>,
}

/// The pending deliveries, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub pending: i64,
    pub oldest_accepted_at_ms: Option<i64>,
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
