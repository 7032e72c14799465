//! Many concurrent clients on one fresh key: exactly one order, every other answer a
//! replay of it (or a 409 asking to retry).

use std::collections::HashSet;

use futures::future::join_all;

use crate::helpers::*;

const CLIENTS: usize = 24;
const ROUNDS: usize = 30;

async fn concurrent_first_requests_for_one_key_place_exactly_one_order(db: Db) {
    let app = spawn_app(db).await;
    for round in 0..ROUNDS {
        let key = format!("race-{round}");
        let answers = join_all((0..CLIENTS).map(|_| async {
            let response = app.post(&key, ORDER).await;
            let status = response.status().as_u16();
            let replay = response.headers().get("idempotent-replay").is_some();
            let retry_after = response.headers().get("retry-after").cloned();
            (
                status,
                replay,
                retry_after,
                response.bytes().await.expect("body"),
            )
        }))
        .await;
        let mut created = 0;
        let mut bodies = HashSet::new();
        for (status, replay, retry_after, body) in answers {
            match status {
                201 => {
                    created += usize::from(!replay);
                    bodies.insert(body);
                }
                409 => assert_eq!(retry_after.expect("Retry-After"), "1"),
                other => panic!("unexpected status {other} in round {round}"),
            }
        }
        assert_eq!(
            created, 1,
            "exactly one request places the order (round {round})"
        );
        assert_eq!(
            bodies.len(),
            1,
            "every 201 carries the same order (round {round})"
        );
        let body = bodies.into_iter().next().expect("one body");
        let found = app
            .get_as(ACME, &format!("/orders?idempotencyKey={key}"))
            .await;
        assert_eq!(found.bytes().await.expect("body"), body);
    }
    assert_eq!(
        app.orders_per_key().await,
        vec![1; ROUNDS],
        "one row per key in the database"
    );
    app.stop().await;
}

/// Clients with short timeouts that retry the same key until they get an answer
/// (as the contract tells them to after a timeout, a 409 or a 503): every answer a
/// key gets names one order, and the key has exactly one.
async fn clients_that_time_out_and_retry_still_get_one_order_per_key(db: Db) {
    const RETRYING_CLIENTS: usize = 12;
    const KEYS: usize = 20;
    let app = spawn_app(db).await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(150))
        .build()
        .expect("client");
    for round in 0..KEYS {
        let key = format!("retry-race-{round}");
        let ids = join_all((0..RETRYING_CLIENTS).map(|_| async {
            for _ in 0..200 {
                let sent = try_post_order(&client, &app.url("/orders"), ACME, &key).await;
                let Ok(response) = sent else { continue };
                match response.status().as_u16() {
                    201 => match response.bytes().await {
                        Ok(body) => return order_id(&body),
                        Err(_) => continue,
                    },
                    409 | 503 => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    other => panic!("unexpected status {other} for {key}"),
                }
            }
            panic!("{key} got no answer in 200 tries");
        }))
        .await;
        let distinct: HashSet<String> = ids.into_iter().collect();
        assert_eq!(distinct.len(), 1, "every answer names one order ({key})");
    }
    assert_eq!(
        app.orders_per_key().await,
        vec![1; KEYS],
        "one order per key"
    );
    app.stop().await;
}

on_each_target!(
    concurrent_first_requests_for_one_key_place_exactly_one_order,
    clients_that_time_out_and_retry_still_get_one_order_per_key,
);
