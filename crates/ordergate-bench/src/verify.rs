//! The invariant, checked with the server: every key answered with an order names
//! the same order the server has for it.

use std::time::Duration;

use futures::future::join_all;

use crate::client::{Client, Target};
use crate::scenario::{Keys, order_id};

/// Keys checked against the server, and the violations found (client-side conflicts
/// included).
pub struct Verdict {
    pub keys_checked: usize,
    pub violations: usize,
    /// Orders beyond the first that answers named, over all keys.
    pub duplicate_orders: usize,
    /// The most orders that answers named for one key (1 when there is no conflict).
    pub most_orders_for_one_key: usize,
}

/// With `lookup` off (a target that cannot be asked for a key's order, such as the
/// old worker) only what the clients saw counts.
pub async fn check(
    target: &Target,
    keys: &Keys,
    connections: usize,
    lookup: bool,
) -> anyhow::Result<Verdict> {
    let answered = keys.answered();
    let conflicts = keys.conflicts();
    let (duplicate_orders, most) = (conflicts.extra_orders, conflicts.most_for_one_key);
    let conflicts = conflicts.keys;
    if !lookup {
        return Ok(Verdict {
            keys_checked: answered.len(),
            violations: conflicts,
            duplicate_orders,
            most_orders_for_one_key: most,
        });
    }
    let workers = connections.clamp(1, 64);
    let chunk = answered.len().div_ceil(workers).max(1);
    let checks = answered.chunks(chunk).map(|part| {
        let target = target.clone();
        async move {
            let mut client = Client::new(target, Duration::from_secs(10));
            let mut mismatches = 0;
            for (key, expected) in part {
                let found = client.get_by_key(key).await?;
                let status = found.as_ref().map(|a| a.status);
                let on_server = found.and_then(|a| order_id(&a.body));
                if on_server.as_deref() != Some(expected.as_str()) {
                    tracing::error!(%key, %expected, ?on_server, ?status, "server and client disagree");
                    mismatches += 1;
                }
            }
            Ok::<_, anyhow::Error>(mismatches)
        }
    });
    let mut mismatches = 0;
    for result in join_all(checks).await {
        mismatches += result?;
    }
    Ok(Verdict {
        keys_checked: answered.len(),
        violations: mismatches + conflicts,
        duplicate_orders,
        most_orders_for_one_key: most,
    })
}
