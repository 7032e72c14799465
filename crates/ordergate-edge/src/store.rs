//! One `KeyShard` object's SQL: its schema, the atomic placement (with its delivery,
//! when orders are delivered), reads, the purge, and the outbox's reads and writes. Synchronous, like the SQL API itself: nothing here awaits, so nothing
//! else runs in the object between a read and the write that depends on it.

use ordergate_core::delivery::Verdict;
use ordergate_core::{
    FinishedRecord, LegacyImport, LiveRecord, OrderToPlace, Placement, RecordRow,
};
use worker::{SqlStorage, SqlStorageValue, State};

use crate::platform::atomically;

/// Orders are kept; a key's record (its payload's fingerprint and answer) lives until
/// `expires_ms`, by the object's clock. `WITHOUT ROWID`: the primary key is the table,
/// so a placement writes 4 rows (each table and its one index) instead of 6, and rows
/// written are what Cloudflare bills a SQLite-backed object for.
///
/// `deliveries` is the outbox: one row per order to deliver, kept (as the server keeps
/// its delivery state) so that its state stays visible. Its rowid is the `sequence`
/// of the message, increasing within the object; the partial index holds only what
/// is still pending, so the alarm's reads stay small however many were delivered.
const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL,
        body BLOB NOT NULL,
        accepted_ms INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS orders_by_key ON orders (idempotency_key, accepted_ms)",
    "CREATE TABLE IF NOT EXISTS records (
        idempotency_key TEXT PRIMARY KEY,
        fingerprint BLOB NOT NULL,
        status INTEGER NOT NULL,
        location TEXT NOT NULL,
        order_id TEXT NOT NULL REFERENCES orders (order_id),
        expires_ms INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS records_by_expiry ON records (expires_ms)",
    "CREATE TABLE IF NOT EXISTS deliveries (
        sequence INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL UNIQUE REFERENCES orders (order_id),
        tenant TEXT NOT NULL,
        accepted_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        due_ms INTEGER,
        delivered_ms INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_ms) WHERE state = 'pending'",
];

/// Sequences are never reused: rows are never deleted, so SQLite's next rowid (the
/// largest plus one) only grows.
const PUT_DELIVERY: &str = "INSERT INTO deliveries
    (order_id, tenant, accepted_ms, state, attempts, due_ms) VALUES (?, ?, ?, 'pending', 0, ?)";

const DUE_DELIVERIES: &str = "SELECT d.sequence, d.order_id, d.tenant, d.accepted_ms,
        d.attempts, o.body
    FROM deliveries d JOIN orders o ON o.order_id = d.order_id
    WHERE d.state = 'pending' AND d.due_ms <= ? ORDER BY d.due_ms LIMIT ?";

const DELIVERED: &str = "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1,
        last_error = NULL, delivered_ms = ?, due_ms = NULL
    WHERE order_id = ? AND state = 'pending'";

const RETRY: &str = "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, due_ms = ?
    WHERE order_id = ? AND state = 'pending'";

const FAILED: &str = "UPDATE deliveries SET state = 'failed', attempts = attempts + 1,
        last_error = ?, due_ms = NULL
    WHERE order_id = ? AND state = 'pending'";

const NEXT_DELIVERY: &str = "SELECT MIN(due_ms) FROM deliveries WHERE state = 'pending'";

const DELIVERY_OF: &str =
    "SELECT state, attempts, last_error, delivered_ms FROM deliveries WHERE order_id = ?";

const LIVE_RECORD: &str = "SELECT r.fingerprint, r.status, r.location, o.body, r.expires_ms
    FROM records r JOIN orders o ON o.order_id = r.order_id
    WHERE r.idempotency_key = ? AND r.expires_ms > ?";

/// Replaces an expired record of the key, if there is one: from its expiry on, the key
/// is new again, purged or not.
const PUT_RECORD: &str = "INSERT OR REPLACE INTO records
    (idempotency_key, fingerprint, status, location, order_id, expires_ms)
    VALUES (?, ?, ?, ?, ?, ?)";

const PUT_ORDER: &str =
    "INSERT INTO orders (order_id, idempotency_key, body, accepted_ms) VALUES (?, ?, ?, ?)";

/// An imported order may be there already, from an earlier import of the same answer.
const IMPORT_ORDER: &str =
    "INSERT OR IGNORE INTO orders (order_id, idempotency_key, body, accepted_ms)
    VALUES (?, ?, ?, ?)";

const OTHER_ORDER_OF_KEY: &str =
    "SELECT 1 FROM orders WHERE idempotency_key = ? AND order_id <> ? LIMIT 1";

const ORDER_BY_ID: &str = "SELECT body FROM orders WHERE order_id = ?";

const NEWEST_ORDER_BY_KEY: &str = "SELECT body FROM orders WHERE idempotency_key = ?
    ORDER BY accepted_ms DESC, order_id DESC LIMIT 1";

const PURGE_EXPIRED: &str = "DELETE FROM records WHERE idempotency_key IN
    (SELECT idempotency_key FROM records WHERE expires_ms <= ? ORDER BY expires_ms LIMIT ?)";

const NEXT_EXPIRY: &str = "SELECT MIN(expires_ms) FROM records";

/// A delivery the alarm may send now.
pub struct DueDelivery {
    pub sequence: i64,
    pub order_id: String,
    pub tenant: String,
    pub accepted_ms: i64,
    /// Attempts before this one.
    pub attempts: i64,
    /// The order's JSON, as in its 201.
    pub order: Vec<u8>,
}

/// Where one delivery stands, for `GET /orders/{id}/delivery`.
pub struct DeliveryState {
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_ms: Option<i64>,
}

/// Where an order row goes.
struct OrderRow<'a> {
    order_id: &'a str,
    key: &'a str,
    accepted_ms: i64,
}

/// The object's tables.
pub struct Tables {
    sql: SqlStorage,
}

impl Tables {
    /// Opens the object's tables, making them on first use.
    pub fn open(state: &State) -> worker::Result<Self> {
        let sql = state.storage().sql();
        for statement in SCHEMA {
            sql.exec(statement, None)?;
        }
        Ok(Self { sql })
    }

    /// The key's record, if it has not expired at `now_ms`.
    pub fn live_record(&self, key: &str, now_ms: i64) -> worker::Result<Option<LiveRecord>> {
        let cursor = self
            .sql
            .exec(LIVE_RECORD, vec![key.into(), now_ms.into()])?;
        let Some(row) = cursor.raw().next().transpose()? else {
            return Ok(None);
        };
        let [fingerprint, status, location, body, expires_ms] = columns(row)?;
        let row = RecordRow {
            fingerprint: blob(fingerprint)?,
            status: integer(status)?,
            location: text(location)?,
            body: blob(body)?,
            ms_left: integer(expires_ms)?.saturating_sub(now_ms),
        };
        row.into_live()
            .map(Some)
            .map_err(|corrupt| worker::Error::from(corrupt.what()))
    }

    /// Claim, order and answer in one transaction, unless the key has a live record
    /// (then that record is the answer). With `deliver_for` (the order's tenant), the
    /// order's delivery is in the same transaction, due at once.
    pub fn place(
        &self,
        state: &State,
        key: &str,
        order: &OrderToPlace,
        expires_ms: i64,
        deliver_for: Option<&str>,
    ) -> worker::Result<Placement> {
        let accepted_ms = order.order.accepted_at_ms;
        let record = FinishedRecord {
            fingerprint: order.fingerprint,
            response: order.response.clone(),
        };
        let order_id = order.order.order_id.to_string();
        atomically(state, || {
            if let Some(live) = self.live_record(key, accepted_ms)? {
                return Ok(Placement::Exists(live));
            }
            let row = OrderRow {
                order_id: &order_id,
                key,
                accepted_ms,
            };
            self.write(PUT_ORDER, &row, &record, expires_ms)?;
            if let Some(tenant) = deliver_for {
                self.sql.exec(
                    PUT_DELIVERY,
                    vec![
                        order_id.as_str().into(),
                        tenant.into(),
                        accepted_ms.into(),
                        accepted_ms.into(),
                    ],
                )?;
            }
            Ok(Placement::Placed)
        })
    }

    /// The old worker's answer for `key` as an order of this object, with the key's
    /// record, in one transaction: lookups find it from now on, and retries replay it.
    pub fn import(&self, state: &State, key: &str, import: &LegacyImport) -> worker::Result<()> {
        let row = OrderRow {
            order_id: &import.order_id,
            key,
            accepted_ms: import.now_ms,
        };
        let (record, expires_ms) = (&import.record, import.expires_at_ms);
        atomically(state, || self.write(IMPORT_ORDER, &row, record, expires_ms))
    }

    /// Whether `key` placed an order here other than `order_id`.
    pub fn has_other_order(&self, key: &str, order_id: &str) -> worker::Result<bool> {
        let cursor = self
            .sql
            .exec(OTHER_ORDER_OF_KEY, vec![key.into(), order_id.into()])?;
        Ok(cursor.raw().next().transpose()?.is_some())
    }

    /// The order row (by `insert_order`) and the key's record.
    fn write(
        &self,
        insert_order: &str,
        row: &OrderRow<'_>,
        record: &FinishedRecord,
        expires_ms: i64,
    ) -> worker::Result<()> {
        let response = &record.response;
        self.sql.exec(
            insert_order,
            vec![
                row.order_id.into(),
                row.key.into(),
                response.body.clone().into(),
                row.accepted_ms.into(),
            ],
        )?;
        self.sql.exec(
            PUT_RECORD,
            vec![
                row.key.into(),
                record.fingerprint.0.to_vec().into(),
                i64::from(response.status).into(),
                response.location.as_str().into(),
                row.order_id.into(),
                expires_ms.into(),
            ],
        )?;
        Ok(())
    }

    /// An order's JSON by its id.
    pub fn order_by_id(&self, order_id: &str) -> worker::Result<Option<Vec<u8>>> {
        self.first_blob(ORDER_BY_ID, vec![order_id.into()])
    }

    /// The JSON of the newest order placed with `key`, expired record or not.
    pub fn order_by_key(&self, key: &str) -> worker::Result<Option<Vec<u8>>> {
        self.first_blob(NEWEST_ORDER_BY_KEY, vec![key.into()])
    }

    /// Deletes at most `limit` records expired at `now_ms`; how many went.
    pub fn purge_expired(&self, now_ms: i64, limit: i64) -> worker::Result<usize> {
        let cursor = self
            .sql
            .exec(PURGE_EXPIRED, vec![now_ms.into(), limit.into()])?;
        // The cursor runs the statement as it is read.
        cursor.raw().for_each(drop);
        Ok(cursor.rows_written())
    }

    /// When the next record expires, if any is left.
    pub fn next_expiry(&self) -> worker::Result<Option<i64>> {
        self.first_integer(NEXT_EXPIRY)
    }

    /// At most `limit` deliveries due at `now_ms`, the longest due first.
    pub fn due_deliveries(&self, now_ms: i64, limit: usize) -> worker::Result<Vec<DueDelivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let cursor = self
            .sql
            .exec(DUE_DELIVERIES, vec![now_ms.into(), limit.into()])?;
        let mut due = Vec::new();
        for row in cursor.raw() {
            let [sequence, order_id, tenant, accepted_ms, attempts, order] = columns(row?)?;
            due.push(DueDelivery {
                sequence: integer(sequence)?,
                order_id: text(order_id)?,
                tenant: text(tenant)?,
                accepted_ms: integer(accepted_ms)?,
                attempts: integer(attempts)?,
                order: blob(order)?,
            });
        }
        Ok(due)
    }

    /// What came of one attempt of the delivery of `order_id` (one statement, atomic
    /// by itself).
    pub fn record_delivery(&self, order_id: &str, verdict: &Verdict) -> worker::Result<()> {
        let id: SqlStorageValue = order_id.into();
        let (query, bindings) = match verdict {
            Verdict::Delivered { at_ms } => (DELIVERED, vec![(*at_ms).into(), id]),
            Verdict::Retry { error, next_at_ms } => {
                (RETRY, vec![error.as_str().into(), (*next_at_ms).into(), id])
            }
            Verdict::Failed { error } => (FAILED, vec![error.as_str().into(), id]),
        };
        self.sql.exec(query, bindings)?;
        Ok(())
    }

    /// When the next pending delivery is due, if any is pending.
    pub fn next_delivery(&self) -> worker::Result<Option<i64>> {
        self.first_integer(NEXT_DELIVERY)
    }

    /// The delivery of an order of this object, if it has one.
    pub fn delivery_of(&self, order_id: &str) -> worker::Result<Option<DeliveryState>> {
        let cursor = self.sql.exec(DELIVERY_OF, vec![order_id.into()])?;
        let Some(row) = cursor.raw().next().transpose()? else {
            return Ok(None);
        };
        let [state, attempts, last_error, delivered_ms] = columns(row)?;
        Ok(Some(DeliveryState {
            state: text(state)?,
            attempts: integer(attempts)?,
            last_error: nullable(last_error, text)?,
            delivered_ms: nullable(delivered_ms, integer)?,
        }))
    }

    fn first_integer(&self, query: &str) -> worker::Result<Option<i64>> {
        let cursor = self.sql.exec(query, None)?;
        match cursor.raw().next().transpose()? {
            Some(row) => match row.into_iter().next() {
                Some(SqlStorageValue::Integer(n)) => Ok(Some(n)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    fn first_blob(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> worker::Result<Option<Vec<u8>>> {
        let cursor = self.sql.exec(query, bindings)?;
        let Some(row) = cursor.raw().next().transpose()? else {
            return Ok(None);
        };
        let [body] = columns(row)?;
        blob(body).map(Some)
    }
}

fn columns<const N: usize>(row: Vec<SqlStorageValue>) -> worker::Result<[SqlStorageValue; N]> {
    row.try_into()
        .map_err(|_| worker::Error::from("a row has an unexpected number of columns"))
}

fn blob(value: SqlStorageValue) -> worker::Result<Vec<u8>> {
    match value {
        SqlStorageValue::Blob(bytes) => Ok(bytes),
        _ => Err(worker::Error::from("a stored value is not a BLOB")),
    }
}

fn text(value: SqlStorageValue) -> worker::Result<String> {
    match value {
        SqlStorageValue::String(s) => Ok(s),
        _ => Err(worker::Error::from("a stored value is not TEXT")),
    }
}

fn nullable<T>(
    value: SqlStorageValue,
    read: fn(SqlStorageValue) -> worker::Result<T>,
) -> worker::Result<Option<T>> {
    match value {
        SqlStorageValue::Null => Ok(None),
        value => read(value).map(Some),
    }
}

fn integer(value: SqlStorageValue) -> worker::Result<i64> {
    match value {
        SqlStorageValue::Integer(n) => Ok(n),
        _ => Err(worker::Error::from("a stored value is not an INTEGER")),
    }
}
