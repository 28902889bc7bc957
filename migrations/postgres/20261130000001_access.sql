-- Access: API keys created through the API, and idempotency keys.
--
-- An API key's secret is kept only as its SHA-256 (hex): a key is shown once,
-- at creation. Revoked keys stay, so the id on the transactions they
-- submitted still names one.
CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    secret_sha256   TEXT NOT NULL,
    -- Comma-separated scope names.
    scopes          TEXT NOT NULL,
    -- JSON array of relayer ids; NULL for every relayer.
    relayers        TEXT,
    -- Its own rate limit (token bucket); NULL for `rate_limit` in the config.
    rate_per_second DOUBLE PRECISION,
    rate_burst      BIGINT,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);

-- Submissions that carried an `Idempotency-Key`, per API key: a retry with
-- the same key and request gets the transaction back, with another
-- request a 409. `fingerprint` is the SHA-256 of the request as parsed.
CREATE TABLE idempotency_keys (
    api_key_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, idempotency_key)
);
