//! The HTTP-level checks of `POST /orders`, in the contract's order: token, media
//! type and encoding, body size, then the `Idempotency-Key` header. The rules and
//! their order are `ordergate_core::intake`'s; this reads the header lines off axum's
//! request and the body off hyper's.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use ordergate_core::intake::{self, DISCARD_LIMIT, PostHeaders};
use ordergate_core::{IdempotencyKey, Refusal};

use crate::auth::Auth;

/// Step 2: the tenant of the bearer token (exactly one `Authorization` line).
pub fn tenant(auth: &Auth, headers: &HeaderMap) -> Result<String, Refusal> {
    let lines = headers.get_all(header::AUTHORIZATION);
    auth.with_tenancy(|tenancy| intake::tenant(tenancy, lines.iter().map(|v| v.as_bytes())))
}

const IDEMPOTENCY_KEY: header::HeaderName = header::HeaderName::from_static("idempotency-key");

/// How long a client may take to send its body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The lines of a request's headers that the checks of `POST /orders` read.
fn post_headers(headers: &HeaderMap) -> PostHeaders<'_> {
    let lines = |name| headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    PostHeaders {
        authorization: lines(header::AUTHORIZATION),
        content_type: lines(header::CONTENT_TYPE),
        content_encoding: lines(header::CONTENT_ENCODING),
        content_length: headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()),
        idempotency_key: lines(IDEMPOTENCY_KEY),
    }
}

/// Steps 2 to 5 of `POST /orders`, in the order the core composes them: the tenant,
/// the body (at most `max` bytes, within [`BODY_READ_TIMEOUT`]) and the key.
pub async fn checked_post(
    auth: &Auth,
    headers: &HeaderMap,
    body: Body,
    max: u64,
) -> Result<(String, Bytes, IdempotencyKey), Refusal> {
    let lines = post_headers(headers);
    let tenant = match auth.with_tenancy(|t| intake::before_body(t, &lines, max)) {
        Ok(tenant) => tenant,
        Err(too_large @ Refusal::PayloadTooLarge(_)) => {
            discard(body).await;
            return Err(too_large);
        }
        Err(refused) => return Err(refused),
    };
    let body = read_body(body, max).await?;
    Ok((tenant, body, intake::after_body(&lines)?))
}

/// Step 4: the body, at most `max` bytes, within [`BODY_READ_TIMEOUT`] (408 after it).
async fn read_body(body: Body, max: u64) -> Result<Bytes, Refusal> {
    // `timeout` polls the read before its timer, and arms the timer only if the read
    // is pending: the body of a small order nearly always came with its headers.
    tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(body, max))
        .await
        .unwrap_or(Err(Refusal::BodyTimedOut))
}

async fn read_limited(mut body: Body, max: u64) -> Result<Bytes, Refusal> {
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
