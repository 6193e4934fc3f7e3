//! Observability: Prometheus metrics at `GET /metrics` (text exposition
//! format 0.0.4, written by hand) and the readiness check `GET /readyz`.
//!
//! Counters of the hot paths (WebSocket sessions and messages, HTTP
//! responses) are process-wide atomics in [`METRICS`]; nothing is locked to
//! count. Gauges (meetings, participants) and the media plane's counters are
//! read when scraped.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::config::MetricsConfig;
use crate::protocol::{ClientType, ErrorCode};
use crate::AppState;

/// How long a scrape or a readiness check waits for the media plane.
const SFU_TIMEOUT: Duration = Duration::from_secs(2);

/// Request types of the signaling protocol ([`ClientType::ALL`]), counted
/// by type; anything else (unparseable or unknown) counts as `invalid`, the
/// last counter.
const MESSAGE_TYPES: usize = ClientType::ALL.len() + 1;

/// The label of the `i`-th message counter.
fn message_label(i: usize) -> &'static str {
    ClientType::ALL.get(i).map_or("invalid", |t| t.as_str())
}

/// Error codes of the signaling protocol (docs/protocol.md; each one of
/// [`crate::protocol::ErrorCode`] but `send_timeout`, a dropped socket);
/// anything else counts as `other`.
const ERROR_CODES: [&str; 29] = [
    "bad_json",
    "unknown_type",
    "bad_request",
    "message_too_large",
    "binary_not_supported",
    "rate_limited",
    "hello_required",
    "unsupported_version",
    "not_joined",
    "already_joined",
    "resume_failed",
    "token_invalid",
    "token_expired",
    "token_wrong_meeting",
    "token_revoked",
    "meeting_not_found",
    "meeting_closed",
    "bad_sdp",
    "negotiation_failed",
    "bad_candidate",
    "unknown_track",
    "forbidden",
    "join_timeout",
    "send_timeout",
    "too_many_connections",
    "server_busy",
    "too_many_media",
    "internal",
    "other",
];

/// Where an HTTP request went, for the response counters.
const AREAS: [&str; 2] = ["api", "other"];
/// Status classes 1xx..5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The process-wide counters.
pub struct Metrics {
    ws_open: AtomicI64,
    ws_total: AtomicU64,
    ws_messages: [AtomicU64; MESSAGE_TYPES],
    ws_errors: [AtomicU64; ERROR_CODES.len()],
    http: [[AtomicU64; CLASSES.len()]; AREAS.len()],
}

/// The counters of this process.
pub static METRICS: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            ws_open: AtomicI64::new(0),
            ws_total: AtomicU64::new(0),
            ws_messages: [const { AtomicU64::new(0) }; MESSAGE_TYPES],
            ws_errors: [const { AtomicU64::new(0) }; ERROR_CODES.len()],
            http: [const { [const { AtomicU64::new(0) }; CLASSES.len()] }; AREAS.len()],
        }
    }
}

/// Counts a WebSocket session as open until dropped.
pub struct WsSessionGuard(());

impl WsSessionGuard {
    pub fn new() -> WsSessionGuard {
        METRICS.ws_open.fetch_add(1, Ordering::Relaxed);
        METRICS.ws_total.fetch_add(1, Ordering::Relaxed);
        WsSessionGuard(())
    }
}

impl Default for WsSessionGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WsSessionGuard {
    fn drop(&mut self) {
        METRICS.ws_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a WebSocket request of type `kind` (None: unparseable or unknown,
/// `invalid`), as [`crate::protocol::parse`] read it.
pub fn ws_message(kind: Option<ClientType>) {
    let i = kind
        .and_then(|k| ClientType::ALL.iter().position(|t| *t == k))
        .unwrap_or(MESSAGE_TYPES - 1);
    METRICS.ws_messages[i].fetch_add(1, Ordering::Relaxed);
}

/// Counts an error answer with `code` (one not in [`ERROR_CODES`]: `other`).
pub fn ws_error(code: ErrorCode) {
    ws_error_label(code.as_str());
}

/// Counts a socket dropped because its client stopped reading
/// (`send_timeout`).
pub fn ws_send_timeout() {
    ws_error_label("send_timeout");
}

fn ws_error_label(label: &str) {
    let i = ERROR_CODES
        .iter()
        .position(|c| *c == label)
        .unwrap_or(ERROR_CODES.len() - 1);
    METRICS.ws_errors[i].fetch_add(1, Ordering::Relaxed);
}

/// Middleware counting every HTTP response by area (`/api` or not) and
/// status class.
pub async fn count_responses(req: Request, next: Next) -> Response {
    let area = usize::from(!req.uri().path().starts_with("/api"));
    let response = next.run(req).await;
    let class = usize::from(response.status().as_u16() / 100)
        .saturating_sub(1)
        .min(CLASSES.len() - 1);
    METRICS.http[area][class].fetch_add(1, Ordering::Relaxed);
    response
}

/// What the `/metrics` route needs.
#[derive(Clone)]
struct Scrape {
    app: AppState,
    token: Option<Arc<str>>,
    allow: Arc<[IpNet]>,
}

/// The `/metrics` route (none when `metrics.enabled` is false).
pub fn routes(app: AppState, config: &MetricsConfig) -> Result<Router, String> {
    if !config.enabled {
        return Ok(Router::new());
    }
    let allow = config
        .allow
        .iter()
        .map(|s| IpNet::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let scrape = Scrape {
        app,
        token: config
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Arc::from),
        allow: allow.into(),
    };
    Ok(Router::new()
        .route("/metrics", get(metrics))
        .with_state(scrape))
}

async fn metrics(State(s): State<Scrape>, req: Request) -> Response {
    if !s.allow.is_empty() {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if !peer.is_some_and(|ip| s.allow.iter().any(|n| n.contains(ip))) {
            return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
        }
    }
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut r = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let text = render(&s.app).await;
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One metric family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric family with one sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The whole exposition text.
pub async fn render(app: &AppState) -> String {
    let mut out = String::with_capacity(8192);
    let (meetings, participants, tracks) = app.hub.totals();
    single(
        &mut out,
        "giaoban_meetings_active",
        "gauge",
        "Meetings with at least one participant connected.",
        meetings,
    );
    single(
        &mut out,
        "giaoban_participants",
        "gauge",
        "Participants connected to a meeting.",
        participants,
    );
    single(
        &mut out,
        "giaoban_tracks_published",
        "gauge",
        "Live tracks (audio and video) published in meetings.",
        tracks,
    );
    let m = &METRICS;
    single(
        &mut out,
        "giaoban_ws_sessions_open",
        "gauge",
        "WebSocket sessions open now.",
        m.ws_open.load(Ordering::Relaxed),
    );
    single(
        &mut out,
        "giaoban_ws_sessions_total",
        "counter",
        "WebSocket sessions opened since start.",
        m.ws_total.load(Ordering::Relaxed),
    );
    family(
        &mut out,
        "giaoban_ws_messages_total",
        "counter",
        "Signaling requests received, by type (invalid: unparseable or unknown).",
    );
    for (i, c) in m.ws_messages.iter().enumerate() {
        let t = message_label(i);
        let _ = writeln!(
            out,
            "giaoban_ws_messages_total{{type=\"{t}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "giaoban_ws_errors_total",
        "counter",
        "Signaling error answers sent, by code.",
    );
    for (code, c) in ERROR_CODES.iter().zip(&m.ws_errors) {
        let _ = writeln!(
            out,
            "giaoban_ws_errors_total{{code=\"{code}\"}} {}",
            c.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "giaoban_http_responses_total",
        "counter",
        "HTTP responses, by area (api: /api/*) and status class.",
    );
    for (area, row) in AREAS.iter().zip(&m.http) {
        for (class, c) in CLASSES.iter().zip(row) {
            let _ = writeln!(
                out,
                "giaoban_http_responses_total{{area=\"{area}\",class=\"{class}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
    }
    // The operator's dashboard per meeting: points by state, loss and
    // round-trip histograms, alerts (labels: meeting, and fixed sets).
    let now = crate::hub::now_unix();
    crate::linkstats::sync_with_hub(&app.api.links, &app.hub, now);
    take_server_figures(app).await;
    app.api.links.render_metrics(&mut out, now);
    render_sfu(&mut out, app).await;
    render_process(&mut out);
    out
}

/// The media server's own figures of each meeting's points, as a
/// dashboard refresh takes them (one engine command per meeting with
/// links); a media plane that does not answer in [`SFU_TIMEOUT`] leaves
/// the last figures.
async fn take_server_figures(app: &AppState) {
    let Some(sfu) = &app.sfu else {
        return;
    };
    let links = &app.api.links;
    for id in links.meetings() {
        match tokio::time::timeout(SFU_TIMEOUT, sfu.participant_figures(&id)).await {
            Ok(Ok(figures)) => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                links.server_figures(&id, &figures, now_ms);
            }
            Ok(Err(_)) | Err(_) => break,
        }
    }
}

async fn render_sfu(out: &mut String, app: &AppState) {
    let stats = match &app.sfu {
        Some(sfu) => match tokio::time::timeout(SFU_TIMEOUT, sfu.stats()).await {
            Ok(Ok(s)) => Some(s),
            _ => None,
        },
        None => None,
    };
    single(
        out,
        "giaoban_sfu_up",
        "gauge",
        "1 when the media plane answered this scrape.",
        u8::from(stats.is_some()),
    );
    let Some(s) = stats else {
        return;
    };
    let gauges: [(&str, &str, usize); 3] = [
        ("giaoban_sfu_rooms", "Rooms of the media plane.", s.rooms),
        (
            "giaoban_sfu_participants",
            "Participants of the media plane.",
            s.participants,
        ),
        (
            "giaoban_sfu_peers",
            "Peer connections of the media plane.",
            s.peers,
        ),
    ];
    for (name, help, v) in gauges {
        single(out, name, "gauge", help, v);
    }
    let counters: [(&str, &str, u64); 19] = [
        (
            "giaoban_sfu_udp_datagrams_in_total",
            "UDP datagrams received on the media port.",
            s.udp_datagrams_in,
        ),
        (
            "giaoban_sfu_tcp_frames_in_total",
            "ICE-TCP frames received on the media port.",
            s.tcp_frames_in,
        ),
        (
            "giaoban_sfu_datagrams_unrouted_total",
            "Datagrams no peer claimed (unknown STUN username or address).",
            s.datagrams_unrouted,
        ),
        (
            "giaoban_sfu_tcp_refused_total",
            "Media TCP connections closed by the caps (per address, or no ICE in time).",
            s.tcp_refused,
        ),
        (
            "giaoban_sfu_rtp_packets_in_total",
            "RTP packets received from publishers.",
            s.rtp_packets_in,
        ),
        (
            "giaoban_sfu_rtp_packets_forwarded_total",
            "RTP packets forwarded to subscribers.",
            s.rtp_packets_forwarded,
        ),
        (
            "giaoban_sfu_keyframe_requests_sent_total",
            "Keyframe requests (PLI) sent to publishers, one per simulcast layer asked.",
            s.keyframe_requests_sent,
        ),
        (
            "giaoban_sfu_bytes_in_total",
            "Bytes of the UDP datagrams and ICE-TCP frames received on the media port.",
            s.bytes_in,
        ),
        (
            "giaoban_sfu_datagrams_out_total",
            "UDP datagrams and ICE-TCP frames sent from the media port.",
            s.datagrams_out,
        ),
        (
            "giaoban_sfu_bytes_out_total",
            "Bytes of the UDP datagrams and ICE-TCP frames sent from the media port.",
            s.bytes_out,
        ),
        (
            "giaoban_sfu_udp_send_calls_total",
            "System calls that sent UDP datagrams (one sendmmsg sends many).",
            s.udp_send_calls,
        ),
        (
            "giaoban_sfu_rtp_payload_bytes_in_total",
            "RTP payload bytes received from publishers.",
            s.rtp_payload_bytes_in,
        ),
        (
            "giaoban_sfu_rtp_payload_bytes_forwarded_total",
            "RTP payload bytes forwarded to subscribers.",
            s.rtp_payload_bytes_forwarded,
        ),
        (
            "giaoban_sfu_rtp_packets_lost_total",
            "RTP sequence numbers missing from publishers' streams when the next packet arrived (before retransmission).",
            s.rtp_packets_lost,
        ),
        (
            "giaoban_sfu_layer_switches_total",
            "Switches of a subscriber's video from one simulcast layer to another.",
            s.layer_switches,
        ),
        (
            "giaoban_sfu_rtp_duplicates_dropped_total",
            "Packets not forwarded to a subscriber that already got them (a publisher's retransmission of a late packet) or that came too late.",
            s.duplicates_dropped,
        ),
        (
            "giaoban_sfu_datagrams_dropped_total",
            "Datagrams dropped on arrival because the media engine was behind (its queue full).",
            s.datagrams_dropped,
        ),
        (
            "giaoban_sfu_nacks_received_total",
            "Generic NACK feedback messages received from subscribers.",
            s.nacks_received,
        ),
        (
            "giaoban_sfu_nack_packets_requested_total",
            "Packets subscribers asked to be retransmitted (NACKed sequence numbers).",
            s.nack_packets_requested,
        ),
    ];
    for (name, help, v) in counters {
        single(out, name, "counter", help, v);
    }
}

/// Linux's USER_HZ: the unit of the CPU times in /proc (100 on every
/// architecture Linux exposes to user space this way).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// `process_*` metrics from /proc/self (nothing where there is no /proc).
fn render_process(out: &mut String) {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let Some(kb) = rss_kb {
            single(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                kb * 1024,
            );
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces): state is
        // the first, utime the 12th, stime the 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            single(
                out,
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
                (user + system) as f64 / CLOCK_TICKS_PER_SECOND,
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        single(
            out,
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            dir.count(),
        );
    }
}

/// `GET /readyz`: 200 when the database answers a query and the media plane
/// answers, else 503 with the reason.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let mut failures = Vec::new();
    // A primary-key lookup of an id that does not exist: a round trip to
    // the database and nothing more.
    match tokio::time::timeout(SFU_TIMEOUT, app.store.get_meeting("readyz-probe")).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database failed");
            failures.push("the database failed a query");
        }
        Err(_) => failures.push("the database did not answer in time"),
    }
    match &app.sfu {
        Some(sfu) => match tokio::time::timeout(SFU_TIMEOUT, sfu.stats()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => failures.push("the media plane has stopped"),
            Err(_) => failures.push("the media plane did not answer in time"),
        },
        None => failures.push("no media plane"),
    }
    let mut r = if failures.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": failures.join("; ")})),
        )
            .into_response()
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An IP network of `metrics.allow`: an address or `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `10.0.0.5`, `10.0.0.0/8`, `::1` or `fd00::/8`.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let bad = || format!("metrics.allow: {s:?} is not an IP address or network");
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n = IpNet::parse("10.1.0.0/16").expect("net");
        assert!(n.contains("10.1.2.3".parse().expect("ip")));
        assert!(!n.contains("10.2.0.1".parse().expect("ip")));
        assert!(n.contains("::ffff:10.1.9.9".parse().expect("ip")));
        let one = IpNet::parse("127.0.0.1").expect("ip");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let all = IpNet::parse("0.0.0.0/0").expect("all");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        let v6 = IpNet::parse("fd00::/8").expect("v6");
        assert!(v6.contains("fd12::1".parse().expect("ip")));
        assert!(!v6.contains("fe80::1".parse().expect("ip")));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("nope").is_err());
    }

    #[test]
    fn unknown_labels_fold() {
        let before = METRICS.ws_errors[ERROR_CODES.len() - 1].load(Ordering::Relaxed);
        ws_error(ErrorCode::BadBody);
        assert!(METRICS.ws_errors[ERROR_CODES.len() - 1].load(Ordering::Relaxed) > before);
        let before = METRICS.ws_messages[MESSAGE_TYPES - 1].load(Ordering::Relaxed);
        ws_message(None);
        assert!(METRICS.ws_messages[MESSAGE_TYPES - 1].load(Ordering::Relaxed) > before);
    }

    #[test]
    fn labels_are_the_protocol_s() {
        let labels: Vec<&str> = (0..MESSAGE_TYPES).map(message_label).collect();
        assert_eq!(labels.first(), Some(&"hello"));
        assert_eq!(labels.last(), Some(&"invalid"));
        assert!(labels.contains(&"set_quality"));
        for code in ERROR_CODES {
            assert!(
                matches!(code, "send_timeout" | "other")
                    || crate::protocol::ErrorCode::parse(code).is_some(),
                "{code}"
            );
        }
    }
}
