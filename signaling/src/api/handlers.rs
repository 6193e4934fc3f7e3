//! Auth, users, meetings, bridge points, participants, invitations and the
//! agenda. Each handler checks the caller first, then does its work.

use axum::extract::{Path, State};
use axum::http::{Extensions, StatusCode};
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
    peer_ip, replay, replay_after, ApiError, ApiJson, ApiResult, Caller, IdempotencyHeader, ADMIN,
    PREPARE, READ,
};
use crate::AppState;

fn created(v: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// Tells the meeting's live sessions that its agenda or documents changed.
pub(super) fn agenda_changed(state: &AppState, meeting_id: &str) {
    state.hub.broadcast(
        meeting_id,
        &json!({"type": "agenda_changed", "meeting_id": meeting_id}),
    );
}

async fn meeting_exists(state: &AppState, id: &str) -> ApiResult<cabinet::Meeting> {
    state
        .store
        .get_meeting(id)
        .await?
        .ok_or_else(|| cabinet::Error::MeetingNotFound(id.to_owned()).into())
}

// ------------------------------------------------------------------ auth ----

#[derive(Deserialize)]
pub struct LoginReq {
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ext: Extensions,
    ApiJson(req): ApiJson<LoginReq>,
) -> ApiResult<Response> {
    let ip = peer_ip(&ext);
    let key = req.username.trim().to_lowercase();
    let limiter = &state.api.login_limiter;
    if let Err(wait) = limiter.check(&key, ip) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins; try again in {wait} s"),
        ));
    }
    match state
        .store
        .authenticate(&req.username, &req.password)
        .await?
    {
        Some(user) => {
            limiter.succeeded(&key, ip);
            let claims =
                crate::auth::StaffClaims::for_user(&user, state.api.staff_token_ttl_seconds);
            let token = state.keys.sign_staff(&claims).map_err(|e| {
                tracing::error!(error = %e, "cannot sign a staff token");
                ApiError::internal()
            })?;
            tracing::info!(user = %user.username, "staff login");
            Ok(
                Json(json!({"token": token, "expires_at": claims.exp, "user": user}))
                    .into_response(),
            )
        }
        None => {
            limiter.failed(&key, ip);
            tracing::info!(username = %key, "failed staff login");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong username or password, or the account is disabled",
            ))
        }
    }
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
    let user = state
        .store
        .create_user(
            &caller.actor(),
            NewUser {
                username: req.username,
                display_name: req.display_name,
                role: req.role,
                password: req.password,
            },
        )
        .await?;
    Ok(created(user))
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

pub async fn meeting_status(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<StatusReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let m = state
        .store
        .change_meeting_status(&caller.actor(), &id, req.status)
        .await?;
    Ok(Json(m).into_response())
}

// --------------------------------------------------------- bridge points ----

pub async fn list_bridge_points(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    Ok(Json(state.store.list_bridge_points().await?).into_response())
}

pub async fn create_bridge_point(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewBridgePoint>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
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

/// An invitation as the API shows it; `url` (with its token) only for staff
/// who prepare meetings.
fn invitation_json(state: &AppState, inv: &Invitation, with_url: bool) -> Value {
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
        "created_at": inv.created_at,
        "expires_at": inv.expires_at,
        "revoked_at": inv.revoked_at,
        "state": st,
    });
    if with_url && st == "active" {
        // Claims are a function of the invitation and HS256 is deterministic:
        // this is the same token as the one issued.
        if let Ok(token) = state.keys.sign(&crate::auth::claims_for(inv)) {
            v["url"] = json!(format!("{}/join#{token}", state.api.public_url));
        }
    }
    v
}

pub async fn list_invitations(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let user = caller.staff_in(READ)?;
    let with_url = PREPARE.contains(&user.role);
    meeting_exists(&state, &id).await?;
    let list: Vec<Value> = state
        .store
        .list_invitations(&id)
        .await?
        .iter()
        .map(|i| invitation_json(&state, i, with_url))
        .collect();
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
}

pub async fn create_invitation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateInvitationReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let hours = req.ttl_hours.unwrap_or(state.api.invite_ttl_hours);
    if !(1..=24 * 366).contains(&hours) {
        return Err(ApiError::bad_request(
            "invalid_input",
            "ttl_hours must be between 1 and 8784",
        ));
    }
    let inv = state
        .store
        .add_invitation(
            &caller.actor(),
            NewInvitation {
                meeting_id: id,
                name: req.name,
                role: req.role,
                ttl_seconds: i64::from(hours) * 3600,
                participant_id: req.participant_id,
                bridge_point_id: req.bridge_point_id,
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
    let mut v = invitation_json(&state, &inv, false);
    v["url"] = json!(format!("{}/join#{token}", state.api.public_url));
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
    Ok(Json(invitation_json(&state, &inv, false)).into_response())
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
