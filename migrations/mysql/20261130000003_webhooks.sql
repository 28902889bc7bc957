-- Webhook subscriptions and the deliveries given up on. A subscription
-- reads the event log in order from `delivered_through`; one replica at a
-- time delivers it (the lease).
CREATE TABLE webhooks (
    id                  VARCHAR(64) NOT NULL PRIMARY KEY,
    url                 TEXT NOT NULL,
    -- Signs each delivery (HMAC-SHA256); never shown after creation.
    secret              TEXT NOT NULL,
    -- Comma-separated event types; empty for every type.
    kinds               TEXT NOT NULL,
    -- The last event id handled (delivered, skipped or dead-lettered).
    delivered_through   BIGINT NOT NULL,
    -- Failed attempts at the next event, and when to try it again.
    failures            BIGINT NOT NULL DEFAULT 0,
    retry_at            BIGINT NOT NULL DEFAULT 0,
    last_error          TEXT,
    lease_owner         VARCHAR(64),
    lease_until         BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE webhook_dead_letters (
    webhook_id          VARCHAR(64) NOT NULL,
    event_id            BIGINT NOT NULL,
    attempts            BIGINT NOT NULL,
    last_error          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
