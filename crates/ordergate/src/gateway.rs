//! The gateway: the protocol of `ordergate-core` driven against the store, the
//! in-process claims and the replay cache, on tokio.
//!
//! [`Submission`] decides every step; the loop in [`Gateway::drive`] only does what
//! a step asks (a cache look-up, a store read, a claim, a wait, a placement) and turns
//! its deadlines, milliseconds of the gateway's clock, into tokio timers. Store
//! failures are logged with their causes and counted here, once for every route.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ordergate_core::order::receipt_with_terms;
use ordergate_core::replay_cache::ReplayCache;
use ordergate_core::{
    CacheHit, Conclusion, Fact, IdempotencyKey, Limits, OrderToPlace, Outcome, Placement,
    ScopedKey, Step, Submission,
};
use tokio::time::{Instant, timeout_at};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::clock::Clock;
use crate::inflight::{Claim, InFlight, Release};
use crate::pretrade::PreTrade;
use crate::store::{Lease, NewOrder, StoreError, Stores};
use crate::telemetry::{Metrics, log_store_error};

/// How long a readiness probe waits for the database.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The settings the protocol runs with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub result_ttl: Duration,
    pub lease_ttl: Duration,
    /// Accepted orders are recorded for delivery (`--deliver` is set).
    pub deliver: bool,
}

/// Places orders and looks them up; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    stores: Stores,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    in_flight: InFlight,
    replays: Arc<ReplayCache>,
    /// Submissions running on tasks of their own, awaited before the store closes.
    submissions: TaskTracker,
    settings: Settings,
    /// The pre-trade controls, with a limits file.
    pretrade: Option<Arc<PreTrade>>,
}

impl Gateway {
    pub fn new(
        stores: Stores,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            stores,
            clock,
            metrics,
            in_flight: InFlight::default(),
            replays: Arc::default(),
            submissions: TaskTracker::new(),
            settings,
            pretrade: None,
        }
    }

    /// The same gateway, checking new orders against pre-trade limits.
    pub fn with_controls(mut self, pretrade: Arc<PreTrade>) -> Self {
        self.pretrade = Some(pretrade);
        self
    }

    /// Runs one `POST /orders` that passed the HTTP checks to its end. A store
    /// failure is logged here and answered as `Unavailable`: the caller cannot know
    /// whether the order exists.
    pub async fn submit(&self, tenant: String, key: IdempotencyKey, body: Bytes) -> Outcome {
        let limits = Limits::new(self.settings.result_ttl, self.settings.lease_ttl);
        let controls = self.pretrade.as_ref().map(|p| p.limits_for(&tenant));
        let key = ScopedKey::new(tenant, key);
        let mut submission = Submission::new(key, body, self.clock.now_ms(), limits);
        if let Some(controls) = controls {
            submission = submission.with_controls(controls);
        }
        // Most retries are answered by the cache: on this task, with no spawn.
        let step = submission.start();
        let step = match step {
            Step::LookUpCache => self.look_up_cache(&mut submission),
            other => other,
        };
        if let Step::Done(conclusion) = step {
            return self.conclude(&submission, conclusion);
        }
        // Spawned: once the body is in, a client hanging up must not cancel the
        // protocol half-way through (the task runs to its end whether or not anyone
        // listens), and tracked, so the store outlives it.
        let gateway = self.clone();
        self.submissions
            .spawn(async move { gateway.drive(submission, step).await })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "submission task failed");
                Outcome::Unavailable
            })
    }

    /// The order JSON of one of the tenant's orders.
    pub async fn lookup_by_id(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.stores.records.order_by_id(tenant, id).await;
        let found = found.map(|order| order.map(receipt_with_terms));
        self.note_failure(found, "order lookup by id")
    }

    /// The tenant's newest order placed with the key, expired or not.
    pub async fn lookup_by_key(
        &self,
        tenant: String,
        key: IdempotencyKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self
            .stores
            .records
            .order_by_key(&ScopedKey::new(tenant, key))
            .await;
        let found = found.map(|order| order.map(receipt_with_terms));
        self.note_failure(found, "order lookup by key")
    }

    /// Whether the database answers (within a second).
    pub async fn ready(&self) -> Result<(), StoreError> {
        let answered = tokio::time::timeout(READY_PROBE_TIMEOUT, self.stores.records.ping())
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable("no answer within a second")));
        self.note_failure(answered, "readiness probe")
    }

    /// The delivery of one of the tenant's orders.
    pub async fn delivery(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<Option<crate::store::DeliveryStatus>, StoreError> {
        if !self.settings.deliver {
            return Ok(None);
        }
        let found = self.stores.outbox.delivery_status(tenant, id).await;
        self.note_failure(found, "delivery lookup")
    }

    /// Deletes up to `batch` expired idempotency records; how many went.
    pub async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError> {
        let purged = self.stores.records.purge_expired(batch).await;
        self.note_failure(purged, "purge of expired records")
    }

    /// Waits for every submission to end, then closes the store. Call it once no
    /// new request can arrive.
    pub async fn close(&self) {
        self.submissions.close();
        self.submissions.wait().await;
        self.stores.records.close().await;
    }

    fn note_failure<T>(&self, result: Result<T, StoreError>, doing: &str) -> Result<T, StoreError> {
        if let Err(e) = &result {
            self.metrics.store_error(e.kind());
            log_store_error(e, doing);
        }
        result
    }
}

/// The driver loop and its steps.
impl Gateway {
    async fn drive(&self, mut submission: Submission<Bytes>, mut step: Step) -> Outcome {
        let lease_deadline = self.instant_at(submission.lease_deadline_ms());
        // Held until the conclusion is cached, so that a waiter finds it there.
        let mut _claim: Option<Claim> = None;
        let mut holder: Option<Release> = None;
        loop {
            step = match step {
                Step::Done(conclusion) => return self.conclude(&submission, conclusion),
                Step::LookUpCache => self.look_up_cache(&mut submission),
                Step::ReadRecord => {
                    let fact = self.read_record(submission.key(), lease_deadline).await;
                    submission.step(fact)
                }
                Step::Claim => match self.in_flight.claim(submission.key()) {
                    Ok(won) => {
                        _claim = Some(won);
                        submission.step(Fact::ClaimWon {
                            order_id: Uuid::now_v7(),
                            now_ms: self.clock.now_ms(),
                        })
                    }
                    Err(release) => {
                        holder = Some(release);
                        submission.step(Fact::ClaimHeld)
                    }
                },
                Step::WaitForHolder { until_ms } => {
                    self.metrics.in_flight_wait();
                    let timed_out = match holder.take() {
                        Some(release) => timeout_at(self.instant_at(until_ms), release.wait())
                            .await
                            .is_err(),
                        None => false,
                    };
                    submission.step(Fact::Waited { timed_out })
                }
                Step::TakeRate { .. } => {
                    let tenant = &submission.key().tenant;
                    let retry_after_seconds = self.pretrade.as_ref().and_then(|p| p.take(tenant));
                    submission.step(Fact::Rate {
                        retry_after_seconds,
                    })
                }
                Step::Place(order) => {
                    let tenant = submission.key().tenant.clone();
                    let fact = self.place(tenant, *order, lease_deadline).await;
                    submission.step(fact)
                }
                // The server never hands a submission an old worker's answer (the
                // switch-over is the edge's); should one ask, nothing is stored.
                Step::Legacy(_) => submission.step(Fact::Failed),
            };
        }
    }

    fn look_up_cache(&self, submission: &mut Submission<Bytes>) -> Step {
        let cached = self.replays.get(submission.key(), self.clock.now_ms());
        let hit = cached.as_ref().map(|cached| CacheHit {
            record: &cached.record,
            same_bytes: cached.was_answered_for(submission.body()),
        });
        submission.step(Fact::Cached(hit))
    }

    async fn read_record(&self, key: &ScopedKey, lease_deadline: Instant) -> Fact<'static> {
        let asked_at_ms = self.clock.now_ms();
        let read = timeout_at(lease_deadline, self.stores.records.live_record(key))
            .await
            .unwrap_or(Err(StoreError::LeaseExpired));
        match self.note_failure(read, "reading a key's record") {
            Ok(record) => Fact::Read {
                record,
                asked_at_ms,
            },
            Err(_) => Fact::Failed,
        }
    }

    async fn place(
        &self,
        tenant: String,
        order: OrderToPlace,
        lease_deadline: Instant,
    ) -> Fact<'static> {
        let new = NewOrder {
            tenant,
            order: order.order,
            fingerprint: order.fingerprint,
            response: order.response,
            result_ttl: self.settings.result_ttl,
            lease: Lease::until(lease_deadline.into_std()),
            deliver: self.settings.deliver,
        };
        let placed = self.place_within_lease(new, lease_deadline).await;
        if let Ok(Placement::Abandoned) = placed {
            // Not a failure of the store, but counted and logged as the lease's.
            let _ = self.note_failure::<()>(Err(StoreError::LeaseExpired), "placing an order");
        }
        match self.note_failure(placed, "placing an order") {
            Ok(placement) => Fact::Placed(placement),
            Err(_) => Fact::Failed,
        }
    }

    /// Places the order unless the lease runs out first. Once the store has taken the
    /// order into a transaction its commit decides, so the request waits for that.
    async fn place_within_lease(
        &self,
        new: NewOrder,
        deadline: Instant,
    ) -> Result<Placement, StoreError> {
        let lease = new.lease.clone();
        let mut placing = std::pin::pin!(self.stores.records.place(new));
        match timeout_at(deadline, &mut placing).await {
            Ok(result) => result,
            Err(_) if lease.abandon() => Ok(Placement::Abandoned),
            Err(_) => placing.await,
        }
    }

    /// Caches what the conclusion says to keep, and hands its outcome on.
    fn conclude(&self, submission: &Submission<Bytes>, conclusion: Conclusion) -> Outcome {
        if let Some(remember) = conclusion.remember {
            let body = remember
                .request_carries_payload
                .then(|| submission.body().clone());
            self.replays.insert(
                submission.key().clone(),
                remember.record,
                body,
                remember.expires_at_ms,
            );
        }
        conclusion.outcome
    }

    /// The tokio instant at `deadline_ms` of the gateway's clock.
    fn instant_at(&self, deadline_ms: i64) -> Instant {
        let left = deadline_ms.saturating_sub(self.clock.now_ms()).max(0);
        Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0))
    }
}
