-- The audit chain becomes keyed (HMAC-SHA256 with a key kept in the data
-- folder, never in the database; see cabinet/src/audit.rs). Portable SQL.
--
-- keyed_from is the first seq hashed with the key: rows that exist now
-- (hashed with plain SHA-256) keep their hashes and are checked with the
-- plain algorithm; every row appended from now on is keyed. The signed
-- checkpoint file outside the database records the same switch point, so
-- moving it here shows.
--
-- The triggers that make audit_log append-only (refusing UPDATE and DELETE,
-- and TRUNCATE on PostgreSQL) differ between SQLite and PostgreSQL, so
-- Store::connect creates them per database after the migrations, on every
-- start (a dropped trigger comes back).

ALTER TABLE audit_head ADD COLUMN keyed_from BIGINT NOT NULL DEFAULT 1;

UPDATE audit_head SET keyed_from = seq + 1 WHERE id = 1;
