-- Fills an ordergate PostgreSQL database with :n retained orders and live keys of tenant
-- "default", as `psql URL -v n=N -f fill-pg.sql`: the same shape as bench/fill.sql (random
-- keys, real-sized bodies, records expiring far in the future).
SET synchronous_commit = off;
CREATE UNLOGGED TABLE fill_keys AS
SELECT i, substr(md5(random()::text), 1, 24) AS k FROM generate_series(1, :n) AS i;
INSERT INTO orders (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'default', k,
       'AAPL', 'buy', 100, 1795834800000,
       convert_to(format('{"orderId":"00000000-0000-7000-8000-%s","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"%s"}',
                         lpad(to_hex(i), 12, '0'), k), 'UTF8')
FROM fill_keys ORDER BY i;
INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, order_id, status, location, expires_at)
SELECT 'default', k, decode(repeat('00', 32), 'hex'), ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
       201, '/orders/00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), '2100-01-01'
FROM fill_keys ORDER BY i;
DROP TABLE fill_keys;
VACUUM ANALYZE orders;
VACUUM ANALYZE idempotency_keys;
