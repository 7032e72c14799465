//! The switch-over from the old worker: a key it answered is replayed from its
//! stored `result:KEY` value instead of placing a second order.
//!
//! The old worker stored the order JSON it answered with, and nothing of the request:
//! such a replay cannot tell a reused key from a retry. Its `Location` comes from the
//! stored `orderId`.
//!
//! It stored the answer under the header's raw value, so a key sent quoted
//! (`"abc"`) sits under `result:"abc"`, and sent plain under `result:abc`: both name
//! the same key here, so both entries are looked for.

use serde::Deserialize;

use crate::key::IdempotencyKey;
use crate::order::location_of;
use crate::protocol::{Outcome, StoredResponse};

/// The KV keys under which the old worker may have kept `key`'s answer, most likely
/// first: the header value as this request sent it (the old worker saw the same
/// bytes), then the decoded key, then the key written as an RFC 8941 string.
pub fn result_keys(raw_header: Option<&str>, key: &IdempotencyKey) -> Vec<String> {
    let mut names = Vec::with_capacity(3);
    let quoted = quoted(key.as_str());
    for form in raw_header
        .into_iter()
        .chain([key.as_str(), quoted.as_str()])
    {
        let name = format!("result:{form}");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// `key` as an RFC 8941 sf-string: quotes around it, `"` and `\` escaped.
fn quoted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// What an imported answer keeps: the order id the old worker gave it.
pub fn order_id(stored: &[u8]) -> Option<String> {
    let receipt = serde_json::from_slice::<LegacyReceipt<'_>>(stored).ok()?;
    usable(receipt.order_id).then(|| receipt.order_id.to_owned())
}

fn usable(order_id: &str) -> bool {
    !order_id.is_empty() && order_id.bytes().all(|b| b.is_ascii_graphic())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyReceipt<'a> {
    #[serde(borrow)]
    order_id: &'a str,
}

/// The replay of a stored answer. A value without a usable `orderId` means an order
/// whose details are lost: its outcome is unknown, never a reason to place another.
pub fn replay(stored: &[u8]) -> Outcome {
    match order_id(stored) {
        Some(order_id) => Outcome::Replayed(StoredResponse {
            status: 201,
            location: location_of(&order_id),
            body: stored.to_vec(),
        }),
        None => Outcome::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_answer_replays_byte_for_byte_with_its_location() {
        let stored = br#"{"orderId":"5a1f","status":"accepted","symbol":"A","side":"buy","quantity":1,"acceptedAt":"2026-11-28T03:00:00.000Z"}"#;
        let Outcome::Replayed(response) = replay(stored) else {
            panic!("a replay");
        };
        assert_eq!(response.status, 201);
        assert_eq!(response.location, "/orders/5a1f");
        assert_eq!(response.body, stored);
    }

    #[test]
    fn every_spelling_of_the_key_is_looked_for_once() {
        let key = IdempotencyKey::parse(br#""mig-q1""#).expect("key");
        assert_eq!(
            result_keys(Some(r#""mig-q1""#), &key),
            [r#"result:"mig-q1""#, "result:mig-q1"]
        );
        let plain = IdempotencyKey::parse(b"plain").expect("key");
        assert_eq!(
            result_keys(Some("plain"), &plain),
            ["result:plain", r#"result:"plain""#]
        );
        let escaped = IdempotencyKey::parse(br#""a\"b""#).expect("key");
        assert_eq!(
            result_keys(None, &escaped),
            [r#"result:a"b"#, r#"result:"a\"b""#]
        );
    }

    #[test]
    fn an_unreadable_answer_is_an_unknown_outcome() {
        for bad in [
            &b"not json"[..],
            br#"{"orderId":""}"#,
            br#"{"orderId":"a b"}"#,
        ] {
            assert_eq!(replay(bad), Outcome::Unavailable);
        }
    }
}
