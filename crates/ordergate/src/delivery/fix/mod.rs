//! The FIX 4.4 sink: ordergate is the initiator of one FIX session to the acceptor of
//! the order-management system or broker, and each order is one NewOrderSingle.
//!
//! The session runs on a task of its own ([`session`]), which alone touches the socket
//! and the session's stored state. The sink hands it orders and waits for each one's
//! answer: delivered on a confirming ExecutionReport, failed at once on a rejection,
//! and tried again (with `97=Y`) when no answer came within [`CONFIRM_WITHIN`] or the
//! session dropped. The deliverer leases nothing while the session is not logged on,
//! so an acceptor outage costs no attempts.

mod live;
mod session;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ordergate_core::fix;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Message, Sent, Shape, Sink, target::FixTarget};
use crate::clock::Clock;
use crate::store::fix::FixStore;
use crate::telemetry::Metrics;

/// How long an order sent waits for its ExecutionReport before it is sent again.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(30);
/// How long the session may take to store and send a batch handed to it.
const HANDOFF_WITHIN: Duration = Duration::from_secs(10);

/// An order for the session to send.
struct Outgoing {
    order_id: Uuid,
    body: Vec<(u32, String)>,
    /// Tried before: sent with PossResend whatever the stored messages say.
    tried_before: bool,
}

/// Orders for the session, and where their answers go (one receiver per order, in
/// order; a dropped sender means the session went down first).
struct SendOrders {
    orders: Vec<Outgoing>,
    reply: oneshot::Sender<Vec<oneshot::Receiver<Sent>>>,
}

/// The FIX sink. Dropping it stops its session.
pub struct Fix {
    orders: mpsc::Sender<SendOrders>,
    up: watch::Receiver<bool>,
    stop: CancellationToken,
    _session: JoinHandle<()>,
}

impl Fix {
    /// Starts the session task: it waits to hold the session, logs on, and keeps the
    /// session up until the sink is dropped.
    pub fn start(
        target: &FixTarget,
        store: Arc<dyn FixStore>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (orders, orders_rx) = mpsc::channel(16);
        let (up_tx, up) = watch::channel(false);
        let stop = CancellationToken::new();
        let runner = session::Runner {
            target: target.clone(),
            store,
            clock,
            metrics,
            orders: orders_rx,
            up: up_tx,
            stop: stop.clone(),
        };
        Self {
            orders,
            up,
            stop,
            _session: tokio::spawn(runner.run()),
        }
    }

    /// Maps each message to its NewOrderSingle; a message that cannot be mapped is
    /// refused for good.
    fn outgoing(batch: &[Message]) -> (Vec<Outgoing>, Vec<Option<Sent>>) {
        let mut orders = Vec::with_capacity(batch.len());
        let mut refused = Vec::with_capacity(batch.len());
        for message in batch {
            match fix::new_order_single(
                message.order_id,
                &message.tenant,
                &message.order,
                message.accepted_at_ms,
            ) {
                Ok(body) => {
                    orders.push(Outgoing {
                        order_id: message.order_id,
                        body,
                        tried_before: message.attempts > 0,
                    });
                    refused.push(None);
                }
                Err(e) => refused.push(Some(Sent::Permanent(e.to_string()))),
            }
        }
        (orders, refused)
    }
}

impl Drop for Fix {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Waits for one order's answer until its deadline.
async fn answer(receiver: oneshot::Receiver<Sent>, deadline: tokio::time::Instant) -> Sent {
    match tokio::time::timeout_at(deadline, receiver).await {
        Ok(Ok(sent)) => sent,
        Ok(Err(_)) => {
            Sent::Transient("the FIX session dropped before the order was confirmed".into())
        }
        Err(_) => Sent::Transient(format!(
            "no ExecutionReport within {} s",
            CONFIRM_WITHIN.as_secs()
        )),
    }
}

#[async_trait]
impl Sink for Fix {
    /// A send is a batch stored in one write and sent in one socket write; its orders
    /// are then confirmed one by one.
    fn shape(&self) -> Shape {
        Shape {
            batch: 64,
            in_flight: 8,
            json: false,
        }
    }

    /// Longer than an order waits for its confirmation, so that no other pass takes it
    /// while it waits.
    fn lease(&self) -> Duration {
        CONFIRM_WITHIN + Duration::from_secs(15)
    }

    fn ready(&self) -> bool {
        *self.up.borrow()
    }

    async fn send(&self, batch: &[Message]) -> Vec<Sent> {
        let (orders, mut results) = Self::outgoing(batch);
        let down = || Sent::Transient("the FIX session is not logged on".into());
        let (reply, replied) = oneshot::channel();
        // The session stores and writes a batch in well under this; one that does not
        // take it in time (its database hangs) must not hold the orders leased.
        let handed = tokio::time::timeout(HANDOFF_WITHIN, async {
            match self.orders.send(SendOrders { orders, reply }).await {
                Ok(()) => replied.await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        });
        let receivers = handed.await.unwrap_or_default();
        let deadline = tokio::time::Instant::now() + CONFIRM_WITHIN;
        let mut receivers = receivers.into_iter();
        for result in results.iter_mut().filter(|r| r.is_none()) {
            *result = Some(match receivers.next() {
                Some(receiver) => answer(receiver, deadline).await,
                None => down(),
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(down))
            .collect()
    }
}
