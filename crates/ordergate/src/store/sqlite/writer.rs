//! The single writer thread: group commit for SQLite.
//!
//! SQLite has one writer at a time and a durable commit costs an fsync, so requests
//! queue here and the thread commits everything that queued while the last fsync ran
//! in one transaction. Each request gets a savepoint, so one failing request does not
//! fail the others in its batch.

use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

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
) -> std::io::Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
    let handle = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, clock, rx, &failed_at))?;
    Ok((tx, handle))
}

fn run(
    mut conn: Connection,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<Job>,
    failed_at: &FailedAt,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
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

/// What each job will be answered once the batch's fate is known.
enum Answer {
    Place(
        oneshot::Sender<Result<Placement, StoreError>>,
        Result<Placement, StoreError>,
    ),
    Purge(
        oneshot::Sender<Result<usize, StoreError>>,
        Result<usize, StoreError>,
    ),
}

/// Runs and commits one batch; false if the commit failed.
fn commit_batch(conn: &mut Connection, clock: &dyn Clock, batch: &mut Vec<Job>) -> bool {
    let now_ms = clock.now_ms();
    let mut answers = Vec::with_capacity(batch.len());
    let outcome = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::from)
        .and_then(|mut tx| {
            for job in batch.drain(..) {
                answers.push(run_job(&mut tx, job, now_ms));
            }
            tx.commit().map_err(StoreError::from)
        });
    if let Err(e) = &outcome {
        tracing::error!(error = %e, jobs = answers.len().max(batch.len()), "group commit failed");
    }
    // Jobs never run (the transaction did not begin) still need an answer.
    for job in batch.drain(..) {
        answers.push(match job {
            Job::Place(_, reply) => Answer::Place(reply, Err(StoreError::Closed)),
            Job::Purge(_, reply) | Job::Probe(reply) => {
                Answer::Purge(reply, Err(StoreError::Closed))
            }
        });
    }
    let committed = outcome.is_ok();
    for answer in answers {
        send(answer, outcome.as_ref().err());
    }
    committed
}

/// Answers a job; a failed commit turns every result into that failure.
fn send(answer: Answer, commit_error: Option<&StoreError>) {
    let failed = |e: &StoreError| StoreError::Database(e.to_string());
    match answer {
        Answer::Place(reply, result) => {
            let _ = reply.send(match commit_error {
                Some(e) if !matches!(result, Ok(Placement::Abandoned)) => Err(failed(e)),
                _ => result,
            });
        }
        Answer::Purge(reply, result) => {
            let _ = reply.send(commit_error.map_or(result, |e| Err(failed(e))));
        }
    }
}

fn run_job(tx: &mut rusqlite::Transaction<'_>, job: Job, now_ms: i64) -> Answer {
    match job {
        Job::Place(new, reply) => {
            if !new.lease.take() {
                return Answer::Place(reply, Ok(Placement::Abandoned));
            }
            Answer::Place(reply, in_savepoint(tx, |c| place(c, &new, now_ms)))
        }
        Job::Purge(limit, reply) => {
            let purged = in_savepoint(tx, |c| {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                Ok(c.prepare_cached(sql::PURGE_EXPIRED)?
                    .execute(rusqlite::params![now_ms, limit])?)
            });
            Answer::Purge(reply, purged)
        }
        Job::Probe(reply) => {
            let probed = in_savepoint(tx, |c| {
                c.pragma_update(None, "user_version", super::SCHEMA_VERSION)?;
                Ok(0)
            });
            Answer::Purge(reply, probed)
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

/// Runs `work` in a savepoint: on error only its own changes are rolled back.
/// The savepoint statements are prepared once (rusqlite's `Savepoint` re-parses them
/// for every job, which showed in the writer's profile).
fn in_savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("SAVEPOINT job")?;
    match work(tx) {
        Ok(result) => {
            run("RELEASE job")?;
            Ok(result)
        }
        Err(e) => {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
            Err(e)
        }
    }
}
