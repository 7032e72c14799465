//! Which key each request uses, and the loop each connection runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use clap::ValueEnum;

use crate::client::{Client, Target};
use crate::report::{Local, Tally};

/// What the load looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every request a new order under a fresh key.
    New,
    /// Retries of orders already placed (the replay path).
    Replay,
    /// All connections submit the same keys at once, some clients give up early and
    /// retry with the same key: the case that makes duplicates on a weak store.
    Race,
    /// Mostly new orders, some retries of recent ones.
    Mixed,
}

pub const ORDER_BODY: &str = r#"{"symbol":"AAPL","side":"buy","quantity":100}"#;
/// Keys retried in the replay scenario.
const REPLAY_KEYS: usize = 16;
/// Share of requests in the race scenario whose client gives up almost at once.
const IMPATIENT_SHARE: f64 = 0.1;
const IMPATIENT_TIMEOUT: Duration = Duration::from_millis(1);
/// Share of requests in the mixed scenario that retry a recent order.
const MIXED_RETRY_SHARE: f64 = 0.2;
/// Attempts per key before the bench gives up on it (the key stays unverified).
const MAX_ATTEMPTS: usize = 20;

/// The keys of one run and the order each one was answered with.
pub struct Keys {
    scenario: Scenario,
    prefix: String,
    replay_keys: Mutex<Vec<String>>,
    recent: Mutex<VecDeque<String>>,
    /// key → the orderId of its first 201, for the check.
    answered: Mutex<HashMap<String, String>>,
    /// Keys whose answers named more than one order: key → the orders other than
    /// the first.
    conflicts: Mutex<HashMap<String, HashSet<String>>>,
}

/// What the clients saw of keys whose answers named more than one order.
pub struct Conflicts {
    pub keys: usize,
    /// Orders beyond the first that answers named, over all keys.
    pub extra_orders: usize,
    /// The most orders that answers named for one key (1 when there is no conflict).
    pub most_for_one_key: usize,
}

impl Keys {
    pub fn new(scenario: Scenario) -> Self {
        let prefix = format!("bench-{}-{:08x}", std::process::id(), fastrand::u32(..));
        Self {
            scenario,
            prefix,
            replay_keys: Mutex::default(),
            recent: Mutex::default(),
            answered: Mutex::default(),
            conflicts: Mutex::default(),
        }
    }

    /// Every key answered with an order, and the order its first answer named.
    pub fn answered(&self) -> Vec<(String, String)> {
        let answered = lock(&self.answered);
        answered
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn conflicts(&self) -> Conflicts {
        let conflicts = lock(&self.conflicts);
        let extra = conflicts.values().map(HashSet::len);
        Conflicts {
            keys: conflicts.len(),
            extra_orders: extra.clone().sum(),
            most_for_one_key: 1 + extra.max().unwrap_or(0),
        }
    }

    /// Places the orders the replay scenario retries.
    pub async fn prepare_replays(&self, target: &Target) -> anyhow::Result<()> {
        let mut client = Client::new(target.clone(), Duration::from_secs(5));
        let mut local = Local::default();
        for i in 0..REPLAY_KEYS {
            let key = format!("{}-replay-{i}", self.prefix);
            submit(&mut client, self, &key, &mut local, None).await;
            lock(&self.replay_keys).push(key);
        }
        Ok(())
    }

    fn key_for(&self, connection: usize, n: u64) -> String {
        match self.scenario {
            Scenario::New => format!("{}-{connection}-{n}", self.prefix),
            // Every connection walks the same keys, so they collide.
            Scenario::Race => format!("{}-race-{n}", self.prefix),
            Scenario::Replay => {
                let keys = lock(&self.replay_keys);
                let at = (connection + n as usize) % keys.len().max(1);
                keys.get(at)
                    .cloned()
                    .unwrap_or_else(|| format!("{}-replay-0", self.prefix))
            }
            Scenario::Mixed => {
                let retry = fastrand::f64() < MIXED_RETRY_SHARE;
                let recent = lock(&self.recent);
                match recent.get(fastrand::usize(..recent.len().max(1))) {
                    Some(key) if retry => key.clone(),
                    _ => format!("{}-{connection}-{n}", self.prefix),
                }
            }
        }
    }

    fn timeout_for(&self, patient: std::time::Duration) -> std::time::Duration {
        if self.scenario == Scenario::Race && fastrand::f64() < IMPATIENT_SHARE {
            IMPATIENT_TIMEOUT
        } else {
            patient
        }
    }

    /// Notes the order an answer for `key` named; a second, different order is a
    /// conflict.
    fn saw(&self, key: &str, order_id: String) {
        let mut answered = lock(&self.answered);
        match answered.get(key) {
            Some(known) if *known != order_id => {
                lock(&self.conflicts)
                    .entry(key.to_owned())
                    .or_default()
                    .insert(order_id);
            }
            Some(_) => {}
            None => {
                answered.insert(key.to_owned(), order_id);
                if self.scenario == Scenario::Mixed {
                    let mut recent = lock(&self.recent);
                    recent.push_back(key.to_owned());
                    if recent.len() > 1024 {
                        recent.pop_front();
                    }
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection's loop until `until`; with a rate, requests are paced.
pub async fn drive(
    client: &mut Client,
    connection: usize,
    keys: &Keys,
    tally: &Tally,
    until: Instant,
    rate: Option<f64>,
) -> Local {
    let mut local = Local::default();
    let pace = rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let mut next = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next).await;
            next += pace;
        }
        let key = keys.key_for(connection, n);
        n += 1;
        submit(client, keys, &key, &mut local, Some(tally)).await;
    }
    local
}

/// Sends one key until it gets a final answer: a timeout, a lost connection, a 409 or
/// a 503 mean "unknown, retry with the same key".
async fn submit(
    client: &mut Client,
    keys: &Keys,
    key: &str,
    local: &mut Local,
    tally: Option<&Tally>,
) {
    let patient = client.timeout();
    for _ in 0..MAX_ATTEMPTS {
        let started = std::time::Instant::now();
        let answer = client
            .post(key, ORDER_BODY, keys.timeout_for(patient))
            .await;
        match answer {
            Ok(Some(answer)) => {
                // The progress line counts answers, not attempts that failed to connect.
                if let Some(tally) = tally {
                    tally.count();
                }
                local.record(answer.status.as_u16(), answer.replay, started.elapsed());
                if !matches!(answer.status.as_u16(), 201 | 409 | 503) {
                    local.note_first_error(|| {
                        format!(
                            "{} {}",
                            answer.status,
                            String::from_utf8_lossy(&answer.body)
                                .chars()
                                .take(200)
                                .collect::<String>()
                        )
                    });
                }
                // The old worker answers its replays with 200: they name an order too.
                let names_an_order = answer.status.as_u16() == 201
                    || (answer.status.as_u16() == 200 && answer.replay);
                if names_an_order {
                    if let Some(id) = order_id(&answer.body) {
                        keys.saw(key, id);
                    }
                    return;
                }
                if !matches!(answer.status.as_u16(), 409 | 503) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(None) => local.timeouts += 1,
            Err(e) => {
                local.errors += 1;
                local.note_first_error(|| format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// The `orderId` of an order JSON, without a full parse.
pub fn order_id(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"orderId\":\"")? + 11;
    text.get(start..start + 36).map(str::to_owned)
}
