//! Logs (tracing, filtered by `RUST_LOG`) and Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::io::IsTerminal;
use std::sync::atomic::AtomicU64;

use tracing_subscriber::EnvFilter;

use crate::store::StoreError;

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Logs a store failure with its whole cause chain (the driver's message, SQLSTATE,
/// the OS error), at a level that says how surprising it is.
pub fn log_store_error(e: &StoreError, doing: &str) {
    let error = cause_chain(e);
    match e {
        StoreError::LeaseExpired => tracing::warn!(%error, "{doing} failed"),
        StoreError::Closed => tracing::info!(%error, "{doing} failed"),
        StoreError::Unavailable(_) | StoreError::Invariant(_) => {
            tracing::error!(%error, "{doing} failed")
        }
    }
}

/// An error and its sources, joined with ": ".
pub fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// A fatal error for the terminal: one line per cause, no backtrace, and no cause
/// that only repeats the line before it.
pub fn error_report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut report = format!("error: {e}\n");
    let mut previous = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.is_empty() && !previous.contains(&line) {
            report.push_str(&format!("  because: {line}\n"));
        }
        previous = line;
        source = cause.source();
    }
    report
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOutcome {
    route: &'static str,
    outcome: &'static str,
}

/// The server's metrics, in a registry of its own (several servers can share a
/// process in tests).
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteOutcome, Counter>,
    latency: Family<RouteOutcome, Histogram>,
    store_errors: Family<Kind, Counter>,
    in_flight_waits: Counter,
    delivery_attempts: Family<Result_, Counter>,
    deliveries_pending: Gauge,
    delivery_lag: Gauge<f64, AtomicU64>,
    fix_session_up: Gauge,
    fix_sequence_errors: Counter,
    fix_resent: Family<Kind, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Result_ {
    result: &'static str,
}

/// The `result` labels of `delivery_attempts`.
const DELIVERY_RESULTS: [&str; 3] = ["delivered", "retry", "failed"];

fn latency_histogram() -> Histogram {
    // 100 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ordergate");
        let requests = Family::<RouteOutcome, Counter>::default();
        let latency =
            Family::<RouteOutcome, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let store_errors = Family::<Kind, Counter>::default();
        for kind in StoreError::KINDS {
            let _ = store_errors.get_or_create(&Kind { kind });
        }
        let in_flight_waits = Counter::default();
        let delivery_attempts = Family::<Result_, Counter>::default();
        // Every result from the start, so that an alert on `failed` sees it rise from 0.
        for result in DELIVERY_RESULTS {
            let _ = delivery_attempts.get_or_create(&Result_ { result });
        }
        let deliveries_pending = Gauge::default();
        let delivery_lag = Gauge::<f64, AtomicU64>::default();
        let fix_session_up = Gauge::default();
        let fix_sequence_errors = Counter::default();
        let fix_resent = Family::<Kind, Counter>::default();
        for kind in ["poss_resend", "poss_dup"] {
            let _ = fix_resent.get_or_create(&Kind { kind });
        }
        registry.register(
            "fix_session_up",
            "1 while this gateway's FIX session is logged on, else 0",
            fix_session_up.clone(),
        );
        registry.register(
            "fix_sequence_errors",
            "Times the FIX counterparty's sequence numbers went back (or a reset went \
             backwards): the session stays down until a person resolves it",
            fix_sequence_errors.clone(),
        );
        registry.register(
            "fix_resent",
            "Orders sent over FIX again, by kind: poss_resend (97=Y, unconfirmed), poss_dup \
             (43=Y, in answer to a resend request)",
            fix_resent.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts by result: delivered, retry, failed",
            delivery_attempts.clone(),
        );
        registry.register(
            "deliveries_pending",
            "Orders accepted and not yet delivered",
            deliveries_pending.clone(),
        );
        registry.register(
            "delivery_lag_seconds",
            "Age of the oldest pending delivery: what to alert on",
            delivery_lag.clone(),
        );
        registry.register(
            "requests",
            "Requests by route and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency by route and outcome",
            latency.clone(),
        );
        registry.register(
            "store_errors",
            "Failed database operations, by kind: unavailable, lease_expired, invariant, closed",
            store_errors.clone(),
        );
        registry.register(
            "in_flight_waits",
            "Requests that waited for an in-flight request with the same key",
            in_flight_waits.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            store_errors,
            in_flight_waits,
            delivery_attempts,
            deliveries_pending,
            delivery_lag,
            fix_session_up,
            fix_sequence_errors,
            fix_resent,
        }
    }
}

impl Metrics {
    /// Counts one finished request.
    pub fn observe(&self, route: &'static str, outcome: &'static str, seconds: f64) {
        let labels = RouteOutcome { route, outcome };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// Counts one failed store operation of the given [`StoreError::kind`].
    pub fn store_error(&self, kind: &'static str) {
        self.store_errors.get_or_create(&Kind { kind }).inc();
    }

    /// Counts one delivery attempt by its result.
    pub fn delivery_attempt(&self, result: &'static str) {
        self.delivery_attempts
            .get_or_create(&Result_ { result })
            .inc();
    }

    /// The pending deliveries and the age of the oldest, in milliseconds.
    pub fn delivery_backlog(&self, pending: i64, lag_ms: i64) {
        self.deliveries_pending.set(pending);
        self.delivery_lag.set(lag_ms as f64 / 1000.0);
    }

    /// Whether this gateway's FIX session is logged on.
    pub fn fix_session_up(&self, up: bool) {
        self.fix_session_up.set(i64::from(up));
    }

    /// Counts one time the FIX counterparty's numbers went back.
    pub fn fix_sequence_error(&self) {
        self.fix_sequence_errors.inc();
    }

    /// Counts one order sent again over FIX, flagged by `kind`.
    pub fn fix_resent(&self, kind: &'static str) {
        self.fix_resent.get_or_create(&Kind { kind }).inc();
    }

    /// Counts one request that waited for another with the same key.
    pub fn in_flight_wait(&self) {
        self.in_flight_waits.inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
