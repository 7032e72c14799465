//! The order's terms (`type`, `limitPrice`, `timeInForce`) on every target: each valid
//! form is placed and stated in the receipt, each invalid one is a 422 that names its
//! member and leaves the key free.

use serde_json::Value;

use crate::helpers::*;

const BASE: &str = r#""symbol":"AAPL","side":"buy","quantity":100"#;

fn order_with(terms: &str) -> String {
    format!("{{{BASE}{terms}}}")
}

/// Terms as sent, and the type, limit price and time in force the receipt states.
const VALID: [(&str, &str, Option<&str>, &str); 8] = [
    ("", "market", None, "day"),
    (r#","type":"market""#, "market", None, "day"),
    (r#","timeInForce":"gtc""#, "market", None, "gtc"),
    (
        r#","type":"market","timeInForce":"ioc""#,
        "market",
        None,
        "ioc",
    ),
    (
        r#","type":"limit","limitPrice":"101.25""#,
        "limit",
        Some("101.25"),
        "day",
    ),
    (
        r#","type":"limit","limitPrice":"101.10","timeInForce":"fok""#,
        "limit",
        Some("101.10"),
        "fok",
    ),
    (
        r#","timeInForce":"gtc","limitPrice":"0.5","type":"limit""#,
        "limit",
        Some("0.5"),
        "gtc",
    ),
    (
        r#","type":"limit","limitPrice":"999999999999.99999999""#,
        "limit",
        Some("999999999999.99999999"),
        "day",
    ),
];

async fn every_valid_form_of_the_terms_is_placed_and_stated(db: Db) {
    let app = spawn_app(db).await;
    for (i, (terms, order_type, limit_price, time_in_force)) in VALID.into_iter().enumerate() {
        let key = format!("terms-{i}");
        let body = order_with(terms);
        let created = app.post(&key, &body).await;
        assert_eq!(created.status(), 201, "{terms}");
        let location = created.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let receipt = created.bytes().await.expect("receipt");
        let json: Value = serde_json::from_slice(&receipt).expect("order JSON");
        assert_eq!(json["type"], order_type, "{terms}");
        assert_eq!(
            json["limitPrice"].as_str(),
            limit_price,
            "prices are strings, as sent: {terms}"
        );
        assert_eq!(json["timeInForce"], time_in_force, "{terms}");
        assert_eq!(json["quantity"], 100);
        let replay = app.post(&key, &body).await;
        assert_eq!(replay.headers()["idempotent-replay"], "true");
        assert_eq!(replay.bytes().await.expect("replay"), receipt, "{terms}");
        let read = app.get_as(ACME, &location).await;
        assert_eq!(read.status(), 200);
        assert_eq!(
            read.bytes().await.expect("lookup"),
            receipt,
            "a lookup states the same terms"
        );
    }
    assert!(app.orders_per_key().await.iter().all(|&n| n == 1));
}

/// Terms as sent, and the member the 422 must name.
const INVALID: [(&str, &str); 18] = [
    (r#","type":"stop""#, "type"),
    (r#","type":"LIMIT","limitPrice":"1""#, "type"),
    (r#","type":null"#, "type"),
    (r#","type":"limit""#, "limitPrice"),
    (r#","type":"limit","limitPrice":null"#, "limitPrice"),
    (r#","type":"limit","limitPrice":101.25"#, "limitPrice"),
    (r#","type":"limit","limitPrice":"07""#, "limitPrice"),
    (r#","type":"limit","limitPrice":"1e2""#, "limitPrice"),
    (r#","type":"limit","limitPrice":"-1""#, "limitPrice"),
    (r#","type":"limit","limitPrice":"0""#, "limitPrice"),
    (r#","type":"limit","limitPrice":"0.00""#, "limitPrice"),
    (
        r#","type":"limit","limitPrice":"1.123456789""#,
        "limitPrice",
    ),
    (r#","limitPrice":"101.25""#, "limitPrice"),
    (r#","type":"market","limitPrice":"101.25""#, "limitPrice"),
    (r#","limitPrice":null"#, "limitPrice"),
    (r#","timeInForce":"GTC""#, "timeInForce"),
    (r#","timeInForce":null"#, "timeInForce"),
    (
        r#","type":"limit","limitPrice":"1","limitPrice":"1""#,
        "limitPrice",
    ),
];

async fn each_invalid_term_is_a_422_naming_it_and_the_key_stays_free(db: Db) {
    let app = spawn_app(db).await;
    for (i, (terms, member)) in INVALID.into_iter().enumerate() {
        let key = format!("bad-terms-{i}");
        let (status, code, problem) = problem(app.post(&key, &order_with(terms)).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_order"), "{terms}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(member),
            "{terms}: {detail:?} names {member}"
        );
        // Not stored under the key: the corrected order places, once.
        let fixed = order_with(r#","type":"limit","limitPrice":"1""#);
        assert_eq!(app.post(&key, &fixed).await.status(), 201, "{terms}");
    }
    let counts = app.orders_per_key().await;
    assert_eq!(counts.len(), INVALID.len());
    assert!(counts.iter().all(|&n| n == 1));
}

async fn another_price_or_time_in_force_under_the_same_key_is_a_reused_key(db: Db) {
    let app = spawn_app(db).await;
    let first = order_with(r#","type":"limit","limitPrice":"101.25""#);
    assert_eq!(app.post("same-key", &first).await.status(), 201);
    for other in [
        r#","type":"limit","limitPrice":"101.26""#,
        r#","type":"limit","limitPrice":"101.250""#,
        r#","type":"limit","limitPrice":"101.25","timeInForce":"day""#,
        "",
    ] {
        let (status, code, _) = problem(app.post("same-key", &order_with(other)).await).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "idempotency_key_reused"),
            "{other}"
        );
    }
    assert_eq!(app.orders_per_key().await, vec![1]);
}

on_each_target!(
    every_valid_form_of_the_terms_is_placed_and_stated,
    each_invalid_term_is_a_422_naming_it_and_the_key_stays_free,
    another_price_or_time_in_force_under_the_same_key_is_a_reused_key,
);
