//! The statements of the SQLite backend, and the row mapping they share.

use ordergate_core::{LiveRecord, RecordRow};
use rusqlite::{Connection, OptionalExtension, Row, params};

use uuid::Uuid;

use crate::store::{
    Backlog, DeliveredBatch, DeliveryResult, DeliveryStatus, NewOrder, PendingDelivery, StoreError,
};

/// Takes the key unless it has a live record; an expired record is taken over.
pub const CLAIM_KEY: &str = "
    INSERT INTO idempotency_keys
        (tenant, idem_key, fingerprint, order_id, status, location, expires_at_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (tenant, idem_key) DO UPDATE SET
        fingerprint = excluded.fingerprint, order_id = excluded.order_id,
        status = excluded.status, location = excluded.location,
        expires_at_ms = excluded.expires_at_ms
    WHERE idempotency_keys.expires_at_ms <= ?8";

/// The order, and its pending delivery when ?9 is 'pending' (NULL: no delivery).
pub const INSERT_ORDER: &str = "
    INSERT INTO orders
        (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body,
         delivery_state, delivery_due_ms, order_type, limit_price, time_in_force)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?7, ?10, ?11, ?12)";

/// Due deliveries, leased or not: the store's leases are kept in memory (one process
/// per file), so a crash leaves the rows due for the next start. (Writing a lease
/// cost a third write per order.)
pub const DUE_DELIVERIES: &str = "
    SELECT order_id, rowid, tenant, body, accepted_at_ms, delivery_attempts FROM orders
    WHERE delivery_state = 'pending' AND delivery_due_ms <= ?1
    ORDER BY delivery_due_ms, rowid LIMIT ?2";

/// Marks the orders whose rowids are in the JSON array ?1 delivered at ?2: one
/// statement a batch, each row found by its rowid.
pub const DELIVERED: &str = "
    UPDATE orders SET delivery_state = 'delivered', delivery_attempts = delivery_attempts + 1,
        delivery_error = NULL, delivered_at_ms = ?2, delivery_due_ms = NULL
    WHERE rowid IN (SELECT value FROM json_each(?1)) AND delivery_state = 'pending'";

pub const RETRY_DELIVERY: &str = "
    UPDATE orders SET delivery_attempts = delivery_attempts + 1, delivery_error = ?2,
        delivery_due_ms = ?3
    WHERE order_id = ?1 AND delivery_state = 'pending'";

pub const FAILED_DELIVERY: &str = "
    UPDATE orders SET delivery_state = 'failed', delivery_attempts = delivery_attempts + 1,
        delivery_error = ?2, delivery_due_ms = NULL
    WHERE order_id = ?1 AND delivery_state = 'pending'";

pub const DELIVERY_STATUS: &str = "
    SELECT delivery_state, delivery_attempts, delivery_error, delivered_at_ms FROM orders
    WHERE order_id = ?1 AND tenant = ?2 AND delivery_state IS NOT NULL";

pub const DELIVERY_BACKLOG: &str = "
    SELECT count(*), min(accepted_at_ms) FROM orders WHERE delivery_state = 'pending'";

pub const LIVE_RECORD: &str = "
    SELECT k.fingerprint, k.status, k.location, o.body, k.expires_at_ms - ?3
    FROM idempotency_keys k JOIN orders o ON o.order_id = k.order_id
    WHERE k.tenant = ?1 AND k.idem_key = ?2 AND k.expires_at_ms > ?3";

pub const ORDER_BY_ID: &str = "SELECT body FROM orders WHERE order_id = ?1 AND tenant = ?2";

pub const ORDER_BY_KEY: &str = "
    SELECT body FROM orders WHERE tenant = ?1 AND idem_key = ?2
    ORDER BY accepted_at_ms DESC, order_id DESC LIMIT 1";

/// Deletes only rows that are expired when the delete runs, so a key claimed anew
/// since the batch was chosen is never lost.
pub const PURGE_EXPIRED: &str = "
    DELETE FROM idempotency_keys WHERE rowid IN (
        SELECT rowid FROM idempotency_keys WHERE expires_at_ms <= ?1 LIMIT ?2)";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::unavailable(e)
    }
}

pub fn live_record(
    conn: &Connection,
    tenant: &str,
    key: &str,
    now_ms: i64,
) -> Result<Option<LiveRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(LIVE_RECORD)?;
    let row = stmt
        .query_row(params![tenant, key, now_ms], record_row)
        .optional()?;
    Ok(row.map(RecordRow::into_live).transpose()?)
}

fn record_row(row: &Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        fingerprint: row.get(0)?,
        status: row.get(1)?,
        location: row.get(2)?,
        body: row.get(3)?,
        ms_left: row.get(4)?,
    })
}

/// Claims the key and inserts the order; false if the key has a live record.
pub fn claim_and_insert(
    conn: &Connection,
    new: &NewOrder,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let order = &new.order;
    let order_id = order.order_id.to_string();
    let claimed = conn.prepare_cached(CLAIM_KEY)?.execute(params![
        new.tenant,
        order.idempotency_key.as_str(),
        new.fingerprint.0.as_slice(),
        order_id,
        new.response.status,
        new.response.location,
        now_ms.saturating_add(new.result_ttl_ms()),
        now_ms,
    ])?;
    if claimed == 0 {
        return Ok(false);
    }
    let request = &order.request;
    conn.prepare_cached(INSERT_ORDER)?.execute(params![
        order_id,
        new.tenant,
        order.idempotency_key.as_str(),
        request.symbol.as_str(),
        request.side.as_str(),
        new.quantity_i64(),
        order.accepted_at_ms,
        new.response.body,
        new.deliver.then_some("pending"),
        request.order_type.as_str(),
        new.limit_price(),
        request.time_in_force.as_str(),
    ])?;
    Ok(true)
}

/// Due deliveries (see [`DUE_DELIVERIES`]).
pub fn due_deliveries(
    conn: &Connection,
    limit: usize,
    now_ms: i64,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(DUE_DELIVERIES)?;
    let rows = stmt.query_map(params![now_ms, limit], |row| {
        Ok((
            row.get::<_, String>(0)?,
            PendingDelivery {
                order_id: Uuid::nil(),
                sequence: row.get(1)?,
                tenant: row.get(2)?,
                body: row.get(3)?,
                accepted_at_ms: row.get(4)?,
                attempts: row.get(5)?,
            },
        ))
    })?;
    let mut leased = Vec::new();
    for row in rows {
        let (id, mut pending) = row?;
        pending.order_id = Uuid::parse_str(&id)
            .map_err(|_| StoreError::Invariant("a stored order id is not a UUID"))?;
        leased.push(pending);
    }
    Ok(leased)
}

/// Records a batch's results: the delivered ones together, the others one by one.
pub fn record_deliveries(conn: &Connection, results: &[DeliveryResult]) -> Result<(), StoreError> {
    let (delivered, others) = DeliveredBatch::split(results);
    for result in others {
        record_retry_or_failure(conn, result)?;
    }
    if !delivered.sequences.is_empty() {
        let rowids = serde_json::to_string(&delivered.sequences).unwrap_or_default();
        conn.prepare_cached(DELIVERED)?
            .execute(params![rowids, delivered.at_ms])?;
    }
    Ok(())
}

fn record_retry_or_failure(conn: &Connection, result: &DeliveryResult) -> Result<(), StoreError> {
    match result {
        DeliveryResult::Retry {
            order_id,
            error,
            next_at_ms,
        } => conn.prepare_cached(RETRY_DELIVERY)?.execute(params![
            order_id.to_string(),
            error,
            next_at_ms
        ])?,
        DeliveryResult::Failed { order_id, error } => conn
            .prepare_cached(FAILED_DELIVERY)?
            .execute(params![order_id.to_string(), error])?,
        // Written with the rest of its batch.
        DeliveryResult::Delivered { .. } => 0,
    };
    Ok(())
}

pub fn delivery_status(
    conn: &Connection,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DeliveryStatus>, StoreError> {
    let status = conn
        .prepare_cached(DELIVERY_STATUS)?
        .query_row(params![id.to_string(), tenant], |row| {
            Ok(DeliveryStatus {
                state: row.get(0)?,
                attempts: row.get(1)?,
                last_error: row.get(2)?,
                delivered_at_ms: row.get(3)?,
            })
        })
        .optional()?;
    Ok(status)
}

pub fn delivery_backlog(conn: &Connection) -> Result<Backlog, StoreError> {
    let backlog = conn
        .prepare_cached(DELIVERY_BACKLOG)?
        .query_row([], |row| {
            Ok(Backlog {
                pending: row.get(0)?,
                oldest_accepted_at_ms: row.get(1)?,
            })
        })?;
    Ok(backlog)
}

pub fn order_body(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<Vec<u8>>, StoreError> {
    let body = conn
        .prepare_cached(sql)?
        .query_row(params, |row| row.get(0))
        .optional()?;
    Ok(body)
}
