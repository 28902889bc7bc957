-- On-chain robustness: why each attempt was sent (a cancel or expiry sends a
-- no-op at the transaction's nonce), the block a transaction was mined in
-- (its hash tells a reorg), and the watcher's checkpoint per chain.
ALTER TABLE attempts ADD COLUMN purpose VARCHAR(16) NOT NULL DEFAULT 'send';
ALTER TABLE transactions ADD COLUMN block_number BIGINT, ADD COLUMN block_hash VARCHAR(66);

CREATE TABLE chain_checkpoints (
    chain_id        BIGINT NOT NULL PRIMARY KEY,
    -- The last block the watcher has processed, and its hash then.
    block_number    BIGINT NOT NULL,
    block_hash      VARCHAR(66) NOT NULL,
    updated_at      BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
