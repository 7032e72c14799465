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
    /// `GET /orders/{id}/delivery`.
    #[serde(rename_all = "camelCase")]
    DeliveryById { order_id: String },
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

/// The reply in `bytes`, whose answer body is cut out of them rather than copied.
pub fn decode_reply(mut bytes: Vec<u8>) -> Result<Reply, String> {
    let (line, rest) = split_line(&bytes)?;
    let line: ReplyLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let start = bytes.len() - rest.len();
    let end = start
        .checked_add(line.body_len)
        .filter(|&end| end <= bytes.len())
        .ok_or("a reply shorter than its body")?;
    let after = bytes.split_off(end);
    bytes.drain(..start);
    let body = bytes;
    let keep = match line.keep {
        None => None,
        Some(keep) => {
            let fingerprint =
                Fingerprint::from_hex(&keep.fingerprint).ok_or("a malformed fingerprint")?;
            let record_body = if keep.same_body { body.clone() } else { after };
            Some(Kept {
                record: FinishedRecord {
                    fingerprint,
                    response: StoredResponse {
                        status: keep.status,
                        location: keep.location,
                        body: record_body,
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
        body,
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

#[cfg(test)]
mod tests {
    use super::*;
    use ordergate_core::{Outcome, Refusal};

    fn submit() -> Command {
        Command::Submit {
            tenant: "acme".into(),
            key: "k-1".into(),
            shard: 7,
            result_ttl_ms: 86_400_000,
            lease_ttl_ms: 30_000,
            legacy: Some(r#"{"status":201}"#.into()),
        }
    }

    fn record(status: u16, body: &[u8]) -> FinishedRecord {
        FinishedRecord {
            fingerprint: Fingerprint([9; 32]),
            response: StoredResponse {
                status,
                location: "/orders/o-1".into(),
                body: body.to_vec(),
            },
        }
    }

    #[test]
    fn a_command_and_a_body_that_is_not_utf8_arrive_as_sent() {
        let body = b"\xff\n{\"not\":\"json\"\n";
        let bytes = encode(&submit(), body);
        let (command, received) = decode(&bytes).expect("decodes");
        assert_eq!(received, body, "the body after the first line is untouched");
        match command {
            Command::Submit {
                tenant,
                key,
                shard,
                result_ttl_ms,
                lease_ttl_ms,
                legacy,
            } => {
                assert_eq!((tenant.as_str(), key.as_str(), shard), ("acme", "k-1", 7));
                assert_eq!((result_ttl_ms, lease_ttl_ms), (86_400_000, 30_000));
                assert_eq!(legacy.as_deref(), Some(r#"{"status":201}"#));
            }
            other => panic!("a submit, got {other:?}"),
        }
        let lookup = encode(
            &Command::OrderById {
                order_id: "o-1".into(),
            },
            b"",
        );
        assert!(matches!(
            decode(&lookup),
            Ok((Command::OrderById { order_id }, b"")) if order_id == "o-1"
        ));
    }

    #[test]
    fn a_malformed_command_is_an_error() {
        for bytes in [
            &b""[..],
            b"{\"op\":\"submit\"}",
            b"{\"op\":\"drop\"}\n",
            b"not json\n",
        ] {
            assert!(
                decode(bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn a_reused_key_keeps_the_stored_record_not_the_422() {
        let kept = record(201, b"{\"orderId\":\"o-1\"}");
        let remember = Remember {
            record: kept.clone(),
            expires_at_ms: 1_700_000_086_400,
            request_carries_payload: false,
        };
        let answer = Answer::refusal(&Refusal::KeyReused);
        let reply = decode_reply(encode_reply(&answer, Some(&remember))).expect("decodes");
        assert_eq!((reply.status, reply.body), (422, answer.body.clone()));
        let keep = reply.keep.expect("a record to keep");
        assert_eq!(keep.record, kept, "the 201 as stored, body and all");
        assert_eq!(keep.expires_at_ms, 1_700_000_086_400);
        assert!(!keep.carries_payload);
    }

    #[test]
    fn a_created_order_sends_its_body_once_and_keeps_it() {
        let kept = record(201, b"{\"orderId\":\"o-2\"}");
        let remember = Remember {
            record: kept.clone(),
            expires_at_ms: 5,
            request_carries_payload: true,
        };
        let answer = Answer::outcome(Outcome::Created(kept.response.clone()));
        let bytes = encode_reply(&answer, Some(&remember));
        let line_end = bytes.iter().position(|&b| b == b'\n').expect("a line");
        assert_eq!(&bytes[line_end + 1..], kept.response.body, "the body once");
        let reply = decode_reply(bytes.clone()).expect("decodes");
        assert_eq!(reply.status, 201);
        let keep = reply.keep.expect("a record to keep");
        assert_eq!((keep.record, keep.carries_payload), (kept, true));
        assert!(
            reply
                .headers
                .iter()
                .any(|(n, v)| n == "location" && v == "/orders/o-1")
        );
    }

    #[test]
    fn a_truncated_or_bent_reply_is_an_error() {
        let answer = Answer::order(b"{\"a\":1}".to_vec());
        let bytes = encode_reply(&answer, None);
        assert!(
            decode_reply(bytes[..bytes.len() - 1].to_vec()).is_err(),
            "shorter than its body"
        );
        let bent = String::from_utf8(bytes).expect("utf-8").replace("\"keep\":null", "\"keep\":{\"fingerprint\":\"zz\",\"expiresAtMs\":1,\"carriesPayload\":false,\"status\":201,\"location\":\"/\",\"sameBody\":true}");
        assert!(
            decode_reply(bent.into_bytes()).is_err(),
            "a malformed fingerprint"
        );
        assert!(decode_reply(b"no line".to_vec()).is_err());
    }
}
