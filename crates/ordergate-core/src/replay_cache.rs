//! A bounded cache of finished answers, so most replays never reach the store (the
//! server's database, or the edge build's Durable Object).
//!
//! Keyed by (tenant, key), each entry keeps the payload fingerprint with the answer
//! (a different payload is still a 422) and an expiry that is never later than the
//! stored record's: it is computed from a clock reading taken *before* the store
//! reported the record's remaining life. A live record never changes, so nothing
//! else can make an entry stale.
//!
//! An entry may also keep the bytes of a request known to carry its payload (the one
//! that created the record, or one judged a replay of it), if they are small. A retry
//! with those very bytes has that payload, so it replays without being parsed and
//! fingerprinted; any other body is judged by its fingerprint as before.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use lru::LruCache;

use crate::{FinishedRecord, ScopedKey};

/// Entries kept; a few hundred bytes each.
pub const DEFAULT_CAPACITY: usize = 16_384;

/// Request bodies up to this size are kept with their entry (bounds the cache's
/// memory: order bodies are a few dozen bytes).
const REQUEST_BODY_MAX: usize = 512;

struct Entry {
    cached: Cached,
    expires_at_ms: i64,
}

/// A cached record, and the bytes of a request known to carry its payload.
#[derive(Clone)]
pub struct Cached {
    pub record: Arc<FinishedRecord>,
    request_body: Option<Bytes>,
}

impl Cached {
    /// True if `body` is byte for byte a request already answered with this record:
    /// the same bytes are the same payload, so it replays without being parsed.
    pub fn was_answered_for(&self, body: &[u8]) -> bool {
        self.request_body.as_deref() == Some(body)
    }
}

/// The cache; cheap to share behind an `Arc`.
pub struct ReplayCache {
    entries: Mutex<LruCache<ScopedKey, Entry>>,
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
    pub fn get(&self, key: &ScopedKey, now_ms: i64) -> Option<Cached> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some(entry) if entry.expires_at_ms > now_ms => Some(entry.cached.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Caches `record` until `expires_at_ms`. `request_body` must carry the record's
    /// payload (the request that created it, or one judged a replay of it).
    pub fn insert(
        &self,
        key: ScopedKey,
        record: FinishedRecord,
        request_body: Option<Bytes>,
        expires_at_ms: i64,
    ) {
        let entry = Entry {
            cached: Cached {
                record: Arc::new(record),
                request_body: request_body.filter(|b| b.len() <= REQUEST_BODY_MAX),
            },
            expires_at_ms,
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.put(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fingerprint, IdempotencyKey, StoredResponse};

    fn key(tenant: &str, key: &str) -> ScopedKey {
        ScopedKey::new(tenant, IdempotencyKey::parse(key.as_bytes()).expect("key"))
    }

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
        cache.insert(key("t", "k"), record(), None, 1_000);
        assert!(cache.get(&key("t", "k"), 999).is_some());
        assert!(cache.get(&key("t", "k"), 1_000).is_none());
        assert!(
            cache.get(&key("t", "k"), 0).is_none(),
            "an expired entry is dropped"
        );
    }

    #[test]
    fn only_the_kept_request_bytes_are_known_to_replay() {
        let cache = ReplayCache::default();
        let body = Bytes::from_static(br#"{"symbol":"AAPL"}"#);
        cache.insert(key("t", "k"), record(), Some(body.clone()), i64::MAX);
        let cached = cache.get(&key("t", "k"), 0).expect("cached");
        assert!(cached.was_answered_for(&body));
        assert!(!cached.was_answered_for(br#"{"symbol":"MSFT"}"#));
        assert!(!cached.was_answered_for(b""));
        cache.insert(key("t", "none"), record(), None, i64::MAX);
        let without = cache.get(&key("t", "none"), 0).expect("cached");
        assert!(!without.was_answered_for(b""), "no bytes kept, none match");
    }

    #[test]
    fn large_request_bodies_are_not_kept() {
        let cache = ReplayCache::default();
        let large = Bytes::from(vec![b' '; REQUEST_BODY_MAX + 1]);
        cache.insert(key("t", "k"), record(), Some(large.clone()), i64::MAX);
        let cached = cache.get(&key("t", "k"), 0).expect("cached");
        assert!(!cached.was_answered_for(&large));
    }

    #[test]
    fn tenants_do_not_share_entries_and_the_size_is_bounded() {
        let cache = ReplayCache::with_capacity(2);
        cache.insert(key("a", "k"), record(), None, i64::MAX);
        assert!(cache.get(&key("b", "k"), 0).is_none());
        cache.insert(key("a", "k2"), record(), None, i64::MAX);
        cache.insert(key("a", "k3"), record(), None, i64::MAX);
        assert!(
            cache.get(&key("a", "k"), 0).is_none(),
            "the least recently used went"
        );
    }
}
