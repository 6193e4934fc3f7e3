-- The answer an invitee gives from its link before the meeting: attend,
-- absent (with a reason) or send a substitute (name and position). NULL
-- while it has not answered; the last answer counts (each one is audited).
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

ALTER TABLE invitations ADD COLUMN answer TEXT
    CHECK (answer IS NULL OR answer IN ('attend', 'absent', 'substitute'));
-- Why the invitee is absent; empty otherwise.
ALTER TABLE invitations ADD COLUMN answer_reason TEXT NOT NULL DEFAULT '';
-- Who attends in the invitee's place ("cử người dự thay"); empty otherwise.
ALTER TABLE invitations ADD COLUMN substitute_name TEXT NOT NULL DEFAULT '';
ALTER TABLE invitations ADD COLUMN substitute_position TEXT NOT NULL DEFAULT '';
-- Unix seconds of the last answer; NULL while unanswered.
ALTER TABLE invitations ADD COLUMN answered_at BIGINT;
