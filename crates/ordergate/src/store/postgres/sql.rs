//! The statements of the PostgreSQL backend. `bench/pgbench/order.sql` runs
//! [`PLACE_ORDER`] as it is, so keep the two in step.

/// Claim and order in one statement, hence one implicit transaction and one commit:
/// the key is taken unless a record holds it, and the order is inserted only if the
/// claim succeeded. Otherwise the same round trip returns the record (with
/// its milliseconds left, live if above 0), so a replay costs one statement and writes
/// nothing. A concurrent claim of the same key waits on the first one's row (bounded by
/// `lock_timeout`). Rows: a placed order has a NULL fingerprint.
pub const PLACE_ORDER: &str = "
    WITH claim AS (
        INSERT INTO idempotency_keys
            (tenant, idem_key, fingerprint, order_id, status, location, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 millisecond')
        ON CONFLICT (tenant, idem_key) DO NOTHING
        RETURNING order_id
    ), placed AS (
        INSERT INTO orders
            (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body,
             delivery_state, delivery_due_ms, order_type, limit_price, time_in_force)
        SELECT order_id, $1, $2, $8, $9, $10, $11, $12, $13::text, $11, $14, $15::text, $16
        FROM claim
        RETURNING order_id
    )
    SELECT NULL::bytea, NULL::integer, NULL::text, NULL::bytea, NULL::bigint FROM placed
    UNION ALL
    SELECT k.fingerprint, k.status, k.location, o.body,
           ceil(extract(epoch FROM k.expires_at - now()) * 1000)::bigint
    FROM idempotency_keys k JOIN orders o ON o.order_id = k.order_id
    WHERE k.tenant = $1 AND k.idem_key = $2 AND NOT EXISTS (SELECT 1 FROM claim)";

/// Takes over an expired record (same parameters as [`PLACE_ORDER`]). Only one of
/// several gateways racing for it gets the row; the others see it live again.
pub const TAKE_OVER_EXPIRED: &str = "
    WITH claim AS (
        UPDATE idempotency_keys SET
            fingerprint = $3, order_id = $4, status = $5, location = $6,
            expires_at = now() + $7::bigint * interval '1 millisecond'
        WHERE tenant = $1 AND idem_key = $2 AND expires_at <= now()
        RETURNING order_id
    )
    INSERT INTO orders
        (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body,
         delivery_state, delivery_due_ms, order_type, limit_price, time_in_force)
    SELECT order_id, $1, $2, $8, $9, $10, $11, $12, $13::text, $11, $14, $15::text, $16
        FROM claim
    RETURNING order_id";

/// Many orders in one statement (and one commit): group commit for PostgreSQL. Each
/// input row comes back either placed (NULL fingerprint) or with the record that holds
/// its key; rows missing from the answer are retried one by one with [`PLACE_ORDER`].
pub const PLACE_ORDERS: &str = "
    WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::uuid[], $5::integer[],
                             $6::text[], $7::bigint[], $8::text[], $9::text[], $10::bigint[],
                             $11::bigint[], $12::bytea[], $13::text[], $14::text[],
                             $15::text[], $16::text[])
            AS t(tenant, idem_key, fingerprint, order_id, status, location, ttl_ms,
                 symbol, side, quantity, accepted_at_ms, body, delivery_state,
                 order_type, limit_price, time_in_force)
    ), claim AS (
        INSERT INTO idempotency_keys
            (tenant, idem_key, fingerprint, order_id, status, location, expires_at)
        SELECT tenant, idem_key, fingerprint, order_id, status, location,
               now() + ttl_ms * interval '1 millisecond'
        FROM input
        ON CONFLICT (tenant, idem_key) DO NOTHING
        RETURNING order_id
    ), placed AS (
        INSERT INTO orders
            (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body,
             delivery_state, delivery_due_ms, order_type, limit_price, time_in_force)
        SELECT i.order_id, i.tenant, i.idem_key, i.symbol, i.side, i.quantity,
               i.accepted_at_ms, i.body, i.delivery_state, i.accepted_at_ms,
               i.order_type, i.limit_price, i.time_in_force
        FROM input i JOIN claim c ON c.order_id = i.order_id
        RETURNING order_id
    )
    SELECT order_id, NULL::bytea, NULL::integer, NULL::text, NULL::bytea, NULL::bigint
    FROM placed
    UNION ALL
    SELECT i.order_id, k.fingerprint, k.status, k.location, o.body,
           ceil(extract(epoch FROM k.expires_at - now()) * 1000)::bigint
    FROM input i
    JOIN idempotency_keys k ON k.tenant = i.tenant AND k.idem_key = i.idem_key
    JOIN orders o ON o.order_id = k.order_id
    WHERE NOT EXISTS (SELECT 1 FROM claim c WHERE c.order_id = i.order_id)";

pub const LIVE_RECORD: &str = "
    SELECT k.fingerprint, k.status, k.location, o.body,
           ceil(extract(epoch FROM k.expires_at - now()) * 1000)::bigint
    FROM idempotency_keys k JOIN orders o ON o.order_id = k.order_id
    WHERE k.tenant = $1 AND k.idem_key = $2 AND k.expires_at > now()";

pub const ORDER_BY_ID: &str = "SELECT body FROM orders WHERE order_id = $1 AND tenant = $2";

pub const ORDER_BY_KEY: &str = "
    SELECT body FROM orders WHERE tenant = $1 AND idem_key = $2
    ORDER BY accepted_at_ms DESC, order_id DESC LIMIT 1";

/// Small batches, skipping rows a claim holds; the outer condition is checked again
/// at delete time, so a key claimed anew is never deleted.
pub const PURGE_EXPIRED: &str = "
    DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM idempotency_keys WHERE expires_at <= now()
        LIMIT $1 FOR UPDATE SKIP LOCKED))
    AND expires_at <= now()";

/// Serialises migrations of gateways that start at the same moment.
pub const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7243003)";

/// Leases due deliveries, oldest due first: their due time moves to the lease's end,
/// and rows another gateway is leasing right now are skipped. (An UPDATE's RETURNING
/// has no order of its own, hence the outer SELECT.)
pub const LEASE_DELIVERIES: &str = "
    WITH due AS (
        SELECT order_id, delivery_due_ms FROM orders
        WHERE delivery_state = 'pending' AND delivery_due_ms <= $1
        ORDER BY delivery_due_ms, sequence LIMIT $2 FOR UPDATE SKIP LOCKED),
    leased AS (
        UPDATE orders SET delivery_due_ms = $3 FROM due WHERE orders.order_id = due.order_id
        RETURNING orders.order_id, orders.sequence, orders.tenant, orders.body,
            orders.accepted_at_ms, orders.delivery_attempts, due.delivery_due_ms AS was_due)
    SELECT order_id, sequence, tenant, body, accepted_at_ms, delivery_attempts FROM leased
    ORDER BY was_due, sequence";

/// Marks the orders of the array $1 delivered at $2: one statement a batch.
pub const DELIVERED: &str = "
    UPDATE orders SET delivery_state = 'delivered', delivery_attempts = delivery_attempts + 1,
        delivery_error = NULL, delivered_at_ms = $2, delivery_due_ms = NULL
    WHERE order_id = ANY($1::uuid[]) AND delivery_state = 'pending'";

pub const RETRY_DELIVERY: &str = "
    UPDATE orders SET delivery_attempts = delivery_attempts + 1, delivery_error = $2,
        delivery_due_ms = $3
    WHERE order_id = $1 AND delivery_state = 'pending'";

pub const FAILED_DELIVERY: &str = "
    UPDATE orders SET delivery_state = 'failed', delivery_attempts = delivery_attempts + 1,
        delivery_error = $2, delivery_due_ms = NULL
    WHERE order_id = $1 AND delivery_state = 'pending'";

pub const DELIVERY_STATUS: &str = "
    SELECT delivery_state, delivery_attempts, delivery_error, delivered_at_ms FROM orders
    WHERE order_id = $1 AND tenant = $2 AND delivery_state IS NOT NULL";

pub const DELIVERY_BACKLOG: &str = "
    SELECT count(*), min(accepted_at_ms) FROM orders WHERE delivery_state = 'pending'";
