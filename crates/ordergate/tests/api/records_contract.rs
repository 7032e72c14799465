//! The records contract: what every backend's [`RecordStore`] must do, on each backend.
//!
//! [`RecordStore`]: ordergate::store::RecordStore

use std::time::Duration;

use ordergate::store::{NewOrder, StoreError};
use ordergate_core::{Placement, ScopedKey};

use crate::backends::{BODY, Backend, TTL, new_order, scoped};

pub async fn a_placed_order_is_finished_and_readable(b: Backend) {
    let new = new_order("t", "k", BODY, TTL);
    let id = new.order.order_id;
    assert_eq!(
        b.store.place(new.clone()).await.expect("place"),
        Placement::Placed
    );
    let record = b
        .store
        .live_record(&scoped("t", "k"))
        .await
        .expect("read")
        .expect("finished");
    assert_eq!(record.record.response, new.response);
    assert_eq!(record.record.fingerprint, new.fingerprint);
    let ttl_ms = i64::try_from(TTL.as_millis()).expect("ms");
    assert!(record.ms_left <= ttl_ms && record.ms_left > ttl_ms - 5_000);
    let by_id = b.store.order_by_id("t", id).await.expect("read");
    assert_eq!(by_id, Some(new.response.body.clone()));
    assert_eq!(
        b.store.order_by_key(&scoped("t", "k")).await.expect("read"),
        by_id
    );
    assert_eq!(b.store.order_by_id("other", id).await.expect("read"), None);
    assert_eq!(
        b.store
            .live_record(&scoped("other", "k"))
            .await
            .expect("read"),
        None
    );
}

pub async fn a_second_placement_of_a_live_key_returns_the_first(b: Backend) {
    let first = new_order("t", "k", BODY, TTL);
    b.store.place(first.clone()).await.expect("place");
    let second = new_order("t", "k", BODY, TTL);
    match b.store.place(second.clone()).await.expect("place") {
        Placement::Exists(found) => assert_eq!(found.record.response, first.response),
        other => panic!("expected the first record, got {other:?}"),
    }
    assert_eq!(
        b.store
            .order_by_id("t", second.order.order_id)
            .await
            .expect("read"),
        None
    );
}

pub async fn an_abandoned_order_is_not_placed(b: Backend) {
    let new = new_order("t", "k", BODY, TTL);
    assert!(new.lease.abandon());
    assert_eq!(
        b.store.place(new).await.expect("place"),
        Placement::Abandoned
    );
    assert_eq!(
        b.store.order_by_key(&scoped("t", "k")).await.expect("read"),
        None
    );
}

pub async fn an_expired_record_is_gone_before_the_purge_and_the_key_is_new_again(b: Backend) {
    let old = new_order("t", "k", BODY, Duration::from_secs(10));
    b.store.place(old.clone()).await.expect("place");
    b.age(10_000).await;
    assert_eq!(
        b.store.live_record(&scoped("t", "k")).await.expect("read"),
        None
    );
    let new = new_order("t", "k", BODY, Duration::from_secs(10));
    assert_eq!(
        b.store.place(new.clone()).await.expect("place"),
        Placement::Placed
    );
    // Orders are kept; the lookup by key gives the newest.
    assert!(
        b.store
            .order_by_id("t", old.order.order_id)
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(
        b.store.order_by_key(&scoped("t", "k")).await.expect("read"),
        Some(new.response.body.clone())
    );
}

pub async fn the_purge_deletes_only_expired_records(b: Backend) {
    for i in 0..7 {
        b.store
            .place(new_order(
                "t",
                &format!("old{i}"),
                BODY,
                Duration::from_secs(10),
            ))
            .await
            .expect("place");
    }
    b.store
        .place(new_order("t", "fresh", BODY, Duration::from_secs(100)))
        .await
        .expect("place");
    b.age(10_000).await;
    // Re-claimed after expiry: its new record must survive the purge.
    let reclaimed = new_order("t", "old0", BODY, Duration::from_secs(10));
    b.store.place(reclaimed.clone()).await.expect("place");
    assert_eq!(
        b.store.purge_expired(4).await.expect("purge"),
        4,
        "small batches"
    );
    assert_eq!(b.store.purge_expired(4).await.expect("purge"), 2);
    assert_eq!(b.store.purge_expired(4).await.expect("purge"), 0);
    let kept = b
        .store
        .live_record(&scoped("t", "old0"))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.record.response, reclaimed.response);
    assert!(
        b.store
            .live_record(&scoped("t", "fresh"))
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        b.store
            .order_by_key(&scoped("t", "old3"))
            .await
            .expect("read")
            .is_some(),
        "orders stay"
    );
}

pub async fn a_failing_placement_fails_alone_and_leaves_no_claim(b: Backend) {
    let good: Vec<NewOrder> = (0..8)
        .map(|i| new_order("t", &format!("good{i}"), BODY, TTL))
        .collect();
    // Same order id as another order: its insert must fail, after its key was claimed.
    let mut clash = new_order("t", "clash", BODY, TTL);
    clash.order.order_id = good[3].order.order_id;
    let placements = good.iter().cloned().map(|n| b.store.place(n));
    let (results, clashed) =
        tokio::join!(futures::future::join_all(placements), b.store.place(clash));
    let placed = results
        .iter()
        .filter(|r| matches!(r, Ok(Placement::Placed)))
        .count();
    assert_eq!(placed, good.len(), "the others in the batch are placed");
    assert!(clashed.is_err());
    assert_eq!(
        b.store
            .live_record(&scoped("t", "clash"))
            .await
            .expect("read"),
        None,
        "no half-done claim"
    );
    for n in &good {
        let key = ScopedKey::new("t", n.order.idempotency_key.clone());
        assert!(b.store.live_record(&key).await.expect("read").is_some());
    }
}

pub async fn a_corrupt_stored_record_is_a_broken_invariant_not_an_answer(b: Backend) {
    let placed = b.store.place(new_order("t", "bent", BODY, TTL)).await;
    assert!(matches!(placed, Ok(Placement::Placed)), "{placed:?}");
    b.tamper("UPDATE idempotency_keys SET status = 7").await;
    let read = b.store.live_record(&scoped("t", "bent")).await;
    assert!(matches!(read, Err(StoreError::Invariant(_))), "{read:?}");
    let again = b.store.place(new_order("t", "bent", BODY, TTL)).await;
    assert!(matches!(again, Err(StoreError::Invariant(_))), "{again:?}");
}

pub async fn ping_answers(b: Backend) {
    b.store.ping().await.expect("ping");
}

pub async fn a_closed_store_finishes_what_it_took_and_takes_nothing_more(b: Backend) {
    let first = new_order("t", "close-first", BODY, TTL);
    let taken = b.store.place(first.clone()).await;
    assert!(matches!(taken, Ok(Placement::Placed)), "{taken:?}");
    let orders: Vec<NewOrder> = (0..64)
        .map(|i| new_order("t", &format!("close{i}"), BODY, TTL))
        .collect();
    let placing = futures::future::join_all(orders.iter().cloned().map(|n| b.store.place(n)));
    let (placed, ()) = tokio::join!(placing, b.store.close());
    let after = b.store.place(new_order("t", "late", BODY, TTL)).await;
    assert!(matches!(after, Err(StoreError::Closed)), "{after:?}");
    b.store.close().await;
    // What the store said it placed is committed; what it refused is not there.
    let reopened = b.reopen().await;
    let stored = |new: &NewOrder| {
        let store = reopened.clone();
        let (tenant, id) = (new.tenant.clone(), new.order.order_id);
        async move { store.order_by_id(&tenant, id).await.expect("read") }
    };
    assert_eq!(stored(&first).await, Some(first.response.body.clone()));
    for (new, result) in orders.iter().zip(&placed) {
        match result {
            Ok(Placement::Placed) => {
                assert_eq!(stored(new).await, Some(new.response.body.clone()), "placed")
            }
            Err(StoreError::Closed) => assert_eq!(stored(new).await, None, "refused"),
            other => panic!("placed, or refused as closed: {other:?}"),
        }
    }
    reopened.close().await;
}

each_backend!(
    a_placed_order_is_finished_and_readable,
    a_second_placement_of_a_live_key_returns_the_first,
    an_abandoned_order_is_not_placed,
    an_expired_record_is_gone_before_the_purge_and_the_key_is_new_again,
    the_purge_deletes_only_expired_records,
    a_failing_placement_fails_alone_and_leaves_no_claim,
    a_corrupt_stored_record_is_a_broken_invariant_not_an_answer,
    ping_answers,
    a_closed_store_finishes_what_it_took_and_takes_nothing_more,
);
