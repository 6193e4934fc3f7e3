-- Sealed minutes ("biên bản", issue 21): each sealing of a meeting's minutes
-- stores the exact bytes of the sealed PDF (the minutes as krilla made them
-- from the record, then a PAdES signature appended as an incremental update)
-- as version 1, 2, ... of that meeting's minutes. A version never changes:
-- the code has no UPDATE or DELETE of this table, and a correction is a new
-- version. draft_sha256 is the hash of the unsealed PDF: sealing a record
-- that gives the same PDF again returns the existing version. The PDF is
-- kept as base64 text, so that the same portable SQL runs unchanged on
-- SQLite and PostgreSQL. Times are Unix seconds (BIGINT).

CREATE TABLE minutes_versions (
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    version BIGINT NOT NULL CHECK (version >= 1),
    -- SHA-256 (hex) of the unsealed minutes PDF.
    draft_sha256 TEXT NOT NULL,
    -- SHA-256 (hex) and size of the sealed PDF.
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- The sealed PDF, base64 (standard alphabet, padded).
    pdf_base64 TEXT NOT NULL,
    -- The seal: its certificate's subject and SHA-256 (hex, of the DER).
    seal_subject TEXT NOT NULL,
    seal_cert_sha256 TEXT NOT NULL,
    -- An actor, as in the audit log.
    sealed_by TEXT NOT NULL,
    -- The signing time written in the signature (/M).
    sealed_at BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, version)
);
