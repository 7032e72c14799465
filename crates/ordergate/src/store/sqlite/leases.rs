//! Delivery leases of the SQLite outbox, held in memory.
//!
//! One process owns the file (its lock), so the leases of its one outbox are the only
//! leases there are: keeping them here honours the outbox's promise without a write
//! (and an fsync) for every batch leased. A restart forgets them, as it should: the
//! process that held them is gone.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use uuid::Uuid;

use crate::store::{DeliveryResult, PendingDelivery};

/// Order ids leased, and until when (ms of the store's clock).
#[derive(Debug, Default)]
pub struct Leases {
    until: Mutex<HashMap<Uuid, i64>>,
}

impl Leases {
    /// How many rows to read to find `limit` that are not leased at `now_ms`.
    pub fn rows_to_read(&self, limit: usize, now_ms: i64) -> usize {
        let mut until = self.lock();
        until.retain(|_, &mut until_ms| until_ms > now_ms);
        limit.saturating_add(until.len())
    }

    /// Keeps the first `limit` of `due` that no lease holds at `now_ms`, leased
    /// until `until_ms`.
    pub fn take(
        &self,
        due: Vec<PendingDelivery>,
        limit: usize,
        now_ms: i64,
        until_ms: i64,
    ) -> Vec<PendingDelivery> {
        let mut until = self.lock();
        let free: Vec<PendingDelivery> = due
            .into_iter()
            .filter(|d| until.get(&d.order_id).is_none_or(|&held| held <= now_ms))
            .take(limit)
            .collect();
        for delivery in &free {
            until.insert(delivery.order_id, until_ms);
        }
        free
    }

    /// Ends the leases whose outcome was written.
    pub fn release(&self, results: &[DeliveryResult]) {
        let mut until = self.lock();
        for result in results {
            until.remove(&result.order_id());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, i64>> {
        self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
