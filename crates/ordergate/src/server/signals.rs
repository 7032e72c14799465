//! Signals: SIGTERM and Ctrl-C stop the server, SIGHUP re-reads the API keys.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use crate::auth::Auth;

/// Resolves on the first SIGTERM or Ctrl-C. From then on a second one ends the
/// process at once (exit code 130), for an operator who will not wait for the drain.
///
/// The handlers are registered when this is called, not when the future is first
/// polled: a signal that arrives while the server is still starting up must not take
/// the default action and end the process without a drain.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut signals = StopSignals::register();
    async move {
        signals.recv().await;
        tokio::spawn(async move {
            signals.recv().await;
            tracing::warn!("second stop signal: exiting now, without draining");
            std::process::exit(130);
        });
    }
}

/// SIGTERM and SIGINT, registered with the runtime.
struct StopSignals {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl StopSignals {
    fn register() -> Self {
        Self {
            terminate: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn recv(&mut self) {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(&mut self.terminate) => {},
            () = next(&mut self.interrupt) => {},
        }
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
