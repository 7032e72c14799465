//! The embedded SQLite backend: one file, one process, group-committed writes.
//!
//! Writes go through one writer thread ([`writer`]) in WAL mode with
//! `synchronous=FULL`, so a commit is on disk (fsync) before anyone hears of it. Reads
//! run on reader threads with connections of their own ([`readers`]) and never queue
//! behind the writer.

mod checkpointer;
mod readers;
mod sql;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ordergate_core::IdempotencyKey;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Finished, NewOrder, Placement, Store, StoreError};
use crate::clock::Clock;

const SCHEMA_VERSION: i64 = 1;
/// Reader threads, one connection each.
const READERS: usize = 2;
/// Least time between write probes while commits are failing.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the SQLite store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is in use by another ordergate process (one process per SQLite file)")]
    Locked(PathBuf),
    #[error("cannot set up the database: {0}")]
    Database(#[from] rusqlite::Error),
}

/// The SQLite store. Dropping it stops the writer after the queued work is done.
pub struct SqliteStore {
    writer: mpsc::Sender<writer::Job>,
    readers: readers::Readers,
    clock: Arc<dyn Clock>,
    /// When a commit last failed (a full disk, say), until a probe write succeeds.
    write_failed_at: writer::FailedAt,
    _checkpointer: checkpointer::Checkpointer,
    // Held for the store's lifetime: the OS releases the lock when the process dies.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if absent) the database file and takes it for this process.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        let lock = lock_file(path)?;
        let conn = connect(path)?;
        configure_writer(&conn)?;
        migrate(&conn)?;
        let readers = readers::Readers::spawn(path, READERS)?;
        let restart_wanted = checkpointer::RestartWanted::default();
        let checkpointer =
            checkpointer::Checkpointer::spawn(connect(path)?, restart_wanted.clone()).map_err(
                |source| OpenError::Io {
                    path: path.to_owned(),
                    source,
                },
            )?;
        let write_failed_at = writer::FailedAt::default();
        let (writer, _thread) =
            writer::spawn(conn, clock.clone(), write_failed_at.clone(), restart_wanted).map_err(
                |source| OpenError::Io {
                    path: path.to_owned(),
                    source,
                },
            )?;
        Ok(Self {
            writer,
            readers,
            clock,
            write_failed_at,
            _checkpointer: checkpointer,
            _lock: lock,
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.read(work).await
    }

    async fn send<T>(
        &self,
        job: writer::Job,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// One process per file: an exclusive advisory lock on the database file itself, so
/// the lock and the data cannot be separated. SQLite locks with fcntl, which this
/// flock does not disturb.
fn lock_file(path: &Path) -> Result<File, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked(path.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// A connection to the store's file; every one waits for locks with [`wait_for_lock`].
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_handler(Some(wait_for_lock))?;
    Ok(conn)
}

/// Waits for a lock in steps of 100 µs, up to 5 s in all. SQLite's own handler sleeps
/// 1, 2, 5, 10, 15 ms ... in turn, so a writer held off by a checkpoint for 3 ms slept
/// for 8, and every request in its batch with it.
fn wait_for_lock(attempt: i32) -> bool {
    const STEP: Duration = Duration::from_micros(100);
    const ATTEMPTS: i32 = 50_000;
    if attempt >= ATTEMPTS {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    // WAL + FULL: every commit fsyncs the WAL before it returns. That fsync is what
    // makes a 201 durable; group commit is what keeps it affordable.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on their own thread (see `checkpointer`), not inside commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(include_str!("schema.sql"))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn finished(
        &self,
        tenant: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Finished>, StoreError> {
        let (tenant, key) = (tenant.to_owned(), key.as_str().to_owned());
        let now_ms = self.clock.now_ms();
        self.read(move |conn| sql::finished(conn, &tenant, &key, now_ms))
            .await
    }

    async fn place(&self, new: NewOrder) -> Result<Placement, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(writer::Job::Place(new, reply), answer).await
    }

    async fn order_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |conn| {
            sql::order_body(conn, sql::ORDER_BY_ID, params![id.to_string(), tenant])
        })
        .await
    }

    async fn order_by_key(
        &self,
        tenant: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (tenant, key) = (tenant.to_owned(), key.as_str().to_owned());
        self.read(move |conn| sql::order_body(conn, sql::ORDER_BY_KEY, params![tenant, key]))
            .await
    }

    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(writer::Job::Purge(batch, reply), answer).await
    }

    /// The writer looks the key up as it claims it, so a separate read first would
    /// only add a second lookup and a hop to a reader thread for every new order.
    fn place_finds_records(&self) -> bool {
        true
    }

    /// Reads answer, and writes too. After a failed commit (a full disk, say) the
    /// store stays unready until [`PROBE_INTERVAL`] has passed without another failure
    /// and a tiny write then commits. A commit that happens to fit on a nearly full disk
    /// does not make it ready on its own.
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?;
        let Some(failed_at) = *lock(&self.write_failed_at) else {
            return Ok(());
        };
        if failed_at.elapsed() < PROBE_INTERVAL {
            return Err(StoreError::Database("writes are failing".into()));
        }
        let (reply, answer) = oneshot::channel();
        self.send(writer::Job::Probe(reply), answer).await?;
        let mut last = lock(&self.write_failed_at);
        // A failure newer than the one probed for keeps the store unready.
        if *last == Some(failed_at) {
            *last = None;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
