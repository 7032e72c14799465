//! Why a request gets a problem instead of an order: every refusal of the contract,
//! its code and its problem+json, the same for the server and the edge build.

use crate::controls::ControlRefusal;
use crate::key::KeyError;
use crate::order::InvalidOrder;
use crate::problem::{ErrorCode, Problem};
use crate::protocol::RETRY_AFTER_SECONDS;

/// Everything an API request can fail with. `Display` is the problem's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
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
    #[error("this build has no /metrics: the platform's analytics and the logs take its place")]
    MetricsElsewhere,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("a request with this key is still being processed")]
    InProgress,
    #[error("this key was used with a different payload")]
    KeyReused,
    #[error(transparent)]
    InvalidOrder(#[from] InvalidOrder),
    #[error(transparent)]
    Control(#[from] ControlRefusal),
    #[error("the order's outcome is unknown: retry with the same key and body")]
    Unavailable,
    #[error("the gateway is not configured to take orders (its log says why)")]
    NotConfigured,
    #[error("internal error")]
    Internal,
}

impl Refusal {
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
            Self::NotFound | Self::NoRoute | Self::MetricsElsewhere => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::InProgress => ErrorCode::InProgress,
            Self::KeyReused => ErrorCode::IdempotencyKeyReused,
            Self::InvalidOrder(_) => ErrorCode::InvalidOrder,
            Self::Control(control) => control.code(),
            Self::Unavailable | Self::NotReady(_) | Self::NotConfigured => ErrorCode::Unavailable,
            Self::Internal => ErrorCode::Internal,
        }
    }

    pub fn problem(&self) -> Problem {
        let problem = Problem::new(self.code(), self.to_string());
        match self {
            Self::InProgress | Self::Unavailable | Self::NotReady(_) | Self::NotConfigured => {
                problem.with_retry_after(RETRY_AFTER_SECONDS)
            }
            Self::Control(ControlRefusal::RateLimited {
                retry_after_seconds,
                ..
            }) => problem.with_retry_after(*retry_after_seconds),
            _ => problem,
        }
    }
}
