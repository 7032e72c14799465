//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold,
//! so the writer (and every request in its batch) would wait for pages to be copied
//! into a large database and fsynced; with millions of retained keys that showed as
//! p99 spikes (85 ms at 1 M keys, 740 ms at 10 M). Here the writer never checkpoints:
//! this thread does a PASSIVE checkpoint (it never blocks the writer or readers) every
//! two seconds. Checkpointing more often (200 ms) measured worse: on ext4 the
//! checkpoint's fsync of the database file stalls the WAL's fsync.
//!
//! A PASSIVE checkpoint never lets the WAL start over while writes keep coming (there
//! is always a newer frame), so under steady load the WAL grew by gigabytes (a soak
//! showed 6.8 GB after two minutes). Once it passes [`RESTART_FRAMES`] this thread
//! runs catch-up passes (each copying what was written during the last) and asks the
//! writer to restart the WAL between two batches ([`restart_wal`]): a RESTART
//! checkpoint on the writer's own connection copies the last few milliseconds of
//! frames, and the next write starts the file over. That bounds the WAL at 256 MiB
//! plus what arrives during the catch-up (about 1.3 GB at 10 M retained keys with the
//! purge at full rate, where the catch-up passes no longer shrink).
//!
//! Every pass ends with an fsync of the database file ([`pass`]). SQLite syncs the
//! database only after a checkpoint that copied the whole WAL, which a PASSIVE one
//! under load never does, so the pages it copied stayed dirty in the OS page cache
//! until the writer's restart, whose fsync then wrote them all out with every
//! request waiting: with random keys, restarts took 140-250 ms at 1 M retained keys
//! and 630-920 ms at 10 M, and they were the p99 (110-190 ms and 530-850 ms). With
//! the pages synced here, off the commit path, restarts take 3-12 ms. Passes every
//! 500 ms instead of every 2 s measured no better.
//!
//! This thread used to run the RESTART itself. It then had to wait for a gap between
//! the writer's transactions, sleeping in SQLite's busy handler while the writer went
//! on, and once it got in it copied everything written meanwhile with the writer held
//! off. Its RESTART calls took 0.5-2 s under load, and at 1 M retained keys the
//! slowest new order waited 435 ms (`ordergate bench`); with the writer restarting,
//! 318 ms, and the later restarts of a run 3-35 ms.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back into the database (see the module's note).
const INTERVAL: Duration = Duration::from_millis(2000);
/// WAL size (in 4 KiB pages) past which the WAL is made to start over: 256 MiB.
const RESTART_FRAMES: i64 = 65_536;
/// A catch-up pass that copied fewer frames than this (4 MiB) leaves the writer's
/// restart little to copy and sync (at 10 M retained keys: restarts of 3-12 ms, where
/// 4,096 frames left 6-40 ms).
const FEW_FRAMES: i64 = 1_024;
/// Catch-up passes before a restart at most; each copies what came in during the last.
const CATCH_UP_PASSES: usize = 8;

/// The checkpointer thread; [`Checkpointer::stop`] ends it.
pub struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Set by the checkpointer when the WAL should start over; the writer restarts it
/// between two batches ([`restart_wal`]).
pub type RestartWanted = Arc<AtomicBool>;

impl Checkpointer {
    /// `database` is the store's own handle on the database file, shared rather than
    /// duplicated: closing any descriptor of the file would drop SQLite's fcntl locks.
    pub fn spawn(
        conn: Connection,
        database: Arc<File>,
        restart_wanted: RestartWanted,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &database, &stopped, &restart_wanted))?;
        Ok(Self { stop, thread })
    }

    /// Ends the thread (after the pass it may be in) and waits for it.
    pub fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::error!("the checkpointer thread panicked");
        }
    }
}

fn run(
    conn: &Connection,
    database: &File,
    stopped: &mpsc::Receiver<()>,
    restart_wanted: &AtomicBool,
) {
    // Ends when the sender is dropped (the store is gone).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        match pass(conn, database) {
            Ok(done) if done.frames > RESTART_FRAMES => {
                if catch_up(conn, database, done.copied) {
                    restart_wanted.store(true, Ordering::Release);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// A PASSIVE checkpoint, then the database file's new pages put on disk. Under load
/// SQLite never syncs the database after a PASSIVE checkpoint (only after one that
/// copied the whole WAL), so without this the copied pages piled up in the page cache
/// and the writer's restart had to write them all out while every request waited.
fn pass(conn: &Connection, database: &File) -> Result<Checkpoint, PassError> {
    let done = checkpoint(conn, "PASSIVE")?;
    database.sync_data()?;
    Ok(done)
}

/// Passes until one copies only a few frames, so that the writer's restart has only
/// the last moments to copy and sync; false if a pass failed (no restart then).
fn catch_up(conn: &Connection, database: &File, mut copied: i64) -> bool {
    for _ in 0..CATCH_UP_PASSES {
        match pass(conn, database) {
            Ok(done) => {
                let fresh = done.copied - copied;
                copied = done.copied;
                if fresh < FEW_FRAMES {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                return false;
            }
        }
    }
    true
}

#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] rusqlite::Error),
    #[error("sync of the database file: {0}")]
    Sync(#[from] std::io::Error),
}

/// Makes the WAL start over, on the writer's connection between two batches. The
/// PASSIVE checkpoint that asked for it has copied nearly every frame, so this one
/// copies only what was written since, and never waits for a writer.
pub fn restart_wal(conn: &Connection) {
    let started = std::time::Instant::now();
    match checkpoint(conn, "RESTART") {
        Ok(Checkpoint {
            busy: false,
            frames,
            ..
        }) => {
            tracing::debug!(frames, took = ?started.elapsed(), "WAL restarted");
        }
        // The checkpointer asks again after its next pass.
        Ok(Checkpoint {
            busy: true, frames, ..
        }) => {
            tracing::debug!(
                frames,
                "WAL restart put off: a reader holds an old snapshot"
            );
        }
        Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
    }
}

/// What `PRAGMA wal_checkpoint` reported.
struct Checkpoint {
    /// The checkpoint could not finish: a lock was held past the busy handler's wait.
    busy: bool,
    /// The WAL's size in frames before it.
    frames: i64,
    /// Frames of the WAL copied into the database so far, by this pass and earlier ones.
    copied: i64,
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Checkpoint> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpoint {
            busy: row.get::<_, i64>(0)? != 0,
            frames: row.get(1)?,
            copied: row.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(conn: &Connection) -> i64 {
        checkpoint(conn, "PASSIVE").expect("checkpoint").frames
    }

    #[test]
    fn a_pass_copies_the_wal_and_catching_up_ends_once_little_is_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no autocheckpoint");
        conn.execute_batch("CREATE TABLE t (v BLOB)")
            .expect("table");
        for _ in 0..200 {
            conn.execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .expect("insert");
        }
        let database = File::open(&path).expect("database file");

        let done = pass(&conn, &database).expect("pass");
        assert!(done.frames > 200, "every insert appended frames");
        assert_eq!(done.copied, done.frames, "an idle WAL is copied whole");
        assert!(
            catch_up(&conn, &database, done.copied),
            "nothing left to copy"
        );
        let again = pass(&conn, &database).expect("pass");
        assert_eq!(again.copied, done.copied, "no new frames, none copied");
    }

    #[test]
    fn a_restart_on_the_writer_makes_the_next_write_start_the_wal_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no autocheckpoint");
        writer
            .execute_batch("CREATE TABLE t (v BLOB)")
            .expect("table");
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .expect("insert");
        }
        let checkpointer = Connection::open(&path).expect("open");
        let before = wal_frames(&checkpointer);
        assert!(before > 200, "every insert appended frames: {before}");
        // Under load there are always frames the last PASSIVE checkpoint did not copy,
        // so a write alone never starts the WAL over.
        for _ in 0..50 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
                .expect("insert");
        }

        restart_wal(&writer);
        writer
            .execute("INSERT INTO t VALUES (zeroblob(3000))", [])
            .expect("insert");
        let after = wal_frames(&checkpointer);
        assert!(after < 10, "the WAL started over: {after} frames");
        let rows: i64 = checkpointer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 251, "nothing was lost");
    }
}
