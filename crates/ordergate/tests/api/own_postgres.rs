//! PostgreSQL servers of a test's own, in temporary directories: for what cannot be
//! done to the shared server (a standby that never comes, a primary made read-only).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server in a temporary directory, run as the `postgres` user.
pub struct Primary {
    /// Removed when the server is gone (fields drop after `drop` runs).
    _dir: tempfile::TempDir,
    port: u16,
    postmaster: Child,
}

impl Primary {
    pub fn start() -> Self {
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

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn try_sql(&self, sql: &str) -> Option<String> {
        psql(self.port, sql)
    }

    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql).unwrap_or_else(|| panic!("psql: {sql}"))
    }

    /// Every later commit waits for a standby named `names` (empty: none).
    pub fn wait_for_standby(&self, names: &str) {
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
    pub fn waiting_commits(&self) -> usize {
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

/// `sql` as the superuser on the server at `port` on loopback; `None` if it fails.
pub fn psql(port: u16, sql: &str) -> Option<String> {
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
        .args(["-p", &port.to_string()])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn bin(name: &str) -> PathBuf {
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
pub fn as_postgres(program: &Path) -> Command {
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

impl Primary {
    /// `host:port`, for a multi-host URL.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// From now on every new transaction is read-only, as on a demoted primary; a
    /// client asking for `target_session_attrs=read-write` passes it by.
    pub fn make_read_only(&self) {
        self.sql("ALTER SYSTEM SET default_transaction_read_only = on");
        self.sql("SELECT pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sql("SHOW default_transaction_read_only") != "on" {
            assert!(Instant::now() < deadline, "the setting took effect");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
