-- Attendance ("điểm danh") of a meeting: when each invitation was connected
-- (one interval per live session: a point that drops and returns has
-- several), what a bridge point declared on joining (its presiding leader
-- and how many attend in its room), and the secretariat's marks (present in
-- the hall, excused). Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT).

CREATE TABLE attendance_intervals (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    -- The live session's participant id.
    participant_id TEXT NOT NULL,
    via TEXT NOT NULL CHECK (via IN ('websocket', 'whip')),
    joined_at BIGINT NOT NULL,
    -- NULL while connected.
    left_at BIGINT
);

CREATE INDEX attendance_intervals_meeting ON attendance_intervals (meeting_id, joined_at);

-- A live id has at most one open interval.
CREATE UNIQUE INDEX attendance_intervals_open ON attendance_intervals (participant_id)
    WHERE left_at IS NULL;

-- What a bridge point declared on joining; the last declaration counts.
CREATE TABLE attendance_declarations (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    leader TEXT NOT NULL,
    attendees BIGINT NOT NULL CHECK (attendees >= 0),
    declared_at BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, invitation_id)
);

-- The secretariat's mark of an invitee; clearing a mark deletes its row.
CREATE TABLE attendance_marks (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    status TEXT NOT NULL CHECK (status IN ('present_in_hall', 'excused')),
    note TEXT NOT NULL,
    -- An actor, as in the audit log.
    marked_by TEXT NOT NULL,
    marked_at BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, invitation_id)
);
