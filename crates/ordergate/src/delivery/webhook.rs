//! The webhook sink, signed as Standard Webhooks specify: `webhook-id` (the order id),
//! `webhook-timestamp` (Unix seconds), `webhook-signature: v1,<base64 of
//! HMAC-SHA256(secret, "id.timestamp.body")>`, plus `Idempotency-Key: <orderId>`.
//! A 2xx within 15 s is delivered; keep-alive connections, 16 requests in flight at
//! most (in waves of 16).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Message, Sink};

const TIMEOUT: Duration = Duration::from_secs(15);
const IN_FLIGHT: usize = 16;

pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    key: Vec<u8>,
}

impl Webhook {
    /// `secret` is `whsec_` and the base64 of the key.
    pub fn new(url: &str, secret: &str) -> anyhow::Result<Self> {
        let key = secret_key(secret)?;
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

    async fn send_one(&self, message: &Message) -> Result<(), String> {
        let id = message.order_id.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = sign(&self.key, &id, timestamp, &message.body);
        let response = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", format!("v1,{signature}"))
            .header("idempotency-key", &id)
            .body(message.body.clone())
            .send()
            .await
            .map_err(|e| crate::telemetry::cause_chain(&e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {}", response.status()))
        }
    }
}

#[async_trait]
impl Sink for Webhook {
    async fn send(&self, batch: &[Message]) -> Vec<Result<(), String>> {
        let mut results = Vec::with_capacity(batch.len());
        for wave in batch.chunks(IN_FLIGHT) {
            let sends: Vec<_> = wave.iter().map(|message| self.send_one(message)).collect();
            results.extend(futures::future::join_all(sends).await);
        }
        results
    }
}

/// The key of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = secret
        .strip_prefix("whsec_")
        .context("the webhook secret must look like whsec_<base64>")?;
    let key = STANDARD
        .decode(encoded)
        .context("the webhook secret after whsec_ is not base64")?;
    anyhow::ensure!(!key.is_empty(), "the webhook secret is empty");
    Ok(key)
}

/// The base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(secret_key("nope").is_err());
    }
}
