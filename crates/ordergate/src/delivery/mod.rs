//! Delivery to the order-management system: a transactional outbox and its deliverer.
//!
//! With `--deliver`, every accepted order is marked pending in the same commit as the
//! order itself (the store folds the delivery state into the order row). The
//! [`Deliverer`] of every gateway leases due deliveries (30 s leases, so a gateway
//! that dies or hangs leaves its work to the others), hands them to the [`Sink`], and
//! records what came of each: delivered only on the sink's confirmation, otherwise
//! retried with exponential backoff and jitter (about 1 s up to 5 min), and given up as
//! `failed` past `--deliver-max-age`. Delivery is at least once: every message carries
//! the order id for deduplication.
//!
//! Sends flow rather than march in waves: the sink says how many messages one send
//! takes and how many sends may be in flight ([`Shape`]); a slot freed by one send is
//! filled at once from a little leased work kept ready, and outcomes are recorded as
//! they settle, one record written at a time while the sends go on (those that settled
//! meanwhile go together into the next). So a receiver request that hangs until its
//! timeout holds up only its own message, and nothing waits leased for long.

mod fix;
mod nats;
mod target;
mod webhook;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, OptionFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use ordergate_core::delivery::{self as rules, Attempted, Verdict};
use ordergate_core::settings::millis;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::store::fix::FixStore;
use crate::store::{DeliveryResult, DynOutbox, PendingDelivery, StoreError};
use crate::telemetry::{Metrics, log_store_error};

pub use fix::Fix;
pub use nats::JetStream;
pub use target::{FixTarget, Target, WebhookKey};
pub use webhook::Webhook;

/// How long a leased delivery is this gateway's before others may take it, unless
/// the sink says otherwise.
const LEASE: Duration = Duration::from_secs(30);
/// The pause when nothing is due, and after a store failure.
const IDLE_PAUSE: Duration = Duration::from_millis(100);
const STORE_FAILURE_PAUSE: Duration = Duration::from_secs(1);
/// The backlog gauges are refreshed at most this often.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// One message for the sink.
#[derive(Debug, Clone)]
pub struct Message {
    pub order_id: Uuid,
    pub tenant: String,
    /// `{"type":"order.accepted","sequence":…,"tenant":…,"timestamp":…,"data":{order}}`,
    /// for the sinks that send JSON.
    pub body: Vec<u8>,
    /// The order JSON alone, and when it was accepted, for the sinks that map it.
    pub order: Vec<u8>,
    pub accepted_at_ms: i64,
    /// Attempts before this one.
    pub attempts: i64,
}

impl Message {
    fn new(pending: &PendingDelivery, now_ms: i64, shape: Shape) -> Self {
        let (body, order) = if shape.json {
            let body =
                rules::message_body(pending.sequence, &pending.tenant, now_ms, &pending.body);
            (body, Vec::new())
        } else {
            (Vec::new(), pending.body.clone())
        };
        Self {
            order_id: pending.order_id,
            tenant: pending.tenant.clone(),
            body,
            order,
            accepted_at_ms: pending.accepted_at_ms,
            attempts: pending.attempts,
        }
    }
}

/// Where delivered orders go. A sink confirms each message or says why not; a third
/// kind (Kafka, AMQP) is one more implementation.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// How the dispatcher should feed it.
    fn shape(&self) -> Shape;

    /// How long a message handed to it stays leased: longer than a send may take.
    fn lease(&self) -> Duration {
        LEASE
    }

    /// Whether it can send now; while it cannot, nothing is leased for it (so an
    /// outage it knows of costs no attempts).
    fn ready(&self) -> bool {
        true
    }

    /// Sends the batch (at most `shape().batch` messages); one outcome per message,
    /// in order. `Confirmed` only once the sink has confirmed the message.
    async fn send(&self, batch: &[Message]) -> Vec<Sent>;
}

/// How a sink takes messages: `batch` per send, `in_flight` sends at once, and
/// whether it sends the JSON message ([`Message::body`]) or maps the order itself
/// ([`Message::order`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub batch: usize,
    pub in_flight: usize,
    pub json: bool,
}

pub use ordergate_core::delivery::Sent;

/// What a sink may need beyond its target: the webhook's key; the FIX session's
/// store, clock and metrics.
pub struct SinkParts {
    pub key: Option<WebhookKey>,
    pub fix_store: Arc<dyn FixStore>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

/// The sink of a `--deliver` target.
pub fn sink_for(target: &Target, parts: SinkParts) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match target {
        Target::Nats { server, subject } => Arc::new(JetStream::new(server, subject)),
        Target::Webhook(endpoint) => {
            let key = parts
                .key
                .ok_or_else(|| anyhow::anyhow!("a webhook needs --deliver-secret"))?;
            Arc::new(Webhook::new(endpoint, key.0)?)
        }
        Target::Fix(fix) => Arc::new(Fix::start(fix, parts.fix_store, parts.clock, parts.metrics)),
    })
}

/// The background deliverer of one gateway: a [`Dispatcher`] run on a task.
pub struct Deliverer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Deliverer {
    /// Runs the dispatcher's passes on a task until [`Deliverer::stop`].
    pub fn spawn(dispatcher: Dispatcher) -> Self {
        Self {
            stop: dispatcher.stop.clone(),
            task: tokio::spawn(dispatcher.run()),
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

/// One gateway's delivery work, a pass at a time: lease what is due, send it, record
/// what came of it. The [`Deliverer`] loops over it; a test steps it on its own clock.
pub struct Dispatcher {
    outbox: DynOutbox,
    sink: Arc<dyn Sink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    max_age_ms: i64,
    stop: CancellationToken,
    /// When the backlog gauges were last refreshed.
    backlog_at: Mutex<tokio::time::Instant>,
}

/// One pass's work: leased and not yet sent, in flight, settled and not yet recorded,
/// and the record being written.
#[derive(Default)]
struct Flow<'a> {
    queue: VecDeque<PendingDelivery>,
    flying: FuturesUnordered<BoxFuture<'a, Vec<DeliveryResult>>>,
    /// Leased, with no outcome yet: what is given back at shutdown.
    unsettled: HashSet<Uuid>,
    settled: Vec<DeliveryResult>,
    recording: Option<BoxFuture<'static, Result<(), StoreError>>>,
    sent: usize,
    /// The last lease came back short: everything due then is queued or sent.
    drained: bool,
    leased_at: Option<tokio::time::Instant>,
}

impl Flow<'_> {
    fn next_chunk(&mut self, batch: usize) -> Option<Vec<PendingDelivery>> {
        let take = batch.min(self.queue.len());
        (take > 0).then(|| self.queue.drain(..take).collect())
    }

    /// Whether a lease may be taken now. After a lease that came back short
    /// (everything due then is queued or sent), the next waits until the queue has run
    /// dry, a slot is free and [`IDLE_PAUSE`] has passed: what comes due meanwhile
    /// goes in one lease and a few sends, not in a lease and a send for every settled
    /// send (and a lease reads past the rows this gateway holds leased).
    fn lease_gate(&self, shape: Shape) -> Gate {
        let slot_free = self.flying.len() < shape.in_flight;
        match self.leased_at {
            Some(at) if self.drained && self.queue.is_empty() && slot_free => {
                Gate::OpensAt(at + IDLE_PAUSE)
            }
            Some(_) if self.drained => Gate::Closed,
            _ => Gate::Open,
        }
    }

    fn may_lease(&self, shape: Shape) -> bool {
        let open = match self.lease_gate(shape) {
            Gate::Open => true,
            Gate::OpensAt(at) => at <= tokio::time::Instant::now(),
            Gate::Closed => false,
        };
        open && self.queue.len() < shape.in_flight * shape.batch
    }

    /// Outcomes of sends that ended now, with any others that ended meanwhile.
    fn settle(&mut self, mut results: Vec<DeliveryResult>) {
        while let Some(Some(more)) = self.flying.next().now_or_never() {
            results.extend(more);
        }
        for result in &results {
            self.unsettled.remove(&result.order_id());
        }
        self.sent += results.len();
        self.settled.extend(results);
    }
}

/// What a pass waited for.
enum Event {
    Settled(Vec<DeliveryResult>),
    Recorded(Result<(), StoreError>),
    LeaseDue,
    Stopped,
}

/// Whether the next lease may be taken.
enum Gate {
    Open,
    OpensAt(tokio::time::Instant),
    Closed,
}

impl Dispatcher {
    pub fn new(
        outbox: DynOutbox,
        sink: Arc<dyn Sink>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        max_age: Duration,
    ) -> Self {
        Self {
            outbox,
            sink,
            clock,
            metrics,
            max_age_ms: millis(max_age),
            stop: CancellationToken::new(),
            backlog_at: Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn run(self) {
        while !self.stop.is_cancelled() {
            self.refresh_backlog_if_due().await;
            let pause = match self.pass().await {
                Ok(_) => IDLE_PAUSE,
                Err(_) => STORE_FAILURE_PAUSE,
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.stop.cancelled() => {}
            }
        }
    }

    /// Sends everything due, keeping the sink's slots full and recording outcomes as
    /// they settle (one record written at a time, while sends go on), until nothing is
    /// due, in flight or unrecorded; how many were sent. A store failure is logged and
    /// counted here; what was in flight then is left to its lease.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let shape = self.sink.shape();
        let mut flow = Flow::default();
        loop {
            if !self.stop.is_cancelled() && self.sink.ready() {
                self.top_up(&mut flow, shape).await?;
            }
            while flow.flying.len() < shape.in_flight
                && let Some(chunk) = flow.next_chunk(shape.batch)
            {
                flow.flying.push(Box::pin(self.send(chunk)));
            }
            if flow.recording.is_none() && !flow.settled.is_empty() {
                flow.recording = Some(self.record(std::mem::take(&mut flow.settled)));
            }
            if flow.flying.is_empty() && flow.recording.is_none() {
                return Ok(flow.sent);
            }
            let lease_at = match flow.lease_gate(shape) {
                Gate::OpensAt(at) if !self.stop.is_cancelled() => Some(at),
                _ => None,
            };
            let event = tokio::select! {
                Some(results) = flow.flying.next(), if !flow.flying.is_empty() => {
                    Event::Settled(results)
                }
                Some(()) = OptionFuture::from(lease_at.map(tokio::time::sleep_until)),
                    if lease_at.is_some() => Event::LeaseDue,
                Some(recorded) = OptionFuture::from(flow.recording.as_mut()),
                    if flow.recording.is_some() => Event::Recorded(recorded),
                () = self.stop.cancelled() => Event::Stopped,
            };
            match event {
                Event::Settled(results) => flow.settle(results),
                Event::Recorded(recorded) => {
                    flow.recording = None;
                    recorded?;
                    self.refresh_backlog_if_due().await;
                }
                Event::LeaseDue => {}
                Event::Stopped => return Ok(self.wind_down(flow).await),
            }
        }
    }

    /// Keeps enough leased to fill every slot twice over: a slot freed by one answer
    /// takes the next message at once, and nothing waits leased for long.
    async fn top_up(&self, flow: &mut Flow<'_>, shape: Shape) -> Result<(), StoreError> {
        if !flow.may_lease(shape) {
            return Ok(());
        }
        let wanted = 2 * shape.in_flight * shape.batch - flow.queue.len();
        let leased = self.lease(wanted).await?;
        flow.drained = leased.len() < wanted;
        flow.leased_at = Some(tokio::time::Instant::now());
        for pending in leased {
            flow.unsettled.insert(pending.order_id);
            flow.queue.push_back(pending);
        }
        Ok(())
    }

    /// Writes what came of some attempts; the future owns what it needs, so sends go
    /// on while it runs.
    fn record(&self, results: Vec<DeliveryResult>) -> BoxFuture<'static, Result<(), StoreError>> {
        let (outbox, metrics) = (self.outbox.clone(), self.metrics.clone());
        Box::pin(async move {
            outbox.record_deliveries(results).await.inspect_err(|e| {
                metrics.store_error(e.kind());
                log_store_error(e, "recording deliveries");
            })
        })
    }

    /// At shutdown: what settled is recorded, what did not is given back.
    async fn wind_down(&self, mut flow: Flow<'_>) -> usize {
        if let Some(recording) = flow.recording.take() {
            let _ = recording.await;
        }
        if !flow.settled.is_empty() {
            let _ = self.record(std::mem::take(&mut flow.settled)).await;
        }
        drop(flow.flying);
        self.release(flow.unsettled).await;
        flow.sent
    }

    /// Leases up to `limit` due deliveries.
    async fn lease(&self, limit: usize) -> Result<Vec<PendingDelivery>, StoreError> {
        let now_ms = self.clock.now_ms();
        self.outbox
            .lease_due(
                limit,
                now_ms,
                now_ms.saturating_add(millis(self.sink.lease())),
            )
            .await
            .inspect_err(|e| self.store_failed(e, "leasing deliveries"))
    }

    /// One send of the sink, judged.
    async fn send(&self, chunk: Vec<PendingDelivery>) -> Vec<DeliveryResult> {
        let now_ms = self.clock.now_ms();
        let shape = self.sink.shape();
        let messages: Vec<Message> = chunk
            .iter()
            .map(|p| Message::new(p, now_ms, shape))
            .collect();
        let sent = self.sink.send(&messages).await;
        let done_ms = self.clock.now_ms();
        chunk
            .iter()
            .zip(sent)
            .map(|(pending, sent)| self.judge(pending, sent, done_ms))
            .collect()
    }

    fn judge(&self, pending: &PendingDelivery, sent: Sent, now_ms: i64) -> DeliveryResult {
        let order_id = pending.order_id;
        let attempted = Attempted {
            accepted_at_ms: pending.accepted_at_ms,
            attempts: pending.attempts,
        };
        let verdict = rules::judge(attempted, sent, now_ms, self.max_age_ms, fastrand::u32(..));
        self.metrics.delivery_attempt(verdict.label());
        let attempts = pending.attempts + 1;
        match verdict {
            Verdict::Delivered { at_ms } => DeliveryResult::Delivered {
                order_id,
                sequence: pending.sequence,
                at_ms,
            },
            Verdict::Failed { error } => {
                tracing::error!(%order_id, %error, attempts, "delivery given up");
                DeliveryResult::Failed { order_id, error }
            }
            Verdict::Retry { error, next_at_ms } => {
                tracing::warn!(%order_id, %error, attempts, "delivery failed; will retry");
                DeliveryResult::Retry {
                    order_id,
                    error,
                    next_at_ms,
                }
            }
        }
    }

    /// Gives a batch abandoned at shutdown back at once, as an attempt that failed:
    /// the next gateway (or the next start) sends it without waiting for the lease.
    /// If the store cannot take it, the lease runs out all the same.
    async fn release(&self, leased: HashSet<Uuid>) {
        if leased.is_empty() {
            return;
        }
        let now_ms = self.clock.now_ms();
        let results = leased
            .into_iter()
            .map(|order_id| DeliveryResult::Retry {
                order_id,
                error: "abandoned at shutdown before the sink confirmed it".into(),
                next_at_ms: now_ms,
            })
            .collect();
        if let Err(e) = self.outbox.record_deliveries(results).await {
            self.store_failed(&e, "releasing deliveries at shutdown");
        }
    }

    async fn refresh_backlog_if_due(&self) {
        {
            let Ok(mut at) = self.backlog_at.lock() else {
                return;
            };
            if at.elapsed() < BACKLOG_EVERY {
                return;
            }
            *at = tokio::time::Instant::now();
        }
        self.refresh_backlog().await;
    }

    async fn refresh_backlog(&self) {
        match self.outbox.delivery_backlog().await {
            Ok(backlog) => {
                let lag_ms = backlog.oldest_accepted_at_ms.map_or(0, |oldest| {
                    self.clock.now_ms().saturating_sub(oldest).max(0)
                });
                self.metrics.delivery_backlog(backlog.pending, lag_ms);
            }
            Err(e) => self.store_failed(&e, "reading the delivery backlog"),
        }
    }

    fn store_failed(&self, e: &StoreError, doing: &str) {
        self.metrics.store_error(e.kind());
        log_store_error(e, doing);
    }
}
