//! The FIX session's state on PostgreSQL. Several gateways share the database and FIX
//! allows one connection per session: the holder is the gateway holding the session's
//! advisory lock, on a connection of its own taken out of the pool. When that gateway
//! dies, its connection closes, the lock goes with it, and another gateway takes it.

use std::collections::HashSet;

use async_trait::async_trait;
use uuid::Uuid;

use super::PostgresStore;
use crate::store::StoreError;
use crate::store::fix::{
    FixStore, SentMessage, SessionHold, SessionNumbers, seq_column, seq_from_column,
};

const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended('ordergate-fix:' || $1, 0))";
const TAKE: &str =
    "INSERT INTO fix_sessions (session, next_out, next_in, epoch) VALUES ($1, 1, 1, 1)
     ON CONFLICT (session) DO UPDATE SET epoch = fix_sessions.epoch + 1
     RETURNING next_out, next_in, epoch";
const SET_NUMBERS: &str = "UPDATE fix_sessions SET next_out = greatest(next_out, $3), next_in = $4
     WHERE session = $1 AND epoch = $2";
const SET_NEXT_IN: &str = "UPDATE fix_sessions SET next_in = $3 WHERE session = $1 AND epoch = $2";
const STORE_SENT: &str = "INSERT INTO fix_messages (session, seq, msg_type, order_id, sent_at_ms, message)
     SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::uuid[], $5::bigint[], $6::bytea[])
     ON CONFLICT (session, seq) DO UPDATE SET msg_type = excluded.msg_type,
         order_id = excluded.order_id, sent_at_ms = excluded.sent_at_ms, message = excluded.message";
const SENT_BETWEEN: &str = "SELECT seq, msg_type, order_id, sent_at_ms, message FROM fix_messages
     WHERE session = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq";
const ORDERS_SENT: &str =
    "SELECT DISTINCT order_id FROM fix_messages WHERE order_id = ANY($2) AND session = $1";
const PRUNE: &str = "DELETE FROM fix_messages WHERE session = $1 AND seq IN
     (SELECT seq FROM fix_messages WHERE session = $1 AND sent_at_ms < $2 LIMIT $3)";

/// The lock's own connection: the session is held while it lives.
struct LockConnection(deadpool_postgres::ClientWrapper);

#[async_trait]
impl SessionHold for LockConnection {
    /// The lock's connection still answers, and its server is still a primary with its
    /// synchronous standbys: a zombie primary's lock holds nothing (advisory locks are
    /// not replicated; the new primary may give the session to another gateway).
    async fn check(&self) -> Result<(), StoreError> {
        let row = self.0.query_one(super::fence::UNFIT, &[]).await?;
        if row.try_get::<_, bool>(0)? {
            return Err(StoreError::unavailable(
                "the session's database is no longer a primary with its standbys",
            ));
        }
        Ok(())
    }
}

async fn record_sent(
    client: &mut deadpool_postgres::Object,
    session: &str,
    epoch: i64,
    sent: &[SentMessage],
    next_in: u64,
) -> Result<bool, StoreError> {
    let next_out = sent.iter().map(|m| m.seq + 1).max().unwrap_or(0);
    let tx = client.transaction().await?;
    let ours = tx
        .execute(
            SET_NUMBERS,
            &[
                &session,
                &epoch,
                &seq_column(next_out),
                &seq_column(next_in),
            ],
        )
        .await?;
    if ours == 0 {
        return Ok(false);
    }
    if !sent.is_empty() {
        let seqs: Vec<i64> = sent.iter().map(|m| seq_column(m.seq)).collect();
        let types: Vec<&str> = sent.iter().map(|m| m.msg_type.as_str()).collect();
        let orders: Vec<Option<Uuid>> = sent.iter().map(|m| m.order_id).collect();
        let times: Vec<i64> = sent.iter().map(|m| m.sent_at_ms).collect();
        let bytes: Vec<&[u8]> = sent.iter().map(|m| m.bytes.as_slice()).collect();
        let stmt = tx.prepare_cached(STORE_SENT).await?;
        tx.execute(&stmt, &[&session, &seqs, &types, &orders, &times, &bytes])
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

#[async_trait]
impl FixStore for PostgresStore {
    async fn hold_session(
        &self,
        session: &str,
    ) -> Result<Option<Box<dyn SessionHold>>, StoreError> {
        // Out of the pool: the lock must go when this connection goes, never back to
        // the pool with it.
        let client = deadpool_postgres::Object::take(self.pool.get().await?);
        let row = client.query_one(TRY_LOCK, &[&session]).await?;
        let held: bool = row.try_get(0)?;
        Ok(held.then(|| Box::new(LockConnection(client)) as Box<dyn SessionHold>))
    }

    async fn take_session(&self, session: &str) -> Result<SessionNumbers, StoreError> {
        self.durable_write(async |client| {
            let row = client.query_one(TAKE, &[&session]).await?;
            Ok(SessionNumbers {
                next_out: seq_from_column(row.try_get(0)?)?,
                next_in: seq_from_column(row.try_get(1)?)?,
                epoch: row.try_get(2)?,
            })
        })
        .await
    }

    async fn record_sent(
        &self,
        session: &str,
        epoch: i64,
        sent: Vec<SentMessage>,
        next_in: u64,
    ) -> Result<bool, StoreError> {
        self.durable_write(async |client| record_sent(client, session, epoch, &sent, next_in).await)
            .await
    }

    async fn record_received(
        &self,
        session: &str,
        epoch: i64,
        next_in: u64,
    ) -> Result<bool, StoreError> {
        self.durable_write(async |client| {
            let rows = client
                .execute(SET_NEXT_IN, &[&session, &epoch, &seq_column(next_in)])
                .await?;
            Ok(rows > 0)
        })
        .await
    }

    async fn sent_between(
        &self,
        session: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<SentMessage>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                SENT_BETWEEN,
                &[&session, &seq_column(from), &seq_column(to)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SentMessage {
                    seq: seq_from_column(row.try_get(0)?)?,
                    msg_type: row.try_get(1)?,
                    order_id: row.try_get(2)?,
                    sent_at_ms: row.try_get(3)?,
                    bytes: row.try_get(4)?,
                })
            })
            .collect()
    }

    async fn orders_sent(
        &self,
        session: &str,
        orders: Vec<Uuid>,
    ) -> Result<HashSet<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query(ORDERS_SENT, &[&session, &orders]).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    async fn prune_sent(
        &self,
        session: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // A write: on a primary whose standbys left, its commit would wait for ever.
        self.durable_write(async |client| {
            let pruned = client
                .execute(PRUNE, &[&session, &before_ms, &limit])
                .await?;
            Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
        })
        .await
    }
}
