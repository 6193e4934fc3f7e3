//! The notice of conclusions ("thông báo kết luận") of a meeting
//! (`cabinet::notice`): as an HTML page and as a PDF in the layout of
//! Decree 30/2020/NĐ-CP, generated from the record on each request; its
//! due date counted in working days (`[calendar]`, `[deadlines]`) and
//! whether the secretariat marked it issued; and the documents' deadline
//! before the meeting.
//!
//! Who: reading (the notice, its status, the documents' deadline): staff
//! admin, secretary and operator, and the chair's or secretary's
//! invitation to the meeting (the permission table's `Moderate`), as for
//! the minutes. Marking the notice issued: staff admin and secretary only
//! (the secretariat issues it; no invitation may).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::minutes::{allowed, html_file, pdf_file};
use super::{ApiError, ApiJson, ApiResult, Caller, PREPARE, READ};
use crate::AppState;

async fn record(state: &AppState, meeting_id: &str) -> ApiResult<cabinet::notice::NoticeRecord> {
    Ok(state
        .store
        .notice_record(
            meeting_id,
            state.api.minutes_header.clone(),
            &state.api.quorum,
            &state.api.notice,
        )
        .await?)
}

/// `GET /api/meetings/{id}/notice`: the notice as an HTML page.
pub async fn html(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let r = record(&state, &id).await?;
    Ok(html_file(
        cabinet::notice::html(&r),
        "thong-bao-ket-luan",
        &id,
    ))
}

/// `GET /api/meetings/{id}/notice.pdf`: the notice as a PDF (a download).
pub async fn pdf(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let r = record(&state, &id).await?;
    pdf_file(move || cabinet::notice::pdf(&r), "thong-bao-ket-luan", &id).await
}

async fn status_now(state: &AppState, id: &str) -> ApiResult<Response> {
    let s = state
        .store
        .notice_status(
            id,
            &state.api.calendar,
            state.api.notice.due_working_days,
            cabinet::now_unix(),
        )
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(s)).into_response())
}

/// `GET /api/meetings/{id}/notice/status`: the due date, the working days
/// left, whether it is overdue, and its issue if marked.
pub async fn status(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    status_now(&state, &id).await
}

/// The body of `POST /api/meetings/{id}/notice/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Issued (true) or, to undo a mistake, not issued (false).
    issued: bool,
    /// The number the clerical office gave it; may be empty.
    #[serde(default)]
    number: String,
}

/// `POST /api/meetings/{id}/notice/status`: marks the notice issued (or
/// not); answers the status as it now is.
pub async fn set_status(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<IssueRequest>,
) -> ApiResult<Response> {
    match &caller {
        Caller::Staff(u) if PREPARE.contains(&u.role) => {}
        _ => return Err(ApiError::forbidden()),
    }
    state
        .store
        .set_notice_issued(&caller.actor(), &id, req.issued, &req.number)
        .await?;
    status_now(&state, &id).await
}

/// `GET /api/meetings/{id}/documents-deadline`: the last day to send the
/// meeting's documents and those sent after it.
pub async fn documents_deadline(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let d = state
        .store
        .documents_deadline(
            &id,
            &state.api.calendar,
            state.api.documents_deadline,
            cabinet::now_unix(),
        )
        .await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(d)).into_response())
}
