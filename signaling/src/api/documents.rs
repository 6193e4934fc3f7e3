//! Documents: multipart uploads streamed to a temp file (hashed while
//! written, size-limited), signature verification of PDFs, metadata, and
//! downloads authorized on every request.

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{DocumentAccess, NewDocument, StagedBlob, Upload};
use serde::Deserialize;
use serde_json::{json, Value};

use super::handlers::agenda_changed;
use super::{replay, replay_after, ApiError, ApiResult, Caller, IdempotencyHeader, PREPARE};
use crate::AppState;

/// What a multipart upload carried.
struct Parsed {
    file: Option<(StagedBlob, String, String)>,
    title: Option<String>,
    access: Option<String>,
    participant_ids: Option<String>,
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
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
        ApiError::bad_request("bad_multipart", format!("malformed multipart body: {e}"))
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
    };
    let mut over = false;
    while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_error(e, max))? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if out.file.is_some() {
                    return Err(ApiError::bad_request(
                        "bad_multipart",
                        "more than one file part",
                    ));
                }
                let filename = field.file_name().unwrap_or("document").to_owned();
                let ctype = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
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
                    out.file = Some((w.finish().await?, filename, ctype));
                }
            }
            "title" | "access" | "participant_ids" => {
                let text = field.text().await.map_err(|e| multipart_error(e, max))?;
                if text.len() > MAX_FIELD_BYTES {
                    return Err(ApiError::bad_request(
                        "invalid_input",
                        format!("the field {name} is too long"),
                    ));
                }
                match name.as_str() {
                    "title" => out.title = Some(text),
                    "access" => out.access = Some(text),
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
/// the "is it a PDF" test, and the download header made from the file
/// name. The staged file is dropped (removed), never committed. For the
/// fuzz targets in `fuzz/` (see `crate::fuzzing`).
#[doc(hidden)]
pub async fn check_upload(
    blobs: &cabinet::Blobs,
    max: u64,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(), &'static str> {
    use axum::extract::FromRequest;
    let req = axum::http::Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|_| "bad_request")?;
    let mp = Multipart::from_request(req, &())
        .await
        .map_err(|_| "bad_multipart")?;
    let form = read_form(blobs, max, mp).await.map_err(|e| e.code)?;
    parse_access(form.access.as_deref()).map_err(|e| e.code)?;
    parse_ids(form.participant_ids.as_deref()).map_err(|e| e.code)?;
    let (staged, filename, ctype) = require_file(form.file).map_err(|e| e.code)?;
    let _ = looks_pdf(&staged, &filename, &ctype).await;
    let _ = content_disposition(&filename);
    let _ = HeaderValue::from_str(&ctype);
    Ok(())
}

/// Whether an upload is to be checked as a PDF: it starts with `%PDF-`, or
/// says it is one by its content type or file name.
async fn looks_pdf(staged: &StagedBlob, filename: &str, ctype: &str) -> bool {
    let Some(path) = staged.path() else {
        return false;
    };
    let head = {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 5];
        match tokio::fs::File::open(path).await {
            Ok(mut f) => f
                .read_exact(&mut buf)
                .await
                .map(|_| buf)
                .unwrap_or_default(),
            Err(_) => [0u8; 5],
        }
    };
    &head == b"%PDF-"
        || ctype.eq_ignore_ascii_case("application/pdf")
        || filename.to_ascii_lowercase().ends_with(".pdf")
}

/// The signature report of an uploaded file: the verifier's report for a
/// PDF, `{"status": "unreadable", ...}` for a PDF it cannot read, and
/// `{"status": "not_checked", "reason": "not_pdf"}` for other files.
async fn signature_report(
    state: &AppState,
    staged: &StagedBlob,
    filename: &str,
    ctype: &str,
) -> Value {
    let Some(path) = staged.path().map(|p| p.to_owned()) else {
        return json!({"status": "not_checked", "reason": "not_pdf"});
    };
    if !looks_pdf(staged, filename, ctype).await {
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
        Some(a) => a
            .parse()
            .map_err(|e: cabinet::Error| ApiError::bad_request("invalid_input", e.to_string())),
    }
}

fn parse_ids(s: Option<&str>) -> ApiResult<Vec<String>> {
    match s.map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(t) => serde_json::from_str::<Vec<String>>(t).map_err(|_| {
            ApiError::bad_request(
                "invalid_input",
                "participant_ids must be a JSON array of participant ids",
            )
        }),
    }
}

fn require_file(
    file: Option<(StagedBlob, String, String)>,
) -> ApiResult<(StagedBlob, String, String)> {
    match file {
        None => Err(ApiError::bad_request(
            "missing_file",
            "the form has no `file` part",
        )),
        Some((staged, ..)) if staged.size == 0 => {
            Err(ApiError::bad_request("empty_file", "the file is empty"))
        }
        Some(f) => Ok(f),
    }
}

pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    idem: IdempotencyHeader,
    mp: Multipart,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let item = state
        .store
        .get_agenda_item(&item_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "agenda_item_not_found",
                format!("agenda item {item_id} not found"),
            )
        })?;
    let form = read_form(&state.api.blobs, state.api.max_upload_bytes, mp).await?;
    let access = parse_access(form.access.as_deref())?;
    let participant_ids = parse_ids(form.participant_ids.as_deref())?;
    let (staged, filename, ctype) = require_file(form.file)?;
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
        ctype.as_bytes(),
        title.as_bytes(),
        access.as_str().as_bytes(),
        ids.as_bytes(),
    ]);
    if let Some(r) = replay(&state, &actor, key.as_ref()).await? {
        return Ok(r);
    }
    let report = signature_report(&state, &staged, &filename, &ctype).await;
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
                content_type: ctype,
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
            Ok((StatusCode::CREATED, Json(doc)).into_response())
        }
        Err(e) => replay_after(&state, &actor, key.as_ref(), e).await,
    }
}

pub async fn add_version(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    mp: Multipart,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    if state.store.get_document(&id).await?.is_none() {
        return Err(ApiError::not_found(
            "document_not_found",
            format!("document {id} not found"),
        ));
    }
    let form = read_form(&state.api.blobs, state.api.max_upload_bytes, mp).await?;
    let (staged, filename, ctype) = require_file(form.file)?;
    let report = signature_report(&state, &staged, &filename, &ctype).await;
    let doc = state
        .store
        .add_document_version(
            &caller.actor(),
            &id,
            Upload {
                filename,
                content_type: ctype,
                signature_report: report,
            },
            staged,
            &state.api.blobs,
        )
        .await?;
    agenda_changed(&state, &doc.meeting_id);
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
            "agenda_item_not_found",
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
                "document_not_found",
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

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
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

pub async fn content(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ContentQuery>,
) -> ApiResult<Response> {
    let doc = readable(&caller, &state, &id).await?;
    let Some(v) = doc.version(q.version) else {
        return Err(ApiError::not_found(
            "version_not_found",
            format!("document {id} has no version {:?}", q.version),
        ));
    };
    let file = state.api.blobs.open(&v.sha256).await.map_err(|e| {
        tracing::error!(error = %e, document = %id, "document content missing");
        ApiError::internal()
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let ctype = HeaderValue::from_str(&v.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, ctype);
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(v.size.max(0) as u64),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&v.filename),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", v.sha256)) {
        h.insert(header::ETAG, etag);
    }
    Ok(r)
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
}
