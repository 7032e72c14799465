//! What docs/OPERATIONS.md tells an operator to do, done: the systemd unit verifies,
//! and a hot SQLite backup taken under load restores every acknowledged order.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;

use crate::crash::{Seen, writer};
use crate::helpers::eventually;
use crate::process;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../packaging/ordergate.service"
);

#[test]
fn the_systemd_unit_verifies_and_names_only_real_settings() {
    let dir = tempfile::tempdir().expect("dir");
    let unit = std::fs::read_to_string(UNIT).expect("unit file");
    assert!(unit.contains("ExecStart=/usr/local/bin/ordergate serve"));
    // Verified with the binary just built in the place of the installed one.
    let local = unit.replace("/usr/local/bin/ordergate", process::BIN);
    let path = dir.path().join("ordergate.service");
    std::fs::write(&path, local).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "no warnings: {stderr}");
    let help = Command::new(process::BIN)
        .args(["serve", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for line in unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment=ORDERGATE_"))
    {
        let name = format!("ORDERGATE_{}", line.split('=').next().unwrap_or_default());
        assert!(
            help.contains(&name),
            "{name} is not a setting of ordergate serve"
        );
    }
}

fn acknowledged(seen: &Seen) -> HashMap<String, bytes::Bytes> {
    seen.lock()
        .expect("seen")
        .iter()
        .filter_map(|(k, v)| v.clone().map(|body| (k.clone(), body)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_sqlite_backup_under_load_restores_every_order_acknowledged_before_it() {
    let dir = tempfile::tempdir().expect("dir");
    let live = dir.path().join("live");
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&live).expect("dir");
    std::fs::create_dir_all(&restored).expect("dir");
    let db = process::sqlite_url(&live);
    let gw = process::serve(process::command(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db,
    ]));
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(join_all((0..8).map(|id| {
        tokio::spawn(writer(gw.url("/orders"), id, seen.clone(), stop.clone()))
    })));
    eventually(
        "200 orders acknowledged",
        Duration::from_secs(120),
        || async { acknowledged(&seen).len() >= 200 },
    )
    .await;

    // The backup command of docs/OPERATIONS.md, while the writers keep writing.
    let before = acknowledged(&seen);
    let backup = restored.join("ordergate.db");
    let out = Command::new("sqlite3")
        .arg(live.join("ordergate.db"))
        .arg(format!("VACUUM INTO '{}'", backup.display()))
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during = acknowledged(&seen).len();
    stop.store(true, Ordering::SeqCst);
    let _ = load.await;
    assert!(during > before.len(), "the backup ran under load");
    drop(gw);

    let check = Command::new("sqlite3")
        .arg(&backup)
        .arg("PRAGMA integrity_check")
        .output()
        .expect("sqlite3");
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    let restored_db = process::sqlite_url(&restored);
    let gw = process::serve(process::command(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        &restored_db,
    ]));
    let client = reqwest::Client::new();
    for (key, body) in &before {
        let (status, replay, replayed) = process::post_order(&client, &gw.url("/orders"), key)
            .await
            .expect("answer");
        assert_eq!((status, replay), (201, true), "{key} is in the backup");
        assert_eq!(&replayed, body, "{key} replays byte for byte");
    }
}
