//! `KeyShard`: the Durable Object that owns the keys of one tenant's shard.
//!
//! A submission runs `ordergate_core`'s state machine from start to end in one
//! synchronous turn of the object: the object runs one event at a time, so between
//! reading a key's record and placing its order no other request of the object can
//! run, and the claim is won by being there. Placement is one `transactionSync`.
//! The answer leaves only after the storage has confirmed the write (the runtime's
//! output gate holds it, and [`KeyShard::confirm`] waits for it explicitly).

use std::cell::Cell;

use ordergate_core::{
    Answer, Conclusion, Fact, IdempotencyKey, Limits, Outcome, Refusal, ScopedKey, Step,
    Submission, legacy,
};
use worker::{DurableObject, Env, Request, Response, State, durable_object};

use crate::platform::{now_ms, random_bytes};
use crate::replays;
use crate::respond;
use crate::shard;
use crate::store::Shard;
use crate::wire::{self, Command};

/// Records purged per alarm: small batches keep the object answering meanwhile.
const PURGE_BATCH: i64 = 500;

/// When more expired records are left, the next batch follows this soon.
const PURGE_AGAIN_MS: i64 = 1_000;

#[durable_object]
pub struct KeyShard {
    state: State,
    /// `None` if the tables could not be opened (logged; every request gets 503).
    shard: Option<Shard>,
    /// An alarm is known to be set: no need to ask the storage on each placement.
    alarm_set: Cell<bool>,
}

impl DurableObject for KeyShard {
    fn new(state: State, _env: Env) -> Self {
        let shard = Shard::open(&state)
            .inspect_err(|e| worker::console_error!("cannot open the shard's tables: {e}"))
            .ok();
        Self {
            state,
            shard,
            alarm_set: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let bytes = req.bytes().await?;
        let answer = match (wire::decode(&bytes), &self.shard) {
            (Ok((command, body)), Some(shard)) => self.run(shard, command, body).await,
            (Err(e), _) => {
                worker::console_error!("a malformed command reached the object: {e}");
                Answer::refusal(&Refusal::Internal)
            }
            (_, None) => Answer::refusal(&Refusal::Unavailable),
        };
        respond::answer(answer)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_set.set(false);
        if let Some(shard) = &self.shard {
            let now = now_ms();
            let purged = shard.purge_expired(now, PURGE_BATCH)?;
            let next = if purged as i64 == PURGE_BATCH {
                Some(now + PURGE_AGAIN_MS)
            } else {
                shard.next_expiry()?
            };
            if let Some(at) = next {
                self.set_alarm(at).await?;
            }
        }
        Response::ok("purged")
    }
}

/// One `POST /orders` as the object received it.
struct Incoming<'a> {
    key: ScopedKey,
    /// This object's shard, which a new order's id carries.
    shard: u16,
    body: &'a [u8],
    limits: Limits,
    /// The old worker's stored answer for the key, if it had one.
    legacy: Option<String>,
}

impl KeyShard {
    async fn run(&self, store: &Shard, command: Command, body: &[u8]) -> Answer {
        match command {
            Command::Submit {
                tenant,
                key,
                shard,
                result_ttl_ms,
                lease_ttl_ms,
                legacy,
            } => {
                let Ok(key) = IdempotencyKey::from_decoded(&key) else {
                    return Answer::refusal(&Refusal::Internal);
                };
                let incoming = Incoming {
                    key: ScopedKey::new(tenant, key),
                    shard,
                    body,
                    limits: Limits {
                        result_ttl_ms,
                        lease_ttl_ms,
                    },
                    legacy,
                };
                self.submit(store, incoming).await
            }
            Command::OrderById { order_id } => found(store.order_by_id(&order_id)),
            Command::OrderByKey { key } => found(store.order_by_key(&key)),
        }
    }

    async fn submit(&self, store: &Shard, incoming: Incoming<'_>) -> Answer {
        let limits = incoming.limits;
        let conclusion = self.drive(store, incoming).unwrap_or_else(|e| {
            worker::console_error!("a submission failed in the object's storage: {e}");
            Conclusion {
                outcome: Outcome::Unavailable,
                remember: None,
            }
        });
        if let Outcome::Created(_) = conclusion.outcome
            && let Err(e) = self.confirm(store, limits).await
        {
            worker::console_error!("the storage did not confirm a placement: {e}");
            return Answer::refusal(&Refusal::Unavailable);
        }
        let mut answer = Answer::outcome(conclusion.outcome);
        if let Some(remember) = &conclusion.remember {
            replays::mark(&mut answer, remember);
        }
        answer
    }

    /// The submission, start to end, without an `await`: one turn of the object.
    fn drive(&self, store: &Shard, incoming: Incoming<'_>) -> worker::Result<Conclusion> {
        let now = now_ms();
        let Incoming {
            key,
            shard: shard_number,
            body,
            limits,
            legacy,
        } = incoming;
        let record_key = key.key.as_str().to_owned();
        if let Some(stored) = legacy
            && store.live_record(&record_key, now)?.is_none()
        {
            return Ok(Conclusion {
                outcome: legacy::replay(stored.as_bytes()),
                remember: None,
            });
        }
        let mut submission = Submission::new(key, body, now, limits);
        let mut step = submission.start();
        loop {
            step = match step {
                Step::LookUpCache => submission.step(Fact::Cached(None)),
                Step::ReadRecord => {
                    let record = store.live_record(&record_key, now)?;
                    submission.step(Fact::Read {
                        record,
                        asked_at_ms: now,
                    })
                }
                // Nothing else runs in the object until this turn ends: the claim is ours.
                Step::Claim => submission.step(Fact::ClaimWon {
                    order_id: shard::new_order_id(now, random_bytes(), shard_number),
                    now_ms: now,
                }),
                Step::Place(order) => {
                    let expires = now.saturating_add(limits.result_ttl_ms);
                    let placement = store.place(&self.state, &record_key, &order, expires)?;
                    submission.step(Fact::Placed(placement))
                }
                // A claim is never held across turns, so there is no holder to wait for.
                Step::WaitForHolder { .. } => submission.step(Fact::Waited { timed_out: true }),
                Step::Done(conclusion) => return Ok(conclusion),
            };
        }
    }

    /// Waits until the storage has the placement, and makes sure an alarm will purge
    /// its record once it expires.
    async fn confirm(&self, shard: &Shard, limits: Limits) -> worker::Result<()> {
        self.state.storage().sync().await?;
        if !self.alarm_set.get() {
            let existing = self.state.storage().get_alarm().await?;
            match existing {
                Some(_) => self.alarm_set.set(true),
                None => {
                    let at = shard
                        .next_expiry()?
                        .unwrap_or_else(|| now_ms().saturating_add(limits.result_ttl_ms));
                    self.set_alarm(at).await?;
                }
            }
        }
        Ok(())
    }

    async fn set_alarm(&self, at_ms: i64) -> worker::Result<()> {
        let offset = at_ms.saturating_sub(now_ms()).max(0);
        self.state.storage().set_alarm(offset).await?;
        self.alarm_set.set(true);
        Ok(())
    }
}

fn found(order: worker::Result<Option<Vec<u8>>>) -> Answer {
    match order {
        Ok(Some(body)) => Answer::order(body),
        Ok(None) => Answer::refusal(&Refusal::NotFound),
        Err(e) => {
            worker::console_error!("an order lookup failed in the object's storage: {e}");
            Answer::refusal(&Refusal::Unavailable)
        }
    }
}
