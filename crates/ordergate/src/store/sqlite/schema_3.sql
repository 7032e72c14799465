-- Schema version 3: the order's terms. Orders accepted before them were market orders
-- for the day, which the defaults say; a limit price is the decimal string the client
-- sent (never a float), NULL for a market order.
ALTER TABLE orders ADD COLUMN order_type TEXT NOT NULL DEFAULT 'market';
ALTER TABLE orders ADD COLUMN limit_price TEXT;
ALTER TABLE orders ADD COLUMN time_in_force TEXT NOT NULL DEFAULT 'day';
