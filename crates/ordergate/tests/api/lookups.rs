//! `GET /orders/{id}`, `GET /orders?idempotencyKey=K` and `HEAD`.

use crate::helpers::*;

async fn an_order_can_be_read_back_by_id_and_by_key(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post("lookup-me", ORDER).await;
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body = created.bytes().await.expect("body");
    let by_id = app.get_as(ACME, &location).await;
    assert_eq!(by_id.status(), 200);
    assert_eq!(by_id.headers()["content-type"], "application/json");
    assert_eq!(by_id.bytes().await.expect("body"), body);
    let by_key = app.get_as(ACME, "/orders?idempotencyKey=lookup-me").await;
    assert_eq!(by_key.status(), 200);
    assert_eq!(by_key.bytes().await.expect("body"), body);
    app.stop().await;
}

async fn head_answers_like_get_without_a_body(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post("head-me", ORDER).await;
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for path in [location.as_str(), "/orders?idempotencyKey=head-me"] {
        let got = app.get_as(ACME, path).await.bytes().await.expect("body");
        let head = app
            .client
            .head(app.url(path))
            .bearer_auth(ACME)
            .send()
            .await
            .expect("sent");
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["content-length"],
            got.len().to_string().as_str(),
            "HEAD {path} says how long the GET's body is"
        );
        assert!(head.bytes().await.expect("body").is_empty());
    }
    let missing = app
        .client
        .head(app.url("/orders/not-a-uuid"))
        .bearer_auth(ACME)
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

/// A path segment is percent-decoded before it is read as an order id.
async fn a_percent_encoded_order_id_finds_the_order(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post("encoded-id", ORDER).await;
    let body = created.bytes().await.expect("body");
    let id = order_id(&body);
    let (first, rest) = id.split_at(1);
    let encoded = format!("/orders/%{:02X}{rest}", first.as_bytes()[0]);
    let found = app.get_as(ACME, &encoded).await;
    assert_eq!(found.status(), 200, "{encoded}");
    assert_eq!(found.bytes().await.expect("body"), body);
    app.stop().await;
}

async fn unknown_ids_and_keys_are_404(db: Db) {
    let app = spawn_app(db).await;
    for path in [
        "/orders/not-a-uuid",
        "/orders/%FF",
        "/orders/0192f1c4-0000-7000-8000-000000000000",
        "/orders?idempotencyKey=never-used",
    ] {
        let (status, code, _) = problem(app.get_as(ACME, path).await).await;
        assert_eq!((status, code.as_str()), (404, "not_found"), "{path}");
    }
    app.stop().await;
}

async fn lookups_need_the_token(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post("private", ORDER).await;
    let location = created.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for path in [location.as_str(), "/orders?idempotencyKey=private"] {
        let response = app.get(path).await;
        let (status, _, _) = problem(response).await;
        assert_eq!(status, 401, "{path}");
    }
    app.stop().await;
}

async fn a_lookup_without_a_key_parameter_is_a_400(db: Db) {
    let app = spawn_app(db).await;
    let (status, code, _) = problem(app.get_as(ACME, "/orders").await).await;
    assert_eq!((status, code.as_str()), (400, "missing_idempotency_key"));
    app.stop().await;
}

async fn a_bad_key_parameter_is_named_as_the_parameter_and_a_repeated_one_is_invalid(db: Db) {
    let app = spawn_app(db).await;
    for (path, says) in [
        (
            "/orders?idempotencyKey=a,b",
            "idempotencyKey query parameter",
        ),
        ("/orders?idempotencyKey=", "idempotencyKey query parameter"),
        (
            "/orders?idempotencyKey=a&idempotencyKey=b",
            "more than once",
        ),
        (
            "/orders?idempotencyKey=%FF",
            "idempotencyKey query parameter",
        ),
    ] {
        let (status, code, body) = problem(app.get_as(ACME, path).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_idempotency_key"),
            "{path}"
        );
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{path}: {detail}");
        assert!(!detail.contains("header"), "{path}: {detail}");
    }
    app.stop().await;
}

async fn a_lookup_by_key_accepts_the_quoted_form_url_encoded(db: Db) {
    let app = spawn_app(db).await;
    let created = app.post("q,k", ORDER).await;
    assert_eq!(created.status(), 400, "a plain key may not hold a comma");
    let created = app.post("\"q,k\"", ORDER).await;
    let body = created.bytes().await.expect("body");
    let found = app.get_as(ACME, "/orders?idempotencyKey=%22q%2Ck%22").await;
    assert_eq!(found.bytes().await.expect("body"), body);
    app.stop().await;
}

on_each_target!(
    an_order_can_be_read_back_by_id_and_by_key,
    head_answers_like_get_without_a_body,
    a_percent_encoded_order_id_finds_the_order,
    unknown_ids_and_keys_are_404,
    lookups_need_the_token,
    a_lookup_without_a_key_parameter_is_a_400,
    a_lookup_by_key_accepts_the_quoted_form_url_encoded,
    a_bad_key_parameter_is_named_as_the_parameter_and_a_repeated_one_is_invalid,
);
