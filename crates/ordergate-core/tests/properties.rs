//! Property tests for the parsers and validators of ordergate-core.

use ordergate_core::json::JsonValue;
use ordergate_core::order::MAX_QUANTITY;
use ordergate_core::{IdempotencyKey, OrderRequest, Payload};
use proptest::prelude::*;

/// Printable ASCII without the comma, with no surrounding spaces.
fn plain_key() -> impl Strategy<Value = String> {
    "[!-+\\--~]([ !-+\\--~]{0,253}[!-+\\--~])?"
}

fn sf_encode(key: &str) -> String {
    let escaped = key.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

proptest! {
    #[test]
    fn a_plain_key_parses_to_itself(key in plain_key(), pad in 0usize..3) {
        prop_assume!(!key.starts_with('"'));
        let spaces = " ".repeat(pad);
        let raw = format!("{spaces}{key}{spaces}");
        let parsed = IdempotencyKey::parse(raw.as_bytes()).expect("valid key");
        prop_assert_eq!(parsed.as_str(), key.as_str());
    }

    #[test]
    fn the_quoted_form_names_the_same_key(key in "[ -~]{1,255}") {
        let parsed = IdempotencyKey::parse(sf_encode(&key).as_bytes()).expect("valid key");
        prop_assert_eq!(parsed.as_str(), key.as_str());
    }

    #[test]
    fn keys_over_255_characters_are_malformed(key in "[a-z]{256,300}") {
        prop_assert!(IdempotencyKey::parse(key.as_bytes()).is_err());
        prop_assert!(IdempotencyKey::parse(sf_encode(&key).as_bytes()).is_err());
    }

    #[test]
    fn a_control_or_non_ascii_byte_makes_a_key_malformed(
        key in "[a-z]{1,20}", bad in prop_oneof![0u8..0x20, 0x7fu8..=0xff], at in 0usize..20,
    ) {
        let mut raw = key.into_bytes();
        let at = at.min(raw.len());
        raw.insert(at, bad);
        prop_assert!(IdempotencyKey::parse(&raw).is_err());
        let mut quoted = vec![b'"'];
        quoted.extend_from_slice(&raw);
        quoted.push(b'"');
        prop_assert!(IdempotencyKey::parse(&quoted).is_err());
    }

    #[test]
    fn a_broken_escape_makes_a_quoted_key_malformed(key in "[a-z]{1,20}", c in "[a-zA-Z0-9 ]") {
        let raw = format!("\"{key}\\{c}\"");
        prop_assert!(IdempotencyKey::parse(raw.as_bytes()).is_err());
    }

    #[test]
    fn reordering_and_respelling_keep_the_fingerprint(
        symbol in "[A-Z]{1,8}", buy in any::<bool>(), quantity in 1u64..=MAX_QUANTITY,
    ) {
        let side = if buy { "buy" } else { "sell" };
        let plain = format!(r#"{{"symbol":"{symbol}","side":"{side}","quantity":{quantity}}}"#);
        let escaped_symbol: String = symbol.chars().map(|c| format!("\\u{:04X}", c as u32)).collect();
        let respelled = format!(
            "{{ \"quantity\" : {quantity}.0 ,\n\t\"side\":\"{side}\", \"symbol\":\"{escaped_symbol}\" }}"
        );
        let a = Payload::from_body(plain.as_bytes()).fingerprint();
        let b = Payload::from_body(respelled.as_bytes()).fingerprint();
        prop_assert!(a.is_some());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn any_change_of_value_changes_the_fingerprint(
        symbol in "[A-Z]{1,8}", quantity in 1u64..MAX_QUANTITY, which in 0usize..4,
    ) {
        let base = format!(r#"{{"symbol":"{symbol}","side":"buy","quantity":{quantity}}}"#);
        let changed = match which {
            0 => format!(r#"{{"symbol":"{symbol}X","side":"buy","quantity":{quantity}}}"#),
            1 => format!(r#"{{"symbol":"{symbol}","side":"sell","quantity":{quantity}}}"#),
            2 => format!(r#"{{"symbol":"{symbol}","side":"buy","quantity":{}}}"#, quantity + 1),
            _ => format!(r#"{{"symbol":"{symbol}","side":"buy","quantity":{quantity},"x":null}}"#),
        };
        prop_assert_ne!(
            Payload::from_body(base.as_bytes()).fingerprint(),
            Payload::from_body(changed.as_bytes()).fingerprint()
        );
    }

    #[test]
    fn valid_orders_validate_and_whole_quantities_are_read_by_value(
        symbol in "[!-~]{1,32}", quantity in 1u64..=MAX_QUANTITY,
    ) {
        let symbol_json = serde_json::to_string(&symbol).expect("string");
        let body = format!(r#"{{"symbol":{symbol_json},"side":"sell","quantity":{quantity}e0}}"#);
        let order = OrderRequest::from_json(&JsonValue::parse(body.as_bytes()).expect("JSON"))
            .expect("valid order");
        prop_assert_eq!(order.quantity.get(), quantity);
        prop_assert_eq!(order.symbol.as_str(), symbol.as_str());
    }

    #[test]
    fn fractional_quantities_are_invalid(whole in 0u64..1_000_000, frac in 1u32..1000) {
        let body = format!(r#"{{"symbol":"A","side":"buy","quantity":{whole}.{frac:03}}}"#);
        let err = OrderRequest::from_json(&JsonValue::parse(body.as_bytes()).expect("JSON"))
            .expect_err("invalid");
        prop_assert_eq!(err.member.as_deref(), Some("quantity"));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = IdempotencyKey::parse(&bytes);
        let payload = Payload::from_body(&bytes);
        let _ = payload.order_request();
    }
}

/// Schoolbook multiplication of two decimal strings, the reference for notionals:
/// digits only, no integer type that could overflow and no float.
fn multiply_decimal(quantity: &str, price: &str) -> String {
    let (integer, fraction) = price.split_once('.').unwrap_or((price, ""));
    let factor: Vec<u32> = format!("{integer}{fraction}")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    let other: Vec<u32> = quantity.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut product = vec![0u32; factor.len() + other.len()];
    for (i, a) in factor.iter().enumerate().rev() {
        for (j, b) in other.iter().enumerate().rev() {
            let at = i + j + 1;
            let sum = product[at] + a * b;
            product[at] = sum % 10;
            product[at - 1] += sum / 10;
        }
    }
    let digits: String = product
        .iter()
        .map(|d| char::from(b'0' + *d as u8))
        .collect();
    let (whole, part) = digits.split_at(digits.len() - fraction.len());
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let part = part.trim_end_matches('0');
    if part.is_empty() {
        whole.to_owned()
    } else {
        format!("{whole}.{part}")
    }
}

/// Prices in the contract's grammar: 1–12 digits without a leading zero (or a lone 0),
/// optionally a point and 1–8 digits.
fn price_text() -> impl Strategy<Value = String> {
    ("(0|[1-9][0-9]{0,11})", proptest::option::of("[0-9]{1,8}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{i}.{f}"),
        None => i,
    })
}

proptest! {
    #[test]
    fn a_price_in_the_grammar_parses_and_keeps_its_text(text in price_text()) {
        let parsed = ordergate_core::Price::parse(&text);
        let zero = text.bytes().all(|b| b == b'0' || b == b'.');
        prop_assert_eq!(parsed.is_err(), zero, "{}", text);
        if let Ok(price) = parsed {
            prop_assert_eq!(price.as_str(), text.as_str());
        }
    }

    #[test]
    fn a_notional_is_the_exact_product(
        text in price_text(),
        quantity in 1u64..=MAX_QUANTITY,
    ) {
        prop_assume!(!text.bytes().all(|b| b == b'0' || b == b'.'));
        let price = ordergate_core::Price::parse(&text).expect("price");
        let notional = ordergate_core::Notional::of(quantity, &price);
        prop_assert_eq!(notional.to_string(), multiply_decimal(&quantity.to_string(), &text));
    }

    #[test]
    fn anything_outside_the_grammar_is_refused(text in "[-+.0-9e ]{0,24}") {
        let in_grammar = in_the_grammar(&text);
        prop_assert_eq!(ordergate_core::Price::parse(&text).is_ok(), in_grammar, "{}", text);
    }
}

/// The grammar, restated by hand for the refusal property.
fn in_the_grammar(text: &str) -> bool {
    let (integer, fraction) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let integer_ok = (1..=12).contains(&integer.len())
        && digits(integer)
        && (integer == "0" || !integer.starts_with('0'));
    let fraction_ok = fraction.is_none_or(|f| (1..=8).contains(&f.len()) && digits(f));
    let nonzero = text.bytes().any(|b| (b'1'..=b'9').contains(&b));
    integer_ok && fraction_ok && nonzero
}

/// An order body with every combination of terms, written in any member order.
fn order_body() -> impl Strategy<Value = String> {
    let terms = (
        proptest::option::of(proptest::option::of(price_text())),
        proptest::option::of(prop_oneof!["day", "gtc", "ioc", "fok"]),
    );
    (
        "[!-~&&[^\"\\\\]]{1,32}",
        prop_oneof!["buy", "sell"],
        1u64..=MAX_QUANTITY,
        terms,
        any::<bool>(),
    )
        .prop_filter_map(
            "a zero price is no price",
            |(symbol, side, q, (kind, tif), rev)| {
                let mut members = vec![
                    format!(r#""symbol":"{symbol}""#),
                    format!(r#""side":"{side}""#),
                    format!(r#""quantity":{q}"#),
                ];
                match kind {
                    Some(Some(price)) if price.bytes().all(|b| b == b'0' || b == b'.') => {
                        return None;
                    }
                    Some(Some(price)) => {
                        members.push(r#""type":"limit""#.into());
                        members.push(format!(r#""limitPrice":"{price}""#));
                    }
                    Some(None) => members.push(r#""type":"market""#.into()),
                    None => {}
                }
                if let Some(tif) = tif {
                    members.push(format!(r#""timeInForce":"{tif}""#));
                }
                if rev {
                    members.reverse();
                }
                Some(format!("{{{}}}", members.join(",")))
            },
        )
}

fn validate(body: &[u8]) -> OrderRequest {
    OrderRequest::from_json(&JsonValue::parse(body).expect("JSON")).expect("a valid order")
}

proptest! {
    /// The receipt states the order it was made for: its terms read back as a body are
    /// the same order, prices byte for byte.
    #[test]
    fn the_receipt_round_trips(body in order_body(), id in any::<u128>(), at in 0i64..4_102_444_800_000) {
        let request = validate(body.as_bytes());
        let order = ordergate_core::Order {
            order_id: uuid::Uuid::from_u128(id),
            request: request.clone(),
            accepted_at_ms: at,
            idempotency_key: IdempotencyKey::parse(b"k").expect("key"),
        };
        let receipt: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&order.to_json()).expect("receipt JSON");
        let terms: serde_json::Map<_, _> = receipt
            .iter()
            .filter(|(name, _)| {
                ["symbol", "side", "quantity", "type", "limitPrice", "timeInForce"].contains(&name.as_str())
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let again = validate(&serde_json::to_vec(&terms).expect("JSON"));
        prop_assert_eq!(&again, &request);
        let sent: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if let Some(price) = sent.get("limitPrice") {
            prop_assert_eq!(receipt.get("limitPrice"), Some(price), "the price as written");
        }
        prop_assert!(receipt.contains_key("type") && receipt.contains_key("timeInForce"));
    }
}
