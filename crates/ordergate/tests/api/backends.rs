//! The backends every store contract runs on, with what their cases share.

use std::sync::Arc;
use std::time::Duration;

use ordergate::clock::ManualClock;
use ordergate::store::postgres::PostgresStore;
use ordergate::store::sqlite::SqliteStore;
use ordergate::store::{DynOutbox, DynRecords, Lease, NewOrder, Stores};
use ordergate_core::{IdempotencyKey, Order, Payload, ScopedKey, StoredResponse};
use uuid::Uuid;

use crate::pg::TestDb;

pub const TTL: Duration = Duration::from_secs(60);

pub fn new_order(tenant: &str, key: &str, body: &str, ttl: Duration) -> NewOrder {
    let payload = Payload::from_body(body.as_bytes());
    let order = Order {
        order_id: Uuid::now_v7(),
        request: payload.order_request().expect("valid order"),
        accepted_at_ms: 1_700_000_000_000,
        idempotency_key: IdempotencyKey::parse(key.as_bytes()).expect("key"),
    };
    NewOrder {
        tenant: tenant.into(),
        response: StoredResponse {
            status: 201,
            location: order.location(),
            body: order.to_json(),
        },
        order,
        fingerprint: payload.fingerprint().expect("fingerprint"),
        result_ttl: ttl,
        lease: Lease::default(),
        deliver: false,
    }
}

pub fn scoped(tenant: &str, k: &str) -> ScopedKey {
    ScopedKey::new(tenant, IdempotencyKey::parse(k.as_bytes()).expect("key"))
}

pub const BODY: &str = r#"{"symbol":"AAPL","side":"buy","quantity":1}"#;

/// A backend under test, and a way to let time pass for its records.
pub struct Backend {
    pub store: DynRecords,
    pub outbox: DynOutbox,
    pub fix: Arc<dyn ordergate::store::fix::FixStore>,
    clock: ManualClock,
    pg: Option<TestDb>,
    _dir: Option<tempfile::TempDir>,
    /// The SQLite file, when the backend is SQLite.
    path: Option<std::path::PathBuf>,
}

impl Backend {
    /// The same database opened again, as a restarted gateway opens it (after
    /// `close`, which releases the SQLite file).
    pub async fn reopen(&self) -> DynRecords {
        match (&self.path, &self.pg) {
            (Some(path), _) => {
                let clock = Arc::new(self.clock.clone());
                Stores::of(SqliteStore::open(path, clock).expect("reopen")).records
            }
            (None, Some(pg)) => {
                let store = PostgresStore::open(&pg.url, Duration::from_secs(30)).await;
                Stores::of(store.expect("reopen")).records
            }
            (None, None) => panic!("a backend without a database"),
        }
    }

    /// Runs `sql` on the database straight, as a tampering hand or a bug would.
    pub async fn tamper(&self, sql: &str) {
        match (&self.path, &self.pg) {
            (Some(path), _) => {
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.execute_batch(sql).expect("tamper");
            }
            (None, Some(pg)) => {
                pg.client().await.batch_execute(sql).await.expect("tamper");
            }
            (None, None) => panic!("a backend without a database"),
        }
    }

    /// Ages every idempotency record by `ms`: SQLite's clock is the test's; for
    /// PostgreSQL, whose clock is `now()`, the records' expiry moves back instead.
    pub async fn age(&self, ms: i64) {
        self.clock.advance_ms(ms);
        if let Some(pg) = &self.pg {
            pg.client()
                .await
                .execute(
                    "UPDATE idempotency_keys \
                     SET expires_at = expires_at - $1::bigint * interval '1 millisecond'",
                    &[&ms],
                )
                .await
                .expect("age records");
        }
    }
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::starting_at(1_700_000_000_000);
    let path = dir.path().join("s.db");
    let stores = Stores::of(SqliteStore::open(&path, Arc::new(clock.clone())).expect("open"));
    Backend {
        store: stores.records,
        outbox: stores.outbox,
        fix: stores.fix,
        clock,
        pg: None,
        _dir: Some(dir),
        path: Some(path),
    }
}

pub async fn postgres() -> Backend {
    let pg = TestDb::create().await;
    let store = PostgresStore::open(&pg.url, Duration::from_secs(30)).await;
    let stores = Stores::of(store.expect("open"));
    Backend {
        store: stores.records,
        outbox: stores.outbox,
        fix: stores.fix,
        clock: ManualClock::default(),
        pg: Some(pg),
        _dir: None,
        path: None,
    }
}

/// A second gateway's FIX store on `b`'s PostgreSQL database.
pub async fn postgres_on(b: &Backend) -> Arc<dyn ordergate::store::fix::FixStore> {
    let pg = b.pg.as_ref().expect("a PostgreSQL backend");
    let store = PostgresStore::open(&pg.url, Duration::from_secs(30)).await;
    Stores::of(store.expect("open")).fix
}

/// Runs each listed case once per backend, as `sqlite::CASE` and `postgres::CASE`.
macro_rules! each_backend {
    ($($case:ident),* $(,)?) => {
        each_backend!(@backend sqlite: $($case),*);
        each_backend!(@backend postgres: $($case),*);
    };
    (@backend $backend:ident: $($case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(crate::backends::$backend().await).await;
                }
            )*
        }
    };
}
