//! `PUT /api/invitation/answer`: the holder of an invitation answers
//! attend, absent (with a reason) or sends a substitute, before the meeting.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiResult, Caller};
use crate::AppState;

/// The answer as the API shows it (`null` while unanswered).
pub fn answer_json(inv: &cabinet::Invitation) -> Value {
    match &inv.answer {
        None => Value::Null,
        Some(a) => json!({
            "answer": a.answer,
            "reason": a.reason,
            "substitute_name": a.substitute_name,
            "substitute_position": a.substitute_position,
            "answered_at": a.answered_at,
        }),
    }
}

pub async fn put_answer(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<cabinet::NewAnswer>,
) -> ApiResult<Json<Value>> {
    let Caller::Invitee { invitation, .. } = &caller else {
        return Err(ApiError::forbidden());
    };
    let inv = state
        .store
        .answer_invitation(&caller.actor(), &invitation.id, &req)
        .await?;
    Ok(Json(
        json!({"invitation_id": inv.id, "answer": answer_json(&inv)}),
    ))
}
