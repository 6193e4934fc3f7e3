-- Live votes of a meeting (issue 21). A named poll keeps each ballot
-- (poll_ballots); a secret poll keeps WHO voted (poll_voters) apart from
-- counters of WHAT was voted (poll_tallies), both written in the ballot's
-- one transaction, so no row links a voter to a choice. One ballot per
-- voter: the primary keys. Portable SQL: runs unchanged on SQLite and
-- PostgreSQL. Times are Unix seconds (BIGINT).

CREATE TABLE polls (
    id TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL REFERENCES meetings (id),
    -- No foreign key: the vote stays on record if the item is removed.
    agenda_item_id TEXT,
    question TEXT NOT NULL,
    secret BOOLEAN NOT NULL,
    rule TEXT NOT NULL
        CHECK (rule IN ('all_members_majority', 'present_majority', 'two_thirds_all')),
    -- Roles that may vote, comma-separated.
    voter_roles TEXT NOT NULL DEFAULT 'chair,member',
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    -- An actor, as in the audit log.
    opened_by TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    -- NULL while open.
    closed_at BIGINT,
    -- Eligible voters when it opened.
    eligible BIGINT NOT NULL CHECK (eligible >= 0),
    -- The outcome as JSON (counts only), set once when it closes.
    outcome TEXT,
    -- The chair's ballot of a named poll at close (the tie rule); never
    -- kept for a secret poll.
    chair_choice TEXT CHECK (chair_choice IS NULL OR chair_choice IN ('for', 'against', 'abstain')),
    CHECK (NOT secret OR chair_choice IS NULL)
);

CREATE INDEX polls_meeting ON polls (meeting_id, opened_at);

-- At most one open poll per meeting.
CREATE UNIQUE INDEX polls_one_open ON polls (meeting_id) WHERE status = 'open';

-- The ballots of named polls.
CREATE TABLE poll_ballots (
    poll_id TEXT NOT NULL REFERENCES polls (id),
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    -- The role the invitation voted as.
    role TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('for', 'against', 'abstain')),
    cast_at BIGINT NOT NULL,
    PRIMARY KEY (poll_id, invitation_id)
);

-- Who voted in a secret poll (and nothing of what).
CREATE TABLE poll_voters (
    poll_id TEXT NOT NULL REFERENCES polls (id),
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    voted_at BIGINT NOT NULL,
    PRIMARY KEY (poll_id, invitation_id)
);

-- What was voted in a secret poll: one counter per choice, all three
-- created with the poll.
CREATE TABLE poll_tallies (
    poll_id TEXT NOT NULL REFERENCES polls (id),
    choice TEXT NOT NULL CHECK (choice IN ('for', 'against', 'abstain')),
    count BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (poll_id, choice)
);
