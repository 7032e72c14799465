//! The command line: `ordergate serve`, every flag with the environment variable of
//! the contract.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::ApiKey;

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

    /// How long a key's record (and its replay) lives after the order was accepted.
    #[arg(long, env = "ORDERGATE_RESULT_TTL", default_value = "24h", value_parser = positive_duration)]
    pub result_ttl: Duration,

    /// How long an unfinished request may hold its key before it is abandoned.
    #[arg(long, env = "ORDERGATE_LEASE_TTL", default_value = "30s", value_parser = positive_duration)]
    pub lease_ttl: Duration,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ORDERGATE_MAX_BODY", default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body: u64,

    /// How long in-flight requests may run on after SIGTERM or Ctrl-C.
    #[arg(long, env = "ORDERGATE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
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

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<postgres url>".into();
    };
    match rest.split_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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
        let pg: DatabaseUrl = "postgres://u:pw@h/db".parse().expect("url");
        assert!(!format!("{pg:?}").contains("pw"));
    }
}
