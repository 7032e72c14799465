//! In-flight waits, 409, 503 and the lease, with a store slowed down or broken on
//! purpose around the real store of each backend.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ordergate::store::{DynRecords, NewOrder, RecordStore, StoreError};
use ordergate_core::{LiveRecord, Placement, ScopedKey};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::helpers::*;

/// Passes everything on to the real store, but every placement stops at a gate: it
/// tells the test that it entered, waits until the test opens the gate, and reports
/// what the real store answered. The gated placement runs on a task of its own, as
/// an order queued in a real store does: a request that gives up on it does not
/// take it back.
struct GatedStore {
    inner: DynRecords,
    entered: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
    returned: mpsc::UnboundedSender<Result<Placement, String>>,
}

/// The test's side of a [`GatedStore`].
struct Gate {
    entered: mpsc::UnboundedReceiver<()>,
    gate: Arc<Semaphore>,
    returned: mpsc::UnboundedReceiver<Result<Placement, String>>,
}

impl Gate {
    async fn entered(&mut self) {
        self.entered.recv().await.expect("a placement entered");
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    async fn returned(&mut self) -> Result<Placement, String> {
        self.returned.recv().await.expect("a placement returned")
    }
}

fn gated() -> (Gate, impl FnOnce(DynRecords) -> DynRecords) {
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (returned_tx, returned) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let wrap = {
        let gate = gate.clone();
        move |inner| -> DynRecords {
            Arc::new(GatedStore {
                inner,
                entered: entered_tx,
                gate,
                returned: returned_tx,
            })
        }
    };
    (
        Gate {
            entered,
            gate,
            returned,
        },
        wrap,
    )
}

/// Fails every call, like a database that is down.
struct DownStore;

#[async_trait]
impl RecordStore for GatedStore {
    async fn live_record(&self, key: &ScopedKey) -> Result<Option<LiveRecord>, StoreError> {
        self.inner.live_record(key).await
    }
    async fn place(&self, new: NewOrder) -> Result<Placement, StoreError> {
        let _ = self.entered.send(());
        let (inner, gate) = (self.inner.clone(), self.gate.clone());
        let returned = self.returned.clone();
        let placing = tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("gate");
            let placed = inner.place(new).await;
            let report = placed.as_ref().map(Clone::clone).map_err(|e| e.to_string());
            let _ = returned.send(report);
            placed
        });
        placing.await.expect("the gated placement ran")
    }
    async fn order_by_id(&self, t: &str, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.order_by_id(t, id).await
    }
    async fn order_by_key(&self, key: &ScopedKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.order_by_key(key).await
    }
    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError> {
        self.inner.purge_expired(batch).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::unavailable("connection refused (test)"))
}

#[async_trait]
impl RecordStore for DownStore {
    async fn live_record(&self, _: &ScopedKey) -> Result<Option<LiveRecord>, StoreError> {
        down()
    }
    async fn place(&self, _: NewOrder) -> Result<Placement, StoreError> {
        down()
    }
    async fn order_by_id(&self, _: &str, _: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        down()
    }
    async fn order_by_key(&self, _: &ScopedKey) -> Result<Option<Vec<u8>>, StoreError> {
        down()
    }
    async fn purge_expired(&self, _: usize) -> Result<usize, StoreError> {
        down()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        down()
    }
    async fn close(&self) {}
}

const LONG_LEASE: Duration = Duration::from_secs(30);

/// Waits until the gateway has counted `n` requests that waited for a same-key one.
async fn until_in_flight_waits(app: &TestApp, n: u64) {
    let line = format!("ordergate_in_flight_waits_total {n}");
    eventually(
        &format!("/metrics shows {line}"),
        Duration::from_secs(30),
        || async {
            let metrics = app.get("/metrics").await.text().await.expect("metrics");
            metrics.lines().any(|l| l == line)
        },
    )
    .await;
}

async fn a_retry_while_the_original_is_in_flight_waits_and_gets_its_replay(db: Db) {
    let (mut gate, wrap) = gated();
    let app = Arc::new(spawn_app_on_store(db, wrap, LONG_LEASE).await);
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.post("slow", ORDER).await }
    });
    gate.entered().await;
    let retry = tokio::spawn({
        let app = app.clone();
        async move { app.post("slow", ORDER).await }
    });
    until_in_flight_waits(&app, 1).await;
    gate.open();
    let (first, retry) = (first.await.expect("first"), retry.await.expect("retry"));
    assert_eq!(
        (first.status().as_u16(), retry.status().as_u16()),
        (201, 201)
    );
    assert!(first.headers().get("idempotent-replay").is_none());
    assert_eq!(retry.headers()["idempotent-replay"], "true");
    assert_eq!(
        first.bytes().await.expect("first"),
        retry.bytes().await.expect("retry")
    );
    Arc::into_inner(app).expect("one owner").stop().await;
}

async fn a_retry_still_in_flight_after_a_second_is_a_409_with_retry_after(db: Db) {
    let (mut gate, wrap) = gated();
    let app = Arc::new(spawn_app_on_store(db, wrap, LONG_LEASE).await);
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.post("slower", ORDER).await }
    });
    gate.entered().await;
    // The gate stays shut until the retry has its answer.
    let retry = app.post("slower", ORDER).await;
    assert_eq!(retry.headers()["retry-after"], "1");
    let (status, code, body) = problem(retry).await;
    assert_eq!((status, code.as_str()), (409, "in_progress"));
    assert_eq!(body["retryAfter"], 1);
    gate.open();
    assert_eq!(
        first.await.expect("first").status(),
        201,
        "the original still completes"
    );
    Arc::into_inner(app).expect("one owner").stop().await;
}

async fn a_store_failure_is_a_503_with_retry_after_and_no_internal_text(db: Db) {
    let app = spawn_app_on_store(db, |_| std::sync::Arc::new(DownStore), LONG_LEASE).await;
    let response = app.post("down", ORDER).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, code, body) = problem(response).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert!(
        !body.to_string().contains("connection refused"),
        "no internal text"
    );
    let (status, _, _) = problem(app.get_as(ACME, "/orders?idempotencyKey=down").await).await;
    assert_eq!(status, 503);
    let (status, _, body) = problem(app.get("/readyz").await).await;
    assert_eq!(status, 503);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("database is unavailable")),
        "{body}"
    );
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the process still serves");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"ordergate_store_errors_total{kind="unavailable"} "#))
        .and_then(|n| n.parse().ok())
        .expect("the series");
    // The background purge may have failed too.
    assert!(
        counted >= 3,
        "the POST, the lookup and the probe count as the database's: {metrics}"
    );
    app.stop().await;
}

async fn a_request_past_its_lease_is_abandoned_and_its_key_is_free_again(db: Db) {
    let (mut gate, wrap) = gated();
    let app = spawn_app_on_store(db, wrap, Duration::from_millis(200)).await;
    // The gate stays shut until the request has its answer: the lease runs out first.
    let response = app.post("leased", ORDER).await;
    let (status, code, _) = problem(response).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    gate.entered().await;
    gate.open();
    assert_eq!(
        gate.returned().await,
        Ok(Placement::Abandoned),
        "the store refuses an order whose lease ran out"
    );
    let (status, _, _) = problem(app.get_as(ACME, "/orders?idempotencyKey=leased").await).await;
    assert_eq!(status, 404, "an abandoned request never completes");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(r#"ordergate_store_errors_total{kind="lease_expired"} 1"#),
        "counted as the lease's, not the database's: {metrics}"
    );
    let again = app.post("leased", ORDER).await;
    assert_eq!(again.status(), 201, "the key is free again");
    app.stop().await;
}

async fn a_client_that_hangs_up_after_sending_its_body_still_gets_its_order_placed(db: Db) {
    use tokio::io::AsyncWriteExt;
    let (mut gate, wrap) = gated();
    let app = spawn_app_on_store(db, wrap, LONG_LEASE).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!(
        "POST /orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACME}\r\n\
         idempotency-key: hang-up\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{ORDER}",
        ORDER.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    gate.entered().await;
    drop(stream);
    gate.open();
    assert_eq!(
        gate.returned().await,
        Ok(Placement::Placed),
        "the request ran to its end"
    );
    let found = app.get_as(ACME, "/orders?idempotencyKey=hang-up").await;
    assert_eq!(found.status(), 200);
    let retry = app.post("hang-up", ORDER).await;
    assert_eq!(retry.headers()["idempotent-replay"], "true");
    app.stop().await;
}

on_each_backend!(
    a_retry_while_the_original_is_in_flight_waits_and_gets_its_replay,
    a_retry_still_in_flight_after_a_second_is_a_409_with_retry_after,
    a_store_failure_is_a_503_with_retry_after_and_no_internal_text,
    a_request_past_its_lease_is_abandoned_and_its_key_is_free_again,
    a_client_that_hangs_up_after_sending_its_body_still_gets_its_order_placed,
);
