//! WAL checkpoints on a thread of their own.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold,
//! so the writer (and every request in its batch) would wait for pages to be copied
//! into a large database and fsynced; with millions of retained keys that showed as
//! p99 spikes (85 ms at 1 M keys, 740 ms at 10 M). Here the writer never checkpoints:
//! this thread does a PASSIVE checkpoint (it never blocks the writer or readers) every
//! two seconds, which bounds the WAL. Checkpointing more often (200 ms) measured worse:
//! on ext4 the checkpoint's fsync of the database file stalls the WAL's fsync.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back into the database (see the module's note).
const INTERVAL: Duration = Duration::from_millis(2000);

/// Stops the checkpointer when dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub fn spawn(conn: Connection) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))?;
        Ok(Self { _stop: stop })
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    // Ends when the sender is dropped (the store is gone).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        });
        match result {
            Ok((_, wal_frames, checkpointed)) => {
                tracing::trace!(wal_frames, checkpointed, "checkpoint");
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}
