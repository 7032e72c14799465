//! Delivery's rules, for every deliverer (the server's and the edge build's): the
//! message a sink receives, the Standard Webhooks headers and signature, what a
//! webhook's answer means, the backoff between attempts, the judgement of one
//! attempt, and the delivery's state as `GET /orders/{id}/delivery` shows it. No I/O
//! and no clock: times and the random jitter are passed in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::order::format_timestamp;

/// First and longest pause between attempts of one delivery.
pub const FIRST_RETRY_MS: i64 = 1_000;
pub const LAST_RETRY_MS: i64 = 300_000;

/// The message body of an accepted order: `{"type":"order.accepted","sequence":…,
/// "tenant":…,"timestamp":…,"data":{the order JSON, as in the 201}}`.
pub fn message_body(sequence: i64, tenant: &str, now_ms: i64, order_json: &[u8]) -> Vec<u8> {
    let mut body = format!(
        r#"{{"type":"order.accepted","sequence":{sequence},"tenant":{},"timestamp":"{}","data":"#,
        serde_json::Value::from(tenant),
        format_timestamp(now_ms),
    )
    .into_bytes();
    body.extend_from_slice(order_json);
    body.push(b'}');
    body
}

/// Why a webhook secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook secret must look like whsec_<base64>")]
    NoPrefix,
    #[error("the webhook secret after whsec_ is not base64")]
    NotBase64,
    #[error("the webhook secret is empty")]
    Empty,
}

/// The signing key of a `whsec_<base64>` secret.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = secret.strip_prefix("whsec_").ok_or(SecretError::NoPrefix)?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(key)
}

/// The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of
/// `id.timestamp.body` (Standard Webhooks).
pub fn webhook_signature(key: &[u8], id: &str, timestamp_s: u64, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        // HMAC takes keys of any length: this cannot happen.
        return String::new();
    };
    mac.update(format!("{id}.{timestamp_s}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The headers of one webhook request (Standard Webhooks, plus `Idempotency-Key`):
/// `id` is the order id, `timestamp_s` the Unix time of sending.
pub fn webhook_headers(
    key: &[u8],
    id: &str,
    timestamp_s: u64,
    body: &[u8],
) -> [(&'static str, String); 5] {
    [
        ("content-type", "application/json".to_owned()),
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp_s.to_string()),
        (
            "webhook-signature",
            webhook_signature(key, id, timestamp_s, body),
        ),
        ("idempotency-key", id.to_owned()),
    ]
}

/// What a webhook's HTTP status means: only a 2xx confirms. Anything else is worth
/// another try (a receiver may be down, overloaded, or not yet deployed).
pub fn webhook_answer(status: u16) -> Sent {
    if (200..300).contains(&status) {
        Sent::Confirmed
    } else {
        Sent::Transient(format!("the webhook answered {status}"))
    }
}

/// The body of `GET /orders/{orderId}/delivery`: `{"state":…,"attempts":…,
/// "lastError":…,"deliveredAt":…}`.
pub fn status_json(
    state: &str,
    attempts: i64,
    last_error: Option<&str>,
    delivered_at_ms: Option<i64>,
) -> Vec<u8> {
    let json = serde_json::json!({
        "state": state,
        "attempts": attempts,
        "lastError": last_error,
        "deliveredAt": delivered_at_ms.map(format_timestamp),
    });
    json.to_string().into_bytes()
}

/// The pause before attempt `attempt + 1`: 1 s doubling to 5 min, less up to half of
/// it by `jitter` (a uniformly random `u32`), so that the retries of one outage
/// spread out.
pub fn backoff_ms(attempt: i64, jitter: u32) -> i64 {
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let full = FIRST_RETRY_MS
        .saturating_mul(1_i64 << doublings)
        .min(LAST_RETRY_MS);
    let spread = (full / 2).saturating_mul(i64::from(jitter)) / i64::from(u32::MAX);
    full - spread
}

/// What came of sending one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The sink confirmed it.
    Confirmed,
    /// Not confirmed this time (an outage, a timeout, a 5xx): worth another try.
    Transient(String),
    /// Refused for good (the receiver rejected the order itself): no retry.
    Permanent(String),
}

/// One delivery as its deliverer holds it.
#[derive(Debug, Clone, Copy)]
pub struct Attempted {
    /// When the order was accepted.
    pub accepted_at_ms: i64,
    /// Attempts before this one.
    pub attempts: i64,
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered {
        at_ms: i64,
    },
    Retry {
        error: String,
        next_at_ms: i64,
    },
    /// Refused for good, or still failing past the maximum age.
    Failed {
        error: String,
    },
}

impl Verdict {
    /// The label of the attempt's result in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Delivered { .. } => "delivered",
            Verdict::Retry { .. } => "retry",
            Verdict::Failed { .. } => "failed",
        }
    }
}

/// Judges an attempt that ended at `now_ms`.
pub fn judge(
    delivery: Attempted,
    sent: Sent,
    now_ms: i64,
    max_age_ms: i64,
    jitter: u32,
) -> Verdict {
    match sent {
        Sent::Confirmed => Verdict::Delivered { at_ms: now_ms },
        Sent::Permanent(error) => Verdict::Failed { error },
        Sent::Transient(error) if now_ms.saturating_sub(delivery.accepted_at_ms) >= max_age_ms => {
            Verdict::Failed { error }
        }
        Sent::Transient(error) => Verdict::Retry {
            error,
            next_at_ms: now_ms.saturating_add(backoff_ms(delivery.attempts + 1, jitter)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            webhook_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_need_the_prefix_and_base64() {
        assert_eq!(webhook_key("nope"), Err(SecretError::NoPrefix));
        assert_eq!(webhook_key("whsec_!!"), Err(SecretError::NotBase64));
        assert_eq!(webhook_key("whsec_"), Err(SecretError::Empty));
    }

    #[test]
    fn retries_back_off_from_about_a_second_to_five_minutes() {
        assert_eq!(backoff_ms(1, 0), 1_000);
        assert_eq!(backoff_ms(1, u32::MAX), 500);
        assert_eq!(backoff_ms(2, 0), 2_000);
        assert_eq!(backoff_ms(12, 0), 300_000);
        assert_eq!(backoff_ms(1_000, u32::MAX), 150_000);
        for jitter in [0, 1, u32::MAX / 3, u32::MAX] {
            assert!((500..=1_000).contains(&backoff_ms(1, jitter)));
            assert!((150_000..=300_000).contains(&backoff_ms(i64::MAX, jitter)));
        }
    }

    #[test]
    fn an_attempt_is_delivered_retried_or_failed() {
        let young = Attempted {
            accepted_at_ms: 0,
            attempts: 0,
        };
        assert_eq!(
            judge(young, Sent::Confirmed, 10, 1_000, 0),
            Verdict::Delivered { at_ms: 10 }
        );
        assert_eq!(
            judge(young, Sent::Transient("down".into()), 10, 1_000, 0),
            Verdict::Retry {
                error: "down".into(),
                next_at_ms: 1_010
            }
        );
        assert_eq!(
            judge(young, Sent::Permanent("rejected".into()), 10, 1_000, 0),
            Verdict::Failed {
                error: "rejected".into()
            }
        );
        assert_eq!(
            judge(young, Sent::Transient("down".into()), 1_000, 1_000, 0),
            Verdict::Failed {
                error: "down".into()
            },
            "past the maximum age"
        );
    }

    #[test]
    fn a_webhook_request_carries_the_signature_of_its_own_id_timestamp_and_body() {
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let headers = webhook_headers(&key, "o-1", 7, b"{}");
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value("webhook-id").as_deref(), Some("o-1"));
        assert_eq!(value("idempotency-key").as_deref(), Some("o-1"));
        assert_eq!(value("webhook-timestamp").as_deref(), Some("7"));
        assert_eq!(
            value("webhook-signature"),
            Some(webhook_signature(&key, "o-1", 7, b"{}"))
        );
    }

    #[test]
    fn only_a_2xx_confirms_a_webhook_delivery() {
        assert_eq!(webhook_answer(200), Sent::Confirmed);
        assert_eq!(webhook_answer(204), Sent::Confirmed);
        for status in [199, 301, 400, 404, 500, 503] {
            assert_eq!(
                webhook_answer(status),
                Sent::Transient(format!("the webhook answered {status}"))
            );
        }
    }

    #[test]
    fn the_delivery_state_is_shown_with_its_time_as_rfc3339() {
        let json: serde_json::Value =
            serde_json::from_slice(&status_json("delivered", 2, None, Some(12))).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"state":"delivered","attempts":2,"lastError":null,
                               "deliveredAt":"1970-01-01T00:00:00.012Z"})
        );
        let json: serde_json::Value =
            serde_json::from_slice(&status_json("pending", 1, Some("down"), None)).expect("JSON");
        assert_eq!(
            (json["lastError"].as_str(), json["deliveredAt"].is_null()),
            (Some("down"), true)
        );
    }

    #[test]
    fn a_message_wraps_the_order_json_with_its_sequence_and_tenant() {
        let body = message_body(42, "acme", 12, br#"{"orderId":"x","status":"accepted"}"#);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["type"], "order.accepted");
        assert_eq!(json["sequence"], 42);
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["timestamp"], "1970-01-01T00:00:00.012Z");
        assert_eq!(json["data"]["orderId"], "x");
    }
}
