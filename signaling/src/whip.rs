//! WHIP ingest (RFC 9725) and WHEP egress of a meeting's main view.
//!
//! - `POST /whip/{meeting_id}` (`application/sdp`, `Authorization: Bearer
//!   <invitation token>`): an encoder (OBS, GStreamer, ffmpeg) publishes into
//!   the meeting as a participant named and roled by its invitation; everyone
//!   sees it join and its tracks go live. It receives nothing.
//! - `POST /whep/{meeting_id}`: a player receives the meeting's main view
//!   (the chair while it publishes, else the active speaker) on one audio and
//!   one video track; the view follows changes without renegotiation.
//! - The `Location` of either (`/whip/{meeting_id}/{session_id}`) is the
//!   session: `DELETE` ends it, `PATCH` with `application/trickle-ice-sdpfrag`
//!   adds trickled candidates (an ICE restart is refused with 422).
//!
//! A session ends on `DELETE`, when its invitation is revoked, when its
//! connection fails (or never connects), or when the server stops. Errors are
//! the API's JSON `{"code", "message"}` ([`ApiError`]). See
//! `docs/whip-whep.md`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use rand::RngCore;
use sfu::{Candidate, ConnectionState, PcKind, SfuError, SfuEvent, ViewerEvent};
use tokio::sync::{mpsc, oneshot};

use crate::admission::Via;
use crate::api::ApiError;
use crate::auth::{self, TokenError};
use crate::hub::{HubMsg, KickReason, ParticipantInfo, TrackInfo};
use crate::permissions::Permission;
use crate::protocol::ErrorCode;
use crate::AppState;

/// Largest SDP offer or trickle fragment accepted.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Players of one meeting's main view at most.
pub const MAX_PLAYERS_PER_MEETING: usize = 50;
/// A session whose connection is not up this long after its offer ends.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a player's invitation is checked for revocation.
const REVOCATION_CHECK: Duration = Duration::from_secs(5);

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// Every (method, path) these routes serve (the OpenAPI test reads it).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/whip/{meeting_id}"),
    ("patch", "/whip/{meeting_id}/{session_id}"),
    ("delete", "/whip/{meeting_id}/{session_id}"),
    ("post", "/whep/{meeting_id}"),
    ("patch", "/whep/{meeting_id}/{session_id}"),
    ("delete", "/whep/{meeting_id}/{session_id}"),
];

/// The WHIP and WHEP routes, with their own session registry.
pub fn routes() -> Router<AppState> {
    let registry = Arc::new(Registry::default());
    Router::new()
        .route(
            "/whip/{meeting_id}",
            post(whip_post).options(|| async { options(Kind::Whip) }),
        )
        .route(
            "/whep/{meeting_id}",
            post(whep_post).options(|| async { options(Kind::Whep) }),
        )
        .route(
            "/whip/{meeting_id}/{session_id}",
            axum::routing::delete(delete_whip)
                .patch(patch_whip)
                .options(|| async { session_options() }),
        )
        .route(
            "/whep/{meeting_id}/{session_id}",
            axum::routing::delete(delete_whep)
                .patch(patch_whep)
                .options(|| async { session_options() }),
        )
        .layer(Extension(registry))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whip,
    Whep,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

/// What the HTTP side asks of a running session.
enum Control {
    /// End the session; the reply comes once it has left.
    Delete(oneshot::Sender<()>),
    /// Trickled candidates of the client.
    Candidates(Vec<Candidate>, oneshot::Sender<Result<(), SfuError>>),
}

struct Entry {
    kind: Kind,
    meeting_id: String,
    /// The `ETag` of the session (the ICE session as created by the offer).
    etag: String,
    /// The client's ICE ufrag in its offer: another one in a PATCH is an ICE restart.
    remote_ufrag: Option<String>,
    control: mpsc::UnboundedSender<Control>,
}

/// The live WHIP and WHEP sessions, by session id.
#[derive(Default)]
struct Registry {
    sessions: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every change is one insert or remove: the map stays consistent.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn players(&self, meeting_id: &str) -> usize {
        self.lock()
            .values()
            .filter(|e| e.kind == Kind::Whep && e.meeting_id == meeting_id)
            .count()
    }
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Internal => ApiError::internal(),
        TokenError::WrongMeeting => {
            ApiError::new(StatusCode::FORBIDDEN, ErrorCode::from(&e), e.to_string())
        }
        TokenError::MeetingNotFound => ApiError::not_found(ErrorCode::from(&e), e.to_string()),
        TokenError::MeetingClosed => {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::from(&e), e.to_string())
        }
        other => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::from(&other),
            other.to_string(),
        ),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    (!t.is_empty()).then_some(t)
}

/// The media type of a request, without parameters, lower case.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The invitation of the request, for `meeting_id`.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    meeting_id: &str,
) -> Result<(cabinet::Meeting, cabinet::Invitation), ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "an invitation token is needed (Authorization: Bearer <token>)",
        ));
    };
    let claims = state.keys.decode(token).map_err(token_error)?;
    auth::check_invitation(&state.store, &claims, Some(meeting_id))
        .await
        .map_err(token_error)
}

/// Refuses (403 `forbidden`) an invitation whose role does not give
/// `permission` ([`crate::permissions`]).
fn permit(inv: &cabinet::Invitation, permission: Permission) -> Result<(), ApiError> {
    if crate::permissions::allows(inv.role, permission) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        format!(
            "the role {} does not give the permission {}",
            inv.role.as_str(),
            permission.as_str()
        ),
    ))
}

/// Reads a text body of at most [`MAX_SDP_BYTES`].
async fn read_text(body: Body) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_SDP_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BodyTooLarge,
                format!("the body is over {MAX_SDP_BYTES} bytes"),
            )
        })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request(ErrorCode::BadSdp, "the body is not UTF-8 text"))
}

/// Reads an SDP offer: `application/sdp`, at most [`MAX_SDP_BYTES`], SDP-shaped.
async fn read_offer(headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    if content_type(headers) != SDP {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "the offer must be sent as application/sdp",
        ));
    }
    let sdp = read_text(body).await?;
    if !sdp.trim_start().starts_with("v=0") || !sdp.contains("\nm=") {
        return Err(ApiError::bad_request(
            ErrorCode::BadSdp,
            "the body is not an SDP offer with media",
        ));
    }
    Ok(sdp)
}

/// A refusal of the admission as the HTTP error (the same codes as the
/// WebSocket's).
fn admission_error(f: crate::protocol::Fail) -> ApiError {
    use crate::protocol::ErrorCode as C;
    let status = match f.code {
        C::MeetingClosed | C::MeetingLocked | C::MeetingNotStarted => StatusCode::CONFLICT,
        C::RemovedFromMeeting => StatusCode::FORBIDDEN,
        C::MeetingElsewhere => StatusCode::MISDIRECTED_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, f.code, f.message)
}

fn sfu_error(e: SfuError) -> ApiError {
    match e {
        SfuError::BadSdp(m) => ApiError::bad_request(ErrorCode::BadSdp, m),
        SfuError::Negotiation(m) => ApiError::bad_request(ErrorCode::NegotiationFailed, m),
        SfuError::BadCandidate(m) => ApiError::bad_request(ErrorCode::BadCandidate, m),
        other => {
            tracing::error!(error = %other, "media plane error (WHIP/WHEP)");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::MediaUnavailable,
                "the media plane is not available",
            )
        }
    }
}

fn no_media() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::MediaUnavailable,
        "the media plane is not available",
    )
}

/// The ICE ufrag an SDP (or fragment) names at session level or first.
fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}

fn cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Accept-Patch"),
    );
}

/// `201 Created` with the answer, the session's `Location` and `ETag`.
fn created(kind: Kind, meeting_id: &str, session_id: &str, etag: &str, answer: String) -> Response {
    let mut r = (StatusCode::CREATED, answer).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    let location = format!("/{}/{meeting_id}/{session_id}", kind.path());
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    cors(h);
    r
}

fn options(kind: Kind) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("accept-post", HeaderValue::from_static(SDP));
    h.insert(header::ALLOW, HeaderValue::from_static("OPTIONS, POST"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    cors(h);
    tracing::trace!(kind = kind.path(), "OPTIONS");
    r
}

fn session_options() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("OPTIONS, PATCH, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, PATCH, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    cors(h);
    r
}

/// `POST /whip/{meeting_id}`: an encoder publishes as a participant.
async fn whip_post(
    State(state): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    Path(meeting_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (meeting, inv) = authorize(&state, &headers, &meeting_id).await?;
    permit(&inv, Permission::Publish)?;
    // The same admission as a WebSocket join; an encoder cannot wait for
    // the start, so before it the answer is 409 meeting_not_started.
    crate::admission::check(&state, &meeting, &inv, Via::Whip)
        .await
        .map_err(admission_error)?;
    let offer = read_offer(&headers, body).await?;
    crate::session::check_offer(&offer, state.limits.max_offer_media)
        .map_err(|m| ApiError::bad_request(ErrorCode::TooManyMedia, m))?;
    let sfu = state.sfu.clone().ok_or_else(no_media)?;
    let pid = crate::session::new_participant_id();
    let (media, sfu_rx) = sfu
        .join_publisher(meeting.id.clone(), pid.clone())
        .await
        .map_err(sfu_error)?;
    let remote_ufrag = ice_ufrag(&offer);
    // On error `media` is dropped, which takes it out of the media plane.
    let answer = media.publish(offer).await.map_err(sfu_error)?;
    let info = ParticipantInfo::new(&pid, &inv.name, inv.role, "whip");
    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let out = crate::admission::enter(&state, &meeting, &inv, info, hub_tx, Via::Whip).await;
    let session_id = random_id();
    let etag = format!("\"{}\"", random_id());
    let (control, control_rx) = mpsc::unbounded_channel();
    registry.lock().insert(
        session_id.clone(),
        Entry {
            kind: Kind::Whip,
            meeting_id: meeting.id.clone(),
            etag: etag.clone(),
            remote_ufrag,
            control,
        },
    );
    tracing::info!(participant = %pid, meeting = %meeting.id, invitation = %inv.id,
        replaced = ?out.replaced, "WHIP publisher joined");
    crate::api::audit::record_now(
        &state,
        format!("invitation:{}", inv.id),
        "whip.start",
        "meeting",
        meeting.id.clone(),
        serde_json::json!({"participant_id": pid, "session_id": session_id, "name": inv.name}),
    )
    .await;
    tokio::spawn(run_whip(WhipSession {
        state: state.clone(),
        registry,
        session_id: session_id.clone(),
        meeting_id: meeting.id.clone(),
        pid,
        media,
        sfu_rx,
        hub_rx,
        control_rx,
    }));
    Ok(created(Kind::Whip, &meeting.id, &session_id, &etag, answer))
}

/// `POST /whep/{meeting_id}`: a player receives the main view.
async fn whep_post(
    State(state): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    Path(meeting_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (meeting, inv) = authorize(&state, &headers, &meeting_id).await?;
    permit(&inv, Permission::Receive)?;
    // The same admission as a participant's: not a removed invitation,
    // not into a locked meeting, not before the start (409
    // meeting_not_started: a player cannot wait either).
    crate::admission::check(&state, &meeting, &inv, Via::Whep)
        .await
        .map_err(admission_error)?;
    let offer = read_offer(&headers, body).await?;
    if registry.players(&meeting.id) >= MAX_PLAYERS_PER_MEETING {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyPlayers,
            format!("this meeting has {MAX_PLAYERS_PER_MEETING} players already"),
        ));
    }
    let sfu = state.sfu.clone().ok_or_else(no_media)?;
    let remote_ufrag = ice_ufrag(&offer);
    // The player counts against its invitation's cap and shows in the
    // operator's roster from here; it ends with the meeting.
    let session_id = random_id();
    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let cap = state.limits.whep_viewers_per_invitation;
    let viewer_info = crate::hub::ViewerInfo {
        id: session_id.clone(),
        name: inv.name.clone(),
        role: inv.role.as_str().to_owned(),
    };
    state
        .hub
        .add_viewer(&meeting.id, &inv.id, viewer_info, cap, hub_tx)
        .map_err(|_| {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::TooManyViewers,
                format!("this invitation has {cap} WHEP player(s) already; end one (DELETE) first"),
            )
        })?;
    let (viewer, answer, events) = match sfu.view(meeting.id.clone(), offer).await {
        Ok(v) => v,
        Err(e) => {
            state.hub.remove_viewer(&meeting.id, &session_id);
            return Err(sfu_error(e));
        }
    };
    let etag = format!("\"{}\"", random_id());
    let (control, control_rx) = mpsc::unbounded_channel();
    registry.lock().insert(
        session_id.clone(),
        Entry {
            kind: Kind::Whep,
            meeting_id: meeting.id.clone(),
            etag: etag.clone(),
            remote_ufrag,
            control,
        },
    );
    tracing::info!(meeting = %meeting.id, invitation = %inv.id, player = viewer.id(), "WHEP player started");
    crate::api::audit::record_now(
        &state,
        format!("invitation:{}", inv.id),
        "whep.start",
        "meeting",
        meeting.id.clone(),
        serde_json::json!({"session_id": session_id, "name": inv.name}),
    )
    .await;
    tokio::spawn(run_whep(WhepSession {
        state: state.clone(),
        registry,
        session_id: session_id.clone(),
        meeting_id: meeting.id.clone(),
        invitation_id: inv.id.clone(),
        viewer,
        events,
        control_rx,
        hub_rx,
    }));
    Ok(created(Kind::Whep, &meeting.id, &session_id, &etag, answer))
}

/// The control channel of a session of `kind` in `meeting_id`, or 404.
fn session_control(
    registry: &Registry,
    kind: Kind,
    meeting_id: &str,
    session_id: &str,
) -> Result<(mpsc::UnboundedSender<Control>, String, Option<String>), ApiError> {
    registry
        .lock()
        .get(session_id)
        .filter(|e| e.kind == kind && e.meeting_id == meeting_id)
        .map(|e| (e.control.clone(), e.etag.clone(), e.remote_ufrag.clone()))
        .ok_or_else(|| ApiError::not_found(ErrorCode::SessionNotFound, "no such session"))
}

async fn delete_session(
    registry: &Registry,
    kind: Kind,
    meeting_id: &str,
    session_id: &str,
) -> Result<Response, ApiError> {
    let (control, _, _) = session_control(registry, kind, meeting_id, session_id)?;
    let (reply, done) = oneshot::channel();
    if control.send(Control::Delete(reply)).is_ok() {
        // Answer once the session has left (others saw participant_left).
        let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
    }
    let mut r = StatusCode::OK.into_response();
    cors(r.headers_mut());
    Ok(r)
}

async fn delete_whip(
    Extension(registry): Extension<Arc<Registry>>,
    Path((meeting_id, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    delete_session(&registry, Kind::Whip, &meeting_id, &session_id).await
}

async fn delete_whep(
    Extension(registry): Extension<Arc<Registry>>,
    Path((meeting_id, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    delete_session(&registry, Kind::Whep, &meeting_id, &session_id).await
}

async fn patch_whip(
    Extension(registry): Extension<Arc<Registry>>,
    Path((meeting_id, session_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    patch_session(
        &registry,
        Kind::Whip,
        &meeting_id,
        &session_id,
        &headers,
        body,
    )
    .await
}

async fn patch_whep(
    Extension(registry): Extension<Arc<Registry>>,
    Path((meeting_id, session_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    patch_session(
        &registry,
        Kind::Whep,
        &meeting_id,
        &session_id,
        &headers,
        body,
    )
    .await
}

/// Trickle ICE (RFC 9725 section 4.3.1): candidates are added, an ICE
/// restart is refused with 422.
async fn patch_session(
    registry: &Registry,
    kind: Kind,
    meeting_id: &str,
    session_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (control, etag, remote_ufrag) = session_control(registry, kind, meeting_id, session_id)?;
    if content_type(headers) != SDPFRAG {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "a PATCH must be application/trickle-ice-sdpfrag",
        ));
    }
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let frag = read_text(body).await?;
    let restart = if_match == Some("*")
        || ice_ufrag(&frag).is_some_and(|u| remote_ufrag.as_deref() != Some(u.as_str()));
    if restart {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IceRestartUnsupported,
            "ICE restarts are not supported: start a new session",
        ));
    }
    if let Some(m) = if_match {
        if m != etag {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::EtagMismatch,
                "If-Match does not match the session's ETag",
            ));
        }
    }
    let candidates = parse_candidates(&frag);
    let (reply, done) = oneshot::channel();
    control
        .send(Control::Candidates(candidates, reply))
        .map_err(|_| ApiError::not_found(ErrorCode::SessionNotFound, "the session has ended"))?;
    match done.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(sfu_error(e)),
        Err(_) => {
            return Err(ApiError::not_found(
                ErrorCode::SessionNotFound,
                "the session has ended",
            ))
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors(r.headers_mut());
    Ok(r)
}

/// The candidates of a trickle-ice-sdpfrag, each with the `a=mid` before it.
fn parse_candidates(frag: &str) -> Vec<Candidate> {
    let mut mid: Option<String> = None;
    let mut ufrag: Option<String> = None;
    let mut out = Vec::new();
    for line in frag.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_owned());
        } else if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(u.trim().to_owned());
        } else if let Some(c) = line.strip_prefix("a=candidate:") {
            out.push(Candidate {
                candidate: format!("candidate:{}", c.trim()),
                sdp_mid: mid.clone(),
                sdp_mline_index: None,
                username_fragment: ufrag.clone(),
            });
        }
    }
    out
}

struct WhipSession {
    state: AppState,
    registry: Arc<Registry>,
    session_id: String,
    meeting_id: String,
    pid: String,
    media: sfu::Participant,
    sfu_rx: mpsc::UnboundedReceiver<SfuEvent>,
    hub_rx: mpsc::UnboundedReceiver<HubMsg>,
    control_rx: mpsc::UnboundedReceiver<Control>,
}

/// A connection's liveness: ends a session that never connects, or whose
/// connection the SFU declares failed. That is the SFU's one rule for every
/// path (nothing at all received for 40 s: `sfu::peer::liveness`), so a
/// disconnected state (35 s of silence) is waited out here, as it is for a
/// WebSocket participant.
struct Liveness {
    started: Instant,
    connected_once: bool,
}

impl Liveness {
    fn new() -> Liveness {
        Liveness {
            started: Instant::now(),
            connected_once: false,
        }
    }

    /// Notes a state; returns whether the session must end.
    fn on_state(&mut self, state: ConnectionState) -> bool {
        match state {
            ConnectionState::Connected => {
                self.connected_once = true;
                false
            }
            ConnectionState::Failed | ConnectionState::Closed => true,
            ConnectionState::Disconnected | ConnectionState::Connecting => false,
        }
    }

    fn expired(&self) -> bool {
        !self.connected_once && self.started.elapsed() > CONNECT_TIMEOUT
    }
}

async fn run_whip(mut s: WhipSession) {
    let _alive = s.state.sessions.clone();
    let mut shutdown = s.state.shutdown.clone();
    let mut live = Liveness::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut deleted: Option<oneshot::Sender<()>> = None;
    let reason: &str = loop {
        tokio::select! {
            c = s.control_rx.recv() => match c {
                Some(Control::Delete(reply)) => {
                    deleted = Some(reply);
                    break "left";
                }
                Some(Control::Candidates(cs, reply)) => {
                    let mut r = Ok(());
                    for c in cs {
                        if let Err(e) = s.media.add_candidate(PcKind::Publisher, c).await {
                            r = Err(e);
                        }
                    }
                    let _ = reply.send(r);
                }
                None => break "disconnected",
            },
            ev = s.sfu_rx.recv() => match ev {
                Some(SfuEvent::TrackPublished { track_id, kind }) => {
                    s.state.hub.track_published(&s.meeting_id, &s.pid, TrackInfo {
                        track_id,
                        participant_id: s.pid.clone(),
                        kind: kind.as_str(),
                    });
                }
                Some(SfuEvent::TrackUnpublished { track_id }) => {
                    s.state.hub.track_unpublished(&s.meeting_id, &s.pid, &track_id);
                }
                Some(SfuEvent::Connection { pc: PcKind::Publisher, state }) => {
                    tracing::debug!(participant = %s.pid, ?state, "WHIP connection");
                    if live.on_state(state) {
                        break "disconnected";
                    }
                }
                Some(_) => {}
                None => break "disconnected",
            },
            m = s.hub_rx.recv() => match m {
                Some(HubMsg::Kick(KickReason::Revoked)) => break "revoked",
                Some(HubMsg::Kick(KickReason::Replaced)) => break "replaced",
                Some(HubMsg::Kick(KickReason::MeetingEnded)) => break "meeting_ended",
                Some(HubMsg::Kick(KickReason::Removed)) => break "removed",
                Some(HubMsg::Kick(_)) | None => break "disconnected",
                Some(_) => {}
            },
            _ = tick.tick() => {
                if live.expired() {
                    break "disconnected";
                }
            }
            _ = shutdown.changed() => break "disconnected",
        }
    };
    s.registry.lock().remove(&s.session_id);
    // A kicked participant is already out of the hub: this is a no-op then.
    s.state.hub.leave(&s.meeting_id, &s.pid, reason);
    crate::admission::left(&s.state, &s.pid).await;
    s.media.leave().await;
    tracing::info!(participant = %s.pid, meeting = %s.meeting_id, reason, "WHIP publisher left");
    crate::api::audit::record_later(
        &s.state,
        format!("participant:{}", s.pid),
        "whip.end",
        "meeting",
        s.meeting_id.clone(),
        serde_json::json!({"participant_id": s.pid, "session_id": s.session_id, "reason": reason}),
    );
    if let Some(reply) = deleted {
        let _ = reply.send(());
    }
}

struct WhepSession {
    state: AppState,
    registry: Arc<Registry>,
    session_id: String,
    meeting_id: String,
    invitation_id: String,
    viewer: sfu::Viewer,
    events: mpsc::UnboundedReceiver<ViewerEvent>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Kicks of the hub: revoked, meeting ended, shutdown.
    hub_rx: mpsc::UnboundedReceiver<HubMsg>,
}

async fn run_whep(mut s: WhepSession) {
    let _alive = s.state.sessions.clone();
    let mut shutdown = s.state.shutdown.clone();
    let mut live = Liveness::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_check = Instant::now();
    let mut deleted: Option<oneshot::Sender<()>> = None;
    let reason: &str = loop {
        tokio::select! {
            c = s.control_rx.recv() => match c {
                Some(Control::Delete(reply)) => {
                    deleted = Some(reply);
                    break "deleted";
                }
                // The server is ICE-lite: it learns the player's address
                // from its checks, trickled candidates change nothing.
                Some(Control::Candidates(_, reply)) => {
                    let _ = reply.send(Ok(()));
                }
                None => break "disconnected",
            },
            ev = s.events.recv() => match ev {
                Some(ViewerEvent::Connection(state)) => {
                    tracing::debug!(player = s.viewer.id(), ?state, "WHEP connection");
                    if live.on_state(state) {
                        break "disconnected";
                    }
                }
                Some(ViewerEvent::MainView { participant }) => {
                    tracing::debug!(player = s.viewer.id(), main_view = ?participant, "WHEP main view");
                }
                None => break "disconnected",
            },
            _ = tick.tick() => {
                if live.expired() {
                    break "disconnected";
                }
                if last_check.elapsed() >= REVOCATION_CHECK {
                    last_check = Instant::now();
                    match s.state.store.get_invitation(&s.invitation_id).await {
                        Ok(Some(inv)) if !inv.is_revoked() => {}
                        Ok(_) => break "revoked",
                        Err(e) => tracing::warn!("WHEP revocation check: {e}"),
                    }
                }
            }
            m = s.hub_rx.recv() => match m {
                Some(HubMsg::Kick(r)) => break r.as_str(),
                Some(HubMsg::Event(_)) => {}
                None => break "disconnected",
            },
            _ = shutdown.changed() => break "shutdown",
        }
    };
    s.registry.lock().remove(&s.session_id);
    s.state.hub.remove_viewer(&s.meeting_id, &s.session_id);
    tracing::info!(player = s.viewer.id(), meeting = %s.meeting_id, reason, "WHEP player ended");
    crate::api::audit::record_later(
        &s.state,
        format!("whep:{}", s.session_id),
        "whep.end",
        "meeting",
        s.meeting_id.clone(),
        serde_json::json!({"session_id": s.session_id, "reason": reason}),
    );
    s.viewer.close();
    if let Some(reply) = deleted {
        let _ = reply.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickle_fragments() {
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:xyz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n\
                    a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
        let cs = parse_candidates(frag);
        assert_eq!(cs.len(), 1);
        assert_eq!(
            cs[0].candidate,
            "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
        );
        assert_eq!(cs[0].sdp_mid.as_deref(), Some("0"));
        assert_eq!(cs[0].username_fragment.as_deref(), Some("abcd"));
        assert_eq!(ice_ufrag(frag).as_deref(), Some("abcd"));
        assert!(parse_candidates("").is_empty());
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/SDP; charset=utf-8"),
        );
        assert_eq!(content_type(&h), SDP);
        assert_eq!(content_type(&HeaderMap::new()), "");
    }

    #[test]
    fn liveness_ends_a_session_that_fails() {
        let mut l = Liveness::new();
        assert!(!l.on_state(ConnectionState::Connecting));
        assert!(!l.on_state(ConnectionState::Connected));
        assert!(!l.expired());
        assert!(!l.on_state(ConnectionState::Disconnected));
        assert!(!l.expired(), "a silence short of failed is waited out");
        assert!(!l.on_state(ConnectionState::Connected));
        assert!(l.on_state(ConnectionState::Failed));
    }
}
