//! Live votes of a meeting ([`Poll`]): opened by the chair's side, cast by
//! invitees, closed with an [`Outcome`] computed by [`decide`] and stored
//! once.
//!
//! - Named polls keep each ballot (`poll_ballots`: who, as what role, what).
//! - Secret polls keep who voted (`poll_voters`) apart from counters of what
//!   was voted (`poll_tallies`, one per choice, created with the poll), both
//!   written in the ballot's one transaction (every ballot writes all three
//!   counters, so PostgreSQL's row versions tie no counter to a voter);
//!   their audit entries (`poll.voted`) name the voter, never the choice,
//!   and the outcome holds counts only. Not covered: the database's own
//!   history below the rows (SQLite's WAL frames and freed pages,
//!   PostgreSQL's dead row versions and WAL until vacuumed and recycled),
//!   which someone with the files could diff. The chair's choice is therefore unknown: the tie rule is
//!   not applied to secret polls (`tie_broken_by_chair` stays false).
//! - One ballot per voter: checked in code and enforced by the primary key;
//!   a unique violation of either backend is [`Error::AlreadyVoted`].
//! - A ballot and the close of its poll exclude each other: both start by
//!   updating the poll's row (a row lock on PostgreSQL; SQLite's writers are
//!   serial), so every acknowledged ballot is in the outcome, and none comes
//!   after it.
//! - At most one open poll per meeting (a partial unique index as well).

mod rules;

use serde_json::json;

pub use rules::{decide, quorum_needed};

use crate::{
    now_unix, parse_stored, required_text, Choice, Error, NewPoll, Outcome, Poll, PollStatus, Pool,
    Result, Role, Store, Tally,
};

/// Longest question of a poll, in characters.
pub const MAX_POLL_QUESTION: usize = 1000;

const POLL_COLUMNS: &str = "p.id, p.meeting_id, p.agenda_item_id, p.question, p.secret, \
    p.rule, p.voter_roles, p.status, p.opened_at, p.closed_at, p.eligible, p.outcome, \
    CASE WHEN p.secret THEN (SELECT COUNT(*) FROM poll_voters v WHERE v.poll_id = p.id) \
    ELSE (SELECT COUNT(*) FROM poll_ballots b WHERE b.poll_id = p.id) END AS voted";

#[derive(sqlx::FromRow)]
struct PollRow {
    id: String,
    meeting_id: String,
    agenda_item_id: Option<String>,
    question: String,
    secret: bool,
    rule: String,
    voter_roles: String,
    status: String,
    opened_at: i64,
    closed_at: Option<i64>,
    eligible: i64,
    outcome: Option<String>,
    voted: i64,
}

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_roles(s: &str) -> Result<Vec<Role>> {
    s.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| parse_stored(r, "voter role"))
        .collect()
}

impl TryFrom<PollRow> for Poll {
    type Error = Error;
    fn try_from(r: PollRow) -> Result<Poll> {
        let outcome = match r.outcome {
            Some(o) => Some(
                serde_json::from_str::<Outcome>(&o)
                    .map_err(|e| Error::Corrupt(format!("poll outcome: {e}")))?,
            ),
            None => None,
        };
        Ok(Poll {
            rule: parse_stored(&r.rule, "vote rule")?,
            voter_roles: parse_roles(&r.voter_roles)?,
            status: parse_stored(&r.status, "poll status")?,
            id: r.id,
            meeting_id: r.meeting_id,
            agenda_item_id: r.agenda_item_id,
            question: r.question,
            secret: r.secret,
            opened_at: r.opened_at,
            closed_at: r.closed_at,
            eligible: count(r.eligible),
            voted: count(r.voted),
            outcome,
        })
    }
}

/// A primary key or unique index refused the row (SQLite or PostgreSQL).
fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The poll `$id` read inside `$tx`, or [`Error::NotFound`].
macro_rules! poll_in {
    ($tx:ident, $id:expr) => {{
        let sql = format!("SELECT {POLL_COLUMNS} FROM polls p WHERE p.id = $1");
        let row: Option<PollRow> = sqlx::query_as(&sql)
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
        match row {
            Some(r) => Poll::try_from(r)?,
            None => {
                return Err(Error::NotFound {
                    what: "poll",
                    id: String::from($id),
                })
            }
        }
    }};
}

/// The query of a poll's counts per choice (`$1`: the poll).
fn tally_sql(secret: bool) -> &'static str {
    if secret {
        "SELECT choice, count FROM poll_tallies WHERE poll_id = $1"
    } else {
        "SELECT choice, COUNT(*) FROM poll_ballots WHERE poll_id = $1 GROUP BY choice"
    }
}

/// The rows of [`tally_sql`] as a [`Tally`].
fn tally_from(rows: Vec<(String, i64)>) -> Result<Tally> {
    let mut t = Tally::default();
    for (choice, n) in rows {
        let n = count(n);
        match parse_stored::<Choice>(&choice, "choice")? {
            Choice::For => t.for_ = n,
            Choice::Against => t.against = n,
            Choice::Abstain => t.abstain = n,
        }
    }
    Ok(t)
}

/// The chair's choice in named poll `$poll` of meeting `$meeting`, read
/// inside `$tx`, for the tie rule: the ballot of the meeting's designated
/// chair (its participant) if it voted as chair, else the only ballot cast
/// as chair, else the choice of all ballots cast as chair when they agree;
/// `None` otherwise (no chair voted, or chairs disagree).
macro_rules! chair_choice_in {
    ($tx:ident, $poll:expr, $meeting:expr) => {{
        let designated: Option<Option<String>> =
            sqlx::query_scalar("SELECT chair_participant_id FROM meetings WHERE id = $1")
                .bind($meeting)
                .fetch_optional(&mut *$tx)
                .await?;
        let designated = designated.flatten();
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT b.choice, i.participant_id FROM poll_ballots b \
             JOIN invitations i ON i.id = b.invitation_id \
             WHERE b.poll_id = $1 AND b.role = 'chair' ORDER BY b.invitation_id",
        )
        .bind($poll)
        .fetch_all(&mut *$tx)
        .await?;
        let mut choices: Vec<(Choice, Option<String>)> = Vec::new();
        for (c, pid) in rows {
            choices.push((parse_stored::<Choice>(&c, "choice")?, pid));
        }
        let by_designated = designated.as_ref().and_then(|d| {
            choices
                .iter()
                .find(|(_, pid)| pid.as_ref() == Some(d))
                .map(|(c, _)| *c)
        });
        match (by_designated, choices.first()) {
            (Some(c), _) => Some(c),
            (None, Some((first, _))) if choices.iter().all(|(c, _)| c == first) => Some(*first),
            _ => None,
        }
    }};
}

impl Store {
    /// Opens a poll in meeting `meeting_id` with `eligible` voters (counted
    /// by the caller from the live meeting). Refused when the meeting is
    /// unknown or frozen, already has an open poll ([`Error::PollOpen`]), or
    /// the input is invalid (empty or too long question, an agenda item of
    /// another meeting). Audited `poll.open`.
    pub async fn open_poll(
        &self,
        actor: &str,
        meeting_id: &str,
        new: NewPoll,
        eligible: u32,
    ) -> Result<Poll> {
        let question = required_text(&new.question, "question", MAX_POLL_QUESTION)?;
        let mut voter_roles: Vec<Role> = Vec::new();
        for r in &new.voter_roles {
            if !voter_roles.contains(r) {
                voter_roles.push(*r);
            }
        }
        if voter_roles.is_empty() {
            voter_roles = vec![Role::Chair, Role::Member];
        }
        let agenda_item_id = new
            .agenda_item_id
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let poll = Poll {
            id: crate::new_id(),
            meeting_id: meeting_id.to_owned(),
            agenda_item_id,
            question,
            secret: new.secret,
            rule: new.rule,
            voter_roles,
            status: PollStatus::Open,
            opened_at: now_unix(),
            closed_at: None,
            eligible,
            voted: 0,
            outcome: None,
        };
        in_tx!(self, tx => {
            require_open_meeting!(tx, meeting_id);
            if let Some(item) = &poll.agenda_item_id {
                let of: Option<String> =
                    sqlx::query_scalar("SELECT meeting_id FROM agenda_items WHERE id = $1")
                        .bind(item)
                        .fetch_optional(&mut *tx)
                        .await?;
                match of {
                    None => {
                        return Err(Error::NotFound {
                            what: "agenda item",
                            id: item.clone(),
                        })
                    }
                    Some(m) if m != meeting_id => {
                        return Err(Error::InvalidInput(format!(
                            "agenda item {item} is not one of meeting {meeting_id}'s"
                        )))
                    }
                    Some(_) => {}
                }
            }
            let open: Option<String> = sqlx::query_scalar(
                "SELECT id FROM polls WHERE meeting_id = $1 AND status = 'open'",
            )
            .bind(meeting_id)
            .fetch_optional(&mut *tx)
            .await?;
            if open.is_some() {
                return Err(Error::PollOpen(meeting_id.to_owned()));
            }
            let inserted = sqlx::query(
                "INSERT INTO polls (id, meeting_id, agenda_item_id, question, secret, rule, \
                 voter_roles, status, opened_by, opened_at, closed_at, eligible, outcome, \
                 chair_choice) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, NULL, $10, \
                 NULL, NULL)",
            )
            .bind(&poll.id)
            .bind(meeting_id)
            .bind(&poll.agenda_item_id)
            .bind(&poll.question)
            .bind(poll.secret)
            .bind(poll.rule.as_str())
            .bind(roles_text(&poll.voter_roles))
            .bind(actor)
            .bind(poll.opened_at)
            .bind(i64::from(eligible))
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique(&e) => return Err(Error::PollOpen(meeting_id.to_owned())),
                r => {
                    r?;
                }
            }
            if poll.secret {
                for c in Choice::ALL {
                    sqlx::query(
                        "INSERT INTO poll_tallies (poll_id, choice, count) VALUES ($1, $2, 0)",
                    )
                    .bind(&poll.id)
                    .bind(c.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            audit!(tx, actor, "poll.open", "poll", &poll.id, json!({
                "meeting_id": meeting_id, "agenda_item_id": poll.agenda_item_id,
                "question": poll.question, "secret": poll.secret, "rule": poll.rule,
                "voter_roles": poll.voter_roles, "eligible": eligible,
            }));
        });
        Ok(poll)
    }

    /// Casts the ballot of invitation `invitation_id` (voting as `role`) in
    /// poll `poll_id`. Refused: unknown poll ([`Error::NotFound`]), closed
    /// ([`Error::PollClosed`]), frozen meeting, an invitation of another
    /// meeting ([`Error::InvitationNotFound`]), a role that may not vote or a
    /// revoked invitation ([`Error::NotEligible`]), a second ballot
    /// ([`Error::AlreadyVoted`], also when two arrive at once).
    ///
    /// Named: audited `poll.ballot` with the choice. Secret: a voter row and
    /// a counter, audited `poll.voted` without the choice.
    pub async fn cast_ballot(
        &self,
        poll_id: &str,
        invitation_id: &str,
        role: Role,
        choice: Choice,
    ) -> Result<()> {
        let at = now_unix();
        in_tx!(self, tx => {
            // Locks the poll's row against a concurrent close (PostgreSQL).
            let open = sqlx::query("UPDATE polls SET status = 'open' WHERE id = $1 AND status = 'open'")
                .bind(poll_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let poll = poll_in!(tx, poll_id);
            if open == 0 || poll.status != PollStatus::Open {
                return Err(Error::PollClosed(poll_id.to_owned()));
            }
            require_open_meeting!(tx, poll.meeting_id.as_str());
            let inv: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT meeting_id, revoked_at FROM invitations WHERE id = $1")
                    .bind(invitation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match inv {
                Some((m, revoked)) if m == poll.meeting_id => {
                    if revoked.is_some() {
                        return Err(Error::NotEligible(poll_id.to_owned()));
                    }
                }
                _ => return Err(Error::InvitationNotFound(invitation_id.to_owned())),
            }
            if !poll.voter_roles.contains(&role) {
                return Err(Error::NotEligible(poll_id.to_owned()));
            }
            let voters = if poll.secret { "poll_voters" } else { "poll_ballots" };
            let had: Option<String> = sqlx::query_scalar(&format!(
                "SELECT invitation_id FROM {voters} WHERE poll_id = $1 AND invitation_id = $2"
            ))
            .bind(poll_id)
            .bind(invitation_id)
            .fetch_optional(&mut *tx)
            .await?;
            if had.is_some() {
                return Err(Error::AlreadyVoted(poll_id.to_owned()));
            }
            let inserted = if poll.secret {
                sqlx::query(
                    "INSERT INTO poll_voters (poll_id, invitation_id, voted_at) VALUES ($1, $2, $3)",
                )
                .bind(poll_id)
                .bind(invitation_id)
                .bind(at)
                .execute(&mut *tx)
                .await
            } else {
                sqlx::query(
                    "INSERT INTO poll_ballots (poll_id, invitation_id, role, choice, cast_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(poll_id)
                .bind(invitation_id)
                .bind(role.as_str())
                .bind(choice.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await
            };
            match inserted {
                Err(e) if is_unique(&e) => return Err(Error::AlreadyVoted(poll_id.to_owned())),
                r => {
                    r?;
                }
            }
            let actor = format!("invitation:{invitation_id}");
            if poll.secret {
                // All three counters are written, the chosen one plus one:
                // on PostgreSQL a row's version (xmin) names the transaction
                // that wrote it, so writing only the chosen counter would
                // tie it to the voter's row of the same transaction.
                let n = sqlx::query(
                    "UPDATE poll_tallies SET count = count + \
                     CASE WHEN choice = $2 THEN 1 ELSE 0 END WHERE poll_id = $1",
                )
                .bind(poll_id)
                .bind(choice.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 3 {
                    return Err(Error::Corrupt(format!("poll {poll_id} has {n} counters, not 3")));
                }
                audit!(tx, actor.as_str(), "poll.voted", "poll", poll_id, json!({
                    "meeting_id": poll.meeting_id, "invitation_id": invitation_id,
                }));
            } else {
                audit!(tx, actor.as_str(), "poll.ballot", "poll", poll_id, json!({
                    "meeting_id": poll.meeting_id, "invitation_id": invitation_id,
                    "role": role, "choice": choice,
                }));
            }
        });
        Ok(())
    }

    /// Closes poll `poll_id`: computes its [`Outcome`] with [`decide`]
    /// (`committee_members`, `present_members` and the `quorum` fraction
    /// from the meeting's attendance and rules; the chair's ballot of a
    /// named poll for the tie rule), stores it and returns the closed poll.
    /// A closed poll is returned unchanged. Allowed in a frozen meeting, so
    /// that a poll left open can still be closed. Audited `poll.close`.
    pub async fn close_poll(
        &self,
        actor: &str,
        poll_id: &str,
        committee_members: u32,
        present_members: u32,
        quorum: (u32, u32),
    ) -> Result<Poll> {
        let at = now_unix();
        let poll = in_tx!(self, tx => {
            // First: locks the row, so ballots still in flight finish first.
            let closing = sqlx::query(
                "UPDATE polls SET status = 'closed', closed_at = $1 WHERE id = $2 AND status = 'open'",
            )
            .bind(at)
            .bind(poll_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let mut poll = poll_in!(tx, poll_id);
            if closing == 0 {
                return Ok(poll);
            }
            let rows: Vec<(String, i64)> = sqlx::query_as(tally_sql(poll.secret))
                .bind(poll_id)
                .fetch_all(&mut *tx)
                .await?;
            let tally = tally_from(rows)?;
            let chair_choice = if poll.secret {
                None
            } else {
                chair_choice_in!(tx, poll_id, poll.meeting_id.as_str())
            };
            let outcome = decide(
                poll.rule,
                tally,
                poll.eligible,
                committee_members,
                present_members,
                quorum,
                chair_choice,
            );
            let text = serde_json::to_string(&outcome)
                .map_err(|e| Error::Corrupt(format!("poll outcome: {e}")))?;
            sqlx::query("UPDATE polls SET outcome = $1, chair_choice = $2 WHERE id = $3")
                .bind(&text)
                .bind(chair_choice.map(|c| c.as_str()))
                .bind(poll_id)
                .execute(&mut *tx)
                .await?;
            audit!(tx, actor, "poll.close", "poll", poll_id, json!({
                "meeting_id": poll.meeting_id, "outcome": outcome,
                "quorum": [quorum.0, quorum.1],
            }));
            poll.outcome = Some(outcome);
            poll
        });
        Ok(poll)
    }

    /// The poll `poll_id`, if it exists.
    pub async fn get_poll(&self, poll_id: &str) -> Result<Option<Poll>> {
        let sql = format!("SELECT {POLL_COLUMNS} FROM polls p WHERE p.id = $1");
        let row: Option<PollRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(poll_id).fetch_optional(p).await)?;
        row.map(Poll::try_from).transpose()
    }

    /// The polls of meeting `meeting_id`, oldest first.
    pub async fn list_polls(&self, meeting_id: &str) -> Result<Vec<Poll>> {
        let sql = format!(
            "SELECT {POLL_COLUMNS} FROM polls p WHERE p.meeting_id = $1 ORDER BY p.opened_at, p.id"
        );
        let rows: Vec<PollRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(meeting_id).fetch_all(p).await)?;
        rows.into_iter().map(Poll::try_from).collect()
    }

    /// The open poll of meeting `meeting_id`, if any.
    pub async fn open_poll_of(&self, meeting_id: &str) -> Result<Option<Poll>> {
        let sql = format!(
            "SELECT {POLL_COLUMNS} FROM polls p WHERE p.meeting_id = $1 AND p.status = 'open'"
        );
        let row: Option<PollRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(meeting_id).fetch_optional(p).await)?;
        row.map(Poll::try_from).transpose()
    }

    /// The invitations that voted in poll `poll_id` (named or secret), by
    /// id (not in the order they voted, which could tell a secret ballot).
    pub async fn poll_voters(&self, poll_id: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT invitation_id FROM poll_ballots WHERE poll_id = $1 UNION \
             SELECT invitation_id FROM poll_voters WHERE poll_id = $1 ORDER BY 1",
        )
        .bind(poll_id)
        .fetch_all(p)
        .await)?;
        Ok(ids)
    }

    /// What invitation `invitation_id` voted in named poll `poll_id`; always
    /// `None` for a secret poll (nothing stored says it).
    pub async fn ballot_of(&self, poll_id: &str, invitation_id: &str) -> Result<Option<Choice>> {
        let c: Option<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT choice FROM poll_ballots WHERE poll_id = $1 AND invitation_id = $2",
        )
        .bind(poll_id)
        .bind(invitation_id)
        .fetch_optional(p)
        .await)?;
        c.map(|c| parse_stored(&c, "choice")).transpose()
    }

    /// The counts of poll `poll_id` now (an unknown poll: all zero).
    pub async fn poll_tally(&self, poll_id: &str) -> Result<Tally> {
        let secret: Option<bool> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT secret FROM polls WHERE id = $1",
        )
        .bind(poll_id)
        .fetch_optional(p)
        .await)?;
        let Some(secret) = secret else {
            return Ok(Tally::default());
        };
        let rows: Vec<(String, i64)> = with_pool!(self, p => sqlx::query_as(tally_sql(secret)).bind(poll_id).fetch_all(p).await)?;
        tally_from(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};
    use crate::{MeetingStatus, NewAgendaItem, VoteRule};

    const ACTOR: &str = "user:test";
    const TWO_THIRDS: (u32, u32) = (2, 3);

    use crate::tests::invite;

    fn new_poll(question: &str, secret: bool, rule: VoteRule) -> NewPoll {
        NewPoll {
            agenda_item_id: None,
            question: question.into(),
            secret,
            rule,
            voter_roles: Vec::new(),
        }
    }

    /// A meeting with a chair and five members (a committee of six).
    async fn committee(s: &Store) -> (String, String, Vec<String>) {
        let m = s.create_meeting("Họp UBND").await.expect("meeting").id;
        let chair = invite(s, &m, "Chủ tịch", Role::Chair).await;
        let mut members = Vec::new();
        for n in ["A", "B", "C", "D", "E"] {
            members.push(invite(s, &m, n, Role::Member).await);
        }
        (m, chair, members)
    }

    async fn scenario(s: &Store) {
        let (m, chair, members) = committee(s).await;
        let secretary = invite(s, &m, "Văn phòng", Role::Secretary).await;
        let other = s.create_meeting("Another").await.expect("meeting").id;
        let elsewhere = invite(s, &other, "Other", Role::Member).await;
        let item = s
            .add_agenda_item(
                ACTOR,
                &m,
                NewAgendaItem {
                    title: "Kế hoạch".into(),
                    presenter: String::new(),
                    duration_minutes: None,
                },
            )
            .await
            .expect("item")
            .id;
        let other_item = s
            .add_agenda_item(
                ACTOR,
                &other,
                NewAgendaItem {
                    title: "X".into(),
                    presenter: String::new(),
                    duration_minutes: None,
                },
            )
            .await
            .expect("item")
            .id;

        // Refusals at open.
        let rule = VoteRule::AllMembersMajority;
        for q in ["  ", &"q".repeat(MAX_POLL_QUESTION + 1)] {
            assert!(matches!(
                s.open_poll(ACTOR, &m, new_poll(q, false, rule), 6).await,
                Err(Error::InvalidInput(_))
            ));
        }
        let mut on_other = new_poll("Q", false, rule);
        on_other.agenda_item_id = Some(other_item);
        assert!(matches!(
            s.open_poll(ACTOR, &m, on_other, 6).await,
            Err(Error::InvalidInput(_))
        ));
        let mut on_missing = new_poll("Q", false, rule);
        on_missing.agenda_item_id = Some("nope".into());
        assert!(matches!(
            s.open_poll(ACTOR, &m, on_missing, 6).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            s.open_poll(ACTOR, "nope", new_poll("Q", false, rule), 6)
                .await,
            Err(Error::MeetingNotFound(_))
        ));

        // A named poll on the item; everyone votes; a tie the chair breaks.
        let mut np = new_poll(" Thông qua kế hoạch? ", false, rule);
        np.agenda_item_id = Some(item.clone());
        let p = s.open_poll(ACTOR, &m, np, 6).await.expect("open");
        assert_eq!(p.question, "Thông qua kế hoạch?");
        assert_eq!(p.voter_roles, [Role::Chair, Role::Member]);
        assert_eq!((p.status, p.voted, p.eligible), (PollStatus::Open, 0, 6));
        assert_eq!(s.get_poll(&p.id).await.expect("get"), Some(p.clone()));
        assert_eq!(s.open_poll_of(&m).await.expect("open of"), Some(p.clone()));
        assert!(s.open_poll_of(&other).await.expect("open of").is_none());
        assert!(matches!(
            s.open_poll(ACTOR, &m, new_poll("Again", true, rule), 6)
                .await,
            Err(Error::PollOpen(_))
        ));
        assert!(matches!(
            s.cast_ballot(&p.id, &secretary, Role::Secretary, Choice::For)
                .await,
            Err(Error::NotEligible(_))
        ));
        assert!(matches!(
            s.cast_ballot(&p.id, &elsewhere, Role::Member, Choice::For)
                .await,
            Err(Error::InvitationNotFound(_))
        ));
        assert!(matches!(
            s.cast_ballot("nope", &chair, Role::Chair, Choice::For)
                .await,
            Err(Error::NotFound { .. })
        ));
        let votes = [
            (&chair, Role::Chair, Choice::For),
            (&members[0], Role::Member, Choice::For),
            (&members[1], Role::Member, Choice::For),
            (&members[2], Role::Member, Choice::Against),
            (&members[3], Role::Member, Choice::Against),
            (&members[4], Role::Member, Choice::Abstain),
        ];
        for (who, role, choice) in votes {
            s.cast_ballot(&p.id, who, role, choice).await.expect("cast");
        }
        assert!(matches!(
            s.cast_ballot(&p.id, &members[4], Role::Member, Choice::For)
                .await,
            Err(Error::AlreadyVoted(_))
        ));
        assert_eq!(
            s.ballot_of(&p.id, &members[2]).await.expect("ballot"),
            Some(Choice::Against)
        );
        assert_eq!(s.ballot_of(&p.id, &secretary).await.expect("ballot"), None);
        assert_eq!(
            s.poll_tally(&p.id).await.expect("tally"),
            Tally {
                for_: 3,
                against: 2,
                abstain: 1
            }
        );
        let mut all: Vec<String> = members.clone();
        all.push(chair.clone());
        all.sort();
        assert_eq!(s.poll_voters(&p.id).await.expect("voters"), all);
        assert_eq!(
            s.get_poll(&p.id).await.expect("get").expect("poll").voted,
            6
        );

        let closed = s
            .close_poll(ACTOR, &p.id, 6, 5, TWO_THIRDS)
            .await
            .expect("close");
        assert_eq!(closed.status, PollStatus::Closed);
        assert!(closed.closed_at.is_some());
        let o = closed.outcome.expect("outcome");
        assert_eq!((o.base, o.needed, o.voted, o.quorum_needed), (6, 4, 6, 4));
        assert!(o.quorum_met && o.passed && o.tie_broken_by_chair);
        assert_eq!(s.get_poll(&p.id).await.expect("get"), Some(closed.clone()));
        assert!(matches!(
            s.cast_ballot(&p.id, &secretary, Role::Member, Choice::For)
                .await,
            Err(Error::PollClosed(_))
        ));
        let again = s
            .close_poll(ACTOR, &p.id, 1, 0, (1, 1))
            .await
            .expect("close again");
        assert_eq!(again, closed, "a closed poll never changes");
        assert!(s.open_poll_of(&m).await.expect("open of").is_none());
        let audit = s.audit_of("poll", &p.id).await.expect("audit");
        let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions.iter().filter(|a| **a == "poll.ballot").count(), 6);
        assert!(actions.contains(&"poll.open") && actions.contains(&"poll.close"));
        assert!(audit
            .iter()
            .any(|a| a.action == "poll.ballot" && a.detail["choice"] == "abstain"));

        // A secret poll under the present base: a tie the chair cannot break.
        let p2 = s
            .open_poll(
                ACTOR,
                &m,
                NewPoll {
                    agenda_item_id: Some(item.clone()),
                    question: "Bí mật".into(),
                    secret: true,
                    rule: VoteRule::PresentMajority,
                    voter_roles: vec![Role::Member, Role::Chair, Role::Member],
                },
                6,
            )
            .await
            .expect("open secret");
        assert_eq!(p2.voter_roles, [Role::Member, Role::Chair]);
        for (who, role, choice) in [
            (&chair, Role::Chair, Choice::For),
            (&members[0], Role::Member, Choice::For),
            (&members[1], Role::Member, Choice::Against),
            (&members[2], Role::Member, Choice::Against),
        ] {
            s.cast_ballot(&p2.id, who, role, choice)
                .await
                .expect("cast secret");
        }
        assert!(matches!(
            s.cast_ballot(&p2.id, &chair, Role::Chair, Choice::Against)
                .await,
            Err(Error::AlreadyVoted(_))
        ));
        assert_eq!(s.ballot_of(&p2.id, &chair).await.expect("ballot"), None);
        assert_eq!(
            s.poll_tally(&p2.id).await.expect("tally"),
            Tally {
                for_: 2,
                against: 2,
                abstain: 0
            }
        );
        assert_eq!(s.poll_voters(&p2.id).await.expect("voters").len(), 4);
        let closed2 = s
            .close_poll(ACTOR, &p2.id, 6, 4, TWO_THIRDS)
            .await
            .expect("close secret");
        let o = closed2.outcome.expect("outcome");
        assert_eq!((o.base, o.needed, o.tally.for_), (4, 3, 2));
        assert!(o.quorum_met && !o.passed && !o.tie_broken_by_chair);
        let audit = s.audit_of("poll", &p2.id).await.expect("audit");
        let voted: Vec<_> = audit.iter().filter(|a| a.action == "poll.voted").collect();
        assert_eq!(voted.len(), 4);
        assert!(voted.iter().all(|a| a.detail.get("choice").is_none()));
        assert!(audit.iter().all(|a| a.action != "poll.ballot"));

        // Quorum missing; a revoked invitation; the order of the list.
        let p3 = s
            .open_poll(ACTOR, &m, new_poll("Q3", false, VoteRule::TwoThirdsAll), 6)
            .await
            .expect("open");
        s.revoke_invitation(&members[4]).await.expect("revoke");
        assert!(matches!(
            s.cast_ballot(&p3.id, &members[4], Role::Member, Choice::For)
                .await,
            Err(Error::NotEligible(_))
        ));
        for who in &members[..4] {
            s.cast_ballot(&p3.id, who, Role::Member, Choice::For)
                .await
                .expect("cast");
        }
        let ids: Vec<String> = s
            .list_polls(&m)
            .await
            .expect("list")
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.contains(&p.id) && ids.contains(&p2.id) && ids.contains(&p3.id));
        assert!(s.list_polls(&other).await.expect("list").is_empty());

        // The meeting ends with the poll open: no ballots, no new poll; it
        // can still be closed.
        s.set_meeting_status(&m, MeetingStatus::Ended)
            .await
            .expect("end");
        assert!(matches!(
            s.cast_ballot(&p3.id, &chair, Role::Chair, Choice::For)
                .await,
            Err(Error::Frozen { .. })
        ));
        let o = s
            .close_poll(ACTOR, &p3.id, 6, 3, TWO_THIRDS)
            .await
            .expect("close in a frozen meeting")
            .outcome
            .expect("outcome");
        assert!(!o.quorum_met && !o.passed);
        assert_eq!((o.tally.for_, o.needed), (4, 4));
        assert!(matches!(
            s.open_poll(ACTOR, &m, new_poll("Q4", false, rule), 6).await,
            Err(Error::Frozen { .. })
        ));
        assert!(s.verify_audit_chain().await.expect("verify").is_none());
    }

    #[tokio::test]
    async fn sqlite_polls() {
        let (s, _db) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn pg_polls() {
        if let Some((s, schema)) = pg_store().await {
            scenario(&s).await;
            schema.drop_now(s).await;
        }
    }

    /// Every row of every table of the store, each as one text (its columns
    /// cast to text, joined by " | ").
    async fn every_row(s: &Store) -> Vec<(String, String)> {
        let (tables_sql, columns_sql) = match s.pool {
            Pool::Sqlite(_) => (
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                "SELECT name FROM pragma_table_info($1) ORDER BY cid",
            ),
            Pool::Postgres(_) => (
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 ORDER BY table_name",
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 ORDER BY ordinal_position",
            ),
        };
        let tables: Vec<String> =
            with_pool!(s, p => sqlx::query_scalar(tables_sql).fetch_all(p).await).expect("tables");
        assert!(tables.iter().any(|t| t == "poll_tallies"), "{tables:?}");
        let mut out = Vec::new();
        for t in tables {
            let cols: Vec<String> = with_pool!(s, p => sqlx::query_scalar(columns_sql)
                .bind(&t)
                .fetch_all(p)
                .await)
            .expect("columns");
            assert!(!cols.is_empty(), "{t}");
            let expr: Vec<String> = cols
                .iter()
                .map(|c| match s.pool {
                    // Blobs (checksums) as hex: they are not UTF-8.
                    Pool::Sqlite(_) => format!(
                        "COALESCE(CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") \
                         ELSE CAST(\"{c}\" AS TEXT) END, '')"
                    ),
                    Pool::Postgres(_) => format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"),
                })
                .collect();
            let sql = format!("SELECT {} FROM \"{t}\"", expr.join(" || ' | ' || "));
            let rows: Vec<String> =
                with_pool!(s, p => sqlx::query_scalar(&sql).fetch_all(p).await).expect("rows");
            out.extend(rows.into_iter().map(|r| (t.clone(), r)));
        }
        out
    }

    /// The rows that name `invitation` together with a choice (a word
    /// "for", "against" or "abstain", in a column or a JSON value).
    fn links<'a>(rows: &'a [(String, String)], invitation: &str) -> Vec<&'a (String, String)> {
        rows.iter()
            .filter(|(_, r)| {
                r.contains(invitation)
                    && r.split(|c: char| !c.is_ascii_alphanumeric())
                        .any(|w| Choice::ALL.iter().any(|c| c.as_str() == w))
            })
            .collect()
    }

    async fn secrecy(s: &Store) {
        let (m, chair, members) = committee(s).await;
        let rule = VoteRule::AllMembersMajority;
        let p = s
            .open_poll(ACTOR, &m, new_poll("Bầu", true, rule), 6)
            .await
            .expect("open");
        s.cast_ballot(&p.id, &members[0], Role::Member, Choice::For)
            .await
            .expect("for");
        s.cast_ballot(&p.id, &members[1], Role::Member, Choice::Against)
            .await
            .expect("against");
        let closed = s
            .close_poll(ACTOR, &p.id, 6, 6, TWO_THIRDS)
            .await
            .expect("close");
        let rows = every_row(s).await;
        for v in [&members[0], &members[1]] {
            assert!(
                rows.iter()
                    .any(|(t, r)| t == "poll_voters" && r.contains(v.as_str())),
                "who voted is recorded"
            );
            let found = links(&rows, v);
            assert!(found.is_empty(), "a row links {v} to a choice: {found:?}");
        }
        // PostgreSQL: the counters' row versions name no single voter's
        // transaction (all three are written by every ballot).
        if let Pool::Postgres(pool) = &s.pool {
            let xmins: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT xmin::text FROM poll_tallies WHERE poll_id = $1",
            )
            .bind(&p.id)
            .fetch_all(pool)
            .await
            .expect("xmin");
            assert_eq!(xmins.len(), 1, "{xmins:?}");
        }
        // The outcome: counts only.
        let outcome = serde_json::to_string(&closed.outcome.expect("outcome")).expect("json");
        assert!(!outcome.contains(&members[0]) && !outcome.contains(&members[1]));
        let poll_row: Vec<_> = rows
            .iter()
            .filter(|(t, r)| t == "polls" && r.starts_with(&p.id))
            .collect();
        assert_eq!(poll_row.len(), 1);
        assert!(!poll_row[0].1.contains(&members[0]) && !poll_row[0].1.contains(&chair));

        // The search does find the link of a named poll.
        let named = s
            .open_poll(ACTOR, &m, new_poll("Công khai", false, rule), 6)
            .await
            .expect("open");
        s.cast_ballot(&named.id, &members[2], Role::Member, Choice::Abstain)
            .await
            .expect("abstain");
        let rows = every_row(s).await;
        let found = links(&rows, &members[2]);
        let tables: Vec<&str> = found.iter().map(|(t, _)| t.as_str()).collect();
        assert!(
            tables.contains(&"poll_ballots") && tables.contains(&"audit_log"),
            "{found:?}"
        );
        assert!(links(&rows, &members[0]).is_empty());
    }

    #[tokio::test]
    async fn sqlite_secrecy() {
        let (s, _db) = sqlite_store().await;
        secrecy(&s).await;
    }

    #[tokio::test]
    async fn pg_secrecy() {
        if let Some((s, schema)) = pg_store().await {
            secrecy(&s).await;
            schema.drop_now(s).await;
        }
    }

    /// 20 ballots of one voter at once, in a named and a secret poll:
    /// exactly one counted, the others [`Error::AlreadyVoted`].
    async fn one_ballot_per_voter(s: &Store) {
        let (m, _chair, members) = committee(s).await;
        for secret in [false, true] {
            let p = s
                .open_poll(
                    ACTOR,
                    &m,
                    new_poll("Q", secret, VoteRule::AllMembersMajority),
                    6,
                )
                .await
                .expect("open");
            let mut tasks = Vec::new();
            for i in 0..20 {
                let s = s.clone();
                let poll = p.id.clone();
                let voter = members[0].clone();
                let choice = Choice::ALL[i % 3];
                tasks.push(tokio::spawn(async move {
                    s.cast_ballot(&poll, &voter, Role::Member, choice).await
                }));
            }
            let mut ok = 0;
            for t in tasks {
                match t.await.expect("task") {
                    Ok(()) => ok += 1,
                    Err(Error::AlreadyVoted(id)) => assert_eq!(id, p.id),
                    Err(e) => panic!("secret {secret}: unexpected {e}"),
                }
            }
            assert_eq!(ok, 1, "secret {secret}");
            // The database refuses a second row by itself (the primary key).
            let table = if secret {
                "poll_voters"
            } else {
                "poll_ballots"
            };
            let sql = if secret {
                "INSERT INTO poll_voters (poll_id, invitation_id, voted_at) VALUES ($1, $2, 0)"
            } else {
                "INSERT INTO poll_ballots (poll_id, invitation_id, role, choice, cast_at) \
                 VALUES ($1, $2, 'member', 'for', 0)"
            };
            let raw = with_pool!(s, pool => sqlx::query(sql)
                .bind(&p.id)
                .bind(&members[0])
                .execute(pool)
                .await
                .map(|_| ()));
            match raw {
                Err(e) => assert!(is_unique(&e), "{table}: {e}"),
                Ok(()) => panic!("{table} took a second ballot"),
            }
            assert_eq!(s.poll_tally(&p.id).await.expect("tally").total(), 1);
            assert_eq!(
                s.poll_voters(&p.id).await.expect("voters"),
                [members[0].clone()]
            );
            let closed = s
                .close_poll(ACTOR, &p.id, 6, 6, TWO_THIRDS)
                .await
                .expect("close");
            assert_eq!(closed.voted, 1);
            assert_eq!(closed.outcome.expect("outcome").voted, 1);
        }
    }

    /// Ballots racing the close: every acknowledged one is in the outcome,
    /// the others are refused as closed.
    async fn ballots_race_the_close(s: &Store) {
        let (m, chair, members) = committee(s).await;
        let mut voters = members.clone();
        voters.push(chair);
        for secret in [false, true] {
            let p = s
                .open_poll(ACTOR, &m, new_poll("Q", secret, VoteRule::TwoThirdsAll), 6)
                .await
                .expect("open");
            let mut tasks = Vec::new();
            for v in &voters {
                let (s, poll, v) = (s.clone(), p.id.clone(), v.clone());
                let role = if tasks.len() == 5 {
                    Role::Chair
                } else {
                    Role::Member
                };
                tasks.push(tokio::spawn(async move {
                    s.cast_ballot(&poll, &v, role, Choice::For).await
                }));
            }
            let closing = {
                let (s, poll) = (s.clone(), p.id.clone());
                tokio::spawn(async move { s.close_poll(ACTOR, &poll, 6, 6, TWO_THIRDS).await })
            };
            let mut ok = 0;
            for t in tasks {
                match t.await.expect("task") {
                    Ok(()) => ok += 1,
                    Err(Error::PollClosed(_)) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            let closed = closing.await.expect("task").expect("close");
            let o = closed.outcome.expect("outcome");
            assert_eq!((o.voted, o.tally.for_, closed.voted), (ok, ok, ok));
            assert_eq!(s.poll_tally(&p.id).await.expect("tally").for_, ok);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_ballots_race_the_close() {
        let (s, _db) = sqlite_store().await;
        ballots_race_the_close(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn pg_ballots_race_the_close() {
        if let Some((s, schema)) = pg_store().await {
            ballots_race_the_close(&s).await;
            schema.drop_now(s).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_one_ballot_per_voter() {
        let (s, _db) = sqlite_store().await;
        one_ballot_per_voter(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn pg_one_ballot_per_voter() {
        if let Some((s, schema)) = pg_store().await {
            one_ballot_per_voter(&s).await;
            schema.drop_now(s).await;
        }
    }
}
