-- The relay path: transactions with their decision trail and send attempts,
-- one nonce lane per relayer, and the outbox the queue is fed from.
-- Times are milliseconds since the Unix epoch; amounts are decimal strings
-- (u256 does not fit any SQL integer type). The same schema as
-- migrations/sqlite after all of its migrations.

CREATE TABLE transactions (
    id              TEXT PRIMARY KEY,
    -- NULL until the selector has chosen one (pool endpoint).
    relayer_id      TEXT,
    chain_id        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    status_reason   TEXT,
    to_address      TEXT,
    value           TEXT NOT NULL,
    data            BYTEA NOT NULL,
    gas_limit       BIGINT,
    speed           TEXT NOT NULL,
    api_key_id      TEXT NOT NULL,
    -- JSON: [[key, value], ...]
    hints           TEXT NOT NULL,
    valid_until     BIGINT,
    nonce           BIGINT,
    hash            TEXT,
    max_fee         TEXT,
    priority_fee    TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    confirmed_at    BIGINT
);
CREATE UNIQUE INDEX transactions_relayer_nonce ON transactions (relayer_id, nonce);
CREATE INDEX transactions_relayer_created ON transactions (relayer_id, created_at);
CREATE INDEX transactions_status ON transactions (status);

CREATE TABLE decisions (
    id              BIGSERIAL PRIMARY KEY,
    transaction_id  TEXT NOT NULL REFERENCES transactions (id),
    -- JSON: one DecisionRecord.
    record          TEXT NOT NULL
);
CREATE INDEX decisions_transaction ON decisions (transaction_id, id);

CREATE TABLE attempts (
    transaction_id  TEXT NOT NULL REFERENCES transactions (id),
    attempt         BIGINT NOT NULL,
    hash            TEXT NOT NULL,
    nonce           BIGINT NOT NULL,
    max_fee         TEXT NOT NULL,
    priority_fee    TEXT NOT NULL,
    gas_limit       BIGINT NOT NULL,
    sent_at         BIGINT NOT NULL,
    to_address      TEXT,
    value           TEXT NOT NULL,
    data            BYTEA NOT NULL,
    PRIMARY KEY (transaction_id, attempt)
);

-- The next nonce each relayer will assign, reserved inside the database
-- transaction that gives it out: replicas sharing the database take turns
-- on the lane's row lock.
CREATE TABLE nonce_lanes (
    relayer_id      TEXT PRIMARY KEY,
    next_nonce      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    transaction_id  TEXT NOT NULL REFERENCES transactions (id),
    -- queued | in_flight | dead
    state           TEXT NOT NULL,
    deliveries      BIGINT NOT NULL DEFAULT 0,
    available_at    BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_ready ON outbox (state, available_at, id);
