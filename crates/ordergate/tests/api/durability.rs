//! A 201 is sent only after the commit holding its order is fsynced, and a lookup
//! never shows an order that is not yet on disk.
//!
//! `kill -9` cannot see a missing fsync (the page cache outlives the process), so this
//! test reads the order of events instead: the server runs under `strace`, and every
//! 201, and every 200 carrying an order, written to a socket must come after an fsync
//! of the WAL that follows the WAL write carrying its order. The checker is itself
//! tested on traces where an answer overtakes its fsync.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::future::join_all;

use crate::helpers::ORDER;
use crate::process;

const ORDERS: usize = 40;
const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_201_is_sent_after_the_fsync_of_its_commit() {
    let dir = tempfile::tempdir().expect("dir");
    let trace = dir.path().join("trace");
    let db = process::sqlite_url(dir.path());
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-qq", "-s", "65536", "-o"])
        .arg(&trace)
        .args([
            "-e",
            "trace=pwrite64,pwritev,write,writev,sendto,sendmsg,fsync,fdatasync",
        ])
        .args([
            process::BIN,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
        ]);
    let gw = process::serve(cmd);
    let client = reqwest::Client::new();
    let placing = Arc::new(AtomicBool::new(true));
    let found = Arc::new(AtomicUsize::new(0));
    // Each client has a looker that keeps asking for the key the client is placing
    // right now, to catch an order between its commit and its fsync.
    let current: Vec<Arc<AtomicUsize>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let lookers: Vec<_> = current
        .iter()
        .enumerate()
        .map(|(c, current)| {
            let (client, url) = (client.clone(), gw.url("/orders"));
            let (placing, found, current) = (placing.clone(), found.clone(), current.clone());
            tokio::spawn(async move {
                while placing.load(Ordering::SeqCst) {
                    let key = format!("durable-{c}-{}", current.load(Ordering::SeqCst));
                    let response = client
                        .get(&url)
                        .query(&[("idempotencyKey", key)])
                        .send()
                        .await
                        .expect("sent");
                    if response.status() == 200 {
                        found.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let created = join_all((0..CLIENTS).map(|c| {
        let (client, url) = (client.clone(), gw.url("/orders"));
        let current = current[c].clone();
        async move {
            let mut created = 0;
            for n in 0..ORDERS / CLIENTS {
                current.store(n, Ordering::SeqCst);
                let response = client
                    .post(&url)
                    .header("idempotency-key", format!("durable-{c}-{n}"))
                    .header("content-type", "application/json")
                    .body(ORDER)
                    .send()
                    .await
                    .expect("sent");
                created += usize::from(response.status() == 201);
            }
            created
        }
    }))
    .await
    .into_iter()
    .sum::<usize>();
    assert_eq!(created, ORDERS);
    placing.store(false, Ordering::SeqCst);
    for looker in lookers {
        looker.await.expect("looker");
    }
    let found = found.load(Ordering::SeqCst);
    assert!(found > 0, "the lookups found orders");
    gw.signal("TERM");
    assert!(gw.wait(Duration::from_secs(20)).success());
    let text = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        check_acks_follow_fsync(&text),
        Ok(ORDERS + found),
        "every 201 and every order found follows its fsync"
    );
}

#[test]
fn the_checker_catches_a_201_sent_before_its_fsync() {
    let id = "01a2206d-790b-7434-8654-827bb394784c";
    let write = format!(r#"7 pwrite64(13</d/o.db-wal>, "\r\0\0{id}\0", 4096, 32) = 4096"#);
    let sync = "7 fsync(13</d/o.db-wal>) = 0";
    let ack = format!(
        r#"5 writev(15<socket:[1]>, [{{iov_base="HTTP/1.1 201 Created\r\nlocation: /orders/{id}\r\n\r\n", iov_len=60}}], 1) = 60"#
    );
    let good = [write.as_str(), sync, ack.as_str()].join("\n");
    assert_eq!(check_acks_follow_fsync(&good), Ok(1));
    let early = [write.as_str(), ack.as_str(), sync].join("\n");
    assert!(check_acks_follow_fsync(&early).is_err());
    let found = format!(
        r#"5 writev(15<socket:[1]>, [{{iov_base="HTTP/1.1 200 OK\r\n\r\n{{\"orderId\":\"{id}\"}}", iov_len=60}}], 1) = 60"#
    );
    let found_early = [write.as_str(), found.as_str(), sync].join("\n");
    assert!(check_acks_follow_fsync(&found_early).is_err());
    let found_late = [write.as_str(), sync, found.as_str()].join("\n");
    assert_eq!(check_acks_follow_fsync(&found_late), Ok(1));
    let never_written = [sync, ack.as_str()].join("\n");
    assert!(check_acks_follow_fsync(&never_written).is_err());
    // An fsync still running when the 201 goes out does not count.
    let unfinished = [
        write.as_str(),
        "7 fsync(13</d/o.db-wal> <unfinished ...>",
        ack.as_str(),
        "7 <... fsync resumed>) = 0",
    ]
    .join("\n");
    assert!(check_acks_follow_fsync(&unfinished).is_err());
}

/// Checks an `strace -f -y` trace; returns how many answers (201s, and 200s carrying
/// an order) it checked.
fn check_acks_follow_fsync(trace: &str) -> Result<usize, String> {
    let mut pending: HashMap<&str, &str> = HashMap::new();
    let mut first_wal_write: HashMap<String, usize> = HashMap::new();
    let mut last_wal_sync: Option<usize> = None;
    let mut syncs: Vec<usize> = Vec::new();
    let mut acks = 0;
    for (at, line) in trace.lines().enumerate() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        if call.ends_with("<unfinished ...>") {
            pending.insert(pid, call);
        }
        // A call's start line holds its arguments; its end line (maybe a "resumed"
        // line) holds its result.
        let (start, finished) = if call.starts_with("<...") {
            (pending.remove(pid).unwrap_or(call), true)
        } else {
            (call, !call.ends_with("<unfinished ...>"))
        };
        let on_wal = start.contains("-wal>");
        if start.starts_with("pwrite") && on_wal {
            for id in uuids(start) {
                first_wal_write.entry(id).or_insert(at);
            }
        }
        let is_sync = start.starts_with("fsync(") || start.starts_with("fdatasync(");
        if is_sync && on_wal && finished && call.trim_end().ends_with("= 0") {
            syncs.push(at);
            last_wal_sync = Some(at);
        }
        let answer = start.contains("socket:[") && !call.starts_with("<...");
        let id = if answer && start.contains("HTTP/1.1 201") {
            Some(location_id(start).ok_or_else(|| format!("line {at}: 201 without Location"))?)
        } else if answer && start.contains("HTTP/1.1 200") {
            uuids(start).into_iter().next()
        } else {
            None
        };
        if let Some(id) = id {
            let written = *first_wal_write.get(&id).ok_or_else(|| {
                format!("line {at}: an answer with order {id} never written to the WAL")
            })?;
            if !syncs.iter().any(|&s| s > written && s < at) {
                return Err(format!(
                    "line {at}: an answer with order {id} sent before the WAL was fsynced (written at {written}, last fsync {last_wal_sync:?})"
                ));
            }
            acks += 1;
        }
    }
    Ok(acks)
}

fn uuids(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let shape = |w: &[u8]| {
        w.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit() && !b.is_ascii_uppercase(),
        })
    };
    bytes
        .windows(36)
        .filter(|w| shape(w))
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

fn location_id(text: &str) -> Option<String> {
    let start = text.find("location: /orders/")? + "location: /orders/".len();
    text.get(start..start + 36).map(str::to_owned)
}
