//! `GET /api/invitation/notices`: the in-app notices of an invitation, for
//! its join page and waiting screen: the invitation was sent, the reminder
//! before the meeting, and the documents that changed since the invitation
//! (those its holder may read). Derived from what the server records: the
//! e-mail outbox, the audit log's scheduling, the documents' times; nothing
//! is stored for it. With e-mail on, each says whether its e-mail went.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::mail::OutboxMail;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Caller};
use crate::AppState;

/// The e-mail of a notice: its status, or `null` when none was queued.
fn email(m: Option<&OutboxMail>) -> Value {
    m.map_or(Value::Null, |m| json!(m.status))
}

pub async fn list(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    let Caller::Invitee {
        invitation: inv,
        meeting,
        ..
    } = &caller
    else {
        return Err(ApiError::forbidden());
    };
    let now = cabinet::now_unix();
    let invited_at = crate::mail::invited_at(&state, meeting, inv).await?;
    let mut notices = Vec::new();
    if let Some(at) = invited_at {
        let mail = state
            .store
            .mail_by_key(&format!("invitation:{}", inv.id))
            .await?;
        notices.push(json!({"kind": "invitation", "at": at, "email": email(mail.as_ref())}));
        // The reminder: its e-mail's, else the moment it falls due
        // (`mail.meeting_reminder_hours` before the start, 24 h without
        // e-mail), once the invitation was sent.
        let mail = state
            .store
            .mail_by_key(&format!("meeting_reminder:{}", inv.id))
            .await?;
        let hours = state.api.mail.as_ref().map_or_else(
            || crate::mail::MailConfig::default().meeting_reminder_hours,
            |m| m.config.meeting_reminder_hours,
        );
        let due = match (&mail, meeting.starts_at) {
            (Some(m), _) => Some(m.created_at),
            (None, Some(starts)) if hours > 0 => {
                let due = starts - i64::from(hours) * 3600;
                (now >= due && now < starts).then_some(due.max(at))
            }
            _ => None,
        };
        if let Some(due) = due {
            notices.push(json!({
                "kind": "reminder",
                "at": due,
                "starts_at": meeting.starts_at,
                "email": email(mail.as_ref()),
            }));
        }
        let docs = crate::mail::meeting_documents(&state, &meeting.id).await?;
        for c in crate::mail::document_changes(&docs, at, now, |d| caller.may_read_document(d)) {
            let mut v = json!({
                "kind": "documents_changed",
                "at": c.at,
                "document_id": c.document_id,
                "title": c.title,
                "change": c.change,
            });
            if let Some(n) = c.version {
                v["version"] = json!(n);
            }
            if let Some(t) = c.replaces_title {
                v["replaces_title"] = json!(t);
            }
            notices.push(v);
        }
    }
    // Newest first; within one second, documents before the reminder
    // before the invitation (the order they come in).
    let rank = |n: &Value| match n["kind"].as_str() {
        Some("invitation") => 2,
        Some("reminder") => 1,
        _ => 0,
    };
    notices.sort_by_key(|n| {
        (
            std::cmp::Reverse(n["at"].as_i64().unwrap_or_default()),
            rank(n),
        )
    });
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"invited_at": invited_at, "notices": notices})),
    )
        .into_response())
}
