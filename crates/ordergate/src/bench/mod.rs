//! `ordergate bench`: a load generator that also checks the promise.
//!
//! In the spirit of pgbench and redis-benchmark: N keep-alive HTTP/1.1 connections
//! send `POST /orders` for a while (closed loop, or paced with `--rate`), latencies go
//! into an HdrHistogram, and answers are counted by status and outcome. Whatever the
//! scenario, every key's answers must name one order, and afterwards the server is
//! asked (`GET /orders?idempotencyKey=K`) which order each key placed: any key with
//! two orders, or a server answer that differs from the client's, is a violation.

mod client;
mod report;
mod scenario;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

pub use report::Report;

use self::client::Client;
use self::report::{Local, Progress, Tally};
use self::scenario::Keys;

/// What the load looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every request a new order under a fresh key.
    New,
    /// Retries of orders already placed (the replay path).
    Replay,
    /// All connections submit the same keys at once, some clients give up early and
    /// retry with the same key: the case that makes duplicates on a weak store.
    Race,
    /// Mostly new orders, some retries of recent ones.
    Mixed,
}

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

/// Runs the benchmark and the check; the report says how many violations were found.
pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let target = client::Target::parse(&args.url, args.token.clone())?;
    let keys = Arc::new(Keys::new(args.scenario));
    if args.scenario == Scenario::Replay {
        keys.prepare_replays(&target).await?;
    }
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = tokio::time::Instant::now() + args.duration;
    let progress = Progress::start(tally.clone(), !args.json);
    let per_connection_rate = args
        .rate
        .map(|r| f64::from(r) / args.connections.max(1) as f64);
    let workers: Vec<_> = (0..args.connections)
        .map(|id| {
            let (target, keys, tally) = (target.clone(), keys.clone(), tally.clone());
            let timeout = args.timeout;
            tokio::spawn(async move {
                let mut client = Client::new(target, timeout);
                scenario::drive(&mut client, id, &keys, &tally, until, per_connection_rate).await
            })
        })
        .collect();
    let mut total = Local::default();
    for worker in workers {
        total.merge(worker.await?);
    }
    let elapsed = started.elapsed();
    progress.stop().await;
    let verdict = verify::check(&target, &keys, args.connections, !args.no_lookup).await?;
    Ok(total.report(args.scenario, args.connections, elapsed, verdict))
}
