//! The audit log for administrators: read it filtered and paged, export it
//! (CSV or JSON lines), and check its chain. Admin accounts only.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{AuditEntry, AuditFilter};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult, Caller, ADMIN};
use crate::protocol::ErrorCode;
use crate::AppState;

/// Rows per page when `limit` is not given, and the most a page may hold.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// The filters of `GET /api/audit` and `GET /api/audit/export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    /// An action, or a prefix ending in `*` (`auth.*`).
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// Unix seconds, inclusive.
    from: Option<i64>,
    /// Unix seconds, exclusive.
    to: Option<i64>,
    /// The cursor: only rows with a smaller `seq` (the previous page's
    /// `next_before`).
    before: Option<i64>,
    limit: Option<i64>,
    /// Export only: `csv` (default) or `jsonl`.
    format: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        let some = |s: &Option<String>| s.as_ref().filter(|v| !v.is_empty()).cloned();
        AuditFilter {
            actor: some(&self.actor),
            action: some(&self.action),
            target_type: some(&self.target_type),
            target_id: some(&self.target_id),
            from: self.from,
            to: self.to,
            before_seq: self.before,
        }
    }
}

fn query(q: Result<Query<AuditQuery>, QueryRejection>) -> ApiResult<AuditQuery> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(ErrorCode::BadQuery, e.body_text()))
}

/// `GET /api/audit`: one page, newest first, and the cursor of the next.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    let q = query(q)?;
    if q.format.is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            "format is for /api/audit/export",
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    // One more than asked tells whether there is a next page.
    let mut entries = state.store.audit_page(&q.filter(), limit + 1).await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(0));
    let next = if more {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(json!({"entries": entries, "next_before": next})).into_response())
}

/// One CSV field, quoted when it needs to be; a leading `= + - @` is
/// prefixed with `'` so a spreadsheet shows it instead of running it.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_line(e: &AuditEntry) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(e.at)
        .map(|d| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            )
        })
        .unwrap_or_default();
    let fields = [
        e.seq.to_string(),
        e.id.clone(),
        e.at.to_string(),
        at,
        e.actor.clone(),
        e.action.clone(),
        e.target_type.clone(),
        e.target_id.clone(),
        e.detail.to_string(),
        e.hash.clone(),
    ];
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    line.join(",") + "\r\n"
}

/// `GET /api/audit/export`: every row matching the filters (no paging),
/// oldest first, as CSV or JSON lines, downloaded as a file. The export
/// itself is recorded in the log.
pub async fn export(
    caller: Caller,
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let user = caller.staff_in(ADMIN)?;
    let q = query(q)?;
    if q.limit.is_some() || q.before.is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            "the export has no paging (limit, before)",
        ));
    }
    let jsonl = match q.format.as_deref() {
        None | Some("csv") => false,
        Some("jsonl") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::BadQuery,
                "format must be csv or jsonl",
            ))
        }
    };
    let mut filter = q.filter();
    let mut rows: Vec<AuditEntry> = Vec::new();
    loop {
        let page = state.store.audit_page(&filter, MAX_LIMIT).await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        rows.extend(page);
        filter.before_seq = Some(last);
    }
    rows.reverse();
    let mut body = String::new();
    if jsonl {
        for e in &rows {
            body.push_str(&serde_json::to_string(e).map_err(|_| ApiError::internal())?);
            body.push('\n');
        }
    } else {
        body.push_str("seq,id,at,at_utc,actor,action,target_type,target_id,detail,hash\r\n");
        for e in &rows {
            body.push_str(&csv_line(e));
        }
    }
    state
        .store
        .record_audit(
            &format!("user:{}", user.id),
            "audit.export",
            "audit",
            "log",
            json!({"format": if jsonl { "jsonl" } else { "csv" }, "rows": rows.len()}),
        )
        .await?;
    let (ctype, ext) = if jsonl {
        ("application/x-ndjson; charset=utf-8", "jsonl")
    } else {
        ("text/csv; charset=utf-8", "csv")
    };
    let name = format!("giaoban-audit-{}.{ext}", cabinet::now_unix());
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /api/audit/verify`: the chain checked against the key and the
/// checkpoint in the data folder (as `giaoban audit verify`).
pub async fn verify(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    caller.staff_in(ADMIN)?;
    let v = match state.store.verify_audit_chain().await? {
        None => json!({"ok": true}),
        Some(b) => {
            let mut v = json!(b);
            v["ok"] = false.into();
            v
        }
    };
    Ok(Json(v).into_response())
}

/// Records an audit event and waits for the write (a join or a WHIP/WHEP
/// start: so it is in the log before the leave that follows it); a failure
/// is logged, not returned.
pub async fn record_now(
    state: &AppState,
    actor: String,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    detail: serde_json::Value,
) {
    if let Err(e) = state
        .store
        .record_audit(&actor, action, target_type, &target_id, detail)
        .await
    {
        tracing::error!(error = %e, action, "cannot record an event in the audit log");
    }
}

/// Records an audit event without waiting for the write (hot paths: joins
/// and leaves, WHIP/WHEP sessions, downloads): it runs in its own task, and
/// a failure is logged. Events of one session are written in order only as
/// far as their tasks are; each carries what links it (participant id).
pub fn record_later(
    state: &AppState,
    actor: String,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    detail: serde_json::Value,
) {
    let store = state.store.clone();
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        if let Err(e) = store
            .record_audit(&actor, action, target_type, &target_id, detail)
            .await
        {
            tracing::error!(error = %e, action, "cannot record an event in the audit log");
        }
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    });
}

/// Writes started by [`record_later`] and not finished yet.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Waits (at most `limit`) for the writes of [`record_later`] to finish:
/// the server calls it at shutdown, after the sessions left and before the
/// database closes, so their `session.leave` rows are not lost.
pub async fn drain(limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("-x,y"), "\"'-x,y\"");
    }
}
