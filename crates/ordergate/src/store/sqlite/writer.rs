//! The single writer thread: group commit for SQLite.
//!
//! SQLite has one writer at a time and a durable commit costs an fsync, so requests
//! queue here and the thread commits everything that queued while the last fsync ran
//! in one transaction. If the batch fails, each request is retried alone, so one
//! failing request does not fail the others in its batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpointer::{RestartWanted, restart_wal};
use super::sql;
use crate::clock::Clock;
use crate::store::{NewOrder, Placement, StoreError};

/// When a commit last failed; shared with the store's readiness check.
pub type FailedAt = Arc<Mutex<Option<Instant>>>;

/// Most jobs in one transaction: bounds a batch's latency, not its throughput.
const MAX_BATCH: usize = 512;

/// Work for the writer thread. Place jobs are nearly all of them, so they are not boxed.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    Place(NewOrder, oneshot::Sender<Result<Placement, StoreError>>),
    Purge(usize, oneshot::Sender<Result<usize, StoreError>>),
    /// A tiny write, to learn whether the disk takes writes again.
    Probe(oneshot::Sender<Result<usize, StoreError>>),
}

/// Starts the writer thread; it ends when every sender is dropped.
pub fn spawn(
    conn: Connection,
    clock: Arc<dyn Clock>,
    failed_at: FailedAt,
    restart_wanted: RestartWanted,
) -> std::io::Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
    let handle = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, clock, rx, &failed_at, &restart_wanted))?;
    Ok((tx, handle))
}

fn run(
    mut conn: Connection,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Job>,
    failed_at: &FailedAt,
    restart_wanted: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        if restart_wanted.swap(false, Ordering::Acquire) {
            restart_wal(&conn);
        }
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if !commit_batch(&mut conn, clock.as_ref(), &mut batch) {
            // A full disk, say: the store is unready until a probe write succeeds.
            *failed_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
    }
}

/// Runs the batch in one transaction and commits it; false if a commit failed.
///
/// Statements in a batch almost never fail on their own (the claim is an upsert), so
/// the batch runs without a savepoint per job. If anything fails, the whole
/// transaction rolls back and each job is retried in a transaction of its own, so a
/// failing job still fails alone.
fn commit_batch(conn: &mut Connection, clock: &dyn Clock, batch: &mut Vec<Job>) -> bool {
    let now_ms = clock.now_ms();
    let jobs: Vec<Job> = batch.drain(..).filter_map(take_lease).collect();
    if jobs.is_empty() {
        return true;
    }
    match run_committed(conn, &jobs, now_ms) {
        Ok(results) => {
            jobs.into_iter()
                .zip(results)
                .for_each(|(job, r)| answer(job, Ok(r)));
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; committing one by one");
            let mut committed = true;
            for job in jobs {
                let result = run_committed(conn, std::slice::from_ref(&job), now_ms)
                    .map(|mut results| results.remove(0));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "commit failed");
                    committed = false;
                }
                answer(job, result);
            }
            committed
        }
    }
}

/// A place job whose lease ran out is answered now and never runs; the lease of
/// every other place job is taken, so its request waits for the commit.
fn take_lease(job: Job) -> Option<Job> {
    match job {
        Job::Place(new, reply) if !new.lease.take() => {
            let _ = reply.send(Ok(Placement::Abandoned));
            None
        }
        job => Some(job),
    }
}

/// What a job came to, before its answer is sent.
enum Done {
    Placed(Placement),
    Counted(usize),
}

/// Runs `jobs` in one transaction and commits it; on any error nothing is kept.
fn run_committed(
    conn: &mut Connection,
    jobs: &[Job],
    now_ms: i64,
) -> Result<Vec<Done>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = jobs
        .iter()
        .map(|job| run_job(&tx, job, now_ms))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    Ok(results)
}

fn run_job(conn: &Connection, job: &Job, now_ms: i64) -> Result<Done, StoreError> {
    Ok(match job {
        Job::Place(new, _) => Done::Placed(place(conn, new, now_ms)?),
        Job::Purge(limit, _) => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let purged = conn
                .prepare_cached(sql::PURGE_EXPIRED)?
                .execute(rusqlite::params![now_ms, limit])?;
            Done::Counted(purged)
        }
        Job::Probe(_) => {
            conn.pragma_update(None, "user_version", super::SCHEMA_VERSION)?;
            Done::Counted(0)
        }
    })
}

fn answer(job: Job, result: Result<Done, StoreError>) {
    match job {
        Job::Place(_, reply) => {
            let _ = reply.send(result.and_then(|done| match done {
                Done::Placed(placement) => Ok(placement),
                Done::Counted(_) => Err(StoreError::Database("a count for a placement".into())),
            }));
        }
        Job::Purge(_, reply) | Job::Probe(reply) => {
            let _ = reply.send(result.map(|done| match done {
                Done::Counted(n) => n,
                Done::Placed(_) => 0,
            }));
        }
    }
}

fn place(conn: &Connection, new: &NewOrder, now_ms: i64) -> Result<Placement, StoreError> {
    if sql::claim_and_insert(conn, new, now_ms)? {
        return Ok(Placement::Placed);
    }
    let key = new.order.idempotency_key.as_str();
    match sql::finished(conn, &new.tenant, key, now_ms)? {
        Some(finished) => Ok(Placement::Exists(finished)),
        None => Err(StoreError::Database(
            "key neither claimable nor finished".into(),
        )),
    }
}
