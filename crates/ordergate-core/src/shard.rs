//! The edge build's sharding: which Durable Object owns a key, how an order id leads
//! back to the object that holds its order, and how a change of the shard count keeps
//! every key's answer.
//!
//! Objects are named `TENANT:SHARD`: a tenant's keys spread over `shards` objects by a
//! hash of the key, so no key, order or tenant funnels through one object. An order id
//! is a UUID v7 whose last two bytes (random bits in v7) carry the shard of the object
//! that placed it, so `GET /orders/{id}` goes straight there, whatever the shard count
//! is now.
//!
//! A shard count change moves keys between objects. A [`Layout`] therefore remembers
//! the counts before it ([`Previous`]) and when the current one took effect: until
//! then keys are placed by the previous count; from then on for one result TTL, a key
//! whose shard moved is first looked for in its previous shard, so a retry finds its
//! record there; lookups by key also ask the previous shards, for ever, because orders
//! are kept where they were placed.

use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid, Variant, Version};

use crate::key::IdempotencyKey;

/// The most shards a tenant may have: a shard number fits the id's last two bytes.
pub const MAX_SHARDS: u16 = u16::MAX;

/// The shard of `key` among `shards`.
pub fn of_key(key: &IdempotencyKey, shards: u16) -> u16 {
    let digest = Sha256::digest(key.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let n = u64::from_be_bytes(first) % u64::from(shards.max(1));
    u16::try_from(n).unwrap_or(0)
}

/// The name of the object that owns `shard` of `tenant` (a tenant never holds `:`).
pub fn object_name(tenant: &str, shard: u16) -> String {
    format!("{tenant}:{shard}")
}

/// A time-ordered order id (UUID v7) that carries its shard.
pub fn new_order_id(now_ms: i64, random: [u8; 10], shard: u16) -> Uuid {
    let millis = u64::try_from(now_ms).unwrap_or(0);
    let mut bytes = *Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .as_bytes();
    bytes[14..16].copy_from_slice(&shard.to_be_bytes());
    Uuid::from_bytes(bytes)
}

/// The shard an order id of ours names: a v7 UUID of the RFC variant. The shard is
/// taken as it is, not checked against today's count: the order stays in the object
/// that placed it when the count changes.
pub fn of_order_id(id: &Uuid) -> Option<u16> {
    if id.get_version() != Some(Version::SortRand) || id.get_variant() != Variant::RFC4122 {
        return None;
    }
    let bytes = id.as_bytes();
    Some(u16::from_be_bytes([bytes[14], bytes[15]]))
}

/// The shard counts before the current one, and when the current one took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    /// Earlier counts, the most recent first.
    pub counts: Vec<u16>,
    /// When the current count took effect (ms since the Unix epoch).
    pub changed_at_ms: i64,
}

/// Where keys live: the current shard count, and the ones before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub shards: u16,
    pub previous: Option<Previous>,
}

/// Where a submission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The object that places the key's order.
    pub place: u16,
    /// An object that may still hold the key's live record, to ask first.
    pub earlier_record: Option<u16>,
}

impl Layout {
    /// One count, never changed.
    pub fn fixed(shards: u16) -> Self {
        Self {
            shards,
            previous: None,
        }
    }

    /// The count keys are placed by at `now_ms`: the previous one until the change.
    fn placing_count(&self, now_ms: i64) -> u16 {
        match &self.previous {
            Some(previous) if now_ms < previous.changed_at_ms => {
                previous.counts.first().copied().unwrap_or(self.shards)
            }
            _ => self.shards,
        }
    }

    /// Where `key` is placed at `now_ms`, and where its record may still be: a key
    /// placed by the previous count less than `result_ttl_ms` before may have a live
    /// record in its previous shard.
    pub fn route(&self, key: &IdempotencyKey, now_ms: i64, result_ttl_ms: i64) -> Route {
        let place = of_key(key, self.placing_count(now_ms));
        let earlier_record = self.previous.as_ref().and_then(|previous| {
            let count = *previous.counts.first()?;
            let changed = previous.changed_at_ms;
            let within = changed <= now_ms && now_ms < changed.saturating_add(result_ttl_ms);
            let shard = of_key(key, count);
            (within && shard != place).then_some(shard)
        });
        Route {
            place,
            earlier_record,
        }
    }

    /// The objects that may hold orders placed with `key`, the one placing now first
    /// (its orders are the newest), then those of earlier counts, most recent first.
    pub fn lookup_shards(&self, key: &IdempotencyKey, now_ms: i64) -> Vec<u16> {
        let mut shards = vec![of_key(key, self.placing_count(now_ms))];
        let earlier = self.previous.iter().flat_map(|p| p.counts.iter());
        for count in std::iter::once(&self.shards).chain(earlier) {
            let shard = of_key(key, *count);
            if !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        shards
    }

    /// Every shard number any count has used: `0..` the largest count.
    pub fn every_shard(&self) -> std::ops::Range<u16> {
        let earlier = self.previous.iter().flat_map(|p| p.counts.iter().copied());
        let largest = earlier.chain([self.shards]).max().unwrap_or(self.shards);
        0..largest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::parse(s.as_bytes()).expect("key")
    }

    fn changed(from: u16, to: u16, at_ms: i64) -> Layout {
        Layout {
            shards: to,
            previous: Some(Previous {
                counts: vec![from],
                changed_at_ms: at_ms,
            }),
        }
    }

    #[test]
    fn an_order_id_carries_any_shard_and_only_our_ids_name_one() {
        for shard in [0, 3, 15, 16, 4_000, MAX_SHARDS] {
            let id = new_order_id(1_700_000_000_000, [7; 10], shard);
            assert_eq!(of_order_id(&id), Some(shard));
            assert_eq!(id.get_version(), Some(Version::SortRand));
        }
        assert_eq!(of_order_id(&Uuid::from_u128(0x1234)), None);
        let v4 = Uuid::parse_str("9b2f6c1e-4a5b-4c3d-8e7f-001122334455").expect("uuid");
        assert_eq!(of_order_id(&v4), None);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let shard = of_key(&key(&format!("k-{i}")), 16);
            assert!(shard < 16);
            seen.insert(shard);
        }
        assert_eq!(seen.len(), 16);
    }

    #[test]
    fn a_fixed_layout_places_and_looks_up_in_one_shard() {
        let layout = Layout::fixed(16);
        let k = key("abc");
        let route = layout.route(&k, 0, 1_000);
        assert_eq!(route.place, of_key(&k, 16));
        assert_eq!(route.earlier_record, None);
        assert_eq!(layout.lookup_shards(&k, 0), vec![of_key(&k, 16)]);
    }

    #[test]
    fn across_a_change_a_moved_key_is_looked_for_where_it_was_for_one_ttl() {
        let layout = changed(16, 4, 10_000);
        let moved = (0..100)
            .map(|i| key(&format!("m-{i}")))
            .find(|k| of_key(k, 16) != of_key(k, 4))
            .expect("a key that moves");
        let (old, new) = (of_key(&moved, 16), of_key(&moved, 4));
        let before = layout.route(&moved, 9_999, 1_000);
        assert_eq!((before.place, before.earlier_record), (old, None));
        let during = layout.route(&moved, 10_500, 1_000);
        assert_eq!((during.place, during.earlier_record), (new, Some(old)));
        let after = layout.route(&moved, 11_000, 1_000);
        assert_eq!((after.place, after.earlier_record), (new, None));
        assert_eq!(layout.lookup_shards(&moved, 11_000), vec![new, old]);
        assert_eq!(layout.lookup_shards(&moved, 9_000), vec![old, new]);
        assert_eq!(layout.every_shard(), 0..16);
    }

    #[test]
    fn a_key_that_stays_needs_no_second_look() {
        let layout = changed(16, 4, 0);
        let stays = (0..100)
            .map(|i| key(&format!("s-{i}")))
            .find(|k| of_key(k, 16) == of_key(k, 4))
            .expect("a key that stays");
        assert_eq!(layout.route(&stays, 10, 1_000).earlier_record, None);
        assert_eq!(layout.lookup_shards(&stays, 10).len(), 1);
    }
}
