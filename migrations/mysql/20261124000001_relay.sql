-- The relay path, for MySQL 8 and MariaDB 10.6+: the same schema as
-- migrations/sqlite after all of its migrations. Binary collation: ids and
-- addresses compare byte for byte, as on the other backends.

CREATE TABLE transactions (
    id              VARCHAR(255) NOT NULL PRIMARY KEY,
    relayer_id      VARCHAR(255),
    chain_id        BIGINT NOT NULL,
    status          VARCHAR(16) NOT NULL,
    status_reason   TEXT,
    to_address      VARCHAR(42),
    value           VARCHAR(80) NOT NULL,
    data            LONGBLOB NOT NULL,
    gas_limit       BIGINT,
    speed           VARCHAR(16) NOT NULL,
    api_key_id      VARCHAR(255) NOT NULL,
    hints           TEXT NOT NULL,
    valid_until     BIGINT,
    nonce           BIGINT,
    hash            VARCHAR(66),
    max_fee         VARCHAR(80),
    priority_fee    VARCHAR(80),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    confirmed_at    BIGINT,
    UNIQUE KEY transactions_relayer_nonce (relayer_id, nonce),
    KEY transactions_relayer_created (relayer_id, created_at),
    KEY transactions_status (status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE decisions (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    transaction_id  VARCHAR(255) NOT NULL,
    record          TEXT NOT NULL,
    KEY decisions_transaction (transaction_id, id),
    FOREIGN KEY (transaction_id) REFERENCES transactions (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE attempts (
    transaction_id  VARCHAR(255) NOT NULL,
    attempt         BIGINT NOT NULL,
    hash            VARCHAR(66) NOT NULL,
    nonce           BIGINT NOT NULL,
    max_fee         VARCHAR(80) NOT NULL,
    priority_fee    VARCHAR(80) NOT NULL,
    gas_limit       BIGINT NOT NULL,
    sent_at         BIGINT NOT NULL,
    to_address      VARCHAR(42),
    value           VARCHAR(80) NOT NULL,
    data            LONGBLOB NOT NULL,
    PRIMARY KEY (transaction_id, attempt),
    FOREIGN KEY (transaction_id) REFERENCES transactions (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE nonce_lanes (
    relayer_id      VARCHAR(255) NOT NULL PRIMARY KEY,
    next_nonce      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE outbox (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    transaction_id  VARCHAR(255) NOT NULL,
    state           VARCHAR(16) NOT NULL,
    deliveries      BIGINT NOT NULL DEFAULT 0,
    available_at    BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    KEY outbox_ready (state, available_at, id),
    FOREIGN KEY (transaction_id) REFERENCES transactions (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
