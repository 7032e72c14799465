//! `ordergate bench`'s flags.

use std::time::Duration;

use clap::Args;

use crate::Scenario;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of the gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token (none in open mode).
    #[arg(long, env = "ORDERGATE_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Concurrent keep-alive connections (1 to 10000).
    #[arg(long, default_value_t = 32, value_parser = connections)]
    pub connections: usize,
    /// How long to send load.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[arg(long, value_enum, default_value_t = Scenario::New)]
    pub scenario: Scenario,
    /// Total requests per second to aim for; unlimited if absent.
    #[arg(long)]
    pub rate: Option<u32>,
    /// How long a client waits for an answer before it gives up and retries.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The target cannot be asked which order a key placed (the old worker has no
    /// lookup): count only the keys whose answers named two or more orders.
    #[arg(long)]
    pub no_lookup: bool,
}

fn connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 10000".into()),
    }
}
