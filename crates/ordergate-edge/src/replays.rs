//! The isolate's replay cache: finished records the objects said may be kept, so a
//! retry that reaches the same isolate is answered without a trip to its object.
//!
//! The cache is the core's (`ordergate_core::replay_cache`), as the server's is: an
//! entry never outlives its record, and a live record never changes, so an isolate
//! that answers from it answers what the object would. What is kept is the record the
//! object sent beside its answer ([`wire::Kept`]), never an answer rebuilt into one.

use ordergate_core::replay_cache::ReplayCache;
use ordergate_core::{Answer, CacheHit, Fact, FinishedRecord, Limits, ScopedKey, Step, Submission};
use worker::Response;

use crate::respond;
use crate::wire::{Kept, Reply};

thread_local! {
    static REPLAYS: ReplayCache = ReplayCache::default();
}

/// The answer from the cache, when the core's machine can give one from it.
pub fn answer(key: &ScopedKey, body: &[u8], now_ms: i64, limits: Limits) -> Option<Answer> {
    let cached = REPLAYS.with(|cache| cache.get(key, now_ms))?;
    judge(
        key,
        body,
        now_ms,
        limits,
        &cached.record,
        cached.was_answered_for(body),
    )
}

/// The answer a finished record gives this request: its replay, or a reused key.
pub fn judge(
    key: &ScopedKey,
    body: &[u8],
    now_ms: i64,
    limits: Limits,
    record: &FinishedRecord,
    same_bytes: bool,
) -> Option<Answer> {
    let mut submission = Submission::new(key.clone(), body, now_ms, limits);
    let Step::LookUpCache = submission.start() else {
        return None;
    };
    let hit = CacheHit { record, same_bytes };
    match submission.step(Fact::Cached(Some(hit))) {
        Step::Done(conclusion) => Some(Answer::outcome(conclusion.outcome)),
        _ => None,
    }
}

/// Keeps a record an object sent, until its expiry.
pub fn keep(key: ScopedKey, body: &[u8], kept: Kept) {
    let request = kept
        .carries_payload
        .then(|| bytes::Bytes::copy_from_slice(body));
    REPLAYS.with(|cache| cache.insert(key, kept.record, request, kept.expires_at_ms));
}

/// In the Worker: keeps what an object's reply says may be kept, and gives the client
/// the reply's answer.
pub fn learn(key: ScopedKey, body: &[u8], mut reply: Reply) -> worker::Result<Response> {
    if let Some(kept) = reply.keep.take() {
        keep(key, body, kept);
    }
    respond::reply(reply)
}
