//! `ordergate bench`: a load generator that also checks the promise.
//!
//! In the spirit of pgbench and redis-benchmark: N keep-alive HTTP/1.1 connections
//! send `POST /orders` for a while (closed loop, or paced with `--rate`), latencies go
//! into an HdrHistogram, and answers are counted by status and outcome. Whatever the
//! scenario, every key's answers must name one order, and afterwards the server is
//! asked (`GET /orders?idempotencyKey=K`) which order each key placed: any key with
//! two orders, or a server answer that differs from the client's, is a violation.

mod args;
mod client;
mod report;
mod scenario;
mod verify;

use std::sync::Arc;
use std::time::Instant;

pub use args::BenchArgs;
pub use report::Report;
pub use scenario::Scenario;

use self::client::Client;
use self::report::{Local, Progress, Tally};
use self::scenario::Keys;

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
