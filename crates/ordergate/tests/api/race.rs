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

on_each_backend!(concurrent_first_requests_for_one_key_place_exactly_one_order,);
