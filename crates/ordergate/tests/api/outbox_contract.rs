//! The outbox contract: what every backend's [`Outbox`] must do, on each backend.
//! Time is the caller's here (the deliverer passes its clock's milliseconds), so
//! both backends run on the same numbers.
//!
//! [`Outbox`]: ordergate::store::Outbox

use ordergate::store::{Backlog, DeliveryResult, DeliveryStatus, NewOrder, PendingDelivery};
use ordergate_core::Placement;
use uuid::Uuid;

use crate::backends::{BODY, Backend, TTL, new_order};

/// When [`new_order`] accepts its orders, and so when their deliveries fall due.
const ACCEPTED: i64 = 1_700_000_000_000;
/// A lease long enough to outlast every case.
const LEASE: i64 = 30_000;

/// Places an order under `key` for delivery, accepted `late_ms` after [`ACCEPTED`].
async fn place_for_delivery(b: &Backend, key: &str, late_ms: i64) -> NewOrder {
    let mut new = new_order("t", key, BODY, TTL);
    new.deliver = true;
    new.order.accepted_at_ms = ACCEPTED + late_ms;
    let placed = b.store.place(new.clone()).await.expect("place");
    assert_eq!(placed, Placement::Placed);
    new
}

async fn lease(b: &Backend, limit: usize, now_ms: i64) -> Vec<PendingDelivery> {
    b.outbox
        .lease_due(limit, now_ms, now_ms + LEASE)
        .await
        .expect("lease")
}

fn ids(leased: &[PendingDelivery]) -> Vec<Uuid> {
    leased.iter().map(|d| d.order_id).collect()
}

async fn status(b: &Backend, id: Uuid) -> Option<DeliveryStatus> {
    b.outbox.delivery_status("t", id).await.expect("status")
}

async fn record(b: &Backend, result: DeliveryResult) {
    b.outbox
        .record_deliveries(vec![result])
        .await
        .expect("record");
}

pub async fn an_order_placed_for_delivery_is_due_and_one_placed_without_is_not(b: Backend) {
    let new = place_for_delivery(&b, "with", 0).await;
    let without = new_order("t", "without", BODY, TTL);
    b.store.place(without.clone()).await.expect("place");
    let due = lease(&b, 10, ACCEPTED).await;
    assert_eq!(ids(&due), [new.order.order_id]);
    assert_eq!(due[0].tenant, "t");
    assert_eq!(due[0].body, new.response.body, "the order JSON of the 201");
    assert_eq!((due[0].accepted_at_ms, due[0].attempts), (ACCEPTED, 0));
    let pending = status(&b, new.order.order_id).await.expect("a delivery");
    assert_eq!((pending.state.as_str(), pending.attempts), ("pending", 0));
    assert_eq!(status(&b, without.order.order_id).await, None);
    let other_tenant = b.outbox.delivery_status("other", new.order.order_id).await;
    assert_eq!(other_tenant.expect("status"), None);
    let backlog = b.outbox.delivery_backlog().await.expect("backlog");
    let oldest = Some(ACCEPTED);
    assert_eq!(
        backlog,
        Backlog {
            pending: 1,
            oldest_accepted_at_ms: oldest
        }
    );
}

pub async fn nothing_is_due_before_it_was_accepted(b: Backend) {
    place_for_delivery(&b, "later", 1_000).await;
    assert!(lease(&b, 10, ACCEPTED + 999).await.is_empty());
    assert_eq!(lease(&b, 10, ACCEPTED + 1_000).await.len(), 1);
}

pub async fn the_oldest_due_are_leased_first(b: Backend) {
    let third = place_for_delivery(&b, "third", 20).await;
    let first = place_for_delivery(&b, "first", 0).await;
    let second = place_for_delivery(&b, "second", 10).await;
    let now = ACCEPTED + 100;
    assert_eq!(
        ids(&lease(&b, 2, now).await),
        [first.order.order_id, second.order.order_id]
    );
    assert_eq!(ids(&lease(&b, 2, now).await), [third.order.order_id]);
}

pub async fn a_leased_delivery_is_not_leased_again_until_its_lease_ends(b: Backend) {
    for i in 0..3 {
        place_for_delivery(&b, &format!("l{i}"), 0).await;
    }
    let now = ACCEPTED + 1;
    let until = now + 1_000;
    let leased = b.outbox.lease_due(2, now, until).await.expect("lease");
    assert_eq!(leased.len(), 2);
    let rest = b.outbox.lease_due(10, now + 1, until).await.expect("lease");
    assert_eq!(rest.len(), 1, "only the one not leased");
    assert!(!ids(&leased).contains(&rest[0].order_id));
    assert!(
        lease(&b, 10, until - 1).await.is_empty(),
        "all three are leased"
    );
    assert_eq!(lease(&b, 10, until).await.len(), 3, "every lease has ended");
}

pub async fn a_delivered_order_is_never_due_again(b: Backend) {
    let new = place_for_delivery(&b, "done", 0).await;
    let leased = lease(&b, 10, ACCEPTED).await;
    let at_ms = ACCEPTED + 7;
    let (order_id, sequence) = (leased[0].order_id, leased[0].sequence);
    record(
        &b,
        DeliveryResult::Delivered {
            order_id,
            sequence,
            at_ms,
        },
    )
    .await;
    let done = status(&b, new.order.order_id).await.expect("a delivery");
    assert_eq!((done.state.as_str(), done.attempts), ("delivered", 1));
    assert_eq!((done.delivered_at_ms, done.last_error), (Some(at_ms), None));
    assert!(lease(&b, 10, ACCEPTED + 10 * LEASE).await.is_empty());
    let backlog = b.outbox.delivery_backlog().await.expect("backlog");
    assert_eq!(backlog, Backlog::default());
}

pub async fn a_retry_ends_the_lease_and_is_due_at_its_time(b: Backend) {
    let new = place_for_delivery(&b, "again", 0).await;
    let order_id = new.order.order_id;
    assert_eq!(ids(&lease(&b, 10, ACCEPTED).await), [order_id]);
    let next_at_ms = ACCEPTED + 50;
    let error = "503 from the sink".to_owned();
    record(
        &b,
        DeliveryResult::Retry {
            order_id,
            error: error.clone(),
            next_at_ms,
        },
    )
    .await;
    let retrying = status(&b, order_id).await.expect("a delivery");
    assert_eq!((retrying.state.as_str(), retrying.attempts), ("pending", 1));
    assert_eq!(retrying.last_error, Some(error));
    assert!(
        lease(&b, 10, next_at_ms - 1).await.is_empty(),
        "not before its time"
    );
    let again = lease(&b, 10, next_at_ms).await;
    assert_eq!(
        ids(&again),
        [order_id],
        "due at its time, inside the old lease"
    );
    assert_eq!(again[0].attempts, 1);
}

pub async fn a_failed_delivery_is_never_due_again(b: Backend) {
    let new = place_for_delivery(&b, "given-up", 0).await;
    let order_id = new.order.order_id;
    lease(&b, 10, ACCEPTED).await;
    let error = "400 from the sink".to_owned();
    record(
        &b,
        DeliveryResult::Failed {
            order_id,
            error: error.clone(),
        },
    )
    .await;
    let failed = status(&b, order_id).await.expect("a delivery");
    assert_eq!((failed.state.as_str(), failed.attempts), ("failed", 1));
    assert_eq!(
        (failed.last_error, failed.delivered_at_ms),
        (Some(error), None)
    );
    assert!(lease(&b, 10, ACCEPTED + 10 * LEASE).await.is_empty());
    let backlog = b.outbox.delivery_backlog().await.expect("backlog");
    assert_eq!(backlog, Backlog::default());
}

each_backend!(
    an_order_placed_for_delivery_is_due_and_one_placed_without_is_not,
    nothing_is_due_before_it_was_accepted,
    the_oldest_due_are_leased_first,
    a_leased_delivery_is_not_leased_again_until_its_lease_ends,
    a_delivered_order_is_never_due_again,
    a_retry_ends_the_lease_and_is_due_at_its_time,
    a_failed_delivery_is_never_due_again,
);
