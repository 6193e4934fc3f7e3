-- An e-mail address of an invitation (issue 22): members and the chair
-- (invitations without a unit) have no unit whose address could be used,
-- so their invitation carries its own. Empty: none; for a unit's
-- invitation, empty means the unit's address. Portable SQL: runs unchanged
-- on SQLite and PostgreSQL.

ALTER TABLE invitations ADD COLUMN email TEXT NOT NULL DEFAULT '';
