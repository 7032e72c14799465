//! Property tests of the submission state machine alone, driven by random facts.

use std::sync::Arc;

use ordergate_core::{
    CacheHit, Fact, FinishedRecord, IdempotencyKey, Limits, LiveRecord, Outcome, Payload,
    Placement, PreTradeLimits, ScopedKey, Step, StoredResponse, Submission, TenantLimits,
};
use proptest::prelude::*;
use uuid::Uuid;

const LIMITS: Limits = Limits {
    result_ttl_ms: 60_000,
    lease_ttl_ms: 5_000,
};
/// More steps than any run can need: every wait ends by the first second.
const MAX_STEPS: usize = 10_000;

const BODIES: [&[u8]; 4] = [
    br#"{"symbol":"AAPL","side":"buy","quantity":100}"#,
    br#"{"quantity":1e2,"side":"buy","symbol":"AAPL"}"#,
    br#"{"symbol":"AAPL","side":"sell","quantity":100}"#,
    br#"{"symbol":"AAPL","side":"buy","quantity":100,"price":1}"#,
];

/// No limits file, then limits that refuse every body, none, or a rate only.
const CONTROLS: [Option<&str>; 5] = [
    None,
    Some("[default]\nhalted = true"),
    Some("[default]\nmax_quantity = 50"),
    Some("[default]\nmax_quantity = 100\nsymbols = [\"AAPL\"]"),
    Some("[default]\norders_per_second = 5"),
];

fn controls(n: usize) -> Option<Arc<TenantLimits>> {
    CONTROLS[n].map(|text| {
        let limits = PreTradeLimits::parse(text).expect("limits");
        limits.for_tenant("t").clone()
    })
}

/// A record stored for one of [`BODIES`], with a response of its own.
fn record_for(body: &[u8], n: u8) -> FinishedRecord {
    let fingerprint = Payload::from_body(body)
        .fingerprint()
        .expect("a JSON body without repeated members");
    FinishedRecord {
        fingerprint,
        response: StoredResponse {
            status: 201,
            location: format!("/orders/{n}"),
            body: vec![n; 8],
        },
    }
}

/// What the run saw: the steps asked for and the responses the facts offered.
#[derive(Default)]
struct Run {
    places: usize,
    placed_response: Option<StoredResponse>,
    offered: Vec<StoredResponse>,
    /// Reads that found no record for the key.
    reads_found_none: usize,
    rates_granted: usize,
    outcome: Option<Outcome>,
}

/// Answers each step with a fact of the right kind, chosen by `choices`, on a clock
/// that moves forward at every step.
fn drive(
    body: &'static [u8],
    record: &FinishedRecord,
    limits: Option<Arc<TenantLimits>>,
    choices: &[u8],
) -> Run {
    let key = IdempotencyKey::parse(b"key").expect("key");
    let mut now = 1_000i64;
    let mut s = Submission::new(ScopedKey::new("t", key), body, now, LIMITS);
    if let Some(limits) = limits {
        s = s.with_controls(limits);
    }
    let mut run = Run::default();
    let mut step = s.start();
    let mut held = false;
    for i in 0..MAX_STEPS {
        let choice = choices.get(i % choices.len().max(1)).copied().unwrap_or(0);
        now += 1 + i64::from(choice % 7) * 50;
        let live = LiveRecord {
            record: record.clone(),
            ms_left: 10_000,
        };
        step = match step {
            Step::Done(done) => {
                run.outcome = Some(done.outcome);
                return run;
            }
            Step::LookUpCache => {
                if choice % 3 == 0 {
                    run.offered.push(record.response.clone());
                    s.step(Fact::Cached(Some(CacheHit {
                        record,
                        same_bytes: choice % 2 == 0
                            && record_for(body, 0).fingerprint == record.fingerprint,
                    })))
                } else {
                    s.step(Fact::Cached(None))
                }
            }
            Step::ReadRecord => match choice % 3 {
                0 => s.step(Fact::Failed),
                1 => {
                    run.offered.push(record.response.clone());
                    s.step(Fact::Read {
                        record: Some(live),
                        asked_at_ms: now,
                    })
                }
                _ => {
                    run.reads_found_none += 1;
                    s.step(Fact::Read {
                        record: None,
                        asked_at_ms: now,
                    })
                }
            },
            Step::TakeRate { .. } => {
                assert!(!held, "only the claim's winner takes from the rate");
                let granted = choice % 2 == 0;
                run.rates_granted += usize::from(granted);
                s.step(Fact::Rate {
                    retry_after_seconds: (!granted).then_some(1),
                })
            }
            Step::Claim => {
                held = choice % 2 == 0;
                if held {
                    s.step(Fact::ClaimHeld)
                } else {
                    s.step(Fact::ClaimWon {
                        order_id: Uuid::from_u128(u128::from(choice)),
                        now_ms: now,
                    })
                }
            }
            Step::Legacy(step) => panic!("no old answer was given, yet it asked {step:?}"),
            Step::WaitForHolder { until_ms } => {
                assert!(held, "a wait only follows a held claim");
                s.step(Fact::Waited {
                    timed_out: now >= until_ms,
                })
            }
            Step::Place(order) => {
                assert!(!held, "a placement only follows a won claim");
                run.places += 1;
                run.placed_response = Some(order.response.clone());
                let placement = match choice % 5 {
                    0 => Placement::Placed,
                    1 => {
                        run.offered.push(record.response.clone());
                        Placement::Exists(live)
                    }
                    2 => Placement::InProgress,
                    3 => Placement::Abandoned,
                    _ => {
                        step = s.step(Fact::Failed);
                        continue;
                    }
                };
                s.step(Fact::Placed(placement))
            }
        };
    }
    run
}

proptest! {
    #[test]
    fn every_run_ends_in_one_outcome_with_at_most_one_placement(
        body in 0usize..BODIES.len(),
        stored in 0usize..BODIES.len(),
        limits in 0usize..CONTROLS.len(),
        choices in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let record = record_for(BODIES[stored], 9);
        let run = drive(BODIES[body], &record, controls(limits), &choices);
        let outcome = run.outcome.expect("the run ended");
        prop_assert!(run.places <= 1, "never two orders for one claim");
        prop_assert!(run.rates_granted <= 1, "one order takes one from the rate at most");
        if limits == 4 {
            prop_assert!(run.places <= run.rates_granted, "no order is placed past the rate");
        }
        if matches!(limits, 1 | 2) {
            prop_assert_eq!(run.places, 0, "limits that refuse the order never place it");
        }
        match outcome {
            Outcome::Created(response) => {
                prop_assert_eq!(Some(response), run.placed_response, "created what it placed");
            }
            Outcome::Replayed(response) => {
                prop_assert!(run.offered.contains(&response), "a replay is a stored answer, byte for byte");
                prop_assert_eq!(
                    record.fingerprint,
                    record_for(BODIES[body], 0).fingerprint,
                    "only the same payload replays"
                );
            }
            Outcome::KeyReused => {
                prop_assert!(!run.offered.is_empty(), "a reused key was judged against a record");
                prop_assert_ne!(record.fingerprint, record_for(BODIES[body], 0).fingerprint);
            }
            Outcome::Invalid(_) => prop_assert_eq!(BODIES[body], BODIES[3], "only the body with an extra member is invalid"),
            Outcome::Refused(_) => {
                prop_assert!(CONTROLS[limits].is_some(), "only a limits file refuses");
                prop_assert_eq!(run.places, 0, "a refused order is not placed");
                prop_assert!(run.reads_found_none > 0, "refused only once the key showed no record");
                prop_assert!(body != 3, "an invalid body is answered as invalid");
            }
            Outcome::InProgress | Outcome::Unavailable => {}
        }
    }

    #[test]
    fn facts_out_of_turn_still_end_in_one_outcome_and_one_placement_at_most(
        facts in proptest::collection::vec(0u8..8, 1..40),
    ) {
        let key = IdempotencyKey::parse(b"key").expect("key");
        let mut s = Submission::new(ScopedKey::new("t", key), BODIES[0], 0, LIMITS);
        let record = record_for(BODIES[0], 1);
        let mut places = 0;
        let mut outcomes = Vec::new();
        let mut step = s.start();
        for f in facts {
            match &step {
                Step::Place(_) => places += 1,
                Step::Done(done) => outcomes.push(done.outcome.clone()),
                _ => {}
            }
            let fact = match f {
                0 => Fact::Cached(None),
                1 => Fact::Read { record: None, asked_at_ms: 0 },
                2 => Fact::ClaimWon { order_id: Uuid::nil(), now_ms: 0 },
                3 => Fact::ClaimHeld,
                4 => Fact::Placed(Placement::Placed),
                5 => Fact::Waited { timed_out: false },
                6 => Fact::Cached(Some(CacheHit { record: &record, same_bytes: true })),
                _ => Fact::Failed,
            };
            step = s.step(fact);
        }
        prop_assert!(places <= 1);
        prop_assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "once over, the outcome never changes");
    }
}
