//! `/healthz`, `/readyz`, `/metrics`, and error shapes shared by every route.

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_outcomes_and_latency() {
    let app = spawn_app().await;
    app.post("m", ORDER).await;
    app.post("m", ORDER).await;
    app.post_as("bad-token", "m", ORDER).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
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
