//! Documents of written opinion requests: the secretariat attaches them
//! (the same upload form, size limit and format check as a meeting's
//! documents), staff read them, and each recipient downloads them with its
//! opinion token from the `/opinion` page. Served as their verified type,
//! as attachments that never run in the app's origin.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::opinion_docs::OpinionDocument;

use super::{ApiError, ApiResult, Caller, PREPARE, READ};
use crate::protocol::ErrorCode;
use crate::AppState;

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found(ErrorCode::NotFound, format!("{what} {id} not found"))
}

/// `POST /api/opinions/{id}/documents` (multipart: `file`, optional
/// `title`): attaches a document while the request is open.
pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::ApiMultipart(mp): super::ApiMultipart,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    if state.store.get_opinion_request(&id).await?.is_none() {
        return Err(not_found("opinion request", &id));
    }
    let (staged, filename, file_type, title) = super::documents::other_upload(&state, mp).await?;
    let doc = state
        .store
        .add_opinion_document(
            &caller.actor(),
            &id,
            title.as_deref().unwrap_or_default(),
            &filename,
            file_type,
            staged,
            &state.api.blobs,
        )
        .await
        .map_err(|e| match e {
            cabinet::Error::PollClosed(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::PollClosed,
                "the request is closed or its deadline has passed",
            ),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

/// The content of `doc`, as an attachment of its verified type.
async fn serve(state: &AppState, doc: &OpinionDocument, actor: String) -> ApiResult<Response> {
    let file = state.api.blobs.open(&doc.sha256).await.map_err(|e| {
        tracing::error!(error = %e, document = %doc.id, "opinion document content missing");
        ApiError::internal()
    })?;
    super::audit::record_later(
        state,
        actor,
        "opinion.document_download",
        "opinion_request",
        doc.request_id.clone(),
        serde_json::json!({"document_id": doc.id, "sha256": doc.sha256}),
    );
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(doc.file_type.mime()),
    );
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(doc.size.max(0) as u64),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        super::documents::content_disposition(&doc.filename),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    Ok(r)
}

/// `GET /api/opinions/{id}/documents/{doc_id}`: a document's content, for
/// staff.
pub async fn content(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, doc_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    let doc = state
        .store
        .opinion_document(&doc_id)
        .await?
        .filter(|d| d.request_id == id)
        .ok_or_else(|| not_found("document", &doc_id))?;
    serve(&state, &doc, caller.actor()).await
}

/// `GET /api/opinion/documents/{doc_id}`: a document of the request of the
/// bearer opinion token.
pub async fn recipient_content(
    State(state): State<AppState>,
    Path(doc_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (req, r) = super::opinions::recipient_of(&state, &headers).await?;
    let doc = state
        .store
        .opinion_document(&doc_id)
        .await?
        .filter(|d| d.request_id == req.id)
        .ok_or_else(|| not_found("document", &doc_id))?;
    serve(&state, &doc, format!("opinion:{}", r.id)).await
}
