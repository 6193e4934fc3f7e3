-- Notes and comments on a page of a document (issue 23). A `note` is
-- private to its author and kept after the meeting (exportable); a
-- `comment`, written by a member of the committee before or during the
-- meeting, is seen by the committee and the secretariat (per document).
-- Both are anchored by the page of the version the author saw: when the
-- document gets a newer version, the page may have changed and readers
-- are told so. Removing the document (with its agenda item, before the
-- meeting ends) removes them. Portable SQL: runs unchanged on SQLite and
-- PostgreSQL. Times are Unix seconds (BIGINT).

CREATE TABLE document_notes (
    id TEXT PRIMARY KEY NOT NULL,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    -- The page (from 1) of `version`.
    page BIGINT NOT NULL CHECK (page >= 1),
    version BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('note', 'comment')),
    -- The author: an actor as in the audit log (`invitation:<id>`).
    author TEXT NOT NULL,
    author_name TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX document_notes_document ON document_notes (document_id, page);
CREATE INDEX document_notes_author ON document_notes (author, meeting_id);
