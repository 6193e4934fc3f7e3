//! The eCabinet's entities, their enumerations, and what creating or
//! changing one needs (`New*`, `*Patch`). Plain data: the rules live in the
//! store's methods.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

/// Declares a string-backed enum with `as_str`, `ALL`, `FromStr`, `Display`
/// and snake_case serde.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in a stable order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => {
                        let all: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Err(Error::InvalidInput(format!(
                            "unknown {} {other:?} (expected one of: {})",
                            $what,
                            all.join(", ")
                        )))
                    }
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where a meeting is in its life: draft → scheduled → in_progress →
    /// ended → archived (see [`MeetingStatus::can_move_to`]).
    MeetingStatus, "meeting status" {
        /// Being prepared by the secretariat; new meetings start here.
        Draft => "draft",
        /// Announced; its invitees can prepare.
        Scheduled => "scheduled",
        /// Running now.
        InProgress => "in_progress",
        /// Over (or closed without taking place): its record is frozen.
        Ended => "ended",
        /// Filed away: frozen, and out of the way of current work.
        Archived => "archived",
    }
}

impl MeetingStatus {
    /// Whether a meeting may go from `self` to `to`.
    ///
    /// Forward along draft → scheduled → in_progress → ended → archived.
    /// Also: scheduled → draft (the announcement is withdrawn to rework the
    /// meeting before it starts; nothing happened yet, so nothing is lost),
    /// and draft/scheduled → ended (the meeting is closed without taking
    /// place; `giaoban meeting end` does this). Nothing leaves `archived`,
    /// and a meeting that started never goes back to preparation.
    pub fn can_move_to(self, to: MeetingStatus) -> bool {
        use MeetingStatus::*;
        matches!(
            (self, to),
            (Draft, Scheduled)
                | (Scheduled, Draft)
                | (Scheduled, InProgress)
                | (InProgress, Ended)
                | (Draft, Ended)
                | (Scheduled, Ended)
                | (Ended, Archived)
        )
    }

    /// Ended and archived meetings are a record: no edits of the meeting, its
    /// participants, agenda, documents or new invitations.
    pub fn is_frozen(self) -> bool {
        matches!(self, MeetingStatus::Ended | MeetingStatus::Archived)
    }
}

text_enum! {
    /// What kind of meeting.
    MeetingKind, "meeting kind" {
        /// The regular "giao ban" (weekly, monthly...).
        Regular => "regular",
        /// On one theme.
        Thematic => "thematic",
        /// Called at short notice.
        Extraordinary => "extraordinary",
    }
}

text_enum! {
    /// The administrative level of a bridge point. Since 1 July 2025 local
    /// government has two levels: the province (with its departments) and
    /// its communes, wards and special zones. `District` stays only for units
    /// stored before the reform: it is read, kept, never accepted for a new
    /// unit (see [`BridgeLevel::is_current`]).
    BridgeLevel, "bridge point level" {
        /// Tỉnh (or a centrally-run city).
        Province => "province",
        /// Sở, ban, ngành.
        Department => "department",
        /// Xã.
        Commune => "commune",
        /// Phường.
        Ward => "ward",
        /// Đặc khu.
        SpecialZone => "special_zone",
        /// Anything else (a party or mass organisation, a company...).
        Other => "other",
        /// Huyện: abolished on 1 July 2025; old data only.
        District => "district",
    }
}

impl BridgeLevel {
    /// The levels a new unit may have (all but `district`), in the order
    /// the UI offers them.
    pub const CURRENT: &'static [BridgeLevel] = &[
        BridgeLevel::Province,
        BridgeLevel::Department,
        BridgeLevel::Commune,
        BridgeLevel::Ward,
        BridgeLevel::SpecialZone,
        BridgeLevel::Other,
    ];

    /// Whether a new unit may have this level (`district` may not).
    pub fn is_current(self) -> bool {
        self != BridgeLevel::District
    }

    /// The level named by an English key (`commune`) or a Vietnamese name
    /// (`Xã`, `Phường`, `Đặc khu`, `Sở`...), as a province's list of units
    /// writes it; case and surrounding spaces do not matter. `district`
    /// (`Huyện`) is recognised so the caller can refuse it by name.
    pub fn from_label(label: &str) -> Option<BridgeLevel> {
        let l = label
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if let Ok(v) = l.replace(' ', "_").parse::<BridgeLevel>() {
            return Some(v);
        }
        Some(match l.as_str() {
            "tỉnh" | "thành phố trực thuộc trung ương" | "ubnd tỉnh" => {
                BridgeLevel::Province
            }
            "sở" | "ban" | "ngành" | "sở/ban/ngành" | "sở, ban, ngành" | "sở ban ngành"
            | "sở/ngành" | "sở ngành" => BridgeLevel::Department,
            "xã" => BridgeLevel::Commune,
            "phường" => BridgeLevel::Ward,
            "đặc khu" => BridgeLevel::SpecialZone,
            "khác" => BridgeLevel::Other,
            "huyện" | "quận" | "thị xã" | "thành phố thuộc tỉnh" => {
                BridgeLevel::District
            }
            _ => return None,
        })
    }
}

text_enum! {
    /// The role of a participant in a meeting.
    ParticipantRole, "participant role" {
        /// Chairs the meeting.
        Chair => "chair",
        /// A member of the People's Committee.
        Member => "member",
        /// The secretariat.
        Secretary => "secretary",
        /// A delegate.
        Delegate => "delegate",
        /// Watches.
        Observer => "observer",
        /// Runs a bridge point's room and equipment.
        BridgeOperator => "bridge_operator",
    }
}

impl ParticipantRole {
    /// Members of the committee (chair and members): they read documents whose
    /// access is `committee`.
    pub fn is_committee(self) -> bool {
        matches!(self, ParticipantRole::Chair | ParticipantRole::Member)
    }

    /// Whether this role votes unless told otherwise.
    pub fn votes_by_default(self) -> bool {
        self.is_committee()
    }
}

text_enum! {
    /// Who may read a document.
    DocumentAccess, "document access" {
        /// Every participant of the meeting.
        Everyone => "everyone",
        /// The committee: participants with role chair or member.
        Committee => "committee",
        /// Only the participants listed on the document.
        Named => "named",
    }
}

text_enum! {
    /// The role of a secretariat account.
    StaffRole, "staff role" {
        /// Everything, including the accounts.
        Admin => "admin",
        /// Prepares meetings: agenda, documents, participants, invitations,
        /// bridge points.
        Secretary => "secretary",
        /// Runs meetings technically: reads meetings, bridge points,
        /// participants and invitations.
        Operator => "operator",
    }
}

/// Deserializes a present field (even `null`) as `Some(..)`, so a patch can
/// tell "leave it" (absent) from "clear it" (`null`).
pub(crate) fn double_option<'de, T, D>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    /// UUID, also the SFU room name.
    pub id: String,
    pub title: String,
    pub kind: MeetingKind,
    pub status: MeetingStatus,
    /// Planned start and end, Unix seconds.
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    /// Where the main room is ("Hội trường UBND tỉnh"); may be empty.
    pub location: String,
    /// The participant who chairs it (one of its participants).
    pub chair_participant_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Whether bridge points and delegates enter with their audio blocked
    /// by the chair; null: the server decides by the meeting's size
    /// (`signaling.join_muted_from`).
    pub join_muted: Option<bool>,
}

/// What creating a meeting needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMeeting {
    pub title: String,
    #[serde(default = "default_kind")]
    pub kind: MeetingKind,
    #[serde(default)]
    pub starts_at: Option<i64>,
    #[serde(default)]
    pub ends_at: Option<i64>,
    #[serde(default)]
    pub location: String,
    /// See [`Meeting::join_muted`].
    #[serde(default)]
    pub join_muted: Option<bool>,
}

fn default_kind() -> MeetingKind {
    MeetingKind::Regular
}

impl NewMeeting {
    /// A regular meeting with only a title.
    pub fn titled(title: &str) -> NewMeeting {
        NewMeeting {
            title: title.to_owned(),
            kind: MeetingKind::Regular,
            starts_at: None,
            ends_at: None,
            location: String::new(),
            join_muted: None,
        }
    }
}

/// A change of a meeting's details: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub kind: Option<MeetingKind>,
    #[serde(default, deserialize_with = "double_option")]
    pub starts_at: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub ends_at: Option<Option<i64>>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub chair_participant_id: Option<Option<String>>,
    /// `true`/`false`, or `null` for the server's default by size.
    #[serde(default, deserialize_with = "double_option")]
    pub join_muted: Option<Option<bool>>,
}

/// A meeting copied from an earlier one ([`crate::Store::copy_meeting`]),
/// with the levels of the bridge points invited to the earlier one, so that
/// the same groups can be invited again (invitations are never copied: each
/// meeting gets new links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingCopy {
    #[serde(flatten)]
    pub meeting: Meeting,
    /// Distinct, sorted by name; empty when no bridge point was invited.
    pub invited_levels: Vec<BridgeLevel>,
    /// The saved groups of units invited to the earlier one, by name (to
    /// invite them again); empty when none was.
    pub invited_groups: Vec<crate::UnitGroupRef>,
}

/// A bridge point ("điểm cầu"): a room that joins meetings, kept in a
/// registry reused across meetings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePoint {
    pub id: String,
    pub name: String,
    pub level: BridgeLevel,
    /// Who to call about it (name, phone); may be empty.
    pub contact: String,
    /// The unit's administrative code (or the province's own code for a
    /// department); may be empty.
    pub code: String,
    /// The phone of the operator who runs its room; may be empty.
    pub operator_phone: String,
    /// Where its invitations, reminders and notices are e-mailed (when
    /// `[mail]` is configured); may be empty.
    pub email: String,
    /// Inactive points stay in the registry but get no new invitations.
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What registering a bridge point needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBridgePoint {
    pub name: String,
    /// Any level but `district` (see [`BridgeLevel::is_current`]).
    pub level: BridgeLevel,
    #[serde(default)]
    pub contact: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub operator_phone: String,
    /// An e-mail address, or empty.
    #[serde(default)]
    pub email: String,
}

/// A change of a bridge point: absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgePointPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub level: Option<BridgeLevel>,
    #[serde(default)]
    pub contact: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub operator_phone: Option<String>,
    /// An e-mail address, or empty to remove it.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// A person taking part in a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: String,
    pub meeting_id: String,
    /// The person's name.
    pub name: String,
    /// Position or title ("Phó Chủ tịch UBND tỉnh"); may be empty.
    pub position: String,
    pub role: ParticipantRole,
    /// Whether they vote.
    pub voting: bool,
    /// The bridge point they attend from, if not the main room.
    pub bridge_point_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What adding a participant needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewParticipant {
    pub name: String,
    #[serde(default)]
    pub position: String,
    pub role: ParticipantRole,
    /// Default: true for chair and members, false otherwise.
    #[serde(default)]
    pub voting: Option<bool>,
    #[serde(default)]
    pub bridge_point_id: Option<String>,
}

/// A change of a participant: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub role: Option<ParticipantRole>,
    #[serde(default)]
    pub voting: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub bridge_point_id: Option<Option<String>>,
}

/// An item of a meeting's agenda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgendaItem {
    pub id: String,
    pub meeting_id: String,
    /// 1, 2, 3... in the meeting.
    pub position: i64,
    pub title: String,
    /// Who presents it; may be empty.
    pub presenter: String,
    /// Planned duration in minutes.
    pub duration_minutes: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What adding an agenda item needs (it goes last).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgendaItem {
    pub title: String,
    #[serde(default)]
    pub presenter: String,
    #[serde(default)]
    pub duration_minutes: Option<i64>,
}

/// A change of an agenda item: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgendaItemPatch {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub presenter: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub duration_minutes: Option<Option<i64>>,
}

/// A document of an agenda item, with every version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub meeting_id: String,
    pub agenda_item_id: String,
    pub title: String,
    pub access: DocumentAccess,
    /// For `named` access: who may read it. Empty otherwise.
    pub participant_ids: Vec<String>,
    /// The newest version's number (1, 2...).
    pub current_version: i64,
    /// Oldest first.
    pub versions: Vec<DocumentVersion>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set when the secretariat withdrew the document (Unix seconds). It
    /// stays in the record (listed, marked withdrawn); invitees can no
    /// longer download it, the secretariat still can.
    pub withdrawn_at: Option<i64>,
    /// Who withdrew it (an actor, see the audit log).
    pub withdrawn_by: Option<String>,
    /// Why (may be empty).
    pub withdrawn_reason: Option<String>,
    /// The document that replaced it, when it was withdrawn by a
    /// replacement.
    pub replaced_by: Option<String>,
    /// The document this one replaced, if any.
    pub replaces: Option<String>,
}

impl Document {
    /// The version numbered `n`, or the current one.
    pub fn version(&self, n: Option<i64>) -> Option<&DocumentVersion> {
        let n = n.unwrap_or(self.current_version);
        self.versions.iter().find(|v| v.version == n)
    }

    /// Whether it has been withdrawn (or replaced).
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn_at.is_some()
    }
}

/// One uploaded file of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentVersion {
    pub version: i64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// The file's name as uploaded (for downloads), with the extension of
    /// its verified type added when it had another one.
    pub filename: String,
    /// The media type: that of `file_type`; for a file uploaded before
    /// types were verified, what the uploader said (it is then served as
    /// the type found in its bytes, else `application/octet-stream`).
    pub content_type: String,
    /// The format verified from the bytes at upload; `None` for files
    /// uploaded before types were verified.
    pub file_type: Option<crate::FileType>,
    /// Who uploaded it (an actor, see the audit log).
    pub uploaded_by: String,
    pub uploaded_at: i64,
    /// The signature verification report (JSON), or `{"status":"not_checked"}`.
    pub signature_report: serde_json::Value,
}

/// What creating a document needs (besides its first file).
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub agenda_item_id: String,
    pub title: String,
    pub access: DocumentAccess,
    /// For `named` access: participants of the same meeting.
    pub participant_ids: Vec<String>,
}

/// What replacing a document needs besides the new file
/// ([`crate::Store::replace_document`]).
#[derive(Debug, Clone, Default)]
pub struct Replacement {
    /// The new document's title; `None` or empty: the old title.
    pub title: Option<String>,
    /// Why (may be empty), kept as the old document's `withdrawn_reason`.
    pub reason: String,
}

/// The metadata of an uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    pub filename: String,
    /// The format found in its bytes ([`crate::FileType::of_path`]); it
    /// decides the stored content type.
    pub file_type: crate::FileType,
    pub signature_report: serde_json::Value,
}

/// A secretariat account (the password hash never leaves the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: StaffRole,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What creating an account needs.
#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: StaffRole,
    pub password: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One row of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// UUIDv7.
    pub id: String,
    /// Position in the chain: 1, 2, 3...
    pub seq: i64,
    pub at: i64,
    /// Who: `user:<id>`, `invitation:<id>`, `cli`...
    pub actor: String,
    /// What: `meeting.create`, `document.upload`...
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// More about it (JSON).
    pub detail: serde_json::Value,
    /// SHA-256 (hex) over the previous row's hash and this row's fields.
    pub hash: String,
}

text_enum! {
    /// The secretariat's attendance mark of an invitee
    /// ([`crate::Store::mark_attendance`]).
    AttendanceMark, "attendance mark" {
        /// Present in the meeting hall (not connected through a link).
        PresentInHall => "present_in_hall",
        /// Absent with the chair's consent.
        Excused => "excused",
    }
}

text_enum! {
    /// How a live session joined a meeting.
    AttendanceVia, "attendance channel" {
        /// The web client (WebSocket signaling).
        Websocket => "websocket",
        /// A WHIP publisher (a bridge point's hardware encoder).
        Whip => "whip",
    }
}

/// The quorum for decisions: `numerator / denominator` of the committee's
/// members present (two thirds by default, see `notes/meeting-rules.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumRule {
    pub numerator: u32,
    pub denominator: u32,
    /// The committee's size when set; `None`: the meeting's invitations with
    /// role chair or member, revoked ones excluded.
    pub committee_members: Option<u32>,
}

impl Default for QuorumRule {
    fn default() -> QuorumRule {
        QuorumRule {
            numerator: 2,
            denominator: 3,
            committee_members: None,
        }
    }
}

impl QuorumRule {
    /// Members needed for `committee` members: `ceil(committee * n / d)`
    /// (a denominator of 0 is read as 1).
    pub fn needed(&self, committee: u32) -> u32 {
        let d = u64::from(self.denominator.max(1));
        let v = (u64::from(committee) * u64::from(self.numerator)).div_ceil(d);
        u32::try_from(v).unwrap_or(u32::MAX)
    }
}

/// A meeting's attendance ([`crate::Store::attendance`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceReport {
    pub meeting_id: String,
    /// Chair, member, secretary, bridge, delegate, observer, then by name.
    pub rows: Vec<AttendanceRow>,
    pub summary: AttendanceSummary,
}

/// One invitation's attendance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceRow {
    pub invitation_id: String,
    pub name: String,
    pub role: crate::Role,
    /// The bridge point's name, if the invitation is for one.
    pub unit: Option<String>,
    pub level: Option<BridgeLevel>,
    /// Connected now, or marked present in the hall.
    pub present: bool,
    pub mark: Option<AttendanceMark>,
    /// The mark's note (empty without a mark).
    pub note: String,
    /// The presiding leader the point declared on joining.
    pub leader: Option<String>,
    /// How many attend in its room, as declared.
    pub attendees: Option<u32>,
    /// The invitee's answer before the meeting.
    pub answer: Option<crate::AnswerKind>,
    /// Oldest first.
    pub intervals: Vec<AttendanceInterval>,
    pub first_joined_at: Option<i64>,
    /// Seconds connected (overlapping sessions counted once; an open
    /// interval counts up to the report's time).
    pub present_seconds: i64,
    /// Whether the invitation was revoked (kept in the table only when it
    /// was connected before; not counted in the summary).
    pub revoked: bool,
}

/// One live session of an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceInterval {
    pub joined_at: i64,
    /// `None` while connected.
    pub left_at: Option<i64>,
    pub via: AttendanceVia,
}

/// The figures of a meeting's attendance (revoked invitations excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceSummary {
    /// Invitations not revoked.
    pub expected: u32,
    pub present: u32,
    /// Neither present nor excused.
    pub absent: u32,
    /// Marked excused and not present.
    pub excused: u32,
    /// The committee's size ([`QuorumRule::committee_members`]).
    pub committee_members: u32,
    /// Invitations with role chair or member that are present.
    pub members_present: u32,
    /// [`QuorumRule::needed`] of `committee_members`.
    pub quorum_needed: u32,
    /// At least `quorum_needed` members present (never with no committee).
    pub quorum_met: bool,
    /// The sum of the declared attendees.
    pub attendees_declared: u32,
}

// ---------------------------------------------------------------------------
// Live votes (issue 21): see `votes` for the storage and `votes::rules` for
// how a result is decided.

text_enum! {
    /// How a poll's result is decided ([`crate::decide`]).
    VoteRule, "vote rule" {
        /// More than half of ALL the committee's members vote for; on a tie
        /// (exactly half for), the chair's side wins. The law's default.
        AllMembersMajority => "all_members_majority",
        /// More than half of the members present vote for; same tie rule.
        PresentMajority => "present_majority",
        /// At least two thirds of all members vote for; no tie rule.
        TwoThirdsAll => "two_thirds_all",
    }
}

text_enum! {
    /// A voter's choice: "tán thành", "không tán thành", "không biểu quyết".
    Choice, "choice" {
        For => "for",
        Against => "against",
        Abstain => "abstain",
    }
}

text_enum! {
    /// Whether a poll takes ballots.
    PollStatus, "poll status" {
        Open => "open",
        /// Its outcome is stored and never changes.
        Closed => "closed",
    }
}

/// Ballots counted per choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    #[serde(rename = "for")]
    pub for_: u32,
    pub against: u32,
    pub abstain: u32,
}

impl Tally {
    /// Ballots cast (saturating).
    pub fn total(&self) -> u32 {
        self.for_
            .saturating_add(self.against)
            .saturating_add(self.abstain)
    }
}

/// How a poll's result was reached ([`crate::decide`]): stored as JSON with
/// the poll when it closes, never changed afterwards. Counts only: it names
/// no voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub rule: VoteRule,
    pub tally: Tally,
    /// Ballots cast.
    pub voted: u32,
    /// Eligible voters when the poll opened.
    pub eligible: u32,
    /// The base of the "all members" rules (the committee's size).
    pub committee_members: u32,
    /// Members present at close (attendance).
    pub present_members: u32,
    /// The number the rule divides: `committee_members` or `present_members`.
    pub base: u32,
    /// "For" votes needed to pass.
    pub needed: u32,
    /// Members who must be present: `ceil(committee_members * num / den)`.
    pub quorum_needed: u32,
    pub quorum_met: bool,
    /// The result came from the chair's side on a tie (exactly half of the
    /// base for, the chair voting for or against). Never for secret polls:
    /// their chair's choice is not known.
    pub tie_broken_by_chair: bool,
    pub passed: bool,
}

/// A vote on a question of a meeting (named or secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poll {
    pub id: String,
    pub meeting_id: String,
    pub agenda_item_id: Option<String>,
    pub question: String,
    /// Secret: who voted is stored apart from what was voted (counters).
    pub secret: bool,
    pub rule: VoteRule,
    /// The roles that may vote.
    pub voter_roles: Vec<crate::Role>,
    pub status: PollStatus,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// Eligible voters when it opened.
    pub eligible: u32,
    /// Ballots cast so far.
    pub voted: u32,
    /// Set when it closes.
    pub outcome: Option<Outcome>,
}

/// What [`crate::Store::open_poll`] needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPoll {
    /// An agenda item of the same meeting, if the poll is on one.
    pub agenda_item_id: Option<String>,
    /// 1 to [`crate::MAX_POLL_QUESTION`] characters.
    pub question: String,
    pub secret: bool,
    pub rule: VoteRule,
    /// Empty: chair and member.
    pub voter_roles: Vec<crate::Role>,
}
