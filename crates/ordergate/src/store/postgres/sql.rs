//! The statements of the PostgreSQL backend. `bench/pgbench/order.sql` runs
//! [`PLACE_ORDER`] as it is, so keep the two in step.

/// Claim and order in one statement, hence one implicit transaction and one commit:
/// the key is taken unless it has a live record (an expired one is taken over), and
/// the order is inserted only if the claim succeeded. A concurrent claim of the same
/// key waits on the first one's row (bounded by `lock_timeout`), then sees it.
pub const PLACE_ORDER: &str = "
    WITH claim AS (
        INSERT INTO idempotency_keys
            (tenant, idem_key, fingerprint, order_id, status, location, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 millisecond')
        ON CONFLICT (tenant, idem_key) DO UPDATE SET
            fingerprint = excluded.fingerprint, order_id = excluded.order_id,
            status = excluded.status, location = excluded.location,
            expires_at = excluded.expires_at
        WHERE idempotency_keys.expires_at <= now()
        RETURNING order_id
    )
    INSERT INTO orders
        (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body)
    SELECT order_id, $1, $2, $8, $9, $10, $11, $12 FROM claim
    RETURNING order_id";

pub const FINISHED: &str = "
    SELECT k.fingerprint, k.status, k.location, o.body
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
