-- The gateway's per-order transaction on PostgreSQL (store/postgres/sql.rs, PLACE_ORDER),
-- for pgbench -M prepared. Only changes: the order id comes from gen_random_uuid(),
-- since pgbench cannot make UUIDs (the gateway sends a UUIDv7 as a parameter), and the
-- delivery state is NULL, as for a gateway without --deliver; the order is a market
-- order for the day.
\set k random(1, 9000000000000000)
WITH claim AS (
    INSERT INTO idempotency_keys
        (tenant, idem_key, fingerprint, order_id, status, location, expires_at)
    VALUES (:tenant, :k, :fp, gen_random_uuid(), 201, :loc, now() + :ttl::bigint * interval '1 millisecond')
    ON CONFLICT (tenant, idem_key) DO NOTHING
    RETURNING order_id
), placed AS (
    INSERT INTO orders
        (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body,
         delivery_state, delivery_due_ms, order_type, limit_price, time_in_force)
    SELECT order_id, :tenant, :k, :symbol, :side, :qty, :accepted, :body, NULL::text, :accepted,
           'market', NULL::text, 'day' FROM claim
    RETURNING order_id
)
SELECT NULL::bytea, NULL::integer, NULL::text, NULL::bytea, NULL::bigint FROM placed
UNION ALL
SELECT k.fingerprint, k.status, k.location, o.body,
       ceil(extract(epoch FROM k.expires_at - now()) * 1000)::bigint
FROM idempotency_keys k JOIN orders o ON o.order_id = k.order_id
WHERE k.tenant = :tenant AND k.idem_key = :k AND NOT EXISTS (SELECT 1 FROM claim);
