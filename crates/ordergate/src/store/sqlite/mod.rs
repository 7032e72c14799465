//! The embedded SQLite backend: one file, one process, group-committed writes.
//!
//! Writes go through one writer thread ([`writer`]) in WAL mode with
//! `synchronous=FULL`, so a commit is on disk (fsync) before anyone hears of it. Reads
//! run on reader threads with connections of their own ([`readers`]) and never queue
//! behind the writer.
//!
//! The store owns its threads: [`Store::close`] stops the writer after the queued
//! commits, ends the readers and the checkpointer, joins them all, and only then
//! releases the file lock, so a second process can never open the file while this
//! one still writes to it.

mod checkpointer;
mod fix;
mod leases;
mod readers;
mod sql;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::thread::JoinHandle;

use async_trait::async_trait;
use ordergate_core::{LiveRecord, Placement, ScopedKey};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    Backlog, DeliveryResult, DeliveryStatus, NewOrder, Outbox, PendingDelivery, RecordStore,
    StoreError,
};
use crate::clock::Clock;

const SCHEMA_VERSION: i64 = 4;
/// Reader threads, one connection each.
const READERS: usize = 2;
/// Least time between write probes while commits are failing.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the SQLite store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is in use by another ordergate process (one process per SQLite file)")]
    Locked(PathBuf),
    #[error("cannot set up the database")]
    Database(#[from] rusqlite::Error),
}

/// The SQLite store. Close it with [`Store::close`]; dropping it unclosed ends its
/// threads in the background and releases the lock after them.
pub struct SqliteStore {
    writer: mpsc::Sender<writer::Job>,
    readers: readers::Readers,
    clock: Arc<dyn Clock>,
    /// When a commit last failed (a full disk, say), until a probe write succeeds.
    write_failed_at: writer::FailedAt,
    /// The file opened, to notice it deleted or replaced under the server.
    file: FileIdentity,
    /// The outbox's leases (one process per file: they live here).
    leases: leases::Leases,
    /// Taken by the first close.
    threads: Mutex<Option<Threads>>,
}

/// What the store runs and holds until it is closed.
struct Threads {
    writer: JoinHandle<()>,
    readers: Vec<JoinHandle<()>>,
    checkpointer: checkpointer::Checkpointer,
    /// The one-process lock, and the checkpointer's handle on the file; the OS also
    /// releases it when the process dies.
    lock: Arc<File>,
}

impl Threads {
    /// Waits for every thread to end, then releases the lock. Blocks.
    fn join(self) {
        for thread in std::iter::once(self.writer).chain(self.readers) {
            if thread.join().is_err() {
                tracing::error!("a SQLite store thread panicked");
            }
        }
        self.checkpointer.stop();
        drop(self.lock);
    }
}

impl SqliteStore {
    /// Opens (creating if absent) the database file and takes it for this process.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        let lock = Arc::new(lock_file(path)?);
        // The lock and every connection name the file by one canonical path.
        let path = &std::fs::canonicalize(path).map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })?;
        let io = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        let file = FileIdentity::of(path, &lock).map_err(io)?;
        let conn = connect(path)?;
        configure_writer(&conn)?;
        migrate(&conn)?;
        let (readers, reader_threads) = readers::Readers::spawn(path, READERS)?;
        let restart_wanted = checkpointer::RestartWanted::default();
        let checkpointer =
            checkpointer::Checkpointer::spawn(connect(path)?, lock.clone(), restart_wanted.clone())
                .map_err(io)?;
        let write_failed_at = writer::FailedAt::default();
        let (writer, writer_thread) = writer::spawn(
            conn,
            clock.clone(),
            write_failed_at.clone(),
            restart_wanted,
            file.clone(),
        )
        .map_err(io)?;
        Ok(Self {
            writer,
            readers,
            clock,
            write_failed_at,
            file,
            leases: leases::Leases::default(),
            threads: Mutex::new(Some(Threads {
                writer: writer_thread,
                readers: reader_threads,
                checkpointer,
                lock,
            })),
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

/// The database file this store opened, by device and inode.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    fn of(path: &Path, file: &File) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Fails when the path no longer leads to the file opened: writes would go to a
    /// deleted file, or to one that is not the database.
    pub fn check(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(()),
            Ok(_) => Err(StoreError::unavailable(format!(
                "{} was replaced by another file while the server ran",
                self.path.display()
            ))),
            Err(e) => Err(StoreError::unavailable(format!(
                "{} is gone while the server ran: {e}",
                self.path.display()
            ))),
        }
    }
}

/// A connection to the store's file; every one waits for locks with [`wait_for_lock`].
/// The path is a plain file name: SQLite's URI forms are not interpreted.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
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

/// Brings the schema to [`SCHEMA_VERSION`], one version at a time, each in one
/// transaction with its version stamp.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    const STEPS: [&str; 4] = [
        include_str!("schema.sql"),
        include_str!("schema_2.sql"),
        include_str!("schema_3.sql"),
        include_str!("schema_4.sql"),
    ];
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (to, step) in (1..).zip(STEPS).skip(usize::try_from(version).unwrap_or(0)) {
        conn.execute_batch(&format!(
            "BEGIN; {step}; PRAGMA user_version = {to}; COMMIT;"
        ))?;
    }
    Ok(())
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn live_record(&self, key: &ScopedKey) -> Result<Option<LiveRecord>, StoreError> {
        let (tenant, key) = (key.tenant.clone(), key.key.as_str().to_owned());
        let now_ms = self.clock.now_ms();
        self.read(move |conn| sql::live_record(conn, &tenant, &key, now_ms))
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

    async fn order_by_key(&self, key: &ScopedKey) -> Result<Option<Vec<u8>>, StoreError> {
        let (tenant, key) = (key.tenant.clone(), key.key.as_str().to_owned());
        self.read(move |conn| sql::order_body(conn, sql::ORDER_BY_KEY, params![tenant, key]))
            .await
    }

    async fn purge_expired(&self, batch: usize) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(writer::Job::Purge(batch, reply), answer).await
    }

    /// Reads answer, and writes too. After a failed commit (a full disk, say) the
    /// store stays unready until [`PROBE_INTERVAL`] has passed without another failure
    /// and a tiny write then commits. A commit that happens to fit on a nearly full disk
    /// does not make it ready on its own.
    async fn ping(&self) -> Result<(), StoreError> {
        self.file.check()?;
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?;
        let Some(failed_at) = *lock(&self.write_failed_at) else {
            return Ok(());
        };
        if failed_at.elapsed() < PROBE_INTERVAL {
            return Err(StoreError::unavailable("the last commit failed"));
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

    async fn close(&self) {
        let Some(threads) = lock(&self.threads).take() else {
            return;
        };
        // A closed queue means the writer has ended already.
        let _ = self.writer.send(writer::Job::Stop).await;
        self.readers.stop().await;
        if tokio::task::spawn_blocking(move || threads.join())
            .await
            .is_err()
        {
            tracing::error!("closing the SQLite store failed");
        }
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    /// The due rows are read, and leased in memory (see [`leases`]): no write.
    async fn lease_due(
        &self,
        limit: usize,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = self.leases.rows_to_read(limit, now_ms);
        let due = self
            .read(move |conn| sql::due_deliveries(conn, rows, now_ms))
            .await?;
        Ok(self.leases.take(due, limit, now_ms, lease_until_ms))
    }

    /// Written by the writer with the placements of its batch.
    async fn record_deliveries(&self, results: Vec<DeliveryResult>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let recorded = self
            .send(writer::Job::Record(results.clone(), reply), answer)
            .await;
        if recorded.is_ok() {
            self.leases.release(&results);
        }
        recorded
    }

    async fn delivery_status(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let tenant = tenant.to_owned();
        self.read(move |conn| sql::delivery_status(conn, &tenant, id))
            .await
    }

    async fn delivery_backlog(&self) -> Result<Backlog, StoreError> {
        self.read(sql::delivery_backlog).await
    }
}

impl Drop for SqliteStore {
    /// Unclosed: the senders go with the store, so the threads end once their queues
    /// are empty; a thread of its own waits for them before it releases the lock.
    fn drop(&mut self) {
        if let Some(threads) = lock(&self.threads).take() {
            let waiting = std::thread::Builder::new()
                .name("sqlite-close".into())
                .spawn(move || threads.join());
            if let Err(e) = waiting {
                tracing::error!(error = %e, "cannot wait for the SQLite threads; lock released now");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
