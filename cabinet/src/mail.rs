//! The e-mail outbox: every message is written here first ([`NewMail`]),
//! and a sender (the server's, over SMTP) delivers it later, with retries;
//! a restart loses nothing, since what is not `sent` is still here.
//!
//! - Each message has a `dedupe_key` saying what it is ("invitation:<id>",
//!   "meeting_reminder:<id>", ...), unique in the table: queuing the same
//!   message again does nothing, so it is queued once and, once the SMTP
//!   server accepted it (`sent`), never sent again.
//! - A sender claims a due message for a while ([`Store::claim_due_mail`]:
//!   `claimed_until`), so two senders (two nodes) never send it at once;
//!   a sender that died holding it leaves it to the next one once the
//!   claim has run out. A crash between the SMTP server's acceptance and
//!   the `sent` mark sends it once more, with the same Message-ID.
//! - A refused attempt is kept with the SMTP error; the message is tried
//!   again later ([`Store::mail_attempt_failed`] with a time) or given up
//!   (`failed`).
//!
//! Also here: the e-mail addresses units, invitations and opinion
//! recipients may have ([`checked_email`]), and what the reminder sweeps
//! need.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{new_id, now_unix, parse_stored, Error, Pool, Result, Store};

/// Longest e-mail address accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// An e-mail address as given, trimmed; empty is allowed (no e-mail).
/// Refused ([`Error::InvalidInput`]): longer than [`MAX_EMAIL`], spaces,
/// control characters, quotes or angle brackets, not exactly one `@`, an
/// empty local part or one starting or ending with `.`, or a domain that
/// is not dot-separated ASCII labels (letters, digits, `-` inside; an
/// internationalized domain in its `xn--` form).
pub fn checked_email(value: &str) -> Result<String> {
    if value.chars().count() > MAX_EMAIL {
        return Err(Error::InvalidInput(format!(
            "the e-mail address is longer than {MAX_EMAIL} characters"
        )));
    }
    let v = value.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    let bad = || {
        Error::InvalidInput(format!(
            "{v:?} is not an e-mail address (expected name@domain, e.g. vanphong@tinh.gov.vn)"
        ))
    };
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"<>(),;:[]\\".contains(c))
    {
        return Err(bad());
    }
    let Some((local, domain)) = v.split_once('@') else {
        return Err(bad());
    };
    if local.is_empty() || domain.contains('@') || local.starts_with('.') || local.ends_with('.') {
        return Err(bad());
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !labels_ok {
        return Err(bad());
    }
    Ok(v.to_owned())
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// The invitation to a meeting, with the unit's own link.
    Invitation,
    /// The reminder before the meeting.
    MeetingReminder,
    /// The meeting's documents changed after the invitations were sent.
    DocumentsChanged,
    /// A written opinion request, with the member's own link.
    OpinionRequest,
    /// A reminder of a written opinion request before its deadline.
    OpinionReminder,
}

impl MailKind {
    pub const ALL: [MailKind; 5] = [
        MailKind::Invitation,
        MailKind::MeetingReminder,
        MailKind::DocumentsChanged,
        MailKind::OpinionRequest,
        MailKind::OpinionReminder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Invitation => "invitation",
            MailKind::MeetingReminder => "meeting_reminder",
            MailKind::DocumentsChanged => "documents_changed",
            MailKind::OpinionRequest => "opinion_request",
            MailKind::OpinionReminder => "opinion_reminder",
        }
    }
}

impl FromStr for MailKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MailKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown mail kind {s:?}")))
    }
}

impl fmt::Display for MailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    /// To send (again) at `next_attempt_at`.
    Pending,
    /// The SMTP server accepted it; never sent again.
    Sent,
    /// Refused for good, or out of attempts (`last_error` says why).
    Failed,
}

impl MailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Pending => "pending",
            MailStatus::Sent => "sent",
            MailStatus::Failed => "failed",
        }
    }
}

impl FromStr for MailStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [MailStatus::Pending, MailStatus::Sent, MailStatus::Failed]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown mail status {s:?}")))
    }
}

/// A message to queue ([`Store::enqueue_mail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// What it is, unique: the same key again is not queued again.
    pub dedupe_key: String,
    pub kind: MailKind,
    pub meeting_id: Option<String>,
    pub opinion_request_id: Option<String>,
    /// The invitation or opinion recipient it goes to.
    pub target_id: Option<String>,
    pub to_name: String,
    pub to_addr: String,
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// The recipient's own link in the body, if any.
    pub link: String,
    /// Not sent before this (Unix seconds).
    pub not_before: i64,
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: String,
    pub dedupe_key: String,
    pub kind: MailKind,
    pub meeting_id: Option<String>,
    pub opinion_request_id: Option<String>,
    pub target_id: Option<String>,
    pub to_name: String,
    pub to_addr: String,
    pub subject: String,
    /// Left out of the API's answers (it holds the recipient's link).
    #[serde(skip_serializing)]
    pub body: String,
    #[serde(skip_serializing)]
    pub link: String,
    pub status: MailStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: i64,
    /// The SMTP server's (or the connection's) error of the last failed
    /// attempt.
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// The Message-ID header, the same on every attempt.
    pub message_id: String,
}

const MAIL_COLUMNS: &str = "id, dedupe_key, kind, meeting_id, opinion_request_id, target_id, \
    to_name, to_addr, subject, body, link, status, attempts, next_attempt_at, last_error, \
    created_at, sent_at, message_id";

#[derive(sqlx::FromRow)]
struct MailRow {
    id: String,
    dedupe_key: String,
    kind: String,
    meeting_id: Option<String>,
    opinion_request_id: Option<String>,
    target_id: Option<String>,
    to_name: String,
    to_addr: String,
    subject: String,
    body: String,
    link: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    sent_at: Option<i64>,
    message_id: String,
}

impl TryFrom<MailRow> for OutboxMail {
    type Error = Error;
    fn try_from(r: MailRow) -> Result<OutboxMail> {
        Ok(OutboxMail {
            kind: parse_stored(&r.kind, "mail kind")?,
            status: parse_stored(&r.status, "mail status")?,
            id: r.id,
            dedupe_key: r.dedupe_key,
            meeting_id: r.meeting_id,
            opinion_request_id: r.opinion_request_id,
            target_id: r.target_id,
            to_name: r.to_name,
            to_addr: r.to_addr,
            subject: r.subject,
            body: r.body,
            link: r.link,
            attempts: u32::try_from(r.attempts.max(0)).unwrap_or(u32::MAX),
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
            message_id: r.message_id,
        })
    }
}

/// An invitation that e-mail can reach: its own address (a member's),
/// else its unit's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailableInvitation {
    pub invitation: crate::Invitation,
    /// The invitation's own address, else its bridge point's; empty: none.
    pub email: String,
}

/// Longest SMTP error kept, in characters.
const MAX_ERROR: usize = 2000;

impl Store {
    /// Queues `mails` in one transaction; a message whose `dedupe_key` is
    /// already in the outbox (queued, sent or failed) is skipped. Returns
    /// how many were queued. `message_domain` is the right side of the
    /// Message-IDs made.
    pub async fn enqueue_mail(&self, mails: &[NewMail], message_domain: &str) -> Result<usize> {
        if mails.is_empty() {
            return Ok(0);
        }
        let now = now_unix();
        let n = in_tx!(self, tx => {
            let mut n = 0usize;
            for m in mails {
                let id = new_id();
                let done = sqlx::query(
                    "INSERT INTO mail_outbox (id, dedupe_key, kind, meeting_id, \
                     opinion_request_id, target_id, to_name, to_addr, subject, body, link, \
                     status, attempts, next_attempt_at, claimed_until, last_error, created_at, \
                     sent_at, message_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                     'pending', 0, $12, NULL, NULL, $13, NULL, $14) \
                     ON CONFLICT (dedupe_key) DO NOTHING",
                )
                .bind(&id)
                .bind(&m.dedupe_key)
                .bind(m.kind.as_str())
                .bind(&m.meeting_id)
                .bind(&m.opinion_request_id)
                .bind(&m.target_id)
                .bind(&m.to_name)
                .bind(&m.to_addr)
                .bind(&m.subject)
                .bind(&m.body)
                .bind(&m.link)
                .bind(m.not_before.max(now))
                .bind(now)
                .bind(format!("<{id}@{message_domain}>"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                n += usize::try_from(done).unwrap_or(0);
            }
            n
        });
        Ok(n)
    }

    /// Claims up to `limit` messages due at `now` (pending, their time
    /// come, nobody holding them) for `lease` seconds, oldest first.
    pub async fn claim_due_mail(
        &self,
        now: i64,
        lease: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMail>> {
        let ids: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY next_attempt_at, created_at, id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let taken = with_pool!(self, p => sqlx::query(
                "UPDATE mail_outbox SET claimed_until = $1 WHERE id = $2 AND status = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until <= $3)",
            )
            .bind(now.saturating_add(lease))
            .bind(&id)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
            if taken == 1 {
                if let Some(m) = self.get_mail(&id).await? {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// The message `id`, if any.
    pub async fn get_mail(&self, id: &str) -> Result<Option<OutboxMail>> {
        let sql = format!("SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE id = $1");
        let row: Option<MailRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        row.map(OutboxMail::try_from).transpose()
    }

    /// The message queued under `dedupe_key`, if any.
    pub async fn mail_by_key(&self, dedupe_key: &str) -> Result<Option<OutboxMail>> {
        let sql = format!("SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE dedupe_key = $1");
        let row: Option<MailRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(dedupe_key).fetch_optional(p).await)?;
        row.map(OutboxMail::try_from).transpose()
    }

    /// Marks message `id` sent at `at` (the SMTP server accepted it).
    pub async fn mail_sent(&self, id: &str, at: i64) -> Result<()> {
        with_pool!(self, p => sqlx::query(
            "UPDATE mail_outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1, \
             claimed_until = NULL, last_error = NULL WHERE id = $2 AND status = 'pending'",
        )
        .bind(at)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Replaces the body of pending message `id` (a notice composed when
    /// it is sent), so the outbox keeps what was sent.
    pub async fn mail_set_body(&self, id: &str, body: &str) -> Result<()> {
        let body = body.replace('\0', "");
        with_pool!(self, p => sqlx::query(
            "UPDATE mail_outbox SET body = $1 WHERE id = $2 AND status = 'pending'",
        )
        .bind(&body)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Records a failed attempt of message `id` with `error`: tried again
    /// at `retry_at`, or, when `None`, given up (`failed`).
    pub async fn mail_attempt_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let error: String = error.chars().take(MAX_ERROR).collect();
        let error = error.replace('\0', "");
        with_pool!(self, p => sqlx::query(
            "UPDATE mail_outbox SET status = $1, attempts = attempts + 1, \
             next_attempt_at = COALESCE($2, next_attempt_at), claimed_until = NULL, \
             last_error = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(if retry_at.is_some() { "pending" } else { "failed" })
        .bind(retry_at)
        .bind(&error)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The messages about meeting `meeting_id`, oldest first.
    pub async fn mail_of_meeting(&self, meeting_id: &str) -> Result<Vec<OutboxMail>> {
        let sql = format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE meeting_id = $1 \
             ORDER BY created_at, id"
        );
        let rows: Vec<MailRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(meeting_id).fetch_all(p).await)?;
        rows.into_iter().map(OutboxMail::try_from).collect()
    }

    /// The messages about written opinion request `request_id`, oldest
    /// first.
    pub async fn mail_of_opinion(&self, request_id: &str) -> Result<Vec<OutboxMail>> {
        let sql = format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE opinion_request_id = $1 \
             ORDER BY created_at, id"
        );
        let rows: Vec<MailRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(request_id).fetch_all(p).await)?;
        rows.into_iter().map(OutboxMail::try_from).collect()
    }

    /// Whether a message of `kind` to `target_id` is still pending.
    pub async fn mail_pending_for(&self, kind: MailKind, target_id: &str) -> Result<bool> {
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM mail_outbox WHERE kind = $1 AND target_id = $2 \
             AND status = 'pending'",
        )
        .bind(kind.as_str())
        .bind(target_id)
        .fetch_one(p)
        .await)?;
        Ok(n > 0)
    }

    /// The active invitations (not revoked, not expired) of meeting
    /// `meeting_id`, each with its e-mail address: the invitation's own,
    /// else its unit's (empty: none), oldest first.
    pub async fn mailable_invitations(&self, meeting_id: &str) -> Result<Vec<MailableInvitation>> {
        let now = now_unix();
        let emails: Vec<(String, String)> = with_pool!(self, p => sqlx::query_as(
            "SELECT i.id, COALESCE(b.email, '') FROM invitations i \
             LEFT JOIN bridge_points b ON b.id = i.bridge_point_id \
             WHERE i.meeting_id = $1",
        )
        .bind(meeting_id)
        .fetch_all(p)
        .await)?;
        let mut out = Vec::new();
        for inv in self.list_invitations(meeting_id).await? {
            if inv.is_revoked() || inv.expires_at <= now {
                continue;
            }
            // Its own address (a member's), else its unit's.
            let email = if inv.email.is_empty() {
                emails
                    .iter()
                    .find(|(id, _)| *id == inv.id)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_default()
            } else {
                inv.email.clone()
            };
            out.push(MailableInvitation {
                invitation: inv,
                email,
            });
        }
        Ok(out)
    }

    /// Scheduled meetings starting after `now` and at most `before`
    /// seconds from it: those whose reminder is due.
    pub async fn meetings_starting_within(
        &self,
        now: i64,
        before: i64,
    ) -> Result<Vec<crate::Meeting>> {
        let ids: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM meetings WHERE status = 'scheduled' AND starts_at > $1 \
             AND starts_at <= $2 ORDER BY starts_at, id",
        )
        .bind(now)
        .bind(now.saturating_add(before))
        .fetch_all(p)
        .await)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.get_meeting(&id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Open written opinion requests whose deadline is after `now` and at
    /// most `before` seconds from it.
    pub async fn opinions_due_within(
        &self,
        now: i64,
        before: i64,
    ) -> Result<Vec<crate::OpinionRequest>> {
        let ids: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM opinion_requests WHERE status = 'open' AND deadline > $1 \
             AND deadline <= $2 ORDER BY deadline, id",
        )
        .bind(now)
        .bind(now.saturating_add(before))
        .fetch_all(p)
        .await)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.get_opinion_request(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{pg_store, sqlite_store};

    #[test]
    fn addresses() {
        assert_eq!(checked_email("  ").expect("empty"), "");
        assert_eq!(
            checked_email(" vanphong@hungyen.gov.vn ").expect("ok"),
            "vanphong@hungyen.gov.vn"
        );
        assert!(checked_email("xã@ubnd.vn").is_ok());
        for bad in [
            "vanphong",
            "@tinh.vn",
            "a@",
            "a@@b.vn",
            "a b@c.vn",
            "a@b..vn",
            "a@-b.vn",
            "<a@b.vn>",
            "a@b.vn\r\nBcc: x@y.vn",
            "a@xã.vn",
            ".a@b.vn",
        ] {
            assert!(checked_email(bad).is_err(), "{bad:?}");
        }
        assert!(checked_email(&format!("{}@b.vn", "a".repeat(260))).is_err());
    }

    fn mail(key: &str) -> NewMail {
        NewMail {
            dedupe_key: key.into(),
            kind: MailKind::Invitation,
            meeting_id: Some("m1".into()),
            opinion_request_id: None,
            target_id: Some("inv1".into()),
            to_name: "UBND xã Ea Tiêu".into(),
            to_addr: "eatieu@daklak.gov.vn".into(),
            subject: "Giấy mời".into(),
            body: "Kính gửi".into(),
            link: "http://x/join#t".into(),
            not_before: 0,
        }
    }

    async fn scenario(s: &Store) {
        let now = now_unix();
        assert_eq!(
            s.enqueue_mail(&[mail("invitation:1"), mail("invitation:2")], "test")
                .await
                .expect("queue"),
            2
        );
        // The same message again is not queued again.
        assert_eq!(
            s.enqueue_mail(&[mail("invitation:1")], "test")
                .await
                .expect("queue"),
            0
        );
        let claimed = s.claim_due_mail(now, 60, 10).await.expect("claim");
        assert_eq!(claimed.len(), 2);
        assert!(claimed[0].message_id.ends_with("@test>"));
        // Held: nobody else gets them until the claim runs out.
        assert!(s
            .claim_due_mail(now, 60, 10)
            .await
            .expect("claim")
            .is_empty());
        s.mail_sent(&claimed[0].id, now).await.expect("sent");
        s.mail_attempt_failed(&claimed[1].id, "421 try later", Some(now + 30))
            .await
            .expect("failed");
        let m = s
            .get_mail(&claimed[1].id)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(
            (m.status, m.attempts, m.last_error.as_deref()),
            (MailStatus::Pending, 1, Some("421 try later"))
        );
        assert!(s
            .claim_due_mail(now, 60, 10)
            .await
            .expect("claim")
            .is_empty());
        // Due again later; a sent one never is.
        let again = s.claim_due_mail(now + 30, 60, 10).await.expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, claimed[1].id);
        s.mail_attempt_failed(&again[0].id, "550 no such user", None)
            .await
            .expect("give up");
        // A late "sent" after giving up changes nothing.
        s.mail_sent(&again[0].id, now).await.expect("sent");
        let list = s.mail_of_meeting("m1").await.expect("list");
        let st: Vec<(MailStatus, u32)> = list.iter().map(|m| (m.status, m.attempts)).collect();
        assert_eq!(st, [(MailStatus::Sent, 1), (MailStatus::Failed, 2)]);
        assert!(s
            .claim_due_mail(now + 10_000, 60, 10)
            .await
            .expect("claim")
            .is_empty());
        assert!(!s
            .mail_pending_for(MailKind::Invitation, "inv1")
            .await
            .expect("pending"));
        // A claim that ran out (a sender died) is taken by the next one.
        s.enqueue_mail(&[mail("invitation:3")], "test")
            .await
            .expect("queue");
        // Queued now, which may be a second after `now`.
        let later = now_unix();
        assert_eq!(
            s.claim_due_mail(later, 5, 10).await.expect("claim").len(),
            1
        );
        assert!(s
            .mail_pending_for(MailKind::Invitation, "inv1")
            .await
            .expect("p"));
        assert_eq!(
            s.claim_due_mail(later + 6, 5, 10)
                .await
                .expect("claim")
                .len(),
            1
        );
    }

    /// A member's invitation carries its own address; a unit's uses the
    /// unit's unless it has its own; a bad address is refused.
    async fn invitation_addresses(s: &Store) {
        let m = s.create_meeting("Giao ban").await.expect("meeting");
        let unit = s
            .add_bridge_point(
                "t",
                crate::NewBridgePoint {
                    name: "UBND xã Ea Tiêu".into(),
                    level: crate::BridgeLevel::Commune,
                    contact: String::new(),
                    code: String::new(),
                    operator_phone: String::new(),
                    email: "eatieu@daklak.gov.vn".into(),
                },
            )
            .await
            .expect("unit");
        let new = |name: &str, role, unit: Option<&str>, email: &str| crate::NewInvitation {
            meeting_id: m.id.clone(),
            name: name.into(),
            role,
            ttl_seconds: 3600,
            participant_id: None,
            bridge_point_id: unit.map(str::to_owned),
            email: email.into(),
        };
        let chair = s
            .add_invitation(
                "t",
                new(
                    "Đồng chí Chủ tịch",
                    crate::Role::Chair,
                    None,
                    " chutich@tinh.gov.vn ",
                ),
            )
            .await
            .expect("chair");
        assert_eq!(chair.email, "chutich@tinh.gov.vn");
        let member = s
            .add_invitation("t", new("Đồng chí Ủy viên", crate::Role::Member, None, ""))
            .await
            .expect("member");
        s.add_invitation("t", new("Xã", crate::Role::Bridge, Some(&unit.id), ""))
            .await
            .expect("unit");
        s.add_invitation(
            "t",
            new(
                "Xã (thư riêng)",
                crate::Role::Bridge,
                Some(&unit.id),
                "vp@eatieu.vn",
            ),
        )
        .await
        .expect("unit, own address");
        assert!(matches!(
            s.add_invitation("t", new("X", crate::Role::Member, None, "không phải thư"))
                .await,
            Err(Error::InvalidInput(_))
        ));
        let got = s
            .get_invitation(&chair.id)
            .await
            .expect("get")
            .expect("some");
        assert_eq!(got.email, "chutich@tinh.gov.vn");
        let mut list: Vec<(String, String)> = s
            .mailable_invitations(&m.id)
            .await
            .expect("mailable")
            .into_iter()
            .map(|mi| (mi.invitation.name, mi.email))
            .collect();
        list.sort();
        let want = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let mut expected = vec![
            want("Đồng chí Chủ tịch", "chutich@tinh.gov.vn"),
            want("Đồng chí Ủy viên", ""),
            want("Xã", "eatieu@daklak.gov.vn"),
            want("Xã (thư riêng)", "vp@eatieu.vn"),
        ];
        expected.sort();
        assert_eq!(list, expected);
        assert_eq!(member.email, "");
    }

    #[tokio::test]
    async fn sqlite_invitation_addresses() {
        let (s, _db) = sqlite_store().await;
        invitation_addresses(&s).await;
    }

    #[tokio::test]
    async fn pg_invitation_addresses() {
        if let Some((s, schema)) = pg_store().await {
            invitation_addresses(&s).await;
            schema.drop_now(s).await;
        }
    }

    #[tokio::test]
    async fn sqlite_outbox() {
        let (s, _db) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn pg_outbox() {
        if let Some((s, schema)) = pg_store().await {
            scenario(&s).await;
            schema.drop_now(s).await;
        }
    }
}
