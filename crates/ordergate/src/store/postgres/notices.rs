//! What PostgreSQL says beside a statement's result, where it changes what the result
//! means.
//!
//! With synchronous replication, a commit is flushed locally and then waits for a
//! standby. If that wait is cancelled (`pg_cancel_backend`, a tool or an operator
//! unsticking a zombie primary, or the backend being terminated), PostgreSQL still
//! reports the COMMIT as successful, with only a WARNING notice: "canceling wait for
//! synchronous replication … The transaction has already committed locally, but might
//! not have been replicated to the standby." A failover then takes the row back. So
//! a placement that succeeded while such a notice arrived is not acknowledged: its
//! outcome is unknown (503), and the client's retry with the same key settles it.
//!
//! tokio-postgres hands notices only to whoever drives the connection, so every
//! pooled connection is driven here ([`WatchingConnect`]). A notice is read before
//! the result of the statement it belongs to (the protocol sends it first), so a
//! placement that compares [`SyncRepWatch::epoch`] before and after its statement
//! cannot miss its own. It may also see another connection's: a false 503, which the
//! retry resolves, never a false 201.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Connect;

use super::fence::{self, Fence};
use futures::future::BoxFuture;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};

/// The server function that waits for the standby: every notice it raises says the
/// wait ended without the standby's confirmation. Function names are not translated,
/// so this holds whatever `lc_messages` the server runs with.
const SYNC_REP_WAIT: &str = "SyncRepWaitForLSN";

/// The message of such a notice, for servers that do not send the routine.
const SYNC_REP_CANCELLED: &str = "wait for synchronous replication";

/// Counts the cancelled waits for synchronous replication seen on any connection.
#[derive(Debug, Default)]
pub struct SyncRepWatch {
    cancelled: AtomicU64,
}

impl SyncRepWatch {
    /// Read before a statement; see [`SyncRepWatch::cancelled_since`].
    pub fn epoch(&self) -> u64 {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Whether a wait was cancelled since `epoch`: a commit made in between may not
    /// survive a failover.
    pub fn cancelled_since(&self, epoch: u64) -> bool {
        self.epoch() != epoch
    }

    fn saw(&self, notice: &tokio_postgres::error::DbError) {
        let from_the_wait = notice.routine() == Some(SYNC_REP_WAIT)
            || (notice.message().starts_with("canceling")
                && notice.message().contains(SYNC_REP_CANCELLED));
        if from_the_wait {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
            tracing::error!(
                notice = notice.message(),
                detail = notice.detail().unwrap_or_default(),
                "a commit's wait for synchronous replication was cancelled; \
                 orders committed meanwhile are answered 503, not acknowledged"
            );
        } else {
            tracing::info!(
                severity = notice.severity(),
                notice = notice.message(),
                "PostgreSQL notice"
            );
        }
    }
}

/// Connects as deadpool does, but drives each connection itself to read its notices;
/// with several hosts, connects only to one that passes the [`Fence`].
pub struct WatchingConnect<T> {
    pub tls: T,
    pub watch: Arc<SyncRepWatch>,
    pub fence: Option<Fence>,
}

impl<T> Connect for WatchingConnect<T>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let (tls, watch) = (self.tls.clone(), self.watch.clone());
        let pg_config = pg_config.clone();
        let fence = self.fence.clone();
        Box::pin(async move {
            match fence {
                None => connect_watched(&pg_config, tls, watch).await,
                Some(fence) => connect_fenced(&fence, tls, watch).await,
            }
        })
    }
}

async fn connect_watched<T>(
    config: &tokio_postgres::Config,
    tls: T,
    watch: Arc<SyncRepWatch>,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = config.connect(tls).await?;
    let task = tokio::spawn(async move {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notice(notice))) => watch.saw(&notice),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a PostgreSQL connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    Ok((client, task))
}

/// Tries the hosts in order and keeps the first connection the fence lets through.
async fn connect_fenced<T>(
    fence: &Fence,
    tls: T,
    watch: Arc<SyncRepWatch>,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + Clone + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let mut failure = None;
    let mut unfit = None;
    for host in fence.hosts.iter() {
        match connect_watched(host, tls.clone(), watch.clone()).await {
            Err(e) => failure = Some(e),
            Ok((client, task)) => match client.query_one(fence::UNFIT, &[]).await {
                Ok(row) if !row.try_get::<_, bool>(0).unwrap_or(true) => return Ok((client, task)),
                Ok(_) => {
                    tracing::warn!(host = ?host.get_hosts(), ports = ?host.get_ports(),
                        "skipping a host: a standby, or a primary without its synchronous \
                         standbys (a zombie?)");
                    unfit = Some(client);
                }
                Err(e) => failure = Some(e),
            },
        }
    }
    if let Some(client) = unfit
        && let Err(raised) = client.batch_execute(fence::NO_FIT_HOST).await
    {
        // Every host that answered was unfit: the server's own error says so.
        return Err(raised);
    }
    match failure {
        Some(e) => Err(e),
        // Not reached (the block above always raises): a configuration without a host
        // is the one error left to give.
        None => tokio_postgres::Config::new()
            .connect(tls)
            .await
            .map(|(client, _)| (client, tokio::spawn(async {}))),
    }
}
