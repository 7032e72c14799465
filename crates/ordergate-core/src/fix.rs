//! FIX 4.4 for delivery: the tag=value codec, the NewOrderSingle an accepted order
//! becomes, and what the acceptor's answers mean. Pure: the session that drives it (the
//! socket, the timers, the stored numbers) is the server's.
//!
//! Only what an order-sending initiator needs is here: the session messages (logon,
//! heartbeat, test request, resend request, sequence reset, logout, reject) and the
//! order flow (NewOrderSingle out; ExecutionReport, Reject and BusinessMessageReject
//! in). Unknown tags in an incoming message are kept and ignored.

use serde::Deserialize;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use crate::delivery::Sent;

pub const BEGIN_STRING: &str = "FIX.4.4";
const SOH: u8 = 0x01;
/// The longest body accepted from a peer; a NewOrderSingle is about 150 bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Tags used by name.
pub mod tag {
    pub const BEGIN_SEQ_NO: u32 = 7;
    pub const BODY_LENGTH: u32 = 9;
    pub const CHECK_SUM: u32 = 10;
    pub const CL_ORD_ID: u32 = 11;
    pub const END_SEQ_NO: u32 = 16;
    pub const MSG_SEQ_NUM: u32 = 34;
    pub const MSG_TYPE: u32 = 35;
    pub const NEW_SEQ_NO: u32 = 36;
    pub const POSS_DUP_FLAG: u32 = 43;
    pub const REF_SEQ_NUM: u32 = 45;
    pub const SENDER_COMP_ID: u32 = 49;
    pub const SENDING_TIME: u32 = 52;
    pub const TARGET_COMP_ID: u32 = 56;
    pub const TEXT: u32 = 58;
    pub const POSS_RESEND: u32 = 97;
    pub const ENCRYPT_METHOD: u32 = 98;
    pub const ORD_REJ_REASON: u32 = 103;
    pub const HEART_BT_INT: u32 = 108;
    pub const TEST_REQ_ID: u32 = 112;
    pub const ORIG_SENDING_TIME: u32 = 122;
    pub const GAP_FILL_FLAG: u32 = 123;
    pub const EXEC_TYPE: u32 = 150;
    pub const BUSINESS_REJECT_REF_ID: u32 = 379;
}

/// Message types used by name.
pub mod msg_type {
    pub const HEARTBEAT: &str = "0";
    pub const TEST_REQUEST: &str = "1";
    pub const RESEND_REQUEST: &str = "2";
    pub const REJECT: &str = "3";
    pub const SEQUENCE_RESET: &str = "4";
    pub const LOGOUT: &str = "5";
    pub const EXECUTION_REPORT: &str = "8";
    pub const LOGON: &str = "A";
    pub const NEW_ORDER_SINGLE: &str = "D";
    pub const BUSINESS_MESSAGE_REJECT: &str = "j";

    /// Session-level messages: gap-filled, never sent again, on a resend request.
    pub fn is_admin(msg_type: &str) -> bool {
        matches!(msg_type, "0" | "1" | "2" | "3" | "4" | "5" | "A")
    }
}

/// Who speaks to whom: the header's 49 and 56 as this side sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId {
    pub sender: String,
    pub target: String,
}

impl SessionId {
    /// The name the session's state is stored under.
    pub fn key(&self) -> String {
        format!("{BEGIN_STRING}:{}->{}", self.sender, self.target)
    }
}

/// The header of one outgoing message.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub seq: u64,
    pub sending_time_ms: i64,
    /// A message sent again in answer to a resend request: `43=Y` and `122=` the
    /// original sending time.
    pub poss_dup_of_ms: Option<i64>,
}

/// Encodes one message: header, `body` in order, trailer.
pub fn encode(id: &SessionId, msg_type: &str, stamp: Stamp, body: &[(u32, String)]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(160);
    push_field(&mut inner, tag::MSG_TYPE, msg_type);
    push_field(&mut inner, tag::SENDER_COMP_ID, &id.sender);
    push_field(&mut inner, tag::TARGET_COMP_ID, &id.target);
    push_field(&mut inner, tag::MSG_SEQ_NUM, &stamp.seq.to_string());
    if stamp.poss_dup_of_ms.is_some() {
        push_field(&mut inner, tag::POSS_DUP_FLAG, "Y");
    }
    push_field(
        &mut inner,
        tag::SENDING_TIME,
        &utc_timestamp(stamp.sending_time_ms),
    );
    if let Some(original) = stamp.poss_dup_of_ms {
        push_field(&mut inner, tag::ORIG_SENDING_TIME, &utc_timestamp(original));
    }
    for (t, value) in body {
        push_field(&mut inner, *t, value);
    }
    let mut message = Vec::with_capacity(inner.len() + 32);
    push_field(&mut message, 8, BEGIN_STRING);
    push_field(&mut message, tag::BODY_LENGTH, &inner.len().to_string());
    message.extend_from_slice(&inner);
    let sum = checksum(&message);
    push_field(&mut message, tag::CHECK_SUM, &format!("{sum:03}"));
    message
}

fn push_field(out: &mut Vec<u8>, t: u32, value: &str) {
    out.extend_from_slice(t.to_string().as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(SOH);
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// UTCTimestamp with milliseconds: `20261128-03:00:00.000`.
pub fn utc_timestamp(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let format =
        format_description!("[year][month][day]-[hour]:[minute]:[second].[subsecond digits:3]");
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// What the front of a receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet.
    Incomplete,
    /// A whole, well-formed message of this many bytes.
    Message(usize),
    /// Not FIX 4.4, a bad length or a bad checksum: the stream cannot be trusted.
    Garbled(String),
}

/// Finds the first message at the front of `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    let prefix = b"8=FIX.4.4\x019=";
    let head = buf.len().min(prefix.len());
    if buf[..head] != prefix[..head] {
        return Frame::Garbled("the stream does not start a FIX.4.4 message".into());
    }
    if buf.len() <= prefix.len() {
        return Frame::Incomplete;
    }
    let rest = &buf[prefix.len()..];
    let Some(end) = rest.iter().position(|b| *b == SOH) else {
        return if rest.len() > 6 {
            Frame::Garbled("BodyLength is too long".into())
        } else {
            Frame::Incomplete
        };
    };
    let body_len = match std::str::from_utf8(&rest[..end])
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        Some(n) if n <= MAX_BODY => n,
        _ => return Frame::Garbled("BodyLength is not a number within bounds".into()),
    };
    let body_start = prefix.len() + end + 1;
    let trailer_start = body_start + body_len;
    let total = trailer_start + 7;
    if buf.len() < total {
        return Frame::Incomplete;
    }
    let trailer = &buf[trailer_start..total];
    if &trailer[..3] != b"10=" || trailer[6] != SOH {
        return Frame::Garbled("the CheckSum is not where BodyLength says".into());
    }
    let stated = std::str::from_utf8(&trailer[3..6])
        .ok()
        .and_then(|s| s.parse::<u8>().ok());
    if stated != Some(checksum(&buf[..trailer_start])) {
        return Frame::Garbled("bad CheckSum".into());
    }
    Frame::Message(total)
}

/// A parsed message: its fields in order, values as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields(Vec<(u32, String)>);

/// Why a framed message cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("a field is not tag=value")]
    NotTagValue,
    #[error("required tag {0} is missing or malformed")]
    Missing(u32),
}

impl Fields {
    /// Parses one framed message (as [`frame`] measured it).
    pub fn parse(message: &[u8]) -> Result<Self, ParseError> {
        let mut fields = Vec::with_capacity(24);
        for field in message.split(|b| *b == SOH).filter(|f| !f.is_empty()) {
            let eq = field
                .iter()
                .position(|b| *b == b'=')
                .ok_or(ParseError::NotTagValue)?;
            let t = std::str::from_utf8(&field[..eq])
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or(ParseError::NotTagValue)?;
            let value = String::from_utf8_lossy(&field[eq + 1..]).into_owned();
            fields.push((t, value));
        }
        let parsed = Self(fields);
        parsed
            .msg_type()
            .ok_or(ParseError::Missing(tag::MSG_TYPE))?;
        parsed.seq().ok_or(ParseError::Missing(tag::MSG_SEQ_NUM))?;
        Ok(parsed)
    }

    pub fn get(&self, t: u32) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_str())
    }

    pub fn number(&self, t: u32) -> Option<u64> {
        self.get(t).and_then(|v| v.parse().ok())
    }

    pub fn flag(&self, t: u32) -> bool {
        self.get(t) == Some("Y")
    }

    pub fn msg_type(&self) -> Option<&str> {
        self.get(tag::MSG_TYPE)
    }

    pub fn seq(&self) -> Option<u64> {
        self.number(tag::MSG_SEQ_NUM)
    }

    /// Everything but the trailer and the header fields [`encode`] writes itself
    /// (PossResend stays: a message sent again keeps it).
    pub fn body(&self) -> Vec<(u32, String)> {
        const HEADER: [u32; 10] = [8, 9, 10, 35, 49, 56, 34, 43, 52, 122];
        self.0
            .iter()
            .filter(|(t, _)| !HEADER.contains(t))
            .cloned()
            .collect()
    }
}

/// Where an incoming sequence number stands against the one expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// The expected number: process it.
    InOrder,
    /// Higher: messages were missed; ask for them (and process nothing out of order).
    Gap { expected: u64 },
    /// Lower, flagged as a possible duplicate: already seen, ignore it.
    SeenBefore,
    /// Lower and not flagged: the counterparty's numbers went back (it reset or lost
    /// its store). A session error that only a person should resolve.
    TooLow { expected: u64 },
}

pub fn check_sequence(expected: u64, received: u64, poss_dup: bool) -> Sequence {
    if received == expected {
        Sequence::InOrder
    } else if received > expected {
        Sequence::Gap { expected }
    } else if poss_dup {
        Sequence::SeenBefore
    } else {
        Sequence::TooLow { expected }
    }
}

/// The order JSON as stored, for the NewOrderSingle.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredOrder {
    symbol: String,
    side: String,
    quantity: u64,
    #[serde(rename = "type", default)]
    order_type: Option<String>,
    limit_price: Option<String>,
    time_in_force: Option<String>,
}

/// Why an order cannot become a NewOrderSingle (a stored order the core did not write).
#[derive(Debug, thiserror::Error)]
#[error("the stored order cannot be sent over FIX: {0}")]
pub struct MappingError(String);

/// The body of the NewOrderSingle (`35=D`) of an accepted order: `11=` orderId,
/// `1=` tenant, `21=1`, `55=` symbol, `54=` side, `38=` quantity, `40=` order type,
/// `44=` the limit price exactly as accepted, `59=` time in force, `60=` acceptedAt.
pub fn new_order_single(
    order_id: Uuid,
    tenant: &str,
    order_json: &[u8],
    accepted_at_ms: i64,
) -> Result<Vec<(u32, String)>, MappingError> {
    let order: StoredOrder =
        serde_json::from_slice(order_json).map_err(|e| MappingError(e.to_string()))?;
    let side = match order.side.as_str() {
        "buy" => "1",
        "sell" => "2",
        other => return Err(MappingError(format!("side {other:?}"))),
    };
    let (ord_type, price) = match (order.order_type.as_deref(), order.limit_price) {
        (None | Some("market"), None) => ("1", None),
        (Some("limit"), Some(price)) => ("2", Some(price)),
        (other, _) => return Err(MappingError(format!("type {other:?}"))),
    };
    let tif = match order.time_in_force.as_deref() {
        None | Some("day") => "0",
        Some("gtc") => "1",
        Some("ioc") => "3",
        Some("fok") => "4",
        Some(other) => return Err(MappingError(format!("timeInForce {other:?}"))),
    };
    let mut body = vec![
        (tag::CL_ORD_ID, order_id.to_string()),
        (1, tenant.to_owned()),
        (21, "1".to_owned()),
        (55, order.symbol),
        (54, side.to_owned()),
        (38, order.quantity.to_string()),
        (40, ord_type.to_owned()),
    ];
    if let Some(price) = price {
        body.push((44, price));
    }
    body.push((59, tif.to_owned()));
    body.push((60, utc_timestamp(accepted_at_ms)));
    Ok(body)
}

/// The body of a NewOrderSingle sent again after it went unconfirmed: the same
/// fields with `97=Y` (PossResend), so an acceptor that dedupes by ClOrdID places it
/// once.
pub fn poss_resend(mut body: Vec<(u32, String)>) -> Vec<(u32, String)> {
    body.insert(0, (tag::POSS_RESEND, "Y".to_owned()));
    body
}

/// What an incoming application message says about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub order_id: Uuid,
    pub outcome: Sent,
}

/// Reads an ExecutionReport (`35=8`) about one of our orders. Delivered unless it is a
/// rejection (`150=8`); a rejection for a duplicate ClOrdID (`103=6`) means the
/// acceptor already has the order, which counts as delivered for one we sent.
pub fn execution_report(fields: &Fields) -> Option<Answer> {
    let order_id = Uuid::parse_str(fields.get(tag::CL_ORD_ID)?).ok()?;
    let rejected = fields.get(tag::EXEC_TYPE) == Some("8");
    let duplicate = fields.get(tag::ORD_REJ_REASON) == Some("6");
    let outcome = if !rejected || duplicate {
        Sent::Confirmed
    } else {
        Sent::Permanent(rejection_text("the acceptor rejected the order", fields))
    };
    Some(Answer { order_id, outcome })
}

/// The text of a rejection: the acceptor's `58=`, or what it was if it gave none.
pub fn rejection_text(what: &str, fields: &Fields) -> String {
    match fields.get(tag::TEXT) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => what.to_owned(),
    }
}

/// The message a session-level Reject (`35=3`) or BusinessMessageReject (`35=j`)
/// names: by its sequence number (`45=`), and for the latter by its business id
/// (`379=`, the ClOrdID) when given.
pub fn rejected_ref(fields: &Fields) -> (Option<u64>, Option<Uuid>) {
    let by_id = fields
        .get(tag::BUSINESS_REJECT_REF_ID)
        .and_then(|id| Uuid::parse_str(id).ok());
    (fields.number(tag::REF_SEQ_NUM), by_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId {
            sender: "OG".into(),
            target: "OMS".into(),
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).replace('\x01', "|")
    }

    #[test]
    fn a_message_carries_its_length_and_checksum() {
        let stamp = Stamp {
            seq: 1,
            sending_time_ms: 1_795_921_200_000,
            poss_dup_of_ms: None,
        };
        let logon = encode(
            &id(),
            msg_type::LOGON,
            stamp,
            &[(98, "0".into()), (108, "30".into())],
        );
        let body = "35=A|49=OG|56=OMS|34=1|52=20261129-03:00:00.000|98=0|108=30|";
        let expected_prefix = format!("8=FIX.4.4|9={}|{body}", body.len());
        assert!(
            text(&logon).starts_with(&expected_prefix),
            "{}",
            text(&logon)
        );
        assert_eq!(frame(&logon), Frame::Message(logon.len()));
        let sum: u8 = logon[..logon.len() - 7]
            .iter()
            .fold(0u8, |s, b| s.wrapping_add(*b));
        assert!(text(&logon).ends_with(&format!("10={sum:03}|")));
    }

    #[test]
    fn framing_waits_for_a_whole_message_and_refuses_a_bad_one() {
        let stamp = Stamp {
            seq: 7,
            sending_time_ms: 0,
            poss_dup_of_ms: Some(0),
        };
        let hb = encode(&id(), msg_type::HEARTBEAT, stamp, &[]);
        for cut in 0..hb.len() {
            assert_eq!(frame(&hb[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        let mut two = hb.clone();
        two.extend_from_slice(&hb);
        assert_eq!(frame(&two), Frame::Message(hb.len()));
        let mut bad = hb.clone();
        let at = bad.len() - 3;
        bad[at] = if bad[at] == b'9' { b'8' } else { b'9' };
        assert!(matches!(frame(&bad), Frame::Garbled(_)));
        assert!(matches!(frame(b"8=FIX.4.2\x019=5\x01"), Frame::Garbled(_)));
        assert!(matches!(
            frame(b"8=FIX.4.4\x019=99999999\x01"),
            Frame::Garbled(_)
        ));
        let parsed = Fields::parse(&hb).expect("parses");
        assert_eq!(parsed.seq(), Some(7));
        assert!(parsed.flag(tag::POSS_DUP_FLAG));
        assert_eq!(
            parsed.get(tag::ORIG_SENDING_TIME),
            Some("19700101-00:00:00.000")
        );
    }

    #[test]
    fn a_limit_order_maps_to_the_contracts_fields() {
        let order = br#"{"orderId":"0192f0c1-0000-7000-8000-000000000001","status":"accepted","symbol":"AAPL","side":"sell","quantity":250,"type":"limit","limitPrice":"187.2500","timeInForce":"ioc","acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"k"}"#;
        let order_id = Uuid::parse_str("0192f0c1-0000-7000-8000-000000000001").expect("uuid");
        let body = new_order_single(order_id, "acme", order, 1_795_921_200_012).expect("maps");
        let rendered: Vec<String> = body.iter().map(|(t, v)| format!("{t}={v}")).collect();
        assert_eq!(
            rendered,
            [
                "11=0192f0c1-0000-7000-8000-000000000001",
                "1=acme",
                "21=1",
                "55=AAPL",
                "54=2",
                "38=250",
                "40=2",
                "44=187.2500",
                "59=3",
                "60=20261129-03:00:00.012",
            ]
        );
    }

    #[test]
    fn a_receipt_without_terms_is_a_market_order_for_the_day() {
        let order = br#"{"orderId":"x","status":"accepted","symbol":"MSFT","side":"buy","quantity":1,"acceptedAt":"a","idempotencyKey":"k"}"#;
        let body = new_order_single(Uuid::nil(), "t", order, 0).expect("maps");
        assert!(body.contains(&(40, "1".into())));
        assert!(body.contains(&(59, "0".into())));
        assert!(!body.iter().any(|(t, _)| *t == 44));
        assert_eq!(poss_resend(body)[0], (97, "Y".into()));
    }

    fn report(extra: &str) -> Fields {
        let stamp = Stamp {
            seq: 2,
            sending_time_ms: 0,
            poss_dup_of_ms: None,
        };
        let mut body = vec![(11, Uuid::nil().to_string())];
        for field in extra.split('|').filter(|f| !f.is_empty()) {
            let (t, v) = field.split_once('=').expect("tag=value");
            body.push((t.parse().expect("tag"), v.to_owned()));
        }
        Fields::parse(&encode(&id(), msg_type::EXECUTION_REPORT, stamp, &body)).expect("parses")
    }

    #[test]
    fn execution_reports_confirm_or_reject() {
        let confirmed = |extra| execution_report(&report(extra)).map(|a| a.outcome);
        assert_eq!(confirmed("150=0|39=0"), Some(Sent::Confirmed));
        assert_eq!(confirmed("150=F|39=2"), Some(Sent::Confirmed));
        assert_eq!(confirmed("150=8|103=6|58=dup"), Some(Sent::Confirmed));
        assert_eq!(
            confirmed("150=8|103=1|58=unknown symbol"),
            Some(Sent::Permanent("unknown symbol".into()))
        );
        assert!(matches!(confirmed("150=8"), Some(Sent::Permanent(_))));
    }

    #[test]
    fn sequence_numbers_are_judged_against_the_expected_one() {
        assert_eq!(check_sequence(5, 5, false), Sequence::InOrder);
        assert_eq!(check_sequence(5, 9, false), Sequence::Gap { expected: 5 });
        assert_eq!(check_sequence(5, 3, true), Sequence::SeenBefore);
        assert_eq!(
            check_sequence(5, 1, false),
            Sequence::TooLow { expected: 5 }
        );
    }
}
