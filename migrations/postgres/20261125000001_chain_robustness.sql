-- On-chain robustness: why each attempt was sent (a cancel or expiry sends a
-- no-op at the transaction's nonce), the block a transaction was mined in
-- (its hash tells a reorg), and the watcher's checkpoint per chain.
ALTER TABLE attempts ADD COLUMN purpose TEXT NOT NULL DEFAULT 'send';
ALTER TABLE transactions ADD COLUMN block_number BIGINT;
ALTER TABLE transactions ADD COLUMN block_hash TEXT;

CREATE TABLE chain_checkpoints (
    chain_id        BIGINT PRIMARY KEY,
    -- The last block the watcher has processed, and its hash then.
    block_number    BIGINT NOT NULL,
    block_hash      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);
