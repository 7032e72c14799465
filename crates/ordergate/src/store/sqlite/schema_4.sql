-- Schema version 4: the FIX session's state (see `store::fix`). One row per session:
-- its sequence numbers and the epoch that fences out a holder that lost it; and every
-- message sent, kept for the counterparty's resend requests and to know which orders
-- went out before (a second send carries PossResend).
CREATE TABLE fix_sessions (
    session  TEXT    NOT NULL PRIMARY KEY,
    next_out INTEGER NOT NULL,
    next_in  INTEGER NOT NULL,
    epoch    INTEGER NOT NULL
);
CREATE TABLE fix_messages (
    session    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    msg_type   TEXT    NOT NULL,
    order_id   TEXT,
    sent_at_ms INTEGER NOT NULL,
    message    BLOB    NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE INDEX fix_messages_by_order ON fix_messages (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX fix_messages_by_time ON fix_messages (session, sent_at_ms);
