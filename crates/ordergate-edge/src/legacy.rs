//! The old worker's KV namespace (`LEGACY_ORDERS`), read during the switch-over: a
//! key it answered is replayed, not placed again (the rules are
//! `ordergate_core::legacy`'s; this only reads KV).

use ordergate_core::IdempotencyKey;
use ordergate_core::legacy::result_keys;
use worker::Env;

use crate::config::Config;

/// The binding of the old worker's namespace.
pub const BINDING: &str = "LEGACY_ORDERS";

/// The old worker's stored answer for `key`, if `tenant` is the one it served and it
/// kept one under any spelling of the key (`raw_header` is the header as this request
/// sent it). A KV failure is an error: the key may have an order there.
pub async fn stored_answer(
    env: &Env,
    config: &Config,
    tenant: &str,
    raw_header: Option<&str>,
    key: &IdempotencyKey,
) -> worker::Result<Option<String>> {
    if config.legacy_tenant.as_deref() != Some(tenant) {
        return Ok(None);
    }
    // The configuration is only usable with the namespace bound (see `config`).
    let kv = env.kv(BINDING)?;
    for name in result_keys(raw_header, key) {
        let stored = kv
            .get(&name)
            .text()
            .await
            .map_err(|e| worker::Error::from(e.to_string()))?;
        if stored.is_some() {
            return Ok(stored);
        }
    }
    Ok(None)
}
