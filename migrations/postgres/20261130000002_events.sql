-- The event log: transaction status changes (written in the database
-- transaction that changes the status), relayer health and plugin swaps.
-- The event stream and webhooks read it in id order.
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    -- transaction.status, relayer.disabled, relayer.enabled,
    -- relayer.low_balance, plugin.swapped, plugin.rejected
    kind            TEXT NOT NULL,
    transaction_id  TEXT,
    relayer_id      TEXT,
    -- The transaction's status after the change.
    status          TEXT,
    -- The status reason, or what happened to the relayer or plugin.
    detail          TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_transaction ON events (transaction_id, id);
