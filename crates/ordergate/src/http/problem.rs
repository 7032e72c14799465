//! The one place where errors become HTTP responses.
//!
//! Every error is `application/problem+json` with the contract's `error` code. A 5xx
//! never carries internal text: causes are logged where they happen.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordergate_core::{ErrorCode, InvalidOrder, KeyError, Problem, RETRY_AFTER_SECONDS};

use crate::store::StoreError;

/// Everything an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(u64),
    #[error("the request's header section is larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("the request body did not arrive in time")]
    BodyTimedOut,
    #[error("the request body could not be read")]
    BodyBroken,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the idempotencyKey query parameter is required")]
    MissingLookupKey,
    #[error("the idempotencyKey query parameter is malformed: {0}")]
    LookupKey(&'static str),
    #[error("not ready: {0}")]
    NotReady(&'static str),
    #[error("no such order")]
    NotFound,
    #[error("no such route: see /openapi.json for the API's paths")]
    NoRoute,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("a request with this key is still being processed")]
    InProgress,
    #[error("this key was used with a different payload")]
    KeyReused,
    #[error(transparent)]
    InvalidOrder(#[from] InvalidOrder),
    #[error("the order's outcome is unknown: retry with the same key and body")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::HeadersTooLarge(_) => ErrorCode::HeaderFieldsTooLarge,
            Self::BodyTimedOut => ErrorCode::RequestTimeout,
            Self::BodyBroken => ErrorCode::BadRequest,
            Self::Key(KeyError::Missing) | Self::MissingLookupKey => {
                ErrorCode::MissingIdempotencyKey
            }
            Self::Key(KeyError::Malformed(_)) | Self::LookupKey(_) => {
                ErrorCode::InvalidIdempotencyKey
            }
            Self::NotFound | Self::NoRoute => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::InProgress => ErrorCode::InProgress,
            Self::KeyReused => ErrorCode::IdempotencyKeyReused,
            Self::InvalidOrder(_) => ErrorCode::InvalidOrder,
            Self::Unavailable | Self::NotReady(_) => ErrorCode::Unavailable,
            Self::Internal => ErrorCode::Internal,
        }
    }

    fn problem(&self) -> Problem {
        let problem = Problem::new(self.code(), self.to_string());
        match self {
            Self::InProgress | Self::Unavailable | Self::NotReady(_) => {
                problem.with_retry_after(RETRY_AFTER_SECONDS)
            }
            _ => problem,
        }
    }
}

/// The store's failure was logged and counted where it happened; the client learns
/// only that the outcome is unknown.
impl From<StoreError> for ApiError {
    fn from(_: StoreError) -> Self {
        Self::Unavailable
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = problem_response(&self.problem());
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::UnsupportedMediaType(_) => {
                headers.insert("accept-post", HeaderValue::from_static("application/json"));
            }
            _ => {}
        }
        response
    }
}

/// A problem+json response, with `Retry-After` when the problem has one.
pub fn problem_response(problem: &Problem) -> Response {
    let status =
        StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, problem.to_json()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = problem.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
