//! Delivery to the order-management system, with real sinks: a NATS JetStream server
//! of the test's own, and a webhook receiver in the test that checks every signature.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::helpers::*;
use crate::process;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: every verified delivery, by order id.
#[derive(Default)]
struct Received {
    by_order: Mutex<HashMap<String, Vec<serde_json::Value>>>,
    requests: AtomicUsize,
    bad_signatures: AtomicUsize,
    /// The receiver answers 500 to this many requests first.
    fail_first: AtomicUsize,
    /// And waits this many milliseconds before answering this many requests.
    slow_first: AtomicUsize,
    slow_ms: AtomicUsize,
    /// And holds this many requests open until `release` says true.
    hold_first: AtomicUsize,
    release: tokio::sync::watch::Sender<bool>,
    /// Held requests whose sender is still waiting for the answer.
    held_open: Arc<AtomicUsize>,
}

/// Counts a held request as open until its handler ends, answered or dropped because
/// the sender gave up and closed the connection.
struct HeldOpen(Arc<AtomicUsize>);

impl HeldOpen {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        Self(open.clone())
    }
}

impl Drop for HeldOpen {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Received {
    fn orders(&self) -> HashMap<String, usize> {
        let seen = self.by_order.lock().expect("seen");
        seen.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    }
}

/// A webhook receiver on a random port that verifies Standard Webhooks signatures.
async fn receiver(fail_first: usize) -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received::default());
    received.fail_first.store(fail_first, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

async fn receive(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    received.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("key");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    if header("webhook-signature") != expected || header("idempotency-key") != id {
        received.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    }
    if received
        .slow_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let ms = received.slow_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0))).await;
    }
    if received
        .hold_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let _open = HeldOpen::new(&received.held_open);
        let mut release = received.release.subscribe();
        let _ = release.wait_for(|&released| released).await;
    }
    if let Ok(failing) = received
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
    {
        // An outage looks like both: a proxy's 503 and a crashing receiver's 500.
        return match failing % 2 {
            0 => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
    }
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON message");
    assert_eq!(
        json["data"]["orderId"],
        id.as_str(),
        "webhook-id is the order id"
    );
    received
        .by_order
        .lock()
        .expect("seen")
        .entry(id)
        .or_default()
        .push(json);
    StatusCode::NO_CONTENT
}

/// A gateway that delivers to the receiver at `addr`.
async fn delivering_to(db: Db, addr: SocketAddr) -> TestApp {
    let url = format!("http://{addr}/hook");
    spawn_app_with(db, &["--deliver", &url, "--deliver-secret", SECRET]).await
}

/// Waits (up to 60 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// Places `n` orders as acme; their order ids.
async fn place(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = app.post(&format!("{prefix}-{i}"), ORDER).await;
        assert_eq!(created.status(), 201);
        ids.push(order_id(&created.bytes().await.expect("body")));
    }
    ids
}

async fn delivery_of(app: &TestApp, id: &str) -> serde_json::Value {
    let answer = app.get_as(ACME, &format!("/orders/{id}/delivery")).await;
    assert_eq!(answer.status(), 200, "{id}");
    answer.json().await.expect("delivery JSON")
}

/// The delivery once it is no longer pending (or after 20 s).
async fn settled(app: &TestApp, id: &str) -> serde_json::Value {
    let mut delivery = delivery_of(app, id).await;
    for _ in 0..1000 {
        if delivery["state"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        delivery = delivery_of(app, id).await;
    }
    delivery
}

/// Where a `sequence` is unique: the server's database, or at the edge the Durable
/// Object of the order (its shard, which the order id carries).
fn sequence_scope(db: Db, order_id: &str) -> Option<u16> {
    let id = uuid::Uuid::parse_str(order_id).expect("an order id");
    match db {
        Db::Edge => Some(ordergate_core::shard::of_order_id(&id).expect("an edge id")),
        _ => None,
    }
}

async fn a_webhook_gets_every_order_once_signed_and_the_state_says_delivered(db: Db) {
    let (addr, received) = receiver(0).await;
    let app = delivering_to(db, addr).await;
    let ids = place(&app, "hook", 20).await;
    until("all delivered", || received.orders().len() == ids.len()).await;
    assert_eq!(received.bad_signatures.load(Ordering::SeqCst), 0);
    let seen = received.by_order.lock().expect("seen").clone();
    let mut sequences = HashSet::new();
    for id in &ids {
        let messages = &seen[id];
        assert_eq!(messages[0]["type"], "order.accepted");
        assert_eq!(messages[0]["tenant"], "acme");
        let sequence = messages[0]["sequence"].as_i64().expect("sequence");
        assert!(sequence >= 1, "{sequence}");
        assert!(
            sequences.insert((sequence_scope(db, id), sequence)),
            "sequence {sequence} twice"
        );
    }
    for id in &ids {
        // Confirmed by the receiver, the record is written a moment later.
        let delivery = settled(&app, id).await;
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert!(delivery["deliveredAt"].is_string());
        assert!(delivery["lastError"].is_null());
    }
    let other = app
        .get_as(GLOBEX, &format!("/orders/{}/delivery", ids[0]))
        .await;
    assert_eq!(other.status(), 404, "another tenant's delivery is unknown");
    app.stop().await;
}

/// A receiver slower than the 15 s limit: the attempt times out and is retried; a
/// slow one within the limit is simply delivered.
async fn a_webhook_that_times_out_is_retried_and_a_slow_one_is_waited_for(db: Db) {
    let (addr, received) = receiver(0).await;
    received.slow_first.store(1, Ordering::SeqCst);
    received.slow_ms.store(16_000, Ordering::SeqCst);
    let app = delivering_to(db, addr).await;
    let ids = place(&app, "timeout", 1).await;
    until("delivered after the timeout", || {
        received.orders().len() == 1
    })
    .await;
    let delivery = settled(&app, &ids[0]).await;
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(
        delivery["attempts"], 2,
        "the timed-out attempt counts: {delivery}"
    );
    received.slow_first.store(1, Ordering::SeqCst);
    received.slow_ms.store(2_000, Ordering::SeqCst);
    let ids = place(&app, "slow", 1).await;
    until("the slow one delivered", || received.orders().len() == 2).await;
    let delivery = settled(&app, &ids[0]).await;
    assert_eq!(
        (delivery["state"].as_str(), delivery["attempts"].as_i64()),
        (Some("delivered"), Some(1))
    );
    app.stop().await;
}

/// A receiver that answers 503 and 500 for a while: once it recovers every order
/// arrives, each once, and the attempts shown count every request it refused.
async fn a_receiver_that_fails_for_a_while_gets_every_order_when_it_recovers(db: Db) {
    let (addr, received) = receiver(12).await;
    let app = delivering_to(db, addr).await;
    let ids = place(&app, "outage", 6).await;
    until("all delivered", || received.orders().len() == ids.len()).await;
    let mut attempts = 0;
    for id in &ids {
        let delivery = settled(&app, id).await;
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert!(delivery["lastError"].is_null(), "{delivery}");
        attempts += delivery["attempts"].as_i64().expect("attempts");
    }
    let requests = received.requests.load(Ordering::SeqCst);
    assert_eq!(
        attempts,
        i64::try_from(requests).expect("count"),
        "every request the receiver got is one attempt of one delivery"
    );
    assert_eq!(requests, 12 + ids.len(), "12 refused, then each order once");
    assert!(received.orders().values().all(|&n| n == 1));
    assert_eq!(received.bad_signatures.load(Ordering::SeqCst), 0);
    app.stop().await;
}

/// A receiver that never takes the order: `failed` once the maximum age has passed,
/// with the receiver's last answer.
async fn a_delivery_that_never_succeeds_is_failed_after_its_max_age(db: Db) {
    let (addr, received) = receiver(usize::MAX).await;
    let url = format!("http://{addr}/hook");
    let flags = [
        "--deliver",
        &url,
        "--deliver-secret",
        SECRET,
        "--deliver-max-age",
        "2s",
    ];
    let app = spawn_app_with(db, &flags).await;
    let ids = place(&app, "doomed", 1).await;
    let delivery = settled(&app, &ids[0]).await;
    assert_eq!(delivery["state"], "failed", "{delivery}");
    let attempts = delivery["attempts"].as_i64().expect("attempts");
    assert!(attempts >= 2, "retried before it was given up: {delivery}");
    let error = delivery["lastError"].as_str().expect("an error");
    assert!(error.contains("500") || error.contains("503"), "{error}");
    assert!(delivery["deliveredAt"].is_null());
    assert!(received.orders().is_empty());
    app.stop().await;
}

async fn without_deliver_nothing_is_recorded_and_the_delivery_is_404(db: Db) {
    let app = spawn_app(db).await;
    let ids = place(&app, "plain", 1).await;
    let answer = app
        .get_as(ACME, &format!("/orders/{}/delivery", ids[0]))
        .await;
    assert_eq!(answer.status(), 404);
    app.stop().await;
}

/// A NATS server with JetStream of the test's own, on a free port, killed when dropped.
pub struct Nats {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::start_on(port, dir)
    }

    fn start_on(port: u16, dir: tempfile::TempDir) -> Self {
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server)");
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// Stops the server; `restart` brings it back on the same port and store.
    pub fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("dir"));
        (port, dir)
    }

    pub fn restart((port, dir): (u16, tempfile::TempDir)) -> Self {
        Self::start_on(port, dir)
    }

    pub fn url(&self, subject: &str) -> String {
        format!("nats://127.0.0.1:{}/{subject}", self.port)
    }

    /// The order ids of every message in the stream, with how often each is there.
    pub async fn messages(&self) -> HashMap<String, usize> {
        let client = async_nats::connect(format!("127.0.0.1:{}", self.port))
            .await
            .expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        // The gateway makes the stream when it first delivers.
        let Ok(mut stream) = js.get_stream("ORDERGATE_ORDERS").await else {
            return HashMap::new();
        };
        let last = stream.info().await.expect("info").state.last_sequence;
        let mut counts = HashMap::new();
        for seq in 1..=last {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let json: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
            let id = json["data"]["orderId"]
                .as_str()
                .expect("orderId")
                .to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn jetstream_gets_exactly_one_message_per_order(db: Db) {
    let nats = Nats::start();
    let app = spawn_app_with(db, &["--deliver", &nats.url("orders")]).await;
    let ids = place(&app, "js", 50).await;
    let mut counts = HashMap::new();
    for _ in 0..500 {
        counts = nats.messages().await;
        if counts.len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counts.len(), ids.len());
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    app.stop().await;
}

async fn orders_taken_while_jetstream_is_down_are_delivered_when_it_is_back(db: Db) {
    let nats = Nats::start();
    let url = nats.url("orders");
    let down = nats.stop();
    let app = spawn_app_with(db, &["--deliver", &url]).await;
    // The intake does not wait for the sink.
    let ids = place(&app, "down", 30).await;
    let pending = app
        .get_as(ACME, &format!("/orders/{}/delivery", ids[0]))
        .await;
    let pending: serde_json::Value = pending.json().await.expect("JSON");
    assert_eq!(pending["state"], "pending", "{pending}");
    let nats = Nats::restart(down);
    let mut counts = HashMap::new();
    for _ in 0..3000 {
        counts = nats.messages().await;
        if counts.len() == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counts.len(), ids.len(), "every order arrived");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    app.stop().await;
}

on_each_target!(
    a_webhook_gets_every_order_once_signed_and_the_state_says_delivered,
    a_webhook_that_times_out_is_retried_and_a_slow_one_is_waited_for,
    a_receiver_that_fails_for_a_while_gets_every_order_when_it_recovers,
    a_delivery_that_never_succeeds_is_failed_after_its_max_age,
    without_deliver_nothing_is_recorded_and_the_delivery_is_404;
    // The edge delivers to webhooks only.
    servers only:
    jetstream_gets_exactly_one_message_per_order,
    orders_taken_while_jetstream_is_down_are_delivered_when_it_is_back,
);

/// At the edge: `kill -9` of the runtime while every delivery is pending (the
/// receiver was down), then the runtime started again on the same state and no
/// request sent to any object: the objects' alarms resume by themselves and every
/// acknowledged order arrives, each once (none had been confirmed before the kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_edge_a_kill_9_with_deliveries_pending_loses_none_and_alarms_resume_alone() {
    let (addr, received) = receiver(usize::MAX).await;
    let mut app = delivering_to(Db::Edge, addr).await;
    let ids = place(&app, "crash", 24).await;
    until("every order tried once", || {
        received.requests.load(Ordering::SeqCst) >= ids.len()
    })
    .await;
    let mut edge = app.edge.take().expect("the edge");
    edge.kill_9();
    received.fail_first.store(0, Ordering::SeqCst);
    let refused = received.requests.load(Ordering::SeqCst);
    // Only /healthz is asked, to know it serves: it reaches no object.
    let edge = edge.start_again().await;
    until("every order delivered after the restart", || {
        received.orders().len() == ids.len()
    })
    .await;
    let counts = received.orders();
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(ids.iter().all(|id| counts.contains_key(id)));
    app.addr = edge.addr;
    app.edge = Some(edge);
    for id in &ids {
        let delivery = settled(&app, id).await;
        assert_eq!(delivery["state"], "delivered", "{delivery}");
        assert!(delivery["attempts"].as_i64().expect("attempts") >= 2);
    }
    assert!(refused >= ids.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_while_delivering_under_load_then_restart_delivers_every_acknowledged_order() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().expect("dir");
    let db = process::sqlite_url(dir.path());
    let deliver = nats.url("orders");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db,
        "--deliver",
        &deliver,
    ];
    let gw = process::serve(process::command(&args));
    let client = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (client, url, acked) = (client.clone(), gw.url("/orders"), acked.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let Some((201, _, body)) =
                    process::post_order(&client, &url, &format!("k9-{i}")).await
                else {
                    break;
                };
                acked.lock().expect("acked").push(order_id(&body));
            }
        })
    };
    // Mid-load and mid-delivery: some orders acknowledged and some already in the stream.
    until("orders acknowledged", || {
        acked.lock().expect("acked").len() >= 300
    })
    .await;
    gw.crash();
    let _ = load.await;
    let acked: HashSet<String> = acked.lock().expect("acked").iter().cloned().collect();
    let _gw = process::serve(process::command(&args));
    let mut counts = HashMap::new();
    for _ in 0..3000 {
        counts = nats.messages().await;
        if acked.iter().all(|id| counts.contains_key(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged orders never delivered",
        missing.len()
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "JetStream dedupes by Nats-Msg-Id"
    );
}

fn gateways_on(db: &crate::pg::TestDb, n: usize, hook: &str) -> Vec<process::Gateway> {
    (0..n)
        .map(|_| {
            process::serve(process::command(&[
                "--listen",
                "127.0.0.1:0",
                "--database",
                &db.url,
                "--deliver",
                hook,
                "--deliver-secret",
                SECRET,
            ]))
        })
        .collect()
}

/// Three gateways deliver from one PostgreSQL database; one is killed mid-load. Every
/// acknowledged order reaches the receiver; a few may arrive twice (at least once:
/// the victim's batch in flight is sent again after its lease), and the test says how
/// many did.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_share_the_deliveries_and_a_killed_one_loses_none() {
    let db = crate::pg::TestDb::create().await;
    let (addr, received) = receiver(0).await;
    let hook = format!("http://{addr}/hook");
    let mut gws = gateways_on(&db, 3, &hook);
    let urls: Vec<String> = gws.iter().map(|g| g.url("/orders")).collect();
    let client = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let load = {
        let (client, urls, acked) = (client.clone(), urls.clone(), acked.clone());
        tokio::spawn(async move {
            for i in 0..1500 {
                let url = &urls[i % urls.len()];
                if let Some((201, _, body)) =
                    process::post_order(&client, url, &format!("three-{i}")).await
                {
                    acked.lock().expect("acked").insert(order_id(&body));
                }
            }
        })
    };
    until("deliveries under way", || received.orders().len() >= 200).await;
    gws.remove(0).crash();
    let _ = load.await;
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() > 1000,
        "most orders were acknowledged: {}",
        acked.len()
    );
    until("every acknowledged order delivered", || {
        let got = received.orders();
        acked.iter().all(|id| got.contains_key(id))
    })
    .await;
    let twice = received.orders().values().filter(|&&n| n > 1).count();
    eprintln!(
        "three gateways, one killed: {} orders delivered, {twice} of them twice",
        acked.len()
    );
    assert_eq!(received.bad_signatures.load(Ordering::SeqCst), 0);
}

/// The database goes away with deliveries pending: the deliverer waits, and delivers
/// them all once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_delays_delivery_and_loses_nothing() {
    let db = crate::pg::TestDb::create().await;
    // The receiver refuses everything at first, so the orders stay pending.
    let (addr, received) = receiver(usize::MAX).await;
    let hook = format!("http://{addr}/hook");
    let gws = gateways_on(&db, 1, &hook);
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..50 {
        let (status, _, body) =
            process::post_order(&client, &gws[0].url("/orders"), &format!("out-{i}"))
                .await
                .expect("answer");
        assert_eq!(status, 201);
        ids.push(order_id(&body));
    }
    db.cut_off().await;
    // Now the receiver takes orders, but the deliverer cannot lease any.
    received.fail_first.store(0, Ordering::SeqCst);
    gws[0].logged("leasing deliveries failed").await;
    db.bring_back().await;
    until("every order delivered after the outage", || {
        let got = received.orders();
        ids.iter().all(|id| got.contains_key(id))
    })
    .await;
}

/// `ordergate serve` in open mode on the SQLite file in `dir`, delivering to the
/// receiver at `addr`.
fn delivering_process(dir: &std::path::Path, addr: SocketAddr) -> std::process::Command {
    let hook = format!("http://{addr}/hook");
    let db = process::sqlite_url(dir);
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db,
        "--deliver",
        &hook,
    ];
    let mut command = process::command(&args);
    command.args(["--deliver-secret", SECRET]);
    command
}

/// The backlog a gateway left when it was killed, sent after its restart to a
/// receiver that holds a few requests open: every other order arrives while those are
/// still waiting, because a hanging request holds up only its own message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_after_kill_9_is_not_held_up_by_hanging_requests() {
    const ORDERS: usize = 120;
    const HELD: usize = 4;
    let (addr, received) = receiver(usize::MAX).await;
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve(delivering_process(dir.path(), addr));
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..ORDERS {
        let (status, _, body) =
            process::post_order(&client, &gw.url("/orders"), &format!("backlog-{i}"))
                .await
                .expect("answer");
        assert_eq!(status, 201);
        ids.push(order_id(&body));
    }
    // Every order is pending behind a receiver that refused it; then the gateway dies.
    gw.crash();
    // The backlog is due at once (the refusals pushed some of it seconds ahead).
    let due_now = std::process::Command::new("sqlite3")
        .arg(dir.path().join("ordergate.db"))
        .arg("UPDATE orders SET delivery_due_ms = 0 WHERE delivery_state = 'pending'")
        .status()
        .expect("sqlite3");
    assert!(due_now.success());
    received.fail_first.store(0, Ordering::SeqCst);
    received.hold_first.store(HELD, Ordering::SeqCst);
    let _again = process::serve(delivering_process(dir.path(), addr));
    until("every order but the held ones arrived", || {
        received.orders().len() >= ORDERS - HELD
    })
    .await;
    assert_eq!(
        received.held_open.load(Ordering::SeqCst),
        HELD,
        "the rest arrived while the hanging requests were still waiting for their answers"
    );
    received.release.send_replace(true);
    until("every order arrived", || received.orders().len() == ORDERS).await;
    let counts = received.orders();
    assert!(
        ids.iter().all(|id| counts.get(id) == Some(&1)),
        "{counts:?}"
    );
    assert_eq!(received.bad_signatures.load(Ordering::SeqCst), 0);
}

/// SIGTERM while a delivery is being sent: the process exits without marking it
/// delivered, and the next start sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_in_flight_at_shutdown_is_abandoned_and_sent_after_the_restart() {
    let (addr, received) = receiver(0).await;
    received.slow_first.store(1, Ordering::SeqCst);
    received.slow_ms.store(5_000, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve(delivering_process(dir.path(), addr));
    let client = reqwest::Client::new();
    let (status, _, body) = process::post_order(&client, &gw.url("/orders"), "at-shutdown")
        .await
        .expect("answer");
    assert_eq!(status, 201);
    let id = order_id(&body);
    until("the delivery is being sent", || {
        received.requests.load(Ordering::SeqCst) >= 1
    })
    .await;
    gw.signal("TERM");
    let exited = gw.wait(Duration::from_secs(4));
    assert!(
        exited.success(),
        "exited 0 without waiting for the slow receiver"
    );
    let pending = std::process::Command::new("sqlite3")
        .arg(dir.path().join("ordergate.db"))
        .arg(format!(
            "SELECT delivery_state FROM orders WHERE order_id = '{id}'"
        ))
        .output()
        .expect("sqlite3");
    assert_eq!(
        String::from_utf8_lossy(&pending.stdout).trim(),
        "pending",
        "not marked delivered"
    );
    let _again = process::serve(delivering_process(dir.path(), addr));
    until("sent again after the restart", || {
        received.by_order.lock().expect("seen").contains_key(&id)
    })
    .await;
}

/// The deliverer's passes stepped on a clock of the test's own, against each backend's
/// real outbox and the real webhook sink: the backoff is seen to the millisecond, with
/// no waiting.
mod stepped {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use ordergate::clock::{Clock, ManualClock};
    use ordergate::delivery::{Dispatcher, Webhook, WebhookKey};
    use ordergate::store::DeliveryStatus;
    use ordergate::telemetry::Metrics;
    use uuid::Uuid;

    use crate::backends::{BODY, Backend, TTL, new_order};

    /// When [`new_order`] accepts its orders.
    const ACCEPTED: i64 = 1_700_000_000_000;

    struct Steps {
        dispatcher: Dispatcher,
        clock: ManualClock,
        metrics: Arc<Metrics>,
        backend: Backend,
    }

    impl Steps {
        fn new(backend: Backend, url: &str, max_age: Duration) -> Self {
            let key: WebhookKey = super::SECRET.parse().expect("key");
            let sink = Arc::new(Webhook::new(url, key.0).expect("sink"));
            let clock = ManualClock::starting_at(ACCEPTED);
            let metrics = Arc::new(Metrics::default());
            let dispatcher = Dispatcher::new(
                backend.outbox.clone(),
                sink,
                Arc::new(clock.clone()),
                metrics.clone(),
                max_age,
            );
            Self {
                dispatcher,
                clock,
                metrics,
                backend,
            }
        }

        async fn place(&self, key: &str) -> Uuid {
            let mut new = new_order("acme", key, BODY, TTL);
            new.deliver = true;
            self.backend.store.place(new.clone()).await.expect("place");
            new.order.order_id
        }

        /// One pass at `ms` after acceptance; how many it sent.
        async fn pass_at(&self, ms: i64) -> usize {
            let now = self.clock.now_ms();
            self.clock.advance_ms(ACCEPTED + ms - now);
            self.dispatcher.pass().await.expect("a pass")
        }

        async fn status(&self, id: Uuid) -> DeliveryStatus {
            let status = self.backend.outbox.delivery_status("acme", id).await;
            status.expect("status").expect("a delivery")
        }

        fn attempts(&self, result: &str) -> String {
            let line = format!("ordergate_delivery_attempts_total{{result=\"{result}\"}} ");
            let rendered = self.metrics.render();
            let count = rendered.lines().find_map(|l| l.strip_prefix(&line));
            count.unwrap_or("absent").to_owned()
        }
    }

    pub async fn a_failing_webhook_is_retried_with_backoff_until_it_takes_the_order(b: Backend) {
        let (addr, received) = super::receiver(3).await;
        let steps = Steps::new(b, &format!("http://{addr}/hook"), Duration::from_secs(3600));
        let id = steps.place("retry").await;
        assert_eq!(steps.pass_at(0).await, 1, "due at once");
        // After the n-th failure the next attempt is 1 s × 2^(n-1), less up to half.
        let mut at = 0;
        for (failures, full) in [(1, 1_000), (2, 2_000), (3, 4_000)] {
            let failing = steps.status(id).await;
            assert_eq!(
                (failing.state.as_str(), failing.attempts),
                ("pending", failures)
            );
            assert!(failing.last_error.is_some(), "{failing:?}");
            assert_eq!(
                steps.pass_at(at + full / 2 - 1).await,
                0,
                "not before its backoff"
            );
            at += full;
            assert_eq!(steps.pass_at(at).await, 1, "due by the end of its backoff");
        }
        assert_eq!(
            received.requests.load(Ordering::SeqCst),
            4,
            "three 500s, then 204"
        );
        assert_eq!(received.orders().get(&id.to_string()), Some(&1));
        let delivered = steps.status(id).await;
        assert_eq!(
            (delivered.state.as_str(), delivered.attempts),
            ("delivered", 4)
        );
        assert_eq!(delivered.delivered_at_ms, Some(ACCEPTED + at));
        assert_eq!(steps.pass_at(at + 3_600_000).await, 0, "never again");
        assert_eq!(steps.attempts("retry"), "3");
        assert_eq!(steps.attempts("delivered"), "1");
        assert_eq!(steps.attempts("failed"), "0");
    }

    pub async fn a_delivery_that_never_succeeds_fails_after_its_max_age(b: Backend) {
        // Nothing listens on port 1.
        let steps = Steps::new(b, "http://127.0.0.1:1/hook", Duration::from_secs(10));
        let id = steps.place("doomed").await;
        assert_eq!(steps.pass_at(0).await, 1);
        assert_eq!(
            steps.status(id).await.state,
            "pending",
            "retried inside its max age"
        );
        assert_eq!(steps.pass_at(10_000).await, 1, "due again");
        let failed = steps.status(id).await;
        assert_eq!((failed.state.as_str(), failed.attempts), ("failed", 2));
        assert!(failed.last_error.is_some_and(|e| !e.is_empty()));
        assert_eq!(steps.pass_at(100_000).await, 0, "given up for good");
        assert_eq!(steps.attempts("failed"), "1");
    }

    each_backend!(
        a_failing_webhook_is_retried_with_backoff_until_it_takes_the_order,
        a_delivery_that_never_succeeds_fails_after_its_max_age,
    );
}
