//! The Worker's settings: the secret `ORDERGATE_API_KEYS` and the variables
//! `ORDERGATE_RESULT_TTL`, `ORDERGATE_LEASE_TTL`, `ORDERGATE_MAX_BODY`,
//! `ORDERGATE_OPEN_MODE`, `ORDERGATE_SHARDS`, `ORDERGATE_PREVIOUS_SHARDS`,
//! `ORDERGATE_SHARDS_CHANGED_AT`, `ORDERGATE_LEGACY_TENANT`, `ORDERGATE_LIMITS` (the
//! limits file's TOML), `ORDERGATE_DELIVER` and `ORDERGATE_DELIVER_MAX_AGE` with the
//! secret `ORDERGATE_DELIVER_SECRET`, and whether the old worker's namespace is bound.
//! Parsed and bounded by `ordergate_core::settings`, as the server's flags are, once
//! per isolate: an isolate runs one version of the Worker, whose settings it keeps.

use std::cell::OnceCell;
use std::rc::Rc;

use ordergate_core::delivery::webhook_key;
use ordergate_core::settings::{
    self, DEFAULT_DELIVER_MAX_AGE, DEFAULT_LEASE_TTL, DEFAULT_MAX_BODY, DEFAULT_RESULT_TTL,
};
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
    /// The webhook of `ORDERGATE_DELIVER`, when orders are delivered.
    pub delivery: Option<Webhook>,
}

/// Where accepted orders are delivered, and how.
pub struct Webhook {
    /// An `https://` (or, for local runs, `http://`) URL.
    pub url: String,
    /// The signing key of `ORDERGATE_DELIVER_SECRET`.
    pub key: Vec<u8>,
    /// A delivery still failing this long after its order was accepted is failed.
    pub max_age_ms: i64,
}

/// Why order requests are answered 503: logged, never shown to clients.
pub type ConfigError = String;

/// The settings, or why there are none.
pub type Loaded = Rc<Result<Config, ConfigError>>;

thread_local! {
    /// The settings as first read: the token table and the limits are worth building
    /// once, and they cannot change under a running isolate.
    static CACHE: OnceCell<Loaded> = const { OnceCell::new() };
}

const NAMES: [&str; 13] = [
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
    "ORDERGATE_DELIVER",
    "ORDERGATE_DELIVER_SECRET",
    "ORDERGATE_DELIVER_MAX_AGE",
];

/// Where "the legacy namespace is bound" stands in the raw values, after the names.
const LEGACY_BOUND: usize = NAMES.len();

/// Stands in the raw values for "the legacy namespace is bound".
const BOUND: &str = "bound";

/// The settings of `env`, read on the isolate's first call.
pub fn load(env: &Env) -> Loaded {
    CACHE.with(|cache| cache.get_or_init(|| read(env)).clone())
}

fn read(env: &Env) -> Loaded {
    let mut raw: Vec<Option<String>> = NAMES
        .iter()
        .map(|name| env.var(name).ok().map(|v| v.to_string()))
        .collect();
    raw.push(env.kv(LEGACY_BINDING).is_ok().then(|| BOUND.to_owned()));
    let config = Rc::new(parse(&raw));
    if let Err(reason) = config.as_ref() {
        worker::console_error!("ordergate-edge cannot serve orders: {reason}");
    }
    config
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
    let legacy_tenant = legacy_tenant(value(6), value(LEGACY_BOUND).is_some())?;
    let pretrade = value(9).map(|text| pretrade(&text)).transpose()?;
    let delivery = value(10)
        .map(|url| webhook(&url, value(11), value(12)))
        .transpose()?;
    Ok(Config {
        access,
        limits: Limits::new(result_ttl, lease_ttl),
        max_body,
        layout,
        legacy_tenant,
        pretrade,
        delivery,
    })
}

/// The webhook of `ORDERGATE_DELIVER`: it needs its secret, and a URL of the web.
fn webhook(
    url: &str,
    secret: Option<String>,
    max_age: Option<String>,
) -> Result<Webhook, ConfigError> {
    let url = url.trim();
    let scheme = worker::Url::parse(url)
        .map(|u| u.scheme().to_owned())
        .map_err(|e| format!("ORDERGATE_DELIVER: {e}"))?;
    if !matches!(scheme.as_str(), "https" | "http") {
        return Err(format!(
            "ORDERGATE_DELIVER: the edge delivers to an https:// (or, locally, http://) \
             webhook, not {scheme}://"
        ));
    }
    let secret = secret.ok_or(
        "ORDERGATE_DELIVER is set but the secret ORDERGATE_DELIVER_SECRET (whsec_…) is not",
    )?;
    let key = webhook_key(secret.trim()).map_err(|e| format!("ORDERGATE_DELIVER_SECRET: {e}"))?;
    let max_age = settings::deliver_max_age(&max_age.unwrap_or(DEFAULT_DELIVER_MAX_AGE.into()))
        .map_err(|e| format!("ORDERGATE_DELIVER_MAX_AGE: {e}"))?;
    Ok(Webhook {
        url: url.to_owned(),
        key,
        max_age_ms: settings::millis(max_age),
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
    fn delivery_needs_a_web_url_and_its_secret() {
        let url = ("ORDERGATE_DELIVER", "https://oms.example/hook");
        let secret = (
            "ORDERGATE_DELIVER_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        let config = parse(&raw(&[KEYS, url, secret])).expect("config");
        let webhook = config.delivery.expect("a webhook");
        assert_eq!(webhook.url, "https://oms.example/hook");
        assert_eq!(webhook.max_age_ms, 72 * 3_600_000, "72h by default");
        let short = parse(&raw(&[
            KEYS,
            url,
            secret,
            ("ORDERGATE_DELIVER_MAX_AGE", "2s"),
        ]));
        assert_eq!(
            short.expect("config").delivery.expect("webhook").max_age_ms,
            2_000
        );
        assert!(refused(&[KEYS, url]).contains("ORDERGATE_DELIVER_SECRET"));
        assert!(
            refused(&[KEYS, url, ("ORDERGATE_DELIVER_SECRET", "plain")])
                .contains("ORDERGATE_DELIVER_SECRET")
        );
        let nats = ("ORDERGATE_DELIVER", "nats://127.0.0.1:4222/orders");
        assert!(refused(&[KEYS, nats, secret]).contains("not nats://"));
        assert!(
            refused(&[KEYS, ("ORDERGATE_DELIVER", "not a url"), secret])
                .contains("ORDERGATE_DELIVER")
        );
        let zero = ("ORDERGATE_DELIVER_MAX_AGE", "0s");
        assert!(refused(&[KEYS, url, secret, zero]).contains("ORDERGATE_DELIVER_MAX_AGE"));
        assert!(parse(&raw(&[KEYS])).expect("config").delivery.is_none());
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
