//! One WebSocket session: the protocol of `docs/protocol.md` for one
//! participant. One task per socket owns the socket, the participant's media
//! handle and its hub channel; it never panics on input and its failure
//! affects nobody else.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sfu::{Candidate, MediaKind, PcKind, SfuError, SfuEvent};
use tokio::sync::mpsc;

use crate::auth;
use crate::hub::{HubMsg, KickReason, ParticipantInfo, TrackInfo};
use crate::AppState;

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Close codes used.
mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// Limits of one session.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Largest text message accepted.
    pub max_message_bytes: usize,
    /// Messages per second (and burst).
    pub messages_per_second: u32,
    /// A socket silent this long is closed.
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_message_bytes: 262_144,
            messages_per_second: 50,
            idle_timeout: Duration::from_secs(40),
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `rate` stored.
struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
    /// When we last told the client it is rate limited (one notice a second).
    last_notice: Option<Instant>,
}

impl RateLimiter {
    fn new(rate: u32) -> RateLimiter {
        let rate = f64::from(rate.max(1));
        RateLimiter {
            rate,
            tokens: rate,
            last: Instant::now(),
            last_notice: None,
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn should_notify(&mut self) -> bool {
        let now = Instant::now();
        match self.last_notice {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => false,
            _ => {
                self.last_notice = Some(now);
                true
            }
        }
    }
}

/// A new participant id: `p-` and 12 hex digits.
pub fn new_participant_id() -> String {
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("p-{hex}")
}

/// The session's state once `join` succeeded.
struct Joined {
    meeting_id: String,
    pid: String,
    /// The participant's side of the media plane (None: the media plane
    /// refused the join; the participant is in the meeting without media).
    media: Option<sfu::Participant>,
    sfu_rx: Option<mpsc::UnboundedReceiver<SfuEvent>>,
    hub_rx: mpsc::UnboundedReceiver<HubMsg>,
}

/// What the loop does after handling something.
enum Flow {
    Continue,
    /// Close the socket with this code; `reason` is what the others see.
    Close {
        code: u16,
        reason: &'static str,
        left_reason: &'static str,
    },
}

/// An error answer.
struct Fail {
    code: &'static str,
    message: String,
}

impl Fail {
    fn new(code: &'static str, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }
}

impl From<SfuError> for Fail {
    fn from(e: SfuError) -> Fail {
        match e {
            SfuError::BadSdp(m) => Fail::new("bad_sdp", m),
            SfuError::Negotiation(m) => Fail::new("negotiation_failed", m),
            SfuError::BadCandidate(m) => Fail::new("bad_candidate", m),
            SfuError::UnknownTrack(t) => Fail::new("unknown_track", format!("no track {t}")),
            other => {
                tracing::error!(error = %other, "media plane error");
                Fail::new("internal", "the media plane failed")
            }
        }
    }
}

struct Session {
    state: AppState,
    socket: WebSocket,
    hello: bool,
    joined: Option<Joined>,
    rate: RateLimiter,
}

/// Runs a session until the socket closes, the client leaves, it is kicked
/// or the server shuts down.
pub async fn run(socket: WebSocket, state: AppState) {
    let _alive = state.sessions.clone();
    let _counted = crate::metrics::WsSessionGuard::new();
    let mut shutdown = state.shutdown.clone();
    let limits = state.limits.clone();
    let mut s = Session {
        rate: RateLimiter::new(limits.messages_per_second),
        state,
        socket,
        hello: false,
        joined: None,
    };
    let mut last_activity = Instant::now();
    let mut left_reason = "disconnected";
    if *shutdown.borrow() {
        s.close(close::GOING_AWAY, "server shutting down").await;
        return;
    }
    loop {
        let idle = tokio::time::sleep_until((last_activity + limits.idle_timeout).into());
        let (hub_rx, sfu_rx) = match s.joined.as_mut() {
            Some(j) => (Some(&mut j.hub_rx), j.sfu_rx.as_mut()),
            None => (None, None),
        };
        let hub_next = async {
            match hub_rx {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let sfu_next = async {
            match sfu_rx {
                Some(rx) => Some(rx.recv().await),
                None => std::future::pending().await,
            }
        };
        let socket = &mut s.socket;
        enum Input {
            Ws(Option<Result<Message, axum::Error>>),
            Hub(Option<HubMsg>),
            Sfu(Option<Option<SfuEvent>>),
            Idle,
            Shutdown,
        }
        let input = tokio::select! {
            m = socket.recv() => Input::Ws(m),
            m = hub_next => Input::Hub(m),
            e = sfu_next => Input::Sfu(e),
            _ = idle => Input::Idle,
            _ = shutdown.changed() => Input::Shutdown,
        };
        let flow = match input {
            Input::Ws(None) => break,
            Input::Ws(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket read error");
                // Most likely a frame over the hard size limit.
                if is_capacity_error(&e) {
                    s.send_error(None, "message_too_large", "the message is too large")
                        .await;
                    Flow::Close {
                        code: close::TOO_BIG,
                        reason: "message too large",
                        left_reason: "disconnected",
                    }
                } else {
                    break;
                }
            }
            Input::Ws(Some(Ok(msg))) => {
                last_activity = Instant::now();
                s.on_message(msg).await
            }
            Input::Hub(Some(HubMsg::Event(text))) => {
                s.send_text(text.to_string()).await;
                Flow::Continue
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::Replaced))) | Input::Hub(None) => {
                if let Some(j) = &s.joined {
                    let ev = json!({"type": "participant_left", "participant_id": j.pid, "reason": "replaced"});
                    s.send_text(ev.to_string()).await;
                }
                Flow::Close {
                    code: close::NORMAL,
                    reason: "replaced",
                    left_reason: "replaced",
                }
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::Revoked))) => {
                // The hub already told the others (participant_left, revoked).
                let ev = json!({"type": "error", "code": "token_revoked", "message": "the invitation was revoked"});
                crate::metrics::ws_error("token_revoked");
                s.send_text(ev.to_string()).await;
                Flow::Close {
                    code: close::POLICY,
                    reason: "invitation revoked",
                    left_reason: "revoked",
                }
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::Shutdown))) | Input::Shutdown => Flow::Close {
                code: close::GOING_AWAY,
                reason: "server shutting down",
                left_reason: "disconnected",
            },
            Input::Sfu(Some(Some(ev))) => {
                s.on_sfu_event(ev).await;
                Flow::Continue
            }
            Input::Sfu(Some(None)) | Input::Sfu(None) => {
                tracing::warn!("media events ended for a participant");
                if let Some(j) = s.joined.as_mut() {
                    j.sfu_rx = None;
                }
                Flow::Continue
            }
            Input::Idle => {
                tracing::debug!("closing an idle websocket");
                Flow::Close {
                    code: close::POLICY,
                    reason: "idle timeout",
                    left_reason: "disconnected",
                }
            }
        };
        if let Flow::Close {
            code,
            reason,
            left_reason: lr,
        } = flow
        {
            left_reason = lr;
            s.close(code, reason).await;
            break;
        }
    }
    s.finish(left_reason).await;
}

fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("capacity") || text.contains("too long") || text.contains("too big")
}

/// A parsed request envelope: its `type` and `id`.
struct Envelope {
    kind: String,
    id: Option<Value>,
    body: Map<String, Value>,
}

#[derive(Deserialize)]
struct HelloReq {
    version: u64,
}

#[derive(Deserialize)]
struct JoinReq {
    token: String,
    #[serde(default)]
    meeting_id: Option<String>,
}

#[derive(Deserialize)]
struct SdpReq {
    sdp: String,
}

#[derive(Deserialize)]
struct CandidateInit {
    #[serde(default)]
    candidate: String,
    #[serde(default, rename = "sdpMid")]
    sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u16>,
    #[serde(default, rename = "usernameFragment")]
    username_fragment: Option<String>,
}

#[derive(Deserialize)]
struct CandidateReq {
    pc: String,
    candidate: CandidateInit,
}

#[derive(Deserialize)]
struct SetQualityReq {
    track_id: String,
    quality: String,
}

#[derive(Deserialize)]
struct MuteReq {
    kind: String,
    muted: bool,
}

fn body_as<T: serde::de::DeserializeOwned>(body: &Map<String, Value>) -> Result<T, Fail> {
    serde_json::from_value(Value::Object(body.clone()))
        .map_err(|e| Fail::new("bad_request", format!("invalid request: {e}")))
}

const KNOWN_TYPES: [&str; 9] = [
    "hello",
    "join",
    "publish",
    "subscriber_answer",
    "candidate",
    "set_quality",
    "mute",
    "ping",
    "leave",
];

impl Session {
    async fn send_text(&mut self, text: String) -> bool {
        self.socket.send(Message::text(text)).await.is_ok()
    }

    async fn send_json(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    async fn send_error(&mut self, id: Option<&Value>, code: &str, message: &str) {
        crate::metrics::ws_error(code);
        let mut v = json!({"type": "error", "code": code, "message": message});
        if let Some(id) = id {
            v["id"] = id.clone();
        }
        self.send_json(v).await;
    }

    /// A reply of `type` with the request's `id` and these fields.
    async fn reply(&mut self, id: &Option<Value>, kind: &str, fields: Value) {
        let mut v = json!({"type": kind});
        if let Some(id) = id {
            v["id"] = id.clone();
        }
        if let Value::Object(f) = fields {
            if let Value::Object(o) = &mut v {
                o.extend(f);
            }
        }
        self.send_json(v).await;
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }

    /// Leaves the hub and the media plane.
    async fn finish(&mut self, left_reason: &str) {
        if let Some(j) = self.joined.take() {
            self.state.hub.leave(&j.meeting_id, &j.pid, left_reason);
            if let Some(media) = j.media {
                media.leave().await;
            }
            tracing::info!(participant = %j.pid, meeting = %j.meeting_id, reason = left_reason, "participant left");
        }
    }

    async fn on_message(&mut self, msg: Message) -> Flow {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                if !self.rate.allow() {
                    return self.rate_limited().await;
                }
                self.send_error(
                    None,
                    "binary_not_supported",
                    "binary frames are not supported",
                )
                .await;
                return Flow::Continue;
            }
            // Control frames: tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
            Message::Close(_) => {
                return Flow::Close {
                    code: close::NORMAL,
                    reason: "",
                    left_reason: "disconnected",
                }
            }
        };
        if text.len() > self.state.limits.max_message_bytes {
            self.send_error(
                None,
                "message_too_large",
                &format!(
                    "the message is over {} bytes",
                    self.state.limits.max_message_bytes
                ),
            )
            .await;
            return Flow::Close {
                code: close::TOO_BIG,
                reason: "message too large",
                left_reason: "disconnected",
            };
        }
        if !self.rate.allow() {
            return self.rate_limited().await;
        }
        let env = match parse_envelope(text.as_str()) {
            Ok(env) => {
                crate::metrics::ws_message(&env.kind);
                env
            }
            Err((id, fail)) => {
                crate::metrics::ws_message("invalid");
                self.send_error(id.as_ref(), fail.code, &fail.message).await;
                return Flow::Continue;
            }
        };
        if !self.hello && env.kind != "hello" {
            self.send_error(
                env.id.as_ref(),
                "hello_required",
                "send hello before anything else",
            )
            .await;
            return Flow::Continue;
        }
        let id = env.id.clone();
        match self.on_request(env).await {
            Ok(flow) => flow,
            Err((fail, flow)) => {
                self.send_error(id.as_ref(), fail.code, &fail.message).await;
                flow
            }
        }
    }

    async fn rate_limited(&mut self) -> Flow {
        if self.rate.should_notify() {
            self.send_error(None, "rate_limited", "too many messages; some were dropped")
                .await;
        }
        Flow::Continue
    }

    async fn on_request(&mut self, env: Envelope) -> Result<Flow, (Fail, Flow)> {
        let stay = |f: Fail| (f, Flow::Continue);
        let id = env.id.clone();
        match env.kind.as_str() {
            "hello" => {
                let req: HelloReq = body_as(&env.body).map_err(stay)?;
                if req.version != PROTOCOL_VERSION {
                    return Err((
                        Fail::new(
                            "unsupported_version",
                            format!("this server speaks protocol version {PROTOCOL_VERSION}"),
                        ),
                        Flow::Close {
                            code: close::PROTOCOL_ERROR,
                            reason: "unsupported version",
                            left_reason: "disconnected",
                        },
                    ));
                }
                self.hello = true;
                let max = self.state.limits.max_message_bytes;
                self.reply(
                    &id,
                    "hello",
                    json!({
                        "version": PROTOCOL_VERSION,
                        "server": concat!("giaoban/", env!("CARGO_PKG_VERSION")),
                        "max_message_bytes": max,
                    }),
                )
                .await;
                Ok(Flow::Continue)
            }
            "join" => {
                if self.joined.is_some() {
                    return Err(stay(Fail::new(
                        "already_joined",
                        "this socket already joined",
                    )));
                }
                let req: JoinReq = body_as(&env.body).map_err(stay)?;
                self.join(&id, req).await.map_err(|f| {
                    let flow = if f.code == "internal" {
                        Flow::Continue
                    } else {
                        Flow::Close {
                            code: close::POLICY,
                            reason: "join refused",
                            left_reason: "disconnected",
                        }
                    };
                    (f, flow)
                })?;
                Ok(Flow::Continue)
            }
            "publish" => {
                let req: SdpReq = body_as(&env.body).map_err(stay)?;
                let media = self.media().map_err(stay)?;
                let answer = media.publish(req.sdp).await.map_err(|e| stay(e.into()))?;
                self.reply(&id, "publish_answer", json!({"sdp": answer}))
                    .await;
                Ok(Flow::Continue)
            }
            "subscriber_answer" => {
                let req: SdpReq = body_as(&env.body).map_err(stay)?;
                let media = self.media().map_err(stay)?;
                media
                    .subscriber_answer(req.sdp)
                    .await
                    .map_err(|e| stay(e.into()))?;
                self.reply(&id, "ok", json!({})).await;
                Ok(Flow::Continue)
            }
            "candidate" => {
                let req: CandidateReq = body_as(&env.body).map_err(stay)?;
                let pc = match req.pc.as_str() {
                    "publisher" => PcKind::Publisher,
                    "subscriber" => PcKind::Subscriber,
                    _ => {
                        return Err(stay(Fail::new(
                            "bad_request",
                            "pc must be publisher or subscriber",
                        )))
                    }
                };
                self.media().map_err(stay)?;
                if req.candidate.candidate.trim().is_empty() {
                    return Ok(Flow::Continue);
                }
                let media = self.media().map_err(stay)?;
                media
                    .add_candidate(
                        pc,
                        Candidate {
                            candidate: req.candidate.candidate,
                            sdp_mid: req.candidate.sdp_mid,
                            sdp_mline_index: req.candidate.sdp_mline_index,
                            username_fragment: req.candidate.username_fragment,
                        },
                    )
                    .await
                    .map_err(|e| stay(e.into()))?;
                Ok(Flow::Continue)
            }
            "set_quality" => {
                let req: SetQualityReq = body_as(&env.body).map_err(stay)?;
                let quality = sfu::Quality::parse(&req.quality).ok_or_else(|| {
                    stay(Fail::new(
                        "bad_request",
                        "quality must be off, low, medium or high",
                    ))
                })?;
                let media = self.media().map_err(stay)?;
                media
                    .set_quality(req.track_id, quality)
                    .await
                    .map_err(|e| stay(e.into()))?;
                self.reply(&id, "ok", json!({})).await;
                Ok(Flow::Continue)
            }
            "mute" => {
                let req: MuteReq = body_as(&env.body).map_err(stay)?;
                let j = self.joined.as_ref().ok_or_else(|| stay(not_joined()))?;
                if req.kind != "audio" && req.kind != "video" {
                    return Err(stay(Fail::new(
                        "bad_request",
                        "kind must be audio or video",
                    )));
                }
                self.state
                    .hub
                    .mute(&j.meeting_id, &j.pid, &req.kind, req.muted);
                self.reply(&id, "ok", json!({})).await;
                Ok(Flow::Continue)
            }
            "ping" => {
                let ts = env.body.get("ts").cloned();
                let fields = match ts {
                    Some(ts) => json!({"ts": ts}),
                    None => json!({}),
                };
                self.reply(&id, "pong", fields).await;
                Ok(Flow::Continue)
            }
            "leave" => {
                self.reply(&id, "bye", json!({})).await;
                Ok(Flow::Close {
                    code: close::NORMAL,
                    reason: "bye",
                    left_reason: "left",
                })
            }
            _ => Err(stay(Fail::new("unknown_type", "unknown message type"))),
        }
    }

    fn media(&self) -> Result<&sfu::Participant, Fail> {
        let j = self.joined.as_ref().ok_or_else(not_joined)?;
        j.media
            .as_ref()
            .ok_or_else(|| Fail::new("internal", "the media plane is not available"))
    }

    async fn join(&mut self, id: &Option<Value>, req: JoinReq) -> Result<(), Fail> {
        let claims = self
            .state
            .keys
            .decode(&req.token)
            .map_err(|e| Fail::new(e.code(), e.to_string()))?;
        let (meeting, inv) =
            auth::check_invitation(&self.state.store, &claims, req.meeting_id.as_deref())
                .await
                .map_err(|e| Fail::new(e.code(), e.to_string()))?;
        let pid = new_participant_id();
        let (media, sfu_rx) = match &self.state.sfu {
            Some(sfu) => match sfu.join(meeting.id.clone(), pid.clone()).await {
                Ok((p, rx)) => (Some(p), Some(rx)),
                Err(e) => {
                    tracing::error!(error = %e, participant = %pid, "the media plane refused a participant; joined without media");
                    (None, None)
                }
            },
            None => (None, None),
        };
        let info = ParticipantInfo {
            id: pid.clone(),
            name: inv.name.clone(),
            role: inv.role.as_str().to_owned(),
            audio_muted: false,
            video_muted: false,
        };
        let (hub_tx, hub_rx) = mpsc::unbounded_channel();
        let out = self
            .state
            .hub
            .join(&meeting.id, &inv.id, info.clone(), hub_tx);
        tracing::info!(participant = %pid, meeting = %meeting.id, invitation = %inv.id,
            replaced = ?out.replaced, "participant joined");
        self.joined = Some(Joined {
            meeting_id: meeting.id.clone(),
            pid,
            media,
            sfu_rx,
            hub_rx,
        });
        let others: Vec<Value> = out.others.iter().map(|p| p.to_json()).collect();
        let tracks: Vec<Value> = out.tracks.iter().map(|t| t.to_json()).collect();
        self.reply(
            id,
            "joined",
            json!({
                "participant": info.to_json(),
                "meeting": {"id": meeting.id, "title": meeting.title},
                "participants": others,
                "tracks": tracks,
                "ice_servers": [],
            }),
        )
        .await;
        Ok(())
    }

    async fn on_sfu_event(&mut self, ev: SfuEvent) {
        let Some(j) = self.joined.as_ref() else {
            return;
        };
        let (meeting_id, pid) = (j.meeting_id.clone(), j.pid.clone());
        match ev {
            SfuEvent::SubscriberOffer { sdp } => {
                self.send_json(json!({"type": "subscriber_offer", "sdp": sdp}))
                    .await;
            }
            SfuEvent::TrackPublished { track_id, kind } => {
                let kind = match kind {
                    MediaKind::Audio => "audio",
                    MediaKind::Video => "video",
                };
                self.state.hub.track_published(
                    &meeting_id,
                    &pid,
                    TrackInfo {
                        track_id,
                        participant_id: pid.clone(),
                        kind,
                    },
                );
            }
            SfuEvent::TrackUnpublished { track_id } => {
                self.state
                    .hub
                    .track_unpublished(&meeting_id, &pid, &track_id);
            }
            SfuEvent::Connection { pc, state } => {
                tracing::debug!(participant = %pid, ?pc, ?state, "media connection state");
            }
            SfuEvent::LayersWanted { track_id, layers } => {
                self.send_json(
                    json!({"type": "layers_wanted", "track_id": track_id, "layers": layers}),
                )
                .await;
            }
            SfuEvent::ActiveSpeaker { participant } => {
                self.send_json(json!({"type": "active_speaker", "participant_id": participant}))
                    .await;
            }
        }
    }
}

fn not_joined() -> Fail {
    Fail::new("not_joined", "join the meeting first")
}

/// Parses a text frame into an envelope, or the error to answer (with the
/// request's id when it could be read).
fn parse_envelope(text: &str) -> Result<Envelope, (Option<Value>, Fail)> {
    let v: Value = serde_json::from_str(text)
        .map_err(|_| (None, Fail::new("bad_json", "the message is not valid JSON")))?;
    let Value::Object(mut body) = v else {
        return Err((
            None,
            Fail::new("bad_json", "the message is not a JSON object"),
        ));
    };
    let id = match body.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(Value::Number(n)),
        Some(Value::String(s)) if s.chars().count() <= 64 => Some(Value::String(s)),
        Some(_) => {
            return Err((
                None,
                Fail::new(
                    "bad_request",
                    "id must be a number or a string of at most 64 characters",
                ),
            ))
        }
    };
    let kind = match body.remove("type") {
        Some(Value::String(t)) if KNOWN_TYPES.contains(&t.as_str()) => t,
        _ => return Err((id, Fail::new("unknown_type", "type is missing or unknown"))),
    };
    Ok(Envelope { kind, id, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_ids() {
        let id = new_participant_id();
        assert_eq!(id.len(), 14);
        assert!(id.starts_with("p-"));
        assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_participant_id());
    }

    #[test]
    fn envelopes() {
        let e = parse_envelope(r#"{"type":"ping","id":5,"ts":1}"#)
            .ok()
            .expect("parses");
        assert_eq!(e.kind, "ping");
        assert_eq!(e.id, Some(json!(5)));
        let code = |t: &str| parse_envelope(t).err().map(|(_, f)| f.code);
        assert_eq!(code("nope"), Some("bad_json"));
        assert_eq!(code("[1]"), Some("bad_json"));
        assert_eq!(code(r#"{"id":1}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":"dance"}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":5}"#), Some("unknown_type"));
        assert_eq!(code(r#"{"type":"ping","id":[1]}"#), Some("bad_request"));
        let long = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
        assert_eq!(code(&long), Some("bad_request"));
        // the id of an unknown type is kept for the error answer
        let (id, _) = parse_envelope(r#"{"type":"dance","id":"a"}"#)
            .err()
            .expect("fails");
        assert_eq!(id, Some(json!("a")));
    }

    #[test]
    fn rate_limiter_bursts_then_refuses() {
        let mut r = RateLimiter::new(5);
        assert!((0..5).all(|_| r.allow()));
        assert!(!r.allow());
        assert!(r.should_notify());
        assert!(!r.should_notify());
    }
}
