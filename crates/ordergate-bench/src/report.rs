//! Counting answers and latencies, the live progress line, and the final report.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::Scenario;
use crate::verify::Verdict;

/// What all connections share while running: a request count for the progress line.
#[derive(Default)]
pub struct Tally {
    requests: AtomicU64,
}

impl Tally {
    pub fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// One connection's own counts, merged at the end (no locks on the hot path).
pub struct Local {
    latency_us: Histogram<u64>,
    answers: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub errors: u64,
    first_error: Option<String>,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            // 1 µs to 60 s at 3 significant digits: constant, valid bounds.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("constant histogram bounds are valid"),
            answers: BTreeMap::new(),
            timeouts: 0,
            errors: 0,
            first_error: None,
        }
    }
}

impl Local {
    pub fn record(&mut self, status: u16, replay: bool, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(us);
        let label = match (status, replay) {
            (201, false) => "201 created".to_owned(),
            (201, true) => "201 replayed".to_owned(),
            (409, _) => "409 in_progress".to_owned(),
            (503, _) => "503 unavailable".to_owned(),
            (status, _) => status.to_string(),
        };
        *self.answers.entry(label).or_default() += 1;
    }

    /// Keeps the first failure seen (an answer other than 201, 409 or 503, or a
    /// transport error), to show when nothing could be verified.
    pub fn note_first_error(&mut self, describe: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(describe());
        }
    }

    pub fn merge(&mut self, other: Local) {
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        let _ = self.latency_us.add(&other.latency_us);
        for (label, n) in other.answers {
            *self.answers.entry(label).or_default() += n;
        }
        self.timeouts += other.timeouts;
        self.errors += other.errors;
    }

    pub fn report(
        &self,
        scenario: Scenario,
        connections: usize,
        elapsed: Duration,
        verdict: Verdict,
    ) -> Report {
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1000.0;
        let answered: u64 = self.answers.values().sum();
        Report {
            scenario: format!("{scenario:?}").to_lowercase(),
            connections,
            seconds: elapsed.as_secs_f64(),
            answered,
            requests_per_second: answered as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: Latency {
                p50: ms(0.50),
                p90: ms(0.90),
                p99: ms(0.99),
                p99_9: ms(0.999),
                max: self.latency_us.max() as f64 / 1000.0,
            },
            answers: self.answers.clone(),
            timeouts: self.timeouts,
            errors: self.errors,
            first_error: self.first_error.clone(),
            keys_checked: verdict.keys_checked,
            violations: verdict.violations,
            duplicate_orders: verdict.duplicate_orders,
            most_orders_for_one_key: verdict.most_orders_for_one_key,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// The outcome of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub connections: usize,
    pub seconds: f64,
    pub answered: u64,
    pub requests_per_second: f64,
    pub latency_ms: Latency,
    pub answers: BTreeMap<String, u64>,
    pub timeouts: u64,
    pub errors: u64,
    /// The first answer other than 201, 409 or 503, or the first transport error.
    pub first_error: Option<String>,
    pub keys_checked: usize,
    /// Keys with two orders, or whose order on the server differs from the client's.
    pub violations: usize,
    /// Orders beyond the first that the answers for one key named, over all keys.
    pub duplicate_orders: usize,
    pub most_orders_for_one_key: usize,
}

impl Report {
    pub fn print_text(&self) {
        let l = &self.latency_ms;
        println!(
            "scenario:     {} ({} connections, {:.1} s)",
            self.scenario, self.connections, self.seconds
        );
        println!(
            "answers:      {} ({:.0} req/s)",
            self.answered, self.requests_per_second
        );
        println!(
            "latency ms:   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        );
        for (label, n) in &self.answers {
            println!("  {label:<16} {n}");
        }
        println!(
            "timeouts:     {} (retried with the same key)",
            self.timeouts
        );
        println!("errors:       {}", self.errors);
        if let Some(first) = &self.first_error {
            println!("first error:  {first}");
        }
        println!(
            "keys checked: {} against GET /orders?idempotencyKey=",
            self.keys_checked
        );
        if self.scenario == "race" {
            println!(
                "              (one per key that got an order; \"201 created\" counts only the\n               \
                 answers that placed an order and reached their client: a client that gave\n               \
                 up early learns its key's order later, as a replay)"
            );
        }
        println!("violations:   {}", self.violations);
        if self.duplicate_orders > 0 {
            println!(
                "duplicates:   {} orders beyond the first, at most {} for one key",
                self.duplicate_orders, self.most_orders_for_one_key
            );
        }
    }
}

/// The live progress line on stderr, once a second.
pub struct Progress {
    running: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(tally: Arc<Tally>, visible: bool) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let task = visible.then(|| {
            let running = running.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut last = 0;
                while running.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let now = tally.requests.load(Ordering::Relaxed);
                    eprint!(
                        "\r[{:>4.0}s] {now} requests, {} req/s   ",
                        started.elapsed().as_secs_f64(),
                        now - last
                    );
                    let _ = std::io::stderr().flush();
                    last = now;
                }
            })
        });
        Self { running, task }
    }

    pub async fn stop(mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
            eprintln!();
        }
    }
}
