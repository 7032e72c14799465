//! Placing orders on PostgreSQL, with group commit.
//!
//! A few worker tasks each take whatever orders have queued up and place them with one
//! statement ([`sql::PLACE_ORDERS`]), so concurrent requests share a round trip, the
//! executor's start-up and a commit. An order the batch statement cannot settle (the
//! batch failed, its key's record is expired, or the record was committed after the
//! statement's snapshot) is placed on its own with [`sql::PLACE_ORDER`]: one order's
//! trouble never decides another's outcome. An order placed while a commit's wait for
//! synchronous replication was cancelled is not acknowledged ([`super::notices`]).

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{Client, Pool};
use futures::future::join_all;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use ordergate_core::{LiveRecord, Placement};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::notices::SyncRepWatch;
use super::{is_lock_timeout, live_record_from_row, refused_as_read_only, retire, sql};
use crate::store::{NewOrder, StoreError};

/// Workers placing batches at once (each on its own connection).
const WORKERS: usize = 4;
/// Most orders in one statement.
const MAX_BATCH: usize = 64;
/// Single-order attempts when the key's record keeps changing under other writers.
const MAX_ROUNDS: usize = 3;
/// How long past the last lease of its batch a commit may take before the batch is
/// answered 503 and its connection dropped. `statement_timeout` ends a statement at the
/// lease, but PostgreSQL turns it off while a commit waits for a synchronous standby.
const COMMIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

type Reply = oneshot::Sender<Result<Placement, StoreError>>;

/// The queue in front of the placement workers; dropping it stops them.
pub struct Batcher {
    queue: mpsc::Sender<(NewOrder, Reply)>,
    stop: CancellationToken,
    workers: TaskTracker,
}

impl Batcher {
    pub fn spawn(pool: Pool, watch: Arc<SyncRepWatch>) -> Self {
        let (queue, jobs) = mpsc::channel(MAX_BATCH * WORKERS * 4);
        let jobs = Arc::new(Mutex::new(jobs));
        let (stop, workers) = (CancellationToken::new(), TaskTracker::new());
        for _ in 0..WORKERS {
            workers.spawn(work(
                pool.clone(),
                jobs.clone(),
                watch.clone(),
                stop.clone(),
            ));
        }
        workers.close();
        Self {
            queue,
            stop,
            workers,
        }
    }

    /// Ends the workers after the batches they are placing; orders still queued
    /// then fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.stop.cancel();
        self.workers.wait().await;
    }

    pub async fn place(&self, new: NewOrder) -> Result<Placement, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((new, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn work(
    pool: Pool,
    jobs: Arc<Mutex<mpsc::Receiver<(NewOrder, Reply)>>>,
    watch: Arc<SyncRepWatch>,
    stop: CancellationToken,
) {
    loop {
        let batch = {
            let mut queue = tokio::select! {
                queue = jobs.lock() => queue,
                () = stop.cancelled() => return,
            };
            let first = tokio::select! {
                first = queue.recv() => first,
                () = stop.cancelled() => return,
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        place_batch(&pool, &watch, batch).await;
    }
}

async fn place_batch(pool: &Pool, watch: &SyncRepWatch, batch: Vec<(NewOrder, Reply)>) {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            // One cause, shared by every order of the batch.
            let cause = Arc::new(e);
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::unavailable(cause.clone())));
            }
            return;
        }
    };
    let epoch = watch.epoch();
    // The lease is taken once a connection is in hand: waiting for one counts.
    let mut taken = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for (new, reply) in batch {
        if new.lease.take() {
            taken.push(new);
            replies.push(reply);
        } else {
            let _ = reply.send(Ok(Placement::Abandoned));
        }
    }
    let bound = taken
        .iter()
        .filter_map(|new| new.lease.deadline())
        .max()
        .map(|deadline| tokio::time::Instant::from_std(deadline) + COMMIT_GRACE);
    let placing = place_taken(&client, &taken, watch);
    let placed = match bound {
        Some(bound) => tokio::time::timeout_at(bound, placing).await.ok(),
        None => Some(placing.await),
    };
    let Some(results) = placed else {
        // A commit that outlives the lease (waiting for a standby that is gone, or a
        // server that stopped answering): the outcome is unknown, the client's retry
        // settles it, and the connection, stuck on it, is not used again.
        for reply in replies {
            let _ = reply.send(Err(StoreError::unavailable(
                "the commit did not finish within the lease: its outcome is unknown",
            )));
        }
        retire(client, "a placement's commit outlived its lease");
        drop_idle(pool);
        return;
    };
    let read_only = results
        .iter()
        .any(|result| result.as_ref().is_err_and(refused_as_read_only));
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(unless_commit_uncertain(result, watch, epoch));
    }
    if read_only {
        retire(client, "the database refused a write as read-only");
        drop_idle(pool);
    } else if watch.cancelled_since(epoch) {
        // Its standby is gone or a person is unsticking it: likely a zombie primary.
        retire(
            client,
            "a commit's wait for synchronous replication was cancelled",
        );
        drop_idle(pool);
    }
}

/// Drops every idle pooled connection: after one connection met a stuck or demoted
/// primary, the others are likely on it too, and new ones go through the fence.
fn drop_idle(pool: &Pool) {
    let dropped = pool.retain(|_, _| false).removed.len();
    if dropped > 0 {
        tracing::warn!(dropped, "dropped the idle database connections");
    }
}

/// The batch statement, then each order it did not settle on its own; one result per
/// order, in order.
async fn place_taken(
    client: &Client,
    taken: &[NewOrder],
    watch: &SyncRepWatch,
) -> Vec<Result<Placement, StoreError>> {
    let settled = match taken.len() {
        0 | 1 => HashMap::new(),
        _ => place_together(client, taken).await,
    };
    let each = taken.iter().map(|new| {
        let known = settled.get(&new.order.order_id).cloned();
        async move {
            match known {
                Some(placement) => Ok(placement),
                None => place_alone(client, new).await,
            }
        }
    });
    // Concurrent queries on one client are pipelined by tokio-postgres.
    let mut results = join_all(each).await;
    let replays = |r: &Result<Placement, StoreError>| matches!(r, Ok(Placement::Exists(_)));
    if results.iter().any(replays)
        && let Err(e) = super::confirm_durable(client, watch).await
    {
        let cause = Arc::new(e);
        for result in results.iter_mut().filter(|r| replays(r)) {
            *result = Err(StoreError::unavailable(cause.clone()));
        }
    }
    results
}

/// A placement committed while a wait for synchronous replication was cancelled may
/// be taken back by a failover: its outcome is unknown, not placed. So may a record
/// found in place of one (a replay), whose durability was confirmed in that window.
fn unless_commit_uncertain(
    result: Result<Placement, StoreError>,
    watch: &SyncRepWatch,
    epoch: u64,
) -> Result<Placement, StoreError> {
    match result {
        Ok(Placement::Placed | Placement::Exists(_)) if watch.cancelled_since(epoch) => {
            Err(StoreError::unavailable(
                "the commit's wait for synchronous replication was cancelled: \
                 committed locally, maybe not on a standby",
            ))
        }
        other => other,
    }
}

/// The batch statement; an empty map if it failed (everyone then goes alone).
async fn place_together(client: &Client, batch: &[NewOrder]) -> HashMap<Uuid, Placement> {
    let orders: Vec<&NewOrder> = batch.iter().collect();
    let columns = Columns::of(&orders);
    let rows = match client.prepare_cached(sql::PLACE_ORDERS).await {
        Ok(stmt) => client.query(&stmt, &columns.params()).await,
        Err(e) => Err(e),
    };
    match rows {
        Ok(rows) => rows.iter().filter_map(settled).collect(),
        Err(e) => {
            if !is_lock_timeout(&e) {
                tracing::warn!(error = %e, orders = orders.len(), "batch placement failed; placing one by one");
            }
            HashMap::new()
        }
    }
}

/// A batch row that settles its order: placed, or a live record holds the key. A row
/// that cannot be read settles nothing: its order goes alone, where a broken record
/// is reported as what it is.
fn settled(row: &Row) -> Option<(Uuid, Placement)> {
    let order_id: Uuid = row.try_get(0).ok()?;
    let fingerprint: Option<Vec<u8>> = row.try_get(1).ok()?;
    let ms_left: Option<i64> = row.try_get(5).ok()?;
    match (fingerprint, is_live(ms_left)) {
        (None, _) => Some((order_id, Placement::Placed)),
        (Some(_), true) => {
            let live = live_record_from_row(row, 1).ok()?;
            Some((order_id, Placement::Exists(live)))
        }
        (Some(_), false) => None,
    }
}

fn is_live(ms_left: Option<i64>) -> bool {
    ms_left.is_some_and(|ms| ms > 0)
}

/// Why one attempt failed: the database (a lock timeout is an answer of its own), or a
/// stored row that breaks an invariant.
enum AttemptError {
    Database(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for AttemptError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e)
    }
}

fn live_record(row: &Row, from: usize) -> Result<LiveRecord, AttemptError> {
    live_record_from_row(row, from).map_err(AttemptError::Store)
}

/// The batch statement's parameters: one array per column.
struct Columns<'a> {
    tenant: Vec<String>,
    key: Vec<String>,
    fingerprint: Vec<Vec<u8>>,
    order_id: Vec<Uuid>,
    status: Vec<i32>,
    location: Vec<String>,
    ttl_ms: Vec<i64>,
    symbol: Vec<String>,
    side: Vec<&'static str>,
    quantity: Vec<i64>,
    accepted_at_ms: Vec<i64>,
    body: Vec<Vec<u8>>,
    delivery_state: Vec<Option<&'static str>>,
    order_type: Vec<&'static str>,
    limit_price: Vec<Option<&'a str>>,
    time_in_force: Vec<&'static str>,
}

impl<'a> Columns<'a> {
    fn of(orders: &[&'a NewOrder]) -> Self {
        Self {
            tenant: orders.iter().map(|n| n.tenant.clone()).collect(),
            key: orders
                .iter()
                .map(|n| n.order.idempotency_key.as_str().to_owned())
                .collect(),
            fingerprint: orders.iter().map(|n| n.fingerprint.0.to_vec()).collect(),
            order_id: orders.iter().map(|n| n.order.order_id).collect(),
            status: orders
                .iter()
                .map(|n| i32::from(n.response.status))
                .collect(),
            location: orders.iter().map(|n| n.response.location.clone()).collect(),
            ttl_ms: orders.iter().map(|n| n.result_ttl_ms()).collect(),
            symbol: orders
                .iter()
                .map(|n| n.order.request.symbol.as_str().to_owned())
                .collect(),
            side: orders
                .iter()
                .map(|n| n.order.request.side.as_str())
                .collect(),
            quantity: orders.iter().map(|n| n.quantity_i64()).collect(),
            accepted_at_ms: orders.iter().map(|n| n.order.accepted_at_ms).collect(),
            body: orders.iter().map(|n| n.response.body.clone()).collect(),
            delivery_state: orders.iter().map(|n| delivery_state(n)).collect(),
            order_type: orders
                .iter()
                .map(|n| n.order.request.order_type.as_str())
                .collect(),
            limit_price: orders.iter().map(|n| n.limit_price()).collect(),
            time_in_force: orders
                .iter()
                .map(|n| n.order.request.time_in_force.as_str())
                .collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.tenant,
            &self.key,
            &self.fingerprint,
            &self.order_id,
            &self.status,
            &self.location,
            &self.ttl_ms,
            &self.symbol,
            &self.side,
            &self.quantity,
            &self.accepted_at_ms,
            &self.body,
            &self.delivery_state,
            &self.order_type,
            &self.limit_price,
            &self.time_in_force,
        ]
    }
}

/// The delivery column of a new order: pending, or none without delivery.
fn delivery_state(new: &NewOrder) -> Option<&'static str> {
    new.deliver.then_some("pending")
}

/// One order on its own: place it, find the record that holds its key, or take over
/// an expired one, looking again when the record changes under it.
async fn place_alone(client: &Client, new: &NewOrder) -> Result<Placement, StoreError> {
    let order = &new.order;
    let request = &order.request;
    let key = order.idempotency_key.as_str();
    let (ttl_ms, quantity) = (new.result_ttl_ms(), new.quantity_i64());
    let status = i32::from(new.response.status);
    let delivery = delivery_state(new);
    let (order_type, limit_price) = (request.order_type.as_str(), new.limit_price());
    let time_in_force = request.time_in_force.as_str();
    let params: [&(dyn ToSql + Sync); 16] = [
        &new.tenant,
        &key,
        &new.fingerprint.0.as_slice(),
        &order.order_id,
        &status,
        &new.response.location,
        &ttl_ms,
        &request.symbol.as_str(),
        &request.side.as_str(),
        &quantity,
        &order.accepted_at_ms,
        &new.response.body,
        &delivery,
        &order_type,
        &limit_price,
        &time_in_force,
    ];
    for _ in 0..MAX_ROUNDS {
        match place_once(client, &params, &new.tenant, key).await {
            Err(AttemptError::Database(e)) if is_lock_timeout(&e) => {
                return Ok(Placement::InProgress);
            }
            Err(AttemptError::Database(e)) => return Err(e.into()),
            Err(AttemptError::Store(e)) => return Err(e),
            Ok(Some(placement)) => return Ok(placement),
            Ok(None) => continue,
        }
    }
    Err(StoreError::unavailable(
        "the key's record kept changing under other writers",
    ))
}

/// One attempt; `None` when the record changed between two statements.
async fn place_once(
    client: &Client,
    params: &[&(dyn ToSql + Sync); 16],
    tenant: &str,
    key: &str,
) -> Result<Option<Placement>, AttemptError> {
    let stmt = client.prepare_cached(sql::PLACE_ORDER).await?;
    if let Some(row) = client.query_opt(&stmt, params).await? {
        let fingerprint: Option<Vec<u8>> = row.try_get(0)?;
        let ms_left: Option<i64> = row.try_get(4)?;
        return Ok(match (fingerprint, is_live(ms_left)) {
            (None, _) => Some(Placement::Placed),
            (Some(_), true) => Some(Placement::Exists(live_record(&row, 0)?)),
            (Some(_), false) => take_over(client, params).await?,
        });
    }
    // The record was committed after this statement's snapshot (it waited for it).
    let stmt = client.prepare_cached(sql::LIVE_RECORD).await?;
    let row = client.query_opt(&stmt, &[&tenant, &key]).await?;
    let live = row.map(|row| live_record(&row, 0)).transpose()?;
    Ok(live.map(Placement::Exists))
}

async fn take_over(
    client: &Client,
    params: &[&(dyn ToSql + Sync); 16],
) -> Result<Option<Placement>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(sql::TAKE_OVER_EXPIRED).await?;
    let taken = client.query_opt(&stmt, params).await?;
    Ok(taken.map(|_| Placement::Placed))
}
