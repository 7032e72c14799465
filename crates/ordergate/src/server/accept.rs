//! The accept loop: HTTP/1.1 only, every connection bounded in time and memory, a
//! connection cap the process can hold, accept errors backed off, and shutdown seen
//! even with every slot taken.
//!
//! Worst case of what connections can hold: [`max_connections`] (1,024 at most) ×
//! (the read buffer, [`MAX_BUF_BYTES`], plus a body of `--max-body`, 64 KiB by default,
//! plus a few KiB of response and task) ≈ 136 MiB with the defaults.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Most connections served at once, if the file-descriptor limit allows as many;
/// further clients wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// File descriptors kept for everything but client connections (the database, its
/// pool, the listener, logs).
const RESERVED_FDS: u64 = 128;
/// How long a client may take to send a request's headers, from the moment the
/// connection is open or the last response went out: a silent or idle connection is
/// closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a connection buffers while it reads: bounds the header section (a larger
/// one is answered 431 by hyper) and the memory of a connection.
pub const MAX_BUF_BYTES: usize = 64 * 1024;
/// Kernel probes on idle sockets, so that half-open connections of vanished clients
/// are found and closed (after about 90 s).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_RETRIES: u32 = 3;
/// First and longest pause after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line about failed accepts this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Raises the soft limit of open files to the hard limit, and answers how many
/// connections the process can then hold.
pub fn max_connections() -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let usable = soft.saturating_sub(RESERVED_FDS).max(8);
    let cap = usize::try_from(usable).map_or(MAX_CONNECTIONS, |n| n.min(MAX_CONNECTIONS));
    if cap < MAX_CONNECTIONS {
        tracing::warn!(
            open_files = soft,
            connections = cap,
            "the open-files limit allows fewer connections than {MAX_CONNECTIONS}"
        );
    }
    cap
}

/// Serves `app` on `listener`, at most `connections` at once, until `shutdown`
/// resolves; then stops accepting and lets open connections finish, up to
/// `drain_timeout`.
pub async fn run(
    listener: TcpListener,
    app: axum::Router,
    connections: usize,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_BYTES);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(connections));
    let mut backoff = AcceptBackoff::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Both waits race the shutdown: a full server still hears SIGTERM.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    tokio::select! {
                        () = backoff.failed(&e) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        configure(&stream);
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout reached with requests still in flight");
    }
}

fn configure(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Pauses after failed accepts, doubling up to a second, and logs them at most once
/// every few seconds: a process out of file descriptors must not spin or flood its log.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
    failures: u64,
    logged_at: Option<Instant>,
}

impl AcceptBackoff {
    fn succeeded(&mut self) {
        self.pause = None;
    }

    async fn failed(&mut self, e: &std::io::Error) {
        self.failures += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
        {
            tracing::warn!(error = %e, failures = self.failures, "accept failed; backing off");
            self.logged_at = Some(Instant::now());
            self.failures = 0;
        }
        let pause = self
            .pause
            .map_or(ACCEPT_BACKOFF_MIN, |p| (p * 2).min(ACCEPT_BACKOFF_MAX));
        self.pause = Some(pause);
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_up_to_a_second_and_start_over_after_a_success() {
        let mut backoff = AcceptBackoff::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        let started = tokio::time::Instant::now();
        for _ in 0..100 {
            backoff.failed(&emfile).await;
        }
        // 5, 10, ... 640 ms, then a second for each of the other 92: no spinning.
        assert!(started.elapsed() >= Duration::from_secs(92));
        assert_eq!(backoff.pause, Some(ACCEPT_BACKOFF_MAX));
        backoff.succeeded();
        assert_eq!(backoff.pause, None);
    }
}
