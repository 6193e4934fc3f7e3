//! Saved groups of units ("khối kinh tế"): listed by staff who read,
//! created, renamed, changed and deleted by staff who prepare meetings,
//! and invited to a meeting in one step
//! (`POST /api/meetings/{id}/invitations/unit-group`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{NewUnitGroup, UnitGroupPatch};
use serde::Deserialize;

use super::handlers::{group_invitation_ttl, group_invited, meeting_exists};
use super::{ApiJson, ApiResult, Caller, PREPARE, READ};
use crate::AppState;

pub async fn list(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    Ok(Json(state.store.list_unit_groups().await?).into_response())
}

pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewUnitGroup>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let g = state.store.add_unit_group(&caller.actor(), req).await?;
    Ok((StatusCode::CREATED, Json(g)).into_response())
}

pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UnitGroupPatch>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let g = state
        .store
        .update_unit_group(&caller.actor(), &id, req)
        .await?;
    Ok(Json(g).into_response())
}

pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    state.store.delete_unit_group(&caller.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteUnitGroupReq {
    group_id: String,
}

/// Invites every active unit of a saved group that has no active
/// invitation to the meeting yet, in one step; each invitation lives as long
/// as one made without an expiry (see [`crate::links::default_expiry`]).
pub async fn invite(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<InviteUnitGroupReq>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let meeting = meeting_exists(&state, &id).await?;
    let made = state
        .store
        .invite_unit_group(
            &caller.actor(),
            &id,
            &req.group_id,
            group_invitation_ttl(&state, &meeting),
        )
        .await?;
    Ok(group_invited(&state, &headers, &meeting, &made).await)
}
