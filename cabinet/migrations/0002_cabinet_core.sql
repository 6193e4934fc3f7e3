-- The eCabinet core: the meeting lifecycle and details, bridge points,
-- participants, agenda items, documents and their versions, secretariat
-- accounts and the audit log.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); ids are UUIDs as text.
--
-- SQLite cannot alter a CHECK constraint, and the one on meetings.status
-- (0001) does not allow `draft` and `archived`: meetings is rebuilt. Its only
-- child, invitations, is moved aside first and rebuilt last (with its new
-- columns), so no foreign key ever points at a dropped table. Existing
-- meetings keep their status (a `scheduled` one stays scheduled: it was
-- already open to its invitees); new meetings start as `draft`.

CREATE TABLE invitations_0002 (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

INSERT INTO invitations_0002 (id, meeting_id, name, role, created_at, expires_at, revoked_at)
    SELECT id, meeting_id, name, role, created_at, expires_at, revoked_at FROM invitations;

DROP TABLE invitations;

CREATE TABLE meetings_0002 (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('regular', 'thematic', 'extraordinary')),
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'in_progress', 'ended', 'archived')),
    starts_at BIGINT,
    ends_at BIGINT,
    location TEXT NOT NULL,
    -- A participant of this meeting (checked by the store, not by a foreign
    -- key: participants are created after their meeting).
    chair_participant_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

INSERT INTO meetings_0002 (id, title, kind, status, starts_at, ends_at, location,
                           chair_participant_id, created_at, updated_at)
    SELECT id, title, 'regular', status, NULL, NULL, '', NULL, created_at, created_at FROM meetings;

DROP TABLE meetings;

ALTER TABLE meetings_0002 RENAME TO meetings;

CREATE INDEX meetings_created_at ON meetings (created_at);

CREATE TABLE bridge_points (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('province', 'department', 'district', 'commune')),
    contact TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX bridge_points_name ON bridge_points (name);

CREATE TABLE participants (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    name TEXT NOT NULL,
    position TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('chair', 'member', 'secretary', 'delegate', 'observer', 'bridge_operator')),
    voting BOOLEAN NOT NULL,
    bridge_point_id TEXT REFERENCES bridge_points (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX participants_meeting ON participants (meeting_id, created_at);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    participant_id TEXT REFERENCES participants (id),
    bridge_point_id TEXT REFERENCES bridge_points (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

INSERT INTO invitations (id, meeting_id, name, role, participant_id, bridge_point_id,
                         created_at, expires_at, revoked_at)
    SELECT id, meeting_id, name, role, NULL, NULL, created_at, expires_at, revoked_at
    FROM invitations_0002;

DROP TABLE invitations_0002;

CREATE INDEX invitations_meeting ON invitations (meeting_id, created_at);

CREATE TABLE agenda_items (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    position BIGINT NOT NULL,
    title TEXT NOT NULL,
    presenter TEXT NOT NULL,
    duration_minutes BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX agenda_items_meeting ON agenda_items (meeting_id, position);

CREATE TABLE documents (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    agenda_item_id TEXT NOT NULL REFERENCES agenda_items (id),
    title TEXT NOT NULL,
    access TEXT NOT NULL CHECK (access IN ('everyone', 'committee', 'named')),
    current_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX documents_item ON documents (agenda_item_id, created_at);

-- The participants who may read a document whose access is `named`.
CREATE TABLE document_access (
    document_id TEXT NOT NULL REFERENCES documents (id),
    participant_id TEXT NOT NULL REFERENCES participants (id),
    PRIMARY KEY (document_id, participant_id)
);

CREATE TABLE document_versions (
    document_id TEXT NOT NULL REFERENCES documents (id),
    version BIGINT NOT NULL,
    -- Lowercase hex SHA-256 of the content: its name in data_dir/documents.
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    -- The signature verification report, JSON.
    signature_report TEXT NOT NULL,
    PRIMARY KEY (document_id, version)
);

CREATE INDEX document_versions_sha256 ON document_versions (sha256);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'secretary', 'operator')),
    -- Argon2id, PHC string format.
    password_hash TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Append-only: the store only ever inserts here.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
