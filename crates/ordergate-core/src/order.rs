//! The order domain: what a valid order is, and the receipt the gateway gives for one.

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::json::JsonValue;
use crate::key::IdempotencyKey;

/// Largest quantity: the largest integer a JSON number carries exactly (2^53 - 1).
pub const MAX_QUANTITY: u64 = 9_007_199_254_740_991;
const MAX_SYMBOL_LEN: usize = 32;
const MEMBERS: [&str; 3] = ["symbol", "side", "quantity"];

/// An instrument symbol: 1 to 32 printable ASCII characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol(String);

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// A whole number of units, 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u64);

/// A validated order as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: Quantity,
}

/// Why a body is not a valid order; `member` names the culprit where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct InvalidOrder {
    pub member: Option<String>,
    pub detail: String,
}

impl InvalidOrder {
    fn member(name: &str, detail: impl Into<String>) -> Self {
        Self {
            member: Some(name.to_owned()),
            detail: detail.into(),
        }
    }

    pub(crate) fn body(detail: impl Into<String>) -> Self {
        Self {
            member: None,
            detail: detail.into(),
        }
    }
}

impl Symbol {
    pub fn parse(s: &str) -> Result<Self, InvalidOrder> {
        let valid = (1..=MAX_SYMBOL_LEN).contains(&s.len())
            && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidOrder::member(
                "symbol",
                "symbol must be 1 to 32 printable ASCII characters without spaces",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Quantity {
    /// Accepts any number whose value is a whole number in range (`100`, `100.0`, `1e2`).
    pub fn from_number(n: f64) -> Result<Self, InvalidOrder> {
        if n.fract() == 0.0 && (1.0..=MAX_QUANTITY as f64).contains(&n) {
            // In range and whole, so the conversion is exact.
            Ok(Self(n as u64))
        } else {
            Err(InvalidOrder::member(
                "quantity",
                "quantity must be a whole number from 1 to 9007199254740991",
            ))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl OrderRequest {
    /// Validates a parsed body: exactly the members `symbol`, `side` and `quantity`.
    pub fn from_json(value: &JsonValue) -> Result<Self, InvalidOrder> {
        let JsonValue::Object(members) = value else {
            return Err(InvalidOrder::body("the order must be a JSON object"));
        };
        if let Some(repeated) = value.first_repeated_member() {
            return Err(InvalidOrder::member(
                repeated,
                format!("member {repeated:?} is given more than once"),
            ));
        }
        if let Some((unknown, _)) = members.iter().find(|(n, _)| !MEMBERS.contains(&n.as_str())) {
            return Err(InvalidOrder::member(
                unknown,
                format!("unknown member {unknown:?}: an order has only symbol, side and quantity"),
            ));
        }
        let get = |name: &str| {
            members
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| InvalidOrder::member(name, format!("member {name:?} is missing")))
        };
        Ok(Self {
            symbol: parse_symbol(get("symbol")?)?,
            side: parse_side(get("side")?)?,
            quantity: parse_quantity(get("quantity")?)?,
        })
    }
}

fn parse_symbol(value: &JsonValue) -> Result<Symbol, InvalidOrder> {
    match value {
        JsonValue::String(s) => Symbol::parse(s),
        _ => Err(InvalidOrder::member("symbol", "symbol must be a string")),
    }
}

fn parse_side(value: &JsonValue) -> Result<Side, InvalidOrder> {
    match value {
        JsonValue::String(s) if s == "buy" => Ok(Side::Buy),
        JsonValue::String(s) if s == "sell" => Ok(Side::Sell),
        _ => Err(InvalidOrder::member(
            "side",
            "side must be \"buy\" or \"sell\"",
        )),
    }
}

fn parse_quantity(value: &JsonValue) -> Result<Quantity, InvalidOrder> {
    match value {
        JsonValue::Number(n) => Quantity::from_number(*n),
        _ => Err(InvalidOrder::member(
            "quantity",
            "quantity must be a number",
        )),
    }
}

/// The record of an accepted order, as stored and as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: Uuid,
    pub request: OrderRequest,
    /// Milliseconds since the Unix epoch, UTC.
    pub accepted_at_ms: i64,
    pub idempotency_key: IdempotencyKey,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderJson<'a> {
    order_id: &'a Uuid,
    status: &'static str,
    symbol: &'a str,
    side: Side,
    quantity: u64,
    accepted_at: String,
    idempotency_key: &'a str,
}

impl Order {
    /// The order JSON of the contract; these exact bytes are stored and replayed.
    pub fn to_json(&self) -> Vec<u8> {
        let json = OrderJson {
            order_id: &self.order_id,
            status: "accepted",
            symbol: self.request.symbol.as_str(),
            side: self.request.side,
            quantity: self.request.quantity.get(),
            accepted_at: format_timestamp(self.accepted_at_ms),
            idempotency_key: self.idempotency_key.as_str(),
        };
        // Serializing plain strings and integers into a Vec cannot fail.
        serde_json::to_vec(&json).unwrap_or_default()
    }

    /// Where the order can be read back.
    pub fn location(&self) -> String {
        location_of(&self.order_id.to_string())
    }
}

/// The `Location` of an order id.
pub fn location_of(order_id: &str) -> String {
    format!("/orders/{order_id}")
}

/// RFC 3339 UTC with milliseconds, as JavaScript's `toISOString` writes it.
pub fn format_timestamp(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str) -> Result<OrderRequest, InvalidOrder> {
        OrderRequest::from_json(&JsonValue::parse(text.as_bytes()).expect("valid JSON"))
    }

    fn culprit(text: &str) -> Option<String> {
        validate(text).expect_err("should be invalid").member
    }

    #[test]
    fn a_valid_order_is_accepted_with_any_spelling_of_the_quantity() {
        for q in ["100", "100.0", "1e2", "1.00e+2"] {
            let order = validate(&format!(
                r#"{{"symbol":"AAPL","side":"buy","quantity":{q}}}"#
            ))
            .expect("valid order");
            assert_eq!(order.quantity.get(), 100);
        }
        let max = validate(r#"{"symbol":"A","side":"sell","quantity":9007199254740991}"#)
            .expect("valid order");
        assert_eq!(max.quantity.get(), MAX_QUANTITY);
    }

    #[test]
    fn each_invalid_member_is_named() {
        let q = |v: &str| format!(r#"{{"symbol":"AAPL","side":"buy","quantity":{v}}}"#);
        for bad in [
            "1.5",
            "\"10\"",
            "true",
            "0",
            "-1",
            "9007199254740992",
            "null",
        ] {
            assert_eq!(culprit(&q(bad)).as_deref(), Some("quantity"), "{bad}");
        }
        assert_eq!(
            culprit(r#"{"side":"buy","quantity":1}"#).as_deref(),
            Some("symbol")
        );
        assert_eq!(
            culprit(r#"{"symbol":"A","quantity":1}"#).as_deref(),
            Some("side")
        );
        assert_eq!(
            culprit(r#"{"symbol":"A","side":"buy"}"#).as_deref(),
            Some("quantity")
        );
        assert_eq!(
            culprit(r#"{"symbol":"A","side":"hold","quantity":1}"#).as_deref(),
            Some("side")
        );
        for sym in [
            "\"\"",
            "\"A B\"",
            "\"caf\u{e9}\"",
            "1",
            &format!("\"{}\"", "X".repeat(33)),
        ] {
            let body = format!(r#"{{"symbol":{sym},"side":"buy","quantity":1}}"#);
            assert_eq!(culprit(&body).as_deref(), Some("symbol"), "{sym}");
        }
        assert_eq!(
            culprit(r#"{"symbol":"A","side":"buy","quantity":1,"limitPrice":10}"#).as_deref(),
            Some("limitPrice")
        );
        assert_eq!(
            culprit(r#"{"symbol":"A","side":"buy","quantity":1,"quantity":2}"#).as_deref(),
            Some("quantity")
        );
        assert_eq!(culprit("[]"), None);
    }

    #[test]
    fn the_receipt_has_the_contract_shape() {
        let order = Order {
            order_id: Uuid::nil(),
            request: validate(r#"{"symbol":"AAPL","side":"buy","quantity":100}"#)
                .expect("valid order"),
            accepted_at_ms: 1_795_834_800_007,
            idempotency_key: IdempotencyKey::parse(b"abc").expect("valid key"),
        };
        assert_eq!(
            String::from_utf8(order.to_json()).expect("UTF-8"),
            r#"{"orderId":"00000000-0000-0000-0000-000000000000","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.007Z","idempotencyKey":"abc"}"#
        );
    }
}
