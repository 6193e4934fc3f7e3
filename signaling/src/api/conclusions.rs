//! The conclusion ("kết luận") of each agenda item: set by the chair or the
//! secretariat during or after the meeting, read by everyone in it.
//!
//! Who: staff admin and secretary set; an invitation of the meeting's chair
//! or secretary too (the permission table's `Moderate`; an invitation
//! token stops when the meeting ends, so afterwards the secretariat's
//! accounts write them up). Staff admin, secretary and operator read, and
//! every invitee of the meeting. Each change is pushed to the meeting's
//! live sessions as `conclusion_changed`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiResult, Caller, PREPARE};
use crate::permissions::{allows, Permission};
use crate::protocol::{ErrorCode, ServerMsg};
use crate::AppState;

/// Staff that prepare meetings, or the chair's or secretary's invitation to
/// `meeting_id`; else 403.
fn may_conclude(caller: &Caller, meeting_id: Option<&str>) -> ApiResult<()> {
    match caller {
        Caller::Staff(u) if PREPARE.contains(&u.role) => Ok(()),
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } if meeting_id.is_none_or(|m| m == meeting.id)
            && allows(invitation.role, Permission::Moderate) =>
        {
            Ok(())
        }
        _ => Err(ApiError::forbidden()),
    }
}

/// The body of `PUT /api/agenda/{item_id}/conclusion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConclusionRequest {
    /// The conclusion; empty (or blank) clears it.
    text: String,
}

/// `PUT /api/agenda/{item_id}/conclusion`: the conclusion as it now is, or
/// 204 when the text was empty and the conclusion is cleared.
pub async fn put(
    caller: Caller,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    ApiJson(req): ApiJson<ConclusionRequest>,
) -> ApiResult<Response> {
    // Whose meeting it is is known only once the item is: a caller without
    // the right gets 403 before learning whether the item exists.
    may_conclude(&caller, None)?;
    let Some(item) = state.store.get_agenda_item(&item_id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::AgendaItemNotFound,
            format!("agenda item {item_id} not found"),
        ));
    };
    may_conclude(&caller, Some(&item.meeting_id))?;
    let c = state
        .store
        .set_conclusion(&caller.actor(), &item_id, &req.text)
        .await?;
    state.hub.send_to_all(
        &item.meeting_id,
        &ServerMsg::ConclusionChanged {
            item_id: item_id.clone(),
            text: c.as_ref().map(|c| c.text.clone()),
        },
    );
    Ok(match c {
        Some(c) => Json(c).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `GET /api/meetings/{id}/conclusions`: the meeting's conclusions in
/// agenda order (items without one are left out).
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.may_read_meeting(&id)?;
    if matches!(caller, Caller::Staff(_)) && state.store.get_meeting(&id).await?.is_none() {
        return Err(cabinet::Error::MeetingNotFound(id).into());
    }
    let list = state.store.list_conclusions(&id).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(list)).into_response())
}
