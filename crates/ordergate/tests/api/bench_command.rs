//! `ordergate bench`: it loads a gateway, reports, and catches broken idempotency.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

use crate::helpers::*;
use crate::process::BIN;

fn bench(url: &str, extra: &[&str]) -> (bool, serde_json::Value) {
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "--url",
            url,
            "--duration",
            "1s",
            "--connections",
            "8",
            "--json",
        ])
        .args(extra)
        .env("RUST_LOG", "off")
        .output()
        .expect("run ordergate bench");
    let report = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_the_gateway_without_violations() {
    let app = spawn_app(Db::Sqlite).await;
    let url = format!("http://{}", app.addr);
    for scenario in ["new", "replay", "race", "mixed"] {
        let (ok, report) = bench(&url, &["--token", ACME, "--scenario", scenario]);
        assert!(ok, "{scenario}: {report}");
        assert_eq!(report["violations"], 0, "{scenario}");
        assert!(
            report["answered"].as_u64().is_some_and(|n| n > 0),
            "{scenario}"
        );
        assert!(
            report["keys_checked"].as_u64().is_some_and(|n| n > 0),
            "{scenario}"
        );
        assert!(report["latency_ms"]["p99"].as_f64().is_some(), "{scenario}");
    }
    let (_, race) = bench(&url, &["--token", ACME, "--scenario", "race"]);
    assert!(
        race["answers"]["201 replayed"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "keys collide"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_places_an_order_per_request_is_caught() {
    // A "gateway" with no idempotency at all: every POST is a new order.
    let app = Router::new().route(
        "/orders",
        post(|| async {
            let body = format!(
                r#"{{"orderId":"{}","status":"accepted"}}"#,
                uuid::Uuid::now_v7()
            );
            (StatusCode::CREATED, body)
        })
        .get(|| async {
            let body = format!(r#"{{"orderId":"{}"}}"#, uuid::Uuid::now_v7());
            (StatusCode::OK, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (ok, report) = bench(&url, &["--scenario", "race"]);
    assert!(!ok, "the bench exits non-zero on violations");
    assert!(
        report["violations"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    server.abort();
}

/// `ordergate bench ARGS`: whether it succeeded, and what it wrote to stderr.
fn bench_raw(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(BIN)
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run ordergate bench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_verified_nothing_fails_and_shows_the_first_error() {
    let app = spawn_app(Db::Sqlite).await;
    let url = format!("http://{}", app.addr);
    let (ok, stderr) = bench_raw(&[
        "--url",
        &url,
        "--duration",
        "1s",
        "--token",
        "wrong",
        "--json",
    ]);
    assert!(!ok, "every answer was 401");
    assert!(stderr.contains("nothing was verified"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    app.stop().await;

    let (ok, stderr) = bench_raw(&["--url", "http://127.0.0.1:1", "--duration", "1s"]);
    assert!(!ok, "no server");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn no_connections_and_a_url_with_a_path_are_refused() {
    let (ok, stderr) = bench_raw(&["--connections", "0"]);
    assert!(!ok);
    assert!(stderr.contains("--connections"), "{stderr}");
    let (ok, stderr) = bench_raw(&["--url", "http://127.0.0.1:8080/orders"]);
    assert!(!ok);
    assert!(stderr.contains("without a path"), "{stderr}");
}
