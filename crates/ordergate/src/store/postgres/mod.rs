//! The PostgreSQL backend: several gateway processes, one database, one truth.
//!
//! Everything that must hold across processes is the database's: the claim is a
//! unique key taken by an upsert, expiry is `now()`, and the lease is enforced by
//! `statement_timeout` and `idle_in_transaction_session_timeout`, so a gateway that
//! hangs (SIGSTOP, a network cut) cannot hold a key, a lock or a connection past it.

mod errors;
mod fence;
mod fix;
mod notices;
mod placement;
mod sql;
mod tls;

use errors::refused_as_read_only;
pub use errors::{OpenError, PgError};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use ordergate_core::{LiveRecord, Placement, ScopedKey};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{
    Backlog, DeliveredBatch, DeliveryResult, DeliveryStatus, NewOrder, Outbox, PendingDelivery,
    RecordStore, StoreError,
};

/// Connections per gateway process.
const POOL_SIZE: usize = 32;
/// A same-key request waits for the one in flight as long as in the process.
const LOCK_TIMEOUT_MS: i64 = ordergate_core::IN_FLIGHT_WAIT_MS;
const POOL_WAIT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    placements: placement::Batcher,
    watch: Arc<notices::SyncRepWatch>,
    /// How long a durability check may wait for a standby.
    durable_within: Duration,
}

impl PostgresStore {
    /// Connects, migrates, and checks the server's durability settings.
    pub async fn open(url: &str, lease_ttl: Duration) -> Result<Self, OpenError> {
        let (url, tls) = tls::Tls::split_url(url).map_err(OpenError::Tls)?;
        let (ssl_mode, connector) = tls.connector().map_err(OpenError::Tls)?;
        let configure = |url: &str| -> Result<tokio_postgres::Config, OpenError> {
            let mut config: tokio_postgres::Config = url.parse().map_err(OpenError::Url)?;
            config.ssl_mode(ssl_mode);
            let lease_ms = lease_ttl.as_millis();
            config
                .options(format!(
                    "-c statement_timeout={lease_ms} -c idle_in_transaction_session_timeout={lease_ms} \
                     -c lock_timeout={LOCK_TIMEOUT_MS}"
                ))
                .application_name("ordergate")
                .connect_timeout(CONNECT_TIMEOUT);
            detect_vanished_hosts(&mut config);
            Ok(config)
        };
        let config = configure(&url)?;
        let fence = match fence::single_host_urls(&url) {
            Some(urls) => Some(fence::Fence {
                hosts: Arc::new(
                    urls.iter()
                        .map(|u| configure(u))
                        .collect::<Result<_, _>>()?,
                ),
            }),
            None => None,
        };
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let watch = Arc::new(notices::SyncRepWatch::default());
        let manager = match connector {
            Some(tls) => {
                let connect = notices::WatchingConnect {
                    tls,
                    watch: watch.clone(),
                    fence: fence.clone(),
                };
                Manager::from_connect(config, connect, manager_config)
            }
            None => {
                let connect = notices::WatchingConnect {
                    tls: NoTls,
                    watch: watch.clone(),
                    fence,
                };
                Manager::from_connect(config, connect, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(OpenError::Pool)?;
        let placements = placement::Batcher::spawn(pool.clone(), watch.clone());
        let store = Self {
            pool,
            placements,
            watch,
            durable_within: lease_ttl + Duration::from_secs(1),
        };
        store.migrate().await.map_err(OpenError::start)?;
        store
            .warn_if_not_durable()
            .await
            .map_err(OpenError::start)?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // "NOTICE: relation … already exists, skipping" on every start says nothing.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.batch_execute(sql::MIGRATION_LOCK).await?;
        tx.batch_execute(include_str!("schema.sql")).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A 201 promises durability; say so loudly when the server cannot keep it.
    async fn warn_if_not_durable(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        for setting in ["fsync", "synchronous_commit"] {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await?;
            let value: String = row.try_get(0)?;
            if value == "off" {
                tracing::warn!(
                    setting,
                    "PostgreSQL runs with {setting}=off: acknowledged orders can be lost \
                     on power loss; the durability guarantee does NOT hold"
                );
            }
        }
        Ok(())
    }

    async fn body(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        let row = client.query_opt(&stmt, params).await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }
}

/// Waits until every commit this connection can see is as durable as a new commit: a
/// transaction that writes WAL (a transactional logical message: no table, any
/// `wal_level`, any role) waits at its commit for the synchronous standby, which by
/// then has every earlier commit too. (A transaction that only takes an id writes a
/// commit record but does not wait.)
/// A record read from the database may have been committed only locally (its commit's
/// wait for the standby was cancelled, on this gateway or another): replaying it
/// before this would acknowledge an order that a failover can take back.
async fn confirm_durable(
    client: &tokio_postgres::Client,
    watch: &notices::SyncRepWatch,
) -> Result<(), StoreError> {
    let epoch = watch.epoch();
    client
        .batch_execute("SELECT pg_logical_emit_message(true, 'ordergate', 'durable')")
        .await?;
    if watch.cancelled_since(epoch) {
        return Err(StoreError::unavailable(
            "the wait for a standby that confirms a stored record was cancelled",
        ));
    }
    Ok(())
}

/// A pooled connection that goes back to the pool only when [`Guarded::keep`] is
/// called: dropped mid-query (the caller gave up waiting for a standby), it is closed.
struct Guarded(Option<deadpool_postgres::Object>);

impl Guarded {
    fn client(&self) -> Option<&deadpool_postgres::Object> {
        self.0.as_ref()
    }

    fn client_mut(&mut self) -> Option<&mut deadpool_postgres::Object> {
        self.0.as_mut()
    }

    fn keep(mut self) {
        self.0.take();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            retire(client, "a query was given up while it waited");
        }
    }
}

impl PostgresStore {
    /// A write that something outside the database acts on once it returns (the FIX
    /// session sends what it stored): bounded by the lease and a second, since a
    /// commit waiting for a standby that is gone ignores `statement_timeout`, and
    /// refused if a wait for a standby was cancelled meanwhile (committed only
    /// locally). A connection given up on, or on which the write failed, is closed.
    async fn durable_write<T>(
        &self,
        write: impl AsyncFnOnce(&mut deadpool_postgres::Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guarded = Guarded(Some(self.pool.get().await?));
        let epoch = self.watch.epoch();
        let Some(client) = guarded.client_mut() else {
            return Err(StoreError::Invariant(
                "a guarded connection without a client",
            ));
        };
        let written = tokio::time::timeout(self.durable_within, write(client))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::unavailable(
                    "no standby confirmed the write within the lease",
                ))
            })
            .and_then(|done| match self.watch.cancelled_since(epoch) {
                true => Err(StoreError::unavailable(
                    "a wait for a standby was cancelled: the write may be on no standby",
                )),
                false => Ok(done),
            });
        if written.is_ok() {
            guarded.keep();
        }
        written
    }
}

/// One transaction that writes what came of some delivery attempts.
async fn record_on(
    client: &mut deadpool_postgres::Object,
    results: &[DeliveryResult],
) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    let (delivered, others) = DeliveredBatch::split(results);
    for result in others {
        match result {
            DeliveryResult::Retry {
                order_id,
                error,
                next_at_ms,
            } => {
                let stmt = tx.prepare_cached(sql::RETRY_DELIVERY).await?;
                tx.execute(&stmt, &[order_id, error, next_at_ms]).await?
            }
            DeliveryResult::Failed { order_id, error } => {
                let stmt = tx.prepare_cached(sql::FAILED_DELIVERY).await?;
                tx.execute(&stmt, &[order_id, error]).await?
            }
            // Written with the rest of its batch, below.
            DeliveryResult::Delivered { .. } => 0,
        };
    }
    if !delivered.order_ids.is_empty() {
        let stmt = tx.prepare_cached(sql::DELIVERED).await?;
        tx.execute(&stmt, &[&delivered.order_ids, &delivered.at_ms])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Closes `client` instead of returning it to the pool, and says why: a connection to a
/// demoted server (with a multi-host URL and `target_session_attrs=read-write`, the
/// next one reaches the primary), or one stuck on a commit.
fn retire(client: deadpool_postgres::Object, why: &str) {
    tracing::warn!(reason = why, "dropping a database connection");
    drop(deadpool_postgres::Object::take(client));
}

/// How long data sent to the database may go unacknowledged before the connection is
/// given up (`tcp_user_timeout`): a host that vanished (a crashed machine, a cut
/// network) is noticed within this while a statement waits on it.
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(10);

/// Sets what notices a vanished database host within seconds rather than the
/// kernel's defaults (about two hours for an idle connection, about fifteen minutes
/// for a busy one): `tcp_user_timeout` for sent data, and TCP keepalives for idle
/// connections (first probe after 10 s, then every 2 s, 3 probes). A value the URL
/// gives (`tcp_user_timeout`, `keepalives_idle`, `keepalives_interval`,
/// `keepalives_retries`) is kept.
fn detect_vanished_hosts(config: &mut tokio_postgres::Config) {
    config.keepalives(true);
    // The client's own default, which it reports when the URL gave none.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(UNACKNOWLEDGED_LIMIT);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(2));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
}

/// The live record in `row`'s columns `from..from + 5`: fingerprint, status,
/// location, body, milliseconds left.
pub(super) fn live_record_from_row(row: &Row, from: usize) -> Result<LiveRecord, StoreError> {
    let status: i32 = row.try_get(from + 1)?;
    Ok(ordergate_core::RecordRow {
        fingerprint: row.try_get(from)?,
        status: i64::from(status),
        location: row.try_get(from + 2)?,
        body: row.try_get(from + 3)?,
        ms_left: row.try_get(from + 4)?,
    }
    .into_live()?)
}

pub(super) fn is_lock_timeout(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

#[async_trait]
impl RecordStore for PostgresStore {
    /// A record found is confirmed durable before it is returned (see
    /// [`confirm_durable`]), within the lease and a second.
    async fn live_record(&self, key: &ScopedKey) -> Result<Option<LiveRecord>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::LIVE_RECORD).await?;
        let params: [&(dyn ToSql + Sync); 2] = [&key.tenant, &key.key.as_str()];
        let Some(row) = client.query_opt(&stmt, &params).await? else {
            return Ok(None);
        };
        let record = live_record_from_row(&row, 0)?;
        let guarded = Guarded(Some(client));
        let Some(client) = guarded.client() else {
            return Err(StoreError::Invariant(
                "a guarded connection without a client",
            ));
        };
        let confirmed =
            tokio::time::timeout(self.durable_within, confirm_durable(client, &self.watch))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::unavailable(
                        "no standby confirmed the stored record within the lease",
                    ))
                });
        confirmed?;
        guarded.keep();
        Ok(Some(record))
    }

    async fn place(&self, new: NewOrder) -> Result<Placement, StoreError> {
        self.placements.place(new).await
    }

    async fn order_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        self.body(sql::ORDER_BY_ID, &[&id, &tenant]).await
    }

    async fn order_by_key(&self, key: &ScopedKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.body(sql::ORDER_BY_KEY, &[&key.tenant, &key.key.as_str()])
            .await
    }

    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::PURGE_EXPIRED).await?;
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let purged = client.execute(&stmt, &[&limit]).await?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    async fn close(&self) {
        self.placements.close().await;
        self.pool.close();
    }
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn lease_due(
        &self,
        limit: usize,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Leasing writes: on a primary whose standbys left, its commit would wait for
        // ever and stop this gateway's deliverer with it.
        let rows = self
            .durable_write(async |client| {
                let stmt = client.prepare_cached(sql::LEASE_DELIVERIES).await?;
                let rows = client
                    .query(&stmt, &[&now_ms, &limit, &lease_until_ms])
                    .await?;
                Ok(rows)
            })
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingDelivery {
                    order_id: row.try_get(0)?,
                    sequence: row.try_get(1)?,
                    tenant: row.try_get(2)?,
                    body: row.try_get(3)?,
                    accepted_at_ms: row.try_get(4)?,
                    attempts: i64::from(row.try_get::<_, i32>(5)?),
                })
            })
            .collect()
    }

    async fn record_deliveries(&self, results: Vec<DeliveryResult>) -> Result<(), StoreError> {
        self.durable_write(async |client| record_on(client, &results).await)
            .await
    }

    async fn delivery_status(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::DELIVERY_STATUS).await?;
        let Some(row) = client.query_opt(&stmt, &[&id, &tenant]).await? else {
            return Ok(None);
        };
        Ok(Some(DeliveryStatus {
            state: row.try_get(0)?,
            attempts: i64::from(row.try_get::<_, i32>(1)?),
            last_error: row.try_get(2)?,
            delivered_at_ms: row.try_get(3)?,
        }))
    }

    async fn delivery_backlog(&self) -> Result<Backlog, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::DELIVERY_BACKLOG).await?;
        let row = client.query_one(&stmt, &[]).await?;
        Ok(Backlog {
            pending: row.try_get(0)?,
            oldest_accepted_at_ms: row.try_get(1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_host_is_noticed_within_seconds_unless_the_url_says_otherwise() {
        let mut config: tokio_postgres::Config = "postgres://u@h/db".parse().expect("url");
        detect_vanished_hosts(&mut config);
        assert_eq!(config.get_tcp_user_timeout(), Some(&UNACKNOWLEDGED_LIMIT));
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(config.get_keepalives_retries(), Some(3));

        // tokio-postgres reads tcp_user_timeout in seconds (libpq: milliseconds).
        let url = "postgres://u@h/db?tcp_user_timeout=30&keepalives_idle=60&keepalives_interval=5&keepalives_retries=9";
        let mut config: tokio_postgres::Config = url.parse().expect("url");
        detect_vanished_hosts(&mut config);
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(30))
        );
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(config.get_keepalives_retries(), Some(9));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(60));
    }
}
