//! What the Worker and a `KeyShard` object say to each other. A request is one JSON
//! line saying what to do, then the client's body, untouched (it may not even be
//! UTF-8). A reply is one JSON line (the answer's status and headers, and the record
//! the Worker may keep, if any), then the answer's body, then the kept record's body
//! when it is not the answer's own.
//!
//! The kept record travels as the record it is: a `422` for a reused key keeps the
//! stored `201`, not the `422`.

use ordergate_core::{Answer, Fingerprint, FinishedRecord, Remember, StoredResponse};
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
    /// The key's live record, if the object holds one (after a shard count change).
    RecordByKey { key: String },
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
    let (command, body) = split_line(bytes)?;
    let command = serde_json::from_slice(command).map_err(|e| e.to_string())?;
    Ok((command, body))
}

/// An object's reply, as the Worker reads it.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep: Option<Kept>,
}

/// A finished record the Worker may keep in its replay cache.
pub struct Kept {
    pub record: FinishedRecord,
    pub expires_at_ms: i64,
    /// The request's bytes carry the record's payload.
    pub carries_payload: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplyLine {
    status: u16,
    headers: Vec<(String, String)>,
    body_len: usize,
    keep: Option<KeepLine>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeepLine {
    fingerprint: String,
    expires_at_ms: i64,
    carries_payload: bool,
    status: u16,
    location: String,
    /// The record's body is the answer's (a `201` or a replay): not sent twice.
    same_body: bool,
}

/// An object's answer, and the record the Worker may keep.
pub fn encode_reply(answer: &Answer, remember: Option<&Remember>) -> Vec<u8> {
    let response = remember.map(|r| &r.record.response);
    let same_body = response.is_some_and(|r| r.body == answer.body);
    let line = ReplyLine {
        status: answer.status,
        headers: answer
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect(),
        body_len: answer.body.len(),
        keep: remember.map(|r| KeepLine {
            fingerprint: r.record.fingerprint.to_hex(),
            expires_at_ms: r.expires_at_ms,
            carries_payload: r.request_carries_payload,
            status: r.record.response.status,
            location: r.record.response.location.clone(),
            same_body,
        }),
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(&answer.body);
    if let Some(response) = response.filter(|_| !same_body) {
        bytes.extend_from_slice(&response.body);
    }
    bytes
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    let (line, rest) = split_line(bytes)?;
    let line: ReplyLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let body = rest
        .get(..line.body_len)
        .ok_or("a reply shorter than its body")?;
    let after = &rest[line.body_len..];
    let keep = match line.keep {
        None => None,
        Some(keep) => {
            let fingerprint =
                Fingerprint::from_hex(&keep.fingerprint).ok_or("a malformed fingerprint")?;
            let record_body = if keep.same_body { body } else { after };
            Some(Kept {
                record: FinishedRecord {
                    fingerprint,
                    response: StoredResponse {
                        status: keep.status,
                        location: keep.location,
                        body: record_body.to_vec(),
                    },
                },
                expires_at_ms: keep.expires_at_ms,
                carries_payload: keep.carries_payload,
            })
        }
    };
    Ok(Reply {
        status: line.status,
        headers: line.headers,
        body: body.to_vec(),
        keep,
    })
}

fn split_line(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no command line")?;
    Ok((&bytes[..newline], &bytes[newline + 1..]))
}
