-- The notice of conclusions ("thông báo kết luận", issue 21) of a meeting:
-- generated from the record on request, due a number of working days after
-- the meeting; this table keeps only that the secretariat marked it issued
-- (who, when, and the number the clerical office gave it, if entered).
-- Unmarking deletes the row; the audit log keeps every change. Portable
-- SQL: runs unchanged on SQLite and PostgreSQL. Times are Unix seconds.

CREATE TABLE notices (
    meeting_id TEXT PRIMARY KEY NOT NULL REFERENCES meetings (id),
    -- An actor, as in the audit log.
    issued_by TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    -- The number given by the clerical office ("12"); may be empty.
    number TEXT NOT NULL DEFAULT ''
);
