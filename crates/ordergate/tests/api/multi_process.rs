//! Several real `ordergate` processes on one PostgreSQL database: the guarantees hold
//! across them, through `kill -9`, `SIGSTOP` and a database outage.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;

use crate::helpers::{ORDER, eventually};
use crate::pg::TestDb;
use crate::process::{self, Gateway, post_order as post};

fn gateways(db: &TestDb, n: usize, extra: &[&str]) -> Vec<Gateway> {
    (0..n)
        .map(|_| {
            let mut args = vec!["--listen", "127.0.0.1:0", "--database", &db.url];
            args.extend_from_slice(extra);
            process::serve(process::command(&args))
        })
        .collect()
}

async fn orders_per_key(db: &TestDb) -> HashMap<String, i64> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT idem_key, count(*) FROM orders GROUP BY tenant, idem_key",
            &[],
        )
        .await
        .expect("count orders");
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// Waits until one of the database's sessions opened by a gateway waits for a lock.
async fn waiting_on_a_lock(db: &TestDb) {
    let observer = db.client().await;
    let what = "a gateway session waits for a lock";
    eventually(what, Duration::from_secs(30), || async {
        let row = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'ordergate' \
                 AND wait_event_type = 'Lock'",
                &[&db.name],
            )
            .await
            .expect("pg_stat_activity");
        row.get::<_, i64>(0) > 0
    })
    .await;
}

fn order_id(body: &[u8]) -> String {
    crate::helpers::order_id(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_place_one_order_per_key_under_concurrent_retries() {
    let db = TestDb::create().await;
    let gws = gateways(&db, 3, &[]);
    let client = reqwest::Client::new();
    const KEYS: usize = 20;
    const CLIENTS: usize = 24;
    for k in 0..KEYS {
        let key = format!("multi-{k}");
        let answers = join_all((0..CLIENTS).map(|c| {
            let url = gws[c % gws.len()].url("/orders");
            let (client, key) = (client.clone(), key.clone());
            async move { post(&client, &url, &key).await.expect("answer") }
        }))
        .await;
        let created = answers.iter().filter(|(s, r, _)| *s == 201 && !r).count();
        assert_eq!(created, 1, "{key}: exactly one gateway places the order");
        let bodies: HashSet<_> = answers
            .iter()
            .filter(|a| a.0 == 201)
            .map(|a| &a.2)
            .collect();
        assert_eq!(bodies.len(), 1, "{key}: every 201 is the same order");
        assert!(
            answers.iter().all(|a| a.0 == 201 || a.0 == 409),
            "{key}: {answers:?}"
        );
    }
    let counts = orders_per_key(&db).await;
    assert_eq!(counts.len(), KEYS);
    assert!(counts.values().all(|&n| n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_gateway_mid_load_duplicates_nothing_and_loses_nothing() {
    let db = TestDb::create().await;
    let mut gws = gateways(&db, 3, &[]);
    let urls: Vec<String> = gws.iter().map(|g| g.url("/orders")).collect();
    let client = reqwest::Client::new();
    let victim = gws.remove(0);
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let load = {
        let (client, urls, acked_so_far) = (client.clone(), urls.clone(), acked_so_far.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(String, Option<Bytes>)> = Vec::new();
            for round in 0..60 {
                let keys: Vec<String> = (0..12).map(|c| format!("k9-{round}-{c}")).collect();
                let answers = join_all(
                    keys.iter()
                        .enumerate()
                        .map(|(c, key)| post(&client, &urls[c % urls.len()], key)),
                )
                .await;
                for (key, answer) in keys.into_iter().zip(answers) {
                    let acked = answer.filter(|a| a.0 == 201).map(|a| a.2);
                    if acked.is_some() {
                        acked_so_far.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.push((key, acked));
                }
            }
            seen
        })
    };
    // Mid-load: a sixth of the rounds are done, most are still to come.
    eventually(
        "120 rounds acknowledged",
        Duration::from_secs(120),
        || async { acked_so_far.load(Ordering::SeqCst) >= 120 },
    )
    .await;
    victim.crash();
    let seen = load.await.expect("load");
    let acked = seen.iter().filter(|s| s.1.is_some()).count();
    assert!(
        acked > 0 && acked < seen.len(),
        "the crash cut some requests off"
    );
    for (key, acked) in &seen {
        let (status, replay, body) = post(&client, &urls[1], key).await.expect("answer");
        assert_eq!(status, 201, "{key}");
        if let Some(original) = acked {
            assert!(replay, "{key}");
            assert_eq!(
                &body, original,
                "{key}: acknowledged order replayed byte for byte"
            );
        }
    }
    let counts = orders_per_key(&db).await;
    assert_eq!(counts.len(), seen.len());
    assert!(counts.values().all(|&n| n == 1), "no key has two orders");
    drop(gws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_gateway_holds_no_key_past_its_lease_and_completes_nothing_it_abandoned() {
    let db = TestDb::create().await;
    let gws = gateways(&db, 2, &["--lease-ttl", "1s"]);
    let (stopped, live) = (&gws[0], &gws[1]);
    let client = reqwest::Client::new();
    // The keys table is locked, so the gateway's placements wait in the database: at
    // the stop they are in flight, which pg_stat_activity shows.
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE idempotency_keys IN SHARE ROW EXCLUSIVE MODE")
        .await
        .expect("lock the keys table");
    let in_flight: Vec<String> = (0..16).map(|i| format!("stop-{i}")).collect();
    let answers_from_stopped = {
        let (client, url, keys) = (client.clone(), stopped.url("/orders"), in_flight.clone());
        tokio::spawn(async move { join_all(keys.iter().map(|key| post(&client, &url, key))).await })
    };
    waiting_on_a_lock(&db).await;
    stopped.signal("STOP");
    locker.batch_execute("COMMIT").await.expect("unlock");
    // The other gateway keeps serving.
    let (status, _, _) = post(&client, &live.url("/orders"), "while-stopped")
        .await
        .expect("answer");
    assert_eq!(status, 201);
    // Within the lease a key may still be held (409); after it every key is free or
    // finished, and the retry gets an order.
    let mut on_live = HashMap::new();
    for key in &in_flight {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let body = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "{key}: still in progress on the live gateway after 60 s"
            );
            let (status, _, body) = post(&client, &live.url("/orders"), key)
                .await
                .expect("answer");
            match status {
                201 => break body,
                409 => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("{key}: {other} from the live gateway"),
            }
        };
        on_live.insert(key.clone(), order_id(&body));
    }
    stopped.signal("CONT");
    let late = answers_from_stopped.await.expect("answers");
    for (key, answer) in in_flight.iter().zip(late) {
        let Some((status, _, body)) = answer else {
            continue;
        };
        match status {
            201 => assert_eq!(
                order_id(&body),
                on_live[key],
                "{key}: one order, whoever placed it"
            ),
            503 => {}
            other => panic!("{key}: unexpected {other} from the resumed gateway"),
        }
    }
    let counts = orders_per_key(&db).await;
    assert!(
        counts.values().all(|&n| n == 1),
        "no key has two orders: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_gives_503_then_the_pool_reconnects_and_retries_place_once() {
    let db = TestDb::create().await;
    let gws = gateways(&db, 1, &[]);
    let gw = &gws[0];
    let client = reqwest::Client::new();
    let mut seen: Vec<(String, Option<Bytes>)> = Vec::new();
    let mut saw_503 = false;
    let mut ready_during_outage = None;
    for round in 0..30 {
        if round == 10 {
            db.cut_off().await;
        }
        if round == 15 {
            let ready = client.get(gw.url("/readyz")).send().await.expect("readyz");
            ready_during_outage = Some(ready.status().as_u16());
        }
        if round == 20 {
            db.bring_back().await;
        }
        let keys: Vec<String> = (0..8).map(|c| format!("outage-{round}-{c}")).collect();
        let answers = join_all(keys.iter().map(|key| {
            let (client, url) = (client.clone(), gw.url("/orders"));
            async move {
                let response = client
                    .post(&url)
                    .header("idempotency-key", key)
                    .header("content-type", "application/json")
                    .body(ORDER)
                    .send()
                    .await
                    .expect("the gateway answers");
                let retry_after = response.headers().contains_key("retry-after");
                (
                    response.status().as_u16(),
                    retry_after,
                    response.bytes().await.expect("body"),
                )
            }
        }))
        .await;
        for (key, (status, retry_after, body)) in keys.into_iter().zip(answers) {
            assert!(status == 201 || status == 503, "{key}: {status}");
            if status == 503 {
                assert!(retry_after, "a 503 says when to retry");
                saw_503 = true;
            }
            seen.push((key, (status == 201).then_some(body)));
        }
    }
    assert!(saw_503, "the outage was visible as 503");
    assert_eq!(
        ready_during_outage,
        Some(503),
        "/readyz is 503 while the database is away"
    );
    assert!(
        gw.becomes_ready(&client).await,
        "ready again once the database is back"
    );
    for (key, acked) in &seen {
        let (status, _, body) = post(&client, &gw.url("/orders"), key)
            .await
            .expect("answer");
        assert_eq!(status, 201, "{key}");
        if let Some(original) = acked {
            assert_eq!(&body, original, "{key}");
        }
    }
    let counts = orders_per_key(&db).await;
    assert_eq!(counts.len(), seen.len());
    assert!(counts.values().all(|&n| n == 1));
}
