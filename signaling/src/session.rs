//! One WebSocket session: the protocol of `docs/protocol.md` for one
//! participant. One task per socket owns the socket, the participant's media
//! handle and its hub channel; it never panics on input and its failure
//! affects nobody else.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cabinet::MeetingStatus;
use rand::RngCore;
use serde_json::{json, Value};
use sfu::{Candidate, MediaKind, SfuError, SfuEvent};
use tokio::sync::mpsc;

use crate::admission::{Entry, Via};
use crate::auth;
use crate::hub::{
    HubMsg, KickReason, LiveRefused, ParticipantInfo, ResumeRefused, TrackInfo, Waited,
};
use crate::protocol::{
    ClientMsg, ClientType, ErrorCode, Fail, JoinReq, MeetingRef, Request, ServerMsg, SlotMsg,
    Tracks, WaitingItem, WaitingMeeting,
};
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
    /// Sent by a client that gives a socket up and will resume its session.
    pub const RESUMING: u16 = 4000;
}

/// Limits of one session (and of the WebSockets and WHIP/WHEP sessions
/// together).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// A socket must have joined (or resumed) this long after it opened,
    /// or it is closed; its pings do not extend it.
    pub join_timeout: Duration,
    /// A write to a client that does not finish within this is given up:
    /// the client stopped reading, its socket is dropped.
    pub send_timeout: Duration,
    /// Most m-sections in one publish offer (WebSocket or WHIP).
    pub max_offer_media: usize,
    /// Most WHEP players of one invitation at once.
    pub whep_viewers_per_invitation: usize,
    /// Meetings with at least this many invitations join muted (0: never).
    pub join_muted_from: usize,
    /// Open WebSockets per client address and in total.
    pub sockets: Arc<SocketCaps>,
    /// Largest text message accepted.
    pub max_message_bytes: usize,
    /// Messages per second (and burst).
    pub messages_per_second: u32,
    /// A socket silent this long is closed.
    pub idle_timeout: Duration,
    /// How long a joined participant whose socket dropped waits for `resume`
    /// (zero: it leaves at once).
    pub resume_grace: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_message_bytes: 262_144,
            messages_per_second: 50,
            idle_timeout: Duration::from_secs(40),
            resume_grace: Duration::from_secs(30),
            join_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_offer_media: 16,
            whep_viewers_per_invitation: 1,
            join_muted_from: 20,
            sockets: Arc::new(SocketCaps::new(50, 2000)),
        }
    }
}

/// Counts the open WebSockets, per client address and in total, against
/// their caps. A [`SocketSlot`] is one counted socket.
#[derive(Debug)]
pub struct SocketCaps {
    per_address: usize,
    total: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a WebSocket was refused before its upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRefused {
    /// The address has its cap of open sockets (429 `too_many_connections`).
    PerAddress,
    /// The server has its cap of open sockets (503 `server_busy`).
    Total,
}

impl SocketCaps {
    pub fn new(per_address: usize, total: usize) -> SocketCaps {
        SocketCaps {
            per_address,
            total,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new socket of `ip` (None: unknown, counted in the total
    /// only), or refuses it.
    pub fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<SocketSlot, SocketRefused> {
        let mut open = self.lock();
        let total: usize = open.values().sum();
        if total >= self.total {
            return Err(SocketRefused::Total);
        }
        let key = ip.unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
        let n = open.entry(key).or_insert(0);
        if ip.is_some() && *n >= self.per_address {
            return Err(SocketRefused::PerAddress);
        }
        *n += 1;
        Ok(SocketSlot {
            caps: self.clone(),
            key,
        })
    }
}

/// One open WebSocket, counted until dropped (it travels with the socket
/// when a resume hands it to another session).
#[derive(Debug)]
pub struct SocketSlot {
    caps: Arc<SocketCaps>,
    key: IpAddr,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Refuses an offer with more than `max` m-sections (media sections: one
/// track each), or a section with more than [`MAX_SIMULCAST_LAYERS`]
/// simulcast layers (`a=rid`): the error text says which.
pub fn check_offer(sdp: &str, max: usize) -> Result<(), String> {
    let mut sections = 0usize;
    let mut rids = 0usize;
    for line in sdp.lines().map(str::trim_start) {
        if line.starts_with("m=") {
            sections += 1;
            rids = 0;
            if sections > max {
                return Err(format!("the offer has more than {max} media sections"));
            }
        } else if line.starts_with("a=rid:") {
            rids += 1;
            if rids > MAX_SIMULCAST_LAYERS {
                return Err(format!(
                    "a media section has more than {MAX_SIMULCAST_LAYERS} simulcast layers"
                ));
            }
        }
    }
    Ok(())
}

/// Most simulcast layers (`a=rid` lines) of one media section.
pub const MAX_SIMULCAST_LAYERS: usize = 4;

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

/// Server messages kept for a resume: at most this many...
const OUTBOX_MAX_MESSAGES: usize = 512;
/// ...and at most this many bytes (the oldest go first).
const OUTBOX_MAX_BYTES: usize = 512 * 1024;

/// A new socket taking over a session with its resume token.
pub struct Attach {
    socket: WebSocket,
    /// The socket's place in the caps; it goes with the socket.
    slot: Option<SocketSlot>,
    /// The `resume` request's id, for the answer.
    id: Option<Value>,
    /// How many messages of the session the client has received.
    received: u64,
}

/// Every message sent to the client since `joined` is numbered (implicitly:
/// the n-th message after `joined` is number n-1). The latest ones are kept,
/// so that a resuming client gets again what it missed: those written to a
/// socket that died before they arrived, and those sent while no socket was
/// attached. Clients acknowledge what they received (`ping.received`), which
/// lets the oldest go; the bounds drop the oldest anyway.
#[derive(Default)]
struct Outbox {
    /// The number of the oldest message kept.
    base: u64,
    messages: VecDeque<String>,
    bytes: usize,
    /// The number of messages up to and including the latest
    /// `subscriber_offer`, until the client answers it.
    offer_end: Option<u64>,
}

impl Outbox {
    /// Messages sent so far.
    fn sent(&self) -> u64 {
        self.base + self.messages.len() as u64
    }

    fn push(&mut self, text: &str) {
        self.bytes += text.len();
        self.messages.push_back(text.to_owned());
        while self.messages.len() > OUTBOX_MAX_MESSAGES || self.bytes > OUTBOX_MAX_BYTES {
            match self.messages.pop_front() {
                Some(m) => {
                    self.bytes -= m.len();
                    self.base += 1;
                }
                None => break,
            }
        }
    }

    /// The client has received the first `received` messages.
    fn ack(&mut self, received: u64) {
        while self.base < received.min(self.sent()) {
            match self.messages.pop_front() {
                Some(m) => {
                    self.bytes -= m.len();
                    self.base += 1;
                }
                None => break,
            }
        }
    }

    /// The message just pushed is a `subscriber_offer`.
    fn pushed_offer(&mut self) {
        self.offer_end = Some(self.sent());
    }

    /// The client answered the latest `subscriber_offer`, so it received
    /// that message and every one before it (one socket delivers in order):
    /// they need not be kept for a resume. The offers are most of what a
    /// session sends (each lists every track of the connection), and
    /// clients acknowledge only every 10 s otherwise (`ping.received`).
    fn offer_answered(&mut self) {
        if let Some(n) = self.offer_end.take() {
            self.ack(n);
        }
    }

    /// The messages after the first `received`, if all of them are still kept.
    fn since(&self, received: u64) -> Option<Vec<String>> {
        if received < self.base || received > self.sent() {
            return None;
        }
        let skip = usize::try_from(received - self.base).ok()?;
        Some(self.messages.iter().skip(skip).cloned().collect())
    }
}

/// A resume token: 32 random bytes, hex. Never logged.
fn new_resume_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The session's state once `join` succeeded.
struct Joined {
    meeting_id: String,
    pid: String,
    /// The invitation it joined with (the actor of its chair actions in
    /// the audit log).
    invitation_id: String,
    /// The invitation's role: what the participant may do
    /// ([`crate::permissions`]).
    role: cabinet::Role,
    /// The participant's side of the media plane (None: the media plane
    /// refused the join; the participant is in the meeting without media).
    media: Option<sfu::Participant>,
    sfu_rx: Option<mpsc::UnboundedReceiver<SfuEvent>>,
    hub_rx: mpsc::UnboundedReceiver<HubMsg>,
    /// Messages sent since `joined`, for a resume.
    outbox: Outbox,
    /// Where a socket resuming this session arrives (the hub hands the
    /// sender out against the resume token).
    attach_tx: mpsc::UnboundedSender<Attach>,
    attach_rx: mpsc::UnboundedReceiver<Attach>,
    /// Pushes fresh TURN credentials while the session lives (TURN on only).
    _turn_refresh: Option<crate::turn::RefreshTask>,
}

/// What the loop does after handling something.
enum Flow {
    Continue,
    /// Hand this socket over to the session that `tx` reaches (`resume`).
    Resume {
        tx: mpsc::UnboundedSender<Attach>,
        id: Option<Value>,
        received: u64,
    },
    /// The socket is gone: a joined participant waits for a resume.
    Detach,
    /// Close the socket with this code; `reason` is what the others see.
    Close {
        code: u16,
        reason: &'static str,
        left_reason: &'static str,
    },
}

impl From<SfuError> for Fail {
    fn from(e: SfuError) -> Fail {
        match e {
            SfuError::BadSdp(m) => Fail::new(ErrorCode::BadSdp, m),
            SfuError::Negotiation(m) => Fail::new(ErrorCode::NegotiationFailed, m),
            SfuError::BadCandidate(m) => Fail::new(ErrorCode::BadCandidate, m),
            SfuError::UnknownTrack(t) => {
                Fail::new(ErrorCode::UnknownTrack, format!("no track {t}"))
            }
            other => {
                tracing::error!(error = %other, "media plane error");
                Fail::new(ErrorCode::Internal, "the media plane failed")
            }
        }
    }
}

struct Session {
    state: AppState,
    /// The client's socket; None while a joined participant waits for a
    /// resume (its messages are then only kept in the outbox).
    socket: Option<WebSocket>,
    hello: bool,
    joined: Option<Joined>,
    /// The chair ended the meeting: once the `ok` is sent, everyone's
    /// session ends.
    ended: Option<String>,
    /// Before the meeting starts: the meeting awaited and the hub's channel
    /// that brings `meeting_started` (or the end).
    waiting: Option<mpsc::UnboundedReceiver<HubMsg>>,
    rate: RateLimiter,
    /// Counts the session in the open-sockets gauge while a socket is attached.
    counted: Option<crate::metrics::WsSessionGuard>,
    /// The socket's place in the per-address and total caps.
    slot: Option<SocketSlot>,
    /// A write did not finish within the send timeout: the client stopped
    /// reading and its socket was dropped.
    stalled: bool,
}

/// Runs a session until the client leaves, its socket closes (and, once
/// joined, no `resume` came within the grace), it is kicked or the server
/// shuts down.
pub async fn run(socket: WebSocket, state: AppState, slot: Option<SocketSlot>) {
    let _alive = state.sessions.clone();
    let mut shutdown = state.shutdown.clone();
    let limits = state.limits.clone();
    let mut s = Session {
        rate: RateLimiter::new(limits.messages_per_second),
        state,
        socket: Some(socket),
        hello: false,
        joined: None,
        ended: None,
        waiting: None,
        counted: Some(crate::metrics::WsSessionGuard::new()),
        slot,
        stalled: false,
    };
    // When the socket opened, or when the meeting it waited for started:
    // it must join within the join timeout from then.
    let mut opened = Instant::now();
    let mut last_activity = Instant::now();
    // Since when the joined participant has had no socket.
    let mut detached_since: Option<Instant> = None;
    let mut left_reason = "disconnected";
    if *shutdown.borrow() {
        s.close(close::GOING_AWAY, "server shutting down").await;
        return;
    }
    loop {
        let deadline = match detached_since {
            Some(since) => since + limits.resume_grace,
            // Until it joins, nothing the socket sends keeps it open (a
            // socket waiting for the start is kept by its pings).
            None if s.joined.is_none() && s.waiting.is_none() => {
                (opened + limits.join_timeout).min(last_activity + limits.idle_timeout)
            }
            None => last_activity + limits.idle_timeout,
        };
        let timer = tokio::time::sleep_until(deadline.into());
        let (hub_rx, sfu_rx, attach_rx) = match s.joined.as_mut() {
            Some(j) => (
                Some(&mut j.hub_rx),
                j.sfu_rx.as_mut(),
                Some(&mut j.attach_rx),
            ),
            None => (s.waiting.as_mut(), None, None),
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
        let attach_next = async {
            match attach_rx {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let ws_next = async {
            match s.socket.as_mut() {
                Some(socket) => socket.recv().await,
                None => std::future::pending().await,
            }
        };
        enum Input {
            Ws(Option<Result<Message, axum::Error>>),
            Hub(Option<HubMsg>),
            Sfu(Option<Option<SfuEvent>>),
            Attach(Option<Box<Attach>>),
            Timer,
            Shutdown,
        }
        let input = tokio::select! {
            m = ws_next => Input::Ws(m),
            m = hub_next => Input::Hub(m),
            e = sfu_next => Input::Sfu(e),
            a = attach_next => Input::Attach(a.map(Box::new)),
            _ = timer => Input::Timer,
            _ = shutdown.changed() => Input::Shutdown,
        };
        let flow = match input {
            Input::Ws(None) => Flow::Detach,
            Input::Ws(Some(Err(e))) => {
                tracing::debug!(error = %e, "websocket read error");
                // Most likely a frame over the hard size limit.
                if is_capacity_error(&e) {
                    s.send_error(None, ErrorCode::MessageTooLarge, "the message is too large")
                        .await;
                    Flow::Close {
                        code: close::TOO_BIG,
                        reason: "message too large",
                        left_reason: "disconnected",
                    }
                } else {
                    Flow::Detach
                }
            }
            Input::Ws(Some(Ok(msg))) => {
                last_activity = Instant::now();
                s.on_message(msg).await
            }
            // The meeting a waiting socket awaited started: the client
            // joins again, within the join timeout from now.
            Input::Hub(Some(HubMsg::Event(text))) if s.joined.is_none() => {
                s.waiting = None;
                opened = Instant::now();
                s.send_text(text.to_string()).await;
                Flow::Continue
            }
            Input::Hub(None) if s.joined.is_none() => {
                s.waiting = None;
                opened = Instant::now();
                Flow::Continue
            }
            Input::Hub(Some(HubMsg::Event(text))) => {
                s.send_text(text.to_string()).await;
                Flow::Continue
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::Removed))) => {
                // The `removed` event with the reason went first.
                Flow::Close {
                    code: close::POLICY,
                    reason: "removed",
                    left_reason: "removed",
                }
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::Replaced))) | Input::Hub(None) => {
                if let Some(j) = &s.joined {
                    let ev = ServerMsg::ParticipantLeft {
                        participant_id: j.pid.clone(),
                        reason: "replaced",
                    };
                    s.send_text(ev.to_text(None)).await;
                }
                Flow::Close {
                    code: close::NORMAL,
                    reason: "replaced",
                    left_reason: "replaced",
                }
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::Revoked))) => {
                // The hub already told the others (participant_left, revoked).
                let ev =
                    error_message(&None, ErrorCode::TokenRevoked, "the invitation was revoked");
                s.send_text(ev.to_string()).await;
                Flow::Close {
                    code: close::POLICY,
                    reason: "invitation revoked",
                    left_reason: "revoked",
                }
            }
            Input::Hub(Some(HubMsg::Kick(KickReason::MeetingEnded))) => {
                // Everyone of the meeting goes at once: nobody is told of
                // the others leaving.
                let ev = error_message(&None, ErrorCode::MeetingClosed, "the meeting has ended");
                s.send_text(ev.to_string()).await;
                Flow::Close {
                    code: close::POLICY,
                    reason: "meeting ended",
                    left_reason: "meeting_ended",
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
            Input::Attach(Some(attach)) => {
                if s.attach(*attach).await {
                    detached_since = None;
                    last_activity = Instant::now();
                }
                Flow::Continue
            }
            // The session holds a sender itself: never closed.
            Input::Attach(None) => Flow::Continue,
            Input::Timer if detached_since.is_some() => {
                tracing::info!("no resume within the grace");
                Flow::Close {
                    code: close::NORMAL,
                    reason: "",
                    left_reason: "disconnected",
                }
            }
            Input::Timer
                if s.joined.is_none()
                    && s.waiting.is_none()
                    && opened.elapsed() >= limits.join_timeout =>
            {
                tracing::debug!("closing a websocket that did not join in time");
                s.send_error(
                    None,
                    ErrorCode::JoinTimeout,
                    "join (or resume) within the time allowed",
                )
                .await;
                s.close(close::POLICY, "join timeout").await;
                Flow::Detach
            }
            Input::Timer => {
                tracing::debug!("closing an idle websocket");
                s.close(close::POLICY, "idle timeout").await;
                Flow::Detach
            }
        };
        // A client that stopped reading lost its socket while we wrote.
        let flow = match flow {
            Flow::Continue if std::mem::take(&mut s.stalled) => Flow::Detach,
            other => other,
        };
        match flow {
            Flow::Continue => {}
            Flow::Detach => {
                // The socket is gone (or given up). A joined participant
                // stays for the grace, its media flowing, waiting for resume.
                s.socket = None;
                s.counted = None;
                s.slot = None;
                if s.joined.is_none() || limits.resume_grace.is_zero() {
                    break;
                }
                if detached_since.is_none() {
                    if let Some(j) = &s.joined {
                        tracing::info!(participant = %j.pid, meeting = %j.meeting_id,
                            grace_secs = limits.resume_grace.as_secs(), "socket lost; waiting for resume");
                    }
                    detached_since = Some(Instant::now());
                }
            }
            Flow::Resume { tx, id, received } => {
                // This socket takes over another session; this one ends here
                // (it never joined, so there is nothing to leave).
                let Some(socket) = s.socket.take() else {
                    break;
                };
                match tx.send(Attach {
                    socket,
                    slot: s.slot.take(),
                    id,
                    received,
                }) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(a)) => {
                        s.socket = Some(a.socket);
                        s.slot = a.slot;
                        s.send_error(
                            a.id.as_ref(),
                            ErrorCode::ResumeFailed,
                            "the session has ended; join again",
                        )
                        .await;
                    }
                }
            }
            Flow::Close {
                code,
                reason,
                left_reason: lr,
            } => {
                left_reason = lr;
                s.close(code, reason).await;
                break;
            }
        }
    }
    s.finish(left_reason).await;
}

fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("capacity") || text.contains("too long") || text.contains("too big")
}

impl Session {
    /// Sends a message of the session: once joined, it is numbered and kept
    /// for a resume (and only kept while no socket is attached).
    async fn send_text(&mut self, text: String) -> bool {
        if let Some(j) = self.joined.as_mut() {
            j.outbox.push(&text);
        }
        self.write(text).await
    }

    /// Writes to the socket, if there is one, without numbering. A write
    /// that does not finish within the send timeout (the client stopped
    /// reading) drops the socket: nothing is buffered for it beyond what
    /// the outbox keeps for a resume.
    async fn write(&mut self, text: String) -> bool {
        let Some(socket) = self.socket.as_mut() else {
            return false;
        };
        match tokio::time::timeout(
            self.state.limits.send_timeout,
            socket.send(Message::text(text)),
        )
        .await
        {
            Ok(r) => r.is_ok(),
            Err(_) => {
                tracing::info!("a client stopped reading; its socket is dropped");
                crate::metrics::ws_send_timeout();
                self.socket = None;
                self.counted = None;
                self.slot = None;
                self.stalled = true;
                false
            }
        }
    }

    async fn send_json(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    async fn send_error(&mut self, id: Option<&Value>, code: ErrorCode, message: &str) {
        self.send_json(error_message(&id.cloned(), code, message))
            .await;
    }

    /// A message, with the answered request's `id` (if any).
    async fn send_msg(&mut self, id: &Option<Value>, msg: ServerMsg) {
        self.send_text(msg.to_text(id.as_ref())).await;
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        if let Some(socket) = self.socket.as_mut() {
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }));
            let _ = tokio::time::timeout(self.state.limits.send_timeout, socket.send(frame)).await;
        }
    }

    /// A socket resumes this session: it replaces the current one (if the
    /// server had not noticed that one die, it is closed), gets `resumed`,
    /// then every message it missed. Returns whether the session has its
    /// socket back.
    async fn attach(&mut self, a: Attach) -> bool {
        let Attach {
            socket,
            slot,
            id,
            received,
        } = a;
        let Some(j) = self.joined.as_mut() else {
            return false;
        };
        let Some(missed) = j.outbox.since(received) else {
            // The client claims more than was sent, or what it missed is no
            // longer kept: it must join again (which replaces this session).
            let mut socket = socket;
            let err = error_message(
                &id,
                ErrorCode::ResumeFailed,
                "the missed messages are no longer kept; join again",
            );
            let _ = socket.send(Message::text(err.to_string())).await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: close::NORMAL,
                    reason: Utf8Bytes::from_static("resume failed"),
                })))
                .await;
            return false;
        };
        j.outbox.ack(received);
        let token = new_resume_token();
        self.state
            .hub
            .set_resume_token(&j.meeting_id, &j.pid, token.clone(), j.attach_tx.clone());
        let (meeting_id, pid) = (j.meeting_id.clone(), j.pid.clone());
        let info = self.state.hub.participant(&meeting_id, &pid);
        if self.socket.is_some() {
            tracing::info!(participant = %pid, "a resume replaces a socket that still looked open");
            self.close(close::NORMAL, "resumed on another socket").await;
        }
        self.socket = Some(socket);
        self.slot = slot;
        self.stalled = false;
        self.counted = Some(crate::metrics::WsSessionGuard::new());
        self.hello = true;
        self.rate = RateLimiter::new(self.state.limits.messages_per_second);
        let resumed = ServerMsg::Resumed {
            participant: info,
            meeting: MeetingRef {
                id: meeting_id.clone(),
                title: None,
            },
            resume_token: token,
            replayed: missed.len(),
        };
        self.write(resumed.to_text(id.as_ref())).await;
        let count = missed.len();
        for m in missed {
            self.write(m).await;
        }
        tracing::info!(participant = %pid, meeting = %meeting_id, replayed = count, "session resumed");
        true
    }

    /// Leaves the hub and the media plane.
    async fn finish(&mut self, left_reason: &'static str) {
        if let Some(mut j) = self.joined.take() {
            // Sockets that came to resume just as the session ended.
            j.attach_rx.close();
            while let Ok(mut a) = j.attach_rx.try_recv() {
                let err = error_message(
                    &a.id,
                    ErrorCode::ResumeFailed,
                    "the session has ended; join again",
                );
                let _ = a.socket.send(Message::text(err.to_string())).await;
                let _ = a.socket.send(Message::Close(None)).await;
            }
            self.state.hub.leave(&j.meeting_id, &j.pid, left_reason);
            crate::admission::left(&self.state, &j.pid).await;
            if let Some(media) = j.media {
                media.leave().await;
            }
            tracing::info!(participant = %j.pid, meeting = %j.meeting_id, reason = left_reason, "participant left");
            crate::api::audit::record_later(
                &self.state,
                format!("participant:{}", j.pid),
                "session.leave",
                "meeting",
                j.meeting_id.clone(),
                json!({"participant_id": j.pid, "reason": left_reason, "via": "websocket"}),
            );
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
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not supported",
                )
                .await;
                return Flow::Continue;
            }
            // Control frames: tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
            // "I will resume": the client gave this socket up (it looked
            // dead to it), not the meeting; a joined participant waits for
            // its resume as if the socket had dropped.
            Message::Close(Some(frame)) if frame.code == close::RESUMING => return Flow::Detach,
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
                ErrorCode::MessageTooLarge,
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
        let req = match crate::protocol::parse(text.as_str()) {
            Ok(req) => {
                crate::metrics::ws_message(Some(req.kind));
                req
            }
            Err((id, fail)) => {
                crate::metrics::ws_message(None);
                self.send_error(id.as_ref(), fail.code, &fail.message).await;
                return Flow::Continue;
            }
        };
        if !self.hello && req.kind != ClientType::Hello {
            self.send_error(
                req.id.as_ref(),
                ErrorCode::HelloRequired,
                "send hello before anything else",
            )
            .await;
            return Flow::Continue;
        }
        let id = req.id.clone();
        match self.on_request(req).await {
            Ok(flow) => flow,
            Err((fail, flow)) => {
                self.send_error(id.as_ref(), fail.code, &fail.message).await;
                flow
            }
        }
    }

    async fn rate_limited(&mut self) -> Flow {
        if self.rate.should_notify() {
            self.send_error(
                None,
                ErrorCode::RateLimited,
                "too many messages; some were dropped",
            )
            .await;
        }
        Flow::Continue
    }

    async fn on_request(&mut self, req: Request) -> Result<Flow, (Fail, Flow)> {
        let stay = |f: Fail| (f, Flow::Continue);
        let id = req.id.clone();
        if let Some(j) = &self.joined {
            authorize(j, &req).map_err(stay)?;
        }
        if matches!(req.kind, ClientType::Join | ClientType::Resume) && self.joined.is_some() {
            return Err(stay(Fail::new(
                ErrorCode::AlreadyJoined,
                "this socket already joined",
            )));
        }
        match req.msg.map_err(stay)? {
            ClientMsg::Hello(req) => {
                if req.version != PROTOCOL_VERSION {
                    return Err((
                        Fail::new(
                            ErrorCode::UnsupportedVersion,
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
                self.send_msg(
                    &id,
                    ServerMsg::Hello {
                        version: PROTOCOL_VERSION,
                        server: concat!("giaoban/", env!("CARGO_PKG_VERSION")),
                        max_message_bytes: max,
                    },
                )
                .await;
                Ok(Flow::Continue)
            }
            ClientMsg::Join(req) => {
                self.join(&id, req).await.map_err(|f| {
                    let flow = if f.code == ErrorCode::Internal {
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
            ClientMsg::Resume(req) => {
                let (meeting_id, pid, tx) = self
                    .state
                    .hub
                    .take_resume(&req.resume_token, req.meeting_id.as_deref())
                    .map_err(|r| {
                        stay(match r {
                            ResumeRefused::Unknown => Fail::new(
                                ErrorCode::ResumeFailed,
                                "unknown, used or expired resume token; join again",
                            ),
                            ResumeRefused::WrongMeeting => Fail::new(
                                ErrorCode::ResumeFailed,
                                "the resume token is for another meeting; join again",
                            ),
                            ResumeRefused::MeetingEnded => meeting_closed(),
                        })
                    })?;
                // The meeting may have ended behind the server's back (the
                // command line): then its sessions end now, this one too.
                if meeting_is_over(&self.state, &meeting_id).await {
                    let n = self.state.hub.end_meeting(&meeting_id);
                    tracing::info!(meeting = %meeting_id, sessions = n, "meeting ended; its live sessions end");
                    return Err(stay(meeting_closed()));
                }
                tracing::debug!(participant = %pid, "a socket resumes a session");
                Ok(Flow::Resume {
                    tx,
                    id,
                    received: req.received,
                })
            }
            ClientMsg::IceRestart(_) => {
                let media = self.media().map_err(stay)?;
                media.restart_ice().await.map_err(|e| stay(e.into()))?;
                self.send_msg(
                    &id,
                    ServerMsg::Ok {
                        unknown_track_ids: None,
                    },
                )
                .await;
                Ok(Flow::Continue)
            }
            ClientMsg::Publish(req) => {
                check_offer(&req.sdp, self.state.limits.max_offer_media)
                    .map_err(|m| stay(Fail::new(ErrorCode::TooManyMedia, m)))?;
                let media = self.media().map_err(stay)?;
                let answer = media.publish(req.sdp).await.map_err(|e| stay(e.into()))?;
                self.send_msg(&id, ServerMsg::PublishAnswer { sdp: answer })
                    .await;
                Ok(Flow::Continue)
            }
            ClientMsg::SubscriberAnswer(req) => {
                let media = self.media().map_err(stay)?;
                media
                    .subscriber_answer(req.sdp)
                    .await
                    .map_err(|e| stay(e.into()))?;
                if let Some(j) = self.joined.as_mut() {
                    j.outbox.offer_answered();
                }
                self.send_msg(
                    &id,
                    ServerMsg::Ok {
                        unknown_track_ids: None,
                    },
                )
                .await;
                Ok(Flow::Continue)
            }
            ClientMsg::Candidate(req) => {
                let pc = req.pc().map_err(stay)?;
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
            ClientMsg::SetQuality(req) => {
                let (quality, tracks) = req.checked().map_err(stay)?;
                let media = self.media().map_err(stay)?;
                let answer = match tracks {
                    Tracks::One(track) => {
                        media
                            .set_quality(track, quality)
                            .await
                            .map_err(|e| stay(e.into()))?;
                        None
                    }
                    // Tracks gone meanwhile are no error for a list: the
                    // others are set, and the answer names the gone ones.
                    Tracks::Many(list) => {
                        let unknown = media
                            .set_qualities(list, quality)
                            .await
                            .map_err(|e| stay(e.into()))?;
                        Some(unknown)
                    }
                };
                self.send_msg(
                    &id,
                    ServerMsg::Ok {
                        unknown_track_ids: answer,
                    },
                )
                .await;
                Ok(Flow::Continue)
            }
            ClientMsg::Mute(req) => {
                let j = self.joined.as_ref().ok_or_else(|| stay(not_joined()))?;
                let kind = req.media_kind().map_err(stay)?;
                self.state.hub.mute(&j.meeting_id, &j.pid, kind, req.muted);
                self.send_msg(
                    &id,
                    ServerMsg::Ok {
                        unknown_track_ids: None,
                    },
                )
                .await;
                Ok(Flow::Continue)
            }
            ClientMsg::Ping(req) => {
                // What the client has received lets the outbox drop it.
                if let (Some(j), Some(n)) = (self.joined.as_mut(), req.received()) {
                    j.outbox.ack(n);
                }
                self.send_msg(&id, ServerMsg::Pong { ts: req.ts }).await;
                Ok(Flow::Continue)
            }
            ClientMsg::Leave(_) => {
                self.send_msg(&id, ServerMsg::Bye {}).await;
                Ok(Flow::Close {
                    code: close::NORMAL,
                    reason: "bye",
                    left_reason: "left",
                })
            }
            live => {
                self.on_live(live).await.map_err(stay)?;
                self.send_msg(
                    &id,
                    ServerMsg::Ok {
                        unknown_track_ids: None,
                    },
                )
                .await;
                if let Some(meeting_id) = self.ended.take() {
                    // The `ok` went first; now everyone's session ends.
                    let n = self.state.hub.end_meeting(&meeting_id);
                    tracing::info!(meeting = %meeting_id, sessions = n, "the chair ended the meeting; its live sessions end");
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// The joined participant as a voter.
    fn voter(&self) -> Result<crate::votes::Voter<'_>, Fail> {
        let j = self.joined.as_ref().ok_or_else(not_joined)?;
        Ok(crate::votes::Voter {
            meeting_id: &j.meeting_id,
            invitation_id: &j.invitation_id,
            role: j.role,
        })
    }

    /// The live meeting's messages (docs/protocol.md, "Running the
    /// meeting"): the sender's permission was checked; the hub changes the
    /// state and tells everyone concerned; facts of the meeting go to the
    /// audit log with the sender's invitation as the actor.
    async fn on_live(&mut self, msg: ClientMsg) -> Result<(), Fail> {
        let j = self.joined.as_ref().ok_or_else(not_joined)?;
        let (meeting_id, pid, inv_id) =
            (j.meeting_id.clone(), j.pid.clone(), j.invitation_id.clone());
        let hub = self.state.hub.clone();
        let actor = format!("invitation:{inv_id}");
        let audit = |action: &'static str, detail: Value| {
            crate::api::audit::record_now(
                &self.state,
                actor.clone(),
                action,
                "meeting",
                meeting_id.clone(),
                detail,
            )
        };
        match msg {
            ClientMsg::LinkReport(req) => {
                let report = req.checked()?;
                // Muted or blocked media is neither silent nor frozen.
                let media = hub.participant(&meeting_id, &pid).map_or_else(
                    crate::linkstats::MediaOn::default,
                    |p| crate::linkstats::MediaOn {
                        audio: !p.audio_muted && !p.audio_blocked,
                        video: !p.video_muted && !p.video_blocked,
                    },
                );
                self.state.api.links.report(
                    &meeting_id,
                    &inv_id,
                    &pid,
                    report,
                    media,
                    crate::hub::now_unix(),
                );
            }
            ClientMsg::RaiseHand(req) => {
                hub.raise_hand(&meeting_id, &pid, req.hand_kind()?)
                    .map_err(live_fail)?;
            }
            ClientMsg::LowerHand(_) => hub.lower_hand(&meeting_id, &pid),
            ClientMsg::ClearHand(req) => {
                hub.clear_hand(&meeting_id, &req.participant_id)
                    .map_err(live_fail)?;
            }
            ClientMsg::GiveFloor(req) => {
                hub.give_floor(&meeting_id, &req.participant_id)
                    .map_err(live_fail)?;
                audit(
                    "live.floor_given",
                    json!({"participant_id": req.participant_id, "by": pid}),
                )
                .await;
            }
            ClientMsg::TakeFloor(_) => {
                if let Some(had) = hub.take_floor(&meeting_id) {
                    audit(
                        "live.floor_taken",
                        json!({"participant_id": had, "by": pid}),
                    )
                    .await;
                }
            }
            ClientMsg::MuteParticipant(req) => {
                let kind = req.media_kind()?;
                let changed = hub
                    .block(&meeting_id, &req.participant_id, kind, req.muted)
                    .map_err(live_fail)?;
                if changed {
                    audit(
                        if req.muted {
                            "live.media_blocked"
                        } else {
                            "live.media_unblocked"
                        },
                        json!({"participant_id": req.participant_id, "kind": req.kind, "by": pid}),
                    )
                    .await;
                }
            }
            ClientMsg::MuteAll(_) => {
                let muted = hub.mute_all(&meeting_id);
                audit("live.mute_all", json!({"participants": muted, "by": pid})).await;
            }
            ClientMsg::LockMeeting(req) => {
                // Recorded first: the lock holds after a restart too.
                self.state
                    .store
                    .record_live_lock(&actor, &meeting_id, req.locked, &pid)
                    .await
                    .map_err(not_recorded)?;
                hub.lock_meeting(&meeting_id, req.locked);
            }
            ClientMsg::RemoveParticipant(req) => {
                let reason = req.checked_reason()?.to_owned();
                if req.participant_id == pid {
                    return Err(Fail::new(
                        ErrorCode::Forbidden,
                        "leave the meeting instead of removing yourself",
                    ));
                }
                let (removed_inv, name) = hub
                    .remove_participant(&meeting_id, &req.participant_id, &reason)
                    .map_err(live_fail)?;
                tracing::info!(meeting = %meeting_id, participant = %req.participant_id, "the chair removed a participant");
                // The record keeps the invitation out after a restart.
                let removal = cabinet::LiveRemoval {
                    meeting_id: &meeting_id,
                    invitation_id: &removed_inv,
                    participant_id: &req.participant_id,
                    name: &name,
                    reason: &reason,
                    by: &pid,
                };
                self.state
                    .store
                    .record_live_removal(&actor, removal)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, invitation = %removed_inv, "cannot record a removal; it holds until the server restarts");
                        Fail::new(
                            ErrorCode::Internal,
                            "the participant was removed, but the removal was not recorded",
                        )
                    })?;
            }
            ClientMsg::SetCurrentItem(req) => {
                if let Some(item_id) = &req.item_id {
                    let item = self
                        .state
                        .store
                        .get_agenda_item(item_id)
                        .await
                        .map_err(|e| {
                            tracing::error!(error = %e, "cannot read an agenda item");
                            Fail::new(ErrorCode::Internal, "the agenda cannot be read")
                        })?;
                    if item.is_none_or(|i| i.meeting_id != meeting_id) {
                        return Err(Fail::new(
                            ErrorCode::AgendaItemNotFound,
                            "no such agenda item in this meeting",
                        ));
                    }
                }
                self.state
                    .store
                    .record_live_current_item(&actor, &meeting_id, req.item_id.as_deref(), &pid)
                    .await
                    .map_err(not_recorded)?;
                hub.set_current_item(&meeting_id, req.item_id.clone());
            }
            ClientMsg::StartMeeting(_) => {
                move_meeting(
                    &self.state.store,
                    &meeting_id,
                    &actor,
                    MeetingStatus::InProgress,
                )
                .await?;
                hub.meeting_started(&meeting_id);
            }
            ClientMsg::EndMeeting(_) => {
                move_meeting(&self.state.store, &meeting_id, &actor, MeetingStatus::Ended).await?;
                self.ended = Some(meeting_id);
            }
            ClientMsg::DeclareAttendance(req) => {
                let (leader, attendees) = req.checked()?;
                self.state
                    .store
                    .declare_attendance(&meeting_id, &inv_id, leader, attendees)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot store an attendance declaration");
                        Fail::new(ErrorCode::Internal, "the declaration was not stored")
                    })?;
                hub.send_to_roles(
                    &meeting_id,
                    &[cabinet::Role::Chair, cabinet::Role::Secretary],
                    &ServerMsg::AttendanceDeclared {
                        participant_id: pid,
                        invitation_id: inv_id,
                        leader: leader.to_owned(),
                        attendees,
                    },
                );
            }
            ClientMsg::OpenVote(req) => {
                crate::votes::open(&self.state, &self.voter()?, req).await?;
            }
            ClientMsg::CastVote(req) => {
                crate::votes::cast(&self.state, &self.voter()?, req).await?;
            }
            ClientMsg::CloseVote(req) => {
                crate::votes::close(&self.state, &self.voter()?, req).await?;
            }
            ClientMsg::PresentDocument(req) => {
                let (page, zoom) = req.checked()?;
                let role = self.joined.as_ref().ok_or_else(not_joined)?.role;
                let doc = presentable(&self.state, &meeting_id, role, &req.document_id).await?;
                let p = hub
                    .present_document(&meeting_id, &pid, doc, page, zoom)
                    .map_err(live_fail)?;
                audit(
                    "live.presentation_started",
                    json!({"document_id": p.document_id, "version": p.version, "by": pid}),
                )
                .await;
            }
            ClientMsg::PresentPage(req) => {
                let (page, zoom) = req.checked()?;
                hub.present_page(&meeting_id, &pid, page, zoom)
                    .map_err(live_fail)?;
            }
            ClientMsg::StopPresenting(_) => {
                let doc = hub.stop_presenting(&meeting_id, &pid).map_err(live_fail)?;
                audit(
                    "live.presentation_stopped",
                    json!({"document_id": doc, "by": pid}),
                )
                .await;
            }
            ClientMsg::AllowPresenting(req) => {
                hub.allow_presenting(&meeting_id, req.allowed);
                audit(
                    "live.presenting_allowed",
                    json!({"allowed": req.allowed, "by": pid}),
                )
                .await;
            }
            // The session's own messages are handled in on_request.
            _ => {}
        }
        Ok(())
    }

    fn media(&self) -> Result<&sfu::Participant, Fail> {
        let j = self.joined.as_ref().ok_or_else(not_joined)?;
        j.media
            .as_ref()
            .ok_or_else(|| Fail::new(ErrorCode::Internal, "the media plane is not available"))
    }

    async fn join(&mut self, id: &Option<Value>, req: JoinReq) -> Result<(), Fail> {
        let claims = self
            .state
            .keys
            .decode(&req.token)
            .map_err(|e| Fail::new(ErrorCode::from(&e), e.to_string()))?;
        let (meeting, inv) =
            auth::check_invitation(&self.state.store, &claims, req.meeting_id.as_deref())
                .await
                .map_err(|e| Fail::new(ErrorCode::from(&e), e.to_string()))?;
        let in_slots = match req.receive.as_deref() {
            None | Some("tracks") => false,
            Some("slots") => true,
            Some(other) => {
                return Err(Fail::new(
                    ErrorCode::BadRequest,
                    format!("receive must be \"tracks\" or \"slots\", not {other:?}"),
                ))
            }
        };
        match crate::admission::check(&self.state, &meeting, &inv, Via::WebSocket).await? {
            Entry::Enter => {}
            Entry::Wait => {
                if self.wait(id, &meeting).await? {
                    return Ok(());
                }
                // Started meanwhile: enter now.
            }
        }
        let pid = new_participant_id();
        let joined = match &self.state.sfu {
            Some(sfu) if in_slots => Some(sfu.join_in_slots(meeting.id.clone(), pid.clone()).await),
            Some(sfu) => Some(sfu.join(meeting.id.clone(), pid.clone()).await),
            None => None,
        };
        let (media, sfu_rx) = match joined {
            Some(joined) => match joined {
                // The chair is the main view of WHEP players (docs/whip-whep.md):
                // the hub features it as it enters, unless someone has the floor.
                Ok((p, rx)) => (Some(p), Some(rx)),
                Err(e) => {
                    tracing::error!(error = %e, participant = %pid, "the media plane refused a participant; joined without media");
                    (None, None)
                }
            },
            None => (None, None),
        };
        let info = ParticipantInfo::new(&pid, &inv.name, inv.role, "participant");
        let (hub_tx, hub_rx) = mpsc::unbounded_channel();
        let (attach_tx, attach_rx) = mpsc::unbounded_channel();
        let resume_token = new_resume_token();
        let turn_refresh =
            self.state.turn.as_ref().map(|t| {
                crate::turn::RefreshTask::spawn(t.clone(), pid.clone(), hub_tx.downgrade())
            });
        let ice = crate::turn::ice_fields(
            self.state.turn.as_deref(),
            &pid,
            std::time::SystemTime::now(),
        );
        let out = crate::admission::enter(
            &self.state,
            &meeting,
            &inv,
            info.clone(),
            hub_tx,
            Via::WebSocket,
        )
        .await;
        // As the hub let it in (blocked if the meeting joins muted).
        let info = self
            .state
            .hub
            .participant(&meeting.id, &pid)
            .unwrap_or(info);
        let (live_state, hands) = self.state.hub.live_messages(&meeting.id);
        self.state
            .hub
            .set_resume_token(&meeting.id, &pid, resume_token.clone(), attach_tx.clone());
        self.joined = Some(Joined {
            meeting_id: meeting.id.clone(),
            pid,
            invitation_id: inv.id.clone(),
            role: inv.role,
            media,
            sfu_rx,
            hub_rx,
            _turn_refresh: turn_refresh,
            outbox: Outbox::default(),
            attach_tx,
            attach_rx,
        });
        let joined = ServerMsg::Joined {
            participant: info,
            meeting: MeetingRef {
                id: meeting.id.clone(),
                title: Some(meeting.title.clone()),
            },
            participants: out.others,
            tracks: out.tracks,
            receive: if in_slots { "slots" } else { "tracks" },
            resume_token,
            ice,
            state: live_state,
        };
        // Not numbered: the session's messages are those after `joined`.
        self.write(joined.to_text(id.as_ref())).await;
        self.send_text(hands.to_text(None)).await;
        // The document presented now: a late joiner lands on its page.
        let presentation = self.state.hub.presentation_message(&meeting.id);
        self.send_text(presentation.to_text(None)).await;
        // A vote open now: the voting card comes back after a reload.
        for msg in crate::votes::open_poll_for(&self.state, &meeting.id, &inv.id, inv.role).await {
            self.send_text(msg.to_text(None)).await;
        }
        Ok(())
    }

    /// Answers `join` before the start with `waiting` (the meeting's time,
    /// place and agenda) and waits for `meeting_started`. False: the meeting
    /// started meanwhile (join now).
    async fn wait(&mut self, id: &Option<Value>, meeting: &cabinet::Meeting) -> Result<bool, Fail> {
        let (tx, rx) = mpsc::unbounded_channel();
        match self.state.hub.wait_for_start(&meeting.id, tx) {
            Waited::Started => return Ok(false),
            Waited::Full => {
                return Err(Fail::new(
                    ErrorCode::ServerBusy,
                    "too many participants wait for this meeting; try again later",
                ))
            }
            Waited::Waiting => {}
        }
        let agenda = match self.state.store.list_agenda(&meeting.id).await {
            Ok(items) => items
                .into_iter()
                .map(|a| WaitingItem {
                    id: a.id,
                    title: a.title,
                    position: a.position,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the agenda for a waiting participant");
                Vec::new()
            }
        };
        self.waiting = Some(rx);
        self.send_msg(
            id,
            ServerMsg::Waiting {
                meeting: WaitingMeeting {
                    id: meeting.id.clone(),
                    title: meeting.title.clone(),
                    starts_at: meeting.starts_at,
                    ends_at: meeting.ends_at,
                    location: meeting.location.clone(),
                    status: meeting.status.as_str(),
                },
                agenda,
            },
        )
        .await;
        Ok(true)
    }

    async fn on_sfu_event(&mut self, ev: SfuEvent) {
        let Some(j) = self.joined.as_ref() else {
            return;
        };
        let (meeting_id, pid) = (j.meeting_id.clone(), j.pid.clone());
        match ev {
            SfuEvent::SubscriberOffer { sdp } => {
                self.send_msg(&None, ServerMsg::SubscriberOffer { sdp })
                    .await;
                if let Some(j) = self.joined.as_mut() {
                    j.outbox.pushed_offer();
                }
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
                self.send_msg(&None, ServerMsg::LayersWanted { track_id, layers })
                    .await;
            }
            SfuEvent::ActiveSpeaker { participant } => {
                self.send_msg(
                    &None,
                    ServerMsg::ActiveSpeaker {
                        participant_id: participant,
                    },
                )
                .await;
            }
            SfuEvent::VideoPaused { track_ids } => {
                self.send_msg(
                    &None,
                    ServerMsg::VideoPaused {
                        track_ids,
                        reason: "last_n",
                    },
                )
                .await;
            }
            SfuEvent::Slots { slots } => {
                let slots = slots
                    .into_iter()
                    .map(|s| {
                        let (participant_id, track_id) = s.source.unzip();
                        SlotMsg {
                            slot: s.slot,
                            kind: s.kind.as_str(),
                            participant_id,
                            track_id,
                        }
                    })
                    .collect();
                self.send_msg(&None, ServerMsg::Slots { slots }).await;
            }
        }
    }
}

/// An `error` message with the request's `id` (if any), counted in the
/// metrics.
fn error_message(id: &Option<Value>, code: ErrorCode, message: &str) -> Value {
    crate::metrics::ws_error(code);
    ServerMsg::Error {
        code,
        message: message.to_owned(),
    }
    .to_value(id.as_ref())
}

/// Whether the joined participant may send this message: its role must
/// give the permission the message needs ([`crate::permissions`]), and a
/// message naming a participant must name the sender itself (nobody acts
/// for another participant).
fn authorize(j: &Joined, req: &Request) -> Result<(), Fail> {
    if let Some(p) = &req.participant_id {
        if p.as_str() != Some(j.pid.as_str()) {
            return Err(Fail::new(
                ErrorCode::Forbidden,
                "a participant acts only for itself",
            ));
        }
    }
    match req.needs {
        Some(p) if !crate::permissions::allows(j.role, p) => Err(Fail::new(
            ErrorCode::Forbidden,
            format!(
                "the role {} does not give the permission {}",
                j.role.as_str(),
                p.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

fn meeting_closed() -> Fail {
    Fail::new(ErrorCode::MeetingClosed, "the meeting has ended")
}

/// Whether a meeting has ended (or is gone). A database error says no: the
/// sweep of `crate::server` looks again.
pub(crate) async fn meeting_is_over(state: &AppState, meeting_id: &str) -> bool {
    match state.store.get_meeting(meeting_id).await {
        Ok(Some(m)) => m.status.is_frozen(),
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a meeting's status");
            false
        }
    }
}

/// Records in the audit log that a new session (`via` `websocket` or
/// `whip`) of a live invitation replaced the old one (which was kicked).
pub(crate) async fn record_replacement(
    state: &AppState,
    meeting_id: &str,
    inv: &cabinet::Invitation,
    old_pid: &str,
    new_pid: &str,
    via: &str,
) {
    tracing::warn!(invitation = %inv.id, meeting = %meeting_id, old = %old_pid, new = %new_pid, via,
        "a new session replaced the live session of an invitation");
    let detail = json!({
        "meeting_id": meeting_id,
        "name": inv.name,
        "old_participant_id": old_pid,
        "new_participant_id": new_pid,
        "via": via,
    });
    if let Err(e) = state
        .store
        .record_audit(
            &format!("invitation:{}", inv.id),
            "session.replaced",
            "invitation",
            &inv.id,
            detail,
        )
        .await
    {
        tracing::error!(error = %e, "cannot record a session replacement in the audit log");
    }
}

/// Moves the meeting to `to` for the chair (a draft passes through
/// `scheduled` on its way to `in_progress`); already there is no error.
async fn move_meeting(
    store: &cabinet::Store,
    meeting_id: &str,
    actor: &str,
    to: MeetingStatus,
) -> Result<(), Fail> {
    let fail = |e: cabinet::Error| match e {
        cabinet::Error::BadTransition { from, to } => Fail::new(
            ErrorCode::InvalidTransition,
            format!("the meeting cannot go from {from} to {to}"),
        ),
        other => {
            tracing::error!(error = %other, "cannot change a meeting's status");
            Fail::new(ErrorCode::Internal, "the meeting's status was not changed")
        }
    };
    if to == MeetingStatus::InProgress {
        let m = store.get_meeting(meeting_id).await.map_err(fail)?;
        if m.is_some_and(|m| m.status == MeetingStatus::Draft) {
            store
                .change_meeting_status(actor, meeting_id, MeetingStatus::Scheduled)
                .await
                .map_err(fail)?;
        }
    }
    store
        .change_meeting_status(actor, meeting_id, to)
        .await
        .map_err(fail)?;
    Ok(())
}

/// A chair's decision that could not be recorded (nothing changed).
fn not_recorded(e: cabinet::Error) -> Fail {
    tracing::error!(error = %e, "cannot record a decision of the live meeting");
    Fail::new(
        ErrorCode::Internal,
        "the decision was not recorded; try again",
    )
}

/// A refusal of the hub as the error the client gets.
fn live_fail(r: LiveRefused) -> Fail {
    match r {
        LiveRefused::NotInMeeting => Fail::new(
            ErrorCode::NotInMeeting,
            "that participant is not in the meeting",
        ),
        LiveRefused::NoHand => Fail::new(ErrorCode::NoHand, "that participant has no raised hand"),
        LiveRefused::Forbidden(m) => Fail::new(ErrorCode::Forbidden, m),
        LiveRefused::NotCurrentItem => Fail::new(
            ErrorCode::NotCurrentItem,
            "the document is not one of the current agenda item",
        ),
        LiveRefused::NotPresenter => Fail::new(
            ErrorCode::NotPresenter,
            "nothing is presented, or another participant presents it",
        ),
    }
}

/// The document `document_id` as it may be presented in `meeting_id` by an
/// invitation of `role`: the meeting's, not withdrawn, with a version, and
/// readable by the presenter (a committee document needs the committee
/// documents permission; a document for named participants is not
/// presented to the room).
async fn presentable(
    state: &crate::AppState,
    meeting_id: &str,
    role: cabinet::Role,
    document_id: &str,
) -> Result<crate::hub::PresentedDocument, Fail> {
    let doc = state.store.get_document(document_id).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read a document to present");
        Fail::new(ErrorCode::Internal, "the document cannot be read")
    })?;
    let Some(doc) = doc.filter(|d| d.meeting_id == meeting_id) else {
        return Err(Fail::new(
            ErrorCode::DocumentNotFound,
            "no such document in this meeting",
        ));
    };
    if doc.is_withdrawn() {
        return Err(Fail::new(
            ErrorCode::DocumentWithdrawn,
            "the document has been withdrawn",
        ));
    }
    let readable = match doc.access {
        cabinet::DocumentAccess::Everyone => true,
        cabinet::DocumentAccess::Committee => {
            crate::permissions::allows(role, crate::permissions::Permission::ReadCommitteeDocuments)
        }
        cabinet::DocumentAccess::Named => false,
    };
    if !readable {
        return Err(Fail::new(
            ErrorCode::Forbidden,
            "this document cannot be presented by this participant",
        ));
    }
    let Some(v) = doc.version(None) else {
        return Err(Fail::new(
            ErrorCode::VersionNotFound,
            "the document has no version",
        ));
    };
    Ok(crate::hub::PresentedDocument {
        document_id: doc.id.clone(),
        version: v.version,
        item_id: doc.agenda_item_id.clone(),
        title: doc.title.clone(),
    })
}

fn not_joined() -> Fail {
    Fail::new(ErrorCode::NotJoined, "join the meeting first")
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
    fn an_answered_offer_lets_the_outbox_drop_it_and_what_came_before() {
        let mut o = Outbox::default();
        o.push("joined-reply");
        o.push(r#"{"type":"subscriber_offer"}"#);
        o.pushed_offer();
        o.push("participant_joined");
        // A resume from before the answer still gets the offer again.
        assert_eq!(o.since(1).map(|m| m.len()), Some(2));
        o.offer_answered();
        assert_eq!(o.since(2), Some(vec!["participant_joined".to_owned()]));
        assert_eq!(o.since(1), None, "the answered offer is gone");
        assert_eq!(o.sent(), 3);
        // A second answer without a new offer acknowledges nothing more.
        o.offer_answered();
        assert_eq!(o.since(2).map(|m| m.len()), Some(1));
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
