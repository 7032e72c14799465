//! Answers built from what the gateway returned: a submission's outcome (the stored
//! answer, or the problem it maps to) and an order read back.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordergate_core::{Outcome, StoredResponse};

use super::ApiError;

/// The answer to a submission that passed the HTTP checks.
pub fn outcome_response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Created(stored) => stored_response(stored, false),
        Outcome::Replayed(stored) => stored_response(stored, true),
        Outcome::InProgress => ApiError::InProgress.into_response(),
        Outcome::KeyReused => ApiError::KeyReused.into_response(),
        Outcome::Invalid(invalid) => ApiError::InvalidOrder(invalid).into_response(),
        Outcome::Unavailable => ApiError::Unavailable.into_response(),
    }
}

fn stored_response(stored: StoredResponse, replay: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Ok(location) = HeaderValue::from_str(&stored.location) {
        builder = builder.header(header::LOCATION, location);
    }
    if replay {
        builder = builder.header("idempotent-replay", "true");
    }
    builder
        .body(Body::from(stored.body))
        .unwrap_or_else(|_| ApiError::Internal.into_response())
}

/// An order JSON read back with `GET`.
pub fn order_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
