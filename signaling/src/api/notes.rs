//! Notes and comments on a page of a document (docs/api.md, "Notes on
//! documents").
//!
//! Who: an invitee who may read the document writes notes, private to its
//! invitation (nobody else, staff included, ever reads them), and exports
//! its own as CSV; the committee (the chair's and members' invitations,
//! and an invitation tied to a committee participant) also writes
//! comments, until the meeting ends. Comments are read by the committee,
//! the secretary's invitation and the secretariat's accounts (admin,
//! secretary, operator), per document. Each author changes and deletes
//! only its own.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{MeetingStatus, NewNote, NoteKind, NoteReader};
use serde::Deserialize;
use serde_json::json;

use super::handlers::csv_cell;
use super::{ApiError, ApiJson, ApiResult, Caller, READ};
use crate::permissions::{allows, Permission};
use crate::protocol::ErrorCode;
use crate::AppState;

/// Whether the caller reads the committee's comments.
fn sees_comments(caller: &Caller) -> bool {
    match caller {
        Caller::Staff(u) => READ.contains(&u.role),
        Caller::Invitee { .. } => writes_comments(caller) || is_secretary(caller),
    }
}

fn is_secretary(caller: &Caller) -> bool {
    matches!(caller, Caller::Invitee { invitation, .. } if invitation.role == cabinet::Role::Secretary)
}

/// The committee: the chair's and members' invitations, or one tied to a
/// committee participant.
fn writes_comments(caller: &Caller) -> bool {
    match caller {
        Caller::Staff(_) => false,
        Caller::Invitee {
            invitation,
            participant_role,
            ..
        } => {
            allows(invitation.role, Permission::ReadCommitteeDocuments)
                || participant_role.is_some_and(|r| r.is_committee())
        }
    }
}

/// The document if the caller may read it (403 before it learns whether
/// it exists, for invitees).
async fn readable(caller: &Caller, state: &AppState, id: &str) -> ApiResult<cabinet::Document> {
    match state.store.get_document(id).await? {
        Some(d) if caller.may_read_document(&d) => Ok(d),
        Some(_) => Err(ApiError::forbidden()),
        None => {
            caller.staff_in(READ)?;
            Err(ApiError::not_found(
                ErrorCode::DocumentNotFound,
                format!("document {id} not found"),
            ))
        }
    }
}

/// `GET /api/documents/{id}/notes`: the caller's own notes and comments on
/// the document, and the committee's comments when it sees them.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    readable(&caller, &state, &id).await?;
    let actor = caller.actor();
    let notes = state
        .store
        .list_notes(
            &id,
            &NoteReader {
                actor: &actor,
                sees_comments: sees_comments(&caller),
            },
        )
        .await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"document_id": id, "notes": notes})),
    )
        .into_response())
}

/// The body of `POST /api/documents/{id}/notes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    page: i64,
    /// The version the page belongs to (default: the current one).
    #[serde(default)]
    version: Option<i64>,
    /// `note` (default) or `comment`.
    #[serde(default)]
    kind: Option<NoteKind>,
    text: String,
}

/// `POST /api/documents/{id}/notes`: a note (or a comment) on a page.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteRequest>,
) -> ApiResult<Response> {
    let Caller::Invitee {
        invitation,
        meeting,
        ..
    } = &caller
    else {
        // The secretariat reads comments; it writes none here.
        return Err(ApiError::forbidden());
    };
    readable(&caller, &state, &id).await?;
    let kind = req.kind.unwrap_or(NoteKind::Note);
    if kind == NoteKind::Comment {
        if !writes_comments(&caller) {
            return Err(ApiError::forbidden());
        }
        if !matches!(
            meeting.status,
            MeetingStatus::Draft | MeetingStatus::Scheduled | MeetingStatus::InProgress
        ) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "comments are written until the meeting ends",
            ));
        }
    }
    let note = state
        .store
        .add_note(
            &caller.actor(),
            &invitation.name,
            &NewNote {
                document_id: id,
                page: req.page,
                version: req.version,
                kind,
                text: req.text,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

/// The body of `PATCH /api/notes/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotePatch {
    text: String,
}

fn no_such_note(id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::NotFound, format!("note {id} not found"))
}

/// `PATCH /api/notes/{id}`: the author changes its text.
pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NotePatch>,
) -> ApiResult<Response> {
    if !matches!(caller, Caller::Invitee { .. }) {
        return Err(ApiError::forbidden());
    }
    match state
        .store
        .update_note(&id, &caller.actor(), &req.text)
        .await?
    {
        Some(n) => Ok(Json(n).into_response()),
        None => Err(no_such_note(&id)),
    }
}

/// `DELETE /api/notes/{id}`: the author deletes it.
pub async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !matches!(caller, Caller::Invitee { .. }) {
        return Err(ApiError::forbidden());
    }
    if state.store.delete_note(&id, &caller.actor()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(no_such_note(&id))
    }
}

/// `GET /api/meetings/{id}/notes.csv`: the caller's own notes and comments
/// in the meeting, as CSV (document, version, page, kind, text, times,
/// and whether the document changed since).
pub async fn export(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    match &caller {
        Caller::Invitee { meeting, .. } if meeting.id == id => {}
        _ => return Err(ApiError::forbidden()),
    }
    let notes = state.store.notes_of_author(&id, &caller.actor()).await?;
    let mut out = String::from(
        "document,document_id,version,page,kind,text,created_at,updated_at,document_changed\r\n",
    );
    for (n, title) in notes {
        let row = [
            csv_cell(&title),
            csv_cell(&n.document_id),
            n.version.to_string(),
            n.page.to_string(),
            n.kind.as_str().to_owned(),
            csv_cell(&n.text),
            n.created_at.to_string(),
            n.updated_at.to_string(),
            if n.stale { "yes" } else { "no" }.to_owned(),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ghi-chu.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}
