-- What each attempt sent. A replacement at the same nonce may send other
-- content; the transaction row shows the attempt that was mined.
ALTER TABLE attempts ADD COLUMN to_address TEXT;
ALTER TABLE attempts ADD COLUMN value TEXT NOT NULL DEFAULT '0';
ALTER TABLE attempts ADD COLUMN data BLOB NOT NULL DEFAULT x'';
UPDATE attempts SET
    to_address = (SELECT t.to_address FROM transactions t WHERE t.id = attempts.transaction_id),
    value = (SELECT t.value FROM transactions t WHERE t.id = attempts.transaction_id),
    data = (SELECT t.data FROM transactions t WHERE t.id = attempts.transaction_id);
