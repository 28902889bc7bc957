-- API keys created through the API. The secret is kept only as its SHA-256
-- (hex): a key is shown once, at creation. Revoked keys stay, so the id on
-- the transactions they submitted still names one.
CREATE TABLE api_keys (
    id              VARCHAR(64) NOT NULL PRIMARY KEY,
    name            VARCHAR(255) NOT NULL,
    secret_sha256   CHAR(64) NOT NULL,
    -- Comma-separated scope names.
    scopes          VARCHAR(255) NOT NULL,
    -- JSON array of relayer ids; NULL for every relayer.
    relayers        TEXT,
    -- Its own rate limit (token bucket); NULL for `rate_limit` in the config.
    rate_per_second DOUBLE,
    rate_burst      BIGINT,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
