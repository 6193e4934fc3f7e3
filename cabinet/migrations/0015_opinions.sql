-- Written opinion ballots ("phiếu lấy ý kiến thành viên UBND", issue 21):
-- between meetings the secretariat asks the committee's members a question
-- with a deadline; each recipient answers agree / disagree / other (with a
-- comment) once, or changes it until the deadline when the request allows
-- it. Closing (by the secretariat, or the server at the deadline) stores
-- the outcome once. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT).

CREATE TABLE opinion_requests (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    question TEXT NOT NULL,
    deadline BIGINT NOT NULL,
    rule TEXT NOT NULL
        CHECK (rule IN ('all_members_majority', 'present_majority', 'two_thirds_all')),
    allow_changes BOOLEAN NOT NULL,
    -- The base of the "all members" rules: the recipients unless set larger.
    committee_members BIGINT NOT NULL CHECK (committee_members > 0),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    -- Actors, as in the audit log ("system:deadline" when the server closes).
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    closed_by TEXT,
    closed_at BIGINT,
    -- The outcome as JSON (counts only), set once when it closes.
    outcome TEXT,
    CHECK ((status = 'open') = (outcome IS NULL))
);

CREATE INDEX opinion_requests_open ON opinion_requests (status, deadline);

-- The members asked; each gets its own answer link (a signed token naming
-- the recipient's id).
CREATE TABLE opinion_recipients (
    id TEXT PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES opinion_requests (id),
    name TEXT NOT NULL,
    -- The chair: its side wins a tie under the majority rules.
    is_chair BOOLEAN NOT NULL DEFAULT FALSE,
    position INTEGER NOT NULL,
    UNIQUE (request_id, name)
);

CREATE INDEX opinion_recipients_request ON opinion_recipients (request_id, position);

-- At most one chair per request.
CREATE UNIQUE INDEX opinion_recipients_one_chair ON opinion_recipients (request_id)
    WHERE is_chair;

-- One answer per recipient (the primary key); replaced in place when the
-- request allows changes.
CREATE TABLE opinion_answers (
    recipient_id TEXT PRIMARY KEY NOT NULL REFERENCES opinion_recipients (id),
    request_id TEXT NOT NULL REFERENCES opinion_requests (id),
    answer TEXT NOT NULL CHECK (answer IN ('agree', 'disagree', 'other')),
    comment TEXT NOT NULL DEFAULT '',
    answered_at BIGINT NOT NULL,
    -- How many times it was changed after the first answer.
    changes BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX opinion_answers_request ON opinion_answers (request_id);

-- In-app reminders sent by the secretariat (the recipient's page shows
-- them).
CREATE TABLE opinion_reminders (
    id TEXT PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES opinion_requests (id),
    recipient_id TEXT NOT NULL REFERENCES opinion_recipients (id),
    message TEXT NOT NULL DEFAULT '',
    sent_by TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);

CREATE INDEX opinion_reminders_recipient ON opinion_reminders (recipient_id, sent_at);
