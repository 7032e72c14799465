//! A bounded cache of finished answers, so most replays never reach the database.
//!
//! Keyed by (tenant, key), each entry keeps the payload fingerprint with the answer
//! (a different payload is still a 422) and an expiry that is never later than the
//! stored record's: it is computed from a clock reading taken *before* the store
//! reported the record's remaining life. A live record never changes, so nothing
//! else can make an entry stale.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;
use ordergate_core::FinishedRecord;

/// Entries kept; a few hundred bytes each.
pub const DEFAULT_CAPACITY: usize = 16_384;

struct Entry {
    record: Arc<FinishedRecord>,
    expires_at_ms: i64,
}

/// The cache; cheap to share behind an `Arc`.
pub struct ReplayCache {
    entries: Mutex<LruCache<String, Entry>>,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl ReplayCache {
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The key's finished record, if cached and not expired at `now_ms`.
    pub fn get(&self, tenant: &str, key: &str, now_ms: i64) -> Option<Arc<FinishedRecord>> {
        let slot = slot(tenant, key);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(&slot) {
            Some(entry) if entry.expires_at_ms > now_ms => Some(entry.record.clone()),
            Some(_) => {
                entries.pop(&slot);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, tenant: &str, key: &str, record: FinishedRecord, expires_at_ms: i64) {
        let entry = Entry {
            record: Arc::new(record),
            expires_at_ms,
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.put(slot(tenant, key), entry);
    }
}

/// Tenants are printable ASCII without spaces, so a newline cannot be forged.
fn slot(tenant: &str, key: &str) -> String {
    let mut slot = String::with_capacity(tenant.len() + key.len() + 1);
    slot.push_str(tenant);
    slot.push('\n');
    slot.push_str(key);
    slot
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordergate_core::{Fingerprint, StoredResponse};

    fn record() -> FinishedRecord {
        FinishedRecord {
            fingerprint: Fingerprint([7; 32]),
            response: StoredResponse {
                status: 201,
                location: "/orders/x".into(),
                body: b"{}".to_vec(),
            },
        }
    }

    #[test]
    fn an_entry_is_served_until_its_expiry_and_not_after() {
        let cache = ReplayCache::default();
        cache.insert("t", "k", record(), 1_000);
        assert!(cache.get("t", "k", 999).is_some());
        assert!(cache.get("t", "k", 1_000).is_none());
        assert!(
            cache.get("t", "k", 0).is_none(),
            "an expired entry is dropped"
        );
    }

    #[test]
    fn tenants_do_not_share_entries_and_the_size_is_bounded() {
        let cache = ReplayCache::with_capacity(2);
        cache.insert("a", "k", record(), i64::MAX);
        assert!(cache.get("b", "k", 0).is_none());
        cache.insert("a", "k2", record(), i64::MAX);
        cache.insert("a", "k3", record(), i64::MAX);
        assert!(
            cache.get("a", "k", 0).is_none(),
            "the least recently used went"
        );
    }
}
