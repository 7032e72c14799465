//! One `POST /orders` through the idempotency protocol, as a state machine without I/O.
//!
//! A driver (the native server's tokio loop, or the edge build) asks what to do next,
//! does it, and reports what happened as a [`Fact`]; [`Submission::step`] answers the
//! next [`Step`]. Every decision of the protocol is made here, once; the driver only
//! does I/O and keeps time. Deadlines are milliseconds of the driver's clock.
//!
//! 1. **Cache.** A finished record in the driver's replay cache answers at once: a
//!    request with the very bytes already answered replays without being parsed;
//!    otherwise the same payload replays and another is a reused key (422).
//! 2. **Read or not.** A valid order goes straight to the claim: placing it finds a
//!    live record as cheaply as a read would. An invalid body needs the stored record
//!    first, because a retry of an accepted order replays whatever the rules say now.
//!    A valid order that a pre-trade control refuses (halt, symbols, quantity,
//!    notional) is read first too: a retry of an accepted order is never refused.
//! 3. **Claim** the key in the driver. If another request holds it, wait for that one
//!    to end (at most [`IN_FLIGHT_WAIT_MS`] from the start, never past the lease) and
//!    start over at 1; a wait that times out answers 409.
//! 4. **Rate**: with a tenant rate, the claim's winner takes one order from the
//!    tenant's bucket in the driver; with none left, the record is read (a replay is
//!    never refused), and with no record the order is refused as rate-limited.
//! 5. **Place**: claim, order and response in one commit. The store has the last word:
//!    a request may have finished since 1, or another process may hold the key.
//!
//! At the edge, during a switch-over from the old worker, a submission may carry the
//! old worker's stored answer for its key ([`Submission::with_legacy`]). Then the
//! record is read first; with none, and no order placed under the key since, the old
//! answer replays, and a valid order's retry imports it ([`LegacyStep`]).
//!
//! A [`Step::Done`] comes exactly once, and a submission asks to place at most one
//! order, and only after it won the claim.

use std::num::NonZeroU32;
use std::sync::Arc;

use uuid::Uuid;

use crate::controls::{ControlRefusal, TenantLimits};
use crate::key::ScopedKey;
use crate::legacy;
use crate::order::{InvalidOrder, Order, OrderRequest};
use crate::protocol::{
    Fingerprint, FinishedRecord, LiveRecord, Outcome, Payload, Placement, RetryVerdict,
    StoredResponse,
};

/// How long a request waits for an in-flight request with the same key (the
/// contract's 1 s); a database lock wait for the same key is bounded by it too.
pub const IN_FLIGHT_WAIT_MS: i64 = 1_000;

/// The times that bound a submission and its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a key's record lives after acceptance.
    pub result_ttl_ms: i64,
    /// How long the whole request may hold its key.
    pub lease_ttl_ms: i64,
}

impl Limits {
    /// The limits of the settings `--result-ttl` and `--lease-ttl`.
    pub fn new(result_ttl: std::time::Duration, lease_ttl: std::time::Duration) -> Self {
        Self {
            result_ttl_ms: crate::settings::millis(result_ttl),
            lease_ttl_ms: crate::settings::millis(lease_ttl),
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look the key up in the replay cache; answer [`Fact::Cached`].
    LookUpCache,
    /// Read the key's live record from the store, within the lease; answer
    /// [`Fact::Read`] (or [`Fact::Failed`]).
    ReadRecord,
    /// Take the key's claim; answer [`Fact::ClaimWon`] or [`Fact::ClaimHeld`].
    Claim,
    /// Place this order (claim, order, response in one commit), within the lease;
    /// answer [`Fact::Placed`] (or [`Fact::Failed`]).
    Place(Box<OrderToPlace>),
    /// Take one new order from the tenant's rate of `per_second`; answer
    /// [`Fact::Rate`].
    TakeRate { per_second: NonZeroU32 },
    /// Wait for the claim's holder to end, until `until_ms` at most; answer
    /// [`Fact::Waited`].
    WaitForHolder { until_ms: i64 },
    /// A step of the switch-over from the old worker (only with a legacy answer).
    Legacy(LegacyStep),
    /// The submission is over.
    Done(Conclusion),
}

/// What the switch-over asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyStep {
    /// Whether the key has an order other than `order_id` (the old worker's) placed
    /// here; answer [`Fact::KeyHasOtherOrder`].
    HasOtherOrder { order_id: String },
    /// Store the old answer as the key's order and record, in one commit; answer
    /// [`Fact::Imported`] (or [`Fact::Failed`]).
    Import(Box<LegacyImport>),
}

/// The old worker's answer, to be stored as the key's order and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyImport {
    pub order_id: String,
    /// Under the retry's payload: a later other payload is a reused key.
    pub record: FinishedRecord,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

/// An order to place under the submission's key, with the answer to store beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderToPlace {
    pub order: Order,
    pub fingerprint: Fingerprint,
    pub response: StoredResponse,
}

/// How a submission ended, and what the driver's replay cache should keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub outcome: Outcome,
    pub remember: Option<Remember>,
}

/// A record for the replay cache, valid until `expires_at_ms` (never later than the
/// stored record's own expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remember {
    pub record: FinishedRecord,
    pub expires_at_ms: i64,
    /// The request's bytes carry the record's payload: a retry with the very same
    /// bytes may replay without being parsed.
    pub request_carries_payload: bool,
}

/// A replay-cache entry as the driver found it.
#[derive(Debug, Clone, Copy)]
pub struct CacheHit<'a> {
    pub record: &'a FinishedRecord,
    /// The request's bytes are those of a request already answered with this record.
    pub same_bytes: bool,
}

/// What happened when the driver did the last step.
#[derive(Debug, Clone)]
pub enum Fact<'a> {
    Cached(Option<CacheHit<'a>>),
    /// The store's answer, and a clock reading from before it was asked.
    Read {
        record: Option<LiveRecord>,
        asked_at_ms: i64,
    },
    /// The claim is this request's: place under a fresh id, accepted at `now_ms`.
    ClaimWon {
        order_id: Uuid,
        now_ms: i64,
    },
    /// Another request holds the claim.
    ClaimHeld,
    Placed(Placement),
    Waited {
        timed_out: bool,
    },
    /// `None`: the order is taken from the rate; else seconds until one could be.
    Rate {
        retry_after_seconds: Option<u32>,
    },
    /// Whether the key has an order other than the old worker's.
    KeyHasOtherOrder(bool),
    /// The old answer is stored.
    Imported,
    /// The store failed or the lease ran out: the outcome is unknown.
    Failed,
}

#[derive(Debug)]
enum State {
    Start,
    LookingUp,
    Reading,
    Claiming,
    Placing {
        record: FinishedRecord,
        accepted_at_ms: i64,
    },
    Waiting,
    TakingRate {
        per_second: NonZeroU32,
        order_id: Uuid,
        now_ms: i64,
    },
    CheckingLegacy {
        asked_at_ms: i64,
    },
    Importing {
        record: FinishedRecord,
        expires_at_ms: i64,
    },
    Over(Outcome),
}

/// One submission in progress. `B` is the request body.
#[derive(Debug)]
pub struct Submission<B> {
    key: ScopedKey,
    body: B,
    payload: Option<Payload>,
    limits: Limits,
    started_ms: i64,
    /// The old worker's stored answer for the key, when it had one.
    legacy: Option<Vec<u8>>,
    /// The tenant's pre-trade limits, when the gateway has a limits file.
    controls: Option<Arc<TenantLimits>>,
    /// A control's refusal, waiting for the read that shows the key has no record.
    refused: Option<ControlRefusal>,
    /// The last read found no record for the key (since the last start).
    read_found_none: bool,
    /// This submission has taken its order from the rate already.
    rate_taken: bool,
    state: State,
}

impl<B: AsRef<[u8]>> Submission<B> {
    /// A submission of `body` under `key`, started at `now_ms`.
    pub fn new(key: ScopedKey, body: B, now_ms: i64, limits: Limits) -> Self {
        Self {
            key,
            body,
            payload: None,
            limits,
            started_ms: now_ms,
            legacy: None,
            controls: None,
            refused: None,
            read_found_none: false,
            rate_taken: false,
            state: State::Start,
        }
    }

    /// The same, checked against the tenant's pre-trade limits.
    pub fn with_controls(mut self, limits: Arc<TenantLimits>) -> Self {
        self.controls = Some(limits);
        self
    }

    /// The same, with the old worker's stored answer for the key.
    pub fn with_legacy(mut self, stored: Vec<u8>) -> Self {
        self.legacy = Some(stored);
        self
    }

    pub fn key(&self) -> &ScopedKey {
        &self.key
    }

    pub fn body(&self) -> &B {
        &self.body
    }

    /// When the lease runs out: store work not begun by then is abandoned.
    pub fn lease_deadline_ms(&self) -> i64 {
        self.started_ms.saturating_add(self.limits.lease_ttl_ms)
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        self.read_found_none = false;
        self.state = State::LookingUp;
        Step::LookUpCache
    }

    /// The step after `fact`. A fact that does not answer the last step is a broken
    /// driver: the submission ends as unavailable rather than guess.
    pub fn step(&mut self, fact: Fact<'_>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Start);
        match (state, fact) {
            (State::Over(outcome), _) => self.conclude(outcome, None),
            (State::LookingUp, Fact::Cached(hit)) => self.after_cache(hit),
            (
                State::Reading,
                Fact::Read {
                    record,
                    asked_at_ms,
                },
            ) => self.after_read(record, asked_at_ms),
            (State::Claiming, Fact::ClaimWon { order_id, now_ms }) => {
                self.after_claim(order_id, now_ms)
            }
            (
                State::TakingRate {
                    per_second,
                    order_id,
                    now_ms,
                },
                Fact::Rate {
                    retry_after_seconds,
                },
            ) => match retry_after_seconds {
                None => {
                    self.rate_taken = true;
                    self.place(order_id, now_ms)
                }
                Some(retry_after_seconds) => self.refuse(ControlRefusal::RateLimited {
                    per_second: per_second.get(),
                    retry_after_seconds: retry_after_seconds.max(1),
                }),
            },
            (State::Claiming, Fact::ClaimHeld) => {
                self.state = State::Waiting;
                Step::WaitForHolder {
                    until_ms: self.wait_deadline_ms(),
                }
            }
            (State::Waiting, Fact::Waited { timed_out: true }) => {
                self.conclude(Outcome::InProgress, None)
            }
            (State::Waiting, Fact::Waited { timed_out: false }) => self.start(),
            (
                State::Placing {
                    record,
                    accepted_at_ms,
                },
                Fact::Placed(placement),
            ) => self.after_placement(placement, record, accepted_at_ms),
            (State::CheckingLegacy { asked_at_ms }, Fact::KeyHasOtherOrder(other)) => {
                self.after_legacy_check(other, asked_at_ms)
            }
            (
                State::Importing {
                    record,
                    expires_at_ms,
                },
                Fact::Imported,
            ) => {
                let remember = Remember {
                    record: record.clone(),
                    expires_at_ms,
                    request_carries_payload: true,
                };
                self.conclude(Outcome::Replayed(record.response), Some(remember))
            }
            _ => self.conclude(Outcome::Unavailable, None),
        }
    }

    fn wait_deadline_ms(&self) -> i64 {
        self.started_ms
            .saturating_add(IN_FLIGHT_WAIT_MS)
            .min(self.lease_deadline_ms())
    }

    fn payload(&mut self) -> &Payload {
        let body = &self.body;
        self.payload
            .get_or_insert_with(|| Payload::from_body(body.as_ref()))
    }

    fn valid_order(&mut self) -> Result<(OrderRequest, Fingerprint), InvalidOrder> {
        self.payload().valid_order()
    }

    fn after_cache(&mut self, hit: Option<CacheHit<'_>>) -> Step {
        if let Some(hit) = hit {
            let outcome = if hit.same_bytes {
                Outcome::Replayed(hit.record.response.clone())
            } else {
                self.verdict(hit.record)
            };
            return self.conclude(outcome, None);
        }
        // An old answer counts only for a key with no record here: read it first.
        match self.valid_order() {
            Ok((request, _)) if self.legacy.is_none() => self.pass_controls(&request),
            _ => self.read_record(),
        }
    }

    fn read_record(&mut self) -> Step {
        self.state = State::Reading;
        Step::ReadRecord
    }

    fn claim(&mut self) -> Step {
        self.state = State::Claiming;
        Step::Claim
    }

    /// The controls without state, before the claim.
    fn pass_controls(&mut self, request: &OrderRequest) -> Step {
        match self.controls.as_ref().map(|limits| limits.check(request)) {
            Some(Err(refusal)) => self.refuse(refusal),
            _ => self.claim(),
        }
    }

    /// The rate, once the claim is won: a request that waits for the claim's holder
    /// and then replays never takes from it.
    fn after_claim(&mut self, order_id: Uuid, now_ms: i64) -> Step {
        let rate = self.controls.as_ref().and_then(|l| l.orders_per_second);
        match rate {
            Some(per_second) if !self.rate_taken => {
                self.state = State::TakingRate {
                    per_second,
                    order_id,
                    now_ms,
                };
                Step::TakeRate { per_second }
            }
            _ => self.place(order_id, now_ms),
        }
    }

    /// Refused by a control, unless the key has a record: then that answers.
    fn refuse(&mut self, refusal: ControlRefusal) -> Step {
        if self.read_found_none {
            return self.conclude(Outcome::Refused(refusal), None);
        }
        self.refused = Some(refusal);
        self.read_record()
    }

    /// Only an invalid body is read first: with no record it is answered as invalid,
    /// as if the whole request ran at the moment of the read (nothing is stored).
    fn after_read(&mut self, record: Option<LiveRecord>, asked_at_ms: i64) -> Step {
        if record.is_none() {
            self.read_found_none = true;
        }
        match (record, self.valid_order()) {
            (Some(live), _) => self.answer_from_record(live, asked_at_ms),
            (None, _) if self.legacy.is_some() => self.check_legacy(asked_at_ms),
            (None, Err(invalid)) => self.conclude(Outcome::Invalid(invalid), None),
            (None, Ok((request, _))) => match self.refused.take() {
                Some(refusal) => self.conclude(Outcome::Refused(refusal), None),
                None => self.pass_controls(&request),
            },
        }
    }

    /// The key has no record here: the old answer stands unless an order was placed
    /// here under the key since (its record expired).
    fn check_legacy(&mut self, asked_at_ms: i64) -> Step {
        let order_id = self.legacy.as_deref().and_then(legacy::order_id);
        let Some(order_id) = order_id else {
            // An order whose details are lost: unknown, never a reason to place again.
            return self.conclude(Outcome::Unavailable, None);
        };
        self.state = State::CheckingLegacy { asked_at_ms };
        Step::Legacy(LegacyStep::HasOtherOrder { order_id })
    }

    fn after_legacy_check(&mut self, other_order: bool, now_ms: i64) -> Step {
        let stored = self.legacy.take().unwrap_or_default();
        if other_order {
            return self.after_read(None, now_ms);
        }
        let (Outcome::Replayed(response), Some(order_id)) =
            (legacy::replay(&stored), legacy::order_id(&stored))
        else {
            return self.conclude(Outcome::Unavailable, None);
        };
        let Ok((_, fingerprint)) = self.valid_order() else {
            // Not an order: replayed as the old worker would; a valid retry imports it.
            return self.conclude(Outcome::Replayed(response), None);
        };
        let record = FinishedRecord {
            fingerprint,
            response,
        };
        let expires_at_ms = now_ms.saturating_add(self.limits.result_ttl_ms);
        self.state = State::Importing {
            record: record.clone(),
            expires_at_ms,
        };
        Step::Legacy(LegacyStep::Import(Box::new(LegacyImport {
            order_id,
            record,
            now_ms,
            expires_at_ms,
        })))
    }

    fn place(&mut self, order_id: Uuid, now_ms: i64) -> Step {
        let (request, fingerprint) = match self.valid_order() {
            Ok(valid) => valid,
            Err(invalid) => return self.conclude(Outcome::Invalid(invalid), None),
        };
        let order = Order {
            order_id,
            request,
            accepted_at_ms: now_ms,
            idempotency_key: self.key.key.clone(),
        };
        let response = StoredResponse {
            status: 201,
            location: order.location(),
            body: order.to_json(),
        };
        self.state = State::Placing {
            record: FinishedRecord {
                fingerprint,
                response: response.clone(),
            },
            accepted_at_ms: now_ms,
        };
        Step::Place(Box::new(OrderToPlace {
            order,
            fingerprint,
            response,
        }))
    }

    fn after_placement(
        &mut self,
        placement: Placement,
        record: FinishedRecord,
        accepted_at_ms: i64,
    ) -> Step {
        match placement {
            Placement::Placed => {
                // The store stamps its expiry after the acceptance time was read, so
                // counting from it keeps the cached expiry no later than the record's.
                let remember = Remember {
                    expires_at_ms: accepted_at_ms.saturating_add(self.limits.result_ttl_ms),
                    request_carries_payload: true,
                    record: record.clone(),
                };
                self.conclude(Outcome::Created(record.response), Some(remember))
            }
            Placement::Exists(live) => self.answer_from_record(live, accepted_at_ms),
            Placement::InProgress => self.conclude(Outcome::InProgress, None),
            Placement::Abandoned => self.conclude(Outcome::Unavailable, None),
        }
    }

    /// Judges a record the store found. `asked_at_ms` is a clock reading from before
    /// the store was asked, so the cached expiry is never later than the record's.
    fn answer_from_record(&mut self, live: LiveRecord, asked_at_ms: i64) -> Step {
        let outcome = self.verdict(&live.record);
        let remember = Remember {
            expires_at_ms: asked_at_ms.saturating_add(live.ms_left),
            request_carries_payload: matches!(outcome, Outcome::Replayed(_)),
            record: live.record,
        };
        self.conclude(outcome, Some(remember))
    }

    fn verdict(&mut self, record: &FinishedRecord) -> Outcome {
        match record.judge(self.payload().fingerprint()) {
            RetryVerdict::Replay => Outcome::Replayed(record.response.clone()),
            RetryVerdict::KeyReused => Outcome::KeyReused,
        }
    }

    fn conclude(&mut self, outcome: Outcome, remember: Option<Remember>) -> Step {
        self.state = State::Over(outcome.clone());
        Step::Done(Conclusion { outcome, remember })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdempotencyKey;

    const ORDER: &[u8] = br#"{"symbol":"AAPL","side":"buy","quantity":100}"#;
    const LIMITS: Limits = Limits {
        result_ttl_ms: 60_000,
        lease_ttl_ms: 30_000,
    };

    fn submission(body: &'static [u8]) -> Submission<&'static [u8]> {
        let key = IdempotencyKey::parse(b"k").expect("key");
        Submission::new(ScopedKey::new("t", key), body, 1_000, LIMITS)
    }

    #[test]
    fn a_new_valid_order_is_claimed_placed_and_remembered() {
        let mut s = submission(ORDER);
        assert_eq!(s.start(), Step::LookUpCache);
        assert_eq!(s.step(Fact::Cached(None)), Step::Claim);
        let id = Uuid::from_u128(7);
        let Step::Place(order) = s.step(Fact::ClaimWon {
            order_id: id,
            now_ms: 2_000,
        }) else {
            panic!("expected a placement");
        };
        assert_eq!(order.order.order_id, id);
        assert_eq!(order.response.location, format!("/orders/{id}"));
        let Step::Done(done) = s.step(Fact::Placed(Placement::Placed)) else {
            panic!("expected the end");
        };
        assert_eq!(done.outcome, Outcome::Created(order.response.clone()));
        let remember = done.remember.expect("remembered");
        assert_eq!(remember.expires_at_ms, 62_000);
        assert!(remember.request_carries_payload);
    }

    #[test]
    fn an_invalid_body_reads_the_record_first_and_replays_an_accepted_order() {
        let mut s = submission(br#"{"symbol":"AAPL","side":"buy","quantity":100,"x":1}"#);
        s.start();
        assert_eq!(s.step(Fact::Cached(None)), Step::ReadRecord);
        let Step::Done(done) = s.step(Fact::Read {
            record: None,
            asked_at_ms: 1_000,
        }) else {
            panic!("expected the end");
        };
        assert!(matches!(done.outcome, Outcome::Invalid(_)));
    }

    #[test]
    fn a_held_claim_waits_until_a_second_after_the_start_then_is_in_progress() {
        let mut s = submission(ORDER);
        s.start();
        s.step(Fact::Cached(None));
        assert_eq!(
            s.step(Fact::ClaimHeld),
            Step::WaitForHolder { until_ms: 2_000 }
        );
        let Step::Done(done) = s.step(Fact::Waited { timed_out: true }) else {
            panic!("expected the end");
        };
        assert_eq!(done.outcome, Outcome::InProgress);
    }

    const OLD_ANSWER: &[u8] = br#"{"orderId":"5a1f","status":"accepted"}"#;

    /// A legacy submission of `body` up to the answer to its read: no record here.
    fn legacy_after_read(body: &'static [u8], stored: &[u8]) -> (Submission<&'static [u8]>, Step) {
        let mut s = submission(body).with_legacy(stored.to_vec());
        s.start();
        assert_eq!(s.step(Fact::Cached(None)), Step::ReadRecord, "read first");
        let step = s.step(Fact::Read {
            record: None,
            asked_at_ms: 3_000,
        });
        (s, step)
    }

    #[test]
    fn an_old_answer_replays_and_a_valid_retry_imports_it_under_its_payload() {
        let (mut s, step) = legacy_after_read(ORDER, OLD_ANSWER);
        let order_id = "5a1f".to_owned();
        assert_eq!(step, Step::Legacy(LegacyStep::HasOtherOrder { order_id }));
        let Step::Legacy(LegacyStep::Import(import)) = s.step(Fact::KeyHasOtherOrder(false)) else {
            panic!("an import");
        };
        let fingerprint = Payload::from_body(ORDER)
            .fingerprint()
            .expect("fingerprint");
        assert_eq!(import.record.fingerprint, fingerprint);
        assert_eq!(import.record.response.location, "/orders/5a1f");
        assert_eq!(import.record.response.body, OLD_ANSWER);
        assert_eq!((import.now_ms, import.expires_at_ms), (3_000, 63_000));
        let Step::Done(done) = s.step(Fact::Imported) else {
            panic!("the end");
        };
        assert_eq!(
            done.outcome,
            Outcome::Replayed(import.record.response.clone())
        );
        let remember = done.remember.expect("remembered");
        assert_eq!(
            (remember.record, remember.expires_at_ms),
            (import.record, 63_000)
        );
    }

    #[test]
    fn a_record_here_or_an_order_placed_here_since_outranks_the_old_answer() {
        let mut s = submission(ORDER).with_legacy(OLD_ANSWER.to_vec());
        s.start();
        s.step(Fact::Cached(None));
        let record = FinishedRecord {
            fingerprint: Payload::from_body(ORDER)
                .fingerprint()
                .expect("fingerprint"),
            response: StoredResponse {
                status: 201,
                location: "/orders/new".into(),
                body: b"{}".to_vec(),
            },
        };
        let live = LiveRecord {
            record: record.clone(),
            ms_left: 10,
        };
        let Step::Done(done) = s.step(Fact::Read {
            record: Some(live),
            asked_at_ms: 3_000,
        }) else {
            panic!("the end");
        };
        assert_eq!(done.outcome, Outcome::Replayed(record.response));
        let (mut s, _) = legacy_after_read(ORDER, OLD_ANSWER);
        assert_eq!(s.step(Fact::KeyHasOtherOrder(true)), Step::Claim);
    }

    #[test]
    fn an_invalid_retry_replays_the_old_answer_without_importing_it() {
        let (mut s, _) = legacy_after_read(b"not json", OLD_ANSWER);
        let Step::Done(done) = s.step(Fact::KeyHasOtherOrder(false)) else {
            panic!("the end");
        };
        assert!(matches!(done.outcome, Outcome::Replayed(ref r) if r.body == OLD_ANSWER));
        assert_eq!(done.remember, None);
    }

    #[test]
    fn an_unreadable_old_answer_is_an_unknown_outcome_never_a_new_order() {
        let (_, step) = legacy_after_read(ORDER, br#"{"orderId":""}"#);
        let Step::Done(done) = step else {
            panic!("the end");
        };
        assert_eq!(done.outcome, Outcome::Unavailable);
    }

    #[test]
    fn a_fact_out_of_turn_ends_the_submission_as_unavailable() {
        let mut s = submission(ORDER);
        s.start();
        let Step::Done(done) = s.step(Fact::Placed(Placement::Placed)) else {
            panic!("expected the end");
        };
        assert_eq!(done.outcome, Outcome::Unavailable);
    }
}
