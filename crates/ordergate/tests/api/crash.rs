//! `kill -9` mid-load, restart on the same file, retry every key ever sent: no key has
//! two orders, and every acknowledged order is still there, replayed byte for byte.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;

use crate::helpers::{ORDER, eventually};
use crate::process;

const WRITERS: usize = 16;

/// What the client knows of a key: `Some(body)` if it saw a 201, `None` if the
/// outcome is unknown (error, 503, dropped connection).
pub type Seen = Arc<Mutex<HashMap<String, Option<bytes::Bytes>>>>;

pub async fn writer(url: String, id: usize, seen: Seen, stop: Arc<std::sync::atomic::AtomicBool>) {
    let client = reqwest::Client::new();
    for n in 0.. {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        let key = format!("crash-{id}-{n}");
        seen.lock().expect("seen").insert(key.clone(), None);
        let sent = client
            .post(&url)
            .header("idempotency-key", &key)
            .header("content-type", "application/json")
            .body(ORDER)
            .send()
            .await;
        let Ok(response) = sent else { break };
        if response.status() != 201 {
            continue;
        }
        if let Ok(body) = response.bytes().await {
            seen.lock().expect("seen").insert(key, Some(body));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_loses_no_acknowledged_order_and_duplicates_none() {
    let dir = tempfile::tempdir().expect("dir");
    let db = process::sqlite_url(dir.path());
    let args = ["--listen", "127.0.0.1:0", "--database", &db];
    let gw = process::serve(process::command(&args));
    let seen: Seen = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = join_all(
        (0..WRITERS)
            .map(|id| tokio::spawn(writer(gw.url("/orders"), id, seen.clone(), stop.clone()))),
    );
    let load = tokio::spawn(writers);
    // Crash once a fair number of orders has been acknowledged.
    eventually(
        "300 orders acknowledged",
        Duration::from_secs(120),
        || async { acknowledged(&seen) >= 300 },
    )
    .await;
    gw.crash();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = load.await;

    let gw = process::serve(process::command(&args));
    let client = reqwest::Client::new();
    let sent: Vec<(String, Option<bytes::Bytes>)> =
        seen.lock().expect("seen").clone().into_iter().collect();
    assert!(
        sent.len() > acknowledged(&seen),
        "some requests were cut off by the crash"
    );
    for (key, acked) in &sent {
        let retry = client
            .post(gw.url("/orders"))
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(ORDER)
            .send()
            .await
            .expect("retry sent");
        assert_eq!(retry.status(), 201, "{key}");
        if let Some(body) = acked {
            assert_eq!(retry.headers()["idempotent-replay"], "true", "{key}");
            assert_eq!(
                &retry.bytes().await.expect("body"),
                body,
                "{key} replays byte for byte"
            );
        }
    }
    drop(gw);
    let counts = orders_per_key(&dir.path().join("ordergate.db"));
    assert_eq!(counts.len(), sent.len(), "every key sent has its order now");
    assert!(counts.values().all(|&n| n == 1), "no key has two orders");
}

fn acknowledged(seen: &Seen) -> usize {
    seen.lock()
        .expect("seen")
        .values()
        .filter(|v| v.is_some())
        .count()
}

fn orders_per_key(db: &std::path::Path) -> HashMap<String, i64> {
    let conn = rusqlite::Connection::open(db).expect("open database");
    let mut stmt = conn
        .prepare("SELECT idem_key, count(*) FROM orders GROUP BY tenant, idem_key")
        .expect("prepare");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
