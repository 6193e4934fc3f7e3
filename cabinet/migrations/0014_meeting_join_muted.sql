-- Whether the meeting's bridge points and delegates enter with their audio
-- blocked by the chair (they raise a hand to speak): TRUE, FALSE, or NULL
-- for the server's default by the meeting's size
-- (signaling.join_muted_from). Portable SQL: SQLite and PostgreSQL.

ALTER TABLE meetings ADD COLUMN join_muted BOOLEAN;
