//! Databases written by an earlier ordergate (schema version 2, before orders had
//! terms; see `tests/fixtures/README.md`) opened by this one: the old records replay
//! their stored bytes, the old orders read back with the default terms, and new
//! orders with terms are placed beside them.

use std::path::Path;

use serde_json::Value;

use crate::helpers::*;
use crate::pg::{self, TestDb};

const TOKEN: &str = "fixture-token";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The body the earlier version was sent for key `fixture-N`.
fn fixture_order(n: u64) -> String {
    format!(
        r#"{{"symbol":"SYM{n}","side":"buy","quantity":{}}}"#,
        n * 100
    )
}

/// A copy of the SQLite fixture in `dir`. Its records were written to live a year;
/// they are moved to live a day from now, so that the test does not depend on the
/// calendar. Nothing else is touched.
fn sqlite_fixture(dir: &Path) -> String {
    let path = dir.join("ordergate.db");
    std::fs::copy(Path::new(FIXTURES).join("schema-v2.sqlite"), &path).expect("copy fixture");
    let conn = rusqlite::Connection::open(&path).expect("open fixture");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    conn.execute(
        "UPDATE idempotency_keys SET expires_at_ms = ?1",
        [now_ms + 86_400_000],
    )
    .expect("move expiries");
    format!("sqlite://{}", path.display())
}

/// A fresh database filled with the PostgreSQL fixture (the same treatment of
/// expiries as [`sqlite_fixture`]).
async fn postgres_fixture() -> TestDb {
    let db = TestDb::create().await;
    let dump = std::fs::read_to_string(Path::new(FIXTURES).join("schema-v2.postgres.sql"))
        .expect("read fixture");
    // The dump empties search_path for its own session: a connection of its own.
    pg::connect(&db.url)
        .await
        .batch_execute(&dump)
        .await
        .expect("restore fixture");
    db.client()
        .await
        .batch_execute("UPDATE idempotency_keys SET expires_at = now() + interval '1 day'")
        .await
        .expect("move expiries");
    db
}

async fn old_records_replay_and_old_orders_read_back_with_the_default_terms(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let pg = match db {
        Db::Postgres => Some(postgres_fixture().await),
        _ => None,
    };
    let url = pg
        .as_ref()
        .map_or_else(|| sqlite_fixture(dir.path()), |pg| pg.url.clone());
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--database",
        &url,
        "--api-key",
        &format!("acme:{TOKEN}"),
    ];
    let gw = crate::process::serve(crate::process::command(&args));
    let client = reqwest::Client::new();
    let post = |key: String, body: String| {
        client
            .post(gw.url("/orders"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let get = |path: String| client.get(gw.url(&path)).bearer_auth(TOKEN).send();
    for n in 1..=3 {
        let key = format!("fixture-{n}");
        let replay = post(key.clone(), fixture_order(n)).await.expect("replay");
        assert_eq!(replay.status(), 201);
        assert_eq!(replay.headers()["idempotent-replay"], "true");
        let location = replay.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let stored = replay.bytes().await.expect("body");
        let stored: Value = serde_json::from_slice(&stored).expect("order JSON");
        assert!(
            stored.get("type").is_none(),
            "a replay is the stored answer, byte for byte"
        );
        assert_eq!(stored["quantity"], n * 100);

        for path in [location, format!("/orders?idempotencyKey={key}")] {
            let read = get(path.clone()).await.expect("lookup");
            assert_eq!(read.status(), 200, "{path}");
            let shown: Value = read.json().await.expect("order JSON");
            assert_eq!(
                (&shown["type"], &shown["timeInForce"]),
                (&"market".into(), &"day".into()),
                "{path}"
            );
            assert!(shown.get("limitPrice").is_none(), "{path}");
            for member in [
                "orderId",
                "status",
                "symbol",
                "side",
                "quantity",
                "acceptedAt",
                "idempotencyKey",
            ] {
                assert_eq!(shown[member], stored[member], "{path}: {member}");
            }
        }
        let reused = post(key, fixture_order(n + 1)).await.expect("reuse");
        assert_eq!(reused.status(), 422, "the old record still judges payloads");
    }
    let limit = r#"{"symbol":"SYM1","side":"sell","quantity":7,"type":"limit","limitPrice":"12.5","timeInForce":"gtc"}"#;
    let placed = post("after-upgrade".into(), limit.into())
        .await
        .expect("new order");
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await.expect("order JSON");
    assert_eq!(
        (&placed["type"], &placed["limitPrice"]),
        (&"limit".into(), &"12.5".into())
    );
    let old = (String::from("market"), None, String::from("day"));
    let new = (
        String::from("limit"),
        Some(String::from("12.5")),
        String::from("gtc"),
    );
    assert_eq!(
        term_columns(&url, pg.as_ref()).await,
        vec![old.clone(), old.clone(), old, new]
    );
}

type Terms = (String, Option<String>, String);

/// The terms columns of every order, oldest first.
async fn term_columns(url: &str, pg: Option<&TestDb>) -> Vec<Terms> {
    const TERMS: &str = "SELECT order_type, limit_price, time_in_force FROM orders";
    if let Some(pg) = pg {
        let rows = pg
            .client()
            .await
            .query(&format!("{TERMS} ORDER BY sequence"), &[])
            .await;
        return rows
            .expect("terms")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    }
    let path = url.trim_start_matches("sqlite://");
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut statement = conn
        .prepare(&format!("{TERMS} ORDER BY rowid"))
        .expect("prepare");
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
    rows.expect("terms")
        .collect::<Result<_, _>>()
        .expect("rows")
}

on_each_backend!(old_records_replay_and_old_orders_read_back_with_the_default_terms);
