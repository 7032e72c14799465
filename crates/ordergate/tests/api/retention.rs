//! `--result-ttl`: a key's record expires by the store's clock; orders stay.

use std::sync::Arc;

use ordergate::clock::ManualClock;

use crate::helpers::*;

#[tokio::test]
async fn after_the_result_ttl_the_key_is_new_again_and_the_old_order_stays() {
    let clock = ManualClock::starting_at(1_800_000_000_000);
    let app = spawn(Db::Sqlite, &["--result-ttl", "1h"], Arc::new(clock.clone())).await;
    let first = app.post("daily", ORDER).await.bytes().await.expect("body");
    clock.advance_ms(3_600_000 - 1);
    let replay = app.post("daily", ORDER).await;
    assert_eq!(
        replay.headers()["idempotent-replay"],
        "true",
        "still within the TTL"
    );
    clock.advance_ms(1);
    let second = app.post("daily", ORDER).await;
    assert_eq!(second.status(), 201);
    assert!(
        second.headers().get("idempotent-replay").is_none(),
        "a new order"
    );
    let second = second.bytes().await.expect("body");
    assert_ne!(order_id(&first), order_id(&second));
    let newest = app.get_as(ACME, "/orders?idempotencyKey=daily").await;
    assert_eq!(newest.bytes().await.expect("body"), second);
    let old = app
        .get_as(ACME, &format!("/orders/{}", order_id(&first)))
        .await;
    assert_eq!(old.bytes().await.expect("body"), first, "orders are kept");
    app.stop().await;
}
