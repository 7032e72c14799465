//! The outbox half of a backend: the deliveries accepted orders are waiting for.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// The outbox every backend keeps beside its records: a pending delivery is written
/// in the commit that places its order, and leaves only by a recorded outcome.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Leases up to `limit` pending deliveries due by `now_ms`, oldest first, until
    /// `lease_until_ms`: no caller, in this process or another, gets them again
    /// before then, unless their outcome is recorded first.
    async fn lease_due(
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
}

/// The outbox the deliverer uses.
pub type DynOutbox = Arc<dyn Outbox>;

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

impl DeliveryResult {
    /// The order the outcome is of.
    pub fn order_id(&self) -> Uuid {
        match self {
            Self::Delivered { order_id, .. }
            | Self::Retry { order_id, .. }
            | Self::Failed { order_id, .. } => *order_id,
        }
    }
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
