//! Written opinion ballots ("phiếu lấy ý kiến thành viên UBND"): between
//! meetings the secretariat asks the committee's members a question with a
//! deadline ([`OpinionRequest`]); each recipient answers agree, disagree or
//! other (with a comment) through its own link.
//!
//! - One answer per recipient: the primary key of `opinion_answers`. A
//!   second answer is [`Error::AlreadyVoted`] unless the request allows
//!   changes until the deadline; then it replaces the first (counted in
//!   `changes`, each version in the audit log).
//! - After the deadline, or once closed, answers and reminders are refused
//!   ([`Error::PollClosed`]).
//! - Closing (the secretariat, or the server's sweep at the deadline with
//!   the actor `system:deadline`) computes the [`Outcome`] with [`decide`]
//!   and stores it once; it never changes afterwards. Agree counts as for,
//!   disagree as against, other as abstain. The base of the "all members"
//!   rules is the number of recipients unless the request names a larger
//!   committee; the "present" of `present_majority` is the members who
//!   answered. No quorum: a written ballot has no sitting to attend, so the
//!   quorum is `0/1` (always met) and a member who does not answer counts
//!   against the motion by not being "for", as an absent member does. A
//!   tie goes to the side of the recipient marked as chair, if it agreed or
//!   disagreed.
//! - Answers are named (a written opinion is signed, not secret): the audit
//!   log keeps each one with its comment.
//! - A request and an answer exclude each other on close: both start by
//!   updating the request's row (a row lock on PostgreSQL; SQLite's writers
//!   are serial), so every acknowledged answer is in the outcome.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    decide, now_unix, optional_text, parse_stored, required_text, Choice, Error, Outcome,
    PollStatus, Pool, Result, Store, Tally, VoteRule,
};

/// Longest title, in characters.
pub const MAX_OPINION_TITLE: usize = 300;
/// Longest question, in characters.
pub const MAX_OPINION_QUESTION: usize = 10_000;
/// Longest comment or reminder message, in characters.
pub const MAX_OPINION_COMMENT: usize = 5_000;
/// Longest recipient name, in characters.
pub const MAX_RECIPIENT_NAME: usize = 200;
/// Most recipients of one request.
pub const MAX_RECIPIENTS: usize = 500;
/// Furthest deadline from now, in seconds (a year).
pub const MAX_OPINION_HORIZON: i64 = 366 * 24 * 3600;
/// The actor of the server's close at the deadline.
pub const DEADLINE_ACTOR: &str = "system:deadline";

/// A recipient's answer: "đồng ý", "không đồng ý", "ý kiến khác".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpinionAnswer {
    /// Counted as for.
    Agree,
    /// Counted as against.
    Disagree,
    /// Another opinion (a comment is required); counted as abstain.
    Other,
}

impl OpinionAnswer {
    pub const ALL: [OpinionAnswer; 3] = [
        OpinionAnswer::Agree,
        OpinionAnswer::Disagree,
        OpinionAnswer::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpinionAnswer::Agree => "agree",
            OpinionAnswer::Disagree => "disagree",
            OpinionAnswer::Other => "other",
        }
    }

    /// How it counts in [`decide`].
    pub fn choice(self) -> Choice {
        match self {
            OpinionAnswer::Agree => Choice::For,
            OpinionAnswer::Disagree => Choice::Against,
            OpinionAnswer::Other => Choice::Abstain,
        }
    }
}

impl FromStr for OpinionAnswer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        OpinionAnswer::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown answer {s:?} (expected one of: agree, disagree, other)"
                ))
            })
    }
}

impl fmt::Display for OpinionAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A written opinion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionRequest {
    pub id: String,
    pub title: String,
    pub question: String,
    /// Unix seconds: no answer is taken from then on.
    pub deadline: i64,
    pub rule: VoteRule,
    /// Answers may be changed until the deadline.
    pub allow_changes: bool,
    /// The base of the "all members" rules.
    pub committee_members: u32,
    pub status: PollStatus,
    pub created_by: String,
    pub created_at: i64,
    pub closed_by: Option<String>,
    pub closed_at: Option<i64>,
    /// Set once when it closes, never changed afterwards.
    pub outcome: Option<Outcome>,
    /// How many members were asked.
    pub recipients: u32,
    /// How many have answered.
    pub answered: u32,
}

/// A recipient's answer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientAnswer {
    pub answer: OpinionAnswer,
    pub comment: String,
    /// Unix seconds of the last change.
    pub answered_at: i64,
    /// How many times it was changed after the first answer.
    pub changes: u32,
}

/// A member asked for its opinion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionRecipient {
    pub id: String,
    pub request_id: String,
    pub name: String,
    /// Its side wins a tie under the majority rules.
    pub is_chair: bool,
    /// Where its request and reminders are e-mailed; may be empty.
    pub email: String,
    pub answer: Option<RecipientAnswer>,
    /// Reminders sent to it.
    pub reminders: u32,
    pub last_reminded_at: Option<i64>,
}

/// An in-app reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OpinionReminder {
    pub id: String,
    pub request_id: String,
    pub recipient_id: String,
    pub message: String,
    pub sent_by: String,
    pub sent_at: i64,
}

/// A member to ask (see [`NewOpinionRequest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRecipient {
    pub name: String,
    /// At most one per request.
    #[serde(default)]
    pub chair: bool,
    /// An e-mail address for the request and its reminders, or empty.
    #[serde(default)]
    pub email: String,
}

fn default_rule() -> VoteRule {
    VoteRule::AllMembersMajority
}

/// What [`Store::create_opinion_request`] needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOpinionRequest {
    pub title: String,
    pub question: String,
    /// Unix seconds, in the future (at most [`MAX_OPINION_HORIZON`] away).
    pub deadline: i64,
    #[serde(default = "default_rule")]
    pub rule: VoteRule,
    #[serde(default)]
    pub allow_changes: bool,
    /// The committee's size, if larger than the recipients; default: the
    /// number of recipients.
    #[serde(default)]
    pub committee_members: Option<u32>,
    /// 1 to [`MAX_RECIPIENTS`], distinct names.
    pub recipients: Vec<NewRecipient>,
}

const REQUEST_COLUMNS: &str = "r.id, r.title, r.question, r.deadline, r.rule, r.allow_changes, \
    r.committee_members, r.status, r.created_by, r.created_at, r.closed_by, r.closed_at, \
    r.outcome, \
    (SELECT COUNT(*) FROM opinion_recipients c WHERE c.request_id = r.id) AS recipients, \
    (SELECT COUNT(*) FROM opinion_answers a WHERE a.request_id = r.id) AS answered";

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: String,
    title: String,
    question: String,
    deadline: i64,
    rule: String,
    allow_changes: bool,
    committee_members: i64,
    status: String,
    created_by: String,
    created_at: i64,
    closed_by: Option<String>,
    closed_at: Option<i64>,
    outcome: Option<String>,
    recipients: i64,
    answered: i64,
}

fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl TryFrom<RequestRow> for OpinionRequest {
    type Error = Error;
    fn try_from(r: RequestRow) -> Result<OpinionRequest> {
        let outcome = match r.outcome {
            Some(o) => Some(
                serde_json::from_str::<Outcome>(&o)
                    .map_err(|e| Error::Corrupt(format!("opinion outcome: {e}")))?,
            ),
            None => None,
        };
        Ok(OpinionRequest {
            rule: parse_stored(&r.rule, "vote rule")?,
            status: parse_stored(&r.status, "opinion request status")?,
            id: r.id,
            title: r.title,
            question: r.question,
            deadline: r.deadline,
            allow_changes: r.allow_changes,
            committee_members: count(r.committee_members),
            created_by: r.created_by,
            created_at: r.created_at,
            closed_by: r.closed_by,
            closed_at: r.closed_at,
            outcome,
            recipients: count(r.recipients),
            answered: count(r.answered),
        })
    }
}

const RECIPIENT_COLUMNS: &str = "c.id, c.request_id, c.name, c.is_chair, c.email, a.answer, \
    a.comment, a.answered_at, a.changes, \
    (SELECT COUNT(*) FROM opinion_reminders m WHERE m.recipient_id = c.id) AS reminders, \
    (SELECT MAX(m.sent_at) FROM opinion_reminders m WHERE m.recipient_id = c.id) \
    AS last_reminded_at";

const RECIPIENT_FROM: &str =
    "opinion_recipients c LEFT JOIN opinion_answers a ON a.recipient_id = c.id";

#[derive(sqlx::FromRow)]
struct RecipientRow {
    id: String,
    request_id: String,
    name: String,
    is_chair: bool,
    email: String,
    answer: Option<String>,
    comment: Option<String>,
    answered_at: Option<i64>,
    changes: Option<i64>,
    reminders: i64,
    last_reminded_at: Option<i64>,
}

impl TryFrom<RecipientRow> for OpinionRecipient {
    type Error = Error;
    fn try_from(r: RecipientRow) -> Result<OpinionRecipient> {
        let answer = match r.answer {
            Some(a) => Some(RecipientAnswer {
                answer: parse_stored(&a, "opinion answer")?,
                comment: r.comment.unwrap_or_default(),
                answered_at: r.answered_at.unwrap_or_default(),
                changes: count(r.changes.unwrap_or_default()),
            }),
            None => None,
        };
        Ok(OpinionRecipient {
            id: r.id,
            request_id: r.request_id,
            name: r.name,
            is_chair: r.is_chair,
            email: r.email,
            answer,
            reminders: count(r.reminders),
            last_reminded_at: r.last_reminded_at,
        })
    }
}

/// A primary key or unique index refused the row (SQLite or PostgreSQL).
fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Refuses a text longer than `max` characters as sent (before trimming,
/// as the API's schema counts them).
fn within(v: &str, what: &str, max: usize) -> Result<()> {
    if v.chars().count() > max {
        return Err(Error::InvalidInput(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// A text without NUL (PostgreSQL's text cannot hold it).
fn no_nul(v: String, what: &str) -> Result<String> {
    if v.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "the {what} contains a NUL character"
        )));
    }
    Ok(v)
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "opinion request",
        id: id.to_owned(),
    }
}

/// The request `$id` read inside `$tx`, or [`Error::NotFound`].
macro_rules! request_in {
    ($tx:ident, $id:expr) => {{
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM opinion_requests r WHERE r.id = $1");
        let row: Option<RequestRow> = sqlx::query_as(&sql)
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
        match row {
            Some(r) => OpinionRequest::try_from(r)?,
            None => return Err(not_found($id)),
        }
    }};
}

/// Locks request `$id`'s row against a concurrent close (PostgreSQL) and
/// refuses unless it is open and before its deadline at `$now`; evaluates
/// to the request.
macro_rules! require_taking {
    ($tx:ident, $id:expr, $now:expr) => {{
        let open = sqlx::query(
            "UPDATE opinion_requests SET status = 'open' WHERE id = $1 AND status = 'open'",
        )
        .bind($id)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        let req = request_in!($tx, $id);
        if open == 0 || req.status != PollStatus::Open || $now >= req.deadline {
            return Err(Error::PollClosed(String::from($id)));
        }
        req
    }};
}

impl Store {
    /// Creates a request and its recipients. Refused ([`Error::InvalidInput`])
    /// with an empty or too long title or question, a deadline not in the
    /// future or more than [`MAX_OPINION_HORIZON`] away, no recipients or
    /// more than [`MAX_RECIPIENTS`], an empty or repeated name, more than
    /// one chair, or a committee smaller than the recipients. Audited
    /// `opinion.create`.
    pub async fn create_opinion_request(
        &self,
        actor: &str,
        new: &NewOpinionRequest,
    ) -> Result<(OpinionRequest, Vec<OpinionRecipient>)> {
        within(&new.title, "title", MAX_OPINION_TITLE)?;
        within(&new.question, "question", MAX_OPINION_QUESTION)?;
        let title = no_nul(
            required_text(&new.title, "title", MAX_OPINION_TITLE)?,
            "title",
        )?;
        let question = no_nul(
            required_text(&new.question, "question", MAX_OPINION_QUESTION)?,
            "question",
        )?;
        let now = now_unix();
        if new.deadline <= now {
            return Err(Error::InvalidInput(
                "the deadline is not in the future".into(),
            ));
        }
        if new.deadline - now > MAX_OPINION_HORIZON {
            return Err(Error::InvalidInput(
                "the deadline is more than a year away".into(),
            ));
        }
        if new.recipients.is_empty() {
            return Err(Error::InvalidInput("no recipients".into()));
        }
        if new.recipients.len() > MAX_RECIPIENTS {
            return Err(Error::InvalidInput(format!(
                "more than {MAX_RECIPIENTS} recipients"
            )));
        }
        let mut recipients: Vec<OpinionRecipient> = Vec::with_capacity(new.recipients.len());
        for r in &new.recipients {
            within(&r.name, "recipient's name", MAX_RECIPIENT_NAME)?;
            let name = no_nul(
                required_text(&r.name, "recipient's name", MAX_RECIPIENT_NAME)?,
                "recipient's name",
            )?;
            if recipients.iter().any(|o| o.name == name) {
                return Err(Error::InvalidInput(format!(
                    "the recipient {name:?} is listed twice"
                )));
            }
            recipients.push(OpinionRecipient {
                id: crate::new_id(),
                request_id: String::new(),
                name,
                is_chair: r.chair,
                email: crate::mail::checked_email(&r.email)?,
                answer: None,
                reminders: 0,
                last_reminded_at: None,
            });
        }
        if recipients.iter().filter(|r| r.is_chair).count() > 1 {
            return Err(Error::InvalidInput("more than one chair".into()));
        }
        let n = u32::try_from(recipients.len()).unwrap_or(u32::MAX);
        let committee_members = new.committee_members.unwrap_or(n);
        if committee_members < n {
            return Err(Error::InvalidInput(format!(
                "the committee ({committee_members}) is smaller than the recipients ({n})"
            )));
        }
        let id = crate::new_id();
        for r in &mut recipients {
            r.request_id = id.clone();
        }
        let req = OpinionRequest {
            id: id.clone(),
            title,
            question,
            deadline: new.deadline,
            rule: new.rule,
            allow_changes: new.allow_changes,
            committee_members,
            status: PollStatus::Open,
            created_by: actor.to_owned(),
            created_at: now,
            closed_by: None,
            closed_at: None,
            outcome: None,
            recipients: n,
            answered: 0,
        };
        in_tx!(self, tx => {
            sqlx::query(
                "INSERT INTO opinion_requests (id, title, question, deadline, rule, \
                 allow_changes, committee_members, status, created_by, created_at, closed_by, \
                 closed_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, NULL, \
                 NULL, NULL)",
            )
            .bind(&req.id)
            .bind(&req.title)
            .bind(&req.question)
            .bind(req.deadline)
            .bind(req.rule.as_str())
            .bind(req.allow_changes)
            .bind(i64::from(req.committee_members))
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (i, r) in recipients.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO opinion_recipients (id, request_id, name, is_chair, position, \
                     email) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&r.id)
                .bind(&id)
                .bind(&r.name)
                .bind(r.is_chair)
                .bind(i32::try_from(i).unwrap_or(i32::MAX))
                .bind(&r.email)
                .execute(&mut *tx)
                .await?;
            }
            let names: Vec<serde_json::Value> = recipients
                .iter()
                .map(|r| json!({"id": r.id, "name": r.name, "chair": r.is_chair, "email": r.email}))
                .collect();
            audit!(tx, actor, "opinion.create", "opinion_request", &id, json!({
                "title": req.title, "question": req.question, "deadline": req.deadline,
                "rule": req.rule, "allow_changes": req.allow_changes,
                "committee_members": req.committee_members, "recipients": names,
            }));
        });
        Ok((req, recipients))
    }

    /// Every request, newest first.
    pub async fn list_opinion_requests(&self) -> Result<Vec<OpinionRequest>> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM opinion_requests r ORDER BY r.created_at DESC, r.id"
        );
        let rows: Vec<RequestRow> = with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(OpinionRequest::try_from).collect()
    }

    /// The request `id`, if it exists.
    pub async fn get_opinion_request(&self, id: &str) -> Result<Option<OpinionRequest>> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM opinion_requests r WHERE r.id = $1");
        let row: Option<RequestRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        row.map(OpinionRequest::try_from).transpose()
    }

    /// The recipients of request `request_id`, in the order they were given.
    pub async fn opinion_recipients(&self, request_id: &str) -> Result<Vec<OpinionRecipient>> {
        let sql = format!(
            "SELECT {RECIPIENT_COLUMNS} FROM {RECIPIENT_FROM} WHERE c.request_id = $1 \
             ORDER BY c.position, c.id"
        );
        let rows: Vec<RecipientRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(request_id).fetch_all(p).await)?;
        rows.into_iter().map(OpinionRecipient::try_from).collect()
    }

    /// The recipient `id`, if it exists.
    pub async fn opinion_recipient(&self, id: &str) -> Result<Option<OpinionRecipient>> {
        let sql = format!("SELECT {RECIPIENT_COLUMNS} FROM {RECIPIENT_FROM} WHERE c.id = $1");
        let row: Option<RecipientRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        row.map(OpinionRecipient::try_from).transpose()
    }

    /// The reminders sent to recipient `recipient_id`, oldest first.
    pub async fn opinion_reminders(&self, recipient_id: &str) -> Result<Vec<OpinionReminder>> {
        let rows: Vec<OpinionReminder> = with_pool!(self, p => sqlx::query_as(
            "SELECT id, request_id, recipient_id, message, sent_by, sent_at \
             FROM opinion_reminders WHERE recipient_id = $1 ORDER BY sent_at, id",
        )
        .bind(recipient_id)
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }

    /// The counts of request `request_id` now (agree as for, disagree as
    /// against, other as abstain).
    pub async fn opinion_tally(&self, request_id: &str) -> Result<Tally> {
        let rows: Vec<(String, i64)> = with_pool!(self, p => sqlx::query_as(
            "SELECT answer, COUNT(*) FROM opinion_answers WHERE request_id = $1 GROUP BY answer",
        )
        .bind(request_id)
        .fetch_all(p)
        .await)?;
        tally_from(rows)
    }

    /// Records the answer of recipient `recipient_id`. Refused: an unknown
    /// recipient ([`Error::NotFound`]), a closed request or one past its
    /// deadline ([`Error::PollClosed`]), a second answer when changes are
    /// not allowed ([`Error::AlreadyVoted`], also when two arrive at once),
    /// `other` without a comment, a too long comment. Audited
    /// `opinion.answer` by `opinion:<recipient id>`, with the answer and
    /// the comment.
    pub async fn answer_opinion(
        &self,
        recipient_id: &str,
        answer: OpinionAnswer,
        comment: &str,
    ) -> Result<OpinionRecipient> {
        within(comment, "comment", MAX_OPINION_COMMENT)?;
        let comment = no_nul(
            optional_text(comment, "comment", MAX_OPINION_COMMENT)?,
            "comment",
        )?;
        if answer == OpinionAnswer::Other && comment.is_empty() {
            return Err(Error::InvalidInput(
                "another opinion needs a comment".into(),
            ));
        }
        let now = now_unix();
        let actor = format!("opinion:{recipient_id}");
        in_tx!(self, tx => {
            let request_id: Option<String> =
                sqlx::query_scalar("SELECT request_id FROM opinion_recipients WHERE id = $1")
                    .bind(recipient_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(request_id) = request_id else {
                return Err(Error::NotFound {
                    what: "opinion recipient",
                    id: recipient_id.to_owned(),
                });
            };
            let req = require_taking!(tx, request_id.as_str(), now);
            let had: Option<(String, String)> = sqlx::query_as(
                "SELECT answer, comment FROM opinion_answers WHERE recipient_id = $1",
            )
            .bind(recipient_id)
            .fetch_optional(&mut *tx)
            .await?;
            let changed = match had {
                Some(_) if !req.allow_changes => {
                    return Err(Error::AlreadyVoted(request_id.clone()));
                }
                Some(_) => {
                    sqlx::query(
                        "UPDATE opinion_answers SET answer = $1, comment = $2, answered_at = $3, \
                         changes = changes + 1 WHERE recipient_id = $4",
                    )
                    .bind(answer.as_str())
                    .bind(&comment)
                    .bind(now)
                    .bind(recipient_id)
                    .execute(&mut *tx)
                    .await?;
                    true
                }
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO opinion_answers (recipient_id, request_id, answer, comment, \
                         answered_at, changes) VALUES ($1, $2, $3, $4, $5, 0)",
                    )
                    .bind(recipient_id)
                    .bind(&request_id)
                    .bind(answer.as_str())
                    .bind(&comment)
                    .bind(now)
                    .execute(&mut *tx)
                    .await;
                    match inserted {
                        Err(e) if is_unique(&e) => {
                            return Err(Error::AlreadyVoted(request_id.clone()))
                        }
                        r => {
                            r?;
                        }
                    }
                    false
                }
            };
            audit!(tx, actor.as_str(), "opinion.answer", "opinion_request", &request_id, json!({
                "recipient_id": recipient_id, "answer": answer, "comment": comment,
                "changed": changed,
            }));
        });
        self.opinion_recipient(recipient_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "opinion recipient",
                id: recipient_id.to_owned(),
            })
    }

    /// Sends an in-app reminder with `message` (may be empty) to the
    /// recipients `recipient_ids` of request `request_id`, or, when `None`,
    /// to every recipient who has not answered. Refused when the request is
    /// closed or past its deadline ([`Error::PollClosed`]) or a recipient is
    /// not one of the request's ([`Error::InvalidInput`]). Audited
    /// `opinion.remind` (one entry, with the recipients).
    pub async fn remind_opinion(
        &self,
        actor: &str,
        request_id: &str,
        recipient_ids: Option<&[String]>,
        message: &str,
    ) -> Result<Vec<OpinionReminder>> {
        within(message, "message", MAX_OPINION_COMMENT)?;
        let message = no_nul(
            optional_text(message, "message", MAX_OPINION_COMMENT)?,
            "message",
        )?;
        let now = now_unix();
        let out = in_tx!(self, tx => {
            require_taking!(tx, request_id, now);
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT c.id, a.answer FROM opinion_recipients c \
                 LEFT JOIN opinion_answers a ON a.recipient_id = c.id \
                 WHERE c.request_id = $1 ORDER BY c.position, c.id",
            )
            .bind(request_id)
            .fetch_all(&mut *tx)
            .await?;
            let targets: Vec<String> = match recipient_ids {
                None => rows
                    .iter()
                    .filter(|(_, a)| a.is_none())
                    .map(|(id, _)| id.clone())
                    .collect(),
                Some(ids) => {
                    let mut t: Vec<String> = Vec::new();
                    for id in ids {
                        if !rows.iter().any(|(r, _)| r == id) {
                            return Err(Error::InvalidInput(format!(
                                "{id} is not a recipient of this request"
                            )));
                        }
                        if !t.contains(id) {
                            t.push(id.clone());
                        }
                    }
                    t
                }
            };
            let mut sent = Vec::with_capacity(targets.len());
            for recipient_id in targets {
                let r = OpinionReminder {
                    // Time-ordered: reminders of one second keep their order.
                    id: uuid::Uuid::now_v7().to_string(),
                    request_id: request_id.to_owned(),
                    recipient_id,
                    message: message.clone(),
                    sent_by: actor.to_owned(),
                    sent_at: now,
                };
                sqlx::query(
                    "INSERT INTO opinion_reminders (id, request_id, recipient_id, message, \
                     sent_by, sent_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&r.id)
                .bind(&r.request_id)
                .bind(&r.recipient_id)
                .bind(&r.message)
                .bind(&r.sent_by)
                .bind(r.sent_at)
                .execute(&mut *tx)
                .await?;
                sent.push(r);
            }
            if !sent.is_empty() {
                let to: Vec<&str> = sent.iter().map(|r| r.recipient_id.as_str()).collect();
                audit!(tx, actor, "opinion.remind", "opinion_request", request_id, json!({
                    "recipients": to, "message": message,
                }));
            }
            sent
        });
        Ok(out)
    }

    /// Closes request `id`: computes its [`Outcome`] (see the module) and
    /// stores it. A closed request is returned unchanged. Audited
    /// `opinion.close`.
    pub async fn close_opinion_request(&self, actor: &str, id: &str) -> Result<OpinionRequest> {
        let at = now_unix();
        let req = in_tx!(self, tx => {
            // First: locks the row, so answers in flight finish first.
            let closing = sqlx::query(
                "UPDATE opinion_requests SET status = 'open' WHERE id = $1 AND status = 'open'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let mut req = request_in!(tx, id);
            if closing == 0 {
                return Ok(req);
            }
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT answer, COUNT(*) FROM opinion_answers WHERE request_id = $1 \
                 GROUP BY answer",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let tally = tally_from(rows)?;
            let chair: Option<String> = sqlx::query_scalar(
                "SELECT a.answer FROM opinion_answers a JOIN opinion_recipients c \
                 ON c.id = a.recipient_id WHERE a.request_id = $1 AND c.is_chair",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let chair_choice = chair
                .map(|a| parse_stored::<OpinionAnswer>(&a, "opinion answer"))
                .transpose()?
                .map(OpinionAnswer::choice);
            // No quorum for written opinions: 0/1 is always met.
            let outcome = decide(
                req.rule,
                tally,
                req.recipients,
                req.committee_members,
                req.answered,
                (0, 1),
                chair_choice,
            );
            let text = serde_json::to_string(&outcome)
                .map_err(|e| Error::Corrupt(format!("opinion outcome: {e}")))?;
            sqlx::query(
                "UPDATE opinion_requests SET status = 'closed', closed_by = $1, closed_at = $2, \
                 outcome = $3 WHERE id = $4",
            )
            .bind(actor)
            .bind(at)
            .bind(&text)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit!(tx, actor, "opinion.close", "opinion_request", id, json!({
                "outcome": outcome, "deadline": req.deadline,
            }));
            req.status = PollStatus::Closed;
            req.closed_by = Some(actor.to_owned());
            req.closed_at = Some(at);
            req.outcome = Some(outcome);
            req
        });
        Ok(req)
    }

    /// Closes every open request whose deadline is at or before `now`, as
    /// [`DEADLINE_ACTOR`]; returns those it closed.
    pub async fn close_due_opinion_requests(&self, now: i64) -> Result<Vec<OpinionRequest>> {
        let due: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM opinion_requests WHERE status = 'open' AND deadline <= $1 \
             ORDER BY deadline, id",
        )
        .bind(now)
        .fetch_all(p)
        .await)?;
        let mut closed = Vec::with_capacity(due.len());
        for id in due {
            closed.push(self.close_opinion_request(DEADLINE_ACTOR, &id).await?);
        }
        Ok(closed)
    }
}

/// Counts per answer as a [`Tally`].
fn tally_from(rows: Vec<(String, i64)>) -> Result<Tally> {
    let mut t = Tally::default();
    for (answer, n) in rows {
        let n = count(n);
        match parse_stored::<OpinionAnswer>(&answer, "opinion answer")? {
            OpinionAnswer::Agree => t.for_ = n,
            OpinionAnswer::Disagree => t.against = n,
            OpinionAnswer::Other => t.abstain = n,
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};

    const SECRETARY: &str = "user:secretary";

    fn new_request(names: &[&str], rule: VoteRule, allow_changes: bool) -> NewOpinionRequest {
        NewOpinionRequest {
            title: "Phiếu lấy ý kiến".into(),
            question: "Thông qua đề án?".into(),
            deadline: now_unix() + 3600,
            rule,
            allow_changes,
            committee_members: None,
            recipients: names
                .iter()
                .enumerate()
                .map(|(i, n)| NewRecipient {
                    name: (*n).into(),
                    chair: i == 0,
                    email: String::new(),
                })
                .collect(),
        }
    }

    /// Moves a request's deadline (as if time had passed).
    async fn set_deadline(s: &Store, id: &str, deadline: i64) {
        with_pool!(s, p => sqlx::query("UPDATE opinion_requests SET deadline = $1 WHERE id = $2")
            .bind(deadline)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()))
        .expect("move the deadline");
    }

    async fn scenario(s: &Store) {
        // Refusals of the input.
        let rule = VoteRule::AllMembersMajority;
        let mut bad = new_request(&["A", "B"], rule, false);
        bad.deadline = now_unix() - 1;
        assert!(matches!(
            s.create_opinion_request(SECRETARY, &bad).await,
            Err(Error::InvalidInput(_))
        ));
        for bad in [
            new_request(&[], rule, false),
            new_request(&["A", " A "], rule, false),
            new_request(&["A", ""], rule, false),
            NewOpinionRequest {
                committee_members: Some(1),
                ..new_request(&["A", "B"], rule, false)
            },
            NewOpinionRequest {
                title: " ".into(),
                ..new_request(&["A"], rule, false)
            },
            NewOpinionRequest {
                // Counted as sent, before trimming.
                title: format!(" {} ", "ế".repeat(MAX_OPINION_TITLE - 1)),
                ..new_request(&["A"], rule, false)
            },
            NewOpinionRequest {
                deadline: now_unix() + MAX_OPINION_HORIZON + 10,
                ..new_request(&["A"], rule, false)
            },
        ] {
            assert!(
                matches!(
                    s.create_opinion_request(SECRETARY, &bad).await,
                    Err(Error::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
        let mut two_chairs = new_request(&["A", "B"], rule, false);
        two_chairs.recipients[1].chair = true;
        assert!(matches!(
            s.create_opinion_request(SECRETARY, &two_chairs).await,
            Err(Error::InvalidInput(_))
        ));

        // Four members, no changes allowed.
        let (req, rcp) = s
            .create_opinion_request(
                SECRETARY,
                &new_request(
                    &["Chủ tịch", "Phó chủ tịch", "Ủy viên 1", "Ủy viên 2"],
                    rule,
                    false,
                ),
            )
            .await
            .expect("create");
        assert_eq!((req.recipients, req.committee_members), (4, 4));
        assert_eq!(req.status, PollStatus::Open);
        assert_eq!(rcp.len(), 4);
        assert!(rcp[0].is_chair && !rcp[1].is_chair);
        let got = s
            .get_opinion_request(&req.id)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(got, req);
        let listed = s.opinion_recipients(&req.id).await.expect("recipients");
        assert_eq!(listed, rcp);

        // Answers: another opinion needs a comment; one answer each.
        assert!(matches!(
            s.answer_opinion(&rcp[1].id, OpinionAnswer::Other, " ")
                .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.answer_opinion("missing", OpinionAnswer::Agree, "").await,
            Err(Error::NotFound { .. })
        ));
        let a = s
            .answer_opinion(&rcp[0].id, OpinionAnswer::Agree, " Đồng ý ")
            .await
            .expect("answer");
        let ans = a.answer.expect("stored");
        assert_eq!(
            (ans.answer, ans.comment.as_str(), ans.changes),
            (OpinionAnswer::Agree, "Đồng ý", 0)
        );
        s.answer_opinion(&rcp[1].id, OpinionAnswer::Agree, "")
            .await
            .expect("answer");
        s.answer_opinion(&rcp[2].id, OpinionAnswer::Other, "Cần bổ sung số liệu")
            .await
            .expect("answer");
        assert!(matches!(
            s.answer_opinion(&rcp[1].id, OpinionAnswer::Disagree, "").await,
            Err(Error::AlreadyVoted(id)) if id == req.id
        ));
        // The database refuses a second row by itself (the primary key).
        let raw = with_pool!(s, p => sqlx::query(
            "INSERT INTO opinion_answers (recipient_id, request_id, answer, comment, \
             answered_at, changes) VALUES ($1, $2, 'disagree', '', 0, 0)",
        )
        .bind(&rcp[1].id)
        .bind(&req.id)
        .execute(p)
        .await
        .map(|_| ()));
        match raw {
            Err(e) => assert!(is_unique(&e), "{e}"),
            Ok(()) => panic!("a second answer row was taken"),
        }
        assert_eq!(
            s.opinion_tally(&req.id).await.expect("tally"),
            Tally {
                for_: 2,
                against: 0,
                abstain: 1
            }
        );

        // Reminders: by default those who have not answered.
        let sent = s
            .remind_opinion(SECRETARY, &req.id, None, "Xin trả lời trước hạn")
            .await
            .expect("remind");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].recipient_id, rcp[3].id);
        assert!(matches!(
            s.remind_opinion(SECRETARY, &req.id, Some(&["nobody".to_owned()]), "")
                .await,
            Err(Error::InvalidInput(_))
        ));
        let again = s
            .remind_opinion(
                SECRETARY,
                &req.id,
                Some(&[rcp[3].id.clone(), rcp[3].id.clone()]),
                "",
            )
            .await
            .expect("remind one");
        assert_eq!(again.len(), 1);
        let r3 = s
            .opinion_recipient(&rcp[3].id)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(r3.reminders, 2);
        assert!(r3.answer.is_none());
        let reminders = s.opinion_reminders(&rcp[3].id).await.expect("reminders");
        assert_eq!(reminders.len(), 2);
        assert_eq!(reminders[0].message, "Xin trả lời trước hạn");

        // After the deadline: no answer, no reminder; the sweep closes it.
        set_deadline(s, &req.id, now_unix() - 1).await;
        assert!(matches!(
            s.answer_opinion(&rcp[3].id, OpinionAnswer::Disagree, "")
                .await,
            Err(Error::PollClosed(_))
        ));
        assert!(matches!(
            s.remind_opinion(SECRETARY, &req.id, None, "").await,
            Err(Error::PollClosed(_))
        ));
        let closed = s
            .close_due_opinion_requests(now_unix())
            .await
            .expect("sweep");
        assert_eq!(closed.len(), 1);
        let c = &closed[0];
        assert_eq!(c.status, PollStatus::Closed);
        assert_eq!(c.closed_by.as_deref(), Some(DEADLINE_ACTOR));
        let o = c.outcome.expect("outcome");
        // 2 of 4 agree: a tie, the chair agreed: passes by the chair's side.
        assert_eq!((o.base, o.needed, o.voted, o.eligible), (4, 3, 3, 4));
        assert!(o.quorum_met && o.passed && o.tie_broken_by_chair);
        assert_eq!(
            o.tally,
            Tally {
                for_: 2,
                against: 0,
                abstain: 1
            }
        );
        // Nothing more is due; closing again changes nothing.
        assert!(s
            .close_due_opinion_requests(now_unix())
            .await
            .expect("sweep")
            .is_empty());
        let again = s
            .close_opinion_request(SECRETARY, &req.id)
            .await
            .expect("close");
        assert_eq!(again.outcome, c.outcome);
        assert_eq!(again.closed_by.as_deref(), Some(DEADLINE_ACTOR));
        // Moving the deadline back does not reopen it.
        set_deadline(s, &req.id, now_unix() + 3600).await;
        assert!(matches!(
            s.answer_opinion(&rcp[3].id, OpinionAnswer::Agree, "").await,
            Err(Error::PollClosed(_))
        ));

        // Changes allowed; a larger committee; closed by the secretariat.
        let mut new = new_request(&["A", "B", "C"], VoteRule::TwoThirdsAll, true);
        new.committee_members = Some(6);
        let (req2, rcp2) = s
            .create_opinion_request(SECRETARY, &new)
            .await
            .expect("create");
        s.answer_opinion(&rcp2[1].id, OpinionAnswer::Disagree, "")
            .await
            .expect("answer");
        let changed = s
            .answer_opinion(&rcp2[1].id, OpinionAnswer::Agree, "Đổi ý")
            .await
            .expect("change");
        let ans = changed.answer.expect("stored");
        assert_eq!((ans.answer, ans.changes), (OpinionAnswer::Agree, 1));
        s.answer_opinion(&rcp2[2].id, OpinionAnswer::Agree, "")
            .await
            .expect("answer");
        let c2 = s
            .close_opinion_request(SECRETARY, &req2.id)
            .await
            .expect("close");
        let o = c2.outcome.expect("outcome");
        assert_eq!(
            (o.base, o.needed, o.tally.for_, o.tally.against),
            (6, 4, 2, 0)
        );
        assert!(!o.passed && !o.tie_broken_by_chair);
        assert_eq!(c2.closed_by.as_deref(), Some(SECRETARY));
        assert!(matches!(
            s.answer_opinion(&rcp2[0].id, OpinionAnswer::Agree, "")
                .await,
            Err(Error::PollClosed(_))
        ));
        let stored = s
            .get_opinion_request(&req2.id)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(stored.outcome, c2.outcome);
        assert_eq!(stored.answered, 2);

        // Present majority: the base is who answered.
        let (req3, rcp3) = s
            .create_opinion_request(
                SECRETARY,
                &new_request(&["X", "Y", "Z"], VoteRule::PresentMajority, false),
            )
            .await
            .expect("create");
        s.answer_opinion(&rcp3[1].id, OpinionAnswer::Agree, "")
            .await
            .expect("answer");
        let o = s
            .close_opinion_request(SECRETARY, &req3.id)
            .await
            .expect("close")
            .outcome
            .expect("outcome");
        assert_eq!((o.base, o.needed, o.present_members), (1, 1, 1));
        assert!(o.passed);

        // The list, newest first; the audit trail.
        let ids: Vec<String> = s
            .list_opinion_requests()
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.contains(&req.id) && ids.contains(&req2.id) && ids.contains(&req3.id));
        let log = s.audit_of("opinion_request", &req.id).await.expect("audit");
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "opinion.create",
                "opinion.answer",
                "opinion.answer",
                "opinion.answer",
                "opinion.remind",
                "opinion.remind",
                "opinion.close"
            ]
        );
        assert_eq!(log[3].detail["comment"], "Cần bổ sung số liệu");
        assert_eq!(log[1].actor, format!("opinion:{}", rcp[0].id));
        assert_eq!(log[6].actor, DEADLINE_ACTOR);
        let log2 = s
            .audit_of("opinion_request", &req2.id)
            .await
            .expect("audit");
        assert!(log2
            .iter()
            .any(|e| e.action == "opinion.answer" && e.detail["changed"] == true));
        assert!(s.verify_audit_chain().await.expect("verify").is_none());
    }

    #[tokio::test]
    async fn sqlite_opinions() {
        let (s, _db) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn pg_opinions() {
        if let Some((s, schema)) = pg_store().await {
            scenario(&s).await;
            schema.drop_now(s).await;
        }
    }

    /// 20 first answers of one recipient at once (changes not allowed):
    /// exactly one taken; answers racing the close are all in the outcome.
    async fn races(s: &Store) {
        let (req, rcp) = s
            .create_opinion_request(
                SECRETARY,
                &new_request(
                    &["A", "B", "C", "D", "E"],
                    VoteRule::AllMembersMajority,
                    false,
                ),
            )
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (s, r) = (s.clone(), rcp[0].id.clone());
            let a = OpinionAnswer::ALL[i % 3];
            tasks.push(tokio::spawn(
                async move { s.answer_opinion(&r, a, "x").await },
            ));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => ok += 1,
                Err(Error::AlreadyVoted(_)) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(ok, 1);
        let mut tasks = Vec::new();
        for r in &rcp[1..] {
            let (s, r) = (s.clone(), r.id.clone());
            tasks.push(tokio::spawn(async move {
                s.answer_opinion(&r, OpinionAnswer::Agree, "").await
            }));
        }
        let closing = {
            let (s, id) = (s.clone(), req.id.clone());
            tokio::spawn(async move { s.close_opinion_request(SECRETARY, &id).await })
        };
        let mut taken = 1;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => taken += 1,
                Err(Error::PollClosed(_)) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let o = closing
            .await
            .expect("task")
            .expect("close")
            .outcome
            .expect("outcome");
        assert_eq!(o.voted, taken);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_opinion_races() {
        let (s, _db) = sqlite_store().await;
        races(&s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn pg_opinion_races() {
        if let Some((s, schema)) = pg_store().await {
            races(&s).await;
            schema.drop_now(s).await;
        }
    }
}
