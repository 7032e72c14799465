//! `KeyShard`: the Durable Object that owns the keys of one tenant's shard.
//!
//! A submission runs `ordergate_core`'s state machine from start to end in one
//! synchronous turn of the object: the object runs one event at a time, so between
//! reading a key's record and placing its order no other request of the object can
//! run, and the claim is won by being there. Placement is one `transactionSync`.
//! The answer leaves only after the storage has confirmed the write (the runtime's
//! output gate holds it, and [`KeyShard::confirm`] waits for it explicitly).
//!
//! One alarm serves the purge of expired records and, with `ORDERGATE_DELIVER`, the
//! delivery of accepted orders: it is set for the earlier of the two. Its schedule is
//! kept in SQL (when each record expires, when each delivery is due), and the alarm
//! never throws: the platform retries a throwing alarm only a few times, then drops
//! it, and an outbox whose alarm was dropped would wait for a request to wake it.

use std::cell::Cell;

use ordergate_core::{
    Answer, Conclusion, Fact, IdempotencyKey, LegacyStep, Limits, Outcome, Placement, Refusal,
    Remember, ScopedKey, Step, Submission, TenantLimits, delivery::status_json,
    order::receipt_with_terms, shard,
};
use std::sync::Arc;
use worker::{DurableObject, Env, Request, Response, State, durable_object};

use crate::config::{self, Webhook};
use crate::delivery;
use crate::platform::{now_ms, random_bytes};
use crate::store::Tables;
use crate::wire::{self, Command};

/// Records purged per alarm: small batches keep the object answering meanwhile.
const PURGE_BATCH: i64 = 500;

/// When more expired records are left, the next batch follows this soon.
const PURGE_AGAIN_MS: i64 = 1_000;

/// When the storage failed in an alarm, it tries again this soon.
const ALARM_RETRY_MS: i64 = 5_000;

#[durable_object]
pub struct KeyShard {
    state: State,
    /// For the pre-trade limits, which the object enforces.
    env: Env,
    /// `None` if the tables could not be opened (logged; every request gets 503).
    tables: Option<Tables>,
    /// When the alarm is known to be set for, if it is: no need to ask the storage on
    /// each placement.
    alarm_at: Cell<Option<i64>>,
    /// An alarm is sending deliveries (only one round at a time).
    delivering: Cell<bool>,
}

impl DurableObject for KeyShard {
    fn new(state: State, env: Env) -> Self {
        let tables = Tables::open(&state)
            .inspect_err(|e| worker::console_error!("cannot open the shard's tables: {e}"))
            .ok();
        Self {
            state,
            env,
            tables,
            alarm_at: Cell::new(None),
            delivering: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let bytes = req.bytes().await?;
        let (answer, remember) = match (wire::decode(&bytes), &self.tables) {
            (Ok((command, body)), Some(tables)) => self.run(tables, command, body).await,
            (Err(e), _) => {
                worker::console_error!("a malformed command reached the object: {e}");
                (Answer::refusal(&Refusal::Internal), None)
            }
            (_, None) => (Answer::refusal(&Refusal::Unavailable), None),
        };
        Response::from_bytes(wire::encode_reply(&answer, remember.as_ref()))
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_at.set(None);
        if let Some(tables) = &self.tables {
            let next = self.alarm_work(tables).await;
            if let Some(at) = next
                && let Err(e) = self.set_alarm(at).await
            {
                worker::console_error!("the shard's next alarm could not be set: {e}");
            }
        }
        Response::ok("")
    }
}

impl KeyShard {
    /// One alarm's purge and delivery round; when the next alarm is due. Failures are
    /// logged and tried again soon, never thrown.
    async fn alarm_work(&self, tables: &Tables) -> Option<i64> {
        let now = now_ms();
        let mut soon = match tables.purge_expired(now, PURGE_BATCH) {
            Ok(purged) if purged as i64 == PURGE_BATCH => Some(now + PURGE_AGAIN_MS),
            Ok(_) => None,
            Err(e) => {
                worker::console_error!("the purge of expired records failed: {e}");
                Some(now + ALARM_RETRY_MS)
            }
        };
        let loaded = config::load(&self.env);
        let webhook = webhook_of(&loaded);
        if let Some(webhook) = webhook
            && !self.delivering.replace(true)
        {
            let round = delivery::round(tables, webhook).await;
            self.delivering.set(false);
            match round {
                Ok(true) => soon = Some(now_ms()),
                Ok(false) => {}
                Err(e) => {
                    worker::console_error!("a delivery round failed in the storage: {e}");
                    soon = Some(now_ms() + ALARM_RETRY_MS);
                }
            }
        }
        // Read after the round, with no await before the alarm is set: a placement made
        // while the round was sending is in what is read.
        let scheduled = next_alarm(tables, webhook.is_some()).unwrap_or_else(|e| {
            worker::console_error!("the shard's schedule could not be read: {e}");
            Some(now_ms() + ALARM_RETRY_MS)
        });
        [soon, scheduled].into_iter().flatten().min()
    }
}

/// The webhook of `ORDERGATE_DELIVER`, if orders are delivered.
fn webhook_of(loaded: &config::Loaded) -> Option<&Webhook> {
    loaded.as_ref().as_ref().ok()?.delivery.as_ref()
}

/// The earlier of the next expiry and, when delivering, the next due delivery.
fn next_alarm(tables: &Tables, delivering: bool) -> worker::Result<Option<i64>> {
    let expiry = tables.next_expiry()?;
    let due = if delivering {
        tables.next_delivery()?
    } else {
        None
    };
    Ok([expiry, due].into_iter().flatten().min())
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
    /// The tenant's pre-trade limits, with `ORDERGATE_LIMITS`.
    controls: Option<Arc<TenantLimits>>,
    /// A new order is delivered (`ORDERGATE_DELIVER`).
    deliver: bool,
}

/// A submission as it ended in the object's turn.
struct Driven {
    conclusion: Conclusion,
    /// It wrote to the storage: the answer waits until the write is confirmed.
    wrote: bool,
    /// It placed an order to deliver: the alarm must come now.
    to_deliver: bool,
}

impl KeyShard {
    async fn run(
        &self,
        store: &Tables,
        command: Command,
        body: &[u8],
    ) -> (Answer, Option<Remember>) {
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
                    return (Answer::refusal(&Refusal::Internal), None);
                };
                let Ok((controls, deliver)) = self.settings_for(&tenant) else {
                    return (Answer::refusal(&Refusal::NotConfigured), None);
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
                    controls,
                    deliver,
                };
                self.submit(store, incoming).await
            }
            Command::RecordByKey { key } => record(store, &key),
            Command::OrderById { order_id } => (found(store.order_by_id(&order_id)), None),
            Command::OrderByKey { key } => (found(store.order_by_key(&key)), None),
            Command::DeliveryById { order_id } => (delivery_state(store, &order_id), None),
        }
    }

    /// The tenant's limits, and whether its orders are delivered, from the object's
    /// own settings (the Worker checked them before it sent the order here); `Err` if
    /// they cannot be read.
    fn settings_for(&self, tenant: &str) -> Result<(Option<Arc<TenantLimits>>, bool), ()> {
        match config::load(&self.env).as_ref() {
            Ok(config) => Ok((
                config
                    .pretrade
                    .as_ref()
                    .map(|limits| limits.for_tenant(tenant).clone()),
                config.delivery.is_some(),
            )),
            Err(_) => Err(()),
        }
    }

    async fn submit(&self, store: &Tables, incoming: Incoming<'_>) -> (Answer, Option<Remember>) {
        let limits = incoming.limits;
        let driven = self.drive(store, incoming).unwrap_or_else(|e| {
            worker::console_error!("a submission failed in the object's storage: {e}");
            Driven {
                conclusion: Conclusion {
                    outcome: Outcome::Unavailable,
                    remember: None,
                },
                wrote: false,
                to_deliver: false,
            }
        });
        if driven.wrote
            && let Err(e) = self.confirm(store, limits, driven.to_deliver).await
        {
            worker::console_error!("the storage did not confirm a placement: {e}");
            return (Answer::refusal(&Refusal::Unavailable), None);
        }
        let Conclusion { outcome, remember } = driven.conclusion;
        (Answer::outcome(outcome), remember)
    }

    /// The submission, start to end, without an `await`: one turn of the object.
    fn drive(&self, store: &Tables, incoming: Incoming<'_>) -> worker::Result<Driven> {
        let now = now_ms();
        let Incoming {
            key,
            shard: shard_number,
            body,
            limits,
            legacy,
            controls,
            deliver,
        } = incoming;
        let record_key = key.key.as_str().to_owned();
        let tenant = key.tenant.clone();
        let mut submission = Submission::new(key, body, now, limits);
        if let Some(controls) = controls {
            submission = submission.with_controls(controls);
        }
        if let Some(stored) = legacy {
            submission = submission.with_legacy(stored.into_bytes());
        }
        let (mut wrote, mut to_deliver) = (false, false);
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
                    let deliver_for = deliver.then_some(tenant.as_str());
                    let placement =
                        store.place(&self.state, &record_key, &order, expires, deliver_for)?;
                    wrote = matches!(placement, Placement::Placed);
                    to_deliver = wrote && deliver;
                    submission.step(Fact::Placed(placement))
                }
                // The edge keeps no rate (its limits have none), so none is ever asked for.
                Step::TakeRate { .. } => submission.step(Fact::Rate {
                    retry_after_seconds: None,
                }),
                // A claim is never held across turns, so there is no holder to wait for.
                Step::WaitForHolder { .. } => submission.step(Fact::Waited { timed_out: true }),
                Step::Legacy(LegacyStep::HasOtherOrder { order_id }) => {
                    let other = store.has_other_order(&record_key, &order_id)?;
                    submission.step(Fact::KeyHasOtherOrder(other))
                }
                Step::Legacy(LegacyStep::Import(import)) => {
                    store.import(&self.state, &record_key, &import)?;
                    wrote = true;
                    submission.step(Fact::Imported)
                }
                Step::Done(conclusion) => {
                    return Ok(Driven {
                        conclusion,
                        wrote,
                        to_deliver,
                    });
                }
            };
        }
    }

    /// Waits until the storage has the placement, and makes sure an alarm will come:
    /// at once for an order to deliver (set before the wait, so that the alarm is
    /// committed with the order), or when the next record expires.
    async fn confirm(
        &self,
        shard: &Tables,
        limits: Limits,
        to_deliver: bool,
    ) -> worker::Result<()> {
        let now = now_ms();
        if to_deliver && self.alarm_at.get().is_none_or(|at| at > now) {
            self.set_alarm(now).await?;
        }
        self.state.storage().sync().await?;
        if self.alarm_at.get().is_none() {
            match self.state.storage().get_alarm().await? {
                Some(at) => self.alarm_at.set(Some(at)),
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
        self.alarm_at.set(Some(at_ms));
        Ok(())
    }
}

/// The key's live record, for a Worker to judge a request by (200 with the record
/// to keep), or 404.
fn record(store: &Tables, key: &str) -> (Answer, Option<Remember>) {
    let now = now_ms();
    match store.live_record(key, now) {
        Ok(Some(live)) => {
            let remember = Remember {
                expires_at_ms: now.saturating_add(live.ms_left),
                request_carries_payload: false,
                record: live.record,
            };
            (Answer::order(Vec::new()), Some(remember))
        }
        Ok(None) => (Answer::refusal(&Refusal::NotFound), None),
        Err(e) => {
            worker::console_error!("a record lookup failed in the object's storage: {e}");
            (Answer::refusal(&Refusal::Unavailable), None)
        }
    }
}

/// `GET /orders/{id}/delivery` in the order's object: 404 for an order it has not
/// delivered (an import from the old worker, or one placed without delivery).
fn delivery_state(store: &Tables, order_id: &str) -> Answer {
    match store.delivery_of(order_id) {
        Ok(Some(d)) => Answer::order(status_json(
            &d.state,
            d.attempts,
            d.last_error.as_deref(),
            d.delivered_ms,
        )),
        Ok(None) => Answer::refusal(&Refusal::NotFound),
        Err(e) => {
            worker::console_error!("a delivery lookup failed in the object's storage: {e}");
            Answer::refusal(&Refusal::Unavailable)
        }
    }
}

fn found(order: worker::Result<Option<Vec<u8>>>) -> Answer {
    match order {
        Ok(Some(body)) => Answer::order(receipt_with_terms(body)),
        Ok(None) => Answer::refusal(&Refusal::NotFound),
        Err(e) => {
            worker::console_error!("an order lookup failed in the object's storage: {e}");
            Answer::refusal(&Refusal::Unavailable)
        }
    }
}
