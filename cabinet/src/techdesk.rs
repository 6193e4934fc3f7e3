//! The operator's desk of a meeting ("bàn kỹ thuật", issue 23): each
//! bridge point's pre-meeting checks ([`LinkCheck`]) and the text channel
//! between the province's operator and each point's operator
//! ([`TechMessage`]), kept with the meeting.
//!
//! A check is stored as the point ran it, with `ready` and the `problems`
//! decided by the caller (the server applies its thresholds); every run is
//! kept, the dashboard shows the latest per invitation. A message of the
//! operator goes to one invitation or to all; a point's message goes to
//! the operator. Messages are numbered per meeting (`seq`), so a reader
//! asks for what came after the last one it has. Neither is audited: they
//! are the technical desk's working notes, not decisions of the meeting.

use serde::{Deserialize, Serialize};

use crate::{
    new_id, now_unix, optional_text, parse_stored, Error, MeetingStatus, Pool, Result, Store,
};

/// Longest message of the text channel, in characters.
pub const MAX_TECH_MESSAGE: usize = 2000;
/// Longest browser description of a check, in characters.
pub const MAX_CHECK_BROWSER: usize = 200;
/// Messages returned by one read at most.
pub const TECH_MESSAGES_PAGE: i64 = 500;

/// What the camera test found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceResult {
    /// It works (a picture, a level above silence, the sound was heard).
    Ok,
    /// The microphone works but heard nothing above silence.
    Silent,
    /// The device exists but could not be used (denied, busy, broken), or
    /// the person did not hear the test sound.
    Failed,
    /// No such device.
    Absent,
    /// The person did not answer whether the sound was heard.
    Unknown,
}

impl DeviceResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceResult::Ok => "ok",
            DeviceResult::Silent => "silent",
            DeviceResult::Failed => "failed",
            DeviceResult::Absent => "absent",
            DeviceResult::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for DeviceResult {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        Ok(match s {
            "ok" => DeviceResult::Ok,
            "silent" => DeviceResult::Silent,
            "failed" => DeviceResult::Failed,
            "absent" => DeviceResult::Absent,
            "unknown" => DeviceResult::Unknown,
            _ => return Err(()),
        })
    }
}

/// The network path to the media server: UDP, ICE over TCP, or through a
/// TURN relay; `none`: no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPath {
    Udp,
    Tcp,
    Relay,
    None,
}

impl LinkPath {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPath::Udp => "udp",
            LinkPath::Tcp => "tcp",
            LinkPath::Relay => "relay",
            LinkPath::None => "none",
        }
    }
}

impl std::str::FromStr for LinkPath {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        Ok(match s {
            "udp" => LinkPath::Udp,
            "tcp" => LinkPath::Tcp,
            "relay" => LinkPath::Relay,
            "none" => LinkPath::None,
            _ => return Err(()),
        })
    }
}

/// A pre-meeting check as the point ran it, with the server's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLinkCheck {
    pub camera: DeviceResult,
    pub microphone: DeviceResult,
    /// The loudest level heard, 0 to 100.
    pub mic_level: Option<u8>,
    pub speaker: DeviceResult,
    pub path: LinkPath,
    pub rtt_ms: Option<u32>,
    pub down_kbps: Option<u32>,
    pub up_kbps: Option<u32>,
    pub browser: String,
    /// What is wrong (codes); empty: ready.
    pub problems: Vec<String>,
}

/// A stored pre-meeting check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkCheck {
    pub id: String,
    pub meeting_id: String,
    pub invitation_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// No problem found.
    pub ready: bool,
    #[serde(flatten)]
    pub check: NewLinkCheck,
}

#[derive(sqlx::FromRow)]
struct LinkCheckRow {
    id: String,
    meeting_id: String,
    invitation_id: String,
    created_at: i64,
    ready: bool,
    camera: String,
    microphone: String,
    mic_level: Option<i64>,
    speaker: String,
    path: String,
    rtt_ms: Option<i64>,
    down_kbps: Option<i64>,
    up_kbps: Option<i64>,
    browser: String,
    problems: String,
}

impl TryFrom<LinkCheckRow> for LinkCheck {
    type Error = Error;
    fn try_from(r: LinkCheckRow) -> Result<LinkCheck> {
        let small = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
            v.map(|n| u32::try_from(n).map_err(|_| Error::Corrupt(format!("{what} {n}"))))
                .transpose()
        };
        let problems: Vec<String> = serde_json::from_str(&r.problems)
            .map_err(|_| Error::Corrupt(format!("check problems {:?}", r.problems)))?;
        Ok(LinkCheck {
            id: r.id,
            meeting_id: r.meeting_id,
            invitation_id: r.invitation_id,
            created_at: r.created_at,
            ready: r.ready,
            check: NewLinkCheck {
                camera: parse_stored(&r.camera, "camera result")?,
                microphone: parse_stored(&r.microphone, "microphone result")?,
                mic_level: r
                    .mic_level
                    .map(|n| u8::try_from(n).map_err(|_| Error::Corrupt(format!("mic level {n}"))))
                    .transpose()?,
                speaker: parse_stored(&r.speaker, "speaker result")?,
                path: parse_stored(&r.path, "link path")?,
                rtt_ms: small(r.rtt_ms, "rtt")?,
                down_kbps: small(r.down_kbps, "down_kbps")?,
                up_kbps: small(r.up_kbps, "up_kbps")?,
                browser: r.browser,
                problems,
            },
        })
    }
}

const CHECK_COLUMNS: &str = "id, meeting_id, invitation_id, created_at, ready, camera, microphone, \
                             mic_level, speaker, path, rtt_ms, down_kbps, up_kbps, browser, problems";

/// Who wrote a message of the text channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TechSender {
    /// The province's operator (a staff account).
    Operator,
    /// A bridge point (its invitation).
    Point,
}

impl TechSender {
    pub fn as_str(self) -> &'static str {
        match self {
            TechSender::Operator => "operator",
            TechSender::Point => "point",
        }
    }
}

impl std::str::FromStr for TechSender {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "operator" => Ok(TechSender::Operator),
            "point" => Ok(TechSender::Point),
            _ => Err(()),
        }
    }
}

/// A message of the text channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechMessage {
    pub id: String,
    pub meeting_id: String,
    /// 1, 2, ... in the meeting.
    pub seq: i64,
    pub sender: TechSender,
    /// The point's thread: the point written to or writing; `None`: the
    /// operator to every point.
    pub invitation_id: Option<String>,
    pub author: String,
    pub text: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct TechMessageRow {
    id: String,
    meeting_id: String,
    seq: i64,
    sender: String,
    invitation_id: Option<String>,
    author: String,
    text: String,
    created_at: i64,
}

impl TryFrom<TechMessageRow> for TechMessage {
    type Error = Error;
    fn try_from(r: TechMessageRow) -> Result<TechMessage> {
        Ok(TechMessage {
            id: r.id,
            meeting_id: r.meeting_id,
            seq: r.seq,
            sender: parse_stored(&r.sender, "message sender")?,
            invitation_id: r.invitation_id,
            author: r.author,
            text: r.text,
            created_at: r.created_at,
        })
    }
}

const MESSAGE_COLUMNS: &str =
    "id, meeting_id, seq, sender, invitation_id, author, text, created_at";

/// A new message of the text channel.
#[derive(Debug, Clone)]
pub struct NewTechMessage<'a> {
    pub meeting_id: &'a str,
    pub sender: TechSender,
    /// The point's thread (required for a point's message); `None` from the
    /// operator: to every point.
    pub invitation_id: Option<&'a str>,
    pub author: &'a str,
    pub actor: &'a str,
    pub text: &'a str,
}

impl Store {
    async fn meeting_status_of(&self, meeting_id: &str) -> Result<MeetingStatus> {
        let status: Option<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT status FROM meetings WHERE id = $1")
            .bind(meeting_id)
            .fetch_optional(p)
            .await)?;
        match status {
            Some(s) => parse_stored(&s, "meeting status"),
            None => Err(Error::MeetingNotFound(meeting_id.to_owned())),
        }
    }

    /// Whether `invitation_id` is an invitation of `meeting_id`.
    async fn invitation_in(&self, meeting_id: &str, invitation_id: &str) -> Result<()> {
        let found: Option<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT id FROM invitations WHERE id = $1 AND meeting_id = $2")
            .bind(invitation_id)
            .bind(meeting_id)
            .fetch_optional(p)
            .await)?;
        found
            .map(drop)
            .ok_or_else(|| Error::InvitationNotFound(invitation_id.to_owned()))
    }

    /// Stores a pre-meeting check of `invitation_id` (an invitation of
    /// `meeting_id`); `ready` is "no problems". Refused once the meeting
    /// ended ([`Error::Frozen`]).
    pub async fn add_link_check(
        &self,
        meeting_id: &str,
        invitation_id: &str,
        check: NewLinkCheck,
    ) -> Result<LinkCheck> {
        let status = self.meeting_status_of(meeting_id).await?;
        if status.is_frozen() {
            return Err(Error::Frozen { status });
        }
        self.invitation_in(meeting_id, invitation_id).await?;
        let browser = optional_text(&check.browser, "browser", MAX_CHECK_BROWSER)?;
        if check.mic_level.is_some_and(|l| l > 100) {
            return Err(Error::InvalidInput("mic_level is over 100".into()));
        }
        let check = NewLinkCheck { browser, ..check };
        let out = LinkCheck {
            // UUIDv7, increasing within the process: two checks of one point
            // in the same second are told apart in order ("latest" breaks a
            // tie of created_at by id; a random v4 made that a coin toss).
            id: uuid::Uuid::now_v7().to_string(),
            meeting_id: meeting_id.to_owned(),
            invitation_id: invitation_id.to_owned(),
            created_at: now_unix(),
            ready: check.problems.is_empty(),
            check,
        };
        let problems = serde_json::to_string(&out.check.problems)
            .map_err(|e| Error::InvalidInput(format!("problems: {e}")))?;
        let c = &out.check;
        with_pool!(self, p => sqlx::query(&format!(
            "INSERT INTO link_checks ({CHECK_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"))
            .bind(&out.id)
            .bind(&out.meeting_id)
            .bind(&out.invitation_id)
            .bind(out.created_at)
            .bind(out.ready)
            .bind(c.camera.as_str())
            .bind(c.microphone.as_str())
            .bind(c.mic_level.map(i64::from))
            .bind(c.speaker.as_str())
            .bind(c.path.as_str())
            .bind(c.rtt_ms.map(i64::from))
            .bind(c.down_kbps.map(i64::from))
            .bind(c.up_kbps.map(i64::from))
            .bind(&c.browser)
            .bind(&problems)
            .execute(p)
            .await
            .map(drop))?;
        Ok(out)
    }

    /// The latest pre-meeting check of each invitation of a meeting.
    pub async fn latest_link_checks(&self, meeting_id: &str) -> Result<Vec<LinkCheck>> {
        let sql = format!(
            "SELECT {CHECK_COLUMNS} FROM link_checks c WHERE meeting_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM link_checks d WHERE d.meeting_id = c.meeting_id \
              AND d.invitation_id = c.invitation_id \
              AND (d.created_at > c.created_at OR (d.created_at = c.created_at AND d.id > c.id))) \
             ORDER BY invitation_id"
        );
        let rows: Vec<LinkCheckRow> = with_pool!(self, p => sqlx::query_as(&sql)
            .bind(meeting_id)
            .fetch_all(p)
            .await)?;
        rows.into_iter().map(LinkCheck::try_from).collect()
    }

    /// Adds a message to a meeting's text channel: 1 to
    /// [`MAX_TECH_MESSAGE`] characters (trimmed, no NUL); the invitation
    /// named must be the meeting's. Refused once the meeting is archived.
    pub async fn add_tech_message(&self, m: NewTechMessage<'_>) -> Result<TechMessage> {
        let text = optional_text(m.text, "message", MAX_TECH_MESSAGE)?;
        if text.is_empty() {
            return Err(Error::InvalidInput("the message is empty".into()));
        }
        if text.contains('\0') {
            return Err(Error::InvalidInput(
                "the message contains a NUL character".into(),
            ));
        }
        if m.sender == TechSender::Point && m.invitation_id.is_none() {
            return Err(Error::InvalidInput(
                "a point's message names its invitation".into(),
            ));
        }
        let status = self.meeting_status_of(m.meeting_id).await?;
        if status == MeetingStatus::Archived {
            return Err(Error::Frozen { status });
        }
        if let Some(inv) = m.invitation_id {
            self.invitation_in(m.meeting_id, inv).await?;
        }
        // Two writers may take the same number on PostgreSQL (SQLite
        // serializes them): the unique key refuses the second, which tries
        // again with the next.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.insert_tech_message(&m, &text).await {
                Err(e) if e.is_unique_violation() && tries < 5 => continue,
                other => return other,
            }
        }
    }

    async fn insert_tech_message(&self, m: &NewTechMessage<'_>, text: &str) -> Result<TechMessage> {
        let id = new_id();
        let now = now_unix();
        let seq = in_tx!(self, tx => {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM tech_messages WHERE meeting_id = $1")
                .bind(m.meeting_id)
                .fetch_one(&mut *tx)
                .await?;
            let seq = last.unwrap_or(0) + 1;
            sqlx::query(
                "INSERT INTO tech_messages (id, meeting_id, seq, sender, invitation_id, author, \
                 actor, text, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id)
            .bind(m.meeting_id)
            .bind(seq)
            .bind(m.sender.as_str())
            .bind(m.invitation_id)
            .bind(m.author)
            .bind(m.actor)
            .bind(text)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            seq
        });
        Ok(TechMessage {
            id,
            meeting_id: m.meeting_id.to_owned(),
            seq,
            sender: m.sender,
            invitation_id: m.invitation_id.map(str::to_owned),
            author: m.author.to_owned(),
            text: text.to_owned(),
            created_at: now,
        })
    }

    /// A meeting's messages after `after` (`seq`), oldest first, at most
    /// [`TECH_MESSAGES_PAGE`]: all of them (`thread` None: the operator's
    /// view), or one point's thread and the messages to every point.
    pub async fn tech_messages(
        &self,
        meeting_id: &str,
        thread: Option<&str>,
        after: i64,
    ) -> Result<Vec<TechMessage>> {
        let rows: Vec<TechMessageRow> = match thread {
            None => {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM tech_messages WHERE meeting_id = $1 \
                     AND seq > $2 ORDER BY seq LIMIT $3"
                );
                with_pool!(self, p => sqlx::query_as(&sql)
                    .bind(meeting_id)
                    .bind(after)
                    .bind(TECH_MESSAGES_PAGE)
                    .fetch_all(p)
                    .await)?
            }
            Some(inv) => {
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM tech_messages WHERE meeting_id = $1 \
                     AND seq > $2 AND (invitation_id = $3 OR invitation_id IS NULL) \
                     ORDER BY seq LIMIT $4"
                );
                with_pool!(self, p => sqlx::query_as(&sql)
                    .bind(meeting_id)
                    .bind(after)
                    .bind(inv)
                    .bind(TECH_MESSAGES_PAGE)
                    .fetch_all(p)
                    .await)?
            }
        };
        rows.into_iter().map(TechMessage::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{invite, pg_store, sqlite_store};
    use crate::Role;

    fn check(problems: &[&str]) -> NewLinkCheck {
        NewLinkCheck {
            camera: DeviceResult::Ok,
            microphone: DeviceResult::Ok,
            mic_level: Some(42),
            speaker: DeviceResult::Ok,
            path: LinkPath::Tcp,
            rtt_ms: Some(35),
            down_kbps: Some(8000),
            up_kbps: Some(3000),
            browser: " Chrome 131 ".into(),
            problems: problems.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    async fn scenario(s: &Store) {
        let m = s.create_meeting("Giao ban").await.expect("meeting");
        let other = s.create_meeting("Khác").await.expect("meeting");
        let a = invite(s, &m.id, "Xã A", Role::Bridge).await;
        let b = invite(s, &m.id, "Xã B", Role::Bridge).await;
        let stranger = invite(s, &other.id, "Xã C", Role::Bridge).await;

        // Checks: the latest per invitation; another meeting's invitation
        // is refused.
        s.add_link_check(&m.id, &a, check(&["camera"]))
            .await
            .expect("a1");
        let a2 = s.add_link_check(&m.id, &a, check(&[])).await.expect("a2");
        assert!(a2.ready);
        assert_eq!(a2.check.browser, "Chrome 131");
        let b1 = s
            .add_link_check(&m.id, &b, check(&["rtt"]))
            .await
            .expect("b1");
        assert!(!b1.ready);
        assert!(matches!(
            s.add_link_check(&m.id, &stranger, check(&[])).await,
            Err(Error::InvitationNotFound(_))
        ));
        let mut bad = check(&[]);
        bad.mic_level = Some(101);
        assert!(matches!(
            s.add_link_check(&m.id, &a, bad).await,
            Err(Error::InvalidInput(_))
        ));
        let latest = s.latest_link_checks(&m.id).await.expect("latest");
        assert_eq!(latest.len(), 2);
        let la = latest.iter().find(|c| c.invitation_id == a).expect("a");
        assert_eq!(la.id, a2.id);
        assert_eq!(la.check.path, LinkPath::Tcp);
        assert_eq!(la.check.mic_level, Some(42));
        let lb = latest.iter().find(|c| c.invitation_id == b).expect("b");
        assert_eq!(lb.check.problems, vec!["rtt".to_owned()]);

        // Messages: numbered per meeting; a point reads its thread and the
        // messages to all.
        let msg = |sender, inv: Option<&'static str>, text: &'static str| NewTechMessage {
            meeting_id: "",
            sender,
            invitation_id: inv,
            author: "x",
            actor: "user:x",
            text,
        };
        let to_all = s
            .add_tech_message(NewTechMessage {
                meeting_id: &m.id,
                ..msg(TechSender::Operator, None, "Kiểm tra âm thanh")
            })
            .await
            .expect("to all");
        assert_eq!(to_all.seq, 1);
        let to_a = s
            .add_tech_message(NewTechMessage {
                meeting_id: &m.id,
                invitation_id: Some(a.as_str()),
                ..msg(TechSender::Operator, None, "A: bật micro")
            })
            .await
            .expect("to a");
        let from_b = s
            .add_tech_message(NewTechMessage {
                meeting_id: &m.id,
                invitation_id: Some(b.as_str()),
                ..msg(TechSender::Point, None, " B đã sẵn sàng ")
            })
            .await
            .expect("from b");
        assert_eq!((to_a.seq, from_b.seq), (2, 3));
        assert_eq!(from_b.text, "B đã sẵn sàng");
        for bad in ["", "   ", "a\0b"] {
            assert!(matches!(
                s.add_tech_message(NewTechMessage {
                    meeting_id: &m.id,
                    invitation_id: Some(b.as_str()),
                    text: bad,
                    ..msg(TechSender::Point, None, "")
                })
                .await,
                Err(Error::InvalidInput(_))
            ));
        }
        let long = "x".repeat(MAX_TECH_MESSAGE + 1);
        assert!(matches!(
            s.add_tech_message(NewTechMessage {
                meeting_id: &m.id,
                text: &long,
                ..msg(TechSender::Operator, None, "")
            })
            .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.add_tech_message(NewTechMessage {
                meeting_id: &m.id,
                ..msg(TechSender::Point, None, "no thread")
            })
            .await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            s.add_tech_message(NewTechMessage {
                meeting_id: &m.id,
                invitation_id: Some(stranger.as_str()),
                ..msg(TechSender::Operator, None, "wrong meeting")
            })
            .await,
            Err(Error::InvitationNotFound(_))
        ));
        let all = s.tech_messages(&m.id, None, 0).await.expect("all");
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let of_b = s
            .tech_messages(&m.id, Some(b.as_str()), 0)
            .await
            .expect("b");
        assert_eq!(of_b.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 3]);
        let of_a = s
            .tech_messages(&m.id, Some(a.as_str()), 1)
            .await
            .expect("a");
        assert_eq!(of_a.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
        assert!(s
            .tech_messages(&other.id, None, 0)
            .await
            .expect("other")
            .is_empty());
    }

    #[tokio::test]
    async fn checks_and_messages_sqlite() {
        let (s, _dir) = sqlite_store().await;
        scenario(&s).await;
    }

    #[tokio::test]
    async fn checks_and_messages_postgres() {
        let Some((s, schema)) = pg_store().await else {
            return;
        };
        scenario(&s).await;
        schema.drop_now(s).await;
    }
}
