//! Documents: multipart uploads streamed to a temp file (hashed while
//! written, size-limited), the format decided from the bytes (anything but
//! the accepted document formats is refused), signature verification of
//! PDFs, metadata, withdrawal and replacement, and downloads authorized on
//! every request, served so that they never run in the app's origin.

use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{DocumentAccess, FileType, NewDocument, StagedBlob, Upload};
use serde::Deserialize;
use serde_json::{json, Value};

use super::handlers::agenda_changed;
use super::{replay, replay_after, ApiError, ApiResult, Caller, IdempotencyHeader, PREPARE};
use crate::protocol::ErrorCode;
use crate::AppState;

/// What a multipart upload carried. The part's own `Content-Type` is
/// ignored: the format comes from the bytes ([`detect`]).
struct Parsed {
    file: Option<(StagedBlob, String)>,
    title: Option<String>,
    access: Option<String>,
    participant_ids: Option<String>,
    reason: Option<String>,
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UploadTooLarge,
        format!(
            "the file is larger than the upload limit of {max} bytes ({:.1} MiB)",
            max as f64 / (1024.0 * 1024.0)
        ),
    )
}

fn multipart_error(e: axum::extract::multipart::MultipartError, max: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::bad_request(
            ErrorCode::BadMultipart,
            format!("malformed multipart body: {e}"),
        )
    }
}

/// Longest text field accepted in an upload form.
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Reads the form: the `file` part goes to a temp file of the content
/// store (nothing is kept if anything is refused), text parts to memory.
async fn read_form(blobs: &cabinet::Blobs, max: u64, mut mp: Multipart) -> ApiResult<Parsed> {
    let mut out = Parsed {
        file: None,
        title: None,
        access: None,
        participant_ids: None,
        reason: None,
    };
    let mut over = false;
    while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_error(e, max))? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if out.file.is_some() {
                    return Err(ApiError::bad_request(
                        ErrorCode::BadMultipart,
                        "more than one file part",
                    ));
                }
                let filename = field.file_name().unwrap_or("document").to_owned();
                let mut w = blobs.stage().await?;
                while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
                    if over {
                        // Keep reading (and dropping) so the client gets
                        // our answer rather than a reset connection.
                        continue;
                    }
                    if w.size() + chunk.len() as u64 > max {
                        over = true;
                        continue;
                    }
                    w.write(&chunk).await?;
                }
                if !over {
                    out.file = Some((w.finish().await?, filename));
                }
            }
            "title" | "access" | "participant_ids" | "reason" => {
                let text = field.text().await.map_err(|e| multipart_error(e, max))?;
                if text.len() > MAX_FIELD_BYTES {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidInput,
                        format!("the field {name} is too long"),
                    ));
                }
                if text.contains('\0') {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidInput,
                        format!("the field {name} contains the NUL character (U+0000)"),
                    ));
                }
                match name.as_str() {
                    "title" => out.title = Some(text),
                    "access" => out.access = Some(text),
                    "reason" => out.reason = Some(text),
                    _ => out.participant_ids = Some(text),
                }
            }
            _ => {
                // Unknown parts are drained and ignored.
                while field
                    .chunk()
                    .await
                    .map_err(|e| multipart_error(e, max))?
                    .is_some()
                {}
            }
        }
    }
    if over {
        return Err(too_large(max));
    }
    Ok(out)
}

/// What the upload endpoints do with a request body before the database:
/// the multipart form (the file streamed into `blobs`' temp folder, at most
/// `max` bytes), the `access` and `participant_ids` fields, the file check,
/// the format detection, and the download header made from the file
/// name. The staged file is dropped (removed), never committed. For the
/// fuzz targets in `fuzz/` (see `crate::fuzzing`).
#[doc(hidden)]
pub async fn check_upload(
    blobs: &cabinet::Blobs,
    max: u64,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), ErrorCode> {
    use axum::extract::FromRequest;
    let req = axum::http::Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|_| ErrorCode::BadRequest)?;
    let mp = Multipart::from_request(req, &())
        .await
        .map_err(|_| ErrorCode::BadMultipart)?;
    let form = read_form(blobs, max, mp).await.map_err(|e| e.code)?;
    parse_access(form.access.as_deref()).map_err(|e| e.code)?;
    parse_ids(form.participant_ids.as_deref()).map_err(|e| e.code)?;
    let (staged, filename) = require_file(form.file).map_err(|e| e.code)?;
    let file_type = detect(&staged).await.map_err(|e| e.code)?;
    let _ = content_disposition(&file_type.fix_extension(&filename));
    Ok(())
}

/// The accepted formats, for the refusal message.
const ACCEPTED: &str = "PDF, DOCX, XLSX, PPTX, DOC, XLS, PPT, ODT, ODS, ODP";

/// The format of an uploaded file, from its bytes; 415
/// `unsupported_document_type` for anything else (the staged file is then
/// dropped, so nothing is kept).
async fn detect(staged: &StagedBlob) -> ApiResult<FileType> {
    let Some(path) = staged.path().map(|p| p.to_owned()) else {
        return Err(ApiError::internal());
    };
    let found = tokio::task::spawn_blocking(move || FileType::of_path(&path))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "file type detection task failed");
            ApiError::internal()
        })?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read an upload to detect its type");
            ApiError::internal()
        })?;
    found.ok_or_else(unsupported)
}

fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedDocumentType,
        format!(
            "the file is not a document format that is accepted ({ACCEPTED}; \
             macro-enabled files are refused); the format is read from the \
             file's content, not from its name"
        ),
    )
}

/// The signature report of an uploaded file: the verifier's report for a
/// PDF, `{"status": "unreadable", ...}` for a PDF it cannot read, and
/// `{"status": "not_checked", "reason": "not_pdf"}` for other files.
async fn signature_report(state: &AppState, staged: &StagedBlob, file_type: FileType) -> Value {
    let Some(path) = staged.path().map(|p| p.to_owned()) else {
        return json!({"status": "not_checked", "reason": "not_pdf"});
    };
    if file_type != FileType::Pdf {
        return json!({"status": "not_checked", "reason": "not_pdf"});
    }
    let trust = state.api.trust.clone();
    let result = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        let opts = cabinet::signature::VerifyOptions::default();
        cabinet::signature::verify_pdf(&bytes, &trust, &opts)
            .map_err(|e| format!("{}: {e}", e.code()))
    })
    .await;
    match result {
        Ok(Ok(report)) => serde_json::to_value(&report).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot serialize a signature report");
            json!({"status": "unreadable", "message": "the report could not be stored"})
        }),
        Ok(Err(message)) => json!({"status": "unreadable", "message": message}),
        Err(e) => {
            tracing::error!(error = %e, "signature verification task failed");
            json!({"status": "unreadable", "message": "the verification failed"})
        }
    }
}

fn parse_access(s: Option<&str>) -> ApiResult<DocumentAccess> {
    match s.map(str::trim) {
        None | Some("") => Ok(DocumentAccess::Everyone),
        Some(a) => a.parse().map_err(|e: cabinet::Error| {
            ApiError::bad_request(ErrorCode::InvalidInput, e.to_string())
        }),
    }
}

fn parse_ids(s: Option<&str>) -> ApiResult<Vec<String>> {
    match s.map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(t) => serde_json::from_str::<Vec<String>>(t).map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidInput,
                "participant_ids must be a JSON array of participant ids",
            )
        }),
    }
}

fn require_file(file: Option<(StagedBlob, String)>) -> ApiResult<(StagedBlob, String)> {
    match file {
        None => Err(ApiError::bad_request(
            ErrorCode::MissingFile,
            "the form has no `file` part",
        )),
        Some((staged, ..)) if staged.size == 0 => Err(ApiError::bad_request(
            ErrorCode::EmptyFile,
            "the file is empty",
        )),
        Some(f) => Ok(f),
    }
}

pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    idem: IdempotencyHeader,
    super::ApiMultipart(mp): super::ApiMultipart,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let item = state
        .store
        .get_agenda_item(&item_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::AgendaItemNotFound,
                format!("agenda item {item_id} not found"),
            )
        })?;
    let form = read_form(&state.api.blobs, state.api.max_upload_bytes, mp).await?;
    let access = parse_access(form.access.as_deref())?;
    let participant_ids = parse_ids(form.participant_ids.as_deref())?;
    let (staged, filename) = require_file(form.file)?;
    let file_type = detect(&staged).await?;
    let title = match form.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => filename.clone(),
    };
    let actor = caller.actor();
    let ids = participant_ids.join("\n");
    let key = idem.with_request(&[
        b"POST /api/agenda/{item_id}/documents",
        item.id.as_bytes(),
        staged.sha256.as_bytes(),
        filename.as_bytes(),
        file_type.as_str().as_bytes(),
        title.as_bytes(),
        access.as_str().as_bytes(),
        ids.as_bytes(),
    ]);
    if let Some(r) = replay(&state, &actor, key.as_ref()).await? {
        return Ok(r);
    }
    let report = signature_report(&state, &staged, file_type).await;
    let added = state
        .store
        .add_document_idempotent(
            &actor,
            NewDocument {
                agenda_item_id: item.id.clone(),
                title,
                access,
                participant_ids,
            },
            Upload {
                filename,
                file_type,
                signature_report: report,
            },
            staged,
            &state.api.blobs,
            key.as_ref(),
        )
        .await;
    match added {
        Ok(doc) => {
            agenda_changed(&state, &item.meeting_id);
            crate::mail::documents_changed(&state, &item.meeting_id).await;
            Ok((StatusCode::CREATED, Json(doc)).into_response())
        }
        Err(e) => replay_after(&state, &actor, key.as_ref(), e).await,
    }
}

pub async fn add_version(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::ApiMultipart(mp): super::ApiMultipart,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    in_force(&state, &id).await?;
    let (_, staged, upload) = checked_upload(&state, mp).await?;
    let doc = state
        .store
        .add_document_version(&caller.actor(), &id, upload, staged, &state.api.blobs)
        .await?;
    agenda_changed(&state, &doc.meeting_id);
    crate::mail::documents_changed(&state, &doc.meeting_id).await;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

/// A new version's or a replacement's form: the other fields, the staged
/// file, and the file's verified type and signature report.
async fn checked_upload(
    state: &AppState,
    mp: Multipart,
) -> ApiResult<(Parsed, StagedBlob, Upload)> {
    let mut form = read_form(&state.api.blobs, state.api.max_upload_bytes, mp).await?;
    let (staged, filename) = require_file(form.file.take())?;
    let file_type = detect(&staged).await?;
    let signature_report = signature_report(state, &staged, file_type).await;
    let upload = Upload {
        filename,
        file_type,
        signature_report,
    };
    Ok((form, staged, upload))
}

/// The document, if it exists and is not withdrawn: 404
/// `document_not_found`, 409 `document_withdrawn`.
async fn in_force(state: &AppState, id: &str) -> ApiResult<cabinet::Document> {
    match state.store.get_document(id).await? {
        None => Err(ApiError::not_found(
            ErrorCode::DocumentNotFound,
            format!("document {id} not found"),
        )),
        Some(d) if d.is_withdrawn() => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::DocumentWithdrawn,
            format!("document {id} has been withdrawn"),
        )),
        Some(d) => Ok(d),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    reason: String,
}

/// `POST /api/documents/{id}/withdraw`: the document stays in the record,
/// marked withdrawn (who, when, why); invitees can no longer download it.
pub async fn withdraw(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::ApiJson(body): super::ApiJson<WithdrawBody>,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    in_force(&state, &id).await?;
    let doc = state
        .store
        .withdraw_document(&caller.actor(), &id, &body.reason)
        .await?;
    agenda_changed(&state, &doc.meeting_id);
    crate::mail::documents_changed(&state, &doc.meeting_id).await;
    Ok(Json(doc).into_response())
}

/// `POST /api/documents/{id}/replace`: a new document (the form's file,
/// title or the old title, same item and access) takes the place of this
/// one, which is withdrawn with `replaced_by` naming the new one.
pub async fn replace(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::ApiMultipart(mp): super::ApiMultipart,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    in_force(&state, &id).await?;
    let (form, staged, upload) = checked_upload(&state, mp).await?;
    let doc = state
        .store
        .replace_document(
            &caller.actor(),
            &id,
            cabinet::Replacement {
                title: form.title,
                reason: form.reason.unwrap_or_default(),
            },
            upload,
            staged,
            &state.api.blobs,
        )
        .await?;
    agenda_changed(&state, &doc.meeting_id);
    crate::mail::documents_changed(&state, &doc.meeting_id).await;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> ApiResult<Response> {
    // Who may look at the meeting is known only once the item is: an
    // invitee of another meeting gets 403 like for every other read.
    let item = state.store.get_agenda_item(&item_id).await?;
    let Some(item) = item else {
        caller.may_read_meeting("")?;
        return Err(ApiError::not_found(
            ErrorCode::AgendaItemNotFound,
            format!("agenda item {item_id} not found"),
        ));
    };
    caller.may_read_meeting(&item.meeting_id)?;
    let docs: Vec<cabinet::Document> = state
        .store
        .list_documents(&item_id)
        .await?
        .into_iter()
        .filter(|d| caller.may_read_document(d))
        .collect();
    Ok(Json(docs).into_response())
}

async fn readable(caller: &Caller, state: &AppState, id: &str) -> ApiResult<cabinet::Document> {
    let doc = state.store.get_document(id).await?;
    match doc {
        Some(d) if caller.may_read_document(&d) => Ok(d),
        Some(_) => Err(ApiError::forbidden()),
        None => {
            // Staff learn that it does not exist; others only that they may not.
            caller.staff_in(super::READ)?;
            Err(ApiError::not_found(
                ErrorCode::DocumentNotFound,
                format!("document {id} not found"),
            ))
        }
    }
}

pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(readable(&caller, &state, &id).await?).into_response())
}

#[derive(Deserialize)]
pub struct ContentQuery {
    version: Option<i64>,
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`
/// (RFC 6266, RFC 8187). The ASCII fallback keeps letters, digits, space
/// and `-_.()+,[]`; everything else (quotes, backslashes, `;`, `/`, `%`,
/// control characters, non-ASCII) becomes `_`. The encoded name escapes
/// every byte but RFC 5987's `attr-char`s, so neither can end the header
/// value or add a parameter.
pub(super) fn content_disposition(filename: &str) -> HeaderValue {
    // Only the last path component, without control characters.
    let base = filename.rsplit(['/', '\\']).next().unwrap_or_default();
    let base: String = base.chars().filter(|c| !c.is_control()).collect();
    let base = base.trim().trim_start_matches('.');
    let base = if base.is_empty() { "document" } else { base };
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.()+,[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in base.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// What a version is served as: its verified type; for a version from
/// before types were verified, the type found in its bytes now, else
/// `application/octet-stream`. Never anything a browser would run.
async fn served_type(state: &AppState, v: &cabinet::DocumentVersion) -> Option<FileType> {
    if let Some(t) = v.file_type {
        return Some(t);
    }
    let path = state.api.blobs.path_of(&v.sha256)?;
    tokio::task::spawn_blocking(move || FileType::of_path(&path).ok().flatten())
        .await
        .ok()
        .flatten()
}

pub async fn content(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::ApiQuery(q): super::ApiQuery<ContentQuery>,
) -> ApiResult<Response> {
    let doc = readable(&caller, &state, &id).await?;
    if doc.is_withdrawn() && !matches!(caller, Caller::Staff(_)) {
        // The secretariat keeps access for the record; participants do not.
        return Err(ApiError::new(
            StatusCode::GONE,
            ErrorCode::DocumentWithdrawn,
            format!("document {id} has been withdrawn"),
        ));
    }
    let Some(v) = doc.version(q.version) else {
        return Err(ApiError::not_found(
            ErrorCode::VersionNotFound,
            format!("document {id} has no version {:?}", q.version),
        ));
    };
    let file = state.api.blobs.open(&v.sha256).await.map_err(|e| {
        tracing::error!(error = %e, document = %id, "document content missing");
        ApiError::internal()
    })?;
    super::audit::record_later(
        &state,
        caller.actor(),
        "document.download",
        "document",
        id.clone(),
        serde_json::json!({"version": v.version, "sha256": v.sha256}),
    );
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let served = served_type(&state, v).await;
    let ctype = HeaderValue::from_static(served.map_or("application/octet-stream", FileType::mime));
    let filename = match served {
        Some(t) => t.fix_extension(&v.filename),
        None => v.filename.clone(),
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, ctype);
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(v.size.max(0) as u64),
    );
    h.insert(header::CONTENT_DISPOSITION, content_disposition(&filename));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Opened anyway (a direct navigation, a PDF viewer): no script, no
    // plugin, no same-origin access, no fetches.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", v.sha256)) {
        h.insert(header::ETAG, etag);
    }
    Ok(r)
}

/// An upload form of another kind of document (a written opinion
/// request's): the staged file, its name, its format read from its bytes
/// (415 for anything else) and the `title` field.
pub(super) async fn other_upload(
    state: &AppState,
    mp: Multipart,
) -> ApiResult<(StagedBlob, String, FileType, Option<String>)> {
    let form = read_form(&state.api.blobs, state.api.max_upload_bytes, mp).await?;
    let (staged, filename) = require_file(form.file)?;
    let file_type = detect(&staged).await?;
    Ok((staged, filename, file_type, form.title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_ascii_with_utf8_name() {
        let v = content_disposition("Tờ trình \"số 1\".pdf");
        let s = v.to_str().expect("ascii");
        assert!(
            s.starts_with("attachment; filename=\"T_ tr_nh _s_ 1_.pdf\""),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''T%E1%BB%9D%20tr%C3%ACnh"),
            "{s}"
        );
    }

    #[test]
    fn disposition_cannot_be_abused() {
        for (name, fallback) in [
            ("a\"; filename=evil.html", "a__ filename_evil.html"),
            ("x\r\nSet-Cookie: a=b.pdf", "xSet-Cookie_ a_b.pdf"),
            ("../../etc/passwd", "passwd"),
            ("..\\win.ini", "win.ini"),
            ("100%.pdf", "100_.pdf"),
            ("", "document"),
        ] {
            let v = content_disposition(name);
            let s = v.to_str().expect("ascii");
            let want = format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''");
            assert!(s.starts_with(&want), "{name:?}: {s}");
            // One filename, one filename*: nothing else was injected.
            assert_eq!(s.matches(';').count(), 2, "{s}");
            assert_eq!(s.matches('"').count(), 2, "{s}");
            assert!(!s.contains('\r') && !s.contains('\n'), "{s}");
        }
    }
}
