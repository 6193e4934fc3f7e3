-- Idempotency keys: the answer to a creating request that carried an
-- `Idempotency-Key` header, written in the same transaction as what the
-- request created, so a client that retries (after a timeout, a dropped
-- connection or a server crash) gets that answer again instead of creating
-- a second item. Scoped per actor; kept for a day.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

CREATE TABLE idempotency_keys (
    actor TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    -- SHA-256 (hex) of the request: its endpoint and what it asked for. The
    -- same key with another request is refused, not replayed.
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    -- The JSON body of the answer.
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (actor, idem_key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
