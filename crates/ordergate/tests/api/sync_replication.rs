//! Synchronous replication, on a PostgreSQL of the test's own: a primary whose standby
//! is gone keeps every commit waiting (`synchronous_standby_names` names a standby
//! that never connects), as a zombie primary does after a failover elsewhere. A
//! commit whose wait is cancelled is reported by PostgreSQL as a success, with only a
//! WARNING notice: the gateway must not acknowledge it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process;

/// A PostgreSQL server in a temporary directory, run as the `postgres` user.
struct Primary {
    /// Removed when the server is gone (fields drop after `drop` runs).
    _dir: tempfile::TempDir,
    port: u16,
    postmaster: Child,
}

impl Primary {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        run(Command::new("chown").arg("postgres:").arg(dir.path()));
        let data = dir.path().join("data");
        run(as_postgres(&bin("initdb"))
            .current_dir(dir.path())
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let postmaster = as_postgres(&bin("postgres"))
            .current_dir(dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let primary = Self {
            _dir: dir,
            port,
            postmaster,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while primary.try_sql("SELECT 1").is_none() {
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        primary
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn try_sql(&self, sql: &str) -> Option<String> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
                sql,
            ])
            .args(["-p", &self.port.to_string()])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|| panic!("psql: {sql}"))
    }

    /// Every later commit waits for a standby named `names` (empty: none).
    fn wait_for_standby(&self, names: &str) {
        self.sql(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{names}'"
        ));
        self.sql("SELECT pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sql("SHOW synchronous_standby_names") != names {
            assert!(Instant::now() < deadline, "the setting took effect");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The backends whose commit waits for the standby.
    fn waiting_commits(&self) -> usize {
        let n = self.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
        n.parse().expect("a count")
    }
}

impl Drop for Primary {
    /// An immediate shutdown: the postmaster takes its backends with it.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.postmaster.id().to_string()])
            .status();
        let _ = self.postmaster.wait();
    }
}

fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries under /usr/lib/postgresql")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(name)
}

/// `program` run as the `postgres` user (PostgreSQL refuses root), as the child
/// itself: a signal to the child reaches the server.
fn as_postgres(program: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user")
    };
    let mut command = Command::new(program);
    command.uid(id("-u")).gid(id("-g")).stdout(Stdio::null());
    command
}

fn run(command: &mut Command) {
    let status = command.status().expect("runs");
    assert!(status.success(), "{command:?}");
}

/// The standby is gone, a placement's commit waits for it, and the wait is cancelled
/// (as an operator or a tool unsticks a zombie primary): PostgreSQL reports the
/// commit as done, but the order is answered 503, never 201. Once replication is
/// healthy again, the client's retry with the same key gets the one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_wait_for_the_standby_was_cancelled_is_not_acknowledged() {
    let primary = Primary::start();
    let url = primary.url();
    let gw = process::serve(process::command(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        &url,
    ]));
    primary.wait_for_standby("ghost");
    let client = reqwest::Client::new();
    let orders = gw.url("/orders");
    let posting = tokio::spawn({
        let (client, orders) = (client.clone(), orders.clone());
        async move { process::post_order(&client, &orders, "cancelled-wait").await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while primary.waiting_commits() == 0 {
        if posting.is_finished() {
            let answer = posting.await.expect("task");
            panic!(
                "answered before its commit waited: {answer:?}\n{}",
                gw.log_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the placement's commit waits for the standby"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!posting.is_finished(), "no answer while the commit waits");
    primary.sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
    let (status, _, body) = posting.await.expect("task").expect("an answer");
    assert_eq!(
        status,
        503,
        "a commit that may not be on any standby is not acknowledged: {}",
        String::from_utf8_lossy(&body)
    );
    let stored = primary.sql("SELECT count(*) FROM orders");
    assert_eq!(stored, "1", "PostgreSQL did commit it locally");

    primary.wait_for_standby("");
    let (status, replay, _) = process::post_order(&client, &orders, "cancelled-wait")
        .await
        .expect("an answer");
    assert_eq!((status, replay), (201, true), "the retry settles it");
    assert_eq!(primary.sql("SELECT count(*) FROM orders"), "1");
    let (status, replay, _) = process::post_order(&client, &orders, "healthy")
        .await
        .expect("an answer");
    assert_eq!(
        (status, replay),
        (201, false),
        "healthy commits are acknowledged"
    );
}
