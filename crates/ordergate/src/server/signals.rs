//! Signals: SIGTERM and Ctrl-C stop the server, SIGHUP re-reads the API keys and the
//! limits file.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::pretrade::PreTrade;

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

/// Re-reads the API keys file and the limits file on SIGHUP, on a blocking thread
/// (the files are read and the tables built there, not on the async workers).
pub fn spawn_reload(auth: Arc<Auth>, pretrade: Option<Arc<PreTrade>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: API keys and limits will not be reloaded");
            return;
        };
        while hangups.recv().await.is_some() {
            let (auth, pretrade) = (auth.clone(), pretrade.clone());
            let reloaded = tokio::task::spawn_blocking(move || {
                reload_keys(&auth);
                if let Some(pretrade) = pretrade {
                    reload_limits(&pretrade);
                }
            });
            if let Err(e) = reloaded.await {
                tracing::error!(error = %e, "reload failed");
            }
        }
    })
}

fn reload_keys(auth: &Auth) {
    match auth.reload() {
        Ok(n) => tracing::info!(tokens = n, "API keys reloaded"),
        Err(e) => tracing::error!(error = %e, "API keys not reloaded; keeping the old ones"),
    }
}

fn reload_limits(pretrade: &PreTrade) {
    match pretrade.reload() {
        Ok(sections) => tracing::info!(tenant_sections = sections, "limits reloaded"),
        Err(e) => tracing::error!(error = %e, "limits not reloaded; keeping the old ones"),
    }
}
