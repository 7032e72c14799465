//! The statements of the SQLite backend, and the row mapping they share.

use ordergate_core::LiveRecord;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{NewOrder, RecordRow, StoreError};

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

pub const INSERT_ORDER: &str = "
    INSERT INTO orders
        (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

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
    row.map(RecordRow::into_live).transpose()
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
    ])?;
    Ok(true)
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
