-- ordergate on SQLite, schema version 1. Kept portable: the PostgreSQL schema has the
-- same tables, columns and upsert, so both backends mean the same thing.

-- The system of record: every accepted order, kept for good.
CREATE TABLE IF NOT EXISTS orders (
    order_id       TEXT    NOT NULL PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    idem_key       TEXT    NOT NULL,
    symbol         TEXT    NOT NULL,
    side           TEXT    NOT NULL,
    quantity       INTEGER NOT NULL,
    accepted_at_ms INTEGER NOT NULL,
    body           BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_key ON orders (tenant, idem_key, accepted_at_ms);

-- One row per live (tenant, key): the claim and the answer to replay. Expires.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant        TEXT    NOT NULL,
    idem_key      TEXT    NOT NULL,
    fingerprint   BLOB    NOT NULL,
    order_id      TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    location      TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires_at_ms);
