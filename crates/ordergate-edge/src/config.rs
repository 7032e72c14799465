//! The Worker's settings: the secret `ORDERGATE_API_KEYS` and the variables
//! `ORDERGATE_RESULT_TTL`, `ORDERGATE_LEASE_TTL`, `ORDERGATE_MAX_BODY`,
//! `ORDERGATE_OPEN_MODE`, `ORDERGATE_SHARDS`, `ORDERGATE_PREVIOUS_SHARDS`,
//! `ORDERGATE_SHARDS_CHANGED_AT`, `ORDERGATE_LEGACY_TENANT` and `ORDERGATE_LIMITS`
//! (the limits file's TOML), and whether the old worker's namespace is bound. Parsed and bounded by `ordergate_core::settings`, as
//! the server's flags are.

use std::cell::RefCell;
use std::rc::Rc;

use ordergate_core::settings::{self, DEFAULT_LEASE_TTL, DEFAULT_MAX_BODY, DEFAULT_RESULT_TTL};
use ordergate_core::shard::Layout;
use ordergate_core::tokens::{ApiKey, TokenTable};
use ordergate_core::{Limits, PreTradeLimits};
use worker::Env;

use crate::legacy::BINDING as LEGACY_BINDING;

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
    pub layout: Layout,
    /// The tenant whose keys the old worker answered, when its namespace is bound.
    pub legacy_tenant: Option<String>,
    /// The pre-trade controls of `ORDERGATE_LIMITS`, without its rates.
    pub pretrade: Option<PreTradeLimits>,
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

const NAMES: [&str; 10] = [
    "ORDERGATE_API_KEYS",
    "ORDERGATE_OPEN_MODE",
    "ORDERGATE_RESULT_TTL",
    "ORDERGATE_LEASE_TTL",
    "ORDERGATE_MAX_BODY",
    "ORDERGATE_SHARDS",
    "ORDERGATE_LEGACY_TENANT",
    "ORDERGATE_PREVIOUS_SHARDS",
    "ORDERGATE_SHARDS_CHANGED_AT",
    "ORDERGATE_LIMITS",
];

/// Stands in the raw values for "the legacy namespace is bound".
const BOUND: &str = "bound";

/// The settings of `env`.
pub fn load(env: &Env) -> Loaded {
    let mut raw: Vec<Option<String>> = NAMES
        .iter()
        .map(|name| env.var(name).ok().map(|v| v.to_string()))
        .collect();
    raw.push(env.kv(LEGACY_BINDING).is_ok().then(|| BOUND.to_owned()));
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
    let layout = settings::shard_layout(
        value(5).as_deref(),
        value(7).as_deref(),
        value(8).as_deref(),
    )?;
    let legacy_tenant = legacy_tenant(value(6), value(10).is_some())?;
    let pretrade = value(9).map(|text| pretrade(&text)).transpose()?;
    Ok(Config {
        access,
        limits: Limits::new(result_ttl, lease_ttl),
        max_body,
        layout,
        legacy_tenant,
        pretrade,
    })
}

/// The limits of `ORDERGATE_LIMITS`. A rate cannot be kept here (an isolate is one of
/// many, and objects are per key): it is dropped, and the log says so.
fn pretrade(text: &str) -> Result<PreTradeLimits, ConfigError> {
    let limits = PreTradeLimits::parse(text).map_err(|e| format!("ORDERGATE_LIMITS: {e}"))?;
    let (limits, had_rate) = limits.without_rates();
    if had_rate {
        worker::console_warn!(
            "ORDERGATE_LIMITS: orders_per_second is ignored at the edge; use Cloudflare's \
             rate limiting rules in front of the Worker instead"
        );
    }
    Ok(limits)
}

/// A switch-over needs both the tenant and the namespace: with only one of them, keys
/// the old worker answered would be placed again, so no order is taken at all.
fn legacy_tenant(tenant: Option<String>, bound: bool) -> Result<Option<String>, ConfigError> {
    match (tenant, bound) {
        (Some(tenant), true) => Ok(Some(tenant.trim().to_owned())),
        (None, false) => Ok(None),
        (Some(_), false) => Err(format!(
            "ORDERGATE_LEGACY_TENANT is set but no KV namespace is bound as \
             {LEGACY_BINDING}: the old worker's answers cannot be read"
        )),
        (None, true) => Err(format!(
            "the KV namespace {LEGACY_BINDING} is bound but ORDERGATE_LEGACY_TENANT is not \
             set: whose keys the old worker answered is unknown"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw values of `set`, by variable name (`BOUND` for the legacy namespace).
    fn raw(set: &[(&str, &str)]) -> Vec<Option<String>> {
        let mut values: Vec<Option<String>> = vec![None; NAMES.len() + 1];
        for (name, value) in set {
            let at = NAMES.iter().position(|n| n == name).unwrap_or(NAMES.len());
            values[at] = Some((*value).to_owned());
        }
        values
    }

    fn refused(set: &[(&str, &str)]) -> String {
        match parse(&raw(set)) {
            Ok(_) => panic!("{set:?} was accepted"),
            Err(reason) => reason,
        }
    }

    const KEYS: (&str, &str) = ("ORDERGATE_API_KEYS", "acme:tok-1,globex:tok-2");

    #[test]
    fn keys_alone_give_the_defaults_of_the_server() {
        let config = parse(&raw(&[KEYS])).expect("config");
        assert!(matches!(config.access, Access::Tokens(_)));
        assert_eq!(
            config.limits,
            Limits::new(
                settings::result_ttl(DEFAULT_RESULT_TTL).expect("default"),
                settings::lease_ttl(DEFAULT_LEASE_TTL).expect("default"),
            )
        );
        assert_eq!(config.max_body, DEFAULT_MAX_BODY);
        assert_eq!(config.legacy_tenant, None);
    }

    #[test]
    fn no_keys_is_refused_unless_open_mode_is_asked_for() {
        assert!(refused(&[]).contains("ORDERGATE_API_KEYS"));
        assert!(refused(&[("ORDERGATE_API_KEYS", "  ")]).contains("no API keys"));
        let open = parse(&raw(&[("ORDERGATE_OPEN_MODE", "allow")])).expect("open");
        assert!(matches!(open.access, Access::Open));
        assert!(refused(&[("ORDERGATE_OPEN_MODE", "yes")]).contains("no API keys"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("ORDERGATE_API_KEYS", "no-colon"),
            ("ORDERGATE_RESULT_TTL", "0s"),
            ("ORDERGATE_LEASE_TTL", "ten seconds"),
            ("ORDERGATE_MAX_BODY", "-1"),
            ("ORDERGATE_SHARDS", "0"),
        ] {
            let set = [KEYS, (name, value)];
            let set = if name == "ORDERGATE_API_KEYS" {
                &set[1..]
            } else {
                &set[..]
            };
            assert!(
                refused(set).contains(name),
                "{name}={value}: {}",
                refused(set)
            );
        }
        let longer = refused(&[
            KEYS,
            ("ORDERGATE_LEASE_TTL", "1h"),
            ("ORDERGATE_RESULT_TTL", "10m"),
        ]);
        assert!(longer.contains("ORDERGATE_LEASE_TTL"), "{longer}");
    }

    #[test]
    fn a_migration_needs_both_its_tenant_and_its_namespace() {
        let tenant = ("ORDERGATE_LEGACY_TENANT", " acme ");
        let bound = ("LEGACY_ORDERS", BOUND);
        let both = parse(&raw(&[KEYS, tenant, bound])).expect("config");
        assert_eq!(both.legacy_tenant.as_deref(), Some("acme"));
        assert!(refused(&[KEYS, tenant]).contains("no KV namespace"));
        assert!(refused(&[KEYS, bound]).contains("ORDERGATE_LEGACY_TENANT is not"));
    }
}
