//! Delivery to the order-management system: a transactional outbox and its deliverer.
//!
//! With `--deliver`, every accepted order is marked pending in the same commit as the
//! order itself (the store folds the delivery state into the order row). The
//! [`Deliverer`] of every gateway leases due deliveries in batches (30 s leases, so a
//! gateway that dies or hangs leaves its work to the others), hands them to the
//! [`Sink`], and records what came of each: delivered only on the sink's
//! confirmation, otherwise retried with exponential backoff and jitter (about 1 s up
//! to 5 min), and given up as `failed` past `--deliver-max-age`. Delivery is at least
//! once: every message carries the order id for deduplication.

mod nats;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cli::DeliverUrl;
use crate::clock::Clock;
use crate::store::{DeliveryResult, DynStore, PendingDelivery};
use crate::telemetry::{Metrics, log_store_error};

pub use nats::JetStream;
pub use webhook::Webhook;

/// Deliveries leased and sent at once.
const BATCH: usize = 1024;
/// How long a leased delivery is this gateway's before others may take it.
const LEASE_MS: i64 = 30_000;
/// The pause when nothing is due, and after a store failure.
const IDLE_PAUSE: Duration = Duration::from_millis(100);
const STORE_FAILURE_PAUSE: Duration = Duration::from_secs(1);
/// First and longest pause between attempts of one delivery.
const FIRST_RETRY_MS: i64 = 1_000;
const LAST_RETRY_MS: i64 = 300_000;
/// The backlog gauges are refreshed at most this often.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// One message for the sink.
#[derive(Debug, Clone)]
pub struct Message {
    pub order_id: Uuid,
    pub tenant: String,
    /// `{"type":"order.accepted","sequence":…,"tenant":…,"timestamp":…,"data":{order}}`
    pub body: Vec<u8>,
}

impl Message {
    fn new(pending: &PendingDelivery, now_ms: i64) -> Self {
        let mut body = format!(
            r#"{{"type":"order.accepted","sequence":{},"tenant":{},"timestamp":"{}","data":"#,
            pending.sequence,
            serde_json::Value::from(pending.tenant.as_str()),
            ordergate_core::order::format_timestamp(now_ms),
        )
        .into_bytes();
        body.extend_from_slice(&pending.body);
        body.push(b'}');
        Self {
            order_id: pending.order_id,
            tenant: pending.tenant.clone(),
            body,
        }
    }
}

/// Where delivered orders go. A sink confirms each message or says why not; a third
/// kind (Kafka, AMQP) is one more implementation.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Sends the batch; one result per message, in order. `Ok` only once the sink
    /// has confirmed the message.
    async fn send(&self, batch: &[Message]) -> Vec<Result<(), String>>;
}

/// Checks a webhook secret's form (`whsec_<base64>`).
pub fn webhook_secret_ok(secret: &str) -> Result<(), String> {
    webhook::secret_key(secret)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// The sink of a `--deliver` URL.
pub fn sink_for(url: &DeliverUrl, secret: Option<&str>) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match url {
        DeliverUrl::Nats { server, subject } => Arc::new(JetStream::new(server, subject)),
        DeliverUrl::Webhook(endpoint) => {
            let secret =
                secret.ok_or_else(|| anyhow::anyhow!("a webhook needs --deliver-secret"))?;
            Arc::new(Webhook::new(endpoint, secret)?)
        }
    })
}

/// The background deliverer of one gateway.
pub struct Deliverer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Deliverer {
    pub fn spawn(
        store: DynStore,
        sink: Arc<dyn Sink>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        max_age: Duration,
    ) -> Self {
        let stop = CancellationToken::new();
        let work = Work {
            store,
            sink,
            clock,
            metrics,
            max_age_ms: crate::clock::millis(max_age),
            stop: stop.clone(),
        };
        Self {
            stop,
            task: tokio::spawn(work.run()),
        }
    }

    /// Stops taking deliveries. A batch being sent is abandoned: nothing of it is
    /// marked delivered, and it is due again at once (or when its lease runs out).
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the deliverer failed");
        }
    }
}

struct Work {
    store: DynStore,
    sink: Arc<dyn Sink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    max_age_ms: i64,
    stop: CancellationToken,
}

impl Work {
    async fn run(self) {
        let mut backlog_at = tokio::time::Instant::now();
        while !self.stop.is_cancelled() {
            if backlog_at.elapsed() >= BACKLOG_EVERY {
                self.refresh_backlog().await;
                backlog_at = tokio::time::Instant::now();
            }
            let pause = match self.pass().await {
                Ok(sent) if sent == BATCH => continue,
                Ok(_) => IDLE_PAUSE,
                Err(()) => STORE_FAILURE_PAUSE,
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.stop.cancelled() => {}
            }
        }
    }

    /// Leases, sends and records one batch; how many were sent.
    async fn pass(&self) -> Result<usize, ()> {
        let now_ms = self.clock.now_ms();
        let leased = self
            .store
            .lease_deliveries(BATCH, now_ms, now_ms.saturating_add(LEASE_MS))
            .await
            .map_err(|e| self.store_failed(&e, "leasing deliveries"))?;
        if leased.is_empty() {
            return Ok(0);
        }
        let messages: Vec<Message> = leased.iter().map(|p| Message::new(p, now_ms)).collect();
        let sent = tokio::select! {
            sent = self.sink.send(&messages) => sent,
            () = self.stop.cancelled() => {
                self.release(&leased).await;
                return Ok(0);
            }
        };
        let done_ms = self.clock.now_ms();
        let results: Vec<DeliveryResult> = leased
            .iter()
            .zip(sent)
            .map(|(pending, sent)| self.judge(pending, sent, done_ms))
            .collect();
        self.store
            .record_deliveries(results)
            .await
            .map_err(|e| self.store_failed(&e, "recording deliveries"))?;
        Ok(leased.len())
    }

    fn judge(
        &self,
        pending: &PendingDelivery,
        sent: Result<(), String>,
        now_ms: i64,
    ) -> DeliveryResult {
        let order_id = pending.order_id;
        let result = match sent {
            Ok(()) => DeliveryResult::Delivered {
                order_id,
                sequence: pending.sequence,
                at_ms: now_ms,
            },
            Err(error) if now_ms.saturating_sub(pending.accepted_at_ms) >= self.max_age_ms => {
                tracing::error!(%order_id, %error, attempts = pending.attempts + 1, "delivery given up: past --deliver-max-age");
                DeliveryResult::Failed { order_id, error }
            }
            Err(error) => {
                tracing::warn!(%order_id, %error, attempts = pending.attempts + 1, "delivery failed; will retry");
                DeliveryResult::Retry {
                    order_id,
                    error,
                    next_at_ms: now_ms.saturating_add(backoff_ms(pending.attempts + 1)),
                }
            }
        };
        self.metrics.delivery_attempt(match result {
            DeliveryResult::Delivered { .. } => "delivered",
            DeliveryResult::Retry { .. } => "retry",
            DeliveryResult::Failed { .. } => "failed",
        });
        result
    }

    /// Gives a batch abandoned at shutdown back at once, as an attempt that failed:
    /// the next gateway (or the next start) sends it without waiting for the lease.
    /// If the store cannot take it, the lease runs out all the same.
    async fn release(&self, leased: &[PendingDelivery]) {
        let now_ms = self.clock.now_ms();
        let results = leased
            .iter()
            .map(|pending| DeliveryResult::Retry {
                order_id: pending.order_id,
                error: "abandoned at shutdown before the sink confirmed it".into(),
                next_at_ms: now_ms,
            })
            .collect();
        if let Err(e) = self.store.record_deliveries(results).await {
            self.store_failed(&e, "releasing deliveries at shutdown");
        }
    }

    async fn refresh_backlog(&self) {
        match self.store.delivery_backlog().await {
            Ok(backlog) => {
                let lag_ms = backlog.oldest_accepted_at_ms.map_or(0, |oldest| {
                    self.clock.now_ms().saturating_sub(oldest).max(0)
                });
                self.metrics.delivery_backlog(backlog.pending, lag_ms);
            }
            Err(e) => self.store_failed(&e, "reading the delivery backlog"),
        }
    }

    fn store_failed(&self, e: &crate::store::StoreError, doing: &str) {
        self.metrics.store_error(e.kind());
        log_store_error(e, doing);
    }
}

/// The pause before attempt `attempt + 1`: 1 s doubling to 5 min, less a random
/// fraction of up to half, so that retries of one outage spread out.
fn backoff_ms(attempt: i64) -> i64 {
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let full = FIRST_RETRY_MS
        .saturating_mul(1_i64 << doublings)
        .min(LAST_RETRY_MS);
    full - fastrand::i64(0..=full / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_about_a_second_to_five_minutes() {
        for _ in 0..100 {
            assert!((500..=1_000).contains(&backoff_ms(1)));
            assert!((1_000..=2_000).contains(&backoff_ms(2)));
            assert!((150_000..=300_000).contains(&backoff_ms(12)));
            assert!((150_000..=300_000).contains(&backoff_ms(1_000)));
        }
    }

    #[test]
    fn a_message_wraps_the_order_json_with_its_sequence_and_tenant() {
        let pending = PendingDelivery {
            order_id: Uuid::nil(),
            sequence: 42,
            tenant: "acme".into(),
            body: br#"{"orderId":"x","status":"accepted"}"#.to_vec(),
            accepted_at_ms: 0,
            attempts: 0,
        };
        let message = Message::new(&pending, 12);
        let json: serde_json::Value = serde_json::from_slice(&message.body).expect("JSON");
        assert_eq!(json["type"], "order.accepted");
        assert_eq!(json["sequence"], 42);
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["timestamp"], "1970-01-01T00:00:00.012Z");
        assert_eq!(json["data"]["orderId"], "x");
    }
}
