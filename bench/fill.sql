-- Fills an ordergate SQLite database with :n retained orders and live keys of tenant
-- "default", as `sqlite3 DB -cmd ".param set :n N" < fill.sql`. The keys are random, as
-- clients send them (sequential keys build a packed B-tree that new random keys then
-- split, which no real store looks like). The records expire far in the future;
-- bench/retained.sh moves their expiry to measure the purge. The order ids are
-- well-formed UUIDs in acceptance order; the bodies are the size of real ones, stored as
-- BLOBs as the gateway stores them.
PRAGMA journal_mode = OFF;  -- filling only; the gateway itself runs WAL with FULL sync
PRAGMA synchronous = OFF;
PRAGMA cache_size = -8000000; -- 8 GB: the random inserts stay in memory until written
BEGIN;
CREATE TEMP TABLE fill_keys (i INTEGER PRIMARY KEY, k TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n)
INSERT INTO fill_keys SELECT i, lower(hex(randomblob(12))) FROM n;
INSERT INTO orders (order_id, tenant, idem_key, symbol, side, quantity, accepted_at_ms, body)
SELECT printf('00000000-0000-7000-8000-%012x', i), 'default', k,
       'AAPL', 'buy', 100, 1795834800000,
       CAST(printf('{"orderId":"00000000-0000-7000-8000-%012x","status":"accepted","symbol":"AAPL","side":"buy","quantity":100,"acceptedAt":"2026-11-28T03:00:00.000Z","idempotencyKey":"%s"}', i, k) AS BLOB)
FROM fill_keys ORDER BY i;
INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, order_id, status, location, expires_at_ms)
SELECT 'default', k, zeroblob(32), printf('00000000-0000-7000-8000-%012x', i),
       201, printf('/orders/00000000-0000-7000-8000-%012x', i), 4102444800000
FROM fill_keys ORDER BY i;
COMMIT;
PRAGMA journal_mode = WAL;
