//! The real `ordergate` binary as a child process, for tests of the command line,
//! signals and crashes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_ordergate");
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `ordergate serve` (possibly under a wrapper such as strace).
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    /// The server's own pid (the child may be a wrapper such as strace).
    pub pid: u32,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// How a start attempt ended.
pub enum Started {
    Serving(Gateway),
    Exited(ExitStatus, Vec<String>),
}

/// `ordergate serve ARGS`.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve");
    cmd.args(args);
    cmd
}

/// `ordergate serve` in open mode on a loopback port, on a SQLite file in `dir`.
pub fn serve_sqlite(dir: &Path) -> Gateway {
    let db = sqlite_url(dir);
    serve(command(&["--listen", "127.0.0.1:0", "--database", &db]))
}

/// A fresh SQLite URL in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("ordergate.db").display())
}

/// Starts the command and waits until it logs its address or exits. Logs at `info`
/// unless the command sets `RUST_LOG` itself.
pub fn start(mut cmd: Command) -> Started {
    if !cmd.get_envs().any(|(name, _)| name == "RUST_LOG") {
        cmd.env("RUST_LOG", "info");
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE");
    let mut child = cmd.spawn().expect("spawn ordergate");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (found, addr) = mpsc::channel();
    let lines = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Logged before it is announced, so a test that read the address sees the line.
            let listening = listening_address(&line);
            lines.lock().expect("log").push(line);
            if let Some(found_at) = listening {
                let _ = found.send(found_at);
            }
        }
    });
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok((addr, pid)) = addr.recv_timeout(Duration::from_millis(50)) {
            return Started::Serving(Gateway {
                child,
                addr,
                pid,
                log,
            });
        }
        if let Some(status) = child.try_wait().expect("wait") {
            // The reader ends once it has read the last line the process wrote.
            let _ = reader.join();
            let lines = log.lock().expect("log").clone();
            return Started::Exited(status, lines);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ordergate did not start"
        );
    }
}

/// Starts the command and expects it to serve.
pub fn serve(cmd: Command) -> Gateway {
    match start(cmd) {
        Started::Serving(gateway) => gateway,
        Started::Exited(status, log) => panic!("ordergate exited ({status}):\n{}", log.join("\n")),
    }
}

/// The address and pid from the "ordergate listening" log line.
fn listening_address(line: &str) -> Option<(SocketAddr, u32)> {
    if !line.contains("ordergate listening") {
        return None;
    }
    let field = |name: &str| {
        let start = line.find(name)? + name.len();
        line[start..].split_whitespace().next()
    };
    Some((field("addr=")?.parse().ok()?, field("pid=")?.parse().ok()?))
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// `kill -9`, and wait for the process to be gone.
    pub fn crash(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self, limit: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ordergate did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/readyz` for up to five seconds; true once it answers 200.
    pub async fn becomes_ready(&self, client: &reqwest::Client) -> bool {
        for _ in 0..100 {
            let ready = client.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Waits (up to ten seconds) until the process has logged a line with `text`.
    pub async fn logged(&self, text: &str) {
        for _ in 0..1000 {
            if self
                .log
                .lock()
                .expect("log")
                .iter()
                .any(|l| l.contains(text))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the process never logged {text:?}:\n{}", self.log_text());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `POST /orders` of the standard order; `None` when no answer came back
/// (connection refused or cut). Otherwise: status, whether it was a replay, and body.
pub async fn post_order(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> Option<(u16, bool, bytes::Bytes)> {
    let response = client
        .post(url)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(crate::helpers::ORDER)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let replay = response.headers().contains_key("idempotent-replay");
    Some((status, replay, response.bytes().await.ok()?))
}
