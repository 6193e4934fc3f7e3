//! The eCabinet REST API under `/api`, described by `signaling/openapi.json`
//! (served at `/api/openapi.json`).
//!
//! Every handler starts from a [`Caller`] (who is asking: a secretariat
//! account with a staff token, or an invitee with an invitation token) and
//! checks what that caller may do before anything else; errors are
//! [`ApiError`]s, JSON `{"code", "message"}` with a stable code.
//!
//! - `mod.rs`: state, errors, the caller extractor, the route table.
//! - `handlers`: auth, meetings, bridge points, participants, invitations,
//!   agenda, users.
//! - `documents`: uploads (multipart, streamed to disk, signature check),
//!   document metadata and downloads.
//! - `audit`: the audit log for admins (filtered pages, export, verify).
//! - `techdesk`: the operator's desk: a meeting's live dashboard of its
//!   bridge points, their pre-meeting checks, the text channel.
//! - `attendance`: a meeting's attendance table (JSON, CSV) and the
//!   secretariat's marks.
//! - `conclusions`: the conclusion of each agenda item, set by the chair's
//!   side, read by every invitee, pushed live as `conclusion_changed`.
//! - `polls`: a meeting's live votes with their outcomes, one poll's
//!   ballots (named) or voters (secret).
//! - `minutes`: a meeting's minutes (biên bản) as HTML and as PDF, from
//!   its record.
//! - `unit_groups`: saved groups of units, invited in one step.
//! - `codes`: the printable links (QR code and short code per invitation)
//!   and the lookup of a short code typed on the join page.
//! - `notice`: a meeting's notice of conclusions (thông báo kết luận) as
//!   HTML and PDF, its due date in working days and its issue; the
//!   documents' deadline before the meeting.
//! - `opinions`: written opinion ballots between meetings: the
//!   secretariat's requests, and each recipient's answer by its own link
//!   (an opinion token, not a [`Caller`]).

mod answers;
mod attendance;
pub(crate) mod audit;
mod codes;
mod conclusions;
mod documents;
mod handlers;
mod inbox;
mod limiter;
mod minutes;
mod notes;
mod notice;
mod opinions;
mod polls;
mod techdesk;
mod unit_groups;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use cabinet::{Invitation, Meeting, StaffRole, User};
use serde_json::json;

use crate::auth::{self, TokenError};
use crate::protocol::ErrorCode;
use crate::AppState;

#[doc(hidden)]
pub use answers::answer_json;
pub use documents::check_upload;
pub use limiter::{client_ip, HashGate, LoginLimiter, GATE_WAIT};

/// The e-mail outbox of a meeting or an opinion request, and sending a
/// meeting's invitations again (`crate::mail` sends).
mod mail;
/// The documents of written opinion requests.
mod opinion_docs;

/// The OpenAPI 3 document of this API.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// What the API needs besides the store and the keys.
pub struct ApiState {
    /// `server.public_url` (without a trailing `/`), if set: the base of
    /// every invitation link.
    pub public_url: Option<String>,
    /// Base of links when `public_url` is unset and the request names no
    /// usable Host (see [`crate::links::link_base`]).
    pub fallback_url: String,
    /// Whether the server speaks HTTPS itself (links then use https).
    pub tls: bool,
    /// The clients' link reports and the dashboard's alerts (`[signaling]`
    /// `link_*`, `check_*`).
    pub links: Arc<crate::linkstats::LinkStats>,
    /// `server.contact`: who to call, shown on the join page; may be empty.
    pub contact: String,
    /// Lifetime of an invitation to a meeting with no planned time, in hours.
    pub invite_ttl_hours: u32,
    /// An invitation lives until its meeting's planned end plus this, in hours.
    pub invite_grace_hours: u32,
    /// Lifetime of a staff token, in seconds.
    pub staff_token_ttl_seconds: i64,
    /// `[mail]`: the SMTP sender; None: no e-mail.
    pub mail: Option<Arc<crate::mail::Mailer>>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Trust anchors for PDF signatures.
    pub trust: Arc<cabinet::signature::TrustStore>,
    /// Where document contents live.
    pub blobs: cabinet::Blobs,
    /// Failed logins per username and address.
    pub login_limiter: LoginLimiter,
    /// Failed lookups of invitations' short codes per address
    /// (`POST /api/invitation/code`), apart from the logins'.
    pub code_limiter: LoginLimiter,
    /// At most this many password hashes at once.
    pub hash_gate: HashGate,
    /// `server.trusted_proxies`: peers whose `X-Forwarded-For` counts.
    pub trusted_proxies: Vec<crate::metrics::IpNet>,
    /// `[rules]`: the quorum of the attendance table.
    pub quorum: cabinet::QuorumRule,
    /// `[minutes]`: who issues the minutes, and where.
    pub minutes_header: cabinet::minutes::MinutesHeader,
    /// `[minutes] seal_cert`/`seal_key`: the seal of the minutes.
    pub seal: crate::seal::SealSource,
    /// `[calendar]`: the working days deadlines count in.
    pub calendar: cabinet::workdays::Calendar,
    /// `[notice]` and `[deadlines]`: the notice of conclusions.
    pub notice: cabinet::notice::NoticeSettings,
    /// `[deadlines]`: the documents' deadline before a meeting.
    pub documents_deadline: cabinet::notice::DocumentsDeadlineRule,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("public_url", &self.public_url)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish_non_exhaustive()
    }
}

/// An error answer: status, stable code, human message. The code is an
/// [`ErrorCode`] (the catalogue shared with the WebSocket protocol).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "you are not allowed to do this",
        )
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<cabinet::Error> for ApiError {
    fn from(e: cabinet::Error) -> ApiError {
        use cabinet::Error as E;
        match e {
            E::InvalidInput(m) => ApiError::bad_request(ErrorCode::InvalidInput, m),
            E::MeetingNotFound(_) => ApiError::not_found(ErrorCode::MeetingNotFound, e.to_string()),
            E::InvitationNotFound(_) => {
                ApiError::not_found(ErrorCode::InvitationNotFound, e.to_string())
            }
            E::NotFound { what, .. } => {
                let code = match what {
                    "bridge point" => ErrorCode::BridgePointNotFound,
                    "participant" => ErrorCode::ParticipantNotFound,
                    "agenda item" => ErrorCode::AgendaItemNotFound,
                    "document" => ErrorCode::DocumentNotFound,
                    "user" => ErrorCode::UserNotFound,
                    "poll" => ErrorCode::PollNotFound,
                    _ => ErrorCode::NotFound,
                };
                ApiError::new(StatusCode::NOT_FOUND, code, e.to_string())
            }
            E::Frozen { .. } => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::MeetingFrozen,
                e.to_string(),
            ),
            E::BadTransition { .. } => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::InvalidTransition,
                e.to_string(),
            ),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            E::AlreadyVoted(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyVoted, e.to_string())
            }
            E::PollClosed(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::PollClosed, e.to_string())
            }
            E::PollOpen(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::PollOpen, e.to_string())
            }
            E::NotEligible(_) => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::NotEligible, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "storage error in the API");
                ApiError::internal()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A secretariat account (active, looked up on every request).
    Staff(User),
    /// The holder of an invitation to `meeting` (valid, not revoked, the
    /// meeting not frozen).
    Invitee {
        invitation: Box<Invitation>,
        meeting: Box<Meeting>,
        /// The role of the participant the invitation is tied to, if any.
        participant_role: Option<cabinet::ParticipantRole>,
    },
}

/// Staff roles that may read meetings, bridge points, participants,
/// invitations, agendas and documents.
pub const READ: &[StaffRole] = &[StaffRole::Admin, StaffRole::Secretary, StaffRole::Operator];
/// Staff roles that prepare meetings.
pub const PREPARE: &[StaffRole] = &[StaffRole::Admin, StaffRole::Secretary];
/// Staff roles that manage accounts.
pub const ADMIN: &[StaffRole] = &[StaffRole::Admin];

impl Caller {
    /// The account, if the caller is staff with one of `roles`; else 403.
    pub fn staff_in(&self, roles: &[StaffRole]) -> ApiResult<&User> {
        match self {
            Caller::Staff(u) if roles.contains(&u.role) => Ok(u),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// Staff that may read, or the invitee of this meeting; else 403.
    pub fn may_read_meeting(&self, meeting_id: &str) -> ApiResult<()> {
        match self {
            Caller::Staff(u) if READ.contains(&u.role) => Ok(()),
            Caller::Invitee {
                meeting,
                invitation,
                ..
            } if meeting.id == meeting_id
                && crate::permissions::allows(
                    invitation.role,
                    crate::permissions::Permission::Join,
                ) =>
            {
                Ok(())
            }
            _ => Err(ApiError::forbidden()),
        }
    }

    /// Whether the caller may read this document (and download it).
    pub fn may_read_document(&self, doc: &cabinet::Document) -> bool {
        match self {
            Caller::Staff(u) => READ.contains(&u.role),
            Caller::Invitee {
                invitation,
                meeting,
                participant_role,
            } => {
                if meeting.id != doc.meeting_id {
                    return false;
                }
                match doc.access {
                    cabinet::DocumentAccess::Everyone => true,
                    cabinet::DocumentAccess::Committee => {
                        crate::permissions::allows(
                            invitation.role,
                            crate::permissions::Permission::ReadCommitteeDocuments,
                        ) || participant_role.is_some_and(|r| r.is_committee())
                    }
                    cabinet::DocumentAccess::Named => invitation
                        .participant_id
                        .as_ref()
                        .is_some_and(|p| doc.participant_ids.contains(p)),
                }
            }
        }
    }

    /// The actor recorded in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Caller::Staff(u) => format!("user:{}", u.id),
            Caller::Invitee { invitation, .. } => format!("invitation:{}", invitation.id),
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    (!t.is_empty()).then_some(t)
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Internal => ApiError::internal(),
        TokenError::MeetingClosed => {
            ApiError::new(StatusCode::FORBIDDEN, ErrorCode::from(&e), e.to_string())
        }
        TokenError::MeetingNotFound => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenInvalid,
            "the token is not valid",
        ),
        other => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::from(&other),
            other.to_string(),
        ),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "log in first (Authorization: Bearer <token>)",
            ));
        };
        match state.keys.decode_staff(token) {
            Ok(claims) => {
                // Disabled accounts and revoked tokens stop here, at once.
                let user = auth::check_staff(&state.store, &claims).await?;
                return match user {
                    Some(u) => {
                        parts.extensions.insert(StaffToken(claims));
                        Ok(Caller::Staff(u))
                    }
                    None => Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        ErrorCode::TokenInvalid,
                        "the token was revoked, or the account does not exist or is disabled",
                    )),
                };
            }
            Err(TokenError::Expired) => return Err(token_error(TokenError::Expired)),
            Err(_) => {}
        }
        let claims = state.keys.decode(token).map_err(token_error)?;
        let (meeting, invitation) = auth::check_invitation(&state.store, &claims, None)
            .await
            .map_err(token_error)?;
        let participant_role = match &invitation.participant_id {
            Some(pid) => state.store.get_participant(pid).await?.map(|p| p.role),
            None => None,
        };
        Ok(Caller::Invitee {
            invitation: Box::new(invitation),
            meeting: Box::new(meeting),
            participant_role,
        })
    }
}

/// The claims of the staff token a request was authorized with (put in the
/// request's extensions by the [`Caller`] extractor; logout revokes it).
#[derive(Debug, Clone)]
pub struct StaffToken(pub auth::StaffClaims);

/// The client's address: the TCP peer, or what a trusted proxy says
/// (`server.trusted_proxies`, [`client_ip`]).
pub fn request_ip(
    state: &AppState,
    ext: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> Option<IpAddr> {
    client_ip(peer_ip(ext), headers, &state.api.trusted_proxies)
}

/// A JSON body whose rejection is an [`ApiError`] (`invalid_json`).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        // Read as a JSON value first: serde would also take an array for a
        // struct (its fields in order), which the API does not accept.
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) if !v.is_object() => Err(ApiError::bad_request(
                ErrorCode::InvalidJson,
                "the request body must be a JSON object",
            )),
            // PostgreSQL's text cannot hold U+0000: refuse it in every string
            // of every body (the OpenAPI document says so for each field), so
            // both databases answer the same clear 400 and never a 500.
            Ok(axum::Json(v)) if has_nul(&v) => Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "a text in the request contains the NUL character (U+0000)",
            )),
            Ok(axum::Json(v)) => serde_json::from_value(v).map(ApiJson).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidJson,
                    format!("Failed to deserialize the JSON body into the target type: {e}"),
                )
            }),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::BodyTooLarge,
                    "the request body is larger than the server accepts (2 MiB)",
                ))
            }
            Err(rejection) => Err(ApiError::new(
                if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                } else {
                    StatusCode::BAD_REQUEST
                },
                ErrorCode::InvalidJson,
                rejection.body_text(),
            )),
        }
    }
}

/// Whether a string value anywhere in `v` contains U+0000. Keys are not
/// looked at: a body's known fields have no NUL in their names, and what
/// is not a known field is never stored.
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.values().any(has_nul),
        _ => false,
    }
}

/// A query string whose rejection is an [`ApiError`] (400 `bad_query`), not
/// axum's plain-text answer.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(ErrorCode::BadQuery, e.body_text()))
    }
}

/// A `multipart/form-data` body whose rejection is an [`ApiError`]: 415
/// `unsupported_media_type` when the body is not declared as
/// `multipart/form-data`, 400 `bad_multipart` when its boundary is missing
/// or bad (axum answers both in plain text).
pub struct ApiMultipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"));
        if !is_form {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "expected a multipart/form-data body",
            ));
        }
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(ApiMultipart)
            .map_err(|e| ApiError::bad_request(ErrorCode::BadMultipart, e.body_text()))
    }
}

/// The `Idempotency-Key` request header (optional), on the creating
/// endpoints that honour it: the answer to the first request with a key is
/// stored with what it created, in one transaction; a retry with the same
/// key (same caller, same request) gets that answer again, with the header
/// `Idempotent-Replayed: true`, and creates nothing.
pub struct IdempotencyHeader(pub Option<String>);

/// The header's name.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        let Some(v) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyHeader(None));
        };
        let bad = || {
            ApiError::bad_request(
                ErrorCode::InvalidIdempotencyKey,
                format!(
                    "Idempotency-Key must be 1 to {} visible ASCII characters",
                    cabinet::idempotency::MAX_KEY_LEN
                ),
            )
        };
        let key = v.to_str().map_err(|_| bad())?.trim();
        cabinet::IdempotencyKey::new(key, String::new()).map_err(|_| bad())?;
        Ok(IdempotencyHeader(Some(key.to_owned())))
    }
}

impl IdempotencyHeader {
    /// The key with the fingerprint of the request's parts, if there is one.
    pub fn with_request(&self, parts: &[&[u8]]) -> Option<cabinet::IdempotencyKey> {
        let key = self.0.as_deref()?;
        cabinet::IdempotencyKey::new(key, cabinet::idempotency::fingerprint(parts)).ok()
    }
}

/// The stored answer for `key`, as a response, if there is one: refused
/// (422 `idempotency_key_reused`) when it answered another request.
pub async fn replay(
    state: &AppState,
    actor: &str,
    key: Option<&cabinet::IdempotencyKey>,
) -> ApiResult<Option<Response>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(stored) = state.store.idempotent_response(actor, &key.key).await? else {
        return Ok(None);
    };
    if stored.fingerprint != key.fingerprint {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for another request",
        ));
    }
    let status = StatusCode::from_u16(stored.status).map_err(|_| ApiError::internal())?;
    let mut r = (status, axum::Json(stored.body)).into_response();
    r.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Some(r))
}

/// After a creating write failed: when it lost a race with a request with
/// the same key that committed first, that request's answer; otherwise the
/// error.
pub async fn replay_after(
    state: &AppState,
    actor: &str,
    key: Option<&cabinet::IdempotencyKey>,
    e: cabinet::Error,
) -> ApiResult<Response> {
    if key.is_some() && e.is_unique_violation() {
        if let Some(r) = replay(state, actor, key).await? {
            return Ok(r);
        }
    }
    Err(e.into())
}

/// The client's address, when the server runs with connect info.
pub fn peer_ip(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Declares the API routes once: the router and the list of (method, path)
/// that the OpenAPI test compares with `openapi.json`. Upload routes accept
/// bodies up to the upload limit (plus room for the multipart framing); the
/// others keep axum's default limit (2 MB).
macro_rules! api_routes {
    (
        plain { $( $m:ident $p:literal => $h:expr ),+ $(,)? }
        uploads { $( $um:ident $up:literal => $uh:expr ),+ $(,)? }
    ) => {
        /// Every (method, path) the API router serves.
        pub const ROUTES: &[(&str, &str)] = &[
            $((stringify!($m), $p),)+
            $((stringify!($um), $up),)+
        ];

        fn table(upload_body_limit: usize) -> Router<AppState> {
            let r = Router::new();
            $( let r = r.route($p, $m($h)); )+
            $( let r = r.route(
                $up,
                $um($uh).layer(axum::extract::DefaultBodyLimit::max(upload_body_limit)),
            ); )+
            r
        }
    };
}

api_routes! {
    plain {
        get "/api/openapi.json" => openapi,
        get "/api/invitation" => crate::http::invitation,
        put "/api/invitation/answer" => answers::put_answer,
        get "/api/invitation/notices" => inbox::list,
        post "/api/invitation/code" => codes::lookup,
        post "/api/auth/login" => handlers::login,
        post "/api/auth/logout" => handlers::logout,
        post "/api/auth/password" => handlers::change_password,
        get "/api/auth/me" => handlers::me,
        get "/api/users" => handlers::list_users,
        post "/api/users" => handlers::create_user,
        post "/api/users/{id}/disable" => handlers::disable_user,
        post "/api/users/{id}/enable" => handlers::enable_user,
        post "/api/users/{id}/password" => handlers::reset_password,
        post "/api/users/{id}/revoke-sessions" => handlers::revoke_sessions,
        get "/api/meetings" => handlers::list_meetings,
        post "/api/meetings" => handlers::create_meeting,
        get "/api/meetings/{id}" => handlers::get_meeting,
        patch "/api/meetings/{id}" => handlers::update_meeting,
        post "/api/meetings/{id}/status" => handlers::meeting_status,
        post "/api/meetings/{id}/copy" => handlers::copy_meeting,
        get "/api/meetings/{id}/live" => handlers::live_roster,
        get "/api/meetings/{id}/dashboard" => techdesk::dashboard,
        get "/api/meetings/{id}/link-history/{invitation_id}" => techdesk::history,
        get "/api/meetings/{id}/tech-messages" => techdesk::messages_get,
        post "/api/meetings/{id}/tech-messages" => techdesk::messages_post,
        get "/api/link-check" => techdesk::check_info,
        post "/api/link-check" => techdesk::check_post,
        get "/api/link-check/probe" => techdesk::probe_get,
        post "/api/link-check/probe" => techdesk::probe_post,
        post "/api/link-check/ice" => techdesk::ice_probe,
        get "/api/meetings/{id}/attendance" => attendance::get,
        get "/api/meetings/{id}/attendance.csv" => attendance::csv,
        put "/api/meetings/{id}/attendance/{invitation_id}" => attendance::mark,
        get "/api/meetings/{id}/polls" => polls::list,
        get "/api/polls/{id}" => polls::get,
        get "/api/opinions" => opinions::list,
        post "/api/opinions" => opinions::create,
        get "/api/opinions/{id}" => opinions::get,
        get "/api/meetings/{id}/mail" => mail::meeting,
        post "/api/meetings/{id}/mail/invitations" => mail::send_invitations,
        get "/api/opinions/{id}/mail" => mail::opinion,
        get "/api/opinions/{id}/documents/{doc_id}" => opinion_docs::content,
        get "/api/opinion/documents/{doc_id}" => opinion_docs::recipient_content,
        post "/api/opinions/{id}/close" => opinions::close,
        post "/api/opinions/{id}/remind" => opinions::remind,
        get "/api/opinion" => opinions::recipient_get,
        put "/api/opinion/answer" => opinions::recipient_answer,
        get "/api/bridge-points" => handlers::list_bridge_points,
        post "/api/bridge-points" => handlers::create_bridge_point,
        patch "/api/bridge-points/{id}" => handlers::update_bridge_point,
        post "/api/bridge-points/import" => handlers::import_bridge_points,
        get "/api/unit-groups" => unit_groups::list,
        post "/api/unit-groups" => unit_groups::create,
        patch "/api/unit-groups/{id}" => unit_groups::update,
        delete "/api/unit-groups/{id}" => unit_groups::delete,
        get "/api/meetings/{id}/participants" => handlers::list_participants,
        post "/api/meetings/{id}/participants" => handlers::create_participant,
        patch "/api/participants/{id}" => handlers::update_participant,
        delete "/api/participants/{id}" => handlers::delete_participant,
        get "/api/meetings/{id}/invitations" => handlers::list_invitations,
        post "/api/meetings/{id}/invitations" => handlers::create_invitation,
        post "/api/meetings/{id}/invitations/group" => handlers::invite_group,
        get "/api/meetings/{id}/invitations/export" => handlers::export_invitations,
        post "/api/meetings/{id}/invitations/unit-group" => unit_groups::invite,
        get "/api/meetings/{id}/invitations/print" => codes::print,
        post "/api/invitations/{id}/revoke" => handlers::revoke_invitation,
        get "/api/meetings/{id}/agenda" => handlers::list_agenda,
        post "/api/meetings/{id}/agenda" => handlers::create_agenda_item,
        put "/api/meetings/{id}/agenda/order" => handlers::reorder_agenda,
        patch "/api/agenda/{item_id}" => handlers::update_agenda_item,
        delete "/api/agenda/{item_id}" => handlers::delete_agenda_item,
        put "/api/agenda/{item_id}/conclusion" => conclusions::put,
        get "/api/meetings/{id}/conclusions" => conclusions::list,
        get "/api/meetings/{id}/minutes" => minutes::html,
        get "/api/meetings/{id}/minutes.pdf" => minutes::pdf,
        post "/api/meetings/{id}/minutes/seal" => minutes::seal,
        get "/api/meetings/{id}/minutes/versions" => minutes::versions,
        get "/api/meetings/{id}/minutes/versions/{version}" => minutes::version_pdf,
        get "/api/minutes/seal-certificate" => minutes::seal_certificate,
        get "/api/meetings/{id}/notice" => notice::html,
        get "/api/meetings/{id}/notice.pdf" => notice::pdf,
        get "/api/meetings/{id}/notice/status" => notice::status,
        post "/api/meetings/{id}/notice/status" => notice::set_status,
        get "/api/meetings/{id}/documents-deadline" => notice::documents_deadline,
        get "/api/agenda/{item_id}/documents" => documents::list,
        get "/api/documents/{id}" => documents::get,
        get "/api/documents/{id}/content" => documents::content,
        post "/api/documents/{id}/withdraw" => documents::withdraw,
        get "/api/documents/{id}/notes" => notes::list,
        post "/api/documents/{id}/notes" => notes::create,
        patch "/api/notes/{id}" => notes::update,
        delete "/api/notes/{id}" => notes::delete,
        get "/api/meetings/{id}/notes.csv" => notes::export,
        get "/api/audit" => audit::list,
        get "/api/audit/export" => audit::export,
        get "/api/audit/verify" => audit::verify,
    }
    uploads {
        post "/api/agenda/{item_id}/documents" => documents::create,
        post "/api/opinions/{id}/documents" => opinion_docs::create,
        post "/api/documents/{id}/versions" => documents::add_version,
        post "/api/documents/{id}/replace" => documents::replace,
    }
}

/// The API router.
pub fn routes(max_upload_bytes: u64) -> Router<AppState> {
    let limit = usize::try_from(max_upload_bytes.saturating_add(1024 * 1024)).unwrap_or(usize::MAX);
    table(limit).route("/api/{*rest}", axum::routing::any(unknown))
}

async fn unknown() -> ApiError {
    ApiError::not_found(ErrorCode::NotFound, "no such API endpoint")
}

async fn openapi() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        OPENAPI_JSON,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the router is in the OpenAPI document, and every
    /// operation of the document is a route.
    #[test]
    fn openapi_describes_every_route() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        assert!(spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")));
        let paths = spec["paths"].as_object().expect("paths");
        // The WHIP/WHEP routes (crate::whip) are described here too.
        let all: Vec<(&str, &str)> = ROUTES.iter().chain(crate::whip::ROUTES).copied().collect();
        for (method, path) in &all {
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in openapi.json"))[*method];
            assert!(op.is_object(), "{method} {path} is not in openapi.json");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
        }
        let methods = ["get", "post", "put", "patch", "delete"];
        for (path, item) in paths {
            for (m, _) in item.as_object().expect("path item") {
                if methods.contains(&m.as_str()) {
                    assert!(
                        all.contains(&(m.as_str(), path.as_str()))
                            || (m == "get" && path == "/healthz"),
                        "openapi.json has {m} {path}, the router does not"
                    );
                }
            }
        }
        assert!(paths.contains_key("/healthz"));
    }
}
