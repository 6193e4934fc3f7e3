-- Documents: the format verified from the bytes of each version, and the
-- withdrawal of a document (who, when, why; which document replaced it).
-- A withdrawn document stays in the record.
-- Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- `pdf`, `docx`, ... (see cabinet::FileType); NULL for versions uploaded
-- before types were verified.
ALTER TABLE document_versions ADD COLUMN file_type TEXT;

-- Unix seconds; NULL while the document is in force.
ALTER TABLE documents ADD COLUMN withdrawn_at BIGINT;
-- The actor (`user:<id>`...).
ALTER TABLE documents ADD COLUMN withdrawn_by TEXT;
ALTER TABLE documents ADD COLUMN withdrawn_reason TEXT;
-- The document that replaced this one (same agenda item).
ALTER TABLE documents ADD COLUMN replaced_by TEXT;
-- The document this one replaced.
ALTER TABLE documents ADD COLUMN replaces TEXT;
