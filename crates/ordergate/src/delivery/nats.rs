//! The NATS JetStream sink: each order is published to `SUBJECT.<tenant>` with
//! `Nats-Msg-Id: <orderId>` and is delivered when JetStream acknowledges it. A batch
//! is published with every acknowledgement outstanding, then the acks are awaited.
//!
//! The stream `ORDERGATE_ORDERS` (subjects `SUBJECT.>`, file storage) is created if
//! missing, with a duplicate window of 10 minutes: a message is sent again only when
//! its acknowledgement was lost, after at most the 5-minute backoff or the 30 s lease,
//! and JetStream drops such a repeat within the window. Beyond it (a window made
//! shorter by an operator, or an outage longer than the window between two tries of
//! one order) a second copy can reach the stream: consumers dedupe by `orderId`.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::{Message, Sent, Shape, Sink};

pub const STREAM: &str = "ORDERGATE_ORDERS";
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct JetStream {
    server: String,
    subject: String,
    context: OnceCell<jetstream::Context>,
}

impl JetStream {
    pub fn new(server: &str, subject: &str) -> Self {
        Self {
            server: server.to_owned(),
            subject: subject.to_owned(),
            context: OnceCell::new(),
        }
    }

    /// Connects (in the background if the server is down) and makes sure the stream
    /// exists; once.
    async fn context(&self) -> Result<&jetstream::Context, String> {
        self.context
            .get_or_try_init(|| async {
                let client = async_nats::ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connect(self.server.as_str())
                    .await
                    .map_err(|e| format!("cannot connect to NATS at {}: {e}", self.server))?;
                let mut context = jetstream::new(client);
                // The acknowledgement futures time out by this; no second timer.
                context.set_timeout(ACK_TIMEOUT);
                self.ensure_stream(&context).await?;
                Ok(context)
            })
            .await
    }

    async fn ensure_stream(&self, context: &jetstream::Context) -> Result<(), String> {
        let config = jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![format!("{}.>", self.subject)],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        let stream = tokio::time::timeout(ACK_TIMEOUT, context.get_or_create_stream(config))
            .await
            .map_err(|_| "NATS did not answer about the stream in time".to_owned())?
            .map_err(|e| format!("cannot create or find the stream {STREAM}: {e}"))?;
        let window = stream.cached_info().config.duplicate_window;
        if window < DUPLICATE_WINDOW {
            tracing::warn!(
                stream = STREAM,
                window = ?window,
                "the stream's duplicate window is shorter than ordergate's retry horizon \
                 (10 min): a message sent again after it is stored twice; consumers must \
                 dedupe by orderId"
            );
        }
        Ok(())
    }

    fn subject_for(&self, tenant: &str) -> String {
        // Tenants are printable ASCII without spaces; wildcards may not be published to.
        let tenant: String = tenant
            .chars()
            .map(|c| if c == '*' || c == '>' { '_' } else { c })
            .collect();
        format!("{}.{tenant}", self.subject)
    }
}

#[async_trait]
impl Sink for JetStream {
    /// Publishes go out back to back and their acknowledgements are awaited together,
    /// so a send carries many messages; a few sends overlap.
    fn shape(&self) -> Shape {
        Shape {
            batch: 256,
            in_flight: 4,
            json: true,
        }
    }

    async fn send(&self, batch: &[Message]) -> Vec<Sent> {
        let context = match self.context().await {
            Ok(context) => context,
            Err(e) => return batch.iter().map(|_| Sent::Transient(e.clone())).collect(),
        };
        let mut acks: Vec<Result<PublishAckFuture, String>> = Vec::with_capacity(batch.len());
        for message in batch {
            let publish = PublishMessage::build()
                .payload(message.body.clone().into())
                .message_id(message.order_id.to_string());
            let sent = context
                .send_publish(self.subject_for(&message.tenant), publish)
                .await
                .map_err(|e| format!("publish failed: {e}"));
            acks.push(sent);
        }
        let mut results = Vec::with_capacity(acks.len());
        for ack in acks {
            // Every failure to publish is worth another try: JetStream refuses no order.
            let result = match ack {
                Ok(ack) => match ack.into_future().await {
                    Ok(_) => Sent::Confirmed,
                    Err(e) => Sent::Transient(format!("JetStream did not acknowledge: {e}")),
                },
                Err(e) => Sent::Transient(e),
            };
            results.push(result);
        }
        results
    }
}
