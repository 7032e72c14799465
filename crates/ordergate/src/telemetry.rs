//! Logs (tracing, filtered by `RUST_LOG`) and Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Logs to stderr, `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
    store_errors: Counter,
}

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
        let store_errors = Counter::default();
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
            "Failed database operations",
            store_errors.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            store_errors,
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

    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
