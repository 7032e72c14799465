//! A PostgreSQL cluster of the test's own under Patroni (Debian's package): one etcd
//! member and three Patroni members on free ports in a temporary directory owned by
//! `postgres`, in strict synchronous mode. Every process it starts is stopped by its
//! exact PID when the cluster is dropped, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::own_postgres::{as_postgres, bin, psql};

const READY_WITHIN: Duration = Duration::from_secs(120);

pub struct Member {
    pub name: String,
    pub pg_port: u16,
    pub api_port: u16,
    dir: PathBuf,
    patroni: Option<Child>,
}

pub struct Cluster {
    dir: tempfile::TempDir,
    etcd: Child,
    pub members: Vec<Member>,
    http: reqwest::Client,
}

/// `N` distinct free ports: every listener is held until all are chosen, because the
/// kernel hands a port just released straight out again (etcd's peer port once came back
/// as a member's PostgreSQL port, and that member never started).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("free port").port())
}

fn kill_9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// The PIDs of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl Member {
    fn config(&self, etcd_port: u16) -> String {
        let dir = self.dir.display();
        let bin_dir = bin("postgres");
        let bin_dir = bin_dir.parent().expect("bin dir").display();
        format!(
            r#"scope: ordergate-test
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
  initdb:
    - encoding: UTF8
    - auth: trust
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {dir}/data
  bin_dir: {bin_dir}
  pgpass: {dir}/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: {dir}
"#,
            name = self.name,
            api = self.api_port,
            pg = self.pg_port,
        )
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("patroni.log")).expect("log");
        let child = as_postgres(Path::new("/usr/bin/patroni"))
            .arg(self.dir.join("patroni.yml"))
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("patroni (Debian package patroni)");
        self.patroni = Some(child);
    }

    /// The postmaster's PID, from its `postmaster.pid`, while that process is a
    /// running `postgres` (a stale file names a PID that may be another's by now).
    pub fn postmaster(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "postgres").then_some(pid)
    }

    /// `kill -9` of the postmaster and its children (Patroni stays).
    pub fn kill_postmaster(&self) {
        if let Some(pid) = self.postmaster() {
            let backends = children(pid);
            kill_9(pid);
            for child in backends {
                kill_9(child);
            }
        }
    }

    /// `kill -9` of Patroni alone: its PostgreSQL keeps running.
    pub fn kill_patroni(&mut self) {
        if let Some(mut child) = self.patroni.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SQL as the superuser on this member; `None` if it does not answer.
    pub fn try_sql(&self, sql: &str) -> Option<String> {
        psql(self.pg_port, sql)
    }
}

impl Cluster {
    /// etcd and three members, ready: a leader with a synchronous standby.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new("chown")
            .arg("postgres:")
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        let [etcd_port, peer_port, ports @ ..] = free_ports::<8>();
        let etcd_log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
        let etcd = Command::new("etcd")
            .args(["--name", "e1", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!("--initial-cluster=e1=http://127.0.0.1:{peer_port}"))
            .stdout(Stdio::null())
            .stderr(etcd_log)
            .spawn()
            .expect("etcd (Debian package etcd-server)");
        let mut cluster = Self {
            etcd,
            members: Vec::new(),
            http: reqwest::Client::new(),
            dir,
        };
        for (i, pair) in (1..=3).zip(ports.chunks(2)) {
            let member_dir = cluster.dir.path().join(format!("m{i}"));
            std::fs::create_dir_all(&member_dir).expect("member dir");
            let member = Member {
                name: format!("m{i}"),
                pg_port: pair[0],
                api_port: pair[1],
                dir: member_dir,
                patroni: None,
            };
            std::fs::write(member.dir.join("patroni.yml"), member.config(etcd_port))
                .expect("config");
            let _ = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&member.dir)
                .status();
            cluster.members.push(member);
        }
        // The first bootstraps the cluster; the others then copy it.
        cluster.members[0].start();
        cluster.wait_for_leader().await;
        for member in &mut cluster.members[1..] {
            member.start();
        }
        cluster.wait_until_healthy(3).await;
        cluster
    }

    /// `postgres://…@m1,m2,m3/postgres?target_session_attrs=read-write`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.pg_port))
            .collect();
        format!(
            "postgres://postgres@{}/postgres?target_session_attrs=read-write",
            hosts.join(",")
        )
    }

    /// The cluster as any member's REST API shows it.
    pub async fn state(&self) -> Option<Value> {
        for member in &self.members {
            let url = format!("http://127.0.0.1:{}/cluster", member.api_port);
            if let Ok(response) = self.http.get(&url).send().await
                && let Ok(json) = response.json::<Value>().await
            {
                return Some(json);
            }
        }
        None
    }

    /// The index of the member the cluster names leader.
    pub async fn leader(&self) -> Option<usize> {
        let state = self.state().await?;
        let name = state["members"]
            .as_array()?
            .iter()
            .find(|m| m["role"] == "leader" && m["state"] == "running")?["name"]
            .as_str()?
            .to_owned();
        self.members.iter().position(|m| m.name == name)
    }

    async fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(Instant::now() < deadline, "no leader:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for a leader, a synchronous standby, and `running` members in all.
    pub async fn wait_until_healthy(&self, running: usize) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(state) = self.state().await {
                let members = state["members"].as_array().cloned().unwrap_or_default();
                let up = |m: &&Value| m["state"] == "running" || m["state"] == "streaming";
                let healthy = members.iter().filter(up).count() >= running
                    && members.iter().any(|m| m["role"] == "leader" && up(&m))
                    && members
                        .iter()
                        .any(|m| m["role"] == "sync_standby" && up(&m));
                if healthy {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy: {:?}\n{}",
                self.state().await,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A planned switch-over from the leader to its synchronous standby.
    pub async fn switchover(&self) {
        let leader = self.wait_for_leader().await;
        let member = &self.members[leader];
        let url = format!("http://127.0.0.1:{}/switchover", member.api_port);
        let response = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "leader": member.name }))
            .send()
            .await
            .expect("switchover request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "switchover refused: {status} {text}");
    }

    /// `kill -9` of a member's whole node: Patroni, the postmaster and its children.
    pub fn kill_node(&mut self, i: usize) {
        self.members[i].kill_patroni();
        self.members[i].kill_postmaster();
    }

    /// Starts a member's Patroni again; it rejoins the cluster.
    pub fn restart(&mut self, i: usize) {
        self.members[i].start();
    }

    /// Cancels every commit waiting for a synchronous standby on member `i`.
    pub fn cancel_waiting_commits(&self, i: usize) -> usize {
        let sql = "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity \
                   WHERE wait_event = 'SyncRep'";
        self.members[i]
            .try_sql(sql)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for name in [
            "etcd.log",
            "m1/patroni.log",
            "m2/patroni.log",
            "m3/patroni.log",
        ] {
            let log = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            text.push_str(&format!("--- {name}\n"));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill_patroni();
            member.kill_postmaster();
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}
