//! A real FIX 4.4 acceptor for the FIX delivery tests: QuickFIX (from PyPI, in a venv
//! made on first use) with the executor application of `tests/fix/executor.py`,
//! which records every NewOrderSingle it receives and dedupes by ClOrdID.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

const EXECUTOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fix/executor.py");
/// The acceptor's CompID; ordergate's is [`GATEWAY`].
pub const ACCEPTOR: &str = "OMS";
pub const GATEWAY: &str = "OG";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One NewOrderSingle as the executor received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    pub clordid: String,
    pub seq: u64,
    pub poss_dup: Option<String>,
    pub poss_resend: Option<String>,
    pub account: Option<String>,
    pub handl_inst: Option<String>,
    pub symbol: String,
    pub side: String,
    pub quantity: String,
    pub ord_type: String,
    pub price: Option<String>,
    pub time_in_force: Option<String>,
    pub transact_time: Option<String>,
    /// The executor's first answer to this ClOrdID: accepted or rejected.
    pub answer: String,
}

impl Received {
    /// Sent without PossDupFlag or PossResend: a first copy.
    pub fn unflagged(&self) -> bool {
        self.poss_dup.as_deref() != Some("Y") && self.poss_resend.as_deref() != Some("Y")
    }
}

/// One logon the acceptor received.
#[derive(Debug, Clone, Deserialize)]
pub struct Logon {
    pub seq: u64,
    pub reset: Option<String>,
}

/// A running acceptor; killed when dropped.
pub struct Acceptor {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// How long the executor waits before it answers each order.
    delay_ms: u64,
}

impl Acceptor {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts on `port` (a gateway may be trying it already).
    pub fn start_on(port: u16) -> Self {
        Self::start_slow(port, 0)
    }

    /// Starts on `port`, answering each order only after `delay_ms`.
    pub fn start_slow(port: u16, delay_ms: u64) -> Self {
        let mut acceptor = Self {
            child: None,
            port,
            dir: tempfile::tempdir().expect("dir"),
            delay_ms,
        };
        acceptor.launch();
        acceptor
    }

    /// A port for an acceptor that is not started yet.
    pub fn reserve_port() -> u16 {
        free_port()
    }

    fn launch(&mut self) {
        let python = venv_python();
        let mut child = Command::new(&python)
            .arg(EXECUTOR)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .args([ACCEPTOR, GATEWAY])
            .arg(dictionary(&python))
            .arg(self.delay_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the QuickFIX acceptor");
        let stdout = child.stdout.take().expect("stdout");
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = ready.send(());
                }
            }
        });
        started
            .recv_timeout(START_TIMEOUT)
            .expect("the QuickFIX acceptor did not start");
        self.child = Some(child);
    }

    /// `fix://` URL of this acceptor for `--deliver`.
    pub fn url(&self) -> String {
        url_for(self.port)
    }

    /// SIGKILL: the acceptor dies with whatever its store holds.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port, with the same store and records.
    pub fn restart(&mut self) {
        self.kill_9();
        self.launch();
    }

    /// Deletes QuickFIX's store (its sequence numbers and messages): what a
    /// counterparty that lost or reset its store looks like. Its records stay.
    pub fn wipe_store(&self) {
        let store = self.dir.path().join("store");
        std::fs::remove_dir_all(&store).expect("wipe the store");
    }

    /// Sets the numbers QuickFIX stored (stopped acceptor only): the next it sends and
    /// the next it expects.
    pub fn set_numbers(&self, next_out: u64, next_in: u64) {
        assert!(self.child.is_none(), "stop the acceptor first");
        std::fs::write(self.seqnums(), format!("{next_out:010} : {next_in:010}")).expect("write");
    }

    /// The numbers QuickFIX stored: the next it sends and the next it expects.
    pub fn numbers(&self) -> (u64, u64) {
        let text = std::fs::read_to_string(self.seqnums()).expect("seqnums");
        let (out, expected) = text.split_once(':').expect("SENDER : TARGET");
        let number = |s: &str| s.trim().parse().expect("number");
        (number(out), number(expected))
    }

    fn seqnums(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("store/FIX.4.4-{ACCEPTOR}-{GATEWAY}.seqnums"))
    }

    /// The message types the gateway sent, as QuickFIX's message log shows them.
    pub fn types_from_gateway(&self) -> Vec<String> {
        let log = self.dir.path().join(format!(
            "log/FIX.4.4-{ACCEPTOR}-{GATEWAY}.messages.current.log"
        ));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter(|line| line.contains(&format!("\x0149={GATEWAY}\x01")))
            .filter_map(|line| {
                let at = line.find("\x0135=")? + 4;
                line[at..].split('\x01').next().map(str::to_owned)
            })
            .collect()
    }

    /// Every NewOrderSingle received so far, in order.
    pub fn orders(&self) -> Vec<Received> {
        read_lines(&self.dir.path().join("orders.jsonl"))
    }

    /// Every logon received so far, in order.
    pub fn logons(&self) -> Vec<Logon> {
        read_lines(&self.dir.path().join("logons.jsonl"))
    }

    /// The session's logons and logouts, in order: "logon" or "logout".
    pub fn events(&self) -> Vec<String> {
        read_lines::<serde_json::Value>(&self.dir.path().join("events.jsonl"))
            .into_iter()
            .filter_map(|e| e["event"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.kill_9();
    }
}

pub fn url_for(port: u16) -> String {
    format!("fix://127.0.0.1:{port}?sender={GATEWAY}&target={ACCEPTOR}&heartbeat=5")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // The last line may be half written while the acceptor runs.
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The venv's Python with QuickFIX, made on first use (`quickfix-py`, or
/// `quickfix-ssl` where it has no wheel). One test makes it while the others wait.
fn venv_python() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let venv = target.join("quickfix-venv");
    let python = venv.join("bin/python");
    std::fs::create_dir_all(&target).expect("target dir");
    let lock = std::fs::File::create(target.join("quickfix-venv.lock")).expect("lock file");
    lock.lock().expect("lock");
    if !has_quickfix(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success(), "cannot make the QuickFIX venv");
        let pip = venv.join("bin/pip");
        let installed = ["quickfix-py", "quickfix-ssl"].iter().any(|package| {
            Command::new(&pip)
                .args(["install", "--quiet", package])
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(
            installed && has_quickfix(&python),
            "cannot install QuickFIX from PyPI"
        );
    }
    python
}

fn has_quickfix(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import quickfix, quickfix44"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// QuickFIX's FIX 4.4 data dictionary, shipped with the package: the acceptor
/// validates every message against it.
fn dictionary(python: &Path) -> PathBuf {
    let venv = python.parent().and_then(Path::parent).expect("venv");
    let candidates = [
        venv.join("share/quickfix/FIX44.xml"),
        venv.join("lib/python3.11/site-packages/quickfix/FIX44.xml"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| find_file(venv, "FIX44.xml").expect("FIX44.xml in the QuickFIX venv"))
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        if Instant::now() > deadline {
            return None;
        }
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name) {
                return Some(path);
            }
        }
    }
    None
}
