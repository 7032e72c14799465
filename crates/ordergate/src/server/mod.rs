//! Serving: open the store, run the accept loop ([`accept`]), purge in the
//! background, reload keys on SIGHUP ([`signals`]), and shut down gracefully: drain
//! the connections, wait for the submissions, close the store.

mod accept;
mod signals;

pub use signals::shutdown_signal;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::cli::ServeArgs;
use crate::clock::{Clock, SystemClock};
use crate::delivery::{Deliverer, Dispatcher};
use crate::gateway::{Gateway, Settings};
use crate::http::{AppState, app};
use crate::pretrade::PreTrade;
use crate::store::DatabaseUrl;
use crate::store::Stores;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::telemetry::Metrics;

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
    args.check().map_err(anyhow::Error::msg)?;
    let auth = authenticator(&args, &listener)?;
    let stores = open_store(&args.database, clock.clone(), args.lease_ttl).await?;
    serve_store(args, auth, stores, clock, listener, shutdown).await
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

/// The pre-trade controls of `--limits-file`; a file that cannot be used stops the
/// start.
fn pretrade(args: &ServeArgs) -> anyhow::Result<Option<Arc<PreTrade>>> {
    let Some(path) = &args.limits_file else {
        return Ok(None);
    };
    let pretrade = PreTrade::load(path)?;
    tracing::info!(path = %path.display(), "pre-trade controls in force");
    Ok(Some(Arc::new(pretrade)))
}

/// Serves on an opened store until `shutdown` resolves; then drains the connections,
/// waits for the submissions still running, and closes the store. Tests call it
/// with a records store wrapped to slow it down or break it.
pub async fn serve_store(
    args: ServeArgs,
    auth: Arc<Auth>,
    stores: Stores,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let settings = Settings {
        result_ttl: args.result_ttl,
        lease_ttl: args.lease_ttl,
        deliver: args.deliver.is_some(),
    };
    let deliverer = match &args.deliver {
        Some(url) => {
            let parts = crate::delivery::SinkParts {
                key: args.deliver_secret.clone(),
                fix_store: stores.fix.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
            };
            let sink = crate::delivery::sink_for(url, parts)?;
            tracing::info!(sink = ?url, "delivering accepted orders");
            Some(Deliverer::spawn(Dispatcher::new(
                stores.outbox.clone(),
                sink,
                clock.clone(),
                metrics.clone(),
                args.deliver_max_age,
            )))
        }
        None => None,
    };
    let pretrade = pretrade(&args)?;
    let mut gateway = Gateway::new(stores, clock, metrics.clone(), settings);
    if let Some(pretrade) = &pretrade {
        gateway = gateway.with_controls(pretrade.clone());
    }
    let shutting_down = Arc::new(AtomicBool::new(false));
    let state = AppState::new(
        gateway.clone(),
        auth.clone(),
        metrics,
        args.max_body,
        shutting_down.clone(),
    );
    let purge = AbortOnDrop(spawn_purge(gateway.clone(), args.result_ttl));
    let _reload = AbortOnDrop(signals::spawn_reload(auth, pretrade));
    let connections = accept::max_connections();
    let addr = listener
        .local_addr()
        .map_or_else(|e| e.to_string(), |a| a.to_string());
    tracing::info!(%addr, pid = std::process::id(), database = ?args.database, "ordergate listening");
    let shutdown = async move {
        shutdown.await;
        shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutting down: draining in-flight requests");
    };
    accept::run(
        listener,
        app(state),
        connections,
        shutdown,
        args.shutdown_timeout,
    )
    .await;
    drop(purge);
    if let Some(deliverer) = deliverer {
        deliverer.stop().await;
    }
    gateway.close().await;
    tracing::info!("ordergate stopped: every submission ended and the store is closed");
    Ok(())
}

async fn open_store(
    url: &DatabaseUrl,
    clock: Arc<dyn Clock>,
    lease_ttl: Duration,
) -> anyhow::Result<Stores> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, clock))
                .await
                .context("opening the SQLite store")??;
            Ok(Stores::of(store))
        }
        DatabaseUrl::Postgres(url) => Ok(Stores::of(
            PostgresStore::open(url, lease_ttl)
                .await
                .context("opening the PostgreSQL store")?,
        )),
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

/// Stops a background task when the server stops.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
