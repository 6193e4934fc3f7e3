//! Links for operators who get them by phone or on paper:
//!
//! - `GET /api/meetings/{id}/invitations/print` (staff admin, secretary):
//!   the meeting's active links with, for each, a QR code of the link (SVG,
//!   drawn here: no image comes from elsewhere) and its short code ("mã tham
//!   dự", [`crate::short_codes`]), for the printable page of `/admin`.
//!   Showing them is audited as `invitation.links_printed`.
//! - `POST /api/invitation/code` (anyone): the invitation link of a short
//!   code typed on the join page. Lookups are throttled per client address
//!   (failed ones count, [`super::LoginLimiter`]); a code works exactly as
//!   long as its invitation (expired, revoked: refused like its token).

use axum::extract::{Path, State};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::handlers::{invitation_json, link_base, meeting_exists};
use super::{ApiError, ApiJson, ApiResult, Caller, PREPARE};
use crate::auth::{self, TokenError};
use crate::protocol::ErrorCode;
use crate::short_codes;
use crate::AppState;

/// The longest text accepted as a typed code (spaces and dashes included).
pub const MAX_TYPED_CODE: usize = 64;

/// The throttle's key: codes are throttled per address only.
const LIMITER_KEY: &str = "short-code";

/// The QR code of `text` as SVG (error correction M: a printed sheet may be
/// folded or smudged), 2 px a module with the quiet zone (its size on
/// screen; paper scales it).
pub fn qr_svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color>()
            .module_dimensions(2, 2)
            .quiet_zone(true)
            .build(),
    )
}

/// The lookup key of an invitation's code number `n`.
pub(super) fn key_of(state: &AppState) -> impl Fn(&str, i64) -> String + Sync + '_ {
    move |id: &str, n: i64| {
        short_codes::lookup_key(&state.keys, &short_codes::code_for(&state.keys, id, n))
    }
}

pub async fn print(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.staff_in(PREPARE)?;
    let meeting = meeting_exists(&state, &id).await?;
    let base = link_base(&state, &headers);
    let now = cabinet::now_unix();
    let codes = state
        .store
        .ensure_short_codes(&id, now, &key_of(&state))
        .await?;
    let units: std::collections::HashMap<String, cabinet::BridgePoint> = state
        .store
        .list_bridge_points()
        .await?
        .into_iter()
        .map(|b| (b.id.clone(), b))
        .collect();
    let mut invs = state.store.list_invitations(&id).await?;
    invs.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let mut links = Vec::new();
    for inv in &invs {
        let v = invitation_json(&state, &meeting, inv, Some(&base));
        let (Some(url), Some(n)) = (v.get("url").and_then(Value::as_str), codes.get(&inv.id))
        else {
            continue; // revoked or expired: nothing to hand out
        };
        let unit = inv.bridge_point_id.as_ref().and_then(|b| units.get(b));
        let code = short_codes::code_for(&state.keys, &inv.id, *n);
        links.push(json!({
            "invitation_id": inv.id,
            "name": inv.name,
            "role": inv.role,
            "level": unit.map(|u| u.level),
            "unit_code": unit.map(|u| u.code.as_str()).unwrap_or_default(),
            "operator_phone": unit.map(|u| u.operator_phone.as_str()).unwrap_or_default(),
            "url": url,
            "short_code": short_codes::display(&code),
            "expires_at": inv.expires_at,
            "qr_svg": qr_svg(url),
        }));
    }
    if !links.is_empty() {
        super::audit::record_later(
            &state,
            caller.actor(),
            "invitation.links_printed",
            "meeting",
            id.clone(),
            json!({"invitations": links.iter().filter_map(|l| l.get("invitation_id")).collect::<Vec<_>>()}),
        );
    }
    let contact = Some(state.api.contact.as_str()).filter(|c| !c.is_empty());
    let mut r = Json(json!({
        "meeting": {
            "id": meeting.id,
            "title": meeting.title,
            "starts_at": meeting.starts_at,
            "ends_at": meeting.ends_at,
            "location": meeting.location,
            "status": meeting.status,
        },
        "join_url": format!("{base}/join"),
        "url_warning": crate::links::link_warning(&base),
        "contact": contact,
        "links": links,
    }))
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeReq {
    code: String,
}

/// An error of the code lookup, with whom to call (`server.contact`).
fn code_error(state: &AppState, status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let contact = Some(state.api.contact.as_str()).filter(|c| !c.is_empty());
    let mut r = (
        status,
        Json(json!({"code": code, "message": message, "contact": contact})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `POST /api/invitation/code`: the link of a short code.
pub async fn lookup(
    State(state): State<AppState>,
    ext: Extensions,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CodeReq>,
) -> ApiResult<Response> {
    if req.code.chars().count() > MAX_TYPED_CODE {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            format!("a code has at most {MAX_TYPED_CODE} characters"),
        ));
    }
    let ip = super::request_ip(&state, &ext, &headers);
    let limiter = &state.api.code_limiter;
    if let Err(wait) = limiter.attempt(LIMITER_KEY, ip) {
        let mut r = code_error(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyAttempts,
            &format!("too many wrong codes from this address; try again in {wait} s"),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let unknown = || {
        code_error(
            &state,
            StatusCode::NOT_FOUND,
            ErrorCode::InvitationNotFound,
            "no invitation has this code",
        )
    };
    let Some(code) = short_codes::normalize(&req.code) else {
        return Ok(unknown());
    };
    let key = short_codes::lookup_key(&state.keys, &code);
    let Some(inv) = state.store.invitation_by_short_code(&key).await? else {
        return Ok(unknown());
    };
    // The same checks as the invitation's token: expired, revoked, the
    // meeting over.
    let token = state
        .keys
        .sign(&auth::claims_for(&inv))
        .map_err(|_| ApiError::internal())?;
    let checked = async {
        let claims = state.keys.decode(&token)?;
        auth::check_invitation(&state.store, &claims, None).await
    }
    .await;
    match checked {
        Ok(_) => {}
        Err(TokenError::Internal) => return Err(ApiError::internal()),
        Err(e) => {
            return Ok(code_error(
                &state,
                StatusCode::UNAUTHORIZED,
                ErrorCode::from(&e),
                &e.to_string(),
            ))
        }
    }
    limiter.succeeded(LIMITER_KEY, ip);
    super::audit::record_later(
        &state,
        format!("invitation:{}", inv.id),
        "invitation.code_used",
        "invitation",
        inv.id.clone(),
        json!({"meeting_id": inv.meeting_id, "address": ip.map(|i| i.to_string())}),
    );
    let base = link_base(&state, &headers);
    let mut r = Json(json!({
        "token": token,
        "url": format!("{base}/join#{token}"),
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_svg_is_plain_svg() {
        let s = super::qr_svg("https://hop.example.vn/join#abc").expect("svg");
        assert!(s.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!s.contains("<script"));
        assert!(!s.contains("href"));
    }
}
