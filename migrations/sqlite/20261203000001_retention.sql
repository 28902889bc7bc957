-- Retention prunes idempotency keys by age: read the old ones off an index
-- instead of scanning every key.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
