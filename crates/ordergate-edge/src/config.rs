//! The Worker's settings: the secret `ORDERGATE_API_KEYS` and the variables
//! `ORDERGATE_RESULT_TTL`, `ORDERGATE_LEASE_TTL`, `ORDERGATE_MAX_BODY`,
//! `ORDERGATE_OPEN_MODE`, `ORDERGATE_SHARDS` and `ORDERGATE_LEGACY_TENANT`. Parsed
//! and bounded by `ordergate_core::settings`, as the server's flags are.

use std::cell::RefCell;
use std::rc::Rc;

use ordergate_core::Limits;
use ordergate_core::settings::{self, DEFAULT_LEASE_TTL, DEFAULT_MAX_BODY, DEFAULT_RESULT_TTL};
use ordergate_core::tokens::{ApiKey, TokenTable};
use worker::Env;

use crate::shard::MAX_SHARDS;

/// Shards per tenant unless `ORDERGATE_SHARDS` says otherwise (see README).
const DEFAULT_SHARDS: u16 = 16;

/// Who may call.
pub enum Access {
    Tokens(TokenTable),
    /// `ORDERGATE_OPEN_MODE=allow`: local development only.
    Open,
}

pub struct Config {
    pub access: Access,
    pub limits: Limits,
    pub max_body: u64,
    pub shards: u16,
    pub legacy_tenant: Option<String>,
}

/// Why order requests are answered 503: logged, never shown to clients.
pub type ConfigError = String;

/// The settings, or why there are none.
pub type Loaded = Rc<Result<Config, ConfigError>>;

thread_local! {
    /// The settings as last read, with the raw values they came from: an isolate
    /// serves many requests, and the token table is worth building once.
    static CACHE: RefCell<Option<(Vec<Option<String>>, Loaded)>> =
        const { RefCell::new(None) };
}

const NAMES: [&str; 7] = [
    "ORDERGATE_API_KEYS",
    "ORDERGATE_OPEN_MODE",
    "ORDERGATE_RESULT_TTL",
    "ORDERGATE_LEASE_TTL",
    "ORDERGATE_MAX_BODY",
    "ORDERGATE_SHARDS",
    "ORDERGATE_LEGACY_TENANT",
];

/// The settings of `env`.
pub fn load(env: &Env) -> Loaded {
    let raw: Vec<Option<String>> = NAMES
        .iter()
        .map(|name| env.var(name).ok().map(|v| v.to_string()))
        .collect();
    CACHE.with_borrow_mut(|cache| {
        if let Some((seen, config)) = cache.as_ref()
            && *seen == raw
        {
            return config.clone();
        }
        let config = Rc::new(parse(&raw));
        if let Err(reason) = config.as_ref() {
            worker::console_error!("ordergate-edge cannot serve orders: {reason}");
        }
        *cache = Some((raw, config.clone()));
        config
    })
}

fn parse(raw: &[Option<String>]) -> Result<Config, ConfigError> {
    let value = |i: usize| {
        raw.get(i)
            .cloned()
            .flatten()
            .filter(|v| !v.trim().is_empty())
    };
    let keys = ApiKey::parse_list(&value(0).unwrap_or_default())
        .map_err(|e| format!("ORDERGATE_API_KEYS: {e}"))?;
    let open = value(1).is_some_and(|v| v.trim() == "allow");
    let access = match (keys.is_empty(), open) {
        (false, _) => Access::Tokens(TokenTable::build(&keys).map_err(|e| e.to_string())?),
        (true, true) => Access::Open,
        (true, false) => {
            return Err(
                "no API keys: set the secret ORDERGATE_API_KEYS (TENANT:TOKEN,…), or \
                        ORDERGATE_OPEN_MODE=allow for local development"
                    .into(),
            );
        }
    };
    let result_ttl = settings::result_ttl(&value(2).unwrap_or(DEFAULT_RESULT_TTL.into()))
        .map_err(|e| format!("ORDERGATE_RESULT_TTL: {e}"))?;
    let lease_ttl = settings::lease_ttl(&value(3).unwrap_or(DEFAULT_LEASE_TTL.into()))
        .map_err(|e| format!("ORDERGATE_LEASE_TTL: {e}"))?;
    settings::check_lease_within_result(
        lease_ttl,
        result_ttl,
        ("ORDERGATE_LEASE_TTL", "ORDERGATE_RESULT_TTL"),
    )?;
    let max_body = match value(4) {
        Some(v) => settings::max_body(&v).map_err(|e| format!("ORDERGATE_MAX_BODY: {e}"))?,
        None => DEFAULT_MAX_BODY,
    };
    let shards = match value(5) {
        Some(v) => shards(&v)?,
        None => DEFAULT_SHARDS,
    };
    Ok(Config {
        access,
        limits: Limits {
            result_ttl_ms: millis(result_ttl),
            lease_ttl_ms: millis(lease_ttl),
        },
        max_body,
        shards,
        legacy_tenant: value(6).map(|v| v.trim().to_owned()),
    })
}

fn shards(v: &str) -> Result<u16, ConfigError> {
    v.trim()
        .parse::<u16>()
        .ok()
        .filter(|n| *n >= 1 && u32::from(*n) < MAX_SHARDS)
        .ok_or_else(|| format!("ORDERGATE_SHARDS: {v:?} is not a number from 1 to 65535"))
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
