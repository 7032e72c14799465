//! The switch-over from the old worker: a key it answered is replayed from its
//! stored `result:KEY` value instead of placing a second order.
//!
//! The old worker stored the order JSON it answered with, and nothing of the request:
//! such a replay cannot tell a reused key from a retry. Its `Location` comes from the
//! stored `orderId`.

use serde::Deserialize;

use crate::order::location_of;
use crate::protocol::{Outcome, StoredResponse};

/// The KV key under which the old worker kept a key's answer.
pub fn result_key(key: &str) -> String {
    format!("result:{key}")
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
    let Ok(receipt) = serde_json::from_slice::<LegacyReceipt<'_>>(stored) else {
        return Outcome::Unavailable;
    };
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !printable(receipt.order_id) {
        return Outcome::Unavailable;
    }
    Outcome::Replayed(StoredResponse {
        status: 201,
        location: location_of(receipt.order_id),
        body: stored.to_vec(),
    })
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
