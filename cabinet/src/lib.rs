//! giaoban's eCabinet domain and its storage.
//!
//! # Layout
//! - [`Store`]: the handle to the database (SQLite, the embedded default, or
//!   PostgreSQL, chosen by the URL). [`Store::connect`] opens it and applies the
//!   numbered migrations in `cabinet/migrations` (portable SQL, the same files
//!   for both databases; never edit one that has been released, add a new one).
//! - [`Meeting`], [`MeetingStatus`]: a meeting and where it is in its life.
//! - [`Invitation`], [`Role`]: who may join a meeting, as what, until when.
//! - [`Error`]: what can go wrong; `NotFound`-like outcomes of lookups are
//!   `Ok(None)`, not errors.
//!
//! Queries are runtime-checked (`sqlx::query`), so building needs no database.
//! Times are Unix seconds; ids are UUID strings.

pub mod signature;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

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
    /// A stored value is not one this version understands.
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where a meeting is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    Scheduled,
    InProgress,
    Ended,
}

impl MeetingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingStatus::Scheduled => "scheduled",
            MeetingStatus::InProgress => "in_progress",
            MeetingStatus::Ended => "ended",
        }
    }
}

impl FromStr for MeetingStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "scheduled" => Ok(MeetingStatus::Scheduled),
            "in_progress" => Ok(MeetingStatus::InProgress),
            "ended" => Ok(MeetingStatus::Ended),
            other => Err(Error::InvalidInput(format!(
                "unknown meeting status {other:?}"
            ))),
        }
    }
}

impl fmt::Display for MeetingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role a participant has in a meeting.
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

/// A meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    /// UUID, also the SFU room name.
    pub id: String,
    pub title: String,
    pub status: MeetingStatus,
    /// Unix seconds.
    pub created_at: i64,
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
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the token's `exp`.
    pub expires_at: i64,
    /// Unix seconds; set once, when the invitation is revoked.
    pub revoked_at: Option<i64>,
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
}

#[derive(sqlx::FromRow)]
struct MeetingRow {
    id: String,
    title: String,
    status: String,
    created_at: i64,
}

impl TryFrom<MeetingRow> for Meeting {
    type Error = Error;
    fn try_from(r: MeetingRow) -> Result<Meeting> {
        Ok(Meeting {
            status: r
                .status
                .parse()
                .map_err(|_| Error::Corrupt(format!("meeting status {:?}", r.status)))?,
            id: r.id,
            title: r.title,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: String,
    meeting_id: String,
    name: String,
    role: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = Error;
    fn try_from(r: InvitationRow) -> Result<Invitation> {
        Ok(Invitation {
            role: r
                .role
                .parse()
                .map_err(|_| Error::Corrupt(format!("invitation role {:?}", r.role)))?,
            id: r.id,
            meeting_id: r.meeting_id,
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
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

const MEETING_COLUMNS: &str = "id, title, status, created_at";
const INVITATION_COLUMNS: &str = "id, meeting_id, name, role, created_at, expires_at, revoked_at";

/// Handle to the eCabinet database. Cheap to clone (a pool inside).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        };
        f.debug_struct("Store").field("db", &kind).finish()
    }
}

/// Current time in Unix seconds.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens the database at `url` and applies pending migrations.
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
        let store = Store { pool };
        with_pool!(store, p => MIGRATOR.run(p).await)?;
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

    /// Creates a scheduled meeting.
    pub async fn create_meeting(&self, title: &str) -> Result<Meeting> {
        let title = title.trim();
        if title.is_empty() {
            return Err(Error::InvalidInput("the meeting title is empty".into()));
        }
        let meeting = Meeting {
            id: uuid::Uuid::new_v4().to_string(),
            title: title.to_owned(),
            status: MeetingStatus::Scheduled,
            created_at: now_unix(),
        };
        let sql = "INSERT INTO meetings (id, title, status, created_at) VALUES ($1, $2, $3, $4)";
        with_pool!(self, p => sqlx::query(sql)
            .bind(&meeting.id)
            .bind(&meeting.title)
            .bind(meeting.status.as_str())
            .bind(meeting.created_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(meeting)
    }

    /// The meeting with this id, if any.
    pub async fn get_meeting(&self, id: &str) -> Result<Option<Meeting>> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1");
        let row: Option<MeetingRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(Meeting::try_from).transpose()
    }

    /// Every meeting, oldest first.
    pub async fn list_meetings(&self) -> Result<Vec<Meeting>> {
        let sql = format!("SELECT {MEETING_COLUMNS} FROM meetings ORDER BY created_at, id");
        let rows: Vec<MeetingRow> = with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        rows.into_iter().map(Meeting::try_from).collect()
    }

    /// Moves a meeting to another status.
    pub async fn set_meeting_status(&self, id: &str, status: MeetingStatus) -> Result<()> {
        let sql = "UPDATE meetings SET status = $1 WHERE id = $2";
        let n = with_pool!(self, p => sqlx::query(sql)
            .bind(status.as_str())
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(Error::MeetingNotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Creates an invitation to an existing meeting.
    pub async fn create_invitation(&self, new: NewInvitation) -> Result<Invitation> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(Error::InvalidInput("the invitee's name is empty".into()));
        }
        if self.get_meeting(&new.meeting_id).await?.is_none() {
            return Err(Error::MeetingNotFound(new.meeting_id));
        }
        let now = now_unix();
        let inv = Invitation {
            id: uuid::Uuid::new_v4().to_string(),
            meeting_id: new.meeting_id,
            name: name.to_owned(),
            role: new.role,
            created_at: now,
            expires_at: now.saturating_add(new.ttl_seconds),
            revoked_at: None,
        };
        let sql = "INSERT INTO invitations (id, meeting_id, name, role, created_at, expires_at, revoked_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, NULL)";
        with_pool!(self, p => sqlx::query(sql)
            .bind(&inv.id)
            .bind(&inv.meeting_id)
            .bind(&inv.name)
            .bind(inv.role.as_str())
            .bind(inv.created_at)
            .bind(inv.expires_at)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(inv)
    }

    /// The invitation with this id, if any.
    pub async fn get_invitation(&self, id: &str) -> Result<Option<Invitation>> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1");
        let row: Option<InvitationRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?;
        row.map(Invitation::try_from).transpose()
    }

    /// Revokes an invitation (idempotent: the first revocation time is kept).
    /// Returns the invitation as it now is.
    pub async fn revoke_invitation(&self, id: &str) -> Result<Invitation> {
        let sql = "UPDATE invitations SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
        with_pool!(self, p => sqlx::query(sql)
            .bind(now_unix())
            .bind(id)
            .execute(p)
            .await
            .map(|_| ()))?;
        self.get_invitation(id)
            .await?
            .ok_or_else(|| Error::InvitationNotFound(id.to_owned()))
    }

    /// The invitations of a meeting, oldest first.
    pub async fn list_invitations(&self, meeting_id: &str) -> Result<Vec<Invitation>> {
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE meeting_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<InvitationRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(Invitation::try_from).collect()
    }
}

/// The URL without a password, for error messages and logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
