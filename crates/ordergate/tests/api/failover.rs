//! What a failover does to the gateway, on PostgreSQL servers of the test's own:
//! - a primary whose standby is gone keeps every commit waiting
//!   (`synchronous_standby_names` names a standby that never connects), as a zombie
//!   primary does after a failover elsewhere; a commit whose wait is cancelled is
//!   reported by PostgreSQL as a success, with only a WARNING notice, and the gateway
//!   must not acknowledge it;
//! - a primary demoted under the gateway refuses writes on the connections the pool
//!   holds to it, and those must give way to connections to the new primary.

use std::time::{Duration, Instant};

use crate::own_postgres::Primary;
use crate::process;

/// `ordergate serve` in open mode on a loopback port, on the database at `url`.
fn gateway_on(url: &str, extra: &[&str]) -> process::Gateway {
    let mut command = process::command(&["--listen", "127.0.0.1:0", "--database", url]);
    command.args(extra);
    process::serve(command)
}

/// The standby is gone, a placement's commit waits for it, and the wait is cancelled
/// (as an operator or a tool unsticks a zombie primary): PostgreSQL reports the
/// commit as done, but the order is answered 503, never 201. Once replication is
/// healthy again, the client's retry with the same key gets the one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_wait_for_the_standby_was_cancelled_is_not_acknowledged() {
    let primary = Primary::start();
    let url = primary.url();
    let gw = gateway_on(&url, &[]);
    primary.wait_for_standby("ghost");
    let client = reqwest::Client::new();
    let orders = gw.url("/orders");
    let posting = tokio::spawn({
        let (client, orders) = (client.clone(), orders.clone());
        async move { process::post_order(&client, &orders, "cancelled-wait").await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while primary.waiting_commits() == 0 {
        if posting.is_finished() {
            let answer = posting.await.expect("task");
            panic!(
                "answered before its commit waited: {answer:?}\n{}",
                gw.log_text()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the placement's commit waits for the standby"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!posting.is_finished(), "no answer while the commit waits");
    primary.sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
    let (status, _, body) = posting.await.expect("task").expect("an answer");
    assert_eq!(
        status,
        503,
        "a commit that may not be on any standby is not acknowledged: {}",
        String::from_utf8_lossy(&body)
    );
    let stored = primary.sql("SELECT count(*) FROM orders");
    assert_eq!(stored, "1", "PostgreSQL did commit it locally");

    primary.wait_for_standby("");
    let (status, replay, _) = process::post_order(&client, &orders, "cancelled-wait")
        .await
        .expect("an answer");
    assert_eq!((status, replay), (201, true), "the retry settles it");
    assert_eq!(primary.sql("SELECT count(*) FROM orders"), "1");
    let (status, replay, _) = process::post_order(&client, &orders, "healthy")
        .await
        .expect("an answer");
    assert_eq!(
        (status, replay),
        (201, false),
        "healthy commits are acknowledged"
    );
}

/// A multi-host URL with `target_session_attrs=read-write`, and the primary demoted
/// under the gateway (every transaction there read-only from now on) while another
/// server takes writes: the pooled connections to the old primary are dropped when it
/// refuses a write, not reused, and the client's retries reach the new primary with no
/// restart of the gateway. No key is placed on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_demoted_primary_are_dropped_and_writes_find_the_new_one() {
    let (old, new) = (Primary::start(), Primary::start());
    // The new primary's schema, as a gateway creates it.
    drop(gateway_on(&new.url(), &[]));
    let url = format!(
        "postgres://postgres@{},{}/postgres?target_session_attrs=read-write",
        old.host(),
        new.host()
    );
    let gw = gateway_on(&url, &[]);
    let client = reqwest::Client::new();
    let orders = gw.url("/orders");
    let (status, _, _) = process::post_order(&client, &orders, "before")
        .await
        .expect("answer");
    assert_eq!(status, 201);
    assert_eq!(
        old.sql("SELECT count(*) FROM orders"),
        "1",
        "placed on the first host"
    );

    old.make_read_only();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    loop {
        let (status, _, body) = process::post_order(&client, &orders, "after")
            .await
            .expect("answer");
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "still refused after {refused} tries: the old primary's connections were reused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let key_on =
        |server: &Primary| server.sql("SELECT count(*) FROM orders WHERE idem_key = 'after'");
    assert_eq!((key_on(&old), key_on(&new)), ("0".into(), "1".into()));
    assert_eq!(
        old.sql("SELECT count(*) FROM orders"),
        "1",
        "nothing more written there"
    );
}

/// The standby is gone and nobody cancels the waiting commit (PostgreSQL turns
/// `statement_timeout` off for that wait): the answer still comes once the lease and
/// the commit's one-second grace have passed, as a 503, not when the standby returns.
/// Once replication is healthy again the gateway acknowledges orders, with no restart,
/// and the stuck key's retry gets its one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_waiting_for_a_standby_is_answered_within_the_lease() {
    let primary = Primary::start();
    let url = primary.url();
    let gw = gateway_on(&url, &["--lease-ttl", "2s"]);
    primary.wait_for_standby("ghost");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let orders = gw.url("/orders");
    let sent = Instant::now();
    let answer = process::post_order(&client, &orders, "stuck").await;
    let waited = sent.elapsed();
    let (status, _, _) = answer.expect("an answer, not a request that waits with the commit");
    assert_eq!(status, 503);
    // The lease (2 s) and the commit's grace (1 s), with room for a busy machine.
    assert!(waited < Duration::from_secs(8), "answered after {waited:?}");
    assert_eq!(
        primary.waiting_commits(),
        1,
        "the commit still waits on the server"
    );

    primary.wait_for_standby("");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _) = process::post_order(&client, &orders, "after")
            .await
            .expect("an answer");
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway acknowledges orders again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, replay, _) = process::post_order(&client, &orders, "stuck")
        .await
        .expect("an answer");
    assert_eq!(
        (status, replay),
        (201, true),
        "the stuck commit completed; its retry replays it"
    );
}
