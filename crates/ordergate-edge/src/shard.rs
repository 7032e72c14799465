//! Which Durable Object owns a key, and how an order id leads back to it.
//!
//! Objects are named `TENANT:SHARD`: a tenant's keys spread over `shards` objects by
//! a hash of the key, so no key, order or tenant funnels through one object, and a
//! new tenant brings objects of its own. An order id is a UUID v7 whose last two
//! bytes (random bits in v7) carry the shard, so `GET /orders/{id}` goes straight to
//! the object that holds the order.

use ordergate_core::ScopedKey;
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid, Variant, Version};

/// The most shards a tenant may have: the shard must fit the id's last two bytes.
pub const MAX_SHARDS: u32 = 1 << 16;

/// The shard of a key among `shards`.
pub fn of_key(key: &ScopedKey, shards: u16) -> u16 {
    let digest = Sha256::digest(key.key.as_str().as_bytes());
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

/// The shard an order id names, if it is one of ours: a v7 UUID of the RFC variant
/// whose shard exists.
pub fn of_order_id(id: &Uuid, shards: u16) -> Option<u16> {
    if id.get_version() != Some(Version::SortRand) || id.get_variant() != Variant::RFC4122 {
        return None;
    }
    let bytes = id.as_bytes();
    let shard = u16::from_be_bytes([bytes[14], bytes[15]]);
    (shard < shards).then_some(shard)
}
