//! In-flight waits, 409, 503 and the lease, with a store slowed down or broken on
//! purpose around the real SQLite store.

use std::time::Duration;

use async_trait::async_trait;
use ordergate::store::{DynStore, Finished, NewOrder, Placement, Store, StoreError};
use ordergate_core::IdempotencyKey;
use uuid::Uuid;

use crate::helpers::*;

/// Delays every `place` before passing it on; reads are not delayed.
struct SlowStore {
    inner: DynStore,
    delay: Duration,
}

/// Fails every call, like a database that is down.
struct DownStore;

#[async_trait]
impl Store for SlowStore {
    async fn finished(&self, t: &str, k: &IdempotencyKey) -> Result<Option<Finished>, StoreError> {
        self.inner.finished(t, k).await
    }
    async fn place(&self, new: NewOrder) -> Result<Placement, StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.place(new).await
    }
    async fn order_by_id(&self, t: &str, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.order_by_id(t, id).await
    }
    async fn order_by_key(
        &self,
        t: &str,
        k: &IdempotencyKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.order_by_key(t, k).await
    }
    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError> {
        self.inner.purge_expired(batch).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Database("connection refused (test)".into()))
}

#[async_trait]
impl Store for DownStore {
    async fn finished(&self, _: &str, _: &IdempotencyKey) -> Result<Option<Finished>, StoreError> {
        down()
    }
    async fn place(&self, _: NewOrder) -> Result<Placement, StoreError> {
        down()
    }
    async fn order_by_id(&self, _: &str, _: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        down()
    }
    async fn order_by_key(
        &self,
        _: &str,
        _: &IdempotencyKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        down()
    }
    async fn purge_expired(&self, _: usize) -> Result<usize, StoreError> {
        down()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        down()
    }
}

fn slow(delay: Duration) -> impl FnOnce(DynStore) -> DynStore {
    move |inner| std::sync::Arc::new(SlowStore { inner, delay })
}

const LONG_LEASE: Duration = Duration::from_secs(30);

async fn a_retry_while_the_original_is_in_flight_waits_and_gets_its_replay(db: Db) {
    let app = spawn_app_on_store(db, slow(Duration::from_millis(400)), LONG_LEASE).await;
    let (first, retry) = tokio::join!(app.post("slow", ORDER), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.post("slow", ORDER).await
    });
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
    app.stop().await;
}

async fn a_retry_still_in_flight_after_a_second_is_a_409_with_retry_after(db: Db) {
    let app = spawn_app_on_store(db, slow(Duration::from_millis(2500)), LONG_LEASE).await;
    let (first, retry) = tokio::join!(app.post("slower", ORDER), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.post("slower", ORDER).await
    });
    assert_eq!(retry.headers()["retry-after"], "1");
    let (status, code, body) = problem(retry).await;
    assert_eq!((status, code.as_str()), (409, "in_progress"));
    assert_eq!(body["retryAfter"], 1);
    assert_eq!(first.status(), 201, "the original still completes");
    app.stop().await;
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
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the process still serves");
    app.stop().await;
}

async fn a_request_past_its_lease_is_abandoned_and_its_key_is_free_again(db: Db) {
    let app = spawn_app_on_store(
        db,
        slow(Duration::from_millis(600)),
        Duration::from_millis(200),
    )
    .await;
    let response = app.post("leased", ORDER).await;
    let (status, code, _) = problem(response).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    // Let the slowed store pass the abandoned order on: it must not be placed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, _, _) = problem(app.get_as(ACME, "/orders?idempotencyKey=leased").await).await;
    assert_eq!(status, 404, "an abandoned request never completes");
    app.stop().await;
}

async fn a_client_that_hangs_up_after_sending_its_body_still_gets_its_order_placed(db: Db) {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_on_store(db, slow(Duration::from_millis(300)), LONG_LEASE).await;
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
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let found = app.get_as(ACME, "/orders?idempotencyKey=hang-up").await;
    assert_eq!(found.status(), 200, "the request ran to its end");
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
