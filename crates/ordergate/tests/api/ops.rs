//! `/healthz`, `/readyz`, `/metrics`, and error shapes shared by every route.

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
    let text = app.get("/metrics").await.text().await.expect("text");
    for line in [
        r#"ordergate_requests_total{route="post_orders",outcome="created"} 1"#,
        r#"ordergate_requests_total{route="post_orders",outcome="replayed"} 1"#,
        r#"ordergate_requests_total{route="post_orders",outcome="unauthorized"} 1"#,
        "# TYPE ordergate_request_duration_seconds histogram",
        "# TYPE ordergate_store_errors counter",
    ] {
        assert!(text.contains(line), "metrics lack {line:?}:\n{text}");
    }
    app.stop().await;
}

async fn readiness_turns_503_once_shutdown_begins(db: Db) {
    let app = spawn_app_on_store(db, |store| store, std::time::Duration::from_secs(30)).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let flag = app.shutting_down.clone().expect("flag");
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, code, _) = problem(app.get("/readyz").await).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    app.stop().await;
}

on_each_backend!(
    health_and_readiness_need_no_token,
    metrics_count_outcomes_and_latency,
    readiness_turns_503_once_shutdown_begins,
);
