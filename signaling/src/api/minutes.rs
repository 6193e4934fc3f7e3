//! The minutes ("biên bản") of a meeting, generated from its record
//! (`cabinet::minutes`): as an HTML page and as a PDF in the layout of
//! Decree 30/2020/NĐ-CP. Each request reads the record as it is now; the
//! same record gives the same PDF bytes (the draft).
//!
//! Sealing (`POST .../minutes/seal`) signs the draft with the minutes' seal
//! ([`crate::seal`]: PAdES, `cabinet::signature::seal`) and keeps the sealed
//! bytes as the next version (`cabinet::sealed_minutes`); sealing an
//! unchanged record returns the latest version. Versions never change.
//!
//! Who: reading: staff admin, secretary and operator; an invitation token of
//! the meeting's chair or secretary (the permission table's `Moderate`), for
//! its own meeting. Sealing: staff admin and secretary, and the chair's or
//! secretary's invitation. The seal's certificate is public (readers need
//! it to trust the seal).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use cabinet::{Role, StaffRole};

use super::{ApiError, ApiResult, Caller, PREPARE, READ};
use crate::protocol::ErrorCode;
use crate::AppState;

/// Staff with one of `staff`, or the chair's or secretary's invitation to
/// this meeting; else 403.
pub(super) fn allowed(caller: &Caller, meeting_id: &str, staff: &[StaffRole]) -> ApiResult<()> {
    let moderates =
        |r: Role| crate::permissions::allows(r, crate::permissions::Permission::Moderate);
    match caller {
        Caller::Staff(u) if staff.contains(&u.role) => Ok(()),
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } if meeting.id == meeting_id && moderates(invitation.role) => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

async fn record(state: &AppState, meeting_id: &str) -> ApiResult<cabinet::minutes::MinutesRecord> {
    Ok(state
        .store
        .minutes_record(
            meeting_id,
            state.api.minutes_header.clone(),
            &state.api.quorum,
        )
        .await?)
}

/// The headers of a generated file: never cached, never sniffed, and
/// opened (if at all) without scripts, plugins or fetches.
pub(super) fn headers(
    r: &mut Response,
    content_type: &'static str,
    disposition: String,
    csp: &str,
) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// A generated file's name: `{stem}-{meeting id}.{ext}`, ASCII (the
/// meeting's id is a UUID; anything else is dropped).
fn filename(stem: &str, meeting_id: &str, ext: &str) -> String {
    let id: String = meeting_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    format!("{stem}-{id}.{ext}")
}

/// A generated document as an HTML page, shown inline under the
/// documents' own policy (styles only, nothing runs).
pub(super) fn html_file(html: String, stem: &str, meeting_id: &str) -> Response {
    let mut resp = html.into_response();
    headers(
        &mut resp,
        "text/html; charset=utf-8",
        format!(
            "inline; filename=\"{}\"",
            filename(stem, meeting_id, "html")
        ),
        &cabinet::minutes::html_csp(),
    );
    resp
}

/// A generated document as a PDF download; `make` lays it out off the
/// async workers (layout and font subsetting take milliseconds to tens of
/// them). A failure is logged and answered 500.
pub(super) async fn pdf_file<E: std::fmt::Display + Send + 'static>(
    make: impl FnOnce() -> Result<Vec<u8>, E> + Send + 'static,
    stem: &str,
    meeting_id: &str,
) -> ApiResult<Response> {
    let bytes = tokio::task::spawn_blocking(make)
        .await
        .map_err(|e| {
            tracing::error!("the {stem} PDF task failed: {e}");
            ApiError::internal()
        })?
        .map_err(|e| {
            tracing::error!(meeting = %meeting_id, "{e}");
            ApiError::internal()
        })?;
    let mut resp = bytes.into_response();
    headers(
        &mut resp,
        "application/pdf",
        format!(
            "attachment; filename=\"{}\"",
            filename(stem, meeting_id, "pdf")
        ),
        "default-src 'none'; sandbox",
    );
    Ok(resp)
}

/// `GET /api/meetings/{id}/minutes`: the minutes as an HTML page.
pub async fn html(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let r = record(&state, &id).await?;
    Ok(html_file(cabinet::minutes::html(&r), "bien-ban", &id))
}

/// `GET /api/meetings/{id}/minutes.pdf`: the minutes as a PDF (a download).
pub async fn pdf(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let r = record(&state, &id).await?;
    pdf_file(move || cabinet::minutes::pdf(&r), "bien-ban", &id).await
}

/// The JSON of a sealed version.
fn version_json(v: &cabinet::sealed_minutes::MinutesVersion) -> serde_json::Value {
    serde_json::json!({
        "meeting_id": v.meeting_id,
        "version": v.version,
        "sha256": v.sha256,
        "size": v.size,
        "draft_sha256": v.draft_sha256,
        "seal_subject": v.seal_subject,
        "seal_cert_sha256": v.seal_cert_sha256,
        "sealed_by": v.sealed_by,
        "sealed_at": v.sealed_at,
        "url": format!("/api/meetings/{}/minutes/versions/{}", v.meeting_id, v.version),
    })
}

/// `POST /api/meetings/{id}/minutes/seal`: seals the minutes as they now
/// are; 201 with the new version, or 200 with the latest one when the
/// minutes have not changed since it was sealed.
pub async fn seal(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, PREPARE)?;
    let r = record(&state, &id).await?;
    let seal = state.api.seal.get().await.map_err(|e| {
        tracing::error!("the minutes cannot be sealed: {e}");
        ApiError::internal()
    })?;
    let at = cabinet::now_unix();
    let sealed =
        tokio::task::spawn_blocking(move || cabinet::sealed_minutes::seal_pdf(&r, &seal, at))
            .await
            .map_err(|e| {
                tracing::error!("the sealing task failed: {e}");
                ApiError::internal()
            })?
            .map_err(|e| {
                tracing::error!(meeting = %id, "{e}");
                ApiError::internal()
            })?;
    let out = state
        .store
        .add_minutes_version(&caller.actor(), &id, &sealed)
        .await?;
    let mut body = version_json(&out.version);
    body["created"] = serde_json::Value::Bool(out.created);
    let status = if out.created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response())
}

/// `GET /api/meetings/{id}/minutes/versions`: the sealed versions, oldest
/// first.
pub async fn versions(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    if state.store.get_meeting(&id).await?.is_none() {
        return Err(cabinet::Error::MeetingNotFound(id).into());
    }
    let list: Vec<serde_json::Value> = state
        .store
        .list_minutes_versions(&id)
        .await?
        .iter()
        .map(version_json)
        .collect();
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(list)).into_response())
}

/// `GET /api/meetings/{id}/minutes/versions/{version}`: the sealed PDF of a
/// version, byte for byte as sealed.
pub async fn version_pdf(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    allowed(&caller, &id, READ)?;
    let not_found = || {
        ApiError::not_found(
            ErrorCode::NotFound,
            format!("the minutes of meeting {id} have no sealed version {version}"),
        )
    };
    let n: i64 = match version.parse() {
        Ok(n) if n >= 1 => n,
        _ => return Err(not_found()),
    };
    if state.store.get_meeting(&id).await?.is_none() {
        return Err(cabinet::Error::MeetingNotFound(id).into());
    }
    let Some((v, bytes)) = state.store.minutes_version_pdf(&id, n).await? else {
        return Err(not_found());
    };
    let mut resp = bytes.into_response();
    let name = filename("bien-ban", &id, "pdf");
    let stem = name.trim_end_matches(".pdf");
    headers(
        &mut resp,
        "application/pdf",
        format!("attachment; filename=\"{stem}-ban-{}.pdf\"", v.version),
        "default-src 'none'; sandbox",
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", v.sha256)) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    Ok(resp)
}

/// `GET /api/minutes/seal-certificate`: the seal's certificate (PEM, its CA
/// chain after it), for PDF readers to trust. Public.
pub async fn seal_certificate(State(state): State<AppState>) -> ApiResult<Response> {
    let seal = state.api.seal.get().await.map_err(|e| {
        tracing::error!("the seal cannot be loaded: {e}");
        ApiError::internal()
    })?;
    let mut resp = seal.certificate_pem().into_response();
    headers(
        &mut resp,
        "application/x-pem-file",
        "attachment; filename=\"giaoban-con-dau.pem\"".to_owned(),
        "default-src 'none'; sandbox",
    );
    // Anyone may fetch it: no credentials, any origin.
    resp.headers_mut().insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    Ok(resp)
}
