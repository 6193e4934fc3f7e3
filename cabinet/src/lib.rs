//! giaoban's eCabinet domain and its storage.
//!
//! # Layout
//! - [`Store`]: the handle to the database (SQLite, the embedded default, or
//!   PostgreSQL, chosen by the URL). [`Store::connect`] opens it and applies the
//!   numbered migrations in `cabinet/migrations` (portable SQL, the same files
//!   for both databases; never edit one that has been released, add a new one).
//! - [`model`]: the entities ([`Meeting`], [`BridgePoint`], [`Participant`],
//!   [`AgendaItem`], [`Document`], [`User`], [`AuditEntry`]), their
//!   enumerations and what creating or changing one needs.
//! - `meetings`: meetings, their lifecycle ([`MeetingStatus::can_move_to`]) and
//!   invitations ([`Invitation`], [`Role`]: who may join, as what, until when).
//! - `registry`: the bridge point registry and a meeting's participants.
//! - `unit_groups`: saved groups of units ([`UnitGroup`]) invited in one
//!   step, and the lookup of invitations' short codes ("mã tham dự").
//! - `agenda`: agenda items (ordered, reorderable) and documents with versions.
//! - [`idempotency`]: answers stored under a client's idempotency key, in
//!   the transaction of what the request created, for safe retries.
//! - [`blobs`]: document contents, content-addressed by SHA-256 on disk.
//! - [`filetype`]: what an uploaded file is, from its bytes (the formats
//!   accepted as documents).
//! - `users`: secretariat accounts (argon2id).
//! - `attendance`: attendance ("điểm danh"): live sessions' join/leave
//!   intervals, bridge points' declarations, the secretariat's marks, and
//!   the report with the quorum ([`Store::attendance`], [`QuorumRule`]).
//! - `audit`: the audit log: append-only (triggers), hash-chained with a key
//!   outside the database ([`AuditSeal`]) and checkpointed outside it;
//!   [`Store::verify_audit_chain`] names the first bad entry.
//! - `votes`: live votes ([`Poll`]): named ones keep each ballot, secret
//!   ones keep who voted apart from counters of what was voted; one ballot
//!   per voter (the primary key); [`decide`] computes the result under the
//!   committee's rules ([`VoteRule`], quorum, the chair's side on a tie).
//! - `conclusions`: the conclusion of each agenda item ([`Conclusion`]),
//!   set by the chair or the secretariat until the meeting is archived.
//! - `opinions`: written opinion ballots between meetings
//!   ([`OpinionRequest`]): recipients answer agree / disagree / other once
//!   (or until the deadline), the outcome is decided like a vote's.
//! - [`mail`]: the e-mail outbox (written first, delivered by the server's
//!   sender with retries, each message once) and the reminder sweeps' queries;
//!   also the documents of written opinion requests (`opinion_docs`).
//! - `techdesk`: the operator's desk of a meeting: bridge points'
//!   pre-meeting checks ([`LinkCheck`]) and the text channel between the
//!   province's operator and each point ([`TechMessage`]).
//! - [`minutes`], [`notice`]: the minutes and the notice of conclusions of a
//!   meeting as HTML and PDF in the layout of Decree 30/2020/NĐ-CP (shared
//!   in `docfmt`); the notice's due date and issue, the documents'
//!   deadline ([`notice::DocumentsDeadline`]).
//! - [`workdays`]: the working-day calendar deadlines count in (weekends,
//!   holidays, extra working days).
//! - [`signature`]: PDF signature verification.
//! - [`Error`]: what can go wrong; `NotFound`-like outcomes of lookups are
//!   `Ok(None)`, not errors.
//!
//! Every write runs in one transaction with its audit log row (who, what,
//! when, target); changes that make no sense in a meeting's state are refused
//! ([`Error::Frozen`], [`Error::BadTransition`]).
//!
//! Queries are runtime-checked (`sqlx::query`), so building needs no database.
//! Times are Unix seconds; ids are UUID strings.

pub mod blobs;
pub mod filetype;
pub mod model;
pub mod signature;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use answers::{AnswerKind, InvitationAnswer, NewAnswer, MAX_ANSWER_TEXT};
pub use attendance::{MAX_ATTENDANCE_NOTE, MAX_ATTENDEES, MAX_LEADER};
pub use audit::{
    audit_hash, audit_hash_keyed, AuditBreak, AuditCheckpoint, AuditFields, AuditFilter,
    AuditProblem, AuditSeal, AUDIT_CHECKPOINT_FILE, AUDIT_KEY_FILE,
};
pub use blobs::{Blobs, StagedBlob};
pub use conclusions::{Conclusion, MAX_CONCLUSION};
pub use filetype::FileType;
pub use idempotency::{IdempotencyKey, StoredResponse};
pub use live::{LiveControl, LiveRemoval};
pub use model::*;
pub use notes::{NewNote, Note, NoteKind, NoteReader, MAX_NOTE_PAGE, MAX_NOTE_TEXT};
pub use opinions::{
    NewOpinionRequest, NewRecipient, OpinionAnswer, OpinionRecipient, OpinionReminder,
    OpinionRequest, RecipientAnswer, DEADLINE_ACTOR, MAX_OPINION_COMMENT, MAX_OPINION_QUESTION,
    MAX_RECIPIENTS,
};
pub use techdesk::{
    DeviceResult, LinkCheck, LinkPath, NewLinkCheck, NewTechMessage, TechMessage, TechSender,
    MAX_CHECK_BROWSER, MAX_TECH_MESSAGE, TECH_MESSAGES_PAGE,
};
pub use unit_groups::{NewUnitGroup, UnitGroup, UnitGroupPatch, UnitGroupRef, MAX_GROUP_UNITS};
pub use votes::{decide, quorum_needed, MAX_POLL_QUESTION};

/// The numbered migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Errors of the eCabinet storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// The database refused or failed a query, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The caller asked for something invalid (empty title, unknown role...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A meeting that an operation needs does not exist.
    #[error("meeting {0} not found")]
    MeetingNotFound(String),
    /// An invitation that an operation needs does not exist.
    #[error("invitation {0} not found")]
    InvitationNotFound(String),
    /// Another entity that an operation needs does not exist.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The meeting is ended or archived: its record can no longer change.
    #[error("the meeting is {status}: its participants, agenda, documents and invitations can no longer change")]
    Frozen { status: MeetingStatus },
    /// A status change the lifecycle does not allow.
    #[error("a meeting cannot go from {from} to {to}")]
    BadTransition {
        from: MeetingStatus,
        to: MeetingStatus,
    },
    /// The change collides with existing data (a username already taken).
    #[error("{0}")]
    Conflict(String),
    /// Reading or writing a document's content failed.
    #[error("document storage {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Password(String),
    /// A stored value is not one this version understands.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    /// The voter already has a ballot in this poll (one ballot per voter).
    #[error("this voter has already voted in poll {0}")]
    AlreadyVoted(String),
    /// The poll is closed: it takes no more ballots.
    #[error("poll {0} is closed")]
    PollClosed(String),
    /// The voter's role may not vote in this poll, or its invitation was
    /// revoked.
    #[error("not eligible to vote in poll {0}")]
    NotEligible(String),
    /// The meeting already has an open poll (at most one at a time).
    #[error("meeting {0} already has an open poll")]
    PollOpen(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The role an invitation gives in a meeting's live session (the
/// signaling protocol's `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Chairs the meeting (the province's chairman, for example).
    Chair,
    /// A member of the people's committee.
    Member,
    /// The secretariat: runs the agenda and the minutes.
    Secretary,
    /// A bridge point: a room of a department, district or commune.
    Bridge,
    /// A delegate attending in person or from a bridge point.
    Delegate,
    /// Watches, cannot speak or vote.
    Observer,
}

impl Role {
    /// Every role, in a stable order (for help texts).
    pub const ALL: [Role; 6] = [
        Role::Chair,
        Role::Member,
        Role::Secretary,
        Role::Bridge,
        Role::Delegate,
        Role::Observer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Chair => "chair",
            Role::Member => "member",
            Role::Secretary => "secretary",
            Role::Bridge => "bridge",
            Role::Delegate => "delegate",
            Role::Observer => "observer",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                Error::InvalidInput(format!(
                    "unknown role {s:?} (expected one of: {})",
                    all.join(", ")
                ))
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invitation to a meeting: the revocable thing a token points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// UUID; the token's `sub`.
    pub id: String,
    pub meeting_id: String,
    /// Display name of the person or bridge point.
    pub name: String,
    pub role: Role,
    /// The participant it is for, if any (decides `named` document access).
    pub participant_id: Option<String>,
    /// The bridge point it is for, if any.
    pub bridge_point_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the token's `exp`.
    pub expires_at: i64,
    /// Unix seconds; set once, when the invitation is revoked.
    pub revoked_at: Option<i64>,
    /// The invitee's last answer (attend, absent, substitute), if any.
    pub answer: Option<InvitationAnswer>,
    /// Where its e-mail goes (a member's or the chair's own address);
    /// empty: none, or, for a unit's invitation, the unit's address.
    pub email: String,
}

impl Invitation {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// What [`Store::create_invitation`] needs.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub meeting_id: String,
    pub name: String,
    pub role: Role,
    /// Seconds from now until it expires (may be negative, for tests).
    pub ttl_seconds: i64,
    /// A participant of the same meeting, if the invitation is theirs.
    pub participant_id: Option<String>,
    /// An active bridge point, if the invitation is for one.
    pub bridge_point_id: Option<String>,
    /// Its own e-mail address (checked, see [`mail::checked_email`]);
    /// empty: none (a unit's invitation then uses the unit's).
    pub email: String,
}

/// The two databases we support. The SQL is the same for both (`$1`
/// placeholders work in SQLite too); only the pool type differs.
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$p` bound to whichever pool the store has.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` inside one transaction bound to `$tx` (use `&mut *$tx` as
/// the executor), committing after it, then checkpointing the audit rows it
/// appended (see `audit`). A `?` inside returns early and the
/// dropped transaction rolls back. SQLite transactions start `IMMEDIATE`, so
/// two writers queue on the lock instead of failing to upgrade a read.
macro_rules! in_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite(p) => {
                let mut $tx = $crate::audit::SealedTx {
                    inner: p.begin_with("BEGIN IMMEDIATE").await?,
                    seal: $store.audit.clone(),
                    head: None,
                };
                let out = $body;
                let head = $tx.head.take();
                $tx.inner.commit().await?;
                $store.audit_committed(head).await;
                out
            }
            Pool::Postgres(p) => {
                let mut $tx = $crate::audit::SealedTx {
                    inner: p.begin().await?,
                    seal: $store.audit.clone(),
                    head: None,
                };
                let out = $body;
                let head = $tx.head.take();
                $tx.inner.commit().await?;
                $store.audit_committed(head).await;
                out
            }
        }
    };
}

/// Appends an audit row inside the transaction `$tx` (bound by [`in_tx!`]),
/// chained to the previous one with the audit key (see `audit`).
macro_rules! audit {
    ($tx:ident, $actor:expr, $action:expr, $target_type:expr, $target_id:expr, $detail:expr) => {{
        sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
        let (seq, prev, keyed_from): (i64, String, i64) =
            sqlx::query_as("SELECT seq, hash, keyed_from FROM audit_head WHERE id = 1")
                .fetch_one(&mut *$tx)
                .await?;
        let row = $crate::AuditFields {
            seq,
            at: $crate::now_unix(),
            actor: String::from($actor),
            action: String::from($action),
            target_type: String::from($target_type),
            target_id: String::from($target_id),
            detail: serde_json::Value::to_string(&$detail),
        };
        let hash = $crate::audit_hash_keyed($tx.seal.key(), &prev, &row);
        sqlx::query(
            "INSERT INTO audit_log (id, seq, at, actor, action, target_type, target_id, detail, \
             prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(row.seq)
        .bind(row.at)
        .bind(&row.actor)
        .bind(&row.action)
        .bind(&row.target_type)
        .bind(&row.target_id)
        .bind(&row.detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
        $tx.head = Some($crate::audit::Head {
            seq,
            hash,
            keyed_from,
        });
    }};
}

/// Stores the answer to a request with an idempotency key inside the
/// transaction `$tx`, after dropping expired ones (see [`idempotency`]).
/// `$idem` is an `Option<&IdempotencyKey>`; `None` stores nothing.
macro_rules! remember {
    ($tx:ident, $actor:expr, $idem:expr, $status:expr, $body:expr) => {{
        if let Some(k) = $idem {
            let now = $crate::now_unix();
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(now - $crate::idempotency::KEEP_SECONDS)
                .execute(&mut *$tx)
                .await?;
            let body = serde_json::to_string(&$body)
                .map_err(|e| $crate::Error::Corrupt(format!("answer to store: {e}")))?;
            sqlx::query(
                "INSERT INTO idempotency_keys (actor, idem_key, fingerprint, status, body, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind($actor)
            .bind(&k.key)
            .bind(&k.fingerprint)
            .bind(i64::from($status))
            .bind(body)
            .bind(now)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// The status of meeting `$id` read inside `$tx`, or
/// [`Error::MeetingNotFound`].
macro_rules! meeting_status {
    ($tx:ident, $id:expr) => {{
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM meetings WHERE id = $1")
                .bind($id)
                .fetch_optional(&mut *$tx)
                .await?;
        match status {
            Some(s) => $crate::parse_stored::<$crate::MeetingStatus>(&s, "meeting status")?,
            None => return Err($crate::Error::MeetingNotFound(String::from($id))),
        }
    }};
}

/// Refuses when the meeting `$id` (read inside `$tx`) does not exist or is
/// frozen; evaluates to its status.
macro_rules! require_open_meeting {
    ($tx:ident, $id:expr) => {{
        let status: $crate::MeetingStatus = meeting_status!($tx, $id);
        if status.is_frozen() {
            return Err($crate::Error::Frozen { status });
        }
        status
    }};
}

mod agenda;
mod answers;
mod attendance;
mod audit;
mod conclusions;
/// The layout of administrative documents (the minutes, the notice).
mod docfmt;
pub mod idempotency;
/// The chair's decisions that outlive a restart (read from the audit log).
mod live;
mod meetings;
/// After the macros: it reads the store too.
pub mod minutes;
mod notes;
pub mod notice;
mod opinions;
mod registry;
/// Sealed versions of the minutes (migration 0016); after the macros.
pub mod sealed_minutes;
/// The operator's desk: pre-meeting checks and the text channel.
mod techdesk;
mod unit_groups;
mod users;
mod votes;
pub mod workdays;

/// Handle to the eCabinet database. Cheap to clone (a pool inside).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The audit key and checkpoint file (see `audit`).
    audit: std::sync::Arc<AuditSeal>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("db", &self.backend())
            .finish()
    }
}

/// Current time in Unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A stored enumeration value parsed, or [`Error::Corrupt`].
pub(crate) fn parse_stored<T: FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("{what} {s:?}")))
}

/// A required text field, trimmed: not empty and at most `max` characters.
pub(crate) fn required_text(value: &str, what: &str, max: usize) -> Result<String> {
    let v = optional_text(value, what, max)?;
    if v.is_empty() {
        return Err(Error::InvalidInput(format!("the {what} is empty")));
    }
    Ok(v)
}

/// An optional text field, trimmed: at most `max` characters as sent
/// (spaces around included: the limit is the API's `maxLength`).
pub(crate) fn optional_text(value: &str, what: &str, max: usize) -> Result<String> {
    if value.chars().count() > max {
        return Err(Error::InvalidInput(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(value.trim().to_owned())
}

/// A fresh UUIDv4 id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Store {
    /// Opens the database at `url`, applies pending migrations and creates
    /// the audit log's guard triggers. The store has an ephemeral audit key
    /// until [`Store::with_audit_seal`] gives it the data folder's.
    ///
    /// `sqlite://path/to/file.db?mode=rwc` (WAL journal, foreign keys on) or
    /// `postgres://user@host/db` (also `postgres:///db?host=/var/run/postgresql`).
    pub async fn connect(url: &str) -> Result<Store> {
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Pool::Postgres(pool)
        } else {
            return Err(Error::UnsupportedUrl(redact_url(url)));
        };
        let store = Store {
            pool,
            audit: std::sync::Arc::new(AuditSeal::ephemeral()),
        };
        with_pool!(store, p => MIGRATOR.run(p).await)?;
        store.install_audit_guards().await?;
        Ok(store)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }
}

/// The URL without a password, for error messages and logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

/// After the macros: it writes to the store.
pub mod mail;
pub mod opinion_docs;

#[cfg(test)]
mod tests;
