-- The conclusion ("kết luận") of each agenda item (issue 21): the text the
-- chair or the secretariat enters during or after the meeting, at most one
-- per item; clearing it deletes the row. Removing the item (possible only
-- before the meeting ends) removes its conclusion; the audit log keeps
-- every text that was set. Portable SQL: runs unchanged on SQLite and
-- PostgreSQL. Times are Unix seconds (BIGINT).

CREATE TABLE conclusions (
    agenda_item_id TEXT PRIMARY KEY NOT NULL
        REFERENCES agenda_items (id) ON DELETE CASCADE,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    text TEXT NOT NULL,
    -- An actor, as in the audit log.
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX conclusions_meeting ON conclusions (meeting_id);
