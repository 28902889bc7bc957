-- The event log: transaction status changes (written in the database
-- transaction that changes the status), relayer health and plugin swaps.
-- The event stream and webhooks read it in id order.
CREATE TABLE events (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- transaction.status, relayer.disabled, relayer.enabled,
    -- relayer.low_balance, plugin.swapped, plugin.rejected
    kind            VARCHAR(32) NOT NULL,
    transaction_id  VARCHAR(255),
    relayer_id      VARCHAR(255),
    -- The transaction's status after the change.
    status          VARCHAR(16),
    -- The status reason, or what happened to the relayer or plugin.
    detail          TEXT,
    created_at      BIGINT NOT NULL,
    INDEX events_transaction (transaction_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
