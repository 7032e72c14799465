//! Test harness: a real server on a random port with a fresh database per test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use ordergate::auth::Auth;
use ordergate::cli::{Cli, Command, ServeArgs};
use ordergate::clock::{Clock, SystemClock};
use ordergate::http::{AppState, app};
use ordergate::idempotency::Gateway;
use ordergate::inflight::InFlight;
use ordergate::store::DynStore;
use ordergate::store::sqlite::SqliteStore;
use ordergate::telemetry::Metrics;
use reqwest::header::HeaderMap;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ACME: &str = "acme-token";
pub const GLOBEX: &str = "globex-token";
pub const ORDER: &str = r#"{"symbol":"AAPL","side":"buy","quantity":100}"#;

/// A running gateway and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    /// The readiness flag, where the test built the state itself.
    pub shutting_down: Option<Arc<AtomicBool>>,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// `ordergate serve` arguments as a user would type them, on a fresh database.
pub fn serve_args(dir: &TempDir, extra: &[&str]) -> ServeArgs {
    let db = format!("sqlite://{}", dir.path().join("ordergate.db").display());
    let mut argv = vec![
        "ordergate",
        "serve",
        "--database",
        &db,
        "--api-key",
        "acme:acme-token",
        "--api-key",
        "globex:globex-token",
    ];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid arguments").command {
        Command::Serve(args) => args,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the real server (`server::serve`) with extra command-line flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_app_with_clock(extra, Arc::new(SystemClock)).await
}

pub async fn spawn_app_with_clock(extra: &[&str], clock: Arc<dyn Clock>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = serve_args(&dir, extra);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(ordergate::server::serve_with_clock(
        args,
        clock,
        listener,
        async {
            let _ = rx.await;
        },
    ));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        dir,
        shutdown: Some(tx),
        shutting_down: None,
        server: Some(server),
    }
}

/// Serves `app(state)` over a store chosen by the test (to slow it down or break it).
pub async fn spawn_app_on_store(
    store: impl FnOnce(DynStore) -> DynStore,
    lease_ttl: std::time::Duration,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(&dir.path().join("ordergate.db"), Arc::new(SystemClock))
        .expect("open store");
    let args = serve_args(&dir, &[]);
    let state = AppState {
        gateway: Gateway {
            store: store(Arc::new(sqlite)),
            clock: Arc::new(SystemClock),
            in_flight: InFlight::default(),
            result_ttl: args.result_ttl,
            lease_ttl,
        },
        auth: Arc::new(Auth::new(args.api_keys, None).expect("auth")),
        metrics: Arc::new(Metrics::default()),
        max_body: args.max_body,
        shutting_down: Arc::new(AtomicBool::new(false)),
    };
    let shutting_down = state.shutting_down.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await?;
        Ok(())
    });
    TestApp {
        addr,
        client: reqwest::Client::new(),
        dir,
        shutdown: Some(tx),
        shutting_down: Some(shutting_down),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("ordergate.db")
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

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }
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
