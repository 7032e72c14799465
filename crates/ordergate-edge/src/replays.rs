//! The isolate's replay cache: finished answers the objects said may be kept, so a
//! retry that reaches the same isolate is answered without a trip to its object.
//!
//! The cache is the core's (`ordergate_core::replay_cache`), as the server's is: an
//! entry never outlives its record, and a live record never changes, so an isolate
//! that answers from it answers what the object would.

use ordergate_core::replay_cache::ReplayCache;
use ordergate_core::submission::Remember;
use ordergate_core::{
    Answer, CacheHit, Fact, Fingerprint, FinishedRecord, Limits, ScopedKey, Step, StoredResponse,
    Submission,
};
use worker::{Headers, Response};

/// Between an object and the Worker only: what the Worker may keep of an answer.
const FINGERPRINT: &str = "x-ordergate-keep-fingerprint";
const EXPIRES_AT: &str = "x-ordergate-keep-until";
const CARRIES_PAYLOAD: &str = "x-ordergate-keep-request";

thread_local! {
    static REPLAYS: ReplayCache = ReplayCache::default();
}

/// The answer from the cache, when the core's machine can give one from it.
pub fn answer(key: &ScopedKey, body: &[u8], now_ms: i64, limits: Limits) -> Option<Answer> {
    let cached = REPLAYS.with(|cache| cache.get(key, now_ms))?;
    let mut submission = Submission::new(key.clone(), body, now_ms, limits);
    let Step::LookUpCache = submission.start() else {
        return None;
    };
    let hit = CacheHit {
        record: &cached.record,
        same_bytes: cached.was_answered_for(body),
    };
    match submission.step(Fact::Cached(Some(hit))) {
        Step::Done(conclusion) => Some(Answer::outcome(conclusion.outcome)),
        _ => None,
    }
}

/// In an object: marks an answer with what the Worker may keep of it.
pub fn mark(answer: &mut Answer, remember: &Remember) {
    let headers = &mut answer.headers;
    headers.push((FINGERPRINT, remember.record.fingerprint.to_hex()));
    headers.push((EXPIRES_AT, remember.expires_at_ms.to_string()));
    let carries = if remember.request_carries_payload {
        "1"
    } else {
        "0"
    };
    headers.push((CARRIES_PAYLOAD, carries.to_owned()));
}

/// In the Worker: keeps what an object's answer says may be kept, and gives the
/// client the answer without the marks.
pub async fn learn(
    key: ScopedKey,
    body: &[u8],
    mut response: Response,
) -> worker::Result<Response> {
    let marks = response.headers();
    let header = |name| marks.get(name).ok().flatten();
    let (Some(fingerprint), Some(expires_at)) = (header(FINGERPRINT), header(EXPIRES_AT)) else {
        return Ok(response);
    };
    let carries_payload = header(CARRIES_PAYLOAD).as_deref() == Some("1");
    let status = response.status_code();
    let clean = Headers::new();
    for (name, value) in marks.entries() {
        if !name.starts_with("x-ordergate-keep-") {
            clean.append(&name, &value)?;
        }
    }
    let location = clean.get("location")?.unwrap_or_default();
    let stored = response.bytes().await?;
    if let (Some(fingerprint), Ok(expires_at_ms)) = (
        Fingerprint::from_hex(&fingerprint),
        expires_at.parse::<i64>(),
    ) {
        let record = FinishedRecord {
            fingerprint,
            response: StoredResponse {
                status,
                location,
                body: stored.clone(),
            },
        };
        let request = carries_payload.then(|| bytes::Bytes::copy_from_slice(body));
        REPLAYS.with(|cache| cache.insert(key, record, request, expires_at_ms));
    }
    Ok(Response::from_bytes(stored)?
        .with_status(status)
        .with_headers(clean))
}
