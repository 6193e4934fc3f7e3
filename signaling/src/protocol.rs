//! The typed WebSocket protocol of `docs/protocol.md` (the contract): the
//! error codes shared with the REST API, and the one parser of a client's
//! text frame, used by the session ([`crate::session`]), the fuzz target
//! ([`crate::fuzzing`]) and the metrics ([`crate::metrics`]).

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
