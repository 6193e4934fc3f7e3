-- The operator's side of a meeting (issue 23): each bridge point's
-- pre-meeting checks of its devices and network path, and the text channel
-- between the province's operator and each point's operator. Portable SQL:
-- runs unchanged on SQLite and PostgreSQL. Times are Unix seconds (BIGINT).

-- A pre-meeting check, run from the invitation link before the meeting.
-- Every run is kept (the dashboard shows the latest of each invitation).
CREATE TABLE link_checks (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    created_at BIGINT NOT NULL,
    -- Every part passed (the server decides it from the figures below).
    ready BOOLEAN NOT NULL,
    camera TEXT NOT NULL CHECK (camera IN ('ok', 'failed', 'absent')),
    microphone TEXT NOT NULL CHECK (microphone IN ('ok', 'silent', 'failed', 'absent')),
    -- The loudest level heard during the check, 0 to 100.
    mic_level BIGINT CHECK (mic_level BETWEEN 0 AND 100),
    -- Whether the person heard the test sound (a question asked on screen).
    speaker TEXT NOT NULL CHECK (speaker IN ('ok', 'failed', 'unknown')),
    -- The path of the test connection to the media server.
    path TEXT NOT NULL CHECK (path IN ('udp', 'tcp', 'relay', 'none')),
    rtt_ms BIGINT CHECK (rtt_ms >= 0),
    down_kbps BIGINT CHECK (down_kbps >= 0),
    up_kbps BIGINT CHECK (up_kbps >= 0),
    browser TEXT NOT NULL DEFAULT '',
    -- What is wrong, as a JSON array of codes ("camera", "rtt", ...).
    problems TEXT NOT NULL DEFAULT '[]'
);

CREATE INDEX link_checks_latest ON link_checks (meeting_id, invitation_id, created_at);

-- The text channel ("Kỹ thuật"). A message of the province's operator goes
-- to one invitation's point (invitation_id set) or to every point
-- (invitation_id NULL); a point's message goes to the operator and names
-- its own invitation. seq orders a meeting's messages (1, 2, ...).
CREATE TABLE tech_messages (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    seq BIGINT NOT NULL,
    sender TEXT NOT NULL CHECK (sender IN ('operator', 'point')),
    invitation_id TEXT REFERENCES invitations (id),
    -- Who wrote it: a staff account's or the invitation's name.
    author TEXT NOT NULL,
    -- The actor, as in the audit log (user:<id>, invitation:<id>).
    actor TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (meeting_id, seq),
    CHECK (sender = 'operator' OR invitation_id IS NOT NULL)
);

CREATE INDEX tech_messages_thread ON tech_messages (meeting_id, invitation_id, seq);
