//! The command line and process behaviour of the real binary: environment variables,
//! open mode, one process per SQLite file, SIGHUP and SIGTERM.

use std::io::{Read, Write};
use std::time::Duration;

use crate::helpers::ORDER;
use crate::process::{self, Started};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(gw: &process::Gateway, token: Option<&str>, key: &str, body: &str) -> u16 {
    let mut request = client()
        .post(gw.url("/orders"))
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn every_setting_can_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cmd = process::command(&[]);
    cmd.env("ORDERGATE_LISTEN", "127.0.0.1:0")
        .env("ORDERGATE_DATABASE", process::sqlite_url(dir.path()))
        .env("ORDERGATE_API_KEYS", "acme:t-acme,globex:t-globex")
        .env("ORDERGATE_MAX_BODY", "100")
        .env("ORDERGATE_RESULT_TTL", "1h")
        .env("ORDERGATE_LEASE_TTL", "5s")
        .env("ORDERGATE_SHUTDOWN_TIMEOUT", "2s")
        // Nothing listens on port 9: the delivery stays pending, and says so.
        .env("ORDERGATE_DELIVER", "http://127.0.0.1:9/hook")
        .env("ORDERGATE_DELIVER_SECRET", "whsec_c2VjcmV0")
        .env("ORDERGATE_DELIVER_MAX_AGE", "1h");
    let gw = process::serve(cmd);
    assert_eq!(post(&gw, Some("t-acme"), "e1", ORDER).await, 201);
    let found = client()
        .get(gw.url("/orders?idempotencyKey=e1"))
        .bearer_auth("t-acme")
        .send()
        .await
        .expect("sent");
    let order: serde_json::Value = found.json().await.expect("order");
    let delivery = client()
        .get(gw.url(&format!(
            "/orders/{}/delivery",
            order["orderId"].as_str().expect("id")
        )))
        .bearer_auth("t-acme")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        delivery.status(),
        200,
        "ORDERGATE_DELIVER turned delivery on"
    );
    assert_eq!(post(&gw, Some("t-globex"), "e1", ORDER).await, 201);
    assert_eq!(post(&gw, None, "e2", ORDER).await, 401);
    let big = format!("{ORDER}{}", " ".repeat(100));
    assert_eq!(post(&gw, Some("t-acme"), "e3", &big).await, 413);
    assert!(dir.path().join("ordergate.db").exists());
    gw.signal("TERM");
    assert!(gw.wait(Duration::from_secs(10)).success());
}

#[tokio::test]
async fn open_mode_serves_tenant_default_on_loopback_only() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve_sqlite(dir.path());
    assert_eq!(post(&gw, None, "open", ORDER).await, 201);
    let found = client()
        .get(gw.url("/orders?idempotencyKey=open"))
        .send()
        .await
        .expect("sent");
    assert_eq!(found.status(), 200);
    drop(gw);

    let other = tempfile::tempdir().expect("dir");
    let db = process::sqlite_url(other.path());
    match process::start(process::command(&[
        "--listen",
        "0.0.0.0:0",
        "--database",
        &db,
    ])) {
        Started::Exited(status, log) => {
            assert!(!status.success());
            assert!(log.join("\n").contains("open mode"), "{log:?}");
        }
        Started::Serving(_) => panic!("open mode must not serve on a public address"),
    }
}

#[tokio::test]
async fn a_second_process_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().expect("dir");
    let db = process::sqlite_url(dir.path());
    let args = ["--listen", "127.0.0.1:0", "--database", &db];
    let first = process::serve(process::command(&args));
    match process::start(process::command(&args)) {
        Started::Exited(status, log) => {
            assert!(!status.success());
            assert!(log.join("\n").contains("in use"), "{log:?}");
        }
        Started::Serving(_) => panic!("two processes on one SQLite file"),
    }
    assert_eq!(post(&first, None, "still-mine", ORDER).await, 201);
    // The lock dies with its process, even after kill -9.
    first.crash();
    let again = process::serve(process::command(&args));
    assert_eq!(post(&again, None, "still-mine", ORDER).await, 201);
}

/// Starts `ordergate serve` on `database` and expects it to refuse, saying `why`,
/// with no line said twice.
fn refuses(database: &str, why: &str) {
    match process::start(process::command(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        database,
    ])) {
        Started::Exited(status, log) => {
            assert!(!status.success(), "{database}");
            assert!(log.join("\n").contains(why), "{database}: {log:?}");
            let causes: Vec<&String> = log.iter().filter(|l| l.starts_with("  because")).collect();
            let unique: std::collections::HashSet<_> = causes.iter().collect();
            assert_eq!(unique.len(), causes.len(), "{log:?}");
        }
        Started::Serving(_) => panic!("{database} must be refused"),
    }
}

#[test]
fn start_up_errors_say_which_failure_it_is_once_per_cause() {
    let admin = crate::pg::admin_url();
    let (base, _) = admin.rsplit_once('/').expect("a database in the URL");
    let host = base.rsplit_once('@').map_or(base, |(_, host)| host);
    let cases = [
        (
            format!("postgres://no_such_role@{host}/postgres"),
            "refused the login",
            "no_such_role",
        ),
        (
            format!("{base}/no_such_database"),
            "does not exist",
            "no_such_database",
        ),
        (
            "postgres://postgres@127.0.0.1:1/postgres".to_owned(),
            "nothing listens",
            "refused",
        ),
        (
            format!("{base}/postgres?connect_timeout=soon"),
            "URL is invalid",
            "connect_timeout",
        ),
    ];
    for (url, hint, detail) in cases {
        refuses(&url, hint);
        refuses(&url, detail);
    }
    for (flags, why) in [
        (vec!["--lease-ttl", "1ns"], "must be from 100ms to 1h"),
        (vec!["--lease-ttl", "300000000000years"], "--lease-ttl"),
        (
            vec!["--result-ttl", "300000years"],
            "must be from 1s to 365d",
        ),
        (
            vec!["--lease-ttl", "30s", "--result-ttl", "10s"],
            "must be shorter than --result-ttl",
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let db = process::sqlite_url(dir.path());
        let mut args = vec!["--listen", "127.0.0.1:0", "--database", &db];
        args.extend(flags);
        let out = process::command(&args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("backtrace") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn no_form_of_postgres_password_reaches_the_log() {
    let db = crate::pg::TestDb::create().await;
    let (scheme, rest) = db.url.split_once("://").expect("url");
    let (user, location) = rest.split_once('@').expect("user");
    for url in [
        format!("{scheme}://{user}:hunter2-secret@{location}"),
        format!("{}?password=hunter2-secret", db.url),
        format!("{}?application_name=x&pass%77ord=hunter2-secret", db.url),
    ] {
        let gw = process::serve(process::command(&[
            "--listen",
            "127.0.0.1:0",
            "--database",
            &url,
        ]));
        let log = gw.log_text();
        assert!(log.contains("<redacted>"), "{log}");
        assert!(!log.contains("hunter2"), "{log}");
        // The second and third starts find the tables made: no notice says so.
        assert!(!log.contains("already exists"), "{log}");
    }
}

#[tokio::test]
async fn sqlite_takes_a_file_path_and_nothing_else() {
    let dir = tempfile::tempdir().expect("dir");
    let in_dir = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    refuses("sqlite://:memory:", "in-memory");
    refuses(
        "sqlite://file:orders.db?mode=memory&cache=shared",
        "in-memory",
    );
    refuses(
        &format!("sqlite://file:{}", dir.path().join("u.db").display()),
        "plain file path",
    );
    refuses(&format!("{}?mode=rwc", in_dir("u.db")), "plain file path");
    // One file, two names: the second process still finds it taken.
    let first = process::serve(process::command(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        &in_dir("u.db"),
    ]));
    std::os::unix::fs::symlink(dir.path().join("u.db"), dir.path().join("link.db"))
        .expect("symlink");
    refuses(&in_dir("link.db"), "in use");
    assert_eq!(post(&first, None, "mine", ORDER).await, 201);
}

#[tokio::test]
async fn a_database_file_deleted_or_replaced_under_the_server_refuses_writes() {
    for replace in [false, true] {
        let dir = tempfile::tempdir().expect("dir");
        let gw = process::serve_sqlite(dir.path());
        assert_eq!(post(&gw, None, "before", ORDER).await, 201);
        let file = dir.path().join("ordergate.db");
        std::fs::rename(&file, dir.path().join("moved-away.db")).expect("move the file away");
        if replace {
            std::fs::write(&file, b"").expect("an impostor");
        }
        assert_eq!(
            post(&gw, None, "after", ORDER).await,
            503,
            "replace: {replace}"
        );
        let client = reqwest::Client::new();
        let ready = client.get(gw.url("/readyz")).send().await.expect("probe");
        assert_eq!(ready.status(), 503, "replace: {replace}");
        let why = if replace { "was replaced" } else { "is gone" };
        gw.logged(why).await;
    }
}

#[tokio::test]
async fn the_api_keys_file_is_re_read_on_sighup() {
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# tenants\nacme:old-token\n").expect("write keys");
    let db = process::sqlite_url(dir.path());
    let keys_arg = keys.display().to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db,
        "--api-keys-file",
        &keys_arg,
    ];
    let gw = process::serve(process::command(&args));
    assert_eq!(post(&gw, Some("old-token"), "h1", ORDER).await, 201);
    assert_eq!(post(&gw, Some("new-token"), "h2", ORDER).await, 401);
    std::fs::write(&keys, "acme:new-token\n").expect("rewrite keys");
    gw.signal("HUP");
    gw.logged("API keys reloaded").await;
    assert_eq!(
        post(&gw, Some("new-token"), "h2", ORDER).await,
        201,
        "the new token works after SIGHUP"
    );
    assert_eq!(post(&gw, Some("old-token"), "h3", ORDER).await, 401);
    // An emptied file is a mistake, not a wish to lock every tenant out.
    std::fs::write(&keys, "# emptied\n").expect("empty the keys file");
    gw.signal("HUP");
    gw.logged("holds no API key").await;
    assert_eq!(
        post(&gw, Some("new-token"), "h4", ORDER).await,
        201,
        "old keys kept"
    );
    assert!(
        !gw.log_text().contains("new-token"),
        "tokens are never logged"
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let dir = tempfile::tempdir().expect("dir");
    let db = process::sqlite_url(dir.path());
    let mut cmd = process::command(&["--listen", "127.0.0.1:0", "--database", &db]);
    // The trace layer says when a request's handler has started.
    cmd.env("RUST_LOG", "info,tower_http=debug");
    let gw = process::serve(cmd);
    // Half a request: headers and part of the body, then SIGTERM, then the rest.
    let mut stream = std::net::TcpStream::connect(gw.addr).expect("connect");
    let head = format!(
        "POST /orders HTTP/1.1\r\nhost: x\r\nidempotency-key: drain\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        ORDER.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    stream.write_all(&ORDER.as_bytes()[..10]).expect("write");
    gw.logged("started processing request").await;
    gw.signal("TERM");
    gw.logged("shutting down: draining in-flight requests")
        .await;
    stream.write_all(&ORDER.as_bytes()[10..]).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        gw.wait(Duration::from_secs(10)).success(),
        "exit 0 after draining"
    );
}

#[test]
fn help_lists_every_flag() {
    let out = std::process::Command::new(process::BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--database",
        "--api-key",
        "--api-keys-file",
        "--result-ttl",
        "--lease-ttl",
        "--max-body",
        "--shutdown-timeout",
        "--deliver",
        "--deliver-secret",
        "--deliver-max-age",
        "ORDERGATE_API_KEYS_FILE",
        "ORDERGATE_DELIVER_MAX_AGE",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
