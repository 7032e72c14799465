//! The SQLite store's life with its file: closing it finishes its work before it lets
//! go of the file, and a file taken away under it stops every write it would make.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ordergate::clock::SystemClock;
use ordergate::store::sqlite::SqliteStore;
use ordergate::store::{DeliveryResult, RecordStore, StoreError, Stores};
use ordergate_core::Placement;

use crate::backends::{BODY, TTL, new_order};

fn orders_in(path: &std::path::Path) -> usize {
    let conn = rusqlite::Connection::open(path).expect("open");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM orders", [], |row| row.get(0))
        .expect("count");
    usize::try_from(n).expect("count")
}

/// A second process takes the file with the same exclusive lock: the moment that
/// lock is free, every order the store took must already be in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_sqlite_store_releases_its_file_only_after_its_last_commit() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ordergate.db");
    let store = SqliteStore::open(&path, Arc::new(SystemClock)).expect("open");
    // Every order is handed to the writer's queue before the close: each placement is
    // polled once here (unconstrained: tokio's cooperative budget would otherwise
    // leave sends for later polls). One the writer answers at once is kept as it is.
    let placing: FuturesUnordered<_> = FuturesUnordered::new();
    let mut early = Vec::new();
    for i in 0..500 {
        let mut place = Box::pin(store.place(new_order("t", &format!("k{i}"), BODY, TTL)));
        match futures::poll!(tokio::task::unconstrained(place.as_mut())) {
            std::task::Poll::Ready(answer) => early.push(answer),
            std::task::Poll::Pending => placing.push(place),
        }
    }
    let mut placing = placing;

    let second_process = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the closing store kept its file locked for 60 s"
            );
            let file = std::fs::File::open(&path).expect("database file");
            if file.try_lock().is_ok() {
                // Counted while the lock is ours: nobody else can write meanwhile.
                return orders_in(&path);
            }
            tokio::task::yield_now().await;
        }
    };
    let answers = async {
        let mut placed = 0;
        let mut answers = futures::stream::iter(early).chain(&mut placing);
        while let Some(answer) = answers.next().await {
            if answer.expect("placed before the store closed") == Placement::Placed {
                placed += 1;
            }
        }
        placed
    };
    let (placed, (), at_release) = tokio::join!(answers, store.close(), second_process);
    assert_eq!(
        placed, 500,
        "every order queued before the close was placed"
    );
    assert_eq!(
        at_release, placed,
        "the lock was free only once every placed order was committed"
    );
}

/// Delivery outcomes are writes like placements: with the file moved away, neither
/// goes into the file that is no longer the database, and the store is unready.
#[tokio::test]
async fn a_moved_database_file_stops_delivery_writes_and_placements_alike() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("moved.db");
    let stores = Stores::of(SqliteStore::open(&path, Arc::new(SystemClock)).expect("open"));
    let mut new = new_order("t", "deliver-me", BODY, TTL);
    new.deliver = true;
    let placed = stores.records.place(new.clone()).await.expect("place");
    assert_eq!(placed, Placement::Placed);
    let now_ms = i64::MAX / 2;
    let leased = stores.outbox.lease_due(1, now_ms, now_ms + 1).await;
    let leased = leased.expect("lease");
    std::fs::rename(&path, dir.path().join("elsewhere.db")).expect("move the file away");
    let (order_id, sequence) = (leased[0].order_id, leased[0].sequence);
    let delivered = DeliveryResult::Delivered {
        order_id,
        sequence,
        at_ms: now_ms,
    };
    let recorded = stores.outbox.record_deliveries(vec![delivered]).await;
    assert!(
        matches!(recorded, Err(StoreError::Unavailable(_))),
        "{recorded:?}"
    );
    let late = stores
        .records
        .place(new_order("t", "late", BODY, TTL))
        .await;
    assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    assert!(stores.records.ping().await.is_err(), "unready");
    // Back in place, the file shows the outcome was written nowhere.
    std::fs::rename(dir.path().join("elsewhere.db"), &path).expect("move the file back");
    let status = stores.outbox.delivery_status("t", order_id).await;
    let status = status.expect("status").expect("a delivery");
    assert_eq!((status.state.as_str(), status.attempts), ("pending", 0));
    stores.records.close().await;
}
