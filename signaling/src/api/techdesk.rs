//! The operator's desk (issue 23): the live dashboard of a meeting's
//! bridge points, each point's pre-meeting check, and the text channel
//! between the province's operator and each point.
//!
//! Who:
//! - the dashboard and a point's history: staff admin, secretary, operator;
//! - the pre-meeting check (`/api/link-check...`): the holder of an
//!   invitation (its own check, before or during the meeting);
//! - the text channel: those staff (every thread; they write to one point
//!   or to all), and each invitee of the meeting (its own thread and the
//!   messages to all; it writes to the operator).
//!
//! Each dashboard read also takes the media server's figures of the
//! meeting's participants (one engine command, counters its connections
//! keep anyway) into [`crate::linkstats::LinkStats::server_figures`].
//!
//! The dashboard is polled (`GET .../dashboard` every 2 s by the page):
//! the operator is a staff account, not a participant with a WebSocket;
//! a poll needs no new fan-out path in the hub, costs the same whether
//! one or five operators watch, and picks up where it was after a network
//! cut. 150 points make about 60 KB per poll.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cabinet::{
    DeviceResult, LinkCheck, LinkPath, NewLinkCheck, NewTechMessage, StaffRole, TechSender,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, ApiQuery, ApiResult, Caller, READ};
use crate::linkstats::{Connected, PointState};
use crate::protocol::ErrorCode;
use crate::AppState;

/// Alerts a dashboard answer carries at most (the newest).
const DASHBOARD_ALERTS: usize = 100;
/// Largest download of the bandwidth probe, bytes.
pub const MAX_PROBE_BYTES: usize = 2_000_000;
/// How long the test connection of a pre-meeting check stays up.
const ICE_PROBE_SECS: u64 = 30;

/// The invitation of an invitee caller; else 403.
fn invitee(caller: &Caller) -> ApiResult<(&cabinet::Invitation, &cabinet::Meeting)> {
    match caller {
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } => Ok((&**invitation, &**meeting)),
        Caller::Staff(_) => Err(ApiError::forbidden()),
    }
}

/// Milliseconds since the Unix epoch (the server's figures' rates).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn no_store(v: Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response()
}

/// `GET /api/meetings/{id}/dashboard`: every expected point (each
/// invitation not revoked) with its link now, its latest pre-meeting
/// check, and the alerts, newest first.
pub async fn dashboard(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    let meeting = super::handlers::meeting_exists(&state, &id).await?;
    let invitations = state.store.list_invitations(&id).await?;
    let checks: HashMap<String, LinkCheck> = state
        .store
        .latest_link_checks(&id)
        .await?
        .into_iter()
        .map(|c| (c.invitation_id.clone(), c))
        .collect();
    let now = crate::hub::now_unix();
    let links = &state.api.links;
    links.sync(&id, &Connected::from_roster(&state.hub.roster(&id)), now);
    // The media server's own figures, beside the clients' reports.
    if let Some(sfu) = &state.sfu {
        match sfu.participant_figures(&id).await {
            Ok(figures) => links.server_figures(&id, &figures, unix_ms()),
            Err(e) => tracing::warn!(error = %e, "dashboard: the media server's figures"),
        }
    }
    let (views, alerts) = links.snapshot(&id, now);
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut points = Vec::new();
    for inv in invitations.iter().filter(|i| !i.is_revoked()) {
        names.insert(&inv.id, &inv.name);
        let view = views.get(&inv.id);
        let state_now = view.map_or(PointState::Absent, |v| v.state);
        *counts.entry(state_now.as_str()).or_default() += 1;
        let check = checks.get(&inv.id);
        points.push(json!({
            "invitation_id": inv.id,
            "name": inv.name,
            "role": inv.role.as_str(),
            "bridge_point_id": inv.bridge_point_id,
            "state": state_now,
            // Worst first: the page sorts "problems first" by it.
            "severity": PointState::ALL.iter().position(|s| *s == state_now),
            "connected": view.is_some_and(|v| v.connected),
            "kind": view.and_then(|v| v.kind.clone()),
            "participant_id": view.and_then(|v| v.participant_id.clone()),
            "since": view.and_then(|v| v.since),
            "last_seen": view.and_then(|v| v.last_seen),
            "report": view.and_then(|v| v.report.clone()),
            "server": view.and_then(|v| v.server.clone()),
            "check": check,
        }));
    }
    let alerts: Vec<Value> = alerts
        .into_iter()
        .filter(|a| names.contains_key(a.invitation_id.as_str()))
        .take(DASHBOARD_ALERTS)
        .map(|a| {
            json!({
                "at": a.at,
                "invitation_id": a.invitation_id,
                "name": names.get(a.invitation_id.as_str()),
                "kind": a.kind,
                "detail": a.detail,
            })
        })
        .collect();
    let s = links.settings();
    Ok(no_store(json!({
        "meeting_id": id,
        "title": meeting.title,
        "status": meeting.status,
        "now": now,
        "settings": {
            "loss_alert_percent": s.loss_alert_percent,
            "rtt_alert_ms": s.rtt_alert_ms,
            "jitter_alert_ms": s.jitter_alert_ms,
            "silence_alert_secs": s.silence_alert_secs,
            "frozen_alert_secs": s.frozen_alert_secs,
            "frozen_in_alert_secs": s.frozen_in_alert_secs,
            "no_media_alert_secs": s.no_media_alert_secs,
            "stale_secs": s.stale_secs,
        },
        "counts": counts,
        "points": points,
        "alerts": alerts,
    })))
}

/// `GET /api/meetings/{id}/link-history/{invitation_id}`: a point's
/// samples of the history window, oldest first.
pub async fn history(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, invitation_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.staff_in(READ)?;
    super::handlers::meeting_exists(&state, &id).await?;
    let samples = state.api.links.history(&id, &invitation_id);
    Ok(no_store(json!({
        "meeting_id": id,
        "invitation_id": invitation_id,
        "samples": samples,
    })))
}

// ------------------------------------------------------ pre-meeting check ----

/// `GET /api/link-check`: what the check page needs: who it is, the ICE
/// servers of the test connection, the thresholds, the latest check.
pub async fn check_info(caller: Caller, State(state): State<AppState>) -> ApiResult<Response> {
    let (inv, meeting) = invitee(&caller)?;
    let latest = state
        .store
        .latest_link_checks(&meeting.id)
        .await?
        .into_iter()
        .find(|c| c.invitation_id == inv.id);
    let ice = crate::turn::ice_fields(
        state.turn.as_deref(),
        &format!("check-{}", inv.id),
        std::time::SystemTime::now(),
    );
    let s = state.api.links.settings();
    Ok(no_store(json!({
        "meeting": {
            "id": meeting.id,
            "title": meeting.title,
            "status": meeting.status,
            "starts_at": meeting.starts_at,
        },
        "invitation": {"id": inv.id, "name": inv.name, "role": inv.role.as_str()},
        "ice_servers": ice.ice_servers,
        "ice_transport_policy": ice.ice_transport_policy,
        "max_rtt_ms": s.check_max_rtt_ms,
        "min_down_kbps": s.check_min_down_kbps,
        "min_up_kbps": s.check_min_up_kbps,
        "max_probe_bytes": MAX_PROBE_BYTES,
        "latest": latest,
    })))
}

/// The body of `POST /api/link-check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckReq {
    camera: DeviceResult,
    microphone: DeviceResult,
    #[serde(default)]
    mic_level: Option<u8>,
    speaker: DeviceResult,
    path: LinkPath,
    #[serde(default)]
    rtt_ms: Option<u32>,
    #[serde(default)]
    down_kbps: Option<u32>,
    #[serde(default)]
    up_kbps: Option<u32>,
    #[serde(default)]
    browser: String,
}

/// What is wrong in a check, by the server's thresholds.
fn problems(c: &CheckReq, s: &crate::linkstats::LinkSettings) -> Vec<String> {
    let mut p = Vec::new();
    if c.camera != DeviceResult::Ok {
        p.push("camera");
    }
    if c.microphone != DeviceResult::Ok {
        p.push("microphone");
    }
    if c.speaker != DeviceResult::Ok {
        p.push("speaker");
    }
    if c.path == LinkPath::None {
        p.push("path");
    }
    if c.rtt_ms.is_none_or(|r| r > s.check_max_rtt_ms) {
        p.push("rtt");
    }
    if c.down_kbps.is_none_or(|d| d < s.check_min_down_kbps) {
        p.push("download");
    }
    if c.up_kbps.is_none_or(|u| u < s.check_min_up_kbps) {
        p.push("upload");
    }
    p.into_iter().map(str::to_owned).collect()
}

/// `POST /api/link-check`: stores the caller's check with the server's
/// verdict (201).
pub async fn check_post(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CheckReq>,
) -> ApiResult<Response> {
    let (inv, meeting) = invitee(&caller)?;
    let allowed_camera = matches!(
        req.camera,
        DeviceResult::Ok | DeviceResult::Failed | DeviceResult::Absent
    );
    let allowed_mic = req.microphone != DeviceResult::Unknown;
    let allowed_speaker = matches!(
        req.speaker,
        DeviceResult::Ok | DeviceResult::Failed | DeviceResult::Unknown
    );
    if !(allowed_camera && allowed_mic && allowed_speaker) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "camera is ok, failed or absent; microphone ok, silent, failed or absent; \
             speaker ok, failed or unknown",
        ));
    }
    if req.mic_level.is_some_and(|l| l > 100) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidInput,
            "mic_level is 0 to 100",
        ));
    }
    let found = problems(&req, state.api.links.settings());
    let check = NewLinkCheck {
        camera: req.camera,
        microphone: req.microphone,
        mic_level: req.mic_level,
        speaker: req.speaker,
        path: req.path,
        rtt_ms: req.rtt_ms,
        down_kbps: req.down_kbps,
        up_kbps: req.up_kbps,
        browser: req.browser,
        problems: found,
    };
    let stored = state
        .store
        .add_link_check(&meeting.id, &inv.id, check)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(stored),
    )
        .into_response())
}

/// The query of `GET /api/link-check/probe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeQuery {
    #[serde(default)]
    bytes: Option<usize>,
}

/// `GET /api/link-check/probe?bytes=N`: N bytes (at most
/// [`MAX_PROBE_BYTES`]; 0 by default, for a round trip) that do not
/// compress, for the check's download timing.
pub async fn probe_get(caller: Caller, ApiQuery(q): ApiQuery<ProbeQuery>) -> ApiResult<Response> {
    invitee(&caller)?;
    let n = q.bytes.unwrap_or(0);
    if n > MAX_PROBE_BYTES {
        return Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            format!("bytes is at most {MAX_PROBE_BYTES}"),
        ));
    }
    let mut body = vec![0u8; n];
    rand::Rng::fill(&mut rand::rng(), &mut body[..]);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/link-check/probe`: takes up to [`MAX_PROBE_BYTES`] of
/// anything and says how many arrived, for the check's upload timing.
pub async fn probe_post(caller: Caller, body: Bytes) -> ApiResult<Response> {
    invitee(&caller)?;
    if body.len() > MAX_PROBE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("the probe is at most {MAX_PROBE_BYTES} bytes"),
        ));
    }
    Ok(no_store(json!({"received": body.len()})))
}

/// The body of `POST /api/link-check/ice`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceProbeReq {
    sdp: String,
}

/// `POST /api/link-check/ice`: the check's test connection. The offer (a
/// publisher's: one audio or video section) gets the media server's
/// answer; the browser then connects as it would in the meeting (UDP,
/// else TCP, else its TURN relay) and reads the path and the round-trip
/// time from its selected candidate pair. The connection is alone in a
/// room of its own and closes after [`ICE_PROBE_SECS`].
pub async fn ice_probe(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<IceProbeReq>,
) -> ApiResult<Response> {
    let (inv, _) = invitee(&caller)?;
    crate::session::check_offer(&req.sdp, state.limits.max_offer_media)
        .map_err(|m| ApiError::bad_request(ErrorCode::TooManyMedia, m))?;
    let sfu = state.sfu.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::MediaUnavailable,
            "the media plane is not available",
        )
    })?;
    let room = format!("check-{}", uuid::Uuid::new_v4().simple());
    let pid = crate::session::new_participant_id();
    let (media, mut events) = sfu.join_publisher(room, pid).await.map_err(sfu_error)?;
    let answer = media.publish(req.sdp).await.map_err(sfu_error)?;
    tracing::info!(invitation = %inv.id, "pre-meeting check: test connection");
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(ICE_PROBE_SECS), async {
            while events.recv().await.is_some() {}
        })
        .await;
        media.leave().await;
    });
    Ok(no_store(json!({"sdp": answer})))
}

fn sfu_error(e: sfu::SfuError) -> ApiError {
    match e {
        sfu::SfuError::BadSdp(m) => ApiError::bad_request(ErrorCode::BadSdp, m),
        sfu::SfuError::Negotiation(m) => ApiError::bad_request(ErrorCode::NegotiationFailed, m),
        other => {
            tracing::error!(error = %other, "media plane error (pre-meeting check)");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::MediaUnavailable,
                "the media plane is not available",
            )
        }
    }
}

// ----------------------------------------------------------- text channel ----

/// Staff roles of the province's operator side of the text channel.
const DESK: &[StaffRole] = &[StaffRole::Admin, StaffRole::Secretary, StaffRole::Operator];

/// The query of `GET /api/meetings/{id}/tech-messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Only messages after this `seq`.
    #[serde(default)]
    after: Option<i64>,
}

/// `GET /api/meetings/{id}/tech-messages?after=N`: the operator reads every
/// thread; an invitee its own and the messages to all.
pub async fn messages_get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<Response> {
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(
            ErrorCode::BadQuery,
            "after is 0 or more",
        ));
    }
    let thread = match &caller {
        Caller::Staff(_) => {
            caller.staff_in(DESK)?;
            super::handlers::meeting_exists(&state, &id).await?;
            None
        }
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } if meeting.id == id => Some(invitation.id.clone()),
        Caller::Invitee { .. } => return Err(ApiError::forbidden()),
    };
    let messages = state
        .store
        .tech_messages(&id, thread.as_deref(), after)
        .await?;
    Ok(no_store(json!({ "messages": messages })))
}

/// The body of `POST /api/meetings/{id}/tech-messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageReq {
    text: String,
    /// The operator's: the point written to; absent or null: every point.
    /// A point may leave it out or name its own invitation.
    #[serde(default)]
    invitation_id: Option<String>,
}

/// `POST /api/meetings/{id}/tech-messages`: 201 with the stored message.
/// An operator's message also goes at once to the WebSocket of the point
/// it is for (of every point, for one to all) as `tech_message`; the
/// points' messages reach the operator's page by its polling, as the
/// dashboard does.
pub async fn messages_post(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MessageReq>,
) -> ApiResult<Response> {
    let actor = caller.actor();
    let (sender, author, thread) = match &caller {
        Caller::Staff(u) => {
            caller.staff_in(DESK)?;
            (
                TechSender::Operator,
                u.display_name.clone(),
                req.invitation_id,
            )
        }
        Caller::Invitee {
            invitation,
            meeting,
            ..
        } if meeting.id == id => {
            if req
                .invitation_id
                .as_ref()
                .is_some_and(|i| *i != invitation.id)
            {
                return Err(ApiError::forbidden());
            }
            (
                TechSender::Point,
                invitation.name.clone(),
                Some(invitation.id.clone()),
            )
        }
        Caller::Invitee { .. } => return Err(ApiError::forbidden()),
    };
    let stored = state
        .store
        .add_tech_message(NewTechMessage {
            meeting_id: &id,
            sender,
            invitation_id: thread.as_deref(),
            author: &author,
            actor: &actor,
            text: &req.text,
        })
        .await?;
    // The operator's message reaches the point's page at once, over its
    // WebSocket (it also polls, slowly, after a reconnect); the operator's
    // page polls (it has no socket).
    if sender == TechSender::Operator {
        if let Ok(message) = serde_json::to_value(&stored) {
            state.hub.send_to_invitation(
                &id,
                stored.invitation_id.as_deref(),
                &crate::protocol::ServerMsg::TechMessage { message },
            );
        }
    }
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(stored),
    )
        .into_response())
}
