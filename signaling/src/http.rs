//! The HTTP routes: health, the invitation check, the WebSocket upgrade,
//! the embedded web client, and the REST API ([`crate::api`]).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{self, TokenError};
use crate::protocol::ErrorCode;
use crate::AppState;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// The router of the whole server (no socket needed: tests call it directly).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(crate::metrics::readyz))
        .route("/ws", get(ws))
        .route("/", get(|| async { asset("index.html") }))
        .route("/join", get(|| async { asset("join.html") }))
        .route("/admin", get(|| async { asset("admin.html") }))
        .route("/operator", get(|| async { asset("operator.html") }))
        .route("/check", get(|| async { asset("check.html") }))
        .route("/opinion", get(|| async { asset("opinion.html") }))
        .route("/assets/{*path}", get(asset_path))
        .route("/vendor/{*path}", get(vendor_path))
        .merge(crate::api::routes(state.api.max_upload_bytes))
        .merge(crate::whip::routes())
        .with_state(state)
}

/// The headers every answer carries (pages, assets, API, WHIP/WHEP), so a
/// page is never framed by another site, never leaks its URL (invitation
/// tokens travel in the fragment, staff pages in the path) and runs only the
/// server's own scripts. An answer that sets its own
/// `Content-Security-Policy` (a document download: `sandbox`) keeps it.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    csp: HeaderValue,
    /// `X-Frame-Options: DENY` (only when no frame ancestor is allowed).
    deny_frames: bool,
    /// `Strict-Transport-Security` (only when the server speaks TLS itself).
    hsts: bool,
}

impl SecurityHeaders {
    /// `frame_ancestors`: origins allowed to frame the pages (validated by
    /// the config: one source expression each); `tls`: HTTPS is served.
    pub fn new(frame_ancestors: &[String], tls: bool) -> SecurityHeaders {
        let ancestors = if frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            frame_ancestors.join(" ")
        };
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; \
             img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
             connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors {ancestors}"
        );
        SecurityHeaders {
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
                HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'")
            }),
            deny_frames: frame_ancestors.is_empty(),
            hsts: tls,
        }
    }

    /// Adds the headers to `r` (those it already has stay).
    pub fn apply(&self, mut r: Response) -> Response {
        let h = r.headers_mut();
        h.entry(header::CONTENT_SECURITY_POLICY)
            .or_insert_with(|| self.csp.clone());
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.entry(header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        if self.deny_frames {
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        if self.hsts {
            h.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        r
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// An error object `{"code", "message"}` with a status.
fn api_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let mut r = (status, Json(json!({"code": code, "message": message}))).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /api/invitation`: what an invitation token stands for.
pub(crate) async fn invitation(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default();
    let result = async {
        let claims = state.keys.decode(token)?;
        auth::check_invitation(&state.store, &claims, None).await
    }
    .await;
    // Who to call, also when the link does not work (`server.contact`).
    let contact = Some(state.api.contact.as_str()).filter(|c| !c.is_empty());
    let (status, body) = match result {
        Ok((meeting, inv)) => (
            StatusCode::OK,
            json!({
                "meeting": {
                    "id": meeting.id,
                    "title": meeting.title,
                    "starts_at": meeting.starts_at,
                    "ends_at": meeting.ends_at,
                    "location": meeting.location,
                    "status": meeting.status,
                },
                "name": inv.name,
                "role": inv.role.as_str(),
                "expires_at": inv.expires_at,
                "answer": crate::api::answer_json(&inv),
                "contact": contact,
            }),
        ),
        Err(TokenError::Internal) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"code": ErrorCode::Internal, "message": "could not check the invitation", "contact": contact}),
        ),
        Err(e) => (
            StatusCode::UNAUTHORIZED,
            json!({"code": ErrorCode::from(&e), "message": e.to_string(), "contact": contact}),
        ),
    };
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The WebSocket read buffer a session starts with.
const WS_READ_BUFFER: usize = 4 * 1024;

async fn ws(
    State(state): State<AppState>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Caps on open sockets, per client address and in total, before any
    // work is done for this one (docs/protocol.md, "Limits").
    let ip = crate::api::request_ip(&state, &ext, &headers);
    let slot = match state.limits.sockets.acquire(ip) {
        Ok(slot) => slot,
        Err(crate::session::SocketRefused::PerAddress) => {
            crate::metrics::ws_error(ErrorCode::TooManyConnections);
            return api_error(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyConnections,
                "too many open connections from this address",
            );
        }
        Err(crate::session::SocketRefused::Total) => {
            crate::metrics::ws_error(ErrorCode::ServerBusy);
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServerBusy,
                "the server has as many connections as it accepts",
            );
        }
    };
    let max = state.limits.max_message_bytes;
    // The hard limit of the WebSocket layer is above ours, so a message a bit
    // over the limit still reaches us and gets a proper `message_too_large`.
    let hard = max.saturating_mul(4).max(max + 65_536);
    // Each session is mostly idle and its messages small (an SDP answer is
    // the largest, tens of KB, and grows the buffer while it is read):
    // tungstenite's default read buffer of 128 KiB per connection was 7 % of
    // the server's heap with 30 participants (docs/performance.md).
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(hard)
        .max_frame_size(hard)
        .on_upgrade(move |socket| crate::session::run(socket, state, Some(slot)))
}

async fn asset_path(Path(path): Path<String>) -> Response {
    asset(&format!("assets/{path}"))
}

/// Third-party files kept under web/vendor (pdf.js), served like the
/// assets.
async fn vendor_path(Path(path): Path<String>) -> Response {
    asset(&format!("vendor/{path}"))
}

/// An embedded file of web/, or 404.
fn asset(path: &str) -> Response {
    match assets::WEB_ASSETS.iter().find(|(p, _)| *p == path) {
        Some((p, bytes)) => {
            let cache = if p.ends_with(".html") {
                "no-cache"
            } else {
                "public, max-age=300"
            };
            (
                [
                    (header::CONTENT_TYPE, content_type(p)),
                    (header::CACHE_CONTROL, cache),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                *bytes,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The content type of a file by its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Paths of the embedded files (for tests and diagnostics).
pub fn embedded_files() -> impl Iterator<Item = &'static str> {
    assets::WEB_ASSETS.iter().map(|(p, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/app.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/app.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn security_headers() {
        let r = SecurityHeaders::new(&[], false).apply(StatusCode::OK.into_response());
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("object-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_none());

        let framed = ["https://portal.example.gov.vn".to_owned()];
        let mut own = StatusCode::OK.into_response();
        own.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
        let r = SecurityHeaders::new(&framed, true).apply(own);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
        assert!(h.get(header::X_FRAME_OPTIONS).is_none());
        assert_eq!(h[header::STRICT_TRANSPORT_SECURITY], "max-age=31536000");
        let page = SecurityHeaders::new(&framed, true).apply(StatusCode::OK.into_response());
        let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            csp.ends_with("frame-ancestors https://portal.example.gov.vn"),
            "{csp}"
        );
    }

    #[test]
    fn web_files_are_embedded() {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        if web.join("index.html").is_file() {
            assert!(embedded_files().any(|p| p == "index.html"));
        }
        for p in embedded_files() {
            assert!(!p.starts_with('/') && !p.contains(".."), "{p}");
        }
    }
}
