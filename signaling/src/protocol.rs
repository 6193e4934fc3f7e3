//! The typed WebSocket protocol of `docs/protocol.md` (the contract):
//! - [`ErrorCode`]: the stable error codes, shared with the REST API
//!   ([`crate::api::ApiError`]) and the web client's catalogue;
//! - [`ClientMsg`] and [`parse`], the one parser of a client's text frame,
//!   used by the session ([`crate::session`]), the fuzz target
//!   ([`crate::fuzzing`], through [`check_client_message`]) and the metrics
//!   ([`crate::metrics`], by [`ClientType`]);
//! - [`ServerMsg`]: the messages the session sends (the hub's meeting events
//!   are still JSON built in `crate::hub`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    Leave = "leave",
}

impl ClientType {
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
    Leave(NoFields),
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
            ClientMsg::Leave(_) => ClientType::Leave,
        }
    }

    /// The checks of the body beyond its JSON shape (the session makes the
    /// same ones where it acts on the message).
    pub fn check(&self) -> Result<(), Fail> {
        match self {
            ClientMsg::Candidate(c) => c.pc().map(drop),
            ClientMsg::SetQuality(q) => q.checked().map(drop),
            ClientMsg::Mute(m) => m.media_kind().map(drop),
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
    let participant_id = body.get("participant_id").cloned();
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

/// A server message of those the session sends itself (docs/protocol.md;
/// the meeting's events of the hub are still built as JSON where they are
/// made, and so are the participants and tracks inside `joined`). The JSON object's `type` is the tag; the
/// answered request's `id` is added by [`ServerMsg::to_text`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to `join`.
    Joined {
        participant: Value,
        meeting: MeetingRef,
        participants: Vec<Value>,
        tracks: Vec<Value>,
        /// `tracks` or `slots`.
        receive: &'static str,
        resume_token: String,
        /// `ice_servers` and `ice_transport_policy` ([`crate::turn::ice_fields`]).
        #[serde(flatten)]
        ice: serde_json::Map<String, Value>,
    },
    /// The answer to `resume`.
    Resumed {
        participant: Option<Value>,
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
    ParticipantLeft {
        participant_id: String,
        reason: &'static str,
    },
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
            json!({"type": "leave"}),
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
        let mut ice = serde_json::Map::new();
        ice.insert("ice_servers".into(), json!([]));
        ice.insert("ice_transport_policy".into(), json!("all"));
        cases.push((
            ServerMsg::Joined {
                participant: json!({"id": "p-1"}),
                meeting: MeetingRef {
                    id: "m".into(),
                    title: Some("T".into()),
                },
                participants: vec![],
                tracks: vec![json!({"track_id": "t"})],
                receive: "tracks",
                resume_token: "r".into(),
                ice,
            },
            Some(&id),
            json!({"type": "joined", "id": 7, "participant": {"id": "p-1"}, "meeting": {"id": "m", "title": "T"},
                "participants": [], "tracks": [{"track_id": "t"}], "receive": "tracks",
                "ice_servers": [], "ice_transport_policy": "all", "resume_token": "r"}),
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

    /// Every error code string the server's sources give (REST errors, the
    /// WebSocket error counter, the HTTP errors) is one of [`ErrorCode`].
    #[test]
    fn the_server_uses_only_these_codes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let files = [
            "api/mod.rs",
            "api/handlers.rs",
            "api/documents.rs",
            "api/audit.rs",
            "whip.rs",
            "http.rs",
        ];
        let calls = [
            "ApiError::new(",
            "ApiError::bad_request(",
            "ApiError::not_found(",
            "ws_error(\"",
            "error(StatusCode::",
        ];
        let mut checked = 0;
        for f in files {
            let Ok(src) = std::fs::read_to_string(format!("{dir}/{f}")) else {
                continue;
            };
            for call in calls {
                for (at, _) in src.match_indices(call) {
                    let after = &src[at + call.len()..];
                    let after = &after[..after.len().min(200)];
                    let Some(q) = after.find('"') else { continue };
                    // The literal must be an argument of this call.
                    if after[..q].contains([';', '{', '}', ')']) {
                        continue;
                    }
                    let lit = &after[q + 1..];
                    let Some(e) = lit.find('"') else { continue };
                    let lit = &lit[..e];
                    // A message, not a code.
                    if lit.is_empty() || !lit.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        continue;
                    }
                    // The metrics' own label for a dropped socket.
                    if lit == "send_timeout" {
                        continue;
                    }
                    checked += 1;
                    assert!(
                        ErrorCode::parse(lit).is_some(),
                        "{f}: {call}\"{lit}\" is no ErrorCode"
                    );
                }
            }
        }
        assert!(checked > 20, "the scan found only {checked} codes");
    }
}
