//! The e-mail outbox as the secretariat sees it (`crate::mail`): what was
//! queued for a meeting or a written opinion request, sent, pending (with
//! the SMTP server's last error) or given up, and who has no address; and
//! sending a meeting's invitations again to those that have none queued.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::mail::{MailStatus, OutboxMail};
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Caller, PREPARE, READ};
use crate::protocol::ErrorCode;
use crate::AppState;

fn counts(list: &[OutboxMail]) -> Value {
    let n = |s: MailStatus| list.iter().filter(|m| m.status == s).count();
    json!({
        "pending": n(MailStatus::Pending),
        "sent": n(MailStatus::Sent),
        "failed": n(MailStatus::Failed),
    })
}

async fn meeting_view(state: &AppState, id: &str) -> ApiResult<Value> {
    let Some(meeting) = state.store.get_meeting(id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::MeetingNotFound,
            format!("meeting {id} not found"),
        ));
    };
    let messages = state.store.mail_of_meeting(id).await?;
    let without: Vec<Value> = state
        .store
        .mailable_invitations(id)
        .await?
        .into_iter()
        .filter(|m| m.email.is_empty())
        .map(|m| json!({"invitation_id": m.invitation.id, "name": m.invitation.name}))
        .collect();
    Ok(json!({
        "enabled": state.api.mail.is_some(),
        "invitations_sent": crate::mail::invitations_sent(&meeting),
        "counts": counts(&messages),
        "messages": messages,
        "without_email": without,
    }))
}

fn no_store(status: StatusCode, v: Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(v)).into_response()
}

/// `GET /api/meetings/{id}/mail`: the meeting's e-mail (staff).
pub async fn meeting(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    Ok(no_store(StatusCode::OK, meeting_view(&state, &id).await?))
}

/// `POST /api/meetings/{id}/mail/invitations`: queues the invitation
/// e-mail of every active invitation with an address that has none yet
/// (units given an address after the meeting was scheduled, invitations
/// made since). The meeting must be scheduled or under way (409
/// `invalid_transition` otherwise: scheduling it sends them).
pub async fn send_invitations(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let Some(meeting) = state.store.get_meeting(&id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::MeetingNotFound,
            format!("meeting {id} not found"),
        ));
    };
    if !crate::mail::invitations_sent(&meeting) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidTransition,
            "the meeting is not scheduled: scheduling it sends the invitations",
        ));
    }
    let base = super::handlers::link_base(&state, &headers);
    let queued = crate::mail::send_invitations(&state, &meeting, Some(&base)).await;
    let mut v = meeting_view(&state, &id).await?;
    v["queued"] = json!(queued);
    Ok(no_store(StatusCode::OK, v))
}

/// `GET /api/opinions/{id}/mail`: the e-mail of a written opinion request
/// (staff).
pub async fn opinion(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    if state.store.get_opinion_request(&id).await?.is_none() {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("opinion request {id} not found"),
        ));
    }
    let messages = state.store.mail_of_opinion(&id).await?;
    let without: Vec<Value> = state
        .store
        .opinion_recipients(&id)
        .await?
        .into_iter()
        .filter(|r| r.email.is_empty())
        .map(|r| json!({"recipient_id": r.id, "name": r.name}))
        .collect();
    Ok(no_store(
        StatusCode::OK,
        json!({
            "enabled": state.api.mail.is_some(),
            "counts": counts(&messages),
            "messages": messages,
            "without_email": without,
        }),
    ))
}
