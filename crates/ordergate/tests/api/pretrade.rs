//! Pre-trade controls (`--limits-file`): each control, its precedence and its answer
//! on every target; the rate on the servers (the edge ignores it); SIGHUP and a
//! broken file on the real binary.

use std::path::Path;
use std::time::Duration;

use crate::helpers::*;
use crate::process;

const LIMITS: &str = r#"
[default]
max_quantity = 1_000_000

[tenant.acme]
max_quantity = 10_000
max_notional = "250000.00"
symbols = ["AAPL", "MSFT"]

[tenant.globex]
halted = true
symbols = ["AAPL"]
"#;

fn limits_file(dir: &Path, text: &str) -> String {
    let path = dir.join("limits.toml");
    std::fs::write(&path, text).expect("write limits");
    path.display().to_string()
}

fn order(symbol: &str, quantity: u64, terms: &str) -> String {
    format!(r#"{{"symbol":"{symbol}","side":"buy","quantity":{quantity}{terms}}}"#)
}

async fn refusal(response: reqwest::Response) -> (u16, String, String) {
    let (status, code, body) = problem(response).await;
    (
        status,
        code,
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn each_control_refuses_in_the_contracts_order(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(dir.path(), LIMITS);
    let app = spawn_app_with(db, &["--limits-file", &limits]).await;

    // Symbols before quantity: TSLA is refused for its symbol, whatever its size.
    let (status, code, _) = refusal(app.post("c-1", &order("TSLA", 20_000, "")).await).await;
    assert_eq!((status, code.as_str()), (422, "symbol_not_allowed"));
    let (status, code, detail) = refusal(app.post("c-2", &order("AAPL", 10_001, "")).await).await;
    assert_eq!((status, code.as_str()), (422, "limit_exceeded"));
    assert!(
        detail.contains("max_quantity") && detail.contains("10000"),
        "{detail}"
    );
    let above = r#","type":"limit","limitPrice":"100.00000001""#;
    let (status, code, detail) = refusal(app.post("c-3", &order("AAPL", 2_500, above)).await).await;
    assert_eq!((status, code.as_str()), (422, "limit_exceeded"));
    assert!(
        detail.contains("max_notional") && detail.contains("250000.00"),
        "{detail}"
    );
    let at_limit = r#","type":"limit","limitPrice":"100""#;
    assert_eq!(
        app.post("c-4", &order("AAPL", 2_500, at_limit))
            .await
            .status(),
        201
    );
    // A market order has no notional to check.
    assert_eq!(
        app.post("c-5", &order("MSFT", 10_000, "")).await.status(),
        201
    );

    // The halt comes first, after validation.
    let (status, code, _) = refusal(app.post_as(GLOBEX, "g-1", &order("TSLA", 5, "")).await).await;
    assert_eq!((status, code.as_str()), (403, "trading_halted"));
    let invalid = order("AAPL", 5, r#","type":"limit""#);
    let (status, code, _) = refusal(app.post_as(GLOBEX, "g-2", &invalid).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_order"));

    // None of the refused orders is stored under its key.
    assert_eq!(app.orders_per_key().await, vec![1, 1]);
    for key in ["c-1", "c-2", "c-3"] {
        let lookup = app
            .get_as(ACME, &format!("/orders?idempotencyKey={key}"))
            .await;
        assert_eq!(lookup.status(), 404, "{key} placed nothing");
    }
}

async fn a_refused_order_places_once_its_body_passes(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let limits = limits_file(dir.path(), LIMITS);
    let app = spawn_app_with(db, &["--limits-file", &limits]).await;
    let too_big = order("AAPL", 20_000, "");
    assert_eq!(app.post("fix-me", &too_big).await.status(), 422);
    assert_eq!(
        app.post("fix-me", &too_big).await.status(),
        422,
        "refused again, not stored"
    );
    let smaller = order("AAPL", 10_000, "");
    assert_eq!(app.post("fix-me", &smaller).await.status(), 201);
    let replay = app.post("fix-me", &smaller).await;
    assert_eq!(replay.headers()["idempotent-replay"], "true");
    assert_eq!(app.orders_per_key().await, vec![1]);
}

on_each_target!(
    each_control_refuses_in_the_contracts_order,
    a_refused_order_places_once_its_body_passes,
);

mod rate {
    use super::*;

    /// The rate's refusal is a 429 with `Retry-After`; another tenant has its own
    /// bucket; a replay is never refused; the refused key places once the rate allows.
    async fn the_rate_refuses_new_orders_only(db: Db) {
        let dir = tempfile::tempdir().expect("dir");
        let limits = limits_file(dir.path(), "[tenant.acme]\norders_per_second = 1\n");
        let app = spawn_app_with(db, &["--limits-file", &limits]).await;
        assert_eq!(app.post("r-1", ORDER).await.status(), 201);
        let limited = app.post("r-2", ORDER).await;
        let retry_after: u64 = limited.headers()["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in whole seconds");
        assert!(retry_after >= 1);
        let (status, code, problem) = problem(limited).await;
        assert_eq!((status, code.as_str()), (429, "rate_limited"));
        assert_eq!(problem["retryAfter"], retry_after);
        let replay = app.post("r-1", ORDER).await;
        assert_eq!(
            replay.status(),
            201,
            "a replay is never refused by the rate"
        );
        assert_eq!(replay.headers()["idempotent-replay"], "true");
        assert_eq!(
            app.post_as(GLOBEX, "r-1", ORDER).await.status(),
            201,
            "globex has no rate"
        );
        let app = &app;
        eventually(
            "the rate lets the refused key through",
            Duration::from_secs(10),
            || async move {
                let status = app.post("r-2", ORDER).await.status();
                assert!(matches!(status.as_u16(), 201 | 429), "{status}");
                status == 201
            },
        )
        .await;
        assert_eq!(app.orders_per_key().await, vec![1, 1, 1]);
    }

    async fn each_refusal_is_counted_under_its_code(db: Db) {
        let dir = tempfile::tempdir().expect("dir");
        let text = format!("{LIMITS}\n[tenant.other]\n");
        let limits = limits_file(
            dir.path(),
            &text.replace("[tenant.acme]", "[tenant.acme]\norders_per_second = 1"),
        );
        let app = spawn_app_with(db, &["--limits-file", &limits]).await;
        app.post("m-1", &order("TSLA", 1, "")).await;
        app.post("m-2", &order("AAPL", 10_001, "")).await;
        app.post_as(GLOBEX, "m-3", ORDER).await;
        app.post("m-4", ORDER).await;
        app.post("m-5", ORDER).await;
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        for code in [
            "symbol_not_allowed",
            "limit_exceeded",
            "trading_halted",
            "rate_limited",
        ] {
            let counted = metrics.lines().any(|line| {
                line.starts_with("ordergate_requests_total")
                    && line.contains(&format!("outcome=\"{code}\""))
                    && !line.ends_with(" 0")
            });
            assert!(counted, "{code} is counted:\n{metrics}");
        }
    }

    on_each_backend!(
        the_rate_refuses_new_orders_only,
        each_refusal_is_counted_under_its_code
    );
}

mod sighup {
    use super::*;
    use crate::pg::TestDb;

    async fn post(gw: &process::Gateway, key: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(gw.url("/orders"))
            .bearer_auth("t")
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(ORDER)
            .send()
            .await
            .expect("request sent")
    }

    /// A halt set and lifted by SIGHUP; a broken file keeps the limits in force; a
    /// halted tenant's replays and lookups still answer.
    async fn sighup_sets_and_lifts_a_halt(db: Db) {
        let dir = tempfile::tempdir().expect("dir");
        let limits = limits_file(dir.path(), "[tenant.acme]\nhalted = false\n");
        let pg = match db {
            Db::Postgres => Some(TestDb::create().await),
            _ => None,
        };
        let url = pg
            .as_ref()
            .map_or_else(|| process::sqlite_url(dir.path()), |pg| pg.url.clone());
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--database",
            &url,
            "--api-key",
            "acme:t",
            "--limits-file",
            &limits,
        ];
        let gw = process::serve(process::command(&args));
        let placed = post(&gw, "before").await;
        assert_eq!(placed.status(), 201);
        let receipt = placed.bytes().await.expect("receipt");

        limits_file(dir.path(), "[tenant.acme]\nhalted = true\n");
        gw.signal("HUP");
        gw.logged("limits reloaded").await;
        let (status, code, _) = refusal(post(&gw, "during").await).await;
        assert_eq!((status, code.as_str()), (403, "trading_halted"));
        let replay = post(&gw, "before").await;
        assert_eq!(
            replay.status(),
            201,
            "a halted tenant still gets its original answers"
        );
        assert_eq!(replay.bytes().await.expect("replay"), receipt);
        let lookup = reqwest::Client::new()
            .get(gw.url("/orders?idempotencyKey=before"))
            .bearer_auth("t")
            .send()
            .await
            .expect("lookup");
        assert_eq!(lookup.status(), 200);

        limits_file(dir.path(), "[tenant.acme]\nhalted = nope\n");
        gw.signal("HUP");
        gw.logged("limits not reloaded").await;
        let (status, code, _) = refusal(post(&gw, "during").await).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "trading_halted"),
            "a broken file keeps the halt"
        );

        limits_file(dir.path(), "[tenant.acme]\nhalted = false\n");
        gw.signal("HUP");
        eventually("the second reload", Duration::from_secs(10), || {
            let reloads = gw.log_text().matches("limits reloaded").count();
            async move { reloads >= 2 }
        })
        .await;
        assert_eq!(
            post(&gw, "during").await.status(),
            201,
            "the refused key places once lifted"
        );
        assert_eq!(
            post(&gw, "during").await.headers()["idempotent-replay"],
            "true"
        );
    }

    on_each_backend!(sighup_sets_and_lifts_a_halt);

    #[tokio::test]
    async fn a_broken_limits_file_at_start_up_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("dir");
        let db = process::sqlite_url(dir.path());
        for (text, says) in [
            ("[default]\nmax_quantty = 5\n", "max_quantty"),
            ("[default]\nmax_notional = 1.5\n", "max_notional"),
            ("[default\n", "limits file"),
        ] {
            let limits = limits_file(dir.path(), text);
            let args = [
                "--listen",
                "127.0.0.1:0",
                "--database",
                &db,
                "--limits-file",
                &limits,
            ];
            match process::start(process::command(&args)) {
                process::Started::Exited(status, log) => {
                    assert!(!status.success(), "{text}");
                    let log = log.join("\n");
                    assert!(
                        log.contains(says) && log.contains("limits.toml"),
                        "{text}: {log}"
                    );
                }
                process::Started::Serving(_) => panic!("served with a broken limits file: {text}"),
            }
        }
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
            "--limits-file",
            "/nonexistent/limits.toml",
        ];
        assert!(matches!(
            process::start(process::command(&args)),
            process::Started::Exited(..)
        ));
    }
}
