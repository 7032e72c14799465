//! Signals: SIGTERM and Ctrl-C stop the server, SIGHUP re-reads the API keys.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use crate::auth::Auth;

/// Resolves on the first SIGTERM or Ctrl-C. From then on a second one ends the
/// process at once (exit code 130), for an operator who will not wait for the drain.
pub async fn shutdown_signal() {
    stop_requested().await;
    tokio::spawn(async {
        stop_requested().await;
        tracing::warn!("second stop signal: exiting now, without draining");
        std::process::exit(130);
    });
}

async fn stop_requested() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}

/// Re-reads the API keys file on SIGHUP, on a blocking thread (the file is read and
/// the table built there, not on the async workers).
pub fn spawn_key_reload(auth: Arc<Auth>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: API keys will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            let auth = auth.clone();
            let reloaded = tokio::task::spawn_blocking(move || auth.reload()).await;
            match reloaded {
                Ok(Ok(n)) => tracing::info!(tokens = n, "API keys reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "API keys not reloaded; keeping the old ones")
                }
                Err(e) => tracing::error!(error = %e, "API key reload failed"),
            }
        }
    })
}
