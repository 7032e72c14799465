//! The command line: `ordergate serve`, every flag with the environment variable of
//! the contract.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ordergate_core::settings::{
    MAX_BODY_LIMIT, check_lease_within_result, deliver_max_age, lease_ttl, result_ttl,
    shutdown_timeout,
};

use crate::auth::ApiKey;
use crate::delivery::{Target, WebhookKey};

#[derive(Debug, Parser)]
#[command(
    name = "ordergate",
    version,
    about = "Idempotent, durable order intake over HTTP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Load a running gateway and check that every key placed at most one order.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ORDERGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// sqlite://PATH (embedded, one process) or postgres://user@host/db.
    #[arg(
        long,
        env = "ORDERGATE_DATABASE",
        default_value = "sqlite://ordergate.db"
    )]
    pub database: DatabaseUrl,

    /// TENANT:TOKEN; repeatable. Without any key (and no key file) the server runs in
    /// open mode, on loopback only.
    #[arg(
        long = "api-key",
        env = "ORDERGATE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKey>,

    /// File with one TENANT:TOKEN a line (`#` comments); re-read on SIGHUP.
    #[arg(long, env = "ORDERGATE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// How long a key's record (and its replay) lives after the order was accepted:
    /// from 1s to 365d, and longer than --lease-ttl. Durations: 500ms, 30s, 5m, 24h,
    /// 7d, "1h 30m".
    #[arg(long, env = "ORDERGATE_RESULT_TTL", default_value = "24h", value_parser = result_ttl)]
    pub result_ttl: Duration,

    /// How long an unfinished request may hold its key before it is abandoned: from
    /// 100ms to 1h.
    #[arg(long, env = "ORDERGATE_LEASE_TTL", default_value = "30s", value_parser = lease_ttl)]
    pub lease_ttl: Duration,

    /// Largest accepted request body, in bytes: from 1 to 1048576 (1 MiB).
    #[arg(long, env = "ORDERGATE_MAX_BODY", default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..=MAX_BODY_LIMIT))]
    pub max_body: u64,

    /// Where accepted orders are delivered: nats://HOST:PORT/SUBJECT (JetStream) or
    /// http(s)://… (a signed webhook). Without it nothing is recorded for delivery.
    #[arg(long, env = "ORDERGATE_DELIVER")]
    pub deliver: Option<Target>,

    /// The webhook's signing secret, whsec_<base64>; required for a webhook.
    #[arg(long, env = "ORDERGATE_DELIVER_SECRET", hide_env_values = true)]
    pub deliver_secret: Option<WebhookKey>,

    /// How long a delivery is retried before it is given up as failed: 1s to 365d.
    #[arg(long, env = "ORDERGATE_DELIVER_MAX_AGE", default_value = "72h", value_parser = deliver_max_age)]
    pub deliver_max_age: Duration,

    /// How long in-flight requests may run on after SIGTERM or Ctrl-C: from 0s to 1h.
    #[arg(long, env = "ORDERGATE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = shutdown_timeout)]
    pub shutdown_timeout: Duration,
}

impl ServeArgs {
    /// The rules between settings that no single flag can check.
    pub fn check(&self) -> Result<(), String> {
        if let Some(Target::Webhook(_)) = &self.deliver
            && self.deliver_secret.is_none()
        {
            return Err("a webhook (--deliver http(s)://…) needs --deliver-secret whsec_…".into());
        }
        check_lease_within_result(
            self.lease_ttl,
            self.result_ttl,
            ("--lease-ttl", "--result-ttl"),
        )
    }
}

/// Which database, from the URL scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            return sqlite_path(path).map(Self::Sqlite);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        Err("the database URL must start with sqlite:// or postgres://".into())
    }
}

/// `sqlite://` takes a file path and nothing else: an in-memory database would lose
/// every acknowledged order on restart, and SQLite's URI forms would name one file two
/// ways, past the one-process lock.
fn sqlite_path(path: &str) -> Result<PathBuf, String> {
    const EXAMPLE: &str = "e.g. sqlite://ordergate.db or sqlite:///var/lib/ordergate/orders.db";
    if path.is_empty() {
        return Err(format!("sqlite:// needs a file path, {EXAMPLE}"));
    }
    if path == ":memory:" || path.contains("mode=memory") {
        return Err(format!(
            "an in-memory SQLite database would lose every order on restart; give a file path, {EXAMPLE}"
        ));
    }
    if path.starts_with("file:") || path.contains('?') {
        return Err(format!(
            "sqlite:// takes a plain file path, not a SQLite URI (file:..., ?options), {EXAMPLE}"
        ));
    }
    Ok(PathBuf::from(path))
}

impl fmt::Debug for DatabaseUrl {
    /// Never prints a PostgreSQL password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// The URL with every credential the driver would read replaced: the password of
/// the user info, and every query value but those known to hold none (keys
/// percent-decoded, as the driver reads them).
fn redact_password(url: &str) -> String {
    const SAFE: [&str; 13] = [
        "user",
        "dbname",
        "host",
        "hostaddr",
        "port",
        "application_name",
        "sslmode",
        "sslrootcert",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "target_session_attrs",
        "load_balance_hosts",
    ];
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<postgres url>".into();
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut redacted = format!("{scheme}://");
    match location.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let password = if user_info.contains(':') {
                ":<redacted>"
            } else {
                ""
            };
            redacted.push_str(&format!("{user}{password}@{host}"));
        }
        None => redacted.push_str(location),
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let (key, _) = pair.split_once('=').unwrap_or((pair, ""));
                if SAFE.contains(&percent_decode(key).as_str()) {
                    pair.to_owned()
                } else {
                    format!("{key}=<redacted>")
                }
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_urls_select_the_backend() {
        assert_eq!(
            "sqlite://ordergate.db".parse(),
            Ok(DatabaseUrl::Sqlite("ordergate.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/ordergate/orders.db".parse(),
            Ok(DatabaseUrl::Sqlite("/var/lib/ordergate/orders.db".into()))
        );
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
        for refused in [
            "sqlite://",
            "sqlite://:memory:",
            "sqlite://file:orders.db?mode=memory&cache=shared",
            "sqlite://file:u.db",
            "sqlite://u.db?mode=rwc",
        ] {
            assert!(refused.parse::<DatabaseUrl>().is_err(), "{refused}");
        }
        for (value, parsed) in [
            ("300000000000years", result_ttl("300000000000years")),
            ("300000years", result_ttl("300000years")),
            ("0s", result_ttl("0s")),
            ("1ns", lease_ttl("1ns")),
            ("2h", lease_ttl("2h")),
            ("ten seconds", lease_ttl("ten seconds")),
        ] {
            assert!(parsed.is_err(), "{value}");
        }
        assert_eq!(lease_ttl("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(result_ttl("365d"), Ok(Duration::from_secs(86_400 * 365)));
        for url in [
            "postgres://u:s3cr3t@h/db",
            "postgresql://u:s3cr3t@h1,h2:5433/db",
            "postgres://u:p%40s3cr3t@h/db",
            "postgres://u@h/db?password=s3cr3t",
            "postgres://u@h/db?sslmode=require&password=s3cr3t",
            "postgres://u@h/db?pass%77ord=s3cr3t",
            "postgres://h/db?user=u&password=s3cr3t&application_name=x",
        ] {
            let pg: DatabaseUrl = url.parse().expect("url");
            let shown = format!("{pg:?}");
            assert!(!shown.contains("s3cr3t"), "{url} shows {shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let plain: DatabaseUrl = "postgres://u@h/db?sslmode=require".parse().expect("url");
        assert_eq!(format!("{plain:?}"), "postgres://u@h/db?sslmode=require");
    }
}
