-- Staff sessions that can be stopped: every staff token carries its
-- account's `token_epoch` at login; raising it (revoke all sessions, disable,
-- password change or reset) ends every token issued before. One token
-- (logout) is revoked by its id (`jti`), kept here until it would have
-- expired anyway.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

ALTER TABLE users ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0;

CREATE TABLE revoked_staff_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    -- When the token expires; the row is useless (and deleted) after.
    expires_at BIGINT NOT NULL
);

CREATE INDEX revoked_staff_tokens_expires_at ON revoked_staff_tokens (expires_at);
