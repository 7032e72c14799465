//! A webhook receiver for benchmarks: it verifies every Standard Webhooks signature
//! (answering 400 to a bad one, 204 otherwise), counts each order once, and measures
//! the delivery lag (arrival less the order's `acceptedAt`). `GET /stats` answers
//! `{"requests":…,"orders":…,"bad_signatures":…,"lag_ms":{"p50":…,"p99":…,"max":…}}`.
//!
//! With a third argument `P:MS`, P percent of the requests (every (100/P)th) wait MS
//! milliseconds before they are answered, as a receiver with a slow dependency would.
//!
//! Run: `cargo run --release --example webhook_receiver -- 127.0.0.1:18195 whsec_… [1:10000]`

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use ordergate_core::delivery::{webhook_key, webhook_signature};

#[derive(Default)]
struct Seen {
    requests: u64,
    bad_signatures: u64,
    orders: HashSet<String>,
    lags_ms: Vec<i64>,
}

struct Receiver {
    key: Vec<u8>,
    seen: Mutex<Seen>,
    /// Every `slow_every`th request waits `slow_for` first.
    slow_every: u64,
    slow_for: std::time::Duration,
    arrived: std::sync::atomic::AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18195".to_owned());
    let secret = args
        .next()
        .unwrap_or_else(|| "whsec_YmVuY2htYXJr".to_owned());
    let (slow_every, slow_ms) = match args.next() {
        Some(slow) => {
            let (percent, ms) = slow
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("the slow share is PERCENT:MS"))?;
            let percent: u64 = percent.parse()?;
            anyhow::ensure!((1..=100).contains(&percent), "PERCENT is 1 to 100");
            (100 / percent, ms.parse()?)
        }
        None => (0, 0),
    };
    let receiver = Arc::new(Receiver {
        key: webhook_key(&secret)?,
        seen: Mutex::default(),
        slow_every,
        slow_for: std::time::Duration::from_millis(slow_ms),
        arrived: std::sync::atomic::AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .route("/stats", get(stats))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let nth = receiver
        .arrived
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    if receiver.slow_every > 0 && nth % receiver.slow_every == 0 {
        tokio::time::sleep(receiver.slow_for).await;
    }
    let id = header("webhook-id");
    let timestamp: u64 = header("webhook-timestamp").parse().unwrap_or(0);
    let valid =
        header("webhook-signature") == webhook_signature(&receiver.key, id, timestamp, &body);
    let accepted_ms = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|m| m["data"]["acceptedAt"].as_str().map(str::to_owned))
        .and_then(|at| humantime::parse_rfc3339(&at).ok())
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let Ok(mut seen) = receiver.seen.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    seen.requests += 1;
    if !valid {
        seen.bad_signatures += 1;
        return StatusCode::BAD_REQUEST;
    }
    if seen.orders.insert(id.to_owned())
        && let Some(accepted_ms) = accepted_ms
    {
        seen.lags_ms.push(now_ms - accepted_ms);
    }
    StatusCode::NO_CONTENT
}

async fn stats(State(receiver): State<Arc<Receiver>>) -> String {
    let Ok(seen) = receiver.seen.lock() else {
        return "{}".to_owned();
    };
    let mut lags = seen.lags_ms.clone();
    lags.sort_unstable();
    let at = |q: f64| {
        let i = ((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1));
        lags.get(i).copied().unwrap_or(0)
    };
    serde_json::json!({
        "requests": seen.requests,
        "orders": seen.orders.len(),
        "bad_signatures": seen.bad_signatures,
        "lag_ms": {"p50": at(0.5), "p99": at(0.99), "max": lags.last().copied().unwrap_or(0)},
    })
    .to_string()
}
