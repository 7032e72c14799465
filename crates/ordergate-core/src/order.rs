//! The order domain: what a valid order is, and the receipt the gateway gives for one.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::json::JsonValue;
use crate::key::IdempotencyKey;
use crate::price::Price;

/// Largest quantity: the largest integer a JSON number carries exactly (2^53 - 1).
pub const MAX_QUANTITY: u64 = 9_007_199_254_740_991;
const MAX_SYMBOL_LEN: usize = 32;
const MEMBERS: [&str; 6] = [
    "symbol",
    "side",
    "quantity",
    "type",
    "limitPrice",
    "timeInForce",
];

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

/// Market or limit; a limit order carries its price, so no other kind can have one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OrderType {
    #[default]
    Market,
    Limit(Price),
}

impl OrderType {
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit(_) => "limit",
        }
    }

    pub fn limit_price(&self) -> Option<&Price> {
        match self {
            OrderType::Market => None,
            OrderType::Limit(price) => Some(price),
        }
    }
}

/// How long an order stays working: the trading day (the default), until cancelled,
/// immediate-or-cancel, or fill-or-kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeInForce {
    #[default]
    Day,
    Gtc,
    Ioc,
    Fok,
}

impl TimeInForce {
    const ALL: [TimeInForce; 4] = [Self::Day, Self::Gtc, Self::Ioc, Self::Fok];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Gtc => "gtc",
            Self::Ioc => "ioc",
            Self::Fok => "fok",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tif| tif.as_str() == text)
    }
}

/// A validated order as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: Quantity,
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
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
    /// Validates a parsed body: `symbol`, `side` and `quantity`, and the optional
    /// terms `type`, `limitPrice` (limit orders only, and required there) and
    /// `timeInForce`; no other member.
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
                format!(
                    "unknown member {unknown:?}: an order has only symbol, side, quantity, \
                     type, limitPrice and timeInForce"
                ),
            ));
        }
        let find = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let get = |name: &str| {
            find(name)
                .ok_or_else(|| InvalidOrder::member(name, format!("member {name:?} is missing")))
        };
        Ok(Self {
            symbol: parse_symbol(get("symbol")?)?,
            side: parse_side(get("side")?)?,
            quantity: parse_quantity(get("quantity")?)?,
            order_type: parse_order_type(find("type"), find("limitPrice"))?,
            time_in_force: find("timeInForce").map_or(Ok(TimeInForce::Day), parse_time_in_force)?,
        })
    }
}

fn parse_order_type(
    kind: Option<&JsonValue>,
    limit_price: Option<&JsonValue>,
) -> Result<OrderType, InvalidOrder> {
    let is_limit = match kind {
        None => false,
        Some(JsonValue::String(s)) if s == "market" => false,
        Some(JsonValue::String(s)) if s == "limit" => true,
        Some(_) => {
            return Err(InvalidOrder::member(
                "type",
                "type must be \"market\" or \"limit\"",
            ));
        }
    };
    match (is_limit, limit_price) {
        (false, None) => Ok(OrderType::Market),
        (false, Some(_)) => Err(InvalidOrder::member(
            "limitPrice",
            "limitPrice is only for limit orders (\"type\":\"limit\")",
        )),
        (true, None) => Err(InvalidOrder::member(
            "limitPrice",
            "a limit order needs a limitPrice",
        )),
        (true, Some(price)) => parse_limit_price(price).map(OrderType::Limit),
    }
}

fn parse_limit_price(value: &JsonValue) -> Result<Price, InvalidOrder> {
    let JsonValue::String(text) = value else {
        return Err(InvalidOrder::member(
            "limitPrice",
            "limitPrice must be a string holding a decimal, such as \"101.25\"",
        ));
    };
    Price::parse(text)
        .map_err(|why| InvalidOrder::member("limitPrice", format!("limitPrice {why}")))
}

fn parse_time_in_force(value: &JsonValue) -> Result<TimeInForce, InvalidOrder> {
    match value {
        JsonValue::String(s) => TimeInForce::parse(s),
        _ => None,
    }
    .ok_or_else(|| {
        InvalidOrder::member(
            "timeInForce",
            "timeInForce must be \"day\", \"gtc\", \"ioc\" or \"fok\"",
        )
    })
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
    order_id: &'a str,
    status: &'a str,
    symbol: &'a str,
    side: &'a str,
    quantity: u64,
    #[serde(rename = "type")]
    order_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_price: Option<&'a str>,
    time_in_force: &'static str,
    accepted_at: &'a str,
    idempotency_key: &'a str,
}

/// A receipt as stored before orders had terms: the same members, without them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReceiptBeforeTerms {
    order_id: String,
    status: String,
    symbol: String,
    side: String,
    quantity: u64,
    accepted_at: String,
    idempotency_key: String,
}

/// The order JSON a lookup shows for a stored receipt. One stored before orders had
/// terms shows their defaults (`market`, `day`) where receipts carry them now; any
/// other is shown as stored. Replays never go through this: they repeat the bytes
/// that were answered.
pub fn receipt_with_terms(stored: Vec<u8>) -> Vec<u8> {
    let Ok(old) = serde_json::from_slice::<ReceiptBeforeTerms>(&stored) else {
        return stored;
    };
    let json = OrderJson {
        order_id: &old.order_id,
        status: &old.status,
        symbol: &old.symbol,
        side: &old.side,
        quantity: old.quantity,
        order_type: OrderType::Market.as_str(),
        limit_price: None,
        time_in_force: TimeInForce::Day.as_str(),
        accepted_at: &old.accepted_at,
        idempotency_key: &old.idempotency_key,
    };
    serde_json::to_vec(&json).unwrap_or(stored)
}

impl Order {
    /// The order JSON of the contract; these exact bytes are stored and replayed.
    pub fn to_json(&self) -> Vec<u8> {
        let order_id = self.order_id.to_string();
        let accepted_at = format_timestamp(self.accepted_at_ms);
        let json = OrderJson {
            order_id: &order_id,
            status: "accepted",
            symbol: self.request.symbol.as_str(),
            side: self.request.side.as_str(),
            quantity: self.request.quantity.get(),
            order_type: self.request.order_type.as_str(),
            limit_price: self.request.order_type.limit_price().map(Price::as_str),
            time_in_force: self.request.time_in_force.as_str(),
            accepted_at: &accepted_at,
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
            r#"{"orderId":"00000000-0000-0000-0000-000000000000","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"type":"market","timeInForce":"day","acceptedAt":"2026-11-28T03:00:00.007Z","idempotencyKey":"abc"}"#
        );
    }

    fn receipt(body: &str) -> String {
        let order = Order {
            order_id: Uuid::nil(),
            request: validate(body).expect("valid order"),
            accepted_at_ms: 1_795_834_800_000,
            idempotency_key: IdempotencyKey::parse(b"abc").expect("valid key"),
        };
        String::from_utf8(order.to_json()).expect("UTF-8")
    }

    #[test]
    fn a_limit_order_states_its_terms_and_keeps_its_price_as_written() {
        assert_eq!(
            receipt(
                r#"{"symbol":"AAPL","side":"buy","quantity":100,"type":"limit","limitPrice":"101.10","timeInForce":"gtc"}"#
            ),
            r#"{"orderId":"00000000-0000-0000-0000-000000000000","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"type":"limit","limitPrice":"101.10","timeInForce":"gtc","acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"abc"}"#
        );
    }

    #[test]
    fn every_valid_form_of_the_terms_is_accepted() {
        let base = r#""symbol":"A","side":"sell","quantity":1"#;
        let market = OrderType::Market;
        let limit = |p: &str| OrderType::Limit(Price::parse(p).expect("price"));
        let cases = [
            ("", market.clone(), TimeInForce::Day),
            (r#","type":"market""#, market.clone(), TimeInForce::Day),
            (r#","timeInForce":"day""#, market.clone(), TimeInForce::Day),
            (
                r#","type":"market","timeInForce":"ioc""#,
                market.clone(),
                TimeInForce::Ioc,
            ),
            (
                r#","type":"limit","limitPrice":"7""#,
                limit("7"),
                TimeInForce::Day,
            ),
            (
                r#","limitPrice":"0.5","type":"limit","timeInForce":"fok""#,
                limit("0.5"),
                TimeInForce::Fok,
            ),
            (
                r#","type":"limit","limitPrice":"101.25","timeInForce":"gtc""#,
                limit("101.25"),
                TimeInForce::Gtc,
            ),
        ];
        for (terms, order_type, time_in_force) in cases {
            let order = validate(&format!("{{{base}{terms}}}")).expect(terms);
            assert_eq!(
                (order.order_type, order.time_in_force),
                (order_type, time_in_force),
                "{terms}"
            );
        }
    }

    #[test]
    fn each_invalid_term_is_named() {
        let base = r#""symbol":"A","side":"buy","quantity":1"#;
        let cases = [
            (r#","type":"stop""#, "type"),
            (r#","type":"Limit","limitPrice":"1""#, "type"),
            (r#","type":null"#, "type"),
            (r#","type":1"#, "type"),
            (r#","type":"limit""#, "limitPrice"),
            (r#","type":"limit","limitPrice":null"#, "limitPrice"),
            (r#","type":"limit","limitPrice":101.25"#, "limitPrice"),
            (r#","type":"limit","limitPrice":"07""#, "limitPrice"),
            (r#","type":"limit","limitPrice":"1e2""#, "limitPrice"),
            (r#","type":"limit","limitPrice":"-1""#, "limitPrice"),
            (r#","type":"limit","limitPrice":"0""#, "limitPrice"),
            (r#","type":"limit","limitPrice":"0.00""#, "limitPrice"),
            (r#","type":"limit","limitPrice":" 1""#, "limitPrice"),
            (r#","limitPrice":"1""#, "limitPrice"),
            (r#","type":"market","limitPrice":"1""#, "limitPrice"),
            (r#","limitPrice":null"#, "limitPrice"),
            (r#","timeInForce":"GTC""#, "timeInForce"),
            (r#","timeInForce":"week""#, "timeInForce"),
            (r#","timeInForce":null"#, "timeInForce"),
            (r#","timeInForce":0"#, "timeInForce"),
            (
                r#","type":"limit","limitPrice":"1","limitPrice":"2""#,
                "limitPrice",
            ),
        ];
        for (terms, member) in cases {
            assert_eq!(
                culprit(&format!("{{{base}{terms}}}")).as_deref(),
                Some(member),
                "{terms}"
            );
        }
    }

    #[test]
    fn a_receipt_from_before_terms_shows_their_defaults_and_a_new_one_is_unchanged() {
        let old = br#"{"orderId":"0192f1c4-0000-7000-8000-000000000000","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"a\"b"}"#;
        assert_eq!(
            String::from_utf8(receipt_with_terms(old.to_vec())).expect("UTF-8"),
            r#"{"orderId":"0192f1c4-0000-7000-8000-000000000000","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"type":"market","timeInForce":"day","acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"a\"b"}"#
        );
        let new =
            receipt(r#"{"symbol":"A","side":"buy","quantity":1,"type":"limit","limitPrice":"2"}"#);
        assert_eq!(
            receipt_with_terms(new.clone().into_bytes()),
            new.into_bytes()
        );
        let foreign = br#"{"orderId":"x","extra":1}"#.to_vec();
        assert_eq!(receipt_with_terms(foreign.clone()), foreign);
    }
}
