//! The single writer thread: group commit for SQLite.
//!
//! SQLite has one writer at a time and a durable commit costs an fsync, so requests
//! queue here and the thread commits everything that queued while the last fsync ran
//! in one transaction. If the batch fails, each request is retried alone, so one
//! failing request does not fail the others in its batch. Every write of the store
//! comes here, delivery outcomes included: one file check and one failure record
//! cover them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpointer::{RestartWanted, restart_wal};
use super::{FileIdentity, sql};
use crate::clock::Clock;
use ordergate_core::Placement;

use crate::store::{DeliveryResult, NewOrder, StoreError};

/// When a commit last failed; shared with the store's readiness check.
pub type FailedAt = Arc<Mutex<Option<Instant>>>;

/// Most jobs in one transaction: bounds a batch's latency, not its throughput.
const MAX_BATCH: usize = 512;

/// Work for the writer thread. Place jobs are nearly all of them, so they are not boxed.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    Place(NewOrder, Reply<Placement>),
    Purge(usize, Reply<usize>),
    /// A tiny write, to learn whether the disk takes writes again.
    Probe(Reply<usize>),
    /// What came of sending leased deliveries.
    Record(Vec<DeliveryResult>, Reply<()>),
    /// Other work that joins the batch's transaction: the FIX session's writes.
    Joined(Box<dyn Joined>),
    /// Take no more jobs: finish those queued, then end the thread.
    Stop,
}

/// Where a job's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work that joins a batch's transaction. It may run twice (when the batch is retried
/// job by job) and is answered once, with the outcome of its commit.
pub trait Joined: Send {
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError>;
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

/// A [`Joined`] job that runs `work` and sends what it returned to `reply`.
pub fn joined<T, F>(reply: Reply<T>, work: F) -> Box<dyn Joined>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    Box::new(JoinedWork {
        work,
        result: None,
        reply,
    })
}

struct JoinedWork<T, F> {
    work: F,
    result: Option<T>,
    reply: Reply<T>,
}

impl<T, F> Joined for JoinedWork<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.result = Some((self.work)(conn)?);
        Ok(())
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let JoinedWork { result, reply, .. } = *self;
        let answer = committed.and_then(|()| {
            result.ok_or(StoreError::Invariant("a joined write ran without a result"))
        });
        let _ = reply.send(answer);
    }
}

/// The jobs that answer with a number of rows.
enum Count {
    Purge(usize),
    Probe,
}

/// A batch sorted by what its jobs answer, so each result goes to a reply of its type.
struct Batch {
    places: Vec<(NewOrder, Reply<Placement>)>,
    counts: Vec<(Count, Reply<usize>)>,
    records: Vec<(Vec<DeliveryResult>, Reply<()>)>,
    joined: Vec<Box<dyn Joined>>,
    stop: bool,
}

/// Starts the writer thread; it ends after a [`Job::Stop`] or when every sender is
/// dropped, once the jobs queued before have been committed and answered.
pub fn spawn(
    conn: Connection,
    clock: Arc<dyn Clock>,
    failed_at: FailedAt,
    restart_wanted: RestartWanted,
    file: FileIdentity,
) -> std::io::Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
    let handle = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, clock, rx, &failed_at, &restart_wanted, &file))?;
    Ok((tx, handle))
}

fn run(
    mut conn: Connection,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Job>,
    failed_at: &FailedAt,
    restart_wanted: &AtomicBool,
    file: &FileIdentity,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        if restart_wanted.swap(false, Ordering::Acquire) {
            restart_wal(&conn);
        }
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let batch = Batch::sort(jobs.drain(..));
        if batch.stop {
            // Further sends fail at once; what is queued still runs below and after.
            rx.close();
        }
        // One stat a batch: a commit into a deleted or replaced file would be lost.
        let committed = match file.check() {
            Ok(()) => commit_batch(&mut conn, clock.now_ms(), batch),
            Err(e) => batch.refuse(&e),
        };
        if !committed {
            // A full disk, say: the store is unready until a probe write succeeds.
            *failed_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
    }
}

impl Batch {
    /// Sorts the jobs. A place job whose lease ran out is answered now and never runs;
    /// the lease of every other place job is taken, so its request waits for the commit.
    fn sort(jobs: std::vec::Drain<'_, Job>) -> Self {
        // Nearly every job places an order: one allocation covers them.
        let mut batch = Self {
            places: Vec::with_capacity(jobs.len()),
            counts: Vec::new(),
            records: Vec::new(),
            joined: Vec::new(),
            stop: false,
        };
        for job in jobs {
            match job {
                Job::Place(new, reply) if !new.lease.take() => {
                    let _ = reply.send(Ok(Placement::Abandoned));
                }
                Job::Place(new, reply) => batch.places.push((new, reply)),
                Job::Purge(limit, reply) => batch.counts.push((Count::Purge(limit), reply)),
                Job::Probe(reply) => batch.counts.push((Count::Probe, reply)),
                Job::Record(results, reply) => batch.records.push((results, reply)),
                Job::Joined(work) => batch.joined.push(work),
                Job::Stop => batch.stop = true,
            }
        }
        batch
    }
}

impl Batch {
    /// Answers every job with the store's failure; false: the store is not writable.
    fn refuse(self, e: &StoreError) -> bool {
        tracing::error!(error = %crate::telemetry::cause_chain(e), "refusing to write");
        let failure = || StoreError::unavailable(crate::telemetry::cause_chain(e));
        for (_, reply) in self.places {
            let _ = reply.send(Err(failure()));
        }
        for (_, reply) in self.counts {
            let _ = reply.send(Err(failure()));
        }
        for (_, reply) in self.records {
            let _ = reply.send(Err(failure()));
        }
        for work in self.joined {
            work.answer(Err(failure()));
        }
        false
    }
}

/// Runs the batch in one transaction and commits it; false if a commit failed.
///
/// Statements in a batch almost never fail on their own (the claim is an upsert), so
/// the batch runs without a savepoint per job. If anything fails, the whole
/// transaction rolls back and each job is retried in a transaction of its own, so a
/// failing job still fails alone.
fn commit_batch(conn: &mut Connection, now_ms: i64, mut batch: Batch) -> bool {
    if batch.places.is_empty()
        && batch.counts.is_empty()
        && batch.records.is_empty()
        && batch.joined.is_empty()
    {
        return true;
    }
    let ran = in_transaction(conn, |tx| {
        let placed = batch
            .places
            .iter()
            .map(|(new, _)| place(tx, new, now_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let counted = batch
            .counts
            .iter()
            .map(|(count, _)| run_count(tx, count, now_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let recorded = batch
            .records
            .iter()
            .map(|(results, _)| sql::record_deliveries(tx, results))
            .collect::<Result<Vec<_>, _>>()?;
        for work in &mut batch.joined {
            work.run(tx)?;
        }
        Ok((placed, counted, recorded))
    });
    match ran {
        Ok((placed, counted, recorded)) => {
            answer_all(batch.places, placed);
            answer_all(batch.counts, counted);
            answer_all(batch.records, recorded);
            for work in batch.joined {
                work.answer(Ok(()));
            }
            true
        }
        Err(e) => {
            let jobs =
                batch.places.len() + batch.counts.len() + batch.records.len() + batch.joined.len();
            tracing::warn!(error = %e, jobs, "group commit failed; committing one by one");
            let mut committed = true;
            for (new, reply) in batch.places {
                let result = in_transaction(conn, |tx| place(tx, &new, now_ms));
                committed &= answer_alone(reply, result);
            }
            for (count, reply) in batch.counts {
                let result = in_transaction(conn, |tx| run_count(tx, &count, now_ms));
                committed &= answer_alone(reply, result);
            }
            for (results, reply) in batch.records {
                let result = in_transaction(conn, |tx| sql::record_deliveries(tx, &results));
                committed &= answer_alone(reply, result);
            }
            for mut work in batch.joined {
                let result = in_transaction(conn, |tx| work.run(tx));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "commit failed");
                }
                committed &= result.is_ok();
                work.answer(result);
            }
            committed
        }
    }
}

/// Runs `work` in one transaction and commits it; on any error nothing is kept.
fn in_transaction<T>(
    conn: &mut Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = work(&tx)?;
    tx.commit()?;
    Ok(done)
}

fn answer_all<J, T>(jobs: Vec<(J, Reply<T>)>, results: Vec<T>) {
    for ((_, reply), result) in jobs.into_iter().zip(results) {
        let _ = reply.send(Ok(result));
    }
}

/// Answers a job committed on its own; false if its commit failed.
fn answer_alone<T>(reply: Reply<T>, result: Result<T, StoreError>) -> bool {
    let committed = result.is_ok();
    if let Err(e) = &result {
        tracing::error!(error = %e, "commit failed");
    }
    let _ = reply.send(result);
    committed
}

fn run_count(conn: &Connection, count: &Count, now_ms: i64) -> Result<usize, StoreError> {
    match count {
        Count::Purge(limit) => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let purged = conn
                .prepare_cached(sql::PURGE_EXPIRED)?
                .execute(rusqlite::params![now_ms, limit])?;
            Ok(purged)
        }
        Count::Probe => {
            conn.pragma_update(None, "user_version", super::SCHEMA_VERSION)?;
            Ok(0)
        }
    }
}

fn place(conn: &Connection, new: &NewOrder, now_ms: i64) -> Result<Placement, StoreError> {
    if sql::claim_and_insert(conn, new, now_ms)? {
        return Ok(Placement::Placed);
    }
    let key = new.order.idempotency_key.as_str();
    match sql::live_record(conn, &new.tenant, key, now_ms)? {
        Some(live) => Ok(Placement::Exists(live)),
        None => Err(StoreError::Invariant("a key neither claimable nor live")),
    }
}
