-- Meetings and the invitations that let people (or bridge points) join them.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); ids are UUIDs as text.

CREATE TABLE meetings (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'in_progress', 'ended')),
    created_at BIGINT NOT NULL
);

CREATE INDEX meetings_created_at ON meetings (created_at);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX invitations_meeting ON invitations (meeting_id, created_at);
