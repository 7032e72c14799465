//! The FIX session's half of a backend: the session's sequence numbers and the
//! messages it sent, kept in the gateway's own database so that they survive restarts,
//! `kill -9` and a change of the gateway that holds the session.
//!
//! One gateway holds a session at a time ([`FixStore::hold_session`]). Taking the
//! session raises its epoch, and every write names the epoch it was taken at: a
//! gateway whose hold lapsed without its noticing writes nothing more (the write
//! answers `false`), so two holders can never interleave their numbers.

use std::collections::HashSet;

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;

/// A session's stored numbers, as a holder takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionNumbers {
    /// The sequence number of the next message sent.
    pub next_out: u64,
    /// The sequence number expected of the next message received.
    pub next_in: u64,
    /// Raised by every take; writes are fenced by it.
    pub epoch: i64,
}

/// One message as sent, stored before its bytes leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub seq: u64,
    pub msg_type: String,
    /// The order a NewOrderSingle carries.
    pub order_id: Option<Uuid>,
    pub sent_at_ms: i64,
    pub bytes: Vec<u8>,
}

/// This gateway's hold on a session; dropping it lets the session go.
#[async_trait]
pub trait SessionHold: Send + Sync {
    /// Fails once the hold may have lapsed (its database connection broke).
    async fn check(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait FixStore: Send + Sync + 'static {
    /// Holds the session for this gateway; `None` while another gateway holds it.
    async fn hold_session(&self, session: &str)
    -> Result<Option<Box<dyn SessionHold>>, StoreError>;

    /// Takes the held session: raises its epoch (creating it at 1 and 1) and answers
    /// its numbers.
    async fn take_session(&self, session: &str) -> Result<SessionNumbers, StoreError>;

    /// Stores messages about to be sent, the next outgoing number after the last of
    /// them, and the next incoming number; `false` if another take fenced this one out.
    async fn record_sent(
        &self,
        session: &str,
        epoch: i64,
        sent: Vec<SentMessage>,
        next_in: u64,
    ) -> Result<bool, StoreError>;

    /// Stores the next incoming number; `false` if fenced out.
    async fn record_received(
        &self,
        session: &str,
        epoch: i64,
        next_in: u64,
    ) -> Result<bool, StoreError>;

    /// The stored messages numbered `from..=to`, in order (pruned ones are absent).
    async fn sent_between(
        &self,
        session: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<SentMessage>, StoreError>;

    /// Which of these orders a stored NewOrderSingle of the session carried.
    async fn orders_sent(
        &self,
        session: &str,
        orders: Vec<Uuid>,
    ) -> Result<HashSet<Uuid>, StoreError>;

    /// Deletes up to `limit` stored messages sent before `before_ms`; how many.
    async fn prune_sent(
        &self,
        session: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError>;
}

/// A sequence number as both databases store it (a signed 64-bit column).
pub(crate) fn seq_column(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored sequence number; a negative one is a tampered row.
pub(crate) fn seq_from_column(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Invariant("a negative FIX sequence number"))
}
