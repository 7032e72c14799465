-- ordergate on PostgreSQL, schema version 1: the same tables as SQLite, with
-- database time (timestamptz, now()) for expiry so every gateway agrees on it.

CREATE TABLE IF NOT EXISTS orders (
    order_id       uuid   NOT NULL PRIMARY KEY,
    tenant         text   NOT NULL,
    idem_key       text   NOT NULL,
    symbol         text   NOT NULL,
    side           text   NOT NULL,
    quantity       bigint NOT NULL,
    accepted_at_ms bigint NOT NULL,
    body           bytea  NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_key ON orders (tenant, idem_key, accepted_at_ms);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant      text        NOT NULL,
    idem_key    text        NOT NULL,
    fingerprint bytea       NOT NULL,
    order_id    uuid        NOT NULL,
    status      integer     NOT NULL,
    location    text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, idem_key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- Version 2: delivery to the order-management system, folded into the order row (see
-- the SQLite schema); the sequence orders messages for consumers.
ALTER TABLE orders
    ADD COLUMN IF NOT EXISTS sequence bigserial,
    ADD COLUMN IF NOT EXISTS delivery_state text,
    ADD COLUMN IF NOT EXISTS delivery_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS delivery_error text,
    ADD COLUMN IF NOT EXISTS delivery_due_ms bigint,
    ADD COLUMN IF NOT EXISTS delivered_at_ms bigint;
CREATE INDEX IF NOT EXISTS orders_pending_delivery ON orders (delivery_due_ms)
    WHERE delivery_state = 'pending';

-- Version 3: the order's terms (see the SQLite schema); orders accepted before them
-- were market orders for the day, which the defaults say.
ALTER TABLE orders
    ADD COLUMN IF NOT EXISTS order_type text NOT NULL DEFAULT 'market',
    ADD COLUMN IF NOT EXISTS limit_price text,
    ADD COLUMN IF NOT EXISTS time_in_force text NOT NULL DEFAULT 'day';

-- Version 4: the FIX session's state (see the SQLite schema). The session's holder
-- among the gateways is the one holding its advisory lock; the epoch fences out one
-- that lost the lock without noticing.
CREATE TABLE IF NOT EXISTS fix_sessions (
    session  text   NOT NULL PRIMARY KEY,
    next_out bigint NOT NULL,
    next_in  bigint NOT NULL,
    epoch    bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS fix_messages (
    session    text   NOT NULL,
    seq        bigint NOT NULL,
    msg_type   text   NOT NULL,
    order_id   uuid,
    sent_at_ms bigint NOT NULL,
    message    bytea  NOT NULL,
    PRIMARY KEY (session, seq)
);
CREATE INDEX IF NOT EXISTS fix_messages_by_order ON fix_messages (order_id)
    WHERE order_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS fix_messages_by_time ON fix_messages (session, sent_at_ms);
