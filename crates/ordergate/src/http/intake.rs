//! The HTTP-level checks of `POST /orders`, in the contract's order: token, media
//! type and encoding, body size, then the `Idempotency-Key` header. The rules are
//! `ordergate_core::intake`'s; this reads them off axum's request.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use ordergate_core::intake::{self, DISCARD_LIMIT};
use ordergate_core::{IdempotencyKey, Refusal};

use crate::auth::Auth;

/// Step 2: the tenant of the bearer token (exactly one `Authorization` line).
pub fn tenant(auth: &Auth, headers: &HeaderMap) -> Result<String, Refusal> {
    let lines = headers.get_all(header::AUTHORIZATION);
    auth.with_tenancy(|tenancy| intake::tenant(tenancy, lines.iter().map(|v| v.as_bytes())))
}

/// How long a client may take to send its body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Step 3: JSON (`application/json` or any `+json` type) or no type; no encoding.
pub fn check_media_type(headers: &HeaderMap) -> Result<(), Refusal> {
    intake::check_media_type(
        headers
            .get_all(header::CONTENT_TYPE)
            .iter()
            .map(|v| v.as_bytes()),
        headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .map(|v| v.as_bytes()),
    )
}

/// Step 4: the body, at most `max` bytes, within [`BODY_READ_TIMEOUT`] (408 after it).
pub async fn read_body(headers: &HeaderMap, body: Body, max: u64) -> Result<Bytes, Refusal> {
    // `timeout` polls the read before its timer, and arms the timer only if the read
    // is pending: the body of a small order nearly always came with its headers.
    tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(headers, body, max))
        .await
        .unwrap_or(Err(Refusal::BodyTimedOut))
}

/// A declared length over the limit is refused before anything is read.
async fn read_limited(headers: &HeaderMap, mut body: Body, max: u64) -> Result<Bytes, Refusal> {
    let declared = headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes());
    if let Err(too_large) = intake::check_declared_length(declared, max) {
        discard(body).await;
        return Err(too_large);
    }
    let mut collected = Vec::new();
    loop {
        match body.frame().await {
            None => return Ok(Bytes::from(collected)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(too_large) =
                        intake::check_body_length(collected.len() + data.len(), max)
                    {
                        discard(body).await;
                        return Err(too_large);
                    }
                    collected.extend_from_slice(data);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body could not be read");
                return Err(Refusal::BodyBroken);
            }
        }
    }
}

/// Reads and drops up to [`DISCARD_LIMIT`] more bytes of a refused body, so that a
/// client still sending it can read the 413 instead of a reset connection. Beyond
/// that the connection is closed on it.
async fn discard(mut body: Body) {
    let mut seen = 0usize;
    while seen < DISCARD_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// Step 5: exactly one well-formed `Idempotency-Key` line.
pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, Refusal> {
    intake::idempotency_key(
        headers
            .get_all("idempotency-key")
            .iter()
            .map(|v| v.as_bytes()),
    )
}
