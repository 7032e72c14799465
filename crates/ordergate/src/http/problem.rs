//! The one place where refusals and answers become HTTP responses.
//!
//! What a client receives is decided in `ordergate_core` ([`Refusal`], [`Answer`]);
//! this only turns it into axum's types. A 5xx never carries internal text: causes
//! are logged where they happen.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ordergate_core::{Answer, Refusal};

use crate::store::StoreError;

/// The store's failure was logged and counted where it happened; the client learns
/// only that the outcome is unknown.
impl From<StoreError> for Refusal {
    fn from(_: StoreError) -> Self {
        Self::Unavailable
    }
}

/// A refusal as a problem+json response.
pub fn refusal_response(refusal: &Refusal) -> Response {
    answer_response(Answer::refusal(refusal))
}

/// An answer as an axum response.
pub fn answer_response(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Body::from(answer.body)).into_response();
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}
