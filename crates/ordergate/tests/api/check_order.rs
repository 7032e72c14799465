//! The contract's order of checks: for each step, a request that fails that step and
//! every later one is answered by that step.

use crate::helpers::*;

async fn route_and_method_come_before_the_token(db: Db) {
    let app = spawn_app(db).await;
    let unknown = app
        .client
        .post(app.url("/nowhere"))
        .send()
        .await
        .expect("sent");
    let (status, code, body) = problem(unknown).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no such route")),
        "an unknown path is not an unknown order: {body}"
    );
    // A method no library knows is still a method: 405, not read as another.
    let purge = reqwest::Method::from_bytes(b"PURGE").expect("method");
    // Paths are matched as written: an empty segment names no route.
    for (method, path) in [
        (reqwest::Method::GET, "//orders?idempotencyKey=k"),
        (reqwest::Method::POST, "/orders/"),
        (reqwest::Method::GET, "/orders/"),
        (reqwest::Method::GET, "//healthz"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(ACME)
            .send()
            .await
            .expect("sent");
        let (status, code, _) = problem(response).await;
        assert_eq!(
            (status, code.as_str()),
            (404, "not_found"),
            "{method} {path}"
        );
    }
    for (method, path) in [
        (reqwest::Method::DELETE, "/orders"),
        (reqwest::Method::PUT, "/orders"),
        (
            reqwest::Method::POST,
            "/orders/0192f1c4-0000-7000-8000-000000000000",
        ),
        (reqwest::Method::POST, "/healthz"),
        (reqwest::Method::DELETE, "/metrics"),
        (purge.clone(), "/orders"),
        (
            purge.clone(),
            "/orders/0192f1c4-0000-7000-8000-000000000000",
        ),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("sent");
        assert!(response.headers().contains_key("allow"), "{method} {path}");
        let (status, code, _) = problem(response).await;
        assert_eq!(
            (status, code.as_str()),
            (405, "method_not_allowed"),
            "{method} {path}"
        );
    }
    app.stop().await;
}

async fn the_token_comes_before_the_media_type(db: Db) {
    let app = spawn_app(db).await;
    let mut headers = acme_headers(b"k");
    headers.remove("authorization");
    headers.insert("content-type", "text/plain".parse().expect("header"));
    let (status, _, _) = problem(app.post_raw(headers, ORDER).await).await;
    assert_eq!(status, 401);
    app.stop().await;
}

async fn the_media_type_comes_before_the_body_size(db: Db) {
    let app = spawn_app_with(db, &["--max-body", "10"]).await;
    let mut headers = acme_headers(b"k");
    headers.insert("content-type", "text/plain".parse().expect("header"));
    let (status, _, _) = problem(app.post_raw(headers, ORDER).await).await;
    assert_eq!(status, 415);
    app.stop().await;
}

async fn the_body_size_comes_before_the_key(db: Db) {
    let app = spawn_app_with(db, &["--max-body", "10"]).await;
    let mut headers = acme_headers(b"k");
    headers.remove("idempotency-key");
    let (status, _, _) = problem(app.post_raw(headers, ORDER).await).await;
    assert_eq!(status, 413);
    let (status, _, _) = problem(app.post_raw(acme_headers(b"a,b"), ORDER).await).await;
    assert_eq!(status, 413);
    app.stop().await;
}

async fn the_key_comes_before_the_record_and_the_body(db: Db) {
    let app = spawn_app(db).await;
    let (status, code, _) = problem(app.post_raw(acme_headers(b"a,b"), "not json").await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_idempotency_key"));
    app.stop().await;
}

async fn the_record_comes_before_validation(db: Db) {
    let app = spawn_app(db).await;
    assert_eq!(app.post("done", ORDER).await.status(), 201);
    // An invalid body for a finished key is a reused key, not an invalid order.
    let (status, code, _) = problem(
        app.post("done", r#"{"symbol":"AAPL","side":"buy","quantity":1.5}"#)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    app.stop().await;
}

on_each_target!(
    route_and_method_come_before_the_token,
    the_token_comes_before_the_media_type,
    the_media_type_comes_before_the_body_size,
    the_body_size_comes_before_the_key,
    the_key_comes_before_the_record_and_the_body,
    the_record_comes_before_validation,
);
