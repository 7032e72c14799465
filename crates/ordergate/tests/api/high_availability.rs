//! Losing the PostgreSQL primary under load, on a real Patroni cluster (`patroni`):
//! two gateways on the cluster's multi-host URL delivering over FIX to QuickFIX's
//! acceptor, eight clients that each retry their own key until it is answered 201,
//! and one failure per test. After each: every acknowledged key is stored once with its
//! orderId, no key has two orders, every other answer was a 503 or a 409, no answer
//! took longer than the lease and a margin, `/readyz` is 200 again without a restart,
//! and every acknowledged order reached the acceptor, none twice unflagged (the FIX
//! session's holder and numbers live in the cluster too).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fix_acceptor::Acceptor;
use crate::patroni::Cluster;
use crate::process;

/// Clusters are heavy for two cores: one at a time.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENTS: usize = 8;
const LEASE: &str = "2s";
/// The longest an answer may take: the 2 s lease, the second a commit gets past it,
/// and a margin for the pool's connection attempts (2 s) and the machine.
const ANSWER_BOUND: Duration = Duration::from_secs(7);
const RECOVERY_WITHIN: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Switchover,
    NodeCrash,
    PostmasterCrash,
    Zombie,
    ZombieCancelled,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<(String, String)>,
    other_statuses: Vec<u16>,
    slowest: Duration,
    created_at: Vec<Instant>,
}

/// Places keys `c{id}-0`, `c{id}-1`, … one after another, each retried (on both
/// gateways in turn) until it is answered 201, until `stop`.
async fn client(
    id: usize,
    urls: Vec<String>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicUsize>,
) -> Seen {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut seen = Seen::default();
    let mut attempt = id;
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("c{id}-{n}");
        loop {
            let url = &urls[attempt % urls.len()];
            attempt += 1;
            let started = Instant::now();
            let answer = process::post_order(&http, url, &key).await;
            seen.slowest = seen.slowest.max(started.elapsed());
            match answer {
                Some((201, _, body)) => {
                    seen.acknowledged
                        .push((key, crate::helpers::order_id(&body)));
                    seen.created_at.push(Instant::now());
                    acks.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Some((status, _, _)) => seen.other_statuses.push(status),
                None => seen.other_statuses.push(0),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    seen
}

async fn wait_for_acks(acks: &AtomicUsize, at_least: usize, what: &str) {
    let deadline = Instant::now() + RECOVERY_WITHIN;
    while acks.load(Ordering::SeqCst) < at_least {
        assert!(
            Instant::now() < deadline,
            "{what}: only {} acknowledged",
            acks.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest time without a 201 from any client.
fn longest_gap(seen: &[Seen]) -> Duration {
    let mut times: Vec<Instant> = seen
        .iter()
        .flat_map(|s| s.created_at.iter().copied())
        .collect();
    times.sort();
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

async fn survive(failure: Failure) {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = Cluster::start().await;
    let acceptor = Acceptor::start();
    let url = cluster.url();
    let gateways: Vec<process::Gateway> = (0..2)
        .map(|_| {
            process::serve(process::command(&[
                "--listen",
                "127.0.0.1:0",
                "--database",
                &url,
                "--lease-ttl",
                LEASE,
                "--deliver",
                &acceptor.url(),
            ]))
        })
        .collect();
    let urls: Vec<String> = gateways.iter().map(|gw| gw.url("/orders")).collect();
    let (stop, acks) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, urls.clone(), stop.clone(), acks.clone())))
        .collect();
    wait_for_acks(&acks, 100, "before the failure").await;
    let readiness = tokio::spawn(watch_readiness(gateways[0].url("/readyz"), stop.clone()));
    let leader = cluster.leader().await.expect("a leader");
    let before = acks.load(Ordering::SeqCst);
    let mut cancelled = 0;
    match failure {
        Failure::Switchover => cluster.switchover().await,
        Failure::NodeCrash => cluster.kill_node(leader),
        Failure::PostmasterCrash => cluster.members[leader].kill_postmaster(),
        Failure::Zombie | Failure::ZombieCancelled => cluster.members[leader].kill_patroni(),
    }
    if failure != Failure::PostmasterCrash {
        // Every case but the postmaster's ends with another member leading; until then
        // the old leader may still take writes (a zombie does, for the DCS's ttl).
        let deadline = Instant::now() + RECOVERY_WITHIN;
        while cluster.leader().await.is_none_or(|now| now == leader) {
            assert!(Instant::now() < deadline, "no new leader");
            if failure == Failure::ZombieCancelled {
                // As an operator or a tool would unstick the zombie: cancel every
                // commit waiting for a standby.
                cancelled += cluster.cancel_waiting_commits(leader);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let after = acks.load(Ordering::SeqCst);
    while failure == Failure::ZombieCancelled && acks.load(Ordering::SeqCst) < after + 200 {
        cancelled += cluster.cancel_waiting_commits(leader);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_acks(&acks, after.max(before) + 300, "after the failure").await;
    if failure == Failure::NodeCrash {
        cluster.restart(leader);
        cluster.wait_until_healthy(3).await;
        wait_for_acks(&acks, acks.load(Ordering::SeqCst) + 100, "after the rejoin").await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.expect("client"));
    }
    let unready = readiness.await.expect("readiness");
    if failure == Failure::NodeCrash {
        // With the leader's node gone and no new leader yet, no host accepts writes.
        assert!(
            unready > 0,
            "/readyz never answered 503 while the cluster had no primary"
        );
    }
    let gap = longest_gap(&seen);
    println!(
        "{failure:?}: {} acknowledged, longest gap without a 201: {gap:?}, {cancelled} commits cancelled",
        acks.load(Ordering::SeqCst)
    );
    check_answers(&seen);
    check_stored(&cluster, &seen).await;
    for gw in &gateways {
        ready_again(gw).await;
    }
    delivered_over_fix(&acceptor, &seen).await;
    if failure == Failure::ZombieCancelled {
        assert!(
            cancelled > 0,
            "no commit waited on the zombie: the test missed its point"
        );
    }
}

fn check_answers(seen: &[Seen]) {
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for status in seen.iter().flat_map(|s| &s.other_statuses) {
        *statuses.entry(*status).or_default() += 1;
    }
    assert!(
        statuses.keys().all(|s| *s == 503 || *s == 409),
        "answers other than 201, 503 and 409: {statuses:?}"
    );
    let slowest = seen.iter().map(|s| s.slowest).max().unwrap_or_default();
    assert!(slowest <= ANSWER_BOUND, "an answer took {slowest:?}");
}

/// Every acknowledged key once, with its orderId, on the leader; no key twice.
async fn check_stored(cluster: &Cluster, seen: &[Seen]) {
    let leader = cluster.leader().await.expect("a leader");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        cluster.members[leader].pg_port
    );
    let db = crate::pg::connect(&url).await;
    let rows = db
        .query("SELECT idem_key, order_id::text FROM orders", &[])
        .await
        .expect("orders");
    let mut stored: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        stored.entry(row.get(0)).or_default().push(row.get(1));
    }
    let twice: Vec<_> = stored.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "keys placed twice: {twice:?}");
    let mut lost = Vec::new();
    for (key, id) in seen.iter().flat_map(|s| &s.acknowledged) {
        if stored.get(key).map(Vec::as_slice) != Some(std::slice::from_ref(id)) {
            lost.push(key.clone());
        }
    }
    if !lost.is_empty() {
        let mut where_found = Vec::new();
        for member in &cluster.members {
            let keys: Vec<String> = lost.iter().map(|k| format!("'{k}'")).collect();
            let sql = format!(
                "SELECT count(*) FROM orders WHERE idem_key IN ({})",
                keys.join(",")
            );
            where_found.push((member.name.clone(), member.try_sql(&sql)));
        }
        panic!(
            "{} acknowledged orders lost (found on: {where_found:?}): {lost:?}",
            lost.len()
        );
    }
}

/// Every acknowledged order reaches the acceptor; none twice without 43=Y or 97=Y.
async fn delivered_over_fix(acceptor: &Acceptor, seen: &[Seen]) {
    let acknowledged: Vec<&String> = seen
        .iter()
        .flat_map(|s| &s.acknowledged)
        .map(|(_, id)| id)
        .collect();
    let deadline = Instant::now() + RECOVERY_WITHIN;
    loop {
        let received = acceptor.orders();
        let mut unflagged: HashMap<&str, usize> = HashMap::new();
        for order in received.iter().filter(|r| r.unflagged()) {
            *unflagged.entry(order.clordid.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = unflagged.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "sent twice unflagged: {twice:?}");
        let ids: std::collections::HashSet<&str> =
            received.iter().map(|r| r.clordid.as_str()).collect();
        let missing = acknowledged
            .iter()
            .filter(|id| !ids.contains(id.as_str()))
            .count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged orders never reached the acceptor"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `/readyz` until `stop`; how often it answered 503.
async fn watch_readiness(url: String, stop: Arc<AtomicBool>) -> usize {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut unready = 0;
    while !stop.load(Ordering::SeqCst) {
        if let Ok(response) = http.get(&url).send().await
            && response.status() == 503
        {
            unready += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unready
}

async fn ready_again(gw: &process::Gateway) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(gw.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz not 200 again:\n{}",
            gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_loses_nothing() {
    survive(Failure::Switchover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leaders_node_killed_loses_nothing_and_it_rejoins() {
    survive(Failure::NodeCrash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leaders_postmaster_killed_loses_nothing() {
    survive(Failure::PostmasterCrash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zombie_primary_is_fenced_and_loses_nothing() {
    survive(Failure::Zombie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zombie_whose_waiting_commits_are_cancelled_loses_nothing() {
    survive(Failure::ZombieCancelled).await;
}
