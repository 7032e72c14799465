//! `/healthz`, `/readyz`, `/metrics`, and error shapes shared by every route.

use std::sync::Arc;
use std::time::Duration;

use ordergate::clock::SystemClock;

use crate::helpers::*;

async fn health_and_readiness_need_no_token(db: Db) {
    let app = spawn_app(db).await;
    for path in ["/healthz", "/readyz"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    app.stop().await;
}

async fn metrics_count_outcomes_and_latency(db: Db) {
    let app = spawn_app(db).await;
    app.post("m", ORDER).await;
    app.post("m", ORDER).await;
    app.post_as("bad-token", "m", ORDER).await;
    if db == Db::Edge {
        // The contract lets the edge answer 404 here: Cloudflare's analytics and the
        // Worker's logs take the place of /metrics (README, "At the edge").
        let (status, code, _) = problem(app.get("/metrics").await).await;
        assert_eq!((status, code.as_str()), (404, "not_found"));
        app.stop().await;
        return;
    }
    let text = app.get("/metrics").await.text().await.expect("text");
    for line in [
        r#"ordergate_requests_total{route="post_orders",outcome="created"} 1"#,
        r#"ordergate_requests_total{route="post_orders",outcome="replayed"} 1"#,
        r#"ordergate_requests_total{route="post_orders",outcome="unauthorized"} 1"#,
        "# TYPE ordergate_request_duration_seconds histogram",
        "# TYPE ordergate_store_errors counter",
        r#"ordergate_store_errors_total{kind="unavailable"} 0"#,
        r#"ordergate_store_errors_total{kind="lease_expired"} 0"#,
    ] {
        assert!(text.contains(line), "metrics lack {line:?}:\n{text}");
    }
    app.stop().await;
}

/// The server sets the flag at the signal and stops accepting connections, so no
/// probe can reach it from outside afterwards; the router is served here with a flag
/// of the test's to see what such a probe would get.
async fn readiness_turns_503_once_shutdown_begins(db: Db) {
    use ordergate::gateway::{Gateway, Settings};
    use ordergate::http::{AppState, app};
    use std::sync::atomic::{AtomicBool, Ordering};

    let (_dir, _pg, _url, store) = open_store(db, Duration::from_secs(30)).await;
    let metrics = Arc::new(ordergate::telemetry::Metrics::default());
    let settings = Settings {
        result_ttl: Duration::from_secs(60),
        lease_ttl: Duration::from_secs(30),
        deliver: false,
    };
    let gateway = Gateway::new(store, Arc::new(SystemClock), metrics.clone(), settings);
    let auth = Arc::new(ordergate::auth::Auth::new(Vec::new(), None).expect("auth"));
    let flag = Arc::new(AtomicBool::new(false));
    let router = app(AppState::new(
        gateway.clone(),
        auth,
        metrics,
        1024,
        flag.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/readyz", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let ready = reqwest::get(&url).await.expect("probe");
    assert_eq!(ready.status(), 200);
    flag.store(true, Ordering::SeqCst);
    let (status, code, body) = problem(reqwest::get(&url).await.expect("probe")).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shutting down")),
        "{body}"
    );
    server.abort();
    gateway.close().await;
}

on_each_target!(
    health_and_readiness_need_no_token,
    metrics_count_outcomes_and_latency;
    // The server's flag is set in-process here; at the edge there is no process of
    // ours to shut down (the platform drains isolates itself).
    servers only: readiness_turns_503_once_shutdown_begins,
);
