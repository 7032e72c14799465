-- Fills an ordergate SQLite database with :N retained orders and live keys (tenant
-- "default", keys fill-0000000001 ...), as `sqlite3 DB -cmd ".param set :n N" < fill.sql`.
-- The order ids are well-formed UUIDs; the bodies are the size of real ones, stored as
-- BLOBs as the gateway stores them.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF; -- filling only; the gateway itself runs with FULL
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n)
INSERT INTO orders (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body)
SELECT printf('00000000-0000-7000-8000-%012x', i), 'default', printf('fill-%010d', i),
       'AAPL', 'buy', 100, 1795834800000,
       CAST(printf('{"orderId":"00000000-0000-7000-8000-%012x","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"fill-%010d"}', i, i) AS BLOB)
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n)
INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, order_id, status, location, expires_at_ms)
SELECT 'default', printf('fill-%010d', i), zeroblob(32), printf('00000000-0000-7000-8000-%012x', i),
       201, printf('/orders/00000000-0000-7000-8000-%012x', i), 4102444800000
FROM n;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
