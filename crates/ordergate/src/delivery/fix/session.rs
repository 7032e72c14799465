//! The session task: hold the session (one gateway at a time), take its stored
//! numbers, connect and log on, and start again with backoff whenever the connection
//! ends. Orders that arrive while no connection is logged on are refused at once, as
//! not sent.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::SendOrders;
use super::live::Live;
use crate::clock::Clock;
use crate::delivery::target::FixTarget;
use crate::store::fix::{FixStore, SessionHold};
use crate::telemetry::Metrics;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a gateway that does not hold the session asks for it again.
const HOLD_RETRY: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

pub(super) struct Runner {
    pub target: FixTarget,
    pub store: Arc<dyn FixStore>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub orders: mpsc::Receiver<SendOrders>,
    pub up: watch::Sender<bool>,
    pub stop: CancellationToken,
}

/// How a connection ended.
pub(super) enum Ended {
    /// The gateway is stopping.
    Stopped,
    /// The hold lapsed or another gateway took the session: let it go.
    LostHold(String),
    /// Refused, lost, timed out or garbled: connect again after a pause.
    Dropped { why: String, logged_on: bool },
}

impl Runner {
    pub async fn run(mut self) {
        let key = self.target.session.key();
        while let Some(hold) = self.wait_for_hold(&key).await {
            tracing::info!(session = %key, "this gateway holds the FIX session");
            if !self.while_held(&key, hold.as_ref()).await {
                break;
            }
        }
        tracing::info!(session = %key, "the FIX session task stopped");
    }

    /// Connects again and again while the session is held; false when stopping.
    async fn while_held(&mut self, key: &str, hold: &dyn SessionHold) -> bool {
        let mut retry = FIRST_RETRY;
        loop {
            let ended = self.connect_once(key, hold).await;
            self.up.send_replace(false);
            self.metrics.fix_session_up(false);
            match ended {
                Ended::Stopped => return false,
                Ended::LostHold(why) => {
                    tracing::warn!(session = %key, reason = %why, "letting the FIX session go");
                    return true;
                }
                Ended::Dropped { why, logged_on } => {
                    if logged_on {
                        retry = FIRST_RETRY;
                    }
                    tracing::warn!(session = %key, reason = %why, retry_in = ?retry,
                        "the FIX session is down; connecting again");
                    if !self.pause(retry).await {
                        return false;
                    }
                    retry = (retry * 2).min(LAST_RETRY);
                }
            }
        }
    }

    async fn wait_for_hold(&mut self, key: &str) -> Option<Box<dyn SessionHold>> {
        loop {
            match self.store.hold_session(key).await {
                Ok(Some(hold)) => return Some(hold),
                Ok(None) => {
                    tracing::debug!(session = %key, "another gateway holds the FIX session")
                }
                Err(e) => {
                    tracing::warn!(session = %key, error = %crate::telemetry::cause_chain(&e),
                    "cannot ask for the FIX session")
                }
            }
            if !self.pause(HOLD_RETRY).await {
                return None;
            }
        }
    }

    async fn connect_once(&mut self, key: &str, hold: &dyn SessionHold) -> Ended {
        let dropped = |why: String| Ended::Dropped {
            why,
            logged_on: false,
        };
        let numbers = match self.store.take_session(key).await {
            Ok(numbers) => numbers,
            Err(e) => {
                return dropped(format!(
                    "cannot take the FIX session's stored state: {}",
                    crate::telemetry::cause_chain(&e)
                ));
            }
        };
        let address = self.target.address.clone();
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return dropped(format!("cannot connect to {address}: {e}")),
            Err(_) => return dropped(format!("no connection to {address} within 5 s")),
        };
        let _ = stream.set_nodelay(true);
        Live::new(self, key, hold, numbers, stream).run().await
    }

    /// Waits `pause`, refusing the orders that arrive meanwhile; false when stopping.
    async fn pause(&mut self, pause: Duration) -> bool {
        let until = tokio::time::Instant::now() + pause;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = tokio::time::sleep_until(until) => return true,
                Some(refused) = self.orders.recv() => drop(refused),
            }
        }
    }
}
