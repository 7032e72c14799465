//! A 201 is sent only after the commit holding its order is fsynced.
//!
//! `kill -9` cannot see a missing fsync (the page cache outlives the process), so this
//! test reads the order of events instead: the server runs under `strace`, and every
//! 201 written to a socket must come after an fsync of the WAL that follows the WAL
//! write carrying its order. The checker is itself tested on a trace where a 201
//! overtakes its fsync.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

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
    let created = join_all((0..CLIENTS).map(|c| {
        let (client, url) = (client.clone(), gw.url("/orders"));
        async move {
            let mut created = 0;
            for n in 0..ORDERS / CLIENTS {
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
    gw.signal("TERM");
    assert!(gw.wait(Duration::from_secs(20)).success());
    let text = std::fs::read_to_string(&trace).expect("trace");
    assert_eq!(
        check_acks_follow_fsync(&text),
        Ok(ORDERS),
        "every 201 follows its fsync"
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

/// Checks an `strace -f -y` trace; returns how many 201s it checked.
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
        if start.contains("socket:[") && start.contains("HTTP/1.1 201") && !call.starts_with("<...")
        {
            let id =
                location_id(start).ok_or_else(|| format!("line {at}: 201 without Location"))?;
            let written = *first_wal_write
                .get(&id)
                .ok_or_else(|| format!("line {at}: 201 for {id} never written to the WAL"))?;
            if !syncs.iter().any(|&s| s > written && s < at) {
                return Err(format!(
                    "line {at}: 201 for {id} sent before the WAL was fsynced (written at {written}, last fsync {last_wal_sync:?})"
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
