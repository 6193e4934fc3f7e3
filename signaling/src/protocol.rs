//! The typed WebSocket protocol of `docs/protocol.md` (the contract):
//! - [`ErrorCode`]: the stable error codes, shared with the REST API
//!   ([`crate::api::ApiError`]) and the web client's catalogue;
//! - [`ClientMsg`] and [`parse`], the one parser of a client's text frame,
//!   used by the session ([`crate::session`]), the fuzz target
//!   ([`crate::fuzzing`], through [`check_client_message`]) and the metrics
//!   ([`crate::metrics`], by [`ClientType`]);
//! - [`ServerMsg`]: every message the server sends: the session's answers
//!   and the meeting's events of the hub, the REST API and the TURN refresh.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hub::{ParticipantInfo, TrackInfo};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// A stable, machine-readable error code: the `code` of a WebSocket
        /// `error` message and of a REST error body `{"code", "message"}`.
        /// The strings never change (clients and the web client's catalogue,
        /// `web/assets/i18n.js` `error.<code>`, key on them).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in a stable order (for tests, docs and metrics).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    // ---- the WebSocket envelope and session ----
    /// The frame is not a JSON object.
    BadJson = "bad_json",
    /// `type` is missing or not a client message type.
    UnknownType = "unknown_type",
    /// The body of a known type is invalid.
    BadRequest = "bad_request",
    MessageTooLarge = "message_too_large",
    BinaryNotSupported = "binary_not_supported",
    RateLimited = "rate_limited",
    HelloRequired = "hello_required",
    UnsupportedVersion = "unsupported_version",
    NotJoined = "not_joined",
    AlreadyJoined = "already_joined",
    ResumeFailed = "resume_failed",
    JoinTimeout = "join_timeout",
    /// Refused before the WebSocket upgrade: the address has its cap.
    TooManyConnections = "too_many_connections",
    /// Refused before the WebSocket upgrade: the server has its cap.
    ServerBusy = "server_busy",
    // ---- invitations (WebSocket `join`, REST, WHIP/WHEP) ----
    TokenInvalid = "token_invalid",
    TokenExpired = "token_expired",
    TokenWrongMeeting = "token_wrong_meeting",
    TokenRevoked = "token_revoked",
    MeetingNotFound = "meeting_not_found",
    MeetingClosed = "meeting_closed",
    /// The chair locked the meeting: no new participant enters.
    MeetingLocked = "meeting_locked",
    /// The chair removed this invitation's participant from the live meeting.
    RemovedFromMeeting = "removed_from_meeting",
    /// The meeting is hosted by another node of the cluster.
    MeetingElsewhere = "meeting_elsewhere",
    /// The meeting has not started (a WHIP encoder cannot wait for it).
    MeetingNotStarted = "meeting_not_started",
    // ---- live meeting control ----
    /// The participant named is not in the meeting (now).
    NotInMeeting = "not_in_meeting",
    /// The participant named has no raised hand.
    NoHand = "no_hand",
    // ---- votes ----
    /// No such poll in this meeting.
    PollNotFound = "poll_not_found",
    /// Another poll of the meeting is open (close it first).
    PollOpen = "poll_open",
    /// The poll is closed: no more ballots.
    PollClosed = "poll_closed",
    /// This participant's role does not vote in this poll.
    NotEligible = "not_eligible",
    /// This invitation has voted in this poll already (one ballot each).
    AlreadyVoted = "already_voted",
    // ---- presenting documents ----
    /// The document is not one of the current agenda item's.
    NotCurrentItem = "not_current_item",
    /// Only the presenter (or the chair or secretary) turns its pages or
    /// stops it; nothing is presented now.
    NotPresenter = "not_presenter",
    // ---- media (WebSocket and WHIP/WHEP) ----
    BadSdp = "bad_sdp",
    NegotiationFailed = "negotiation_failed",
    BadCandidate = "bad_candidate",
    UnknownTrack = "unknown_track",
    TooManyMedia = "too_many_media",
    MediaUnavailable = "media_unavailable",
    IceRestartUnsupported = "ice_restart_unsupported",
    SessionNotFound = "session_not_found",
    TooManyPlayers = "too_many_players",
    TooManyViewers = "too_many_viewers",
    EtagMismatch = "etag_mismatch",
    // ---- shared ----
    Forbidden = "forbidden",
    Internal = "internal",
    // ---- the REST API ----
    Unauthorized = "unauthorized",
    BadCredentials = "bad_credentials",
    WrongPassword = "wrong_password",
    TooManyAttempts = "too_many_attempts",
    Busy = "busy",
    InvalidJson = "invalid_json",
    BadBody = "bad_body",
    BadQuery = "bad_query",
    BadMultipart = "bad_multipart",
    BodyTooLarge = "body_too_large",
    TooLarge = "too_large",
    UploadTooLarge = "upload_too_large",
    UnsupportedMediaType = "unsupported_media_type",
    UnsupportedDocumentType = "unsupported_document_type",
    MissingFile = "missing_file",
    EmptyFile = "empty_file",
    InvalidInput = "invalid_input",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    IdempotencyKeyReused = "idempotency_key_reused",
    Conflict = "conflict",
    InvalidTransition = "invalid_transition",
    MeetingFrozen = "meeting_frozen",
    LevelRetired = "level_retired",
    DocumentWithdrawn = "document_withdrawn",
    ImportInvalid = "import_invalid",
    ImportDuplicates = "import_duplicates",
    NotFound = "not_found",
    InvitationNotFound = "invitation_not_found",
    BridgePointNotFound = "bridge_point_not_found",
    ParticipantNotFound = "participant_not_found",
    AgendaItemNotFound = "agenda_item_not_found",
    DocumentNotFound = "document_not_found",
    VersionNotFound = "version_not_found",
    UserNotFound = "user_not_found",
}

impl ErrorCode {
    /// The code of this wire string, if it is one.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl From<&crate::auth::TokenError> for ErrorCode {
    fn from(e: &crate::auth::TokenError) -> ErrorCode {
        use crate::auth::TokenError as T;
        match e {
            T::Invalid => ErrorCode::TokenInvalid,
            T::Expired => ErrorCode::TokenExpired,
            T::WrongMeeting => ErrorCode::TokenWrongMeeting,
            T::Revoked => ErrorCode::TokenRevoked,
            T::MeetingNotFound => ErrorCode::MeetingNotFound,
            T::MeetingClosed => ErrorCode::MeetingClosed,
            T::Internal => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer to a request: a code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub code: ErrorCode,
    pub message: String,
}

impl Fail {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Fail {
        Fail::new(ErrorCode::BadRequest, message)
    }
}

macro_rules! client_types {
    ($($variant:ident = $text:literal,)*) => {
        /// The `type` of a client message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ClientType {
            $($variant,)*
        }

        impl ClientType {
            /// Every client message type, in a stable order (the metrics'
            /// labels).
            pub const ALL: &'static [ClientType] = &[$(ClientType::$variant,)*];

            /// The type on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ClientType::$variant => $text,)*
                }
            }
        }
    };
}

client_types! {
    Hello = "hello",
    Join = "join",
    Resume = "resume",
    IceRestart = "ice_restart",
    Publish = "publish",
    SubscriberAnswer = "subscriber_answer",
    Candidate = "candidate",
    SetQuality = "set_quality",
    Mute = "mute",
    Ping = "ping",
    LinkReport = "link_report",
    Leave = "leave",
    RaiseHand = "raise_hand",
    LowerHand = "lower_hand",
    GiveFloor = "give_floor",
    TakeFloor = "take_floor",
    ClearHand = "clear_hand",
    MuteParticipant = "mute_participant",
    MuteAll = "mute_all",
    LockMeeting = "lock_meeting",
    RemoveParticipant = "remove_participant",
    SetCurrentItem = "set_current_item",
    StartMeeting = "start_meeting",
    EndMeeting = "end_meeting",
    DeclareAttendance = "declare_attendance",
    OpenVote = "open_vote",
    CastVote = "cast_vote",
    CloseVote = "close_vote",
    PresentDocument = "present_document",
    PresentPage = "present_page",
    StopPresenting = "stop_presenting",
    AllowPresenting = "allow_presenting",
}

impl ClientType {
    /// Whether the message's `participant_id` names another participant
    /// (the one the chair acts on) rather than the sender.
    pub fn targets_other(self) -> bool {
        matches!(
            self,
            ClientType::GiveFloor
                | ClientType::ClearHand
                | ClientType::MuteParticipant
                | ClientType::RemoveParticipant
        )
    }

    /// The type of this wire string, if it is one.
    pub fn parse(s: &str) -> Option<ClientType> {
        ClientType::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

/// A client message: the body of a request of each type (docs/protocol.md).
/// The JSON object's `type` is the tag; its `id` is the [`Request`]'s.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Hello(HelloReq),
    Join(JoinReq),
    Resume(ResumeReq),
    IceRestart(NoFields),
    Publish(SdpReq),
    SubscriberAnswer(SdpReq),
    Candidate(CandidateReq),
    SetQuality(SetQualityReq),
    Mute(MuteReq),
    Ping(PingReq),
    /// A client's figures of its link, for the operator's dashboard.
    LinkReport(crate::linkstats::LinkReportReq),
    Leave(NoFields),
    RaiseHand(RaiseHandReq),
    LowerHand(NoFields),
    GiveFloor(TargetReq),
    TakeFloor(NoFields),
    ClearHand(TargetReq),
    MuteParticipant(MuteParticipantReq),
    MuteAll(NoFields),
    LockMeeting(LockReq),
    RemoveParticipant(RemoveReq),
    SetCurrentItem(CurrentItemReq),
    StartMeeting(NoFields),
    EndMeeting(NoFields),
    DeclareAttendance(DeclareAttendanceReq),
    OpenVote(OpenVoteReq),
    CastVote(CastVoteReq),
    CloseVote(PollReq),
    PresentDocument(PresentDocumentReq),
    PresentPage(PresentPageReq),
    StopPresenting(NoFields),
    AllowPresenting(AllowPresentingReq),
}

impl ClientMsg {
    pub fn kind(&self) -> ClientType {
        match self {
            ClientMsg::Hello(_) => ClientType::Hello,
            ClientMsg::Join(_) => ClientType::Join,
            ClientMsg::Resume(_) => ClientType::Resume,
            ClientMsg::IceRestart(_) => ClientType::IceRestart,
            ClientMsg::Publish(_) => ClientType::Publish,
            ClientMsg::SubscriberAnswer(_) => ClientType::SubscriberAnswer,
            ClientMsg::Candidate(_) => ClientType::Candidate,
            ClientMsg::SetQuality(_) => ClientType::SetQuality,
            ClientMsg::Mute(_) => ClientType::Mute,
            ClientMsg::Ping(_) => ClientType::Ping,
            ClientMsg::LinkReport(_) => ClientType::LinkReport,
            ClientMsg::Leave(_) => ClientType::Leave,
            ClientMsg::RaiseHand(_) => ClientType::RaiseHand,
            ClientMsg::LowerHand(_) => ClientType::LowerHand,
            ClientMsg::GiveFloor(_) => ClientType::GiveFloor,
            ClientMsg::TakeFloor(_) => ClientType::TakeFloor,
            ClientMsg::ClearHand(_) => ClientType::ClearHand,
            ClientMsg::MuteParticipant(_) => ClientType::MuteParticipant,
            ClientMsg::MuteAll(_) => ClientType::MuteAll,
            ClientMsg::LockMeeting(_) => ClientType::LockMeeting,
            ClientMsg::RemoveParticipant(_) => ClientType::RemoveParticipant,
            ClientMsg::SetCurrentItem(_) => ClientType::SetCurrentItem,
            ClientMsg::StartMeeting(_) => ClientType::StartMeeting,
            ClientMsg::EndMeeting(_) => ClientType::EndMeeting,
            ClientMsg::DeclareAttendance(_) => ClientType::DeclareAttendance,
            ClientMsg::OpenVote(_) => ClientType::OpenVote,
            ClientMsg::CastVote(_) => ClientType::CastVote,
            ClientMsg::CloseVote(_) => ClientType::CloseVote,
            ClientMsg::PresentDocument(_) => ClientType::PresentDocument,
            ClientMsg::PresentPage(_) => ClientType::PresentPage,
            ClientMsg::StopPresenting(_) => ClientType::StopPresenting,
            ClientMsg::AllowPresenting(_) => ClientType::AllowPresenting,
        }
    }

    /// The checks of the body beyond its JSON shape (the session makes the
    /// same ones where it acts on the message).
    pub fn check(&self) -> Result<(), Fail> {
        match self {
            ClientMsg::LinkReport(r) => r.checked().map(drop),
            ClientMsg::Candidate(c) => c.pc().map(drop),
            ClientMsg::SetQuality(q) => q.checked().map(drop),
            ClientMsg::Mute(m) => m.media_kind().map(drop),
            ClientMsg::MuteParticipant(m) => m.media_kind().map(drop),
            ClientMsg::RemoveParticipant(r) => r.checked_reason().map(drop),
            ClientMsg::DeclareAttendance(d) => d.checked().map(drop),
            ClientMsg::RaiseHand(h) => h.hand_kind().map(drop),
            ClientMsg::OpenVote(v) => v.checked().map(drop),
            ClientMsg::CastVote(v) => v.choice().map(drop),
            ClientMsg::PresentDocument(p) => p.checked().map(drop),
            ClientMsg::PresentPage(p) => p.checked().map(drop),
            _ => Ok(()),
        }
    }
}

/// A message type without fields (besides `type` and `id`).
#[derive(Debug, Deserialize)]
pub struct NoFields {}

#[derive(Debug, Deserialize)]
pub struct HelloReq {
    pub version: u64,
}

#[derive(Debug, Deserialize)]
pub struct JoinReq {
    pub token: String,
    #[serde(default)]
    pub meeting_id: Option<String>,
    /// How the subscriber connection carries the others' media: `tracks`
    /// (the default: a track per published track) or `slots`.
    #[serde(default)]
    pub receive: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResumeReq {
    pub resume_token: String,
    /// Messages of the session the client has received (0 if it counts none).
    #[serde(default)]
    pub received: u64,
    #[serde(default)]
    pub meeting_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SdpReq {
    pub sdp: String,
}

#[derive(Debug, Deserialize)]
pub struct CandidateInit {
    #[serde(default)]
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, rename = "usernameFragment")]
    pub username_fragment: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CandidateReq {
    pub pc: String,
    pub candidate: CandidateInit,
}

impl CandidateReq {
    /// The connection the candidate is for.
    pub fn pc(&self) -> Result<sfu::PcKind, Fail> {
        match self.pc.as_str() {
            "publisher" => Ok(sfu::PcKind::Publisher),
            "subscriber" => Ok(sfu::PcKind::Subscriber),
            _ => Err(Fail::bad_request("pc must be publisher or subscriber")),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SetQualityReq {
    /// One track, or ...
    pub track_id: Option<String>,
    /// ... many at once (a grid that changes size says it in one message).
    pub track_ids: Option<Vec<String>>,
    pub quality: String,
}

/// Most tracks one `set_quality` may name (a meeting of 100 bridge points
/// has about 200 video tracks).
pub const MAX_QUALITY_TRACKS: usize = 1000;

/// What a `set_quality` names.
pub enum Tracks {
    One(String),
    Many(Vec<String>),
}

impl SetQualityReq {
    /// The quality and the tracks it names, checked: exactly one of
    /// `track_id` and `track_ids`, the list neither empty nor too long.
    pub fn checked(&self) -> Result<(sfu::Quality, Tracks), Fail> {
        let quality = sfu::Quality::parse(&self.quality)
            .ok_or_else(|| Fail::bad_request("quality must be off, low, medium or high"))?;
        let tracks = match (&self.track_id, &self.track_ids) {
            (Some(one), None) => Tracks::One(one.clone()),
            (None, Some(many)) if many.is_empty() => {
                return Err(Fail::bad_request("track_ids is empty"));
            }
            (None, Some(many)) if many.len() > MAX_QUALITY_TRACKS => {
                return Err(Fail::bad_request(format!(
                    "track_ids names more than {MAX_QUALITY_TRACKS} tracks"
                )));
            }
            (None, Some(many)) => Tracks::Many(many.clone()),
            _ => return Err(Fail::bad_request("give either track_id or track_ids")),
        };
        Ok((quality, tracks))
    }
}

#[derive(Debug, Deserialize)]
pub struct MuteReq {
    pub kind: String,
    pub muted: bool,
}

impl MuteReq {
    /// `audio` or `video`.
    pub fn media_kind(&self) -> Result<&'static str, Fail> {
        match self.kind.as_str() {
            "audio" => Ok("audio"),
            "video" => Ok("video"),
            _ => Err(Fail::bad_request("kind must be audio or video")),
        }
    }
}

/// What a raised hand asks for ("đăng ký phát biểu").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandKind {
    /// To speak (phát biểu).
    Speak,
    /// To ask a question (chất vấn).
    Question,
    /// A point of order (kiến nghị về thủ tục).
    PointOfOrder,
}

impl HandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HandKind::Speak => "speak",
            HandKind::Question => "question",
            HandKind::PointOfOrder => "point_of_order",
        }
    }
}

/// `raise_hand`: `kind` is `speak` (the default), `question` or
/// `point_of_order`.
#[derive(Debug, Deserialize)]
pub struct RaiseHandReq {
    #[serde(default)]
    pub kind: Option<String>,
}

impl RaiseHandReq {
    pub fn hand_kind(&self) -> Result<HandKind, Fail> {
        match self.kind.as_deref() {
            None | Some("speak") => Ok(HandKind::Speak),
            Some("question") => Ok(HandKind::Question),
            Some("point_of_order") => Ok(HandKind::PointOfOrder),
            Some(_) => Err(Fail::bad_request(
                "kind must be speak, question or point_of_order",
            )),
        }
    }
}

/// A chair's action on another participant (`give_floor`, `clear_hand`).
#[derive(Debug, Deserialize)]
pub struct TargetReq {
    pub participant_id: String,
}

/// `mute_participant`: the chair blocks (or unblocks) a participant's
/// audio or video in the media plane.
#[derive(Debug, Deserialize)]
pub struct MuteParticipantReq {
    pub participant_id: String,
    pub kind: String,
    pub muted: bool,
}

impl MuteParticipantReq {
    /// `audio` or `video`.
    pub fn media_kind(&self) -> Result<sfu::MediaKind, Fail> {
        match self.kind.as_str() {
            "audio" => Ok(sfu::MediaKind::Audio),
            "video" => Ok(sfu::MediaKind::Video),
            _ => Err(Fail::bad_request("kind must be audio or video")),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LockReq {
    pub locked: bool,
}

/// Longest reason for removing a participant, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// `remove_participant`: who and why (the reason is recorded).
#[derive(Debug, Deserialize)]
pub struct RemoveReq {
    pub participant_id: String,
    pub reason: String,
}

impl RemoveReq {
    /// The reason, trimmed: 1 to [`MAX_REASON_CHARS`] characters.
    pub fn checked_reason(&self) -> Result<&str, Fail> {
        let r = self.reason.trim();
        if r.is_empty() {
            return Err(Fail::bad_request("a reason is required"));
        }
        if r.chars().count() > MAX_REASON_CHARS {
            return Err(Fail::bad_request(format!(
                "the reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
        Ok(r)
    }
}

/// `set_current_item`: an agenda item of the meeting, or null for none.
#[derive(Debug, Deserialize)]
pub struct CurrentItemReq {
    pub item_id: Option<String>,
}

/// Longest name of a bridge point's presiding leader, in characters.
pub const MAX_LEADER_CHARS: usize = 200;
/// Most attendees a bridge point may declare.
pub const MAX_ATTENDEES: u32 = 10_000;

/// `declare_attendance`: a bridge point's presiding leader and how many
/// attend there.
#[derive(Debug, Deserialize)]
pub struct DeclareAttendanceReq {
    pub leader: String,
    pub attendees: u32,
}

impl DeclareAttendanceReq {
    /// The leader, trimmed, and the number of attendees, checked.
    pub fn checked(&self) -> Result<(&str, u32), Fail> {
        let leader = self.leader.trim();
        if leader.is_empty() || leader.chars().count() > MAX_LEADER_CHARS {
            return Err(Fail::bad_request(format!(
                "leader must be 1 to {MAX_LEADER_CHARS} characters"
            )));
        }
        if self.attendees > MAX_ATTENDEES {
            return Err(Fail::bad_request(format!(
                "attendees must be at most {MAX_ATTENDEES}"
            )));
        }
        Ok((leader, self.attendees))
    }
}

/// Longest question of a vote, in characters.
pub const MAX_QUESTION_CHARS: usize = 1000;

/// `open_vote`: the chair (or secretary) puts a question to the vote.
#[derive(Debug, Deserialize)]
pub struct OpenVoteReq {
    pub question: String,
    /// The agenda item it decides, if any.
    #[serde(default)]
    pub item_id: Option<String>,
    /// A secret ballot (nobody, the database included, links a voter to a
    /// choice); default named.
    #[serde(default)]
    pub secret: bool,
    /// `all_members_majority` (the default), `present_majority`,
    /// `two_thirds_all`.
    #[serde(default)]
    pub rule: Option<String>,
    /// The invitation roles that vote (default `["chair", "member"]`).
    #[serde(default)]
    pub voters: Option<Vec<String>>,
}

/// An `open_vote`, checked.
#[derive(Debug, Clone)]
pub struct CheckedVote {
    pub question: String,
    pub rule: cabinet::VoteRule,
    pub voters: Vec<cabinet::Role>,
}

impl OpenVoteReq {
    pub fn checked(&self) -> Result<CheckedVote, Fail> {
        let question = self.question.trim();
        if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
            return Err(Fail::bad_request(format!(
                "question must be 1 to {MAX_QUESTION_CHARS} characters"
            )));
        }
        let rule = match self.rule.as_deref() {
            None => cabinet::VoteRule::AllMembersMajority,
            Some(r) => r.parse().map_err(|_| {
                Fail::bad_request(
                    "rule must be all_members_majority, present_majority or two_thirds_all",
                )
            })?,
        };
        let voters = match &self.voters {
            None => vec![cabinet::Role::Chair, cabinet::Role::Member],
            Some(list) => {
                let mut roles = Vec::new();
                for r in list {
                    let role: cabinet::Role = r
                        .parse()
                        .map_err(|_| Fail::bad_request(format!("unknown role {r:?} in voters")))?;
                    if matches!(role, cabinet::Role::Observer | cabinet::Role::Secretary) {
                        return Err(Fail::bad_request(format!("the role {r} does not vote")));
                    }
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
                if roles.is_empty() {
                    return Err(Fail::bad_request("voters must name at least one role"));
                }
                roles
            }
        };
        Ok(CheckedVote {
            question: question.to_owned(),
            rule,
            voters,
        })
    }
}

/// `cast_vote`: one ballot.
#[derive(Debug, Deserialize)]
pub struct CastVoteReq {
    pub poll_id: String,
    /// `for` (tán thành), `against` (không tán thành), `abstain` (không
    /// biểu quyết).
    pub choice: String,
}

impl CastVoteReq {
    pub fn choice(&self) -> Result<cabinet::Choice, Fail> {
        self.choice
            .parse()
            .map_err(|_| Fail::bad_request("choice must be for, against or abstain"))
    }
}

/// A message naming a poll (`close_vote`).
#[derive(Debug, Deserialize)]
pub struct PollReq {
    pub poll_id: String,
}

/// Highest page number a presentation may name (the presenter's viewer
/// keeps it within the document's own pages).
pub const MAX_PAGE: u32 = 100_000;
/// Smallest and largest zoom of a presentation, in percent.
pub const ZOOM_PERCENT: std::ops::RangeInclusive<u32> = 25..=400;

fn checked_view(page: Option<u32>, zoom_percent: Option<u32>) -> Result<(u32, u32), Fail> {
    let page = page.unwrap_or(1);
    if page == 0 || page > MAX_PAGE {
        return Err(Fail::bad_request(format!("page must be 1 to {MAX_PAGE}")));
    }
    let zoom = zoom_percent.unwrap_or(100);
    if !ZOOM_PERCENT.contains(&zoom) {
        return Err(Fail::bad_request(format!(
            "zoom_percent must be {} to {}",
            ZOOM_PERCENT.start(),
            ZOOM_PERCENT.end()
        )));
    }
    Ok((page, zoom))
}

/// `present_document`: show a document of the current agenda item to
/// everyone, at `page` (default 1) and `zoom_percent` (default 100).
#[derive(Debug, Deserialize)]
pub struct PresentDocumentReq {
    pub document_id: String,
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub zoom_percent: Option<u32>,
}

impl PresentDocumentReq {
    /// The page and zoom, checked.
    pub fn checked(&self) -> Result<(u32, u32), Fail> {
        checked_view(self.page, self.zoom_percent)
    }
}

/// `present_page`: the presenter turns to `page` (and zooms).
#[derive(Debug, Deserialize)]
pub struct PresentPageReq {
    pub page: u32,
    /// Unchanged when missing.
    #[serde(default)]
    pub zoom_percent: Option<u32>,
}

impl PresentPageReq {
    /// The page, and the zoom if given, checked.
    pub fn checked(&self) -> Result<(u32, Option<u32>), Fail> {
        let (page, zoom) = checked_view(Some(self.page), self.zoom_percent)?;
        Ok((page, self.zoom_percent.map(|_| zoom)))
    }
}

/// `allow_presenting`: whether the participant holding the floor may
/// present a document (the chair and the secretary always may).
#[derive(Debug, Deserialize)]
pub struct AllowPresentingReq {
    pub allowed: bool,
}

/// `ping`: any field may be missing or of another type (a ping is never
/// refused for its body).
#[derive(Debug, Deserialize)]
pub struct PingReq {
    /// Echoed in the `pong` as it came (null included).
    #[serde(default, deserialize_with = "present")]
    pub ts: Option<Value>,
    /// How many messages of the session the client has received.
    #[serde(default)]
    pub received: Value,
}

/// A field that is present, whatever its value (null included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl PingReq {
    pub fn received(&self) -> Option<u64> {
        self.received.as_u64()
    }
}

/// A client's text frame, parsed: its envelope, and its body as the message
/// of its type (or why the body is refused).
#[derive(Debug)]
pub struct Request {
    /// The request's `id`, echoed in its answer.
    pub id: Option<Value>,
    pub kind: ClientType,
    /// The body's `participant_id`, if it has one: a participant acts only
    /// for itself.
    pub participant_id: Option<Value>,
    /// The permission the message needs once joined
    /// ([`crate::permissions::for_client_message`]).
    pub needs: Option<crate::permissions::Permission>,
    /// The body, or why it is refused (`bad_request`). The session checks
    /// `hello`, the join state and the permission first.
    pub msg: Result<ClientMsg, Fail>,
}

/// Parses a client's text frame: the one parser of the session, the fuzz
/// target and the metrics. An envelope that cannot be read is an error with
/// the request's id when it could be read: `bad_json`, `bad_request` (a bad
/// `id`), `unknown_type`.
pub fn parse(text: &str) -> Result<Request, (Option<Value>, Fail)> {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        (
            None,
            Fail::new(ErrorCode::BadJson, "the message is not valid JSON"),
        )
    })?;
    let Value::Object(mut body) = v else {
        return Err((
            None,
            Fail::new(ErrorCode::BadJson, "the message is not a JSON object"),
        ));
    };
    let id = match body.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(Value::Number(n)),
        Some(Value::String(s)) if s.chars().count() <= 64 => Some(Value::String(s)),
        Some(_) => {
            return Err((
                None,
                Fail::bad_request("id must be a number or a string of at most 64 characters"),
            ))
        }
    };
    let kind = match body.get("type") {
        Some(Value::String(t)) => ClientType::parse(t),
        _ => None,
    };
    let Some(kind) = kind else {
        return Err((
            id,
            Fail::new(ErrorCode::UnknownType, "type is missing or unknown"),
        ));
    };
    // A chair's action names its target in `participant_id`; any other
    // message naming one names its sender.
    let participant_id = if kind.targets_other() {
        None
    } else {
        body.get("participant_id").cloned()
    };
    let pc = body.get("pc").and_then(Value::as_str);
    let needs = crate::permissions::for_client_message(kind, pc);
    let msg = serde_json::from_value::<ClientMsg>(Value::Object(body))
        .map_err(|e| Fail::bad_request(format!("invalid request: {e}")));
    Ok(Request {
        id,
        kind,
        participant_id,
        needs,
        msg,
    })
}

/// Parses and checks a client's text frame as the session does before it
/// acts on it: the type, or the error code the client would get (before
/// `hello`, the join and the permission). For the fuzz target.
pub fn check_client_message(text: &str) -> Result<ClientType, ErrorCode> {
    let req = parse(text).map_err(|(_, f)| f.code)?;
    let msg = req.msg.map_err(|f| f.code)?;
    msg.check().map_err(|f| f.code)?;
    Ok(req.kind)
}

/// A server message (docs/protocol.md): the session's answers, the
/// meeting's events (the hub's, the REST API's `agenda_changed`) and the
/// TURN refresh. The JSON object's `type` is the tag; the answered
/// request's `id` is added by [`ServerMsg::to_text`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to `join`.
    Joined {
        participant: ParticipantInfo,
        meeting: MeetingRef,
        participants: Vec<ParticipantInfo>,
        tracks: Vec<TrackInfo>,
        /// `tracks` or `slots`.
        receive: &'static str,
        resume_token: String,
        /// `ice_servers` and `ice_transport_policy` ([`crate::turn::ice_fields`]).
        #[serde(flatten)]
        ice: IceFields,
        /// The live meeting's state (as `meeting_state` has it).
        state: LiveStateMsg,
    },
    /// The answer to `resume`.
    Resumed {
        participant: Option<ParticipantInfo>,
        meeting: MeetingRef,
        resume_token: String,
        /// How many missed messages follow.
        replayed: usize,
    },
    /// The answer to `hello`.
    Hello {
        version: u64,
        server: &'static str,
        max_message_bytes: usize,
    },
    /// A request done; `set_quality` with a list names the tracks gone.
    Ok {
        #[serde(skip_serializing_if = "Option::is_none")]
        unknown_track_ids: Option<Vec<String>>,
    },
    PublishAnswer {
        sdp: String,
    },
    /// The answer to `ping`, with its `ts` as it came (if it had one).
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        ts: Option<Value>,
    },
    /// The answer to `leave`.
    Bye {},
    Error {
        code: ErrorCode,
        message: String,
    },
    SubscriberOffer {
        sdp: String,
    },
    LayersWanted {
        track_id: String,
        layers: Vec<String>,
    },
    ActiveSpeaker {
        participant_id: String,
    },
    /// The video tracks not received now (`reason`: `last_n`).
    VideoPaused {
        track_ids: Vec<String>,
        reason: &'static str,
    },
    Slots {
        slots: Vec<SlotMsg>,
    },
    /// Another participant entered the meeting.
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    /// `reason`: `left`, `disconnected`, `replaced`, `revoked` or `removed`.
    ParticipantLeft {
        participant_id: String,
        reason: &'static str,
    },
    /// A track is live (its publisher is told too).
    TrackPublished {
        track: TrackInfo,
    },
    TrackUnpublished {
        track_id: String,
        participant_id: String,
    },
    /// A participant muted or unmuted its own `audio` or `video`.
    MuteChanged {
        participant_id: String,
        kind: &'static str,
        muted: bool,
    },
    /// A message of the technical channel from the province's operator
    /// to this point (or to every point), as `GET
    /// /api/meetings/{id}/tech-messages` lists it: pushed when it is sent.
    TechMessage {
        message: Value,
    },
    /// The meeting's agenda or documents changed (through the REST API).
    AgendaChanged {
        meeting_id: String,
    },
    /// The conclusion of agenda item `item_id` changed (through the REST
    /// API); `text` is `null` when it was cleared.
    ConclusionChanged {
        item_id: String,
        text: Option<String>,
    },
    /// Fresh TURN credentials (the same fields as in `joined`).
    IceServers(IceFields),
    /// The answer to `join` before the meeting starts: wait for
    /// `meeting_started`, then join again.
    Waiting {
        meeting: WaitingMeeting,
        agenda: Vec<WaitingItem>,
    },
    /// Pushed to waiting sockets when the chair starts the meeting.
    MeetingStarted {},
    /// The live meeting's state, pushed on every change (and in `joined`).
    MeetingState(LiveStateMsg),
    /// The speaking queue in order, pushed on every change.
    Hands {
        queue: Vec<HandMsg>,
    },
    /// The chair's block of a participant's media changed.
    MediaBlocked {
        participant_id: String,
        audio_blocked: bool,
        video_blocked: bool,
    },
    /// A bridge point declared its presiding leader and attendees (to the
    /// chair and secretary).
    AttendanceDeclared {
        participant_id: String,
        invitation_id: String,
        leader: String,
        attendees: u32,
    },
    /// To a removed participant, before its socket closes.
    Removed {
        reason: String,
    },
    /// A vote opened (to everyone; and after `joined` while one is open,
    /// with whether this participant has voted).
    VoteOpened {
        poll: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        voted: Option<bool>,
    },
    /// Ballots so far (to the chair and the secretary): the voters' names
    /// for a named poll, counts only for a secret one.
    VoteProgress {
        poll_id: String,
        voted: u32,
        eligible: u32,
        voters: Option<Vec<String>>,
    },
    /// A vote closed, with its result (to everyone); it never changes.
    VoteClosed {
        poll: Value,
    },
    /// The document presented now and its page (`null`: none), pushed on
    /// every change and after `joined`.
    Presentation(PresentationStateMsg),
}

/// The body of `presentation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresentationStateMsg {
    pub presentation: Option<PresentationMsg>,
    /// Whether the participant holding the floor may present.
    pub floor_may_present: bool,
}

/// What is presented: the document's version that everyone loads, the
/// page, the zoom and who presents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresentationMsg {
    pub document_id: String,
    pub version: i64,
    pub item_id: String,
    pub title: String,
    pub page: u32,
    pub zoom_percent: u32,
    pub presenter_id: String,
    pub presenter_name: String,
    /// When the presentation began (Unix seconds).
    pub since: i64,
    /// Counts the presentation's changes (a client ignores an older one).
    pub seq: u64,
}

/// The ICE fields of `joined` and `ice_servers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IceFields {
    /// `RTCIceServer`s for both peer connections (empty without TURN).
    pub ice_servers: Vec<IceServer>,
    /// `relay` (media only through TURN) or `all`.
    pub ice_transport_policy: &'static str,
}

/// An `RTCIceServer` with credentials of coturn's REST API scheme.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The meeting of a `waiting` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingMeeting {
    pub id: String,
    pub title: String,
    /// Planned start and end, Unix seconds (null when not set).
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub location: String,
    pub status: &'static str,
}

/// An agenda item of a `waiting` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitingItem {
    pub id: String,
    pub title: String,
    pub position: i64,
}

/// The body of `meeting_state` (and of `joined`'s `state`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveStateMsg {
    /// The meeting's status (`in_progress` once started).
    pub status: &'static str,
    pub locked: bool,
    pub floor: Option<FloorMsg>,
    pub current_item_id: Option<String>,
    /// Bridge points and delegates enter with their audio blocked.
    pub join_muted: bool,
}

/// Who has the floor, since when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorMsg {
    pub participant_id: String,
    pub since: i64,
}

/// A raised hand in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandMsg {
    pub participant_id: String,
    pub name: String,
    pub kind: HandKind,
    /// Unix seconds.
    pub since: i64,
}

/// The meeting in `joined` (id and title) and `resumed` (id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeetingRef {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// One slot of a `slots` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotMsg {
    pub slot: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// What it carries now (both null: nothing).
    pub participant_id: Option<String>,
    pub track_id: Option<String>,
}

impl ServerMsg {
    /// The message as a JSON object, with the answered request's `id` (if
    /// any). The keys come out sorted, as every server message's do.
    pub fn to_value(&self, id: Option<&Value>) -> Value {
        let mut v = match serde_json::to_value(self) {
            Ok(v) => v,
            // Not reached: these types always serialize to an object.
            Err(e) => {
                tracing::error!(error = %e, "a server message did not serialize");
                serde_json::json!({"type": "error", "code": ErrorCode::Internal, "message": "internal error"})
            }
        };
        if let (Some(id), Value::Object(o)) = (id, &mut v) {
            o.insert("id".to_owned(), id.clone());
        }
        v
    }

    /// The message's text on the wire.
    pub fn to_text(&self, id: Option<&Value>) -> String {
        self.to_value(id).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes() {
        let e = parse(r#"{"type":"ping","id":5,"ts":1}"#).expect("parses");
        assert_eq!(e.kind, ClientType::Ping);
        assert!(e.msg.is_ok());
        assert_eq!(e.id, Some(json!(5)));
        let code = |t: &str| parse(t).err().map(|(_, f)| f.code.as_str());
        assert_eq!(code("nope"), Some("bad_json"));
        assert_eq!(code("[1]"), Some("bad_json"));
        assert_eq!(code(r#"{"id":1}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":"dance"}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":5}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":"ping","id":[1]}"#), Some("bad_request"));
        let long = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
        assert_eq!(code(&long), Some("bad_request"));
        // the id of an unknown type is kept for the error answer
        let (id, _) = parse(r#"{"type":"dance","id":"a"}"#).expect_err("fails");
        assert_eq!(id, Some(json!("a")));
    }

    #[test]
    fn set_quality_names_one_track_or_a_list() {
        let check = |t: &str| check_client_message(t);
        let ok = Ok(ClientType::SetQuality);
        assert_eq!(
            check(r#"{"type":"set_quality","track_id":"t1","quality":"low"}"#),
            ok
        );
        assert_eq!(
            check(r#"{"type":"set_quality","track_ids":["t1","t2"],"quality":"off"}"#),
            ok
        );
        for bad in [
            r#"{"type":"set_quality","quality":"low"}"#,
            r#"{"type":"set_quality","track_id":"t1","track_ids":["t2"],"quality":"low"}"#,
            r#"{"type":"set_quality","track_ids":[],"quality":"low"}"#,
            r#"{"type":"set_quality","track_ids":"t1","quality":"low"}"#,
            r#"{"type":"set_quality","track_ids":["t1"],"quality":"best"}"#,
        ] {
            assert_eq!(check(bad), Err(ErrorCode::BadRequest), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_QUALITY_TRACKS).map(|i| format!("t{i}")).collect();
        let long = json!({"type": "set_quality", "track_ids": many, "quality": "low"});
        assert_eq!(check(&long.to_string()), Err(ErrorCode::BadRequest));
    }

    #[test]
    fn bodies_are_typed_with_the_same_codes() {
        let check = |t: &str| check_client_message(t);
        assert_eq!(
            check(r#"{"type":"hello","version":1}"#),
            Ok(ClientType::Hello)
        );
        assert_eq!(
            check(r#"{"type":"leave","id":3,"x":1}"#),
            Ok(ClientType::Leave)
        );
        assert_eq!(
            check(r#"{"type":"ice_restart"}"#),
            Ok(ClientType::IceRestart)
        );
        assert_eq!(
            check(r#"{"type":"ping","ts":"a","received":"b"}"#),
            Ok(ClientType::Ping)
        );
        for bad in [
            r#"{"type":"hello"}"#,
            r#"{"type":"hello","version":"1"}"#,
            r#"{"type":"join"}"#,
            r#"{"type":"resume","resume_token":5}"#,
            r#"{"type":"publish"}"#,
            r#"{"type":"subscriber_answer","sdp":null}"#,
            r#"{"type":"candidate","pc":"other","candidate":{"candidate":""}}"#,
            r#"{"type":"candidate","pc":"publisher"}"#,
            r#"{"type":"mute","kind":"screen","muted":true}"#,
            r#"{"type":"mute","kind":"audio"}"#,
        ] {
            assert_eq!(check(bad), Err(ErrorCode::BadRequest), "{bad}");
        }
        // A refused body still says its type, the participant it names and
        // the permission it needs (checked before the body).
        let r = parse(r#"{"type":"candidate","pc":"publisher","participant_id":"p-1"}"#)
            .expect("envelope");
        assert_eq!(r.kind, ClientType::Candidate);
        assert_eq!(r.participant_id, Some(json!("p-1")));
        assert_eq!(r.needs, Some(crate::permissions::Permission::Publish));
        assert_eq!(r.msg.err().map(|f| f.code), Some(ErrorCode::BadRequest));
    }

    #[test]
    fn ping_echoes_ts_as_it_came() {
        let ts = |t: &str| match parse(t).ok().and_then(|r| r.msg.ok()) {
            Some(ClientMsg::Ping(p)) => (p.ts.clone(), p.received()),
            _ => panic!("not a ping: {t}"),
        };
        assert_eq!(ts(r#"{"type":"ping"}"#), (None, None));
        assert_eq!(
            ts(r#"{"type":"ping","ts":null}"#),
            (Some(Value::Null), None)
        );
        assert_eq!(
            ts(r#"{"type":"ping","ts":7,"received":3}"#),
            (Some(json!(7)), Some(3))
        );
    }

    #[test]
    fn live_bodies_are_checked() {
        let code = |t: serde_json::Value| check_client_message(&t.to_string()).err();
        assert_eq!(
            code(json!({"type": "raise_hand", "kind": "sing"})),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(code(json!({"type": "raise_hand"})), None);
        assert_eq!(
            code(json!({"type": "remove_participant", "participant_id": "p", "reason": "  "})),
            Some(ErrorCode::BadRequest)
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(
            code(json!({"type": "remove_participant", "participant_id": "p", "reason": long})),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(json!({"type": "declare_attendance", "leader": "A", "attendees": 10_001})),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(json!({"type": "declare_attendance", "leader": "A", "attendees": -1})),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(
                json!({"type": "mute_participant", "participant_id": "p", "kind": "screen", "muted": true})
            ),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(
            code(json!({"type": "give_floor"})),
            Some(ErrorCode::BadRequest)
        );
        // A chair's target is not the sender: not refused as acting for another.
        let r = parse(r#"{"type":"give_floor","participant_id":"p-9"}"#).expect("parses");
        assert_eq!(r.participant_id, None);
        let r = parse(r#"{"type":"mute","participant_id":"p-9","kind":"audio","muted":true}"#)
            .expect("parses");
        assert_eq!(r.participant_id, Some(json!("p-9")));
    }

    #[test]
    fn every_type_parses_to_its_variant() {
        for t in ClientType::ALL {
            assert_eq!(ClientType::parse(t.as_str()), Some(*t));
        }
        let msgs = [
            json!({"type": "hello", "version": 1}),
            json!({"type": "join", "token": "t"}),
            json!({"type": "resume", "resume_token": "r"}),
            json!({"type": "ice_restart"}),
            json!({"type": "publish", "sdp": "v=0"}),
            json!({"type": "subscriber_answer", "sdp": "v=0"}),
            json!({"type": "candidate", "pc": "subscriber", "candidate": {}}),
            json!({"type": "set_quality", "track_id": "t", "quality": "high"}),
            json!({"type": "mute", "kind": "video", "muted": false}),
            json!({"type": "ping"}),
            json!({"type": "link_report", "path": "udp", "rtt_ms": 20}),
            json!({"type": "leave"}),
            json!({"type": "raise_hand", "kind": "question"}),
            json!({"type": "lower_hand"}),
            json!({"type": "give_floor", "participant_id": "p-1"}),
            json!({"type": "take_floor"}),
            json!({"type": "clear_hand", "participant_id": "p-1"}),
            json!({"type": "mute_participant", "participant_id": "p-1", "kind": "audio", "muted": true}),
            json!({"type": "mute_all"}),
            json!({"type": "lock_meeting", "locked": true}),
            json!({"type": "remove_participant", "participant_id": "p-1", "reason": "r"}),
            json!({"type": "set_current_item", "item_id": null}),
            json!({"type": "start_meeting"}),
            json!({"type": "end_meeting"}),
            json!({"type": "declare_attendance", "leader": "Ông A", "attendees": 12}),
            json!({"type": "open_vote", "question": "Q"}),
            json!({"type": "cast_vote", "poll_id": "p", "choice": "abstain"}),
            json!({"type": "close_vote", "poll_id": "p"}),
            json!({"type": "present_document", "document_id": "d", "page": 2, "zoom_percent": 150}),
            json!({"type": "present_page", "page": 3}),
            json!({"type": "stop_presenting"}),
            json!({"type": "allow_presenting", "allowed": true}),
        ];
        assert_eq!(msgs.len(), ClientType::ALL.len());
        for (m, t) in msgs.iter().zip(ClientType::ALL) {
            let r = parse(&m.to_string()).expect("parses");
            assert_eq!(r.kind, *t);
            assert_eq!(r.msg.ok().map(|m| m.kind()), Some(*t), "{m}");
        }
    }

    /// The typed server messages are byte for byte the JSON objects the
    /// session built before them (keys sorted, nulls kept, `id` added).
    #[test]
    fn server_messages_keep_their_json() {
        let id = json!(7);
        let mut cases: Vec<(ServerMsg, Option<&Value>, Value)> = vec![
            (
                ServerMsg::Hello {
                    version: 1,
                    server: "giaoban/0",
                    max_message_bytes: 10,
                },
                Some(&id),
                json!({"type": "hello", "id": 7, "version": 1, "server": "giaoban/0", "max_message_bytes": 10}),
            ),
            (
                ServerMsg::Ok {
                    unknown_track_ids: None,
                },
                Some(&id),
                json!({"type": "ok", "id": 7}),
            ),
            (
                ServerMsg::Ok {
                    unknown_track_ids: Some(vec!["t".into()]),
                },
                None,
                json!({"type": "ok", "unknown_track_ids": ["t"]}),
            ),
            (
                ServerMsg::PublishAnswer { sdp: "v=0".into() },
                Some(&id),
                json!({"type": "publish_answer", "id": 7, "sdp": "v=0"}),
            ),
            (ServerMsg::Pong { ts: None }, None, json!({"type": "pong"})),
            (
                ServerMsg::Pong {
                    ts: Some(Value::Null),
                },
                Some(&id),
                json!({"type": "pong", "id": 7, "ts": null}),
            ),
            (
                ServerMsg::Bye {},
                Some(&id),
                json!({"type": "bye", "id": 7}),
            ),
            (
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    message: "m".into(),
                },
                None,
                json!({"type": "error", "code": "rate_limited", "message": "m"}),
            ),
            (
                ServerMsg::SubscriberOffer { sdp: "v=0".into() },
                None,
                json!({"type": "subscriber_offer", "sdp": "v=0"}),
            ),
            (
                ServerMsg::LayersWanted {
                    track_id: "t".into(),
                    layers: vec!["q".into()],
                },
                None,
                json!({"type": "layers_wanted", "track_id": "t", "layers": ["q"]}),
            ),
            (
                ServerMsg::ActiveSpeaker {
                    participant_id: "p-1".into(),
                },
                None,
                json!({"type": "active_speaker", "participant_id": "p-1"}),
            ),
            (
                ServerMsg::VideoPaused {
                    track_ids: vec![],
                    reason: "last_n",
                },
                None,
                json!({"type": "video_paused", "track_ids": [], "reason": "last_n"}),
            ),
            (
                ServerMsg::Slots {
                    slots: vec![SlotMsg {
                        slot: "s0".into(),
                        kind: "video",
                        participant_id: None,
                        track_id: None,
                    }],
                },
                None,
                json!({"type": "slots", "slots": [{"slot": "s0", "kind": "video", "participant_id": null, "track_id": null}]}),
            ),
            (
                ServerMsg::ParticipantLeft {
                    participant_id: "p-1".into(),
                    reason: "replaced",
                },
                None,
                json!({"type": "participant_left", "participant_id": "p-1", "reason": "replaced"}),
            ),
        ];
        // The participant and track objects as `ParticipantInfo::to_json`
        // and `TrackInfo::to_json` built them (the connection's kind is
        // not shown).
        let mut chair = ParticipantInfo::new("p-2", "Chủ tịch", cabinet::Role::Chair, "whip");
        chair.audio_blocked = true;
        let chair_json = json!({"id": "p-2", "name": "Chủ tịch", "role": "chair",
            "audio_muted": false, "video_muted": false, "audio_blocked": true, "video_blocked": false});
        let track = TrackInfo {
            track_id: "t".into(),
            participant_id: "p-2".into(),
            kind: "video",
        };
        let track_json = json!({"track_id": "t", "participant_id": "p-2", "kind": "video"});
        // The hub's events, the REST API's and the TURN refresh, as their
        // `json!` literals were.
        cases.push((
            ServerMsg::ParticipantJoined {
                participant: chair.clone(),
            },
            None,
            json!({"type": "participant_joined", "participant": chair_json.clone()}),
        ));
        cases.push((
            ServerMsg::TrackPublished {
                track: track.clone(),
            },
            None,
            json!({"type": "track_published", "track": track_json.clone()}),
        ));
        cases.push((
            ServerMsg::TrackUnpublished {
                track_id: "t".into(),
                participant_id: "p-2".into(),
            },
            None,
            json!({"type": "track_unpublished", "track_id": "t", "participant_id": "p-2"}),
        ));
        cases.push((
            ServerMsg::MuteChanged {
                participant_id: "p-2".into(),
                kind: "audio",
                muted: true,
            },
            None,
            json!({"type": "mute_changed", "participant_id": "p-2", "kind": "audio", "muted": true}),
        ));
        cases.push((
            ServerMsg::AgendaChanged {
                meeting_id: "m".into(),
            },
            None,
            json!({"type": "agenda_changed", "meeting_id": "m"}),
        ));
        cases.push((
            ServerMsg::TechMessage {
                message: json!({"seq": 3, "text": "Xin bật micrô"}),
            },
            None,
            json!({"type": "tech_message", "message": {"seq": 3, "text": "Xin bật micrô"}}),
        ));
        cases.push((
            ServerMsg::ConclusionChanged {
                item_id: "a".into(),
                text: Some("Thống nhất.".into()),
            },
            None,
            json!({"type": "conclusion_changed", "item_id": "a", "text": "Thống nhất."}),
        ));
        cases.push((
            ServerMsg::ConclusionChanged {
                item_id: "a".into(),
                text: None,
            },
            None,
            json!({"type": "conclusion_changed", "item_id": "a", "text": null}),
        ));
        let no_turn = IceFields {
            ice_servers: vec![],
            ice_transport_policy: "all",
        };
        cases.push((
            ServerMsg::IceServers(no_turn.clone()),
            None,
            json!({"type": "ice_servers", "ice_servers": [], "ice_transport_policy": "all"}),
        ));
        cases.push((
            ServerMsg::IceServers(IceFields {
                ice_servers: vec![IceServer {
                    urls: vec!["turns:t:443?transport=tcp".into()],
                    username: "9:p-1".into(),
                    credential: "c=".into(),
                }],
                ice_transport_policy: "relay",
            }),
            None,
            json!({"type": "ice_servers", "ice_servers": [{"urls": ["turns:t:443?transport=tcp"],
                "username": "9:p-1", "credential": "c="}], "ice_transport_policy": "relay"}),
        ));
        let mut me = ParticipantInfo::new("p-1", "UBND xã", cabinet::Role::Bridge, "participant");
        me.video_muted = true;
        let me_json = json!({"id": "p-1", "name": "UBND xã", "role": "bridge",
            "audio_muted": false, "video_muted": true, "audio_blocked": false, "video_blocked": false});
        cases.push((
            ServerMsg::Joined {
                participant: me.clone(),
                meeting: MeetingRef {
                    id: "m".into(),
                    title: Some("T".into()),
                },
                participants: vec![chair],
                tracks: vec![track],
                receive: "tracks",
                resume_token: "r".into(),
                ice: no_turn,
                state: LiveStateMsg {
                    status: "in_progress",
                    locked: false,
                    floor: Some(FloorMsg {
                        participant_id: "p-2".into(),
                        since: 5,
                    }),
                    current_item_id: None,
                    join_muted: true,
                },
            },
            Some(&id),
            json!({"type": "joined", "id": 7, "participant": me_json.clone(), "meeting": {"id": "m", "title": "T"},
                "participants": [chair_json], "tracks": [track_json], "receive": "tracks",
                "ice_servers": [], "ice_transport_policy": "all", "resume_token": "r",
                "state": {"status": "in_progress", "locked": false, "floor": {"participant_id": "p-2", "since": 5},
                    "current_item_id": null, "join_muted": true}}),
        ));
        cases.push((
            ServerMsg::Resumed {
                participant: None,
                meeting: MeetingRef {
                    id: "m".into(),
                    title: None,
                },
                resume_token: "r".into(),
                replayed: 2,
            },
            None,
            json!({"type": "resumed", "participant": null, "meeting": {"id": "m"}, "resume_token": "r", "replayed": 2}),
        ));
        cases.push((
            ServerMsg::Resumed {
                participant: Some(me),
                meeting: MeetingRef {
                    id: "m".into(),
                    title: None,
                },
                resume_token: "r".into(),
                replayed: 0,
            },
            Some(&id),
            json!({"type": "resumed", "id": 7, "participant": me_json, "meeting": {"id": "m"}, "resume_token": "r", "replayed": 0}),
        ));
        for (msg, id, want) in cases {
            assert_eq!(msg.to_text(id), want.to_string());
        }
    }

    /// The keys `error.<code>` of one catalogue (`const vi = {` .. `};`).
    fn catalogue_keys(js: &str, name: &str) -> Vec<String> {
        let start = js
            .find(&format!("const {name} = {{"))
            .unwrap_or_else(|| panic!("no catalogue {name}"));
        let rest = &js[start..];
        let end = rest.find("\n};").expect("catalogue end");
        rest[..end]
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("'error."))
            .filter_map(|l| l.split('\'').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn codes_are_stable_strings_with_serde_the_same() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(c
                .as_str()
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '_'));
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::json!(c.as_str()))
            );
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
        }
        use crate::auth::TokenError as T;
        for e in [
            T::Invalid,
            T::Expired,
            T::WrongMeeting,
            T::Revoked,
            T::MeetingNotFound,
            T::MeetingClosed,
            T::Internal,
        ] {
            assert_eq!(ErrorCode::from(&e).as_str(), e.code());
        }
    }

    #[test]
    fn every_code_has_a_vietnamese_and_an_english_text() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/assets/i18n.js");
        let js = std::fs::read_to_string(path).expect("web/assets/i18n.js");
        for lang in ["vi", "en"] {
            let keys = catalogue_keys(&js, lang);
            let missing: Vec<&str> = ErrorCode::ALL
                .iter()
                .map(|c| c.as_str())
                .filter(|c| !keys.iter().any(|k| k == c))
                .collect();
            assert!(
                missing.is_empty(),
                "i18n.js {lang} has no error.<code> for {missing:?}"
            );
        }
    }

    /// docs/protocol.md (the contract) lists the WebSocket error codes: each
    /// is an [`ErrorCode`], and each code the session and the parser send
    /// is listed.
    #[test]
    fn the_websocket_codes_are_those_of_docs_protocol_md() {
        let root = env!("CARGO_MANIFEST_DIR");
        let doc = std::fs::read_to_string(format!("{root}/../docs/protocol.md"))
            .expect("docs/protocol.md");
        let start = doc.find("| `bad_json` |").expect("the error table");
        let listed: Vec<&str> = doc[start..]
            .lines()
            .take_while(|l| l.starts_with("| `"))
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        for code in &listed {
            assert!(ErrorCode::parse(code).is_some(), "docs/protocol.md: {code}");
        }
        let mut sources =
            std::fs::read_to_string(format!("{root}/src/session.rs")).expect("session.rs");
        let own = std::fs::read_to_string(format!("{root}/src/protocol.rs")).expect("protocol.rs");
        sources.push_str(own.split("#[cfg(test)]").next().unwrap_or_default());
        let mut used = 0;
        for c in ErrorCode::ALL {
            if sources.contains(&format!("ErrorCode::{c:?}")) {
                used += 1;
                assert!(
                    listed.contains(&c.as_str()),
                    "{c} is sent but not in docs/protocol.md"
                );
            }
        }
        assert!(used > 15, "only {used} codes found in the session");
    }
}
