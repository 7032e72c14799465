//! Serving: open the store, run the accept loop, purge in the background, and shut
//! down gracefully: drain the connections, wait for the submissions, close the store.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::cli::{DatabaseUrl, ServeArgs};
use crate::clock::{Clock, SystemClock};
use crate::gateway::{Gateway, Settings};
use crate::http::{AppState, app};
use crate::store::DynStore;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::telemetry::Metrics;

/// Most connections served at once; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 4096;
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most expired records deleted by one purge transaction: keeps each one short.
const PURGE_BATCH: usize = 500;

/// Runs the gateway on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    args: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_clock(args, Arc::new(SystemClock), listener, shutdown).await
}

/// [`serve`] with a chosen clock.
pub async fn serve_with_clock(
    args: ServeArgs,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let auth = authenticator(&args, &listener)?;
    let store = open_store(&args.database, clock.clone(), args.lease_ttl).await?;
    serve_store(args, auth, store, clock, listener, shutdown).await;
    Ok(())
}

/// The API keys of `args`, refused in open mode on an address that is not loopback.
pub fn authenticator(args: &ServeArgs, listener: &TcpListener) -> anyhow::Result<Arc<Auth>> {
    let auth = Arc::new(Auth::new(
        args.api_keys.clone(),
        args.api_keys_file.clone(),
    )?);
    let addr = listener.local_addr().context("listener has no address")?;
    if auth.is_open() && !addr.ip().is_loopback() {
        bail!("open mode (no API keys) is only allowed on a loopback address, not {addr}");
    }
    if auth.is_open() {
        tracing::warn!("no API keys configured: open mode, every request is tenant \"default\"");
    }
    Ok(auth)
}

/// Serves on an opened store until `shutdown` resolves; then drains the connections,
/// waits for the submissions still running, and closes the store. Tests call it
/// with a store wrapped to slow it down or break it.
pub async fn serve_store(
    args: ServeArgs,
    auth: Arc<Auth>,
    store: DynStore,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let metrics = Arc::new(Metrics::default());
    let settings = Settings {
        result_ttl: args.result_ttl,
        lease_ttl: args.lease_ttl,
    };
    let gateway = Gateway::new(store, clock, metrics.clone(), settings);
    let shutting_down = Arc::new(AtomicBool::new(false));
    let state = AppState::new(
        gateway.clone(),
        auth.clone(),
        metrics,
        args.max_body,
        shutting_down.clone(),
    );
    let purge = AbortOnDrop(spawn_purge(gateway.clone(), args.result_ttl));
    let _reload = AbortOnDrop(spawn_key_reload(auth));
    let addr = listener
        .local_addr()
        .map_or_else(|e| e.to_string(), |a| a.to_string());
    tracing::info!(%addr, pid = std::process::id(), database = ?args.database, "ordergate listening");
    let shutdown = async move {
        shutdown.await;
        shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: draining in-flight requests");
    };
    run(listener, app(state), shutdown, args.shutdown_timeout).await;
    drop(purge);
    gateway.close().await;
    tracing::info!("ordergate stopped: every submission ended and the store is closed");
}

async fn open_store(
    url: &DatabaseUrl,
    clock: Arc<dyn Clock>,
    lease_ttl: Duration,
) -> anyhow::Result<DynStore> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, clock))
                .await
                .context("opening the SQLite store")??;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(url) => Ok(Arc::new(
            PostgresStore::open(url, lease_ttl)
                .await
                .context("opening the PostgreSQL store")?,
        )),
    }
}

/// The accept loop: HTTP/1.1 with header read timeouts and a connection cap; on
/// shutdown, stops accepting and lets open connections finish up to `drain_timeout`.
async fn run(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached with requests still in flight");
    }
}

/// Deletes expired idempotency records in small batches, forever. Failures are
/// logged and counted by the gateway; the next pass tries again.
fn spawn_purge(gateway: Gateway, result_ttl: Duration) -> JoinHandle<()> {
    let pause = (result_ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    tokio::spawn(async move {
        loop {
            match gateway.purge_expired(PURGE_BATCH).await {
                Ok(n) if n == PURGE_BATCH => continue,
                Ok(n) if n > 0 => tracing::debug!(purged = n, "purged expired keys"),
                Ok(_) | Err(_) => {}
            }
            tokio::time::sleep(pause).await;
        }
    })
}

/// Re-reads the API keys file on SIGHUP.
fn spawn_key_reload(auth: Arc<Auth>) -> JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: API keys will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            match auth.reload() {
                Ok(n) => tracing::info!(tokens = n, "API keys reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "API keys not reloaded; keeping the old ones")
                }
            }
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}

/// Stops a background task when the server stops.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
