//! The HTTP-level checks of `POST /orders`, in the contract's order: token, media
//! type and encoding, body size, then the `Idempotency-Key` header.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use ordergate_core::IdempotencyKey;

use super::ApiError;
use crate::auth::Auth;

/// Step 2: the tenant of the bearer token.
pub fn tenant(auth: &Auth, headers: &HeaderMap) -> Result<String, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    auth.tenant(authorization).ok_or(ApiError::Unauthorized)
}

/// How long a client may take to send its body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of an oversized body read (and dropped) before answering 413.
const DISCARD_LIMIT: usize = 1 << 20;

/// Step 3: JSON (`application/json` or any `+json` type) or no type; no encoding.
pub fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    if let Some(value) = types.next()
        && (types.next().is_some() || !is_json(value.as_bytes()))
    {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    for encoding in headers.get_all(header::CONTENT_ENCODING) {
        if !encoding
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"identity")
        {
            return Err(ApiError::UnsupportedMediaType(
                "encoded bodies are not accepted (Content-Encoding must be identity)",
            ));
        }
    }
    Ok(())
}

fn is_json(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
        .to_ascii_lowercase();
    let Some(slash) = essence.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (kind, subtype) = (&essence[..slash], &essence[slash + 1..]);
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|b| b.is_ascii_graphic() && *b != b'/');
    token(kind) && token(subtype) && (essence == b"application/json" || subtype.ends_with(b"+json"))
}

/// Step 4: the body, at most `max` bytes, within [`BODY_READ_TIMEOUT`] (408 after it).
pub async fn read_body(headers: &HeaderMap, body: Body, max: u64) -> Result<Bytes, ApiError> {
    // `timeout` polls the read before its timer, and arms the timer only if the read
    // is pending: the body of a small order nearly always came with its headers.
    tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(headers, body, max))
        .await
        .unwrap_or(Err(ApiError::BodyTimedOut))
}

/// A declared length over the limit is refused before anything is read.
async fn read_limited(headers: &HeaderMap, mut body: Body, max: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        discard(body).await;
        return Err(ApiError::PayloadTooLarge(max));
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let mut collected = Vec::new();
    loop {
        match body.frame().await {
            None => return Ok(Bytes::from(collected)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if collected.len() + data.len() > limit {
                        discard(body).await;
                        return Err(ApiError::PayloadTooLarge(max));
                    }
                    collected.extend_from_slice(data);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body could not be read");
                return Err(ApiError::BodyBroken);
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
pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    let lines = headers
        .get_all("idempotency-key")
        .iter()
        .map(|v| v.as_bytes());
    Ok(IdempotencyKey::from_header_lines(lines)?)
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_media_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.acme.order+json",
            "application/problem+json;v=1",
        ] {
            assert!(is_json(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/xml",
            "json",
            "application/",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(bad.as_bytes()), "{bad}");
        }
    }
}
