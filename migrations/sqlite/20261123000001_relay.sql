-- The relay path: transactions with their decision trail and send attempts,
-- one nonce lane per relayer, and the outbox the queue is fed from.
-- Times are milliseconds since the Unix epoch; amounts are decimal strings
-- (u256 does not fit any SQL integer type).

CREATE TABLE transactions (
    id              TEXT PRIMARY KEY NOT NULL,
    -- NULL until the selector has chosen one (pool endpoint).
    relayer_id      TEXT,
    chain_id        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    status_reason   TEXT,
    to_address      TEXT,
    value           TEXT NOT NULL,
    data            BLOB NOT NULL,
    gas_limit       INTEGER,
    speed           TEXT NOT NULL,
    api_key_id      TEXT NOT NULL,
    -- JSON: [[key, value], ...]
    hints           TEXT NOT NULL,
    valid_until     INTEGER,
    nonce           INTEGER,
    hash            TEXT,
    max_fee         TEXT,
    priority_fee    TEXT,
    -- JSON: the policy, selector and fee decisions, in order.
    decisions       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    confirmed_at    INTEGER
);
CREATE UNIQUE INDEX transactions_relayer_nonce ON transactions (relayer_id, nonce);
CREATE INDEX transactions_relayer_created ON transactions (relayer_id, created_at);
CREATE INDEX transactions_status ON transactions (status);

CREATE TABLE attempts (
    transaction_id  TEXT NOT NULL REFERENCES transactions (id),
    attempt         INTEGER NOT NULL,
    hash            TEXT NOT NULL,
    nonce           INTEGER NOT NULL,
    max_fee         TEXT NOT NULL,
    priority_fee    TEXT NOT NULL,
    gas_limit       INTEGER NOT NULL,
    sent_at         INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, attempt)
);

-- The next nonce each relayer will assign. Reserved inside the database
-- transaction that gives it to a transaction, so it cannot drift from what
-- was assigned; re-synced from the chain at start.
CREATE TABLE nonce_lanes (
    relayer_id      TEXT PRIMARY KEY NOT NULL,
    next_nonce      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- Work for the queue, committed with the transaction row it belongs to.
-- The embedded queue consumes it in place; a broker queue publishes it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id  TEXT NOT NULL REFERENCES transactions (id),
    -- queued | in_flight | dead
    state           TEXT NOT NULL,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    available_at    INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX outbox_ready ON outbox (state, available_at, id);
