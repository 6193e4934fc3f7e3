-- E-mail over SMTP (issues 21 and 22): every message is written to the
-- outbox first, in the transaction of what caused it where there is one,
-- and a sender delivers it with retries; a restart loses nothing. Also the
-- units' and opinion recipients' e-mail addresses, and the documents
-- attached to written opinion requests. Portable SQL: runs unchanged on
-- SQLite (3.35+) and PostgreSQL. Times are Unix seconds (BIGINT).

CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    -- What the message is, once: "invitation:<invitation id>",
    -- "reminder:<invitation id>", "opinion:<recipient id>", ... Writing the
    -- same key again does nothing, so a message is queued (and sent) once.
    dedupe_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('invitation', 'meeting_reminder',
        'documents_changed', 'opinion_request', 'opinion_reminder')),
    -- What it is about (one of them), for the secretariat's view.
    meeting_id TEXT,
    opinion_request_id TEXT,
    to_name TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- The recipient's own link in the body (invitation or opinion link):
    -- later messages to the same invitation reuse its address.
    link TEXT NOT NULL DEFAULT '',
    -- The invitation or opinion recipient it goes to, if any.
    target_id TEXT,
    -- pending: to send (again) at next_attempt_at; sent: the SMTP server
    -- accepted it (never sent again); failed: refused for good, or out of
    -- attempts (last_error says why).
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A sender holds the row until then (two nodes never send one message
    -- at once); NULL: nobody.
    claimed_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    -- The Message-ID header, the same on every attempt.
    message_id TEXT NOT NULL
);

CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_meeting ON mail_outbox (meeting_id, created_at);
CREATE INDEX mail_outbox_opinion ON mail_outbox (opinion_request_id, created_at);

-- Where a unit's invitations and notices go; may be empty (no e-mail).
ALTER TABLE bridge_points ADD COLUMN email TEXT NOT NULL DEFAULT '';

-- Where a member's opinion request and reminders go; may be empty.
ALTER TABLE opinion_recipients ADD COLUMN email TEXT NOT NULL DEFAULT '';

-- Documents attached to a written opinion request (the content lives in
-- the content store, by SHA-256, as a meeting document's does).
CREATE TABLE opinion_documents (
    id TEXT PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES opinion_requests (id),
    title TEXT NOT NULL,
    filename TEXT NOT NULL,
    file_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX opinion_documents_request ON opinion_documents (request_id, created_at);
