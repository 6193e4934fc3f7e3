-- Saved groups of units and short codes of invitations (issue 22).
-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Times are Unix
-- seconds (BIGINT).
--
-- A saved group ("khối kinh tế", "khối văn hoá – xã hội") is a named list
-- of bridge points that the secretariat invites in one step. Its name is
-- unique as written, runs of spaces collapsed (the application checks it;
-- the index keeps two writers from racing past the check).

CREATE TABLE unit_groups (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX unit_groups_name ON unit_groups (name);

CREATE TABLE unit_group_members (
    group_id TEXT NOT NULL REFERENCES unit_groups (id) ON DELETE CASCADE,
    bridge_point_id TEXT NOT NULL REFERENCES bridge_points (id),
    PRIMARY KEY (group_id, bridge_point_id)
);

-- The saved groups invited to a meeting, so that a copy of the meeting can
-- invite them again. Deleting a group forgets it here too (the audit log
-- keeps the invitation).
CREATE TABLE meeting_unit_groups (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    group_id TEXT NOT NULL REFERENCES unit_groups (id) ON DELETE CASCADE,
    invited_at BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, group_id)
);

-- An invitation's short code ("mã tham dự", 8 characters read out over the
-- phone) is computed by the server from the invitation's id, a counter and
-- the server's secret key; only a keyed hash of it is stored, to look it up:
-- a copy of the database does not give the codes. NULL until the code is
-- first shown; the counter moves on when a code would collide.
ALTER TABLE invitations ADD COLUMN short_code_key TEXT;
ALTER TABLE invitations ADD COLUMN short_code_n BIGINT NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX invitations_short_code ON invitations (short_code_key);
