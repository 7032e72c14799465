-- Schema version 2: delivery to the order-management system, folded into the order
-- row so that a delivered order costs a few bytes and no row of its own. NULL state:
-- the order was accepted without delivery configured. A pending delivery is due at
-- delivery_due_ms; leasing it moves that time 30 s on, so a gateway that dies mid-send
-- leaves it to be sent again. The order's rowid is its sequence.
ALTER TABLE orders ADD COLUMN delivery_state TEXT;
ALTER TABLE orders ADD COLUMN delivery_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN delivery_error TEXT;
ALTER TABLE orders ADD COLUMN delivery_due_ms INTEGER;
ALTER TABLE orders ADD COLUMN delivered_at_ms INTEGER;
CREATE INDEX IF NOT EXISTS orders_pending_delivery ON orders (delivery_due_ms)
    WHERE delivery_state = 'pending';
