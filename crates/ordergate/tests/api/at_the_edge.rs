//! What only the edge build has: expiry by the object's clock with the purge alarm,
//! settings from variables (503 without keys, open mode), shards instead of one
//! object, state that survives a restart under load, and the switch-over from the old
//! worker's KV namespace.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::Mutex;

use crate::edge_runner::Edge;
use crate::helpers::*;

async fn post(client: &reqwest::Client, url: &str, token: &str, key: &str) -> reqwest::Response {
    try_post_order(client, url, token, key)
        .await
        .expect("request sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_result_ttl_a_key_is_new_again_and_an_alarm_purges_its_record() {
    let app = spawn_app_with(Db::Edge, &["--result-ttl", "2s", "--lease-ttl", "1s"]).await;
    let first = app.post("ttl", ORDER).await;
    assert_eq!(first.status(), 201);
    let first = first.bytes().await.expect("body");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let second = app.post("ttl", ORDER).await;
    assert_eq!(second.status(), 201);
    assert!(
        second.headers().get("idempotent-replay").is_none(),
        "an expired key places a new order"
    );
    let second = second.bytes().await.expect("body");
    assert_ne!(order_id(&first), order_id(&second));
    let newest = app.get_as(ACME, "/orders?idempotencyKey=ttl").await;
    assert_eq!(
        newest.bytes().await.expect("body"),
        second,
        "the newest order"
    );
    let old = app
        .get_as(ACME, &format!("/orders/{}", order_id(&first)))
        .await;
    assert_eq!(old.bytes().await.expect("body"), first, "orders are kept");
    let edge = app.edge.as_ref().expect("edge");
    let deadline = Instant::now() + Duration::from_secs(20);
    while edge.records() > 0 {
        assert!(
            Instant::now() < deadline,
            "the alarm purges expired records"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(edge.orders_per_key(), vec![2], "purging keeps both orders");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_orders_get_503_and_open_mode_serves_tenant_default() {
    let dir = tempfile::tempdir().expect("dir");
    let mut closed = Edge::start_without_keys(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let refused = post(&client, &closed.url("/orders"), "any", "k").await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let (status, code, _) = problem(refused).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    let ready = client
        .get(closed.url("/readyz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), 503, "not ready without keys");
    let health = client
        .get(closed.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200, "but alive");
    closed.stop().await;

    let mut open = Edge::start_without_keys(dir.path(), &["--open"]).await;
    let placed = post(&client, &open.url("/orders"), "ignored", "k").await;
    assert_eq!(placed.status(), 201);
    open.stop().await;
}

/// The benchmarks' fair runner (`ORDERGATE_EDGE_RUNNER=bare`) serves the same Worker
/// with the same settings on the same state as `wrangler dev`: an order placed on one
/// replays byte for byte on the other, and each stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fair_runner_and_wrangler_dev_serve_the_same_state() {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    let limits = dir.path().join("limits.toml");
    std::fs::write(&limits, "[default]\nmax_quantity = 100\n").expect("limits file");
    let limits = limits.to_str().expect("path");
    let state = dir.path().join("state");
    let mut bare = Edge::start_bare(&state, &["--limits-file", limits]).await;
    let placed = post(&client, &bare.url("/orders"), ACME, "fair").await;
    assert_eq!(placed.status(), 201);
    let placed = placed.bytes().await.expect("body");
    let refused = try_post_order_body(&client, &bare.url("/orders"), "too-many", BIG_ORDER).await;
    assert_eq!(
        refused, 422,
        "the limits file reached the bare runner's Worker"
    );
    bare.stop().await;

    let mut wrangler = Edge::start(&state, &["--limits-file", limits]).await;
    let replayed = post(&client, &wrangler.url("/orders"), ACME, "fair").await;
    assert_eq!(replayed.status(), 201);
    assert_eq!(replayed.headers()["idempotent-replay"], "true");
    assert_eq!(replayed.bytes().await.expect("body"), placed);
    let placed_here = post(&client, &wrangler.url("/orders"), ACME, "dev").await;
    let placed_here = placed_here.bytes().await.expect("body");
    wrangler.stop().await;

    let mut bare = Edge::start_bare(&state, &[]).await;
    let replayed = post(&client, &bare.url("/orders"), ACME, "dev").await;
    assert_eq!(replayed.headers()["idempotent-replay"], "true");
    assert_eq!(replayed.bytes().await.expect("body"), placed_here);
    bare.stop().await;
}

const BIG_ORDER: &str = r#"{"symbol":"AAPL","side":"buy","quantity":101}"#;

async fn try_post_order_body(client: &reqwest::Client, url: &str, key: &str, body: &str) -> u16 {
    let sent = client
        .post(url)
        .bearer_auth(ACME)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("sent");
    sent.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_keys_spread_over_several_objects() {
    let app = spawn_app(Db::Edge).await;
    for i in 0..48 {
        assert_eq!(app.post(&format!("spread-{i}"), ORDER).await.status(), 201);
    }
    let edge = app.edge.as_ref().expect("edge");
    let objects = edge.object_count();
    // 48 keys over 16 shards: fewer than 8 objects would mean the hash does not spread.
    assert!(objects >= 8, "one tenant's keys live in {objects} objects");
    assert_eq!(edge.orders_per_key(), vec![1; 48]);
    app.stop().await;
}

/// Clients keep placing orders (each key retried until it gets an answer) while the
/// runner is stopped with SIGTERM and started again on the same state directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_a_restart_under_load_and_retries_place_at_most_once() {
    let app = spawn_app(Db::Edge).await;
    let base = Arc::new(Mutex::new(app.url("/orders")));
    let acknowledged: Arc<Mutex<HashMap<String, bytes::Bytes>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = (0..6).map(|c| {
        let (base, acknowledged, sent, stop) = (
            base.clone(),
            acknowledged.clone(),
            sent.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let mut i = 0;
            // Like a real client, each retries its key until it gets an answer, then
            // goes on to a fresh one.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("load-{c}-{i}");
                sent.lock().await.insert(key.clone());
                let url = base.lock().await.clone();
                let answered = try_post_order(&client, &url, ACME, &key).await;
                match answered {
                    Ok(r) if r.status() == 201 => {
                        if let Ok(body) = r.bytes().await {
                            acknowledged.lock().await.insert(key, body);
                            i += 1;
                        }
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
    });
    let clients: Vec<_> = clients.collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = app.restart().await;
    *base.lock().await = app.url("/orders");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    join_all(clients).await;

    let acknowledged = acknowledged.lock().await.clone();
    let sent = sent.lock().await.clone();
    assert!(acknowledged.len() > 20, "the load placed orders");
    for key in &sent {
        let retry = app.post(key, ORDER).await;
        assert_eq!(retry.status(), 201, "{key}");
        let body = retry.bytes().await.expect("body");
        if let Some(original) = acknowledged.get(key) {
            assert_eq!(&body, original, "{key} replays byte for byte");
        }
    }
    let counts = app.orders_per_key().await;
    assert_eq!(counts.len(), sent.len(), "every key sent has its order");
    assert!(counts.iter().all(|&n| n == 1), "no key has two orders");
    app.stop().await;
}

/// The old worker's answer to `key` (sent as this exact header value), placed by the
/// old worker itself on the same local workerd and state directory.
async fn placed_by_the_old_worker(old: &Edge, key: &str) -> bytes::Bytes {
    let answered = reqwest::Client::new()
        .post(old.url("/"))
        .header("idempotency-key", key)
        .body(ORDER)
        .send()
        .await
        .expect("sent");
    assert_eq!(answered.status(), 201, "the old worker placed {key}");
    answered.bytes().await.expect("body")
}

const LEGACY: [&str; 4] = [
    "--legacy-kv",
    "old-worker-orders",
    "--legacy-tenant",
    "acme",
];

/// The old worker answers keys and fills its KV namespace; ordergate-edge, bound to
/// that namespace for tenant acme, replays them instead of placing second orders,
/// whichever spelling of the key the old worker stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_old_worker_answered_replays_its_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    let mut old = Edge::old_worker(dir.path()).await;
    let plain = placed_by_the_old_worker(&old, "switch-1").await;
    // The old worker stored the raw header value: `result:"mig-q1"`.
    let quoted = placed_by_the_old_worker(&old, "\"mig-q1\"").await;
    let quoted_then_plain = placed_by_the_old_worker(&old, "\"mig-q2\"").await;
    old.stop().await;

    let mut edge = Edge::start(dir.path(), &LEGACY).await;
    for (key, answered) in [
        ("switch-1", &plain),
        ("\"mig-q1\"", &quoted),
        ("mig-q2", &quoted_then_plain),
    ] {
        let replay = post(&client, &edge.url("/orders"), ACME, key).await;
        assert_eq!(replay.status(), 201, "{key}");
        assert_eq!(replay.headers()["idempotent-replay"], "true", "{key}");
        let location = format!("/orders/{}", order_id(answered));
        assert_eq!(replay.headers()["location"], location.as_str(), "{key}");
        assert_eq!(
            replay.bytes().await.expect("body"),
            *answered,
            "{key}: its very bytes"
        );
    }

    let fresh = post(&client, &edge.url("/orders"), ACME, "switch-2").await;
    assert_eq!(fresh.status(), 201);
    assert!(
        fresh.headers().get("idempotent-replay").is_none(),
        "a new key places"
    );
    let other_tenant = post(&client, &edge.url("/orders"), GLOBEX, "switch-1").await;
    assert_eq!(other_tenant.status(), 201);
    assert!(
        other_tenant.headers().get("idempotent-replay").is_none(),
        "the old worker's keys are only the legacy tenant's"
    );
    // The three replays imported the old receipts: one order each, and two placed.
    assert_eq!(edge.orders_per_key(), vec![1; 5]);
    edge.stop().await;
}

/// A client reconciles an order the old worker placed: by the replay's `Location`,
/// and by key, also for a key it never retried at the edge. A 404 there would tell
/// it the order did not go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_the_old_worker_placed_can_be_read_back() {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    let mut old = Edge::old_worker(dir.path()).await;
    let retried = placed_by_the_old_worker(&old, "\"read-1\"").await;
    let never_retried = placed_by_the_old_worker(&old, "read-2").await;
    old.stop().await;

    let mut edge = Edge::start(dir.path(), &LEGACY).await;
    let get = |path: String| {
        let client = client.clone();
        let url = edge.url(&path);
        async move {
            let found = client
                .get(url)
                .bearer_auth(ACME)
                .send()
                .await
                .expect("sent");
            (found.status().as_u16(), found.bytes().await.expect("body"))
        }
    };
    let replay = post(&client, &edge.url("/orders"), ACME, "\"read-1\"").await;
    let location = replay.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(replay.bytes().await.expect("body"), retried);
    assert_eq!(get(location).await, (200, retried.clone()), "by Location");
    for key in ["read-1", "%22read-1%22"] {
        let path = format!("/orders?idempotencyKey={key}");
        assert_eq!(get(path).await, (200, retried.clone()), "by key {key}");
    }
    let path = "/orders?idempotencyKey=read-2".to_owned();
    assert_eq!(
        get(path).await,
        (200, never_retried.clone()),
        "by key, never retried"
    );
    let other = client
        .get(edge.url("/orders?idempotencyKey=read-2"))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .expect("sent");
    assert_eq!(other.status(), 404, "only the legacy tenant's");
    edge.stop().await;
}

/// Half a migration (the tenant without the namespace, or the namespace without the
/// tenant) would place every retried key again: no order is taken, and the Worker is
/// not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_configured_migration_takes_no_orders() {
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    for half in [&LEGACY[..2], &LEGACY[2..]] {
        let mut edge = Edge::start(dir.path(), half).await;
        let refused = post(&client, &edge.url("/orders"), ACME, "half").await;
        let (status, code, _) = problem(refused).await;
        assert_eq!((status, code.as_str()), (503, "unavailable"), "{half:?}");
        let ready = client.get(edge.url("/readyz")).send().await.expect("sent");
        assert_eq!(ready.status(), 503, "{half:?}: not ready");
        edge.stop().await;
    }
    assert_eq!(
        Edge::start(dir.path(), &[]).await.orders_per_key(),
        Vec::<i64>::new(),
        "nothing was placed"
    );
}

/// `ORDERGATE_LIMITS` (`dev.sh --limits-file`) across redeploys: the rate is ignored
/// and the log says so; a halt refuses new orders but not the tenant's replays and
/// lookups; the refused key places once the halt is lifted; a broken file takes no
/// orders at all (the edge's "error at start-up").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_at_the_edge_survive_redeploys_and_a_broken_file_takes_no_orders() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = dir.path().join("limits.toml");
    let limits_arg = limits.display().to_string();
    let write = |text: &str| std::fs::write(&limits, text).expect("write limits");
    let client = reqwest::Client::new();
    write("[tenant.acme]\norders_per_second = 1\n");
    let state = dir.path().join("state");
    let edge = Edge::start(&state, &["--limits-file", &limits_arg]).await;
    for key in ["rate-1", "rate-2", "rate-3"] {
        let placed = post(&client, &edge.url("/orders"), ACME, key).await;
        assert_eq!(placed.status(), 201, "the rate is not enforced at the edge");
    }
    // The console line reaches the runner's output a moment after the answer.
    eventually(
        "the edge logs that it ignores the rate",
        Duration::from_secs(30),
        || {
            let logged = edge
                .log()
                .contains("orders_per_second is ignored at the edge");
            async move { logged }
        },
    )
    .await;

    write("[tenant.acme]\nhalted = true\n");
    let edge = edge.restart().await;
    let (status, code, _) =
        problem(post(&client, &edge.url("/orders"), ACME, "halted").await).await;
    assert_eq!((status, code.as_str()), (403, "trading_halted"));
    let replay = post(&client, &edge.url("/orders"), ACME, "rate-1").await;
    assert_eq!(
        replay.status(),
        201,
        "a halted tenant's replays still answer"
    );
    assert_eq!(replay.headers()["idempotent-replay"], "true");
    let lookup = client
        .get(edge.url("/orders?idempotencyKey=rate-2"))
        .bearer_auth(ACME)
        .send()
        .await
        .expect("lookup");
    assert_eq!(lookup.status(), 200);
    let other = post(&client, &edge.url("/orders"), GLOBEX, "halted").await;
    assert_eq!(other.status(), 201, "only acme is halted");

    write("[tenant.acme]\nhalted = yes\n");
    let edge = edge.restart().await;
    let (status, code, _) =
        problem(post(&client, &edge.url("/orders"), ACME, "halted").await).await;
    assert_eq!(
        (status, code.as_str()),
        (503, "unavailable"),
        "a broken file takes no orders"
    );
    let ready = client.get(edge.url("/readyz")).send().await.expect("probe");
    assert_eq!(ready.status(), 503);

    write("[tenant.acme]\nhalted = false\n");
    let edge = edge.restart().await;
    let placed = post(&client, &edge.url("/orders"), ACME, "halted").await;
    assert_eq!(
        placed.status(),
        201,
        "the refused key places once the halt is lifted"
    );
    let mut per_key = edge.orders_per_key();
    per_key.sort();
    assert_eq!(per_key, vec![1; 5]);
}

/// The shard count changes from 16 to 4 while clients keep placing orders and
/// retrying their keys: every acknowledged key keeps its answer (replay, lookup by
/// id, lookup by key), and no key is placed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_shard_count_under_load_keeps_every_keys_answer() {
    let app = spawn_app(Db::Edge).await;
    let base = Arc::new(Mutex::new(app.url("/orders")));
    let acknowledged: Arc<Mutex<HashMap<String, bytes::Bytes>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (base, acknowledged, sent, stop) = (
                base.clone(),
                acknowledged.clone(),
                sent.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("client");
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("reshard-{c}-{i}");
                    sent.lock().await.insert(key.clone());
                    let url = base.lock().await.clone();
                    match try_post_order(&client, &url, ACME, &key).await {
                        Ok(r) if r.status() == 201 => {
                            if let Ok(body) = r.bytes().await {
                                acknowledged.lock().await.insert(key, body);
                                i += 1;
                            }
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        })
        .collect();
    wait_for_acknowledged(&acknowledged, 40).await;
    let mut edge = app.edge.expect("edge");
    // The change takes effect now: every key placed before was placed by 16 shards.
    let changed_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let before = acknowledged.lock().await.len();
    edge = edge
        .restart_adding(&[
            "--shards",
            "4",
            "--previous-shards",
            "16",
            "--shards-changed-at",
            &changed_at,
        ])
        .await;
    *base.lock().await = edge.url("/orders");
    wait_for_acknowledged(&acknowledged, before + 40).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    join_all(clients).await;

    let acknowledged = acknowledged.lock().await.clone();
    let sent = sent.lock().await.clone();
    let moved = acknowledged
        .values()
        .filter(|body| shard_of(body) >= 4)
        .count();
    assert!(
        moved > 5,
        "orders placed in shards the new count has not: {moved}"
    );
    let client = reqwest::Client::new();
    for key in &sent {
        let retry = post(&client, &edge.url("/orders"), ACME, key).await;
        assert_eq!(retry.status(), 201, "{key}");
        let body = retry.bytes().await.expect("body");
        if let Some(original) = acknowledged.get(key) {
            assert_eq!(&body, original, "{key} replays byte for byte");
        }
        for path in [
            format!("/orders/{}", order_id(&body)),
            format!("/orders?idempotencyKey={key}"),
        ] {
            let found = client
                .get(edge.url(&path))
                .bearer_auth(ACME)
                .send()
                .await
                .expect("sent");
            assert_eq!(found.status(), 200, "{path}");
            assert_eq!(found.bytes().await.expect("body"), body, "{path}");
        }
    }
    let counts = edge.orders_per_key();
    assert_eq!(counts.len(), sent.len(), "every key sent has its order");
    assert!(counts.iter().all(|&n| n == 1), "no key has two orders");
    edge.stop().await;
}

async fn wait_for_acknowledged(acknowledged: &Mutex<HashMap<String, bytes::Bytes>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().await.len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} orders acknowledged within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shard an order id carries in its last two bytes.
fn shard_of(order: &[u8]) -> u16 {
    let id = uuid::Uuid::parse_str(&order_id(order)).expect("uuid");
    let bytes = id.as_bytes();
    u16::from_be_bytes([bytes[14], bytes[15]])
}

/// `wrangler dev` in local mode must not need the network: in a network namespace
/// with only loopback, dev.sh starts, places an order, and stops with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_serves_with_the_network_unreachable() {
    let dir = tempfile::tempdir().expect("dir");
    let script = format!(
        r#"set -u
ip link set lo up
export CARGO_NET_OFFLINE=true
"{dev}" --listen 127.0.0.1:8787 --state "{state}" --open 2>/dev/null &
runner=$!
for _ in $(seq 1500); do
    curl -sf http://127.0.0.1:8787/healthz >/dev/null && break
    sleep 0.2
done
curl -s -o /dev/null -w '%{{http_code}}\n' -X POST http://127.0.0.1:8787/orders \
    -H 'content-type: application/json' -H 'idempotency-key: offline' -d '{order}'
kill -TERM "$runner"
wait "$runner"
echo "runner exited $?""#,
        dev = crate::edge_runner::DEV_SH,
        state = dir.path().display(),
        order = ORDER,
    );
    let output = tokio::process::Command::new("unshare")
        .args(["--net", "bash", "-c", &script])
        .output()
        .await
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["201", "runner exited 0"]
    );
}

/// An object marks the answers the Worker's replay cache may keep; the marks are
/// between the two and never reach a client, first answer or replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_marks_between_object_and_worker_never_reach_the_client() {
    let app = spawn_app(Db::Edge).await;
    let first = app.post("marks", ORDER).await;
    let replay = app.post("marks", ORDER).await;
    let reused = app
        .post("marks", r#"{"symbol":"MSFT","side":"buy","quantity":1}"#)
        .await;
    assert_eq!(
        reused.status(),
        422,
        "the cached record still judges the payload"
    );
    for response in [&first, &replay] {
        let internal: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("x-ordergate"))
            .collect();
        assert!(internal.is_empty(), "{internal:?}");
        assert_eq!(response.status(), 201);
    }
    assert_eq!(replay.headers()["idempotent-replay"], "true");
    assert_eq!(first.headers()["location"], replay.headers()["location"]);
    app.stop().await;
}

/// dev.sh prints nothing secret, at wrangler's most talkative log level: the token is
/// in no line of its output and on no command line of its processes, and the file it
/// is kept in is the owner's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_prints_no_secret_and_keeps_the_keys_private() {
    use std::os::unix::fs::PermissionsExt;
    const SECRET: &str = "tok-3f9a1c-never-shown";
    let dir = tempfile::tempdir().expect("dir");
    let addr = crate::edge_runner::free_port();
    let runner = tokio::process::Command::new(crate::edge_runner::DEV_SH)
        .args(["--listen", &addr.to_string(), "--state"])
        .arg(dir.path())
        .args(["--api-key", &format!("acme:{SECRET}")])
        .env("ORDERGATE_EDGE_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dev.sh");
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(900);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "dev.sh did not serve in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let placed = post(&client, &format!("{base}/orders"), SECRET, "private").await;
    assert_eq!(placed.status(), 201);
    let refused = post(&client, &format!("{base}/orders"), "wrong", "private").await;
    assert_eq!(refused.status(), 401);
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(SECRET),
                "a command line shows the token: {cmdline}"
            );
        }
    }
    let mode = std::fs::metadata(dir.path().join(".dev.vars"))
        .expect("the keys file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "only the owner may read the keys file");
    let pid = runner.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = runner.wait_with_output().await.expect("dev.sh output");
    assert!(output.status.success(), "dev.sh exits 0 on SIGTERM");
    let printed = [output.stdout, output.stderr].concat();
    let printed = String::from_utf8_lossy(&printed);
    assert!(
        printed.contains("POST /orders"),
        "the log level shows requests: {printed}"
    );
    assert!(
        !printed.contains(SECRET),
        "dev.sh printed the token:\n{printed}"
    );
}

/// The edge crate is a workspace of its own (it builds for wasm32), so `cargo test
/// --workspace` does not reach its unit tests (wire, config): they run here, natively.
#[test]
fn the_edge_crates_unit_tests_pass() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../ordergate-edge/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["test", "--locked", "--manifest-path", manifest])
        .output()
        .expect("run cargo test on the edge crate");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("test result: ok"), "{printed}");
}
