//! Reader threads: each owns a read connection and takes jobs from one queue.
//!
//! Under load the queue is rarely empty, so a thread runs job after job without
//! sleeping; a pool on tokio's blocking threads paid two thread wake-ups per read,
//! which showed in profiles as most of a replay's or a new order's pre-read cost.
//! Reads never queue behind the writer: they have their own threads and connections.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

enum Job {
    Read(Box<dyn FnOnce(&Connection) + Send>),
    /// Ends the one thread that takes it.
    Stop,
}

/// The read queue; dropping it stops the threads once the queue is empty.
pub struct Readers {
    queue: mpsc::Sender<Job>,
    threads: usize,
}

impl Readers {
    /// Starts `threads` reader threads, each with a connection of its own.
    pub fn spawn(
        path: &Path,
        threads: usize,
    ) -> Result<(Self, Vec<JoinHandle<()>>), super::OpenError> {
        let (queue, jobs) = mpsc::channel::<Job>(4096);
        let jobs = Arc::new(Mutex::new(jobs));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let conn = super::connect(path)?;
            let jobs = jobs.clone();
            let handle = std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || run(&conn, &jobs))
                .map_err(|source| super::OpenError::Io {
                    path: path.to_owned(),
                    source,
                })?;
            handles.push(handle);
        }
        Ok((Self { queue, threads }, handles))
    }

    /// Asks every thread to end once the reads queued before are done.
    pub async fn stop(&self) {
        for _ in 0..self.threads {
            // A closed queue means the threads have ended already.
            let _ = self.queue.send(Job::Stop).await;
        }
    }

    /// Runs `work` on a reader thread.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Read(Box::new(move |conn| {
            let _ = reply.send(work(conn));
        }));
        self.queue.send(job).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: &Connection, jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match job {
            Some(Job::Read(read)) => read(conn),
            Some(Job::Stop) | None => return,
        }
    }
}
