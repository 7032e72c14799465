//! The webhook sink, signed as Standard Webhooks specify: `webhook-id` (the order id),
//! `webhook-timestamp` (Unix seconds), `webhook-signature: v1,<base64 of
//! HMAC-SHA256(secret, "id.timestamp.body")>`, plus `Idempotency-Key: <orderId>`.
//! A 2xx within 15 s is delivered; keep-alive connections, one message per send and
//! 16 sends in flight at most, each settled on its own (see [`super::Shape`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use ordergate_core::delivery::{webhook_answer, webhook_headers};

use super::{Message, Sent, Shape, Sink};

const TIMEOUT: Duration = Duration::from_secs(15);
const IN_FLIGHT: usize = 16;

pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    key: Vec<u8>,
}

impl Webhook {
    /// `key` signs every message.
    pub fn new(url: &str, key: Vec<u8>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .pool_max_idle_per_host(IN_FLIGHT)
            .build()
            .context("cannot build the webhook client")?;
        Ok(Self {
            client,
            url: url.parse().context("the webhook URL is invalid")?,
            key,
        })
    }

    async fn send_one(&self, message: &Message) -> Sent {
        let id = message.order_id.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut request = self.client.post(self.url.clone());
        for (name, value) in webhook_headers(&self.key, &id, timestamp, &message.body) {
            request = request.header(name, value);
        }
        match request.body(message.body.clone()).send().await {
            Ok(response) => webhook_answer(response.status().as_u16()),
            Err(e) => Sent::Transient(crate::telemetry::cause_chain(&e)),
        }
    }
}

#[async_trait]
impl Sink for Webhook {
    fn shape(&self) -> Shape {
        Shape {
            batch: 1,
            in_flight: IN_FLIGHT,
            json: true,
        }
    }

    async fn send(&self, batch: &[Message]) -> Vec<Sent> {
        futures::future::join_all(batch.iter().map(|message| self.send_one(message))).await
    }
}
