//! The old worker's KV namespace (`LEGACY_ORDERS`), read during the switch-over: a
//! key it answered is replayed, not placed again (the rule is
//! `ordergate_core::legacy`'s; this only reads KV).

use ordergate_core::legacy::result_key;
use worker::Env;

use crate::config::Config;

/// The binding of the old worker's namespace.
const BINDING: &str = "LEGACY_ORDERS";

/// The old worker's stored answer for `key`, if `tenant` is the one it served and it
/// kept one. A KV failure is an error: the key may have an order there.
pub async fn stored_answer(
    env: &Env,
    config: &Config,
    tenant: &str,
    key: &str,
) -> worker::Result<Option<String>> {
    if config.legacy_tenant.as_deref() != Some(tenant) {
        return Ok(None);
    }
    let Ok(kv) = env.kv(BINDING) else {
        return Ok(None);
    };
    kv.get(&result_key(key))
        .text()
        .await
        .map_err(|e| worker::Error::from(e.to_string()))
}
