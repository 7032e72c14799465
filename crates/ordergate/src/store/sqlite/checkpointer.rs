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
//! runs a second PASSIVE pass (copying what was written during the first) and asks
//! the writer to restart the WAL between two batches ([`restart_wal`]): a RESTART
//! checkpoint on the writer's own connection copies the last few milliseconds of
//! frames, and the next write starts the file over. That pauses the writer for the
//! copy and one fsync of the database (3-35 ms measured, up to ~300 ms the first
//! time on a cold 600 MB database), and bounds the WAL at 256 MiB.
//!
//! This thread used to run the RESTART itself. It then had to wait for a gap between
//! the writer's transactions, sleeping in SQLite's busy handler while the writer went
//! on, and once it got in it copied everything written meanwhile with the writer held
//! off. Its RESTART calls took 0.5-2 s under load, and at 1 M retained keys the
//! slowest new order waited 435 ms (`ordergate bench`); with the writer restarting,
//! 318 ms, and the later restarts of a run 3-35 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back into the database (see the module's note).
const INTERVAL: Duration = Duration::from_millis(2000);
/// WAL size (in 4 KiB pages) past which the WAL is made to start over: 256 MiB.
const RESTART_FRAMES: i64 = 65_536;

/// The checkpointer thread; [`Checkpointer::stop`] ends it.
pub struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Set by the checkpointer when the WAL should start over; the writer restarts it
/// between two batches ([`restart_wal`]).
pub type RestartWanted = Arc<AtomicBool>;

impl Checkpointer {
    pub fn spawn(conn: Connection, restart_wanted: RestartWanted) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped, &restart_wanted))?;
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

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>, restart_wanted: &AtomicBool) {
    // Ends when the sender is dropped (the store is gone).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        match checkpoint(conn, "PASSIVE") {
            Ok(Checkpoint { frames, .. }) if frames > RESTART_FRAMES => {
                // Copy what was written during the first pass too, so the writer's
                // restart has only the last few milliseconds of frames left to copy.
                if let Err(e) = checkpoint(conn, "PASSIVE") {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                restart_wanted.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
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
        }) => {
            tracing::debug!(frames, took = ?started.elapsed(), "WAL restarted");
        }
        // The checkpointer asks again after its next pass.
        Ok(Checkpoint { busy: true, frames }) => {
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
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Checkpoint> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpoint {
            busy: row.get::<_, i64>(0)? != 0,
            frames: row.get(1)?,
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
