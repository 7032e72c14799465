//! The FIX session's state on SQLite. One process owns the file, so it holds every
//! session on it; writes go through the writer thread like every other write.

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{SqliteStore, writer};
use crate::store::StoreError;
use crate::store::fix::{
    FixStore, SentMessage, SessionHold, SessionNumbers, seq_column, seq_from_column,
};

/// The whole file is this process's: so is every session on it.
struct WholeFile;

#[async_trait]
impl SessionHold for WholeFile {
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

const TAKE: &str =
    "INSERT INTO fix_sessions (session, next_out, next_in, epoch) VALUES (?1, 1, 1, 1)
     ON CONFLICT (session) DO UPDATE SET epoch = epoch + 1
     RETURNING next_out, next_in, epoch";
const SET_NUMBERS: &str = "UPDATE fix_sessions SET next_out = max(next_out, ?3), next_in = ?4 WHERE session = ?1 AND epoch = ?2";
const SET_NEXT_IN: &str = "UPDATE fix_sessions SET next_in = ?3 WHERE session = ?1 AND epoch = ?2";
const STORE_SENT: &str = "INSERT OR REPLACE INTO fix_messages
     (session, seq, msg_type, order_id, sent_at_ms, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const SENT_BETWEEN: &str = "SELECT seq, msg_type, order_id, sent_at_ms, message FROM fix_messages
     WHERE session = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq";
const ORDER_SENT: &str = "SELECT 1 FROM fix_messages WHERE order_id = ?2 AND session = ?1 LIMIT 1";
const PRUNE: &str = "DELETE FROM fix_messages WHERE session = ?1 AND seq IN
     (SELECT seq FROM fix_messages WHERE session = ?1 AND sent_at_ms < ?2 LIMIT ?3)";

fn take(conn: &Connection, session: &str) -> Result<SessionNumbers, StoreError> {
    let (next_out, next_in, epoch) = conn.query_row(TAKE, params![session], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get(2)?))
    })?;
    Ok(SessionNumbers {
        next_out: seq_from_column(next_out)?,
        next_in: seq_from_column(next_in)?,
        epoch,
    })
}

fn record_sent(
    conn: &Connection,
    session: &str,
    epoch: i64,
    sent: &[SentMessage],
    next_in: u64,
) -> Result<bool, StoreError> {
    let next_out = sent.iter().map(|m| m.seq + 1).max().unwrap_or(0);
    let ours = conn.prepare_cached(SET_NUMBERS)?.execute(params![
        session,
        epoch,
        seq_column(next_out),
        seq_column(next_in)
    ])?;
    if ours == 0 {
        return Ok(false);
    }
    let mut insert = conn.prepare_cached(STORE_SENT)?;
    for message in sent {
        insert.execute(params![
            session,
            seq_column(message.seq),
            message.msg_type,
            message.order_id.map(|id| id.to_string()),
            message.sent_at_ms,
            message.bytes
        ])?;
    }
    Ok(true)
}

fn sent_between(
    conn: &Connection,
    session: &str,
    from: u64,
    to: u64,
) -> Result<Vec<SentMessage>, StoreError> {
    let mut stmt = conn.prepare_cached(SENT_BETWEEN)?;
    let rows = stmt.query_map(params![session, seq_column(from), seq_column(to)], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Vec<u8>>(4)?,
        ))
    })?;
    rows.map(|row| {
        let (seq, msg_type, order_id, sent_at_ms, bytes) = row?;
        Ok(SentMessage {
            seq: seq_from_column(seq)?,
            msg_type,
            order_id: order_id.and_then(|id| Uuid::parse_str(&id).ok()),
            sent_at_ms,
            bytes,
        })
    })
    .collect()
}

fn orders_sent(
    conn: &Connection,
    session: &str,
    orders: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    let mut stmt = conn.prepare_cached(ORDER_SENT)?;
    let mut sent = HashSet::new();
    for id in orders {
        let found = stmt
            .query_row(params![session, id.to_string()], |_| Ok(()))
            .optional()?;
        if found.is_some() {
            sent.insert(*id);
        }
    }
    Ok(sent)
}

impl SqliteStore {
    /// A write of the session, committed with the writer's next batch (one fsync for
    /// the orders placed meanwhile and the session's messages).
    async fn write_joined<T: Send + 'static>(
        &self,
        work: impl FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(writer::Job::Joined(writer::joined(reply, work)), answer)
            .await
    }
}

#[async_trait]
impl FixStore for SqliteStore {
    async fn hold_session(
        &self,
        _session: &str,
    ) -> Result<Option<Box<dyn SessionHold>>, StoreError> {
        Ok(Some(Box::new(WholeFile)))
    }

    async fn take_session(&self, session: &str) -> Result<SessionNumbers, StoreError> {
        let session = session.to_owned();
        self.write_joined(move |conn| take(conn, &session)).await
    }

    async fn record_sent(
        &self,
        session: &str,
        epoch: i64,
        sent: Vec<SentMessage>,
        next_in: u64,
    ) -> Result<bool, StoreError> {
        let session = session.to_owned();
        self.write_joined(move |conn| record_sent(conn, &session, epoch, &sent, next_in))
            .await
    }

    async fn record_received(
        &self,
        session: &str,
        epoch: i64,
        next_in: u64,
    ) -> Result<bool, StoreError> {
        let session = session.to_owned();
        self.write_joined(move |conn| {
            let ours = conn.prepare_cached(SET_NEXT_IN)?.execute(params![
                session,
                epoch,
                seq_column(next_in)
            ])?;
            Ok(ours > 0)
        })
        .await
    }

    async fn sent_between(
        &self,
        session: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<SentMessage>, StoreError> {
        let session = session.to_owned();
        self.read(move |conn| sent_between(conn, &session, from, to))
            .await
    }

    async fn orders_sent(
        &self,
        session: &str,
        orders: Vec<Uuid>,
    ) -> Result<HashSet<Uuid>, StoreError> {
        let session = session.to_owned();
        self.read(move |conn| orders_sent(conn, &session, &orders))
            .await
    }

    async fn prune_sent(
        &self,
        session: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let session = session.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write_joined(move |conn| {
            Ok(conn
                .prepare_cached(PRUNE)?
                .execute(params![session, before_ms, limit])?)
        })
        .await
    }
}
