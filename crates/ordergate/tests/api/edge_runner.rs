//! The edge build on local workerd: `crates/ordergate-edge/dev.sh` as a child
//! process, and its Durable Objects' SQLite files read straight from its state
//! directory (the way the server tests read their database).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The runner; its interface is fixed (README, "At the edge").
pub const DEV_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ordergate-edge/dev.sh");

/// The old worker's runner, on the same local workerd.
const OLD_WORKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/old-worker/run.sh");

/// A first start may build the Worker (and install its tools).
const START_TIMEOUT: Duration = Duration::from_secs(900);

/// How many ports a start tries before it gives up.
const PORT_ATTEMPTS: usize = 5;

/// What wrangler prints when its port was taken first.
const PORT_TAKEN: &str = "Address already in use";

/// The API keys every edge test runs with, as the server tests do.
const KEYS: [&str; 2] = ["acme:acme-token", "globex:globex-token"];

/// A running `dev.sh`.
pub struct Edge {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub state: PathBuf,
    script: &'static str,
    args: Vec<String>,
    /// `ORDERGATE_EDGE_RUNNER`: `wrangler` (dev.sh's default) or `bare`.
    runner: &'static str,
}

impl Edge {
    /// `dev.sh --listen 127.0.0.1:PORT --state STATE --api-key … EXTRA`, once it answers.
    pub async fn start(state: &Path, extra: &[&str]) -> Edge {
        Self::start_on("wrangler", state, extra).await
    }

    /// [`Edge::start`] on the fair runner of the benchmarks (`ORDERGATE_EDGE_RUNNER=bare`:
    /// Miniflare's API, no `wrangler dev`).
    pub async fn start_bare(state: &Path, extra: &[&str]) -> Edge {
        Self::start_on("bare", state, extra).await
    }

    async fn start_on(runner: &'static str, state: &Path, extra: &[&str]) -> Edge {
        let mut args: Vec<&str> = KEYS.iter().flat_map(|key| ["--api-key", key]).collect();
        args.extend_from_slice(extra);
        Self::launch(DEV_SH, runner, state, &args).await
    }

    /// `dev.sh` with exactly these arguments after `--listen` and `--state`.
    pub async fn start_without_keys(state: &Path, args: &[&str]) -> Edge {
        Self::launch(DEV_SH, "wrangler", state, args).await
    }

    /// The old worker (`bench/old-worker/run.sh`) on the same local workerd.
    pub async fn old_worker(state: &Path) -> Edge {
        Self::launch(OLD_WORKER, "wrangler", state, &[]).await
    }

    /// Starts `script` on a port of its own. A port found free can be taken before
    /// wrangler binds it; then wrangler exits at once and the start is tried again on
    /// another port, so a test never fails on a neighbour's port.
    async fn launch(
        script: &'static str,
        runner: &'static str,
        state: &Path,
        args: &[&str],
    ) -> Edge {
        for _ in 0..PORT_ATTEMPTS {
            let mut edge = Edge {
                child: None,
                addr: free_port(),
                state: state.to_owned(),
                script,
                args: args.iter().map(|s| s.to_string()).collect(),
                runner,
            };
            edge.spawn();
            match edge.wait_until_serving().await {
                Ok(()) => return edge,
                Err(status) => {
                    let log = std::fs::read_to_string(edge.stderr_log()).unwrap_or_default();
                    assert!(
                        log.contains(PORT_TAKEN),
                        "{script} exited before serving: {status}\n{log}"
                    );
                }
            }
        }
        panic!("{script}: every port tried was taken before it could bind");
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.state).expect("state directory");
        let stderr = std::fs::File::create(self.stderr_log()).expect("runner log");
        let stdout = std::fs::File::create(self.stdout_log()).expect("runner log");
        let child = Command::new(self.script)
            .env("ORDERGATE_EDGE_RUNNER", self.runner)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--state")
            .arg(&self.state)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn the runner");
        self.child = Some(child);
    }

    /// The runner's stderr, kept beside its state (outside `data/`).
    fn stderr_log(&self) -> PathBuf {
        self.state.join("runner-stderr.log")
    }

    fn stdout_log(&self) -> PathBuf {
        self.state.join("runner-stdout.log")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What the runner (workerd's console included) has written so far, to stderr
    /// and stdout: where wrangler puts the Worker's console depends on its terminal.
    pub fn log(&self) -> String {
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        read(self.stderr_log()) + &read(self.stdout_log())
    }

    /// Waits until it answers; the exit status if it ended first.
    async fn wait_until_serving(&mut self) -> Result<(), std::process::ExitStatus> {
        let client = reqwest::Client::new();
        // Any HTTP answer means workerd serves (the old worker has no /healthz).
        let url = format!("http://{}/healthz", self.addr);
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(&url).send().await
                && (r.status() == 200 || self.script == OLD_WORKER)
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(status);
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "dev.sh did not serve in time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, as a user's Ctrl-C or a supervisor would; dev.sh must stop workerd and
    /// every child and exit 0.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "SIGTERM sent");
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("wait task")
            .expect("dev.sh status");
        assert!(status.success(), "dev.sh exits 0 on SIGTERM, got {status}");
        let address_free = std::net::TcpListener::bind(self.addr).is_ok();
        assert!(address_free, "workerd is gone and its port is free");
    }

    /// `kill -9` of the runtime: the runner, wrangler, workerd and every other process
    /// below it, all at once, with nothing stopped cleanly.
    pub fn kill_9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut tree = vec![child.id()];
        let mut seen = 0;
        while seen < tree.len() {
            let parent = tree[seen];
            tree.extend(children_of(parent));
            seen += 1;
        }
        let pids: Vec<String> = tree.iter().map(u32::to_string).collect();
        let status = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .status()
            .expect("kill");
        assert!(status.success(), "SIGKILL sent to {pids:?}");
        child.wait().expect("the runner is reaped");
        for pid in &tree {
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while proc_dir.exists() && !is_zombie(&proc_dir) {
                assert!(Instant::now() < deadline, "process {pid} outlived SIGKILL");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// After [`Edge::kill_9`]: the runtime started again on the same state directory,
    /// with the same settings, on a new port.
    pub async fn start_again(self) -> Edge {
        assert!(self.child.is_none(), "start_again follows kill_9");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Self::launch(self.script, self.runner, &self.state, &args).await
    }

    /// Stops this one (SIGTERM) and starts another on the same state directory, with
    /// the same settings, on a new port.
    pub async fn restart(self) -> Edge {
        self.restart_adding(&[]).await
    }

    /// Like [`Edge::restart`], with `more` settings after the ones it had.
    pub async fn restart_adding(mut self, more: &[&str]) -> Edge {
        self.stop().await;
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(more);
        Self::launch(self.script, self.runner, &self.state, &args).await
    }

    /// How many orders each key has, summed over every object of the state directory
    /// (one SQLite file per tenant shard; a key lives in one shard of its tenant).
    pub fn orders_per_key(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for file in object_files(&self.state) {
            let conn = open_object(&file);
            let mut stmt = match conn
                .prepare("SELECT count(*) FROM orders GROUP BY idempotency_key ORDER BY 1")
            {
                Ok(stmt) => stmt,
                // An object that was only asked to look up has no tables yet.
                Err(_) => continue,
            };
            let rows = stmt
                .query_map([], |row| row.get(0))
                .expect("query")
                .collect::<Result<Vec<i64>, _>>()
                .expect("rows");
            counts.extend(rows);
        }
        counts.sort_unstable();
        counts
    }

    /// How many objects have a database.
    pub fn object_count(&self) -> usize {
        object_files(&self.state).len()
    }

    /// How many idempotency records (expired or not) the objects still hold.
    pub fn records(&self) -> i64 {
        object_files(&self.state)
            .iter()
            .map(|file| {
                let conn = open_object(file);
                conn.query_row("SELECT count(*) FROM records", [], |row| row.get(0))
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces, so read after its ')'.
            let after = stat.rsplit_once(')')?.1;
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

fn is_zombie(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.to_owned();
            after.split_whitespace().next().map(|s| s == "Z")
        })
        .unwrap_or(true)
}

/// One object's database, read-only (workerd may still be writing it).
fn open_object(file: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open object database")
}

/// The SQLite files of the `KeyShard` objects under a state directory.
fn object_files(state: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![state.join("data")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "sqlite")
                && path.file_stem().is_some_and(|stem| stem != "metadata")
                && path.to_string_lossy().contains("KeyShard")
            {
                files.push(path);
            }
        }
    }
    files
}

/// A free port below the kernel's ephemeral range (32768 and up on Linux), where no
/// outgoing connection or `bind(0)` of another test can take it between this check
/// and wrangler's bind; each call starts its search somewhere else.
pub fn free_port() -> SocketAddr {
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let start = fastrand::u16(0..SPAN);
    (0..SPAN)
        .map(|step| LOW + (start + step) % SPAN)
        .find_map(|port| {
            let listener = TcpListener::bind(("127.0.0.1", port)).ok()?;
            listener.local_addr().ok()
        })
        .expect("a free port between 20000 and 32000")
}
