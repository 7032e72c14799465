//! The idempotency protocol, run once for every backend.
//!
//! 1. A finished record answers: same payload → replay; another payload → 422. The
//!    replay cache is asked first, with no lock and no store. On a miss, a store whose
//!    placement finds live records itself (both backends do) is not read for a valid
//!    order: it answers at step 4 instead, and the answer fills the cache. Otherwise
//!    the store is read here.
//! 2. Only then validate the body (a retry of an accepted order always replays).
//! 3. Claim the key in this process ([`InFlight`]); if another request holds it, wait
//!    up to [`IN_FLIGHT_WAIT`] for it to end, then start over at 1 or answer 409.
//! 4. Place the order: claim, order and response in one commit in the store, which
//!    has the last word (a request may have finished since 1, or another process
//!    may have won the key in the database).
//!
//! The whole request is bounded by the lease: past it the order is abandoned before
//! the store starts on it, and the client gets 503 (outcome unknown, retry same key).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ordergate_core::{
    FinishedRecord, IdempotencyKey, Order, OrderRequest, Outcome, Payload, RetryVerdict,
    StoredResponse,
};
use tokio::time::{Instant, timeout_at};
use uuid::Uuid;

use crate::clock::{Clock, millis};
use crate::inflight::InFlight;
use crate::replay_cache::ReplayCache;
use crate::store::{DynStore, Finished, Lease, NewOrder, Placement, StoreError};

/// How long a request waits for an in-flight request with the same key.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// What the protocol needs; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub store: DynStore,
    pub clock: Arc<dyn Clock>,
    pub in_flight: InFlight,
    pub replays: Arc<ReplayCache>,
    pub result_ttl: Duration,
    pub lease_ttl: Duration,
}

/// One `POST /orders` that passed the HTTP checks.
#[derive(Debug)]
pub struct Submission {
    pub tenant: String,
    pub key: IdempotencyKey,
    pub body: Bytes,
    /// Parsed on first use: a byte-identical retry is answered without it.
    payload: OnceLock<Payload>,
}

impl Submission {
    pub fn new(tenant: String, key: IdempotencyKey, body: Bytes) -> Self {
        Self {
            tenant,
            key,
            body,
            payload: OnceLock::new(),
        }
    }

    pub fn payload(&self) -> &Payload {
        self.payload.get_or_init(|| Payload::from_body(&self.body))
    }
}

impl Gateway {
    /// Runs the protocol to its end. Store failures are logged here and answered as
    /// `Unavailable`: the caller cannot know whether the order exists. The caller has
    /// already tried [`Gateway::cached_verdict`]; skipping it would only be slower, as
    /// the store has the last word anyway.
    pub async fn submit(&self, submission: Submission) -> Outcome {
        let deadline = Instant::now() + self.lease_ttl;
        match self.submit_until(&submission, deadline).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "store failed during submission");
                Outcome::Unavailable
            }
        }
    }

    /// The answer from the replay cache, if it holds the key's record: a replay or a
    /// 422 for another payload, decided without the store. Cheap enough to try before
    /// spawning a task for [`Gateway::submit`]. Most retries resend the very bytes of
    /// a request already answered under the key: those replay without being parsed.
    pub fn cached_verdict(&self, s: &Submission) -> Option<Outcome> {
        let cached = self
            .replays
            .get(&s.tenant, s.key.as_str(), self.clock.now_ms())?;
        if cached.was_answered_for(&s.body) {
            return Some(Outcome::Replayed(cached.record.response.clone()));
        }
        Some(verdict(&cached.record, s.payload()))
    }

    async fn submit_until(&self, s: &Submission, deadline: Instant) -> Result<Outcome, StoreError> {
        let wait_until = Instant::now() + IN_FLIGHT_WAIT;
        loop {
            let valid = s.payload().order_request();
            // A store whose placement finds live records itself is asked once, not
            // twice, for a valid order; an invalid one always needs the record.
            if valid.is_err() || !self.store.place_finds_records() {
                let read_at_ms = self.clock.now_ms();
                let finished = timeout_at(deadline, self.store.finished(&s.tenant, &s.key))
                    .await
                    .map_err(|_| StoreError::Database("lease ran out while reading".into()))??;
                if let Some(finished) = finished {
                    return Ok(self.answer_from_record(s, finished, read_at_ms));
                }
            }
            // Nothing is stored for an invalid body, so answering it here is as if the
            // whole request ran at the moment of the read above.
            let request = match valid {
                Ok(request) => request,
                Err(invalid) => return Ok(Outcome::Invalid(invalid)),
            };
            match self.in_flight.claim(&s.tenant, s.key.as_str()) {
                Ok(_claim) => return self.place_claimed(s, request, deadline).await,
                Err(other) => {
                    let waited = timeout_at(wait_until.min(deadline), other.wait()).await;
                    if waited.is_err() {
                        return Ok(Outcome::InProgress);
                    }
                    // The request waited for has usually just filled the cache.
                    if let Some(outcome) = self.cached_verdict(s) {
                        return Ok(outcome);
                    }
                }
            }
        }
    }

    /// Places the order while holding the key's in-process claim. A request that
    /// finished since the read above is caught by the store, which answers `Exists`.
    async fn place_claimed(
        &self,
        s: &Submission,
        request: OrderRequest,
        deadline: Instant,
    ) -> Result<Outcome, StoreError> {
        let order_accepted_at_ms = self.clock.now_ms();
        let order = Order {
            order_id: Uuid::now_v7(),
            request,
            accepted_at_ms: order_accepted_at_ms,
            idempotency_key: s.key.clone(),
        };
        let response = StoredResponse {
            status: 201,
            location: order.location(),
            body: order.to_json(),
        };
        let Some(fingerprint) = s.payload().fingerprint() else {
            // A valid order always has a canonical form; refuse rather than store none.
            return Err(StoreError::Database(
                "valid order without fingerprint".into(),
            ));
        };
        let new = NewOrder {
            tenant: s.tenant.clone(),
            order,
            fingerprint,
            response: response.clone(),
            result_ttl: self.result_ttl,
            lease: Lease::until(deadline.into_std()),
        };
        Ok(match self.place_within_lease(new, deadline).await? {
            Placement::Placed => {
                let record = FinishedRecord {
                    fingerprint,
                    response: response.clone(),
                };
                // The store stamps its expiry after the acceptance time was read, so
                // counting from it keeps the cached expiry no later than the record's.
                let expires_at_ms = order_accepted_at_ms.saturating_add(millis(self.result_ttl));
                self.remember(s, record, expires_at_ms, true);
                Outcome::Created(response)
            }
            Placement::Exists(finished) => {
                self.answer_from_record(s, finished, order_accepted_at_ms)
            }
            Placement::InProgress => Outcome::InProgress,
            Placement::Abandoned => Outcome::Unavailable,
        })
    }

    /// Places the order unless the lease runs out first. Once the store has taken the
    /// order into a transaction its commit decides, so the request waits for that.
    async fn place_within_lease(
        &self,
        new: NewOrder,
        deadline: Instant,
    ) -> Result<Placement, StoreError> {
        let lease = new.lease.clone();
        let mut placing = std::pin::pin!(self.store.place(new));
        match timeout_at(deadline, &mut placing).await {
            Ok(result) => result,
            Err(_) if lease.abandon() => Ok(Placement::Abandoned),
            Err(_) => placing.await,
        }
    }
}

impl Gateway {
    /// Judges a record the store found, and caches it. `asked_at_ms` is a clock
    /// reading from before the store was asked, so the cached expiry is never later
    /// than the record's.
    fn answer_from_record(&self, s: &Submission, finished: Finished, asked_at_ms: i64) -> Outcome {
        let outcome = verdict(&finished.record, s.payload());
        let expires_at_ms = asked_at_ms.saturating_add(millis(finished.ttl_left));
        let replayed = matches!(outcome, Outcome::Replayed(_));
        self.remember(s, finished.record, expires_at_ms, replayed);
        outcome
    }

    /// Caches the record; with the request's bytes only if they carry its payload.
    fn remember(&self, s: &Submission, record: FinishedRecord, expires_at_ms: i64, ours: bool) {
        let body = ours.then(|| s.body.clone());
        self.replays
            .insert(&s.tenant, s.key.as_str(), record, body, expires_at_ms);
    }
}

fn verdict(record: &FinishedRecord, payload: &Payload) -> Outcome {
    match record.judge(payload.fingerprint()) {
        RetryVerdict::Replay => Outcome::Replayed(record.response.clone()),
        RetryVerdict::KeyReused => Outcome::KeyReused,
    }
}
