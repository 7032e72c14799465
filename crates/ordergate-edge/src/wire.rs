//! What the Worker sends a `KeyShard` object: one JSON line saying what to do, then
//! the client's body, untouched (it may not even be UTF-8).

use serde::{Deserialize, Serialize};

/// What an object is asked to do.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    /// `POST /orders` with the body after the line.
    #[serde(rename_all = "camelCase")]
    Submit {
        tenant: String,
        key: String,
        /// The object's shard, which the order id will carry.
        shard: u16,
        result_ttl_ms: i64,
        lease_ttl_ms: i64,
        /// The old worker's stored answer for this key, when it had one.
        legacy: Option<String>,
    },
    /// `GET /orders/{id}`.
    #[serde(rename_all = "camelCase")]
    OrderById { order_id: String },
    /// `GET /orders?idempotencyKey=K`.
    OrderByKey { key: String },
}

/// The request body an object receives.
pub fn encode(command: &Command, body: &[u8]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(command).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes
}

/// The command and the client's body.
pub fn decode(bytes: &[u8]) -> Result<(Command, &[u8]), String> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no command line")?;
    let command = serde_json::from_slice(&bytes[..newline]).map_err(|e| e.to_string())?;
    Ok((command, &bytes[newline + 1..]))
}
