//! Delivery over FIX 4.4 against a real FIX engine no one here wrote: QuickFIX's
//! acceptor (from PyPI) with a small executor that records every NewOrderSingle and
//! dedupes by ClOrdID (see `fix_acceptor`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::fix_acceptor::{Acceptor, Received, url_for};
use crate::helpers::{ACME, Db, GLOBEX, TestApp, eventually, order_id, spawn_app_with};
use crate::process;

const WITHIN: Duration = Duration::from_secs(60);

/// The delivery of one order as `GET /orders/{id}/delivery` shows it.
async fn delivery(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get_as(token, &format!("/orders/{id}/delivery")).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn place(app: &TestApp, token: &str, key: &str, body: &str) -> Value {
    let response = app.post_as(token, key, body).await;
    assert_eq!(response.status(), 201, "{key}");
    response.json().await.expect("JSON")
}

async fn all_delivered(app: &TestApp, orders: &[(&str, String)]) {
    eventually("every order delivered", WITHIN, || async {
        for (token, id) in orders {
            if delivery(app, token, id).await["state"] != "delivered" {
                return false;
            }
        }
        true
    })
    .await;
}

/// `2026-12-07T04:13:19.447Z` as a FIX UTCTimestamp: `20261207-04:13:19.447`.
fn utc_timestamp(accepted_at: &str) -> String {
    let (date, time) = accepted_at.split_once('T').expect("RFC 3339");
    format!("{}-{}", date.replace('-', ""), time.trim_end_matches('Z'))
}

/// The NewOrderSingle the contract maps `order` (a 201 body) of `tenant` to.
fn assert_mapped(received: &Received, tenant: &str, order: &Value) {
    let text = |member: &str| order[member].as_str().expect(member).to_owned();
    assert_eq!(received.clordid, text("orderId"));
    assert_eq!(received.account.as_deref(), Some(tenant));
    assert_eq!(received.handl_inst.as_deref(), Some("1"));
    assert_eq!(received.symbol, text("symbol"));
    let side = if text("side") == "buy" { "1" } else { "2" };
    assert_eq!(received.side, side);
    assert_eq!(received.quantity, order["quantity"].to_string());
    let limit = order["type"] == "limit";
    assert_eq!(received.ord_type, if limit { "2" } else { "1" });
    assert_eq!(
        received.price,
        order["limitPrice"].as_str().map(str::to_owned)
    );
    let tif = match text("timeInForce").as_str() {
        "day" => "0",
        "gtc" => "1",
        "ioc" => "3",
        "fok" => "4",
        other => panic!("time in force {other}"),
    };
    assert_eq!(received.time_in_force.as_deref(), Some(tif));
    assert_eq!(
        received.transact_time.as_deref(),
        Some(utc_timestamp(&text("acceptedAt")).as_str())
    );
}

/// How often each ClOrdID arrived, and how often unflagged (neither 43=Y nor 97=Y).
fn copies(received: &[Received]) -> HashMap<String, (usize, usize)> {
    let mut copies: HashMap<String, (usize, usize)> = HashMap::new();
    for order in received {
        let entry = copies.entry(order.clordid.clone()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(order.unflagged());
    }
    copies
}

fn assert_never_twice_unflagged(received: &[Received]) {
    for (id, (_, unflagged)) in copies(received) {
        assert!(unflagged <= 1, "{id} was sent {unflagged} times unflagged");
    }
}

async fn metric(app_url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{app_url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

const ORDERS: [(&str, &str); 6] = [
    ("acme", r#"{"symbol":"AAPL","side":"buy","quantity":100}"#),
    (
        "acme",
        r#"{"symbol":"MSFT","side":"sell","quantity":5,"type":"limit","limitPrice":"187.2500","timeInForce":"gtc"}"#,
    ),
    (
        "acme",
        r#"{"symbol":"IBM","side":"buy","quantity":7,"type":"limit","limitPrice":"0.0001","timeInForce":"ioc"}"#,
    ),
    (
        "globex",
        r#"{"symbol":"TSLA","side":"sell","quantity":3,"type":"market","timeInForce":"fok"}"#,
    ),
    (
        "globex",
        r#"{"symbol":"GOOG","side":"buy","quantity":1000000,"type":"limit","limitPrice":"12","timeInForce":"day"}"#,
    ),
    ("globex", r#"{"symbol":"BRK.B","side":"sell","quantity":1}"#),
];

fn token_of(tenant: &str) -> &'static str {
    if tenant == "acme" { ACME } else { GLOBEX }
}

/// Orders of both tenants, market and limit: each reaches the acceptor once, as the
/// NewOrderSingle the contract maps it to, and is delivered on its ExecutionReport.
async fn each_order_is_one_new_order_single(db: Db) {
    let acceptor = Acceptor::start();
    let app = spawn_app_with(db, &["--deliver", &acceptor.url()]).await;
    let mut placed = Vec::new();
    for (i, (tenant, body)) in ORDERS.iter().enumerate() {
        let order = place(&app, token_of(tenant), &format!("fix-{i}"), body).await;
        placed.push((*tenant, order));
    }
    let ids: Vec<(&str, String)> = placed
        .iter()
        .map(|(tenant, order)| {
            (
                token_of(tenant),
                order["orderId"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    all_delivered(&app, &ids).await;
    let received = acceptor.orders();
    assert_eq!(received.len(), ORDERS.len(), "{received:#?}");
    for (tenant, order) in &placed {
        let copy = received
            .iter()
            .find(|r| r.clordid == order["orderId"].as_str().expect("id"))
            .expect("received");
        assert_mapped(copy, tenant, order);
        assert!(copy.unflagged());
        assert_eq!(copy.answer, "accepted");
    }
    let seqs: Vec<u64> = received.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let status = delivery(&app, ACME, &ids[0].1).await;
    assert_eq!(status["attempts"], 1);
    assert!(status["deliveredAt"].is_string());
    assert_eq!(metric(&app.url(""), "ordergate_fix_session_up").await, 1.0);
}

on_each_backend!(each_order_is_one_new_order_single);

/// Orders accepted while the acceptor is down are acknowledged as ever, wait without
/// burning attempts, and go out once it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_wait_for_an_acceptor_that_is_down() {
    let port = Acceptor::reserve_port();
    let app = spawn_app_with(Db::Sqlite, &["--deliver", &url_for(port)]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let order = place(&app, ACME, &format!("down-{i}"), crate::helpers::ORDER).await;
        ids.push((ACME, order["orderId"].as_str().expect("id").to_owned()));
    }
    let first = delivery(&app, ACME, &ids[0].1).await;
    assert_eq!(first["state"], "pending");
    assert_eq!(first["attempts"], 0);
    assert_eq!(metric(&app.url(""), "ordergate_fix_session_up").await, 0.0);
    let acceptor = Acceptor::start_on(port);
    all_delivered(&app, &ids).await;
    let received = copies(&acceptor.orders());
    assert_eq!(received.len(), ids.len());
    assert!(received.values().all(|(all, _)| *all == 1), "{received:?}");
}

/// A rejected order (an ExecutionReport with 150=8, or a BusinessMessageReject) fails
/// at once with the acceptor's text and is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_order_fails_with_the_acceptors_text() {
    let acceptor = Acceptor::start();
    let app = spawn_app_with(Db::Sqlite, &["--deliver", &acceptor.url()]).await;
    let bad = place(
        &app,
        ACME,
        "bad",
        r#"{"symbol":"REJECTME","side":"buy","quantity":1}"#,
    )
    .await;
    let bad_id = bad["orderId"].as_str().expect("id").to_owned();
    eventually("the rejection recorded", WITHIN, || async {
        delivery(&app, ACME, &bad_id).await["state"] == "failed"
    })
    .await;
    let status = delivery(&app, ACME, &bad_id).await;
    assert_eq!(status["lastError"], "unknown symbol REJECTME");
    assert_eq!(status["attempts"], 1);
    // A BusinessMessageReject naming the order fails it the same way.
    let refused = place(
        &app,
        ACME,
        "refused",
        r#"{"symbol":"BIZREJECTX","side":"buy","quantity":1}"#,
    )
    .await;
    let refused_id = refused["orderId"].as_str().expect("id").to_owned();
    eventually("the business reject recorded", WITHIN, || async {
        delivery(&app, ACME, &refused_id).await["state"] == "failed"
    })
    .await;
    assert_eq!(
        delivery(&app, ACME, &refused_id).await["lastError"],
        "not authorized for BIZREJECTX"
    );
    // An order placed after it is delivered: the rejected one was not sent again
    // meanwhile, nor will it be (failed is final).
    let good = place(&app, ACME, "good", crate::helpers::ORDER).await;
    all_delivered(
        &app,
        &[(ACME, good["orderId"].as_str().expect("id").to_owned())],
    )
    .await;
    let received = copies(&acceptor.orders());
    assert_eq!(received.get(&bad_id), Some(&(1, 1)));
    assert_eq!(received.get(&refused_id), Some(&(1, 1)));
    assert_eq!(delivery(&app, ACME, &bad_id).await["state"], "failed");
}

/// Places `count` orders through a process gateway in open mode; their ids.
async fn place_on_process(gw: &process::Gateway, prefix: &str, count: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let (status, _, body) =
            process::post_order(&client, &gw.url("/orders"), &format!("{prefix}-{i}"))
                .await
                .expect("answer");
        assert_eq!(status, 201);
        ids.push(order_id(&body));
    }
    ids
}

fn fix_gateway(dir: &std::path::Path, acceptor_url: &str) -> std::process::Command {
    let db = process::sqlite_url(dir);
    process::command(&[
        "--listen",
        "127.0.0.1:0",
        "--database",
        &db,
        "--deliver",
        acceptor_url,
    ])
}

async fn received_all(acceptor: &Acceptor, ids: &[String]) {
    eventually("every order received", WITHIN, || async {
        let received = copies(&acceptor.orders());
        ids.iter().all(|id| received.contains_key(id))
    })
    .await;
}

/// `kill -9` of the acceptor mid-load, restarted with its store: every order arrives,
/// the numbers go on from where they were (no reset), and none twice unflagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceptor_killed_mid_load_comes_back_to_the_same_numbers() {
    let mut acceptor = Acceptor::start();
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve(fix_gateway(dir.path(), &acceptor.url()));
    let mut ids = place_on_process(&gw, "before", 100).await;
    eventually("some orders received", WITHIN, || async {
        acceptor.orders().len() >= 20
    })
    .await;
    acceptor.kill_9();
    ids.extend(place_on_process(&gw, "during", 50).await);
    acceptor.restart();
    ids.extend(place_on_process(&gw, "after", 50).await);
    received_all(&acceptor, &ids).await;
    let received = acceptor.orders();
    assert_never_twice_unflagged(&received);
    let logons = acceptor.logons();
    assert!(logons.len() >= 2, "{logons:?}");
    assert!(
        logons.iter().all(|l| l.reset.is_none()),
        "a logon asked for a reset: {logons:?}"
    );
    assert!(logons.windows(2).all(|w| w[0].seq < w[1].seq), "{logons:?}");
    // The acceptor came back with its numbers, so the gateway met no gap it could not
    // close and no number that went back.
    assert_eq!(
        metric(&gw.url(""), "ordergate_fix_sequence_errors_total").await,
        0.0
    );
    let copies = copies(&received);
    assert_eq!(copies.len(), ids.len());
}

/// `kill -9` of the gateway mid-load and a restart on the same database: every order
/// it acknowledged reaches the acceptor, none twice unflagged; those sent again carry
/// PossResend or PossDupFlag. The acceptor answers slowly, so orders are sent and
/// unconfirmed when the gateway dies, and must be sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_killed_mid_load_resends_flagged_only() {
    let acceptor = Acceptor::start_slow(Acceptor::reserve_port(), 20);
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve(fix_gateway(dir.path(), &acceptor.url()));
    let loader = {
        let url = gw.url("/orders");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for i in 0..400 {
                match process::post_order(&client, &url, &format!("load-{i}")).await {
                    Some((201, _, body)) => acknowledged.push(order_id(&body)),
                    Some(_) => {}
                    None => break,
                }
            }
            acknowledged
        })
    };
    eventually("some orders received", WITHIN, || async {
        acceptor.orders().len() >= 50
    })
    .await;
    gw.crash();
    let mut ids = loader.await.expect("loader");
    let gw = process::serve(fix_gateway(dir.path(), &acceptor.url()));
    ids.extend(place_on_process(&gw, "after", 20).await);
    received_all(&acceptor, &ids).await;
    let received = acceptor.orders();
    assert_never_twice_unflagged(&received);
    let flagged = received.iter().filter(|r| !r.unflagged()).count();
    println!(
        "{} orders, {} copies received, {flagged} of them flagged",
        ids.len(),
        received.len()
    );
    // The acceptor's numbers never went back: the restarted gateway went on from its
    // stored numbers.
    let logons = acceptor.logons();
    assert!(logons.windows(2).all(|w| w[0].seq < w[1].seq), "{logons:?}");
    assert!(logons.iter().all(|l| l.reset.is_none()));
}

/// The runbook's statement for a counterparty that started its numbers again from 1,
/// as OPERATIONS.md gives it ("Runbook: sequence numbers").
fn runbook_reset() -> String {
    let guide = include_str!("../../../../docs/OPERATIONS.md");
    guide
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("UPDATE fix_sessions SET next_out = 1, next_in = 1"))
        .expect("the runbook's reset statement")
        .to_owned()
}

/// The counterparty wipes its store and starts from 1: ordergate does not reset its
/// numbers by itself (no logon with 141=Y, nothing sent); it logs why, counts it and
/// keeps the session down, and the runbook's statement brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counterparty_that_lost_its_numbers_is_not_reset_automatically() {
    let mut acceptor = Acceptor::start();
    let dir = tempfile::tempdir().expect("dir");
    let gw = process::serve(fix_gateway(dir.path(), &acceptor.url()));
    let first = place_on_process(&gw, "first", 10).await;
    received_all(&acceptor, &first).await;
    acceptor.kill_9();
    acceptor.wipe_store();
    acceptor.restart();
    let later = place_on_process(&gw, "later", 5).await;
    gw.logged("does not reset by itself").await;
    let errors = metric(&gw.url(""), "ordergate_fix_sequence_errors_total").await;
    assert!(errors >= 1.0);
    assert_eq!(metric(&gw.url(""), "ordergate_fix_session_up").await, 0.0);
    let received = copies(&acceptor.orders());
    assert!(later.iter().all(|id| !received.contains_key(id)));
    assert!(acceptor.logons().iter().all(|l| l.reset.is_none()));
    let db = dir.path().join("ordergate.db");
    let runbook = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(runbook_reset())
        .status()
        .expect("sqlite3");
    assert!(runbook.success());
    received_all(&acceptor, &later).await;
    assert_never_twice_unflagged(&acceptor.orders());
    assert!(acceptor.logons().iter().all(|l| l.reset.is_none()));
}

/// Three gateways on one PostgreSQL database: one holds the FIX session; when it is
/// killed, another takes the session over with the stored numbers within 30 s, every
/// order is delivered, and two sessions are never logged on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_hold_one_session_and_hand_it_over() {
    let acceptor = Acceptor::start();
    let db = crate::pg::TestDb::create().await;
    let start = || {
        process::serve(process::command(&[
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db.url,
            "--deliver",
            &acceptor.url(),
        ]))
    };
    let mut gateways: Vec<process::Gateway> = (0..3).map(|_| start()).collect();
    let holder = holder_of(&gateways, "the first logon").await;
    let mut ids = Vec::new();
    for (i, gw) in gateways.iter().enumerate() {
        ids.extend(place_on_process(gw, &format!("before-{i}"), 20).await);
    }
    received_all(&acceptor, &ids).await;
    let killed = gateways.remove(holder);
    killed.crash();
    for (i, gw) in gateways.iter().enumerate() {
        ids.extend(place_on_process(gw, &format!("after-{i}"), 20).await);
    }
    let deadline = Duration::from_secs(30);
    let taken = tokio::time::timeout(deadline, holder_of(&gateways, "the handover")).await;
    let new_holder = taken.expect("another gateway took the session within 30 s");
    received_all(&acceptor, &ids).await;
    let holders = gateways
        .iter()
        .filter(|gw| gw.log_text().contains("this gateway holds the FIX session"))
        .count();
    assert_eq!(
        holders, 1,
        "only the new holder ({new_holder}) ever held it"
    );
    let events = acceptor.events();
    let alternating = events
        .iter()
        .enumerate()
        .all(|(i, e)| e == if i % 2 == 0 { "logon" } else { "logout" });
    assert!(alternating, "two sessions logged on at once: {events:?}");
    assert_never_twice_unflagged(&acceptor.orders());
    let logons = acceptor.logons();
    assert!(logons.windows(2).all(|w| w[0].seq < w[1].seq), "{logons:?}");
}

/// The index of the one gateway whose FIX session is logged on, once exactly one is;
/// fails if two ever are.
async fn holder_of(gateways: &[process::Gateway], what: &str) -> usize {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let mut up = Vec::new();
        for (i, gw) in gateways.iter().enumerate() {
            if metric(&gw.url(""), "ordergate_fix_session_up").await == 1.0 {
                up.push(i);
            }
        }
        assert!(up.len() <= 1, "two gateways logged on at once: {up:?}");
        if let Some(holder) = up.first() {
            return *holder;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: no gateway logged on within {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resend requests both ways: an acceptor that lost the gateway's last messages asks
/// for them and gets the orders again with `43=Y` (session messages gap-filled); one
/// whose numbers jumped ahead is asked for the missed ones. The session then goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_requests_are_answered_and_asked_for() {
    let mut acceptor = Acceptor::start();
    let app = spawn_app_with(Db::Sqlite, &["--deliver", &acceptor.url()]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let order = place(&app, ACME, &format!("early-{i}"), crate::helpers::ORDER).await;
        ids.push((ACME, order["orderId"].as_str().expect("id").to_owned()));
    }
    all_delivered(&app, &ids).await;
    acceptor.kill_9();
    let (next_out, _) = acceptor.numbers();
    // It forgets everything the gateway sent after the logon, and skips 5 numbers.
    acceptor.set_numbers(next_out + 5, 2);
    acceptor.restart();
    for i in 0..3 {
        let order = place(&app, ACME, &format!("late-{i}"), crate::helpers::ORDER).await;
        ids.push((ACME, order["orderId"].as_str().expect("id").to_owned()));
    }
    all_delivered(&app, &ids).await;
    let received = acceptor.orders();
    for (_, id) in &ids[..5] {
        let again = received
            .iter()
            .any(|r| &r.clordid == id && r.poss_dup.as_deref() == Some("Y"));
        assert!(again, "{id} was not sent again with 43=Y");
    }
    assert_never_twice_unflagged(&received);
    let sent = acceptor.types_from_gateway();
    assert!(sent.iter().any(|t| t == "4"), "no gap fill: {sent:?}");
    assert!(sent.iter().any(|t| t == "2"), "no resend request: {sent:?}");
    let resent = metric(
        &app.url(""),
        "ordergate_fix_resent_total{kind=\"poss_dup\"}",
    )
    .await;
    assert!(resent >= 5.0);
}
