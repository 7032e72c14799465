//! The FIX session store's contract: what every backend's [`FixStore`] must do, on
//! each backend.
//!
//! [`FixStore`]: ordergate::store::fix::FixStore

use ordergate::store::fix::SentMessage;
use uuid::Uuid;

use crate::backends::Backend;

const SESSION: &str = "FIX.4.4:OG->OMS";

fn message(seq: u64, order_id: Option<Uuid>, sent_at_ms: i64) -> SentMessage {
    SentMessage {
        seq,
        msg_type: if order_id.is_some() { "D" } else { "0" }.to_owned(),
        order_id,
        sent_at_ms,
        bytes: format!("message {seq}").into_bytes(),
    }
}

pub async fn a_new_session_starts_at_one_and_each_take_raises_its_epoch(b: Backend) {
    let first = b.fix.take_session(SESSION).await.expect("take");
    assert_eq!((first.next_out, first.next_in), (1, 1));
    let second = b.fix.take_session(SESSION).await.expect("take");
    assert_eq!((second.next_out, second.next_in), (1, 1));
    assert!(second.epoch > first.epoch);
}

pub async fn sent_messages_move_the_numbers_and_come_back_in_order(b: Backend) {
    let taken = b.fix.take_session(SESSION).await.expect("take");
    let order = Uuid::now_v7();
    let sent = vec![
        message(1, None, 10),
        message(2, Some(order), 11),
        message(3, None, 12),
    ];
    let ours = b
        .fix
        .record_sent(SESSION, taken.epoch, sent.clone(), 7)
        .await
        .expect("record");
    assert!(ours);
    let again = b.fix.take_session(SESSION).await.expect("take");
    assert_eq!((again.next_out, again.next_in), (4, 7));
    let stored = b.fix.sent_between(SESSION, 2, 3).await.expect("read");
    assert_eq!(stored, sent[1..].to_vec());
    let other = Uuid::now_v7();
    let went_out = b
        .fix
        .orders_sent(SESSION, vec![order, other])
        .await
        .expect("read");
    assert_eq!(went_out.into_iter().collect::<Vec<_>>(), [order]);
    assert!(
        b.fix
            .orders_sent("FIX.4.4:X->Y", vec![order])
            .await
            .expect("read")
            .is_empty()
    );
}

pub async fn a_write_of_an_older_epoch_changes_nothing(b: Backend) {
    let old = b.fix.take_session(SESSION).await.expect("take");
    let new = b.fix.take_session(SESSION).await.expect("take");
    let fenced = b
        .fix
        .record_sent(
            SESSION,
            old.epoch,
            vec![message(1, Some(Uuid::now_v7()), 1)],
            9,
        )
        .await
        .expect("record");
    assert!(!fenced);
    let received = b
        .fix
        .record_received(SESSION, old.epoch, 9)
        .await
        .expect("record");
    assert!(!received);
    assert!(
        b.fix
            .sent_between(SESSION, 1, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        !b.fix
            .record_received(SESSION, new.epoch + 1, 5)
            .await
            .expect("record")
    );
    assert!(
        b.fix
            .record_received(SESSION, new.epoch, 5)
            .await
            .expect("record")
    );
    let now = b.fix.take_session(SESSION).await.expect("take");
    assert_eq!((now.next_out, now.next_in), (1, 5));
}

pub async fn the_outgoing_number_never_moves_back_through_a_send(b: Backend) {
    let taken = b.fix.take_session(SESSION).await.expect("take");
    let far = vec![message(50, None, 1)];
    assert!(
        b.fix
            .record_sent(SESSION, taken.epoch, far, 1)
            .await
            .expect("record")
    );
    let near = vec![message(3, None, 2)];
    assert!(
        b.fix
            .record_sent(SESSION, taken.epoch, near, 1)
            .await
            .expect("record")
    );
    let now = b.fix.take_session(SESSION).await.expect("take");
    assert_eq!(now.next_out, 51);
}

pub async fn pruning_deletes_old_messages_a_batch_at_a_time(b: Backend) {
    let taken = b.fix.take_session(SESSION).await.expect("take");
    let sent: Vec<SentMessage> = (1..=10)
        .map(|seq| message(seq, None, seq as i64 * 100))
        .collect();
    assert!(
        b.fix
            .record_sent(SESSION, taken.epoch, sent, 1)
            .await
            .expect("record")
    );
    // Messages 1..=7 were sent before 750; three at a time.
    assert_eq!(b.fix.prune_sent(SESSION, 750, 3).await.expect("prune"), 3);
    assert_eq!(b.fix.prune_sent(SESSION, 750, 3).await.expect("prune"), 3);
    assert_eq!(b.fix.prune_sent(SESSION, 750, 3).await.expect("prune"), 1);
    assert_eq!(b.fix.prune_sent(SESSION, 750, 3).await.expect("prune"), 0);
    let left: Vec<u64> = b
        .fix
        .sent_between(SESSION, 1, 10)
        .await
        .expect("read")
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(left, [8, 9, 10]);
}

each_backend!(
    a_new_session_starts_at_one_and_each_take_raises_its_epoch,
    sent_messages_move_the_numbers_and_come_back_in_order,
    a_write_of_an_older_epoch_changes_nothing,
    the_outgoing_number_never_moves_back_through_a_send,
    pruning_deletes_old_messages_a_batch_at_a_time,
);

/// On PostgreSQL one gateway holds a session at a time; letting go (the hold
/// dropped, as when the gateway dies and its connection closes) lets another take it.
#[tokio::test]
async fn on_postgres_one_holder_at_a_time() {
    let b = crate::backends::postgres().await;
    let other = crate::backends::postgres_on(&b).await;
    let hold = b.fix.hold_session(SESSION).await.expect("ask");
    assert!(hold.is_some());
    assert!(other.hold_session(SESSION).await.expect("ask").is_none());
    assert!(
        other
            .hold_session("FIX.4.4:A->B")
            .await
            .expect("ask")
            .is_some()
    );
    hold.expect("held").check().await.expect("still held");
    let mut taken = None;
    for _ in 0..500 {
        taken = other.hold_session(SESSION).await.expect("ask");
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        taken.is_some(),
        "the session was not free once its holder let go"
    );
}
