-- The audit log becomes hash-chained: each row's hash covers the previous
-- row's hash and its own fields, so an edited, removed or reordered row
-- breaks the chain (Store::verify_audit_chain). Portable SQL.
--
-- Rows written before this migration (development builds of 0002 only; 0002
-- and 0003 were released together) are kept, unchained, in
-- audit_log_legacy; they keep their indexes' old names.

ALTER TABLE audit_log RENAME TO audit_log_legacy;

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    -- 1, 2, 3...: the order of the chain.
    seq BIGINT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_chain_at ON audit_log (at);
CREATE INDEX audit_chain_target ON audit_log (target_type, target_id);

-- The head of the chain (one row). Appending updates it first, which
-- serializes appenders on PostgreSQL (row lock) as SQLite's write lock does.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
