//! The machine-readable errors of the contract and their RFC 9457 problem+json shape.
//!
//! HTTP-agnostic on purpose: the server maps a [`Problem`] to a response in one place,
//! and a Worker build can do the same with its own HTTP types.

use serde::Serialize;

/// Every error the API answers with; `code()` is the `error` member clients read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    MissingIdempotencyKey,
    InvalidIdempotencyKey,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    InProgress,
    PayloadTooLarge,
    UnsupportedMediaType,
    HeaderFieldsTooLarge,
    IdempotencyKeyReused,
    InvalidOrder,
    TradingHalted,
    SymbolNotAllowed,
    LimitExceeded,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::MissingIdempotencyKey | Self::InvalidIdempotencyKey => 400,
            Self::Unauthorized => 401,
            Self::TradingHalted => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::InProgress => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::HeaderFieldsTooLarge => 431,
            Self::IdempotencyKeyReused
            | Self::InvalidOrder
            | Self::SymbolNotAllowed
            | Self::LimitExceeded => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MissingIdempotencyKey => "missing_idempotency_key",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::InProgress => "in_progress",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::HeaderFieldsTooLarge => "request_header_fields_too_large",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InvalidOrder => "invalid_order",
            Self::TradingHalted => "trading_halted",
            Self::SymbolNotAllowed => "symbol_not_allowed",
            Self::LimitExceeded => "limit_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// The HTTP reason phrase, used as the problem's `title`.
    pub fn title(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            409 => "Conflict",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            431 => "Request Header Fields Too Large",
            422 => "Unprocessable Content",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }
}

/// One problem+json answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: ErrorCode,
    pub detail: String,
    /// Seconds, for 409, 429 and 503: sent as `Retry-After` and as `retryAfter`.
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u32>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The `application/problem+json` body.
    pub fn to_json(&self) -> Vec<u8> {
        let json = ProblemJson {
            kind: "about:blank",
            title: self.code.title(),
            status: self.code.status(),
            detail: &self.detail,
            error: self.code.code(),
            retry_after: self.retry_after,
        };
        serde_json::to_vec(&json).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_carries_the_old_error_member() {
        let problem = Problem::new(
            ErrorCode::InProgress,
            "a request with this key is still being processed",
        )
        .with_retry_after(1);
        assert_eq!(
            String::from_utf8(problem.to_json()).expect("UTF-8"),
            r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"a request with this key is still being processed","error":"in_progress","retryAfter":1}"#
        );
    }
}
