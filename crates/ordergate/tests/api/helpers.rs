//! Test harness: a real server on a random port with a fresh database per test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use ordergate::cli::{Cli, Command, ServeArgs};
use ordergate::clock::{Clock, SystemClock};
use ordergate::store::postgres::PostgresStore;
use ordergate::store::sqlite::SqliteStore;
use ordergate::store::{DynRecords, Stores};
use reqwest::header::HeaderMap;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::edge_runner::Edge;
use crate::pg::TestDb;

pub const ACME: &str = "acme-token";
pub const GLOBEX: &str = "globex-token";
pub const ORDER: &str = r#"{"symbol":"AAPL","side":"buy","quantity":100}"#;

/// A running gateway and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    dir: TempDir,
    /// The PostgreSQL database, when the test runs on PostgreSQL.
    pub pg: Option<TestDb>,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    /// The edge build on local workerd, when the test runs on it.
    pub edge: Option<Edge>,
}

/// Which target a test runs on: the server on one of its backends, or the edge build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    /// The Cloudflare Worker build on local workerd (`dev.sh`); HTTP only.
    Edge,
}

/// Runs each listed `async fn(Db)` once per backend, as `sqlite::NAME` and
/// `postgres::NAME`.
macro_rules! on_each_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Db::Postgres).await
                }
            )*
        }
    };
}

/// Runs each listed `async fn(Db)` once per target: both server backends, as
/// [`on_each_backend!`] does, and the edge build as `edge::NAME`. Only for tests that
/// speak nothing but HTTP (flags such as `--result-ttl` are the same for `dev.sh`).
/// Tests after `servers only:` run on both backends but not on the edge; where they
/// are listed says why.
macro_rules! on_each_target {
    ($($test:ident),* $(,)? ; servers only: $($server_test:ident),* $(,)?) => {
        on_each_backend!($($test,)* $($server_test),*);
        mod edge {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Db::Edge).await
                }
            )*
        }
    };
    ($($test:ident),* $(,)?) => {
        on_each_target!($($test),* ; servers only:);
    };
}

/// `ordergate serve` arguments as a user would type them, on the given database URL.
pub fn serve_args(db: &str, extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "ordergate",
        "serve",
        "--database",
        db,
        "--api-key",
        "acme:acme-token",
        "--api-key",
        "globex:globex-token",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid arguments").command {
        Command::Serve(args) => args,
        other => panic!("not a serve command: {other:?}"),
    }
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, &[]).await
}

/// Starts the real server (`server::serve`) with extra command-line flags, or the
/// edge build with the same flags.
pub async fn spawn_app_with(db: Db, extra: &[&str]) -> TestApp {
    if db == Db::Edge {
        return spawn_edge(extra).await;
    }
    spawn(db, extra, Arc::new(SystemClock)).await
}

/// `dev.sh` on a fresh state directory.
async fn spawn_edge(extra: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(dir.path(), extra).await;
    TestApp {
        addr: edge.addr,
        client: reqwest::Client::new(),
        dir,
        pg: None,
        shutdown: None,
        server: None,
        edge: Some(edge),
    }
}

/// A fresh temp dir, and a fresh PostgreSQL database if the test runs on one.
async fn fresh_database(db: Db) -> (TempDir, Option<TestDb>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    match db {
        Db::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("ordergate.db").display());
            (dir, None, url)
        }
        Db::Postgres => {
            let pg = TestDb::create().await;
            let url = pg.url.clone();
            (dir, Some(pg), url)
        }
        Db::Edge => panic!("the edge build has no database URL: use spawn_app_with"),
    }
}

/// Starts the real server with a clock of the test's (SQLite reads it for expiry).
pub async fn spawn(db: Db, extra: &[&str], clock: Arc<dyn Clock>) -> TestApp {
    let (dir, pg, url) = fresh_database(db).await;
    serve_on(dir, pg, &url, extra, clock).await
}

async fn serve_on(
    dir: TempDir,
    pg: Option<TestDb>,
    url: &str,
    extra: &[&str],
    clock: Arc<dyn Clock>,
) -> TestApp {
    let args = serve_args(url, extra);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    launch(dir, pg, listener, |listener, stop| {
        ordergate::server::serve_with_clock(args, clock, listener, async {
            let _ = stop.await;
        })
    })
}

/// Spawns `serve` on `listener`; the test's `stop` ends it.
fn launch<F>(
    dir: TempDir,
    pg: Option<TestDb>,
    listener: TcpListener,
    serve: impl FnOnce(TcpListener, oneshot::Receiver<()>) -> F,
) -> TestApp
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(serve(listener, rx));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        dir,
        pg,
        shutdown: Some(tx),
        server: Some(server),
        edge: None,
    }
}

/// Opens the backend's real store for a fresh database, at `lease_ttl`.
pub async fn open_store(
    db: Db,
    lease_ttl: std::time::Duration,
) -> (TempDir, Option<TestDb>, String, Stores) {
    let (dir, pg, url) = fresh_database(db).await;
    let stores = match &pg {
        None => Stores::of(
            SqliteStore::open(&dir.path().join("ordergate.db"), Arc::new(SystemClock))
                .expect("open store"),
        ),
        Some(pg) => Stores::of(
            PostgresStore::open(&pg.url, lease_ttl)
                .await
                .expect("open store"),
        ),
    };
    (dir, pg, url, stores)
}

/// Serves the real server (`server::serve_store`) over a store chosen by the test
/// (to slow it down or break it), with the given lease.
pub async fn spawn_app_on_store(
    db: Db,
    records: impl FnOnce(DynRecords) -> DynRecords,
    lease_ttl: std::time::Duration,
) -> TestApp {
    let (dir, pg, url, inner) = open_store(db, lease_ttl).await;
    let lease = format!("{}ms", lease_ttl.as_millis());
    let args = serve_args(&url, &["--lease-ttl", &lease]);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let auth = ordergate::server::authenticator(&args, &listener).expect("auth");
    let stores = Stores {
        records: records(inner.records),
        outbox: inner.outbox,
        fix: inner.fix,
    };
    launch(dir, pg, listener, |listener, stop| async move {
        let shutdown = async {
            let _ = stop.await;
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        ordergate::server::serve_store(args, auth, stores, clock, listener, shutdown).await
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("ordergate.db")
    }

    /// How many orders each (tenant, key) has, read straight from the database.
    pub async fn orders_per_key(&self) -> Vec<i64> {
        if let Some(edge) = &self.edge {
            return edge.orders_per_key();
        }
        const SQL: &str = "SELECT count(*) FROM orders GROUP BY tenant, idem_key";
        if let Some(pg) = &self.pg {
            let rows = pg
                .client()
                .await
                .query(SQL, &[])
                .await
                .expect("count orders");
            return rows.iter().map(|row| row.get(0)).collect();
        }
        let db = self.db_path();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(db).expect("open database");
            let mut stmt = conn.prepare(SQL).expect("prepare");
            stmt.query_map([], |row| row.get(0))
                .expect("query")
                .collect::<Result<Vec<i64>, _>>()
                .expect("rows")
        })
        .await
        .expect("count task")
    }

    /// `POST /orders` as tenant acme with a JSON body.
    pub async fn post(&self, key: &str, body: &str) -> reqwest::Response {
        self.post_as(ACME, key, body).await
    }

    pub async fn post_as(&self, token: &str, key: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url("/orders"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /orders` with exactly the given headers.
    pub async fn post_raw(
        &self,
        headers: HeaderMap,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/orders"))
            .headers(headers)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path` without a token (the operations endpoints need none).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the server and starts a new one on the same database, so nothing the
    /// old one held in memory (the replay cache, claims) survives. The old server
    /// has closed its store (and released the SQLite file) when it returns.
    pub async fn restart(mut self) -> TestApp {
        if let Some(edge) = self.edge.take() {
            let edge = edge.restart().await;
            self.addr = edge.addr;
            self.edge = Some(edge);
            return self;
        }
        let url = match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.db_path().display()),
        };
        self.shut_down().await;
        let (dir, pg) = (self.dir, self.pg.take());
        serve_on(dir, pg, &url, &[], Arc::new(SystemClock)).await
    }

    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(edge) = self.edge.as_mut() {
            edge.stop().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }
}

/// One `POST` of the standard order to `url` with `token` and `key`, on a client of the
/// caller's (with its own timeout, say); a transport error is the caller's to judge.
pub async fn try_post_order(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    key: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(ORDER)
        .send()
        .await
}

/// Headers for acme's JSON POST with one idempotency key line.
pub fn acme_headers(key: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {ACME}").parse().expect("header"),
    );
    headers.insert("content-type", "application/json".parse().expect("header"));
    headers.insert(
        "idempotency-key",
        reqwest::header::HeaderValue::from_bytes(key).expect("header value"),
    );
    headers
}

/// A problem+json answer's status and `error` code, after checking its shape.
pub async fn problem(response: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    let body: serde_json::Value = response.json().await.expect("problem body");
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    let code = body["error"].as_str().expect("error code").to_owned();
    (status, code, body)
}

/// The orderId of an order JSON.
pub fn order_id(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).expect("order JSON");
    json["orderId"].as_str().expect("orderId").to_owned()
}

/// Polls `check` until it holds, and fails the test naming `what` if it still does not
/// after `within`: a wait that never ends would hang the suite instead of failing it.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
