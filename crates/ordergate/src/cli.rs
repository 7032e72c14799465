//! The command line: `ordergate serve`, every flag with the environment variable of
//! the contract.

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
use crate::store::DatabaseUrl;

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
    Bench(ordergate_bench::BenchArgs),
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

    /// Pre-trade controls: a TOML file of limits per tenant (halt, symbols, quantity,
    /// notional, orders a second); re-read on SIGHUP. Without it there are none.
    #[arg(long, env = "ORDERGATE_LIMITS_FILE")]
    pub limits_file: Option<PathBuf>,

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_are_bounded() {
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
    }
}
