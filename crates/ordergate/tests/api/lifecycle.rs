//! The store's lifecycle: closing it finishes its work before it lets go of the file.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ordergate::clock::SystemClock;
use ordergate::store::Store;
use ordergate::store::sqlite::SqliteStore;
use ordergate_core::Placement;

use crate::store_contract::{BODY, TTL, new_order};

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
    let mut placing: FuturesUnordered<_> = (0..500)
        .map(|i| store.place(new_order("t", &format!("k{i}"), BODY, TTL)))
        .collect();
    // One poll hands every order to the writer's queue (unconstrained: tokio's
    // cooperative budget would otherwise leave sends for later polls).
    assert!(futures::poll!(tokio::task::unconstrained(placing.next())).is_pending());

    let second_process = async {
        loop {
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
        while let Some(answer) = placing.next().await {
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
