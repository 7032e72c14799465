//! The idempotency protocol's pure decisions: what a request body means for a key, and
//! what a retry gets when the key already has a finished record.

use sha2::{Digest, Sha256};

use crate::controls::ControlRefusal;
use crate::json::JsonValue;
use crate::order::{InvalidOrder, OrderRequest};

/// SHA-256 of a body's RFC 8785 canonical form: equal for "the same payload".
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

impl Fingerprint {
    /// Lowercase hex, for text-only carriers (an HTTP header between two builds' parts).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

/// A request body, parsed once: its fingerprint and its validation both come from here.
#[derive(Debug, Clone)]
pub struct Payload {
    parsed: Result<JsonValue, InvalidOrder>,
    fingerprint: Option<Fingerprint>,
}

impl Payload {
    pub fn from_body(body: &[u8]) -> Self {
        match JsonValue::parse(body) {
            Err(e) => Self {
                parsed: Err(InvalidOrder::body(e.to_string())),
                fingerprint: None,
            },
            Ok(value) => {
                // A repeated member has no canonical form: it matches no stored payload.
                let fingerprint = value
                    .first_repeated_member()
                    .is_none()
                    .then(|| Fingerprint(Sha256::digest(value.canonical_bytes()).into()));
                Self {
                    parsed: Ok(value),
                    fingerprint,
                }
            }
        }
    }

    /// `None` when the body is not JSON or repeats a member.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// The order this body asks for, or why it is not one.
    pub fn order_request(&self) -> Result<OrderRequest, InvalidOrder> {
        match &self.parsed {
            Ok(value) => OrderRequest::from_json(value),
            Err(e) => Err(e.clone()),
        }
    }

    /// The order and the fingerprint it is stored under. A valid order always has a
    /// canonical form (a repeated member is invalid), so one is never stored without.
    pub fn valid_order(&self) -> Result<(OrderRequest, Fingerprint), InvalidOrder> {
        let request = self.order_request()?;
        let fingerprint = self
            .fingerprint
            .ok_or_else(|| InvalidOrder::body("the body has no canonical JSON form"))?;
        Ok((request, fingerprint))
    }
}

/// The answer stored with a finished request, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub location: String,
    pub body: Vec<u8>,
}

/// A key whose request has finished: its payload's fingerprint and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRecord {
    pub fingerprint: Fingerprint,
    pub response: StoredResponse,
}

/// A stored record's columns, as every store keeps them, before they are checked.
#[derive(Debug)]
pub struct RecordRow {
    pub fingerprint: Vec<u8>,
    pub status: i64,
    pub location: String,
    pub body: Vec<u8>,
    /// Milliseconds left by the store's clock; live if above 0.
    pub ms_left: i64,
}

/// Stored columns that break a rule every store relies on: a bug, or a tampered row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.what())]
pub enum CorruptRecord {
    Fingerprint,
    Status,
}

impl CorruptRecord {
    /// The rule broken, for the log.
    pub const fn what(self) -> &'static str {
        match self {
            Self::Fingerprint => "a stored fingerprint is not 32 bytes",
            Self::Status => "a stored status is not an HTTP status",
        }
    }
}

impl RecordRow {
    /// The live record these columns hold.
    pub fn into_live(self) -> Result<LiveRecord, CorruptRecord> {
        let fingerprint = <[u8; 32]>::try_from(self.fingerprint.as_slice())
            .map_err(|_| CorruptRecord::Fingerprint)?;
        let status = u16::try_from(self.status)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or(CorruptRecord::Status)?;
        Ok(LiveRecord {
            record: FinishedRecord {
                fingerprint: Fingerprint(fingerprint),
                response: StoredResponse {
                    status,
                    location: self.location,
                    body: self.body,
                },
            },
            ms_left: self.ms_left,
        })
    }
}

/// A finished record that has not expired, and how long it has left by the store's
/// clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecord {
    pub record: FinishedRecord,
    pub ms_left: i64,
}

/// What came of an attempt to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Claim, order and response are committed.
    Placed,
    /// The key already has a live finished record (a concurrent request won, or this
    /// is a retry that the store found while placing).
    Exists(LiveRecord),
    /// Another transaction holds the key and did not finish in time.
    InProgress,
    /// The request's lease ran out before the store began its transaction.
    Abandoned,
}

/// What a request gets from a key that already has a finished record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryVerdict {
    /// Same payload: the original answer again.
    Replay,
    /// Another payload under the same key: refused, never silently replayed.
    KeyReused,
}

impl FinishedRecord {
    pub fn judge(&self, fingerprint: Option<Fingerprint>) -> RetryVerdict {
        if fingerprint == Some(self.fingerprint) {
            RetryVerdict::Replay
        } else {
            RetryVerdict::KeyReused
        }
    }
}

/// How one `POST /orders` ended, for the HTTP layer to answer and the metrics to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(StoredResponse),
    Replayed(StoredResponse),
    InProgress,
    KeyReused,
    Invalid(InvalidOrder),
    /// A pre-trade control refused a new order; nothing is stored under the key.
    Refused(ControlRefusal),
    /// The store failed or the lease ran out: the order may or may not exist.
    Unavailable,
}

/// Seconds a client should wait before retrying a 409 or a 503 (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl Outcome {
    /// The label used in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created(_) => "created",
            Outcome::Replayed(_) => "replayed",
            Outcome::InProgress => "in_progress",
            Outcome::KeyReused => "key_reused",
            Outcome::Invalid(_) => "invalid",
            Outcome::Refused(control) => control.code().code(),
            Outcome::Unavailable => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_for(body: &str) -> FinishedRecord {
        FinishedRecord {
            fingerprint: Payload::from_body(body.as_bytes())
                .fingerprint()
                .expect("fingerprint"),
            response: StoredResponse {
                status: 201,
                location: "/orders/x".into(),
                body: b"{}".to_vec(),
            },
        }
    }

    #[test]
    fn a_fingerprint_survives_hex() {
        let fingerprint = Fingerprint([0xa5; 32]);
        assert_eq!(
            Fingerprint::from_hex(&fingerprint.to_hex()),
            Some(fingerprint)
        );
        assert_eq!(Fingerprint::from_hex("zz"), None);
        assert_eq!(Fingerprint::from_hex(&"g".repeat(64)), None);
    }

    fn row(fingerprint: Vec<u8>, status: i64) -> RecordRow {
        RecordRow {
            fingerprint,
            status,
            location: "/orders/x".into(),
            body: b"{}".to_vec(),
            ms_left: 5,
        }
    }

    #[test]
    fn a_stored_row_is_a_live_record_only_if_its_columns_keep_the_rules() {
        let live = row(vec![7; 32], 201).into_live().expect("a good row");
        assert_eq!(live.record.fingerprint, Fingerprint([7; 32]));
        assert_eq!((live.record.response.status, live.ms_left), (201, 5));
        for short in [vec![], vec![7; 31], vec![7; 33]] {
            let corrupt = row(short, 201).into_live();
            assert_eq!(corrupt, Err(CorruptRecord::Fingerprint));
        }
        for status in [-201, 0, 99, 600, 65_536 + 201, i64::MAX] {
            let corrupt = row(vec![7; 32], status).into_live();
            assert_eq!(corrupt, Err(CorruptRecord::Status), "{status}");
        }
    }

    #[test]
    fn a_retry_with_an_equivalent_body_replays() {
        let record = record_for(r#"{"symbol":"A","side":"buy","quantity":100}"#);
        let same = Payload::from_body(br#"{ "quantity": 1e2, "side":"buy", "symbol":"\u0041" }"#);
        assert_eq!(record.judge(same.fingerprint()), RetryVerdict::Replay);
    }

    #[test]
    fn a_retry_with_another_body_is_a_reused_key() {
        let record = record_for(r#"{"symbol":"A","side":"buy","quantity":100}"#);
        for other in [
            r#"{"symbol":"A","side":"buy","quantity":101}"#,
            r#"{"symbol":"A","side":"buy","quantity":100,"x":1}"#,
            r#"{"symbol":"A","side":"buy","quantity":100,"quantity":100}"#,
            "not json",
        ] {
            let payload = Payload::from_body(other.as_bytes());
            assert_eq!(record.judge(payload.fingerprint()), RetryVerdict::KeyReused);
        }
    }
}
