//! Connection handling of the real binary: every connection bounded in time and
//! memory, HTTP/1.1 only, a cap the process can hold, and shutdown with every slot taken.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Gateway};

/// Longer than the server's 10 s header timeout: a connection still open after it
/// is one the server keeps forever.
const PATIENCE: Duration = Duration::from_secs(20);

fn connect(gw: &Gateway) -> TcpStream {
    let stream = TcpStream::connect(gw.addr).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// Everything the server sends until it closes the connection; panics if it never does.
fn read_until_closed(mut stream: TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => answer,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => answer,
        Err(e) => panic!("the server kept the connection open: {e}"),
    }
}

/// `ordergate serve` on a SQLite file in `dir`, started through `sh` with `limits`
/// (`ulimit` arguments) applied first.
fn serve_limited(dir: &std::path::Path, limits: &str, extra: &str) -> Gateway {
    let db = process::sqlite_url(dir);
    let script = format!(
        "ulimit {limits} && exec {} serve --listen 127.0.0.1:0 --database {db} {extra}",
        process::BIN
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    process::serve(cmd)
}

#[test]
fn a_silent_connection_and_a_half_sent_preface_are_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve_sqlite(dir.path());
    let silent = connect(&gw);
    let mut preface = connect(&gw);
    preface.write_all(b"PRI * HTTP/2.0\r\n").expect("write");
    assert!(read_until_closed(silent).is_empty());
    let answer = read_until_closed(preface);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "{answer:?}"
    );
}

#[test]
fn http2_cleartext_is_not_served() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve_sqlite(dir.path());
    let mut stream = connect(&gw);
    // The HTTP/2 connection preface and an empty SETTINGS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("write");
    let answer = read_until_closed(stream);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "an HTTP/2 server would answer with a SETTINGS frame: {answer:?}"
    );
}

#[test]
fn a_large_header_section_is_a_431_problem_and_an_endless_one_is_cut_off() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve_sqlite(dir.path());
    let mut stream = connect(&gw);
    let mut request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..20 {
        request.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    stream.write_all(&request).expect("write");
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).expect("answer");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");
    assert!(head.contains("request_header_fields_too_large"), "{head}");

    let mut endless = connect(&gw);
    endless
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .expect("write");
    let line = format!("x-more: {}\r\n", "b".repeat(1000));
    for _ in 0..1024 {
        if endless.write_all(line.as_bytes()).is_err() {
            break; // closed by the server, as it should be
        }
    }
    let answer = read_until_closed(endless);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn an_early_answer_to_a_request_whose_body_was_not_read_says_connection_close() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = serve_limited(dir.path(), "-n 4096", "--api-key acme:acme-token");
    for (path, token) in [
        ("/orders", ""),
        ("/nowhere", "authorization: Bearer acme-token\r\n"),
    ] {
        let mut stream = connect(&gw);
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{token}content-type: application/json\r\n\
             content-length: 45\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("write");
        let answer = String::from_utf8_lossy(&read_until_closed(stream)).to_lowercase();
        assert!(answer.starts_with("http/1.1 40"), "{answer}");
        assert!(answer.contains("connection: close"), "{path}: {answer}");
    }
    // A request whose body was read keeps its connection.
    let mut stream = connect(&gw);
    let order = crate::helpers::ORDER;
    let request = format!(
        "POST /orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer acme-token\r\n\
         idempotency-key: kept\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{order}",
        order.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = [0u8; 1024];
    let n = stream.read(&mut answer).expect("answer");
    let answer = String::from_utf8_lossy(&answer[..n]).to_lowercase();
    assert!(answer.starts_with("http/1.1 201"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
}

fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = serve_limited(dir.path(), "-S -n 256", "");
    let (soft, hard) = open_files_limit(gw.pid);
    assert_eq!(soft, hard, "soft {soft}, hard {hard}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_honoured_with_every_slot_taken_and_a_second_one_exits_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    // 150 open files leave room for 22 connections.
    let gw = serve_limited(dir.path(), "-n 150", "--shutdown-timeout 30s");
    gw.logged("connections=22").await;
    let open_files =
        || std::fs::read_dir(format!("/proc/{}/fd", gw.pid)).map_or(0, Iterator::count);
    let before = open_files();
    // Every slot holds a request whose body never comes; one more waits in the backlog.
    let held: Vec<TcpStream> = (0..23)
        .map(|_| {
            let mut stream = connect(&gw);
            stream
                .write_all(b"POST /orders HTTP/1.1\r\nhost: x\r\ncontent-length: 45\r\n\r\n")
                .expect("write");
            stream
        })
        .collect();
    // The server has taken every slot (a loaded machine may not have accepted them yet).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while open_files() < before + 22 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not accept 22 connections"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.signal("TERM");
    gw.logged("shutting down: draining in-flight requests")
        .await;
    gw.signal("TERM");
    gw.logged("second stop signal").await;
    let status = gw.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "exited at once, without draining");
    drop(held);
}
