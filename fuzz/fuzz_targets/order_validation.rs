//! Order validation: a body accepted as an order has members within the contract's
//! limits, its receipt is JSON, and its canonical form is the same valid order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate_core::json::JsonValue;
use ordergate_core::order::MAX_QUANTITY;
use ordergate_core::{IdempotencyKey, Order, Payload};

fuzz_target!(|body: &[u8]| {
    let Ok((request, fingerprint)) = Payload::from_body(body).valid_order() else {
        return;
    };
    let symbol = request.symbol.as_str();
    assert!((1..=32).contains(&symbol.len()), "{symbol:?}");
    assert!(
        symbol.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{symbol:?}"
    );
    assert!((1..=MAX_QUANTITY).contains(&request.quantity.get()));
    let canonical = JsonValue::parse(body)
        .expect("valid JSON")
        .canonical_bytes();
    let (again, again_fingerprint) = Payload::from_body(&canonical)
        .valid_order()
        .expect("the canonical form is the same valid order");
    assert_eq!(again, request);
    assert_eq!(again_fingerprint, fingerprint);
    let order = Order {
        order_id: uuid::Uuid::nil(),
        request,
        accepted_at_ms: 0,
        idempotency_key: IdempotencyKey::parse(b"k").expect("key"),
    };
    JsonValue::parse(&order.to_json()).expect("the receipt is JSON");
});
