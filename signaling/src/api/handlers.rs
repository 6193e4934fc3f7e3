//! Auth, users, meetings, bridge points, participants, invitations and the
//! agenda. Each handler checks the caller first, then does its work.

use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{
    AgendaItemPatch, BridgePointPatch, Invitation, MeetingPatch, MeetingStatus, NewAgendaItem,
    NewBridgePoint, NewInvitation, NewMeeting, NewParticipant, NewUser, ParticipantPatch, Role,
    StaffRole,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    replay, replay_after, ApiError, ApiJson, ApiResult, Caller, IdempotencyHeader, ADMIN, PREPARE,
    READ,
};
use crate::protocol::ErrorCode;
use crate::AppState;

fn created(v: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// Tells the meeting's live sessions that its agenda or documents changed.
pub(super) fn agenda_changed(state: &AppState, meeting_id: &str) {
    state.hub.broadcast(
        meeting_id,
        &crate::protocol::ServerMsg::AgendaChanged {
            meeting_id: meeting_id.to_owned(),
        },
    );
}

pub(super) async fn meeting_exists(state: &AppState, id: &str) -> ApiResult<cabinet::Meeting> {
    state
        .store
        .get_meeting(id)
        .await?
        .ok_or_else(|| cabinet::Error::MeetingNotFound(id.to_owned()).into())
}

// ------------------------------------------------------------------ auth ----

/// 429 `too_many_attempts` with `Retry-After`.
fn too_many_attempts(wait: u64) -> Response {
    with_retry_after(
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyAttempts,
            format!("too many failed logins from this address; try again in {wait} s"),
        ),
        wait,
    )
}

/// 503 `busy` with `Retry-After`: no hashing slot came free in time.
fn busy() -> Response {
    with_retry_after(
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Busy,
            "the server is checking too many passwords at once; try again in a moment",
        ),
        1,
    )
}

fn with_retry_after(e: ApiError, seconds: u64) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, seconds.into());
    r
}

/// Runs `work` (which hashes a password) in its own task holding a hashing
/// slot: the slot stays taken until the hash is done, even if the client
/// goes away meanwhile.
async fn hashing<T, F>(state: &AppState, work: F) -> Result<cabinet::Result<T>, Response>
where
    T: Send + 'static,
    F: std::future::Future<Output = cabinet::Result<T>> + Send + 'static,
{
    let Some(permit) = state.api.hash_gate.enter().await else {
        return Err(busy());
    };
    let task = tokio::spawn(async move {
        let out = work.await;
        drop(permit);
        out
    });
    task.await.map_err(|e| {
        tracing::error!(error = %e, "password hashing task failed");
        ApiError::internal().into_response()
    })
}

/// A new staff token for `user` at token epoch `epoch`, as login answers it.
fn token_answer(state: &AppState, user: &cabinet::User, epoch: i64) -> ApiResult<Response> {
    let claims = crate::auth::StaffClaims::for_user(user, epoch, state.api.staff_token_ttl_seconds);
    let token = state.keys.sign_staff(&claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign a staff token");
        ApiError::internal()
    })?;
    Ok(Json(json!({"token": token, "expires_at": claims.exp, "user": user})).into_response())
}

fn address_json(ip: Option<std::net::IpAddr>) -> Value {
    ip.map_or(Value::Null, |ip| json!(ip.to_string()))
}

#[derive(Deserialize)]
pub struct LoginReq {
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ext: Extensions,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginReq>,
) -> ApiResult<Response> {
    // Before anything else: a longer name is no account and is never kept.
    if req.username.chars().count() > super::limiter::MAX_USERNAME_CHARS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!(
                "a username has at most {} characters",
                super::limiter::MAX_USERNAME_CHARS
            ),
        ));
    }
    let ip = super::request_ip(&state, &ext, &headers);
    let key = super::limiter::username_key(&req.username);
    let limiter = &state.api.login_limiter;
    // Counted before hashing: parallel attempts cannot slip past the limit.
    if let Err(wait) = limiter.attempt(&key, ip) {
        return Ok(too_many_attempts(wait));
    }
    let store = state.store.clone();
    let (username, password) = (req.username, req.password);
    let found = match hashing(&state, async move {
        store.authenticate_staff(&username, &password).await
    })
    .await
    {
        Ok(found) => found?,
        Err(busy) => {
            limiter.not_checked(&key, ip);
            return Ok(busy);
        }
    };
    match found {
        Some((user, epoch)) => {
            limiter.succeeded(&key, ip);
            state
                .store
                .record_audit(
                    &format!("user:{}", user.id),
                    "auth.login",
                    "user",
                    &user.id,
                    json!({"address": address_json(ip)}),
                )
                .await?;
            tracing::info!(user = %user.username, "staff login");
            token_answer(&state, &user, epoch)
        }
        None => {
            if let Err(e) = state
                .store
                .record_audit(
                    "anonymous",
                    "auth.login_failed",
                    "username",
                    &key,
                    json!({"address": address_json(ip)}),
                )
                .await
            {
                tracing::error!(error = %e, "cannot record a failed login");
            }
            tracing::info!(username = %key, "failed staff login");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::BadCredentials,
                "wrong username or password, or the account is disabled",
            ))
        }
    }
}

/// Ends the session of the token this request carries.
pub async fn logout(
    caller: Caller,
    State(state): State<AppState>,
    ext: Extensions,
) -> ApiResult<Response> {
    let user = caller.staff_in(READ)?;
    let Some(super::StaffToken(claims)) = ext.get::<super::StaffToken>() else {
        return Err(ApiError::forbidden());
    };
    if claims.jti.is_empty() {
        // A token without an id can only be ended with all its siblings.
        state
            .store
            .revoke_user_sessions(&caller.actor(), &user.id)
            .await?;
    } else {
        state
            .store
            .revoke_staff_token(&caller.actor(), &user.id, &claims.jti, claims.exp)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordReq {
    old_password: String,
    new_password: String,
}

/// The caller changes its own password (with the old one); every earlier
/// token of the account stops, and a new token is answered.
pub async fn change_password(
    caller: Caller,
    State(state): State<AppState>,
    ext: Extensions,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChangePasswordReq>,
) -> ApiResult<Response> {
    let user = caller.staff_in(READ)?.clone();
    let ip = super::request_ip(&state, &ext, &headers);
    let key = super::limiter::username_key(&user.username);
    let limiter = &state.api.login_limiter;
    if let Err(wait) = limiter.attempt(&key, ip) {
        return Ok(too_many_attempts(wait));
    }
    let (store, actor, id) = (state.store.clone(), caller.actor(), user.id.clone());
    let changed = match hashing(&state, async move {
        store
            .change_password(&actor, &id, &req.old_password, &req.new_password)
            .await
    })
    .await
    {
        Ok(changed) => changed?,
        Err(busy) => {
            limiter.not_checked(&key, ip);
            return Ok(busy);
        }
    };
    let Some(epoch) = changed else {
        return Err(ApiError::bad_request(
            ErrorCode::WrongPassword,
            "the current password is wrong",
        ));
    };
    limiter.succeeded(&key, ip);
    token_answer(&state, &user, epoch)
}

pub async fn me(caller: Caller) -> ApiResult<Json<cabinet::User>> {
    Ok(Json(caller.staff_in(READ)?.clone()))
}

// ----------------------------------------------------------------- users ----

pub async fn list_users(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    Ok(Json(state.store.list_users().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserReq {
    username: String,
    display_name: String,
    role: StaffRole,
    password: String,
}

pub async fn create_user(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateUserReq>,
) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    let (store, actor) = (state.store.clone(), caller.actor());
    let made = hashing(&state, async move {
        store
            .create_user(
                &actor,
                NewUser {
                    username: req.username,
                    display_name: req.display_name,
                    role: req.role,
                    password: req.password,
                },
            )
            .await
    })
    .await;
    match made {
        Ok(user) => Ok(created(user?)),
        Err(busy) => Ok(busy),
    }
}

pub async fn disable_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    let user = state
        .store
        .set_user_active(&caller.actor(), &id, false)
        .await?;
    Ok(Json(user).into_response())
}

pub async fn enable_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    let user = state
        .store
        .set_user_active(&caller.actor(), &id, true)
        .await?;
    Ok(Json(user).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordReq {
    password: String,
}

/// An admin sets a new password; every token of the account stops.
pub async fn reset_password(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResetPasswordReq>,
) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    let (store, actor) = (state.store.clone(), caller.actor());
    match hashing(&state, async move {
        store.reset_password(&actor, &id, &req.password).await
    })
    .await
    {
        Ok(user) => Ok(Json(user?).into_response()),
        Err(busy) => Ok(busy),
    }
}

/// Ends every session (token) of an account: an admin for any account,
/// anyone for their own.
pub async fn revoke_sessions(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let me = caller.staff_in(READ)?;
    if me.id != id {
        caller.staff_in(ADMIN)?;
    }
    state
        .store
        .revoke_user_sessions(&caller.actor(), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// -------------------------------------------------------------- meetings ----

pub async fn list_meetings(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    Ok(Json(state.store.list_meetings().await?).into_response())
}

pub async fn create_meeting(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewMeeting>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    Ok(created(
        state.store.add_meeting(&caller.actor(), req).await?,
    ))
}

pub async fn get_meeting(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.may_read_meeting(&id)?;
    Ok(Json(meeting_exists(&state, &id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyMeetingReq {
    /// Default: the old title.
    #[serde(default)]
    title: Option<String>,
    /// The new planned start (Unix seconds); the old duration is kept.
    /// Absent: the copy has no planned time.
    #[serde(default)]
    starts_at: Option<i64>,
}

/// Copies a meeting into a new draft (agenda, participants, chair; not
/// documents or invitations), see [`cabinet::Store::copy_meeting`].
pub async fn copy_meeting(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CopyMeetingReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let copy = state
        .store
        .copy_meeting(&caller.actor(), &id, req.title.as_deref(), req.starts_at)
        .await?;
    Ok(created(copy))
}

pub async fn update_meeting(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MeetingPatch>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    Ok(Json(
        state
            .store
            .update_meeting(&caller.actor(), &id, req)
            .await?,
    )
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReq {
    status: MeetingStatus,
}

/// `POST /api/meetings/{id}/status`. Scheduling a meeting sends its
/// invitations: the e-mail of every active invitation whose unit has an
/// address is queued (`crate::mail`, when `[mail]` is configured).
pub async fn meeting_status(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<StatusReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let m = state
        .store
        .change_meeting_status(&caller.actor(), &id, req.status)
        .await?;
    // Ended or cancelled: its live sessions end now (docs/protocol.md).
    if m.status.is_frozen() {
        let n = state.hub.end_meeting(&id);
        tracing::info!(meeting = %id, sessions = n, "meeting ended; its live sessions end");
    }
    // Started: the participants waiting for it enter.
    if m.status == MeetingStatus::InProgress {
        state.hub.meeting_started(&id);
    }
    if m.status == MeetingStatus::Scheduled {
        let base = link_base(&state, &headers);
        let n = crate::mail::send_invitations(&state, &m, Some(&base)).await;
        tracing::info!(meeting = %id, emails = n, "meeting scheduled: invitations sent");
    }
    Ok(Json(m).into_response())
}

/// `GET /api/meetings/{id}/live`: who is connected to the meeting now
/// (participants, WHIP encoders, WHEP viewers) and the latest replacements
/// of a live invitation by a new session, for the operator.
pub async fn live_roster(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    meeting_exists(&state, &id).await?;
    Ok(Json(state.hub.roster(&id)).into_response())
}

// --------------------------------------------------------- bridge points ----

pub async fn list_bridge_points(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    Ok(Json(state.store.list_bridge_points().await?).into_response())
}

/// 400 `level_retired`: districts were abolished on 1 July 2025.
fn level_retired() -> ApiError {
    ApiError::bad_request(
        ErrorCode::LevelRetired,
        "the level \"district\" no longer exists for new units (abolished on 1 July 2025); \
         use province, department, commune, ward, special_zone or other",
    )
}

pub async fn create_bridge_point(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewBridgePoint>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    if !req.level.is_current() {
        return Err(level_retired());
    }
    Ok(created(
        state.store.add_bridge_point(&caller.actor(), req).await?,
    ))
}

pub async fn update_bridge_point(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BridgePointPatch>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    Ok(Json(
        state
            .store
            .update_bridge_point(&caller.actor(), &id, req)
            .await?,
    )
    .into_response())
}

/// The largest list of units `POST /api/bridge-points/import` reads.
const MAX_UNIT_CSV_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Check and report, write nothing.
    #[serde(default)]
    dry_run: bool,
    /// Import even when names or codes are already taken.
    #[serde(default)]
    allow_duplicates: bool,
}

/// Imports a province's list of units from a CSV body (`text/csv`): a
/// preview with `dry_run`, else all rows in one transaction or none.
pub async fn import_bridge_points(
    caller: Caller,
    State(state): State<AppState>,
    query: Result<axum::extract::Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::bad_request(ErrorCode::BadQuery, e.body_text()))?;
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(
        ctype.as_str(),
        "text/csv" | "text/plain" | "application/csv" | "application/vnd.ms-excel"
    ) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the list of units as a text/csv body",
        ));
    }
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("the list of units is larger than {MAX_UNIT_CSV_BYTES} bytes"),
        )
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_big()
        } else {
            ApiError::bad_request(ErrorCode::BadBody, e.body_text())
        }
    })?;
    if body.len() > MAX_UNIT_CSV_BYTES {
        return Err(too_big());
    }
    let report = state
        .store
        .import_bridge_points(&caller.actor(), &body, q.dry_run, q.allow_duplicates)
        .await?;
    let (status, code) = if q.dry_run {
        (StatusCode::OK, None)
    } else if report.imported {
        (StatusCode::CREATED, None)
    } else if !report.errors.is_empty() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(ErrorCode::ImportInvalid),
        )
    } else {
        (StatusCode::CONFLICT, Some(ErrorCode::ImportDuplicates))
    };
    let mut v = json!(report);
    if let Some(code) = code {
        v["code"] = json!(code);
        v["message"] = json!(if code == ErrorCode::ImportInvalid {
            "some rows have errors: nothing was imported"
        } else {
            "some names or codes are already taken: nothing was imported \
             (allow_duplicates=true imports them anyway)"
        });
    }
    Ok((status, Json(v)).into_response())
}

// ---------------------------------------------------------- participants ----

pub async fn list_participants(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    meeting_exists(&state, &id).await?;
    Ok(Json(state.store.list_participants(&id).await?).into_response())
}

pub async fn create_participant(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewParticipant>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    Ok(created(
        state
            .store
            .add_participant(&caller.actor(), &id, req)
            .await?,
    ))
}

pub async fn update_participant(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ParticipantPatch>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    Ok(Json(
        state
            .store
            .update_participant(&caller.actor(), &id, req)
            .await?,
    )
    .into_response())
}

pub async fn delete_participant(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    state.store.delete_participant(&caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----------------------------------------------------------- invitations ----

/// The base of invitation (and answer) links for this request (see
/// [`crate::links`]).
pub(super) fn link_base(state: &AppState, headers: &HeaderMap) -> String {
    crate::links::link_base(
        state.api.public_url.as_deref(),
        state.api.tls,
        headers,
        &state.api.fallback_url,
    )
}

/// An invitation as the API shows it; `url` (with its token) only for staff
/// who prepare meetings, built on `base`.
pub(super) fn invitation_json(
    state: &AppState,
    meeting: &cabinet::Meeting,
    inv: &Invitation,
    url_base: Option<&str>,
) -> Value {
    let now = cabinet::now_unix();
    let st = if inv.is_revoked() {
        "revoked"
    } else if inv.expires_at <= now {
        "expired"
    } else {
        "active"
    };
    let mut v = json!({
        "id": inv.id,
        "meeting_id": inv.meeting_id,
        "name": inv.name,
        "role": inv.role,
        "participant_id": inv.participant_id,
        "bridge_point_id": inv.bridge_point_id,
        "email": inv.email,
        "created_at": inv.created_at,
        "expires_at": inv.expires_at,
        "expires_before_meeting": st == "active"
            && crate::links::expires_before_meeting(meeting, inv.expires_at),
        "revoked_at": inv.revoked_at,
        "state": st,
        "answer": super::answers::answer_json(inv),
    });
    if let Some(base) = url_base.filter(|_| st == "active") {
        // Claims are a function of the invitation and HS256 is deterministic:
        // this is the same token as the one issued.
        if let Ok(token) = state.keys.sign(&crate::auth::claims_for(inv)) {
            v["url"] = json!(format!("{base}/join#{token}"));
            v["url_warning"] = json!(crate::links::link_warning(base));
        }
    }
    v
}

pub async fn list_invitations(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user = caller.staff_in(READ)?;
    let base = PREPARE
        .contains(&user.role)
        .then(|| link_base(&state, &headers));
    let meeting = meeting_exists(&state, &id).await?;
    let list: Vec<Value> = state
        .store
        .list_invitations(&id)
        .await?
        .iter()
        .map(|i| invitation_json(&state, &meeting, i, base.as_deref()))
        .collect();
    if base.is_some() && !list.is_empty() {
        // The links (tokens) were shown to this account.
        super::audit::record_later(
            &state,
            caller.actor(),
            "invitation.links_shown",
            "meeting",
            id.clone(),
            json!({"invitations": list.iter().filter_map(|i| i.get("id")).collect::<Vec<_>>()}),
        );
    }
    Ok(Json(list).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationReq {
    name: String,
    role: Role,
    #[serde(default)]
    participant_id: Option<String>,
    #[serde(default)]
    bridge_point_id: Option<String>,
    #[serde(default)]
    ttl_hours: Option<u32>,
    /// Unix seconds; instead of `ttl_hours`. Neither: until the meeting ends
    /// (see [`crate::links::default_expiry`]).
    #[serde(default)]
    expires_at: Option<i64>,
    /// Where its e-mail goes (a member's or the chair's address); empty or
    /// absent: none, or, for a unit, the unit's address.
    #[serde(default)]
    email: String,
}

/// The longest an invitation may live, in seconds.
pub(super) const MAX_INVITATION_SECONDS: i64 = 366 * 24 * 3600;

pub async fn create_invitation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateInvitationReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let meeting = meeting_exists(&state, &id).await?;
    let now = cabinet::now_unix();
    let expires_at = match (req.expires_at, req.ttl_hours) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                "give expires_at or ttl_hours, not both",
            ))
        }
        (Some(at), None) => {
            if at <= now + 60 || at > now + MAX_INVITATION_SECONDS {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidInput,
                    "expires_at must be between a minute and 366 days from now",
                ));
            }
            at
        }
        (None, Some(hours)) => {
            if !(1..=24 * 366).contains(&hours) {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidInput,
                    "ttl_hours must be between 1 and 8784",
                ));
            }
            now + i64::from(hours) * 3600
        }
        (None, None) => crate::links::default_expiry(
            &meeting,
            now,
            state.api.invite_ttl_hours,
            state.api.invite_grace_hours,
        )
        .min(now + MAX_INVITATION_SECONDS),
    };
    let inv = state
        .store
        .add_invitation(
            &caller.actor(),
            NewInvitation {
                meeting_id: id,
                name: req.name,
                role: req.role,
                ttl_seconds: expires_at - now,
                participant_id: req.participant_id,
                bridge_point_id: req.bridge_point_id,
                email: req.email,
            },
        )
        .await?;
    let token = state
        .keys
        .sign(&crate::auth::claims_for(&inv))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign an invitation token");
            ApiError::internal()
        })?;
    let base = link_base(&state, &headers);
    // Invited after the invitations went out: its e-mail goes now.
    crate::mail::send_invitations(&state, &meeting, Some(&base)).await;
    let mut v = invitation_json(&state, &meeting, &inv, None);
    v["url"] = json!(format!("{base}/join#{token}"));
    v["url_warning"] = json!(crate::links::link_warning(&base));
    v["token"] = json!(token);
    Ok(created(v))
}

pub async fn revoke_invitation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let inv = state
        .store
        .revoke_invitation_by(&caller.actor(), &id)
        .await?;
    // A live session of this invitation ends now, not at its next request.
    if state.hub.kick_invitation(&inv.meeting_id, &inv.id) {
        tracing::info!(invitation = %inv.id, meeting = %inv.meeting_id, "revoked invitation's session ended");
    }
    let meeting = meeting_exists(&state, &inv.meeting_id).await?;
    Ok(Json(invitation_json(&state, &meeting, &inv, None)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteGroupReq {
    /// Every active unit of these levels is invited (`district` included,
    /// for old data).
    levels: Vec<cabinet::BridgeLevel>,
}

/// Invites every active bridge point of the chosen levels that has no
/// active invitation to the meeting yet, in one step; each invitation lives
/// as long as one made without an expiry (see [`crate::links::default_expiry`]).
pub async fn invite_group(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<InviteGroupReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let meeting = meeting_exists(&state, &id).await?;
    if req.levels.is_empty() || req.levels.len() > cabinet::BridgeLevel::ALL.len() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "give between one and seven levels",
        ));
    }
    let mut levels = req.levels.clone();
    levels.sort_by_key(|l| l.as_str());
    levels.dedup();
    let made = state
        .store
        .invite_bridge_points(
            &caller.actor(),
            &id,
            &levels,
            group_invitation_ttl(&state, &meeting),
        )
        .await?;
    Ok(group_invited(&state, &headers, &meeting, &made).await)
}

/// Seconds an invitation made for a group lives: as long as one made
/// without an expiry (see [`crate::links::default_expiry`]), at most
/// [`MAX_INVITATION_SECONDS`].
pub(super) fn group_invitation_ttl(state: &AppState, meeting: &cabinet::Meeting) -> i64 {
    let now = cabinet::now_unix();
    crate::links::default_expiry(
        meeting,
        now,
        state.api.invite_ttl_hours,
        state.api.invite_grace_hours,
    )
    .min(now + MAX_INVITATION_SECONDS)
        - now
}

/// The answer to inviting a group (of levels or a saved one): the new
/// invitations are e-mailed at once when the meeting's invitations went out
/// already, and listed with their links (201).
pub(super) async fn group_invited(
    state: &AppState,
    headers: &HeaderMap,
    meeting: &cabinet::Meeting,
    made: &[cabinet::Invitation],
) -> Response {
    let base = link_base(state, headers);
    crate::mail::send_invitations(state, meeting, Some(&base)).await;
    let list: Vec<Value> = made
        .iter()
        .map(|i| invitation_json(state, meeting, i, Some(&base)))
        .collect();
    created(list)
}

/// A CSV cell: quoted when needed, and never read as a formula by a
/// spreadsheet (a leading `=`, `@`, or `+`/`-` not starting a number gets `'`).
pub(super) fn csv_cell(v: &str) -> String {
    let formula = match v.chars().next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !v[1..].starts_with(|c: char| c.is_ascii_digit() || c == ' '),
        _ => false,
    };
    let v = if formula {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// Unix seconds as `2026-12-14 17:00 (UTC+7)`, Vietnam's time.
pub(super) fn vn_time(at: i64) -> String {
    let offset = time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => {
            let t = t.to_offset(offset);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} (UTC+7)",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        Err(_) => at.to_string(),
    }
}

/// The meeting's active invitation links as CSV (UTF-8 with BOM, for
/// spreadsheets): name, level, code, operator phone, link, expiry, for
/// operators who get their link by phone or on paper. Showing the links is
/// audited, as the invitation list does.
pub async fn export_invitations(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let meeting = meeting_exists(&state, &id).await?;
    let base = link_base(&state, &headers);
    let units: std::collections::HashMap<String, cabinet::BridgePoint> = state
        .store
        .list_bridge_points()
        .await?
        .into_iter()
        .map(|b| (b.id.clone(), b))
        .collect();
    // Each live link's short code ("mã tham dự"), as on the printed page.
    let codes = state
        .store
        .ensure_short_codes(&id, cabinet::now_unix(), &super::codes::key_of(&state))
        .await?;
    let mut out =
        String::from("\u{feff}name,level,code,operator_phone,link,expires,short_code\r\n");
    let mut ids = Vec::new();
    let mut invs = state.store.list_invitations(&id).await?;
    invs.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    for inv in &invs {
        let v = invitation_json(&state, &meeting, inv, Some(&base));
        let Some(url) = v.get("url").and_then(Value::as_str) else {
            continue; // revoked or expired: no link to hand out
        };
        let unit = inv.bridge_point_id.as_ref().and_then(|b| units.get(b));
        let cells = [
            inv.name.clone(),
            unit.map(|u| u.level.as_str().to_owned())
                .unwrap_or_default(),
            unit.map(|u| u.code.clone()).unwrap_or_default(),
            unit.map(|u| u.operator_phone.clone()).unwrap_or_default(),
            url.to_owned(),
            vn_time(inv.expires_at),
            codes
                .get(&inv.id)
                .map(|n| {
                    crate::short_codes::display(&crate::short_codes::code_for(
                        &state.keys,
                        &inv.id,
                        *n,
                    ))
                })
                .unwrap_or_default(),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
        ids.push(inv.id.clone());
    }
    if !ids.is_empty() {
        super::audit::record_later(
            &state,
            caller.actor(),
            "invitation.links_exported",
            "meeting",
            id.clone(),
            json!({"invitations": ids}),
        );
    }
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"invitation-links.csv\"".to_owned(),
            ),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        out,
    )
        .into_response())
}

// ---------------------------------------------------------------- agenda ----

pub async fn list_agenda(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.may_read_meeting(&id)?;
    meeting_exists(&state, &id).await?;
    Ok(Json(state.store.list_agenda(&id).await?).into_response())
}

pub async fn create_agenda_item(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    idem: IdempotencyHeader,
    ApiJson(req): ApiJson<NewAgendaItem>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let actor = caller.actor();
    let duration = req
        .duration_minutes
        .map(|d| d.to_string())
        .unwrap_or_default();
    let key = idem.with_request(&[
        b"POST /api/meetings/{id}/agenda",
        id.as_bytes(),
        req.title.as_bytes(),
        req.presenter.as_bytes(),
        duration.as_bytes(),
    ]);
    if let Some(r) = replay(&state, &actor, key.as_ref()).await? {
        return Ok(r);
    }
    match state
        .store
        .add_agenda_item_idempotent(&actor, &id, req, key.as_ref())
        .await
    {
        Ok(item) => {
            agenda_changed(&state, &id);
            Ok(created(item))
        }
        Err(e) => replay_after(&state, &actor, key.as_ref(), e).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReorderReq {
    item_ids: Vec<String>,
}

pub async fn reorder_agenda(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReorderReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let items = state
        .store
        .reorder_agenda(&caller.actor(), &id, &req.item_ids)
        .await?;
    agenda_changed(&state, &id);
    Ok(Json(items).into_response())
}

pub async fn update_agenda_item(
    caller: Caller,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    ApiJson(req): ApiJson<AgendaItemPatch>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let item = state
        .store
        .update_agenda_item(&caller.actor(), &item_id, req)
        .await?;
    agenda_changed(&state, &item.meeting_id);
    Ok(Json(item).into_response())
}

pub async fn delete_agenda_item(
    caller: Caller,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let item = state
        .store
        .delete_agenda_item(&caller.actor(), &item_id)
        .await?;
    agenda_changed(&state, &item.meeting_id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
