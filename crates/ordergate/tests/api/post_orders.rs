//! `POST /orders`: one test per row of the contract's response table.

use reqwest::header::HeaderMap;

use crate::helpers::*;

async fn a_new_valid_order_is_created_with_its_location(db: Db) {
    let app = spawn_app(db).await;
    let response = app.post("first-order", ORDER).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("idempotent-replay").is_none());
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let order: serde_json::Value = response.json().await.expect("order JSON");
    let id = order["orderId"].as_str().expect("orderId");
    assert_eq!(location, format!("/orders/{id}"));
    let uuid = uuid::Uuid::parse_str(id).expect("orderId is a UUID");
    assert_eq!(uuid.get_version_num(), 7, "time-ordered UUID");
    assert_eq!(order["status"], "accepted");
    assert_eq!(order["symbol"], "AAPL");
    assert_eq!(order["side"], "buy");
    assert_eq!(order["quantity"], 100);
    assert_eq!(order["idempotencyKey"], "first-order");
    let accepted = order["acceptedAt"].as_str().expect("acceptedAt");
    assert_eq!(
        accepted.len(),
        24,
        "RFC 3339 UTC with milliseconds: {accepted}"
    );
    assert!(accepted.ends_with('Z') && accepted.as_bytes()[19] == b'.');
    app.stop().await;
}

async fn a_retry_with_the_same_payload_gets_the_original_answer_byte_for_byte(db: Db) {
    let app = spawn_app(db).await;
    let first = app.post("retry-me", ORDER).await;
    let location = first.headers()["location"].clone();
    let body = first.bytes().await.expect("body");
    let respelled = r#"{ "quantity": 1e2, "side": "buy", "symbol": "\u0041APL" }"#;
    for retry_body in [ORDER, respelled] {
        let retry = app.post("retry-me", retry_body).await;
        assert_eq!(retry.status(), 201, "the original status, not 200");
        assert_eq!(retry.headers()["location"], location);
        assert_eq!(retry.headers()["idempotent-replay"], "true");
        assert_eq!(retry.bytes().await.expect("body"), body);
    }
    app.stop().await;
}

/// Retries that the replay cache cannot answer are judged by the store as it places
/// them: the answers must not change.
async fn a_fresh_process_answers_retries_as_the_first_did(db: Db) {
    let app = spawn_app(db).await;
    let first = app.post("cold", ORDER).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    let body = first.bytes().await.expect("body");

    let app = app.restart().await;
    let other = r#"{"symbol":"AAPL","side":"buy","quantity":101}"#;
    let (status, code, _) = problem(app.post("cold", other).await).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));

    let app = app.restart().await;
    let retries = (0..16).map(|_| app.post("cold", ORDER));
    for retry in futures::future::join_all(retries).await {
        assert_eq!(retry.status(), 201);
        assert_eq!(retry.headers()["location"], location);
        assert_eq!(retry.headers()["idempotent-replay"], "true");
        assert_eq!(retry.bytes().await.expect("body"), body);
    }
    let app = app.restart().await;
    let (status, code, _) = problem(app.post("cold", "not json").await).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    assert_eq!(app.orders_per_key().await, vec![1]);
    app.stop().await;
}

async fn the_quoted_and_plain_forms_of_a_key_are_one_key(db: Db) {
    let app = spawn_app(db).await;
    let first = app.post("  abc  ", ORDER).await;
    let body = first.bytes().await.expect("body");
    assert_eq!(order_id(&body).len(), 36);
    let retry = app.post("\"abc\"", ORDER).await;
    assert_eq!(retry.headers()["idempotent-replay"], "true");
    assert_eq!(retry.bytes().await.expect("body"), body);
    let escaped = app.post(r#""a\"b""#, ORDER).await;
    assert_eq!(escaped.status(), 201);
    let order: serde_json::Value = escaped.json().await.expect("order");
    assert_eq!(
        order["idempotencyKey"], "a\"b",
        "the decoded key is reported"
    );
    let plain = app.post("a\"b", ORDER).await;
    assert_eq!(plain.headers()["idempotent-replay"], "true");
    app.stop().await;
}

async fn the_same_key_with_another_payload_is_refused(db: Db) {
    let app = spawn_app(db).await;
    assert_eq!(app.post("k1", ORDER).await.status(), 201);
    for other in [
        r#"{"symbol":"AAPL","side":"buy","quantity":101}"#,
        r#"{"symbol":"AAPL","side":"sell","quantity":100}"#,
        r#"{"symbol":"AAPL","side":"buy","quantity":100,"limitPrice":1}"#,
        r#"{"symbol":"AAPL","side":"buy","quantity":100,"quantity":100}"#,
        "not json",
    ] {
        let (status, code, _) = problem(app.post("k1", other).await).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "idempotency_key_reused"),
            "{other}"
        );
    }
    app.stop().await;
}

/// The replay cache answers byte-identical retries without parsing them; a retry in
/// other bytes of the same payload, or of another payload, is still judged by value,
/// whether the record came from this process or from the store after a restart.
async fn retries_are_judged_by_payload_not_by_bytes(db: Db) {
    let same = r#"{ "quantity": 1e2, "side": "buy", "symbol": "AAPL" }"#;
    let other = r#"{"symbol":"AAPL","side":"buy","quantity":99}"#;
    let app = spawn_app(db).await;
    let first = app.post("bytes", ORDER).await;
    assert_eq!(first.status(), 201);
    let body = first.bytes().await.expect("body");
    let mut app = app;
    for round in ["warm", "cold"] {
        for retry_body in [same, ORDER, same] {
            let retry = app.post("bytes", retry_body).await;
            assert_eq!(retry.status(), 201, "{round}: {retry_body}");
            assert_eq!(retry.headers()["idempotent-replay"], "true");
            assert_eq!(retry.bytes().await.expect("body"), body, "{round}");
        }
        let (status, code, _) = problem(app.post("bytes", other).await).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "idempotency_key_reused"),
            "{round}"
        );
        app = app.restart().await;
    }
    assert_eq!(app.orders_per_key().await, vec![1]);
    app.stop().await;
}

async fn a_missing_key_is_a_400(db: Db) {
    let app = spawn_app(db).await;
    let mut headers = acme_headers(b"x");
    headers.remove("idempotency-key");
    let (status, code, _) = problem(app.post_raw(headers, ORDER).await).await;
    assert_eq!((status, code.as_str()), (400, "missing_idempotency_key"));
    app.stop().await;
}

async fn malformed_keys_are_a_400(db: Db) {
    let app = spawn_app(db).await;
    let long = "k".repeat(256);
    let cases: Vec<&[u8]> = vec![
        b"",
        b"   ",
        long.as_bytes(),
        b"a\tb",
        b"caf\xc3\xa9",
        b"a\xffb",
        b"a,b",
        b"\"abc",
        b"\"a\\nb\"",
        b"\"abc\";v=1",
        b"\"\"",
    ];
    for key in cases {
        let (status, code, _) = problem(app.post_raw(acme_headers(key), ORDER).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_idempotency_key"),
            "{key:?}"
        );
    }
    // Two lines are refused even when, joined with ", " (as the Fetch API joins
    // them), they would spell one valid quoted key.
    for (first, second) in [("one", "two"), ("\"split", "tail\"")] {
        let mut two_lines = acme_headers(first.as_bytes());
        two_lines.append("idempotency-key", second.parse().expect("header"));
        let (status, code, _) = problem(app.post_raw(two_lines, ORDER).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_idempotency_key"),
            "{first} + {second}"
        );
    }
    assert_eq!(app.orders_per_key().await, Vec::<i64>::new());
    app.stop().await;
}

/// Spaces and tabs around a header value are not part of it (RFC 9110 §5.5): the
/// key with them is the key without them.
async fn whitespace_around_a_key_is_not_part_of_it(db: Db) {
    let app = spawn_app(db).await;
    let first = app.post("ows", ORDER).await;
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.expect("body");
    for spelled in [&b"ows\t"[..], b"\tows", b" ows \t"] {
        let retry = app.post_raw(acme_headers(spelled), ORDER).await;
        assert_eq!(retry.status(), 201, "{spelled:?}");
        assert_eq!(retry.headers()["idempotent-replay"], "true", "{spelled:?}");
        assert_eq!(retry.bytes().await.expect("body"), first, "{spelled:?}");
    }
    assert_eq!(app.orders_per_key().await, vec![1]);
    app.stop().await;
}

/// A client told "key reused" for a wrong body, then retrying with its original one,
/// must get its original answer, also from a process (or isolate) that never saw
/// the first answer: the 422 must not stand in for the record.
async fn after_a_reused_key_the_original_payload_still_replays(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post("reuse-then-retry", ORDER).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].clone();
    let created = created.bytes().await.expect("body");
    let app = app.restart().await;
    let other = r#"{"symbol":"MSFT","side":"sell","quantity":5}"#;
    for _ in 0..3 {
        let (status, code, _) = problem(app.post("reuse-then-retry", other).await).await;
        assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
        let retry = app.post("reuse-then-retry", ORDER).await;
        assert_eq!(retry.status(), 201, "the original answer, not the 422");
        assert_eq!(retry.headers()["idempotent-replay"], "true");
        assert_eq!(retry.headers()["location"], location);
        assert_eq!(retry.bytes().await.expect("body"), created);
    }
    assert_eq!(app.orders_per_key().await, vec![1]);
    app.stop().await;
}

async fn a_key_of_255_characters_is_accepted(db: Db) {
    let app = spawn_app(db).await;
    assert_eq!(app.post(&"k".repeat(255), ORDER).await.status(), 201);
    app.stop().await;
}

async fn a_missing_or_unknown_token_is_a_401(db: Db) {
    let app = spawn_app(db).await;
    let mut no_token = acme_headers(b"k");
    no_token.remove("authorization");
    let mut wrong = acme_headers(b"k");
    wrong.insert("authorization", "Bearer nope".parse().expect("header"));
    let mut basic = acme_headers(b"k");
    basic.insert(
        "authorization",
        "Basic YWNtZTphY21lLXRva2Vu".parse().expect("header"),
    );
    // Which of two credentials would count is a guess: neither does.
    let mut two = acme_headers(b"k");
    two.append(
        "authorization",
        format!("Bearer {ACME}").parse().expect("header"),
    );
    for headers in [no_token, wrong, basic, two] {
        let response = app.post_raw(headers, ORDER).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (status, code, _) = problem(response).await;
        assert_eq!((status, code.as_str()), (401, "unauthorized"));
    }
    app.stop().await;
}

async fn a_body_over_the_limit_is_a_413_declared_or_streamed(db: Db) {
    let app = spawn_app_with(db, &["--max-body", "1024"]).await;
    let big = format!(
        r#"{{"symbol":"{}","side":"buy","quantity":1}}"#,
        "A".repeat(2000)
    );
    let (status, code, _) = problem(app.post("big", &big).await).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    // Chunked, so no Content-Length: the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(big.clone().into_bytes())];
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, code, _) = problem(app.post_raw(acme_headers(b"big"), stream).await).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    // Exactly at the limit is fine (the body is then judged on its merits).
    let padded = pad(ORDER, 1024);
    assert_eq!(app.post("at-limit", &padded).await.status(), 201);
    app.stop().await;
}

async fn the_default_body_limit_is_64_kib(db: Db) {
    let app = spawn_app(db).await;
    let over = pad(ORDER, 65537);
    let (status, _, _) = problem(app.post("over", &over).await).await;
    assert_eq!(status, 413);
    let at = pad(ORDER, 65536);
    assert_eq!(app.post("at", &at).await.status(), 201);
    app.stop().await;
}

async fn a_non_json_type_or_an_encoded_body_is_a_415(db: Db) {
    let app = spawn_app(db).await;
    let with = |name: &'static str, value: &'static str| {
        let mut headers = acme_headers(b"k");
        headers.insert(name, value.parse().expect("header"));
        headers
    };
    let twice = |name: &'static str, value: &'static str| {
        let mut headers = with(name, value);
        headers.append(name, value.parse().expect("header"));
        headers
    };
    for headers in [
        with("content-type", "text/plain"),
        with("content-type", "application/x-www-form-urlencoded"),
        with("content-encoding", "gzip"),
        with("content-encoding", "identity, gzip"),
    ] {
        let response = app.post_raw(headers, ORDER).await;
        assert_eq!(response.headers()["accept-post"], "application/json");
        let (status, code, _) = problem(response).await;
        assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    }
    for ok in [
        with("content-type", "application/json; charset=utf-8"),
        with("content-type", "application/vnd.acme.order+json"),
        with("content-encoding", "identity"),
        // Content-Encoding is a list: empty elements are ignored, and an empty list
        // means no encoding, like `identity`.
        with("content-encoding", ""),
        with("content-encoding", "identity, identity"),
        twice("content-encoding", "identity"),
    ] {
        let mut headers = ok;
        let key = format!("ok-{}", uuid::Uuid::now_v7());
        headers.insert("idempotency-key", key.parse().expect("header"));
        assert_eq!(app.post_raw(headers, ORDER).await.status(), 201);
    }
    let mut untyped = HeaderMap::new();
    untyped.insert(
        "authorization",
        format!("Bearer {ACME}").parse().expect("header"),
    );
    untyped.insert("idempotency-key", "untyped".parse().expect("header"));
    assert_eq!(
        app.post_raw(untyped, ORDER).await.status(),
        201,
        "no Content-Type is fine"
    );
    app.stop().await;
}

async fn an_invalid_order_is_a_422_naming_the_member(db: Db) {
    let app = spawn_app(db).await;
    for (body, member) in [
        (
            r#"{"symbol":"AAPL","side":"buy","quantity":1.5}"#,
            "quantity",
        ),
        (
            r#"{"symbol":"AAPL","side":"buy","quantity":"10"}"#,
            "quantity",
        ),
        (
            r#"{"symbol":"AAPL","side":"buy","quantity":true}"#,
            "quantity",
        ),
        (r#"{"symbol":"AAPL","side":"buy","quantity":0}"#, "quantity"),
        (
            r#"{"symbol":"AAPL","side":"buy","quantity":9007199254740992}"#,
            "quantity",
        ),
        (r#"{"symbol":"AAPL","side":"hold","quantity":1}"#, "side"),
        (r#"{"symbol":"","side":"buy","quantity":1}"#, "symbol"),
        (r#"{"symbol":"A B","side":"buy","quantity":1}"#, "symbol"),
        (r#"{"side":"buy","quantity":1}"#, "symbol"),
        (
            r#"{"symbol":"AAPL","side":"buy","quantity":1,"limitPrice":5}"#,
            "limitPrice",
        ),
        (
            r#"{"symbol":"AAPL","side":"buy","side":"buy","quantity":1}"#,
            "side",
        ),
    ] {
        let (status, code, problem) = problem(app.post("bad", body).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_order"), "{body}");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(member), "{detail:?} should name {member}");
    }
    for body in ["", "{", "[]", "null", "{\"symbol\":\"A\"}x"] {
        let (status, code, _) = problem(app.post("bad", body).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_order"), "{body:?}");
    }
    app.stop().await;
}

async fn an_invalid_order_is_not_stored_so_the_fixed_body_can_reuse_the_key(db: Db) {
    let app = spawn_app(db).await;
    let (status, _, _) = problem(
        app.post("fix-me", r#"{"symbol":"AAPL","side":"buy","quantity":1.5}"#)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let fixed = app.post("fix-me", ORDER).await;
    assert_eq!(fixed.status(), 201);
    assert!(fixed.headers().get("idempotent-replay").is_none());
    app.stop().await;
}

async fn quantities_are_read_by_value(db: Db) {
    let app = spawn_app(db).await;
    for (i, q) in ["100", "100.0", "1e2"].iter().enumerate() {
        let body = format!(r#"{{"symbol":"AAPL","side":"buy","quantity":{q}}}"#);
        let response = app.post(&format!("q{i}"), &body).await;
        assert_eq!(response.status(), 201);
        let order: serde_json::Value = response.json().await.expect("order");
        assert_eq!(order["quantity"], 100);
    }
    app.stop().await;
}

/// A client that sends its headers and then stalls mid-body gets a 408 after the
/// server's 10 s body timeout, and nothing is placed under its key.
async fn a_body_that_stops_arriving_is_a_408_and_places_nothing(db: Db) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(db).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!(
        "POST /orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACME}\r\n\
         idempotency-key: stalled\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{}",
        ORDER.len(),
        &ORDER[..10]
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer within 20 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
    let found = app.get_as(ACME, "/orders?idempotencyKey=stalled").await;
    assert_eq!(found.status(), 404);
    app.stop().await;
}

/// The order JSON followed by spaces up to `len` bytes (still the same JSON).
fn pad(json: &str, len: usize) -> String {
    format!("{json}{}", " ".repeat(len - json.len()))
}

on_each_target!(
    a_new_valid_order_is_created_with_its_location,
    a_retry_with_the_same_payload_gets_the_original_answer_byte_for_byte,
    a_fresh_process_answers_retries_as_the_first_did,
    the_quoted_and_plain_forms_of_a_key_are_one_key,
    the_same_key_with_another_payload_is_refused,
    retries_are_judged_by_payload_not_by_bytes,
    a_missing_key_is_a_400,
    malformed_keys_are_a_400,
    a_key_of_255_characters_is_accepted,
    whitespace_around_a_key_is_not_part_of_it,
    after_a_reused_key_the_original_payload_still_replays,
    a_missing_or_unknown_token_is_a_401,
    a_body_over_the_limit_is_a_413_declared_or_streamed,
    the_default_body_limit_is_64_kib,
    a_non_json_type_or_an_encoded_body_is_a_415,
    an_invalid_order_is_a_422_naming_the_member,
    an_invalid_order_is_not_stored_so_the_fixed_body_can_reuse_the_key,
    quantities_are_read_by_value;
    // At the edge the platform reads the request and times out a stalled body; the
    // Worker sees only complete bodies.
    servers only: a_body_that_stops_arriving_is_a_408_and_places_nothing,
);
