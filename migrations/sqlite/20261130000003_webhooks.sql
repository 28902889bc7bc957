-- Webhook subscriptions and the deliveries given up on. A subscription
-- reads the event log in order from `delivered_through`; one replica at a
-- time delivers it (the lease).
CREATE TABLE webhooks (
    id                  TEXT PRIMARY KEY NOT NULL,
    url                 TEXT NOT NULL,
    -- Signs each delivery (HMAC-SHA256); never shown after creation.
    secret              TEXT NOT NULL,
    -- Comma-separated event types; empty for every type.
    kinds               TEXT NOT NULL,
    -- The last event id handled (delivered, skipped or dead-lettered).
    delivered_through   INTEGER NOT NULL,
    -- Failed attempts at the next event, and when to try it again.
    failures            INTEGER NOT NULL DEFAULT 0,
    retry_at            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    lease_owner         TEXT,
    lease_until         INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL
);

CREATE TABLE webhook_dead_letters (
    webhook_id          TEXT NOT NULL,
    event_id            INTEGER NOT NULL,
    attempts            INTEGER NOT NULL,
    last_error          TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);
