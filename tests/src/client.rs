//! A WebRTC test participant: speaks the signaling protocol of
//! `docs/protocol.md` over a WebSocket and runs two peer connections of the
//! sans-I/O `rtc` stack (webrtc-rs) on real UDP sockets of its own.
//!
//! # Layout
//! - [`TestClient`]: the handle a test holds. [`TestClient::join`] says hello,
//!   joins with an invitation token, publishes one Opus and one VP8 track and
//!   returns once the server answered the publish offer. From then on the
//!   client's task answers every `subscriber_offer` (renegotiation included),
//!   sends synthetic media once the publisher connection is connected, and
//!   records what it receives. With [`MediaOptions::simulcast`] the video
//!   goes out as three rid layers, as Chromium sends it;
//!   [`TestClient::set_quality`] (and [`TestClient::send`]) make requests.
//! - [`ClientState`]: what the client recorded (server events, errors, media
//!   received per publishing participant and kind, the remote addresses every
//!   datagram came from). Read it with [`TestClient::state`] or wait on it with
//!   [`TestClient::wait_until`].
//! - The synthetic payloads: every RTP payload carries a magic, the sending
//!   participant's id, a packet counter, a filler derived from the counter and a
//!   checksum, so the receiver can tell whose packet it is and whether it
//!   arrived intact. Video payloads start with a real VP8 payload descriptor
//!   and, at the start of a frame, a VP8 frame header (key frames with the
//!   start code and dimensions), so an SFU that looks for key frames finds them.
//!
//! One task per client owns the WebSocket, both peer connections and their
//! sockets (one UDP socket per connection, bound to 127.0.0.1:0; or, with
//! [`JoinOptions`] `transport: Tcp`, one ICE-TCP active connection per peer
//! connection to the server's passive candidate, RFC 4571 framing), and
//! schedules the connections' timers. Nothing the server sends can panic it:
//! bad input is recorded in [`ClientState::errors`].
//!
//! Two things the client does because the stack does not:
//! - the stack drops DTLS that arrives before its ICE agent has selected a
//!   pair; an ICE-lite server sends its ClientHello as soon as it sees the
//!   nominating check, which can beat the check's response, so early DTLS is
//!   kept and replayed once ICE is connected (browsers buffer it too);
//!   without this the subscriber connection waits ~1 s for a retransmission.
//! - DTLS starts at the next timeout after ICE connects, so the client runs
//!   the timeout right away.
//!
//! [`ClientState::timeline`] records the first datagrams each way, server
//! messages and state changes with times, for diagnosing slow connections
//! (the media tests print it with `MEDIA_TIMELINE=1`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rtc::ice::network_type::NetworkType;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::tcp_framing::{frame_packet, TcpFrameDecoder};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::repair::{KeyframeTap, RepairOptions, RtxUnwrap};

type Ws = Signal;

/// How the client's signaling messages (the JSON of `docs/protocol.md`)
/// travel. The peer-connection driver only sees messages, so another
/// signaling API can drive the same client through an adapter that
/// translates it (the Janus reference of the load benchmark,
/// [`crate::janus`]).
pub enum Signal {
    /// A WebSocket to a giaoban server.
    Ws(
        Box<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    ),
    /// An in-process adapter: `tx` carries the client's messages to it,
    /// `rx` the messages it answers with (each one JSON text). The adapter
    /// dropping `tx`'s receiver or `rx`'s sender is the socket closing.
    Channel {
        tx: mpsc::UnboundedSender<String>,
        rx: mpsc::UnboundedReceiver<String>,
    },
}

type WsError = tokio_tungstenite::tungstenite::Error;

impl futures_util::Stream for Signal {
    type Item = Result<Message, WsError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut() {
            Signal::Ws(ws) => ws.poll_next_unpin(cx),
            Signal::Channel { rx, .. } => rx.poll_recv(cx).map(|m| m.map(|t| Ok(Message::text(t)))),
        }
    }
}

impl futures_util::Sink<Message> for Signal {
    type Error = WsError;

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), WsError>> {
        match self.get_mut() {
            Signal::Ws(ws) => ws.poll_ready_unpin(cx),
            Signal::Channel { .. } => std::task::Poll::Ready(Ok(())),
        }
    }

    fn start_send(self: std::pin::Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        match self.get_mut() {
            Signal::Ws(ws) => ws.start_send_unpin(item),
            Signal::Channel { tx, .. } => match item {
                Message::Text(t) => tx
                    .send(t.as_str().to_owned())
                    .map_err(|_| WsError::ConnectionClosed),
                // Only JSON text travels over an adapter.
                _ => Ok(()),
            },
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), WsError>> {
        match self.get_mut() {
            Signal::Ws(ws) => ws.poll_flush_unpin(cx),
            Signal::Channel { .. } => std::task::Poll::Ready(Ok(())),
        }
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), WsError>> {
        match self.get_mut() {
            Signal::Ws(ws) => ws.poll_close_unpin(cx),
            Signal::Channel { .. } => std::task::Poll::Ready(Ok(())),
        }
    }
}

/// Fixed SSRC of every client's audio track (the SFU must rewrite or keep it
/// per subscriber; clients all using the same SSRC is a good test of that).
pub const AUDIO_SSRC: u32 = 0x0A0D_1001;
/// The RFC 6464 audio-level header extension.
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Where the clients' UDP sockets bind unless told otherwise.
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// Fixed SSRC of every client's video track.
pub const VIDEO_SSRC: u32 = 0x0B1D_E002;
/// Audio packet interval (Opus, 20 ms frames).
const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Video frame interval (~30 fps).
const VIDEO_INTERVAL: Duration = Duration::from_millis(33);
/// Every this many video frames is a key frame (besides those asked by
/// PLI/FIR). Periodic because `rtc` 0.21.1 does not hand a sending peer
/// connection the RTCP it receives (a PLI from the server is never seen:
/// checked with two in-memory peers), so requests cannot be answered.
const KEYFRAME_EVERY: u64 = 30;
/// Packets in a key frame (the last one carries the marker bit).
const KEYFRAME_PACKETS: usize = 3;
/// How long `join` waits for the server to answer each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The first datagrams of each connection go into the timeline.
const TIMELINE_DATAGRAMS: u64 = 12;
/// Magic at the start of every synthetic media pattern.
const MAGIC: &[u8; 4] = b"GBT1";
/// Magic of a pattern that carries its send time (see [`MediaClock`]).
const MAGIC_STAMPED: &[u8; 4] = b"GBT2";
/// Datagrams read from a socket in one go (after the one that woke the task).
const UDP_BATCH: usize = 32;
/// Largest video payload per RTP packet when frames are sized by
/// [`MediaOptions::video_frame_bytes`].
const MAX_VIDEO_PAYLOAD: usize = 1100;
/// A sized key frame is this many times a delta frame.
const KEYFRAME_FACTOR: usize = 4;
/// VP8 frame dimensions announced in key frame headers (of the full layer
/// with simulcast; `h` and `q` announce ½ and ¼ of them).
const VP8_WIDTH: u16 = 320;
const VP8_HEIGHT: u16 = 240;
/// With [`MediaOptions::simulcast`]: the RTP stream ids of the video layers,
/// lowest first, as the web client (and Chromium's offer) names them.
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];
/// With [`MediaOptions::simulcast`]: the SSRC of each layer of
/// [`SIMULCAST_RIDS`] (not announced in the SDP, as Chromium does not).
pub const SIMULCAST_SSRCS: [u32; 3] = [0x0B1D_E010, 0x0B1D_E011, 0x0B1D_E012];
/// Simulcast: the packet counter embedded in a layer's payloads carries the
/// layer (1 = `q`, 2 = `h`, 3 = `f`; 0 = no simulcast) in its top bits, so a
/// receiver knows the layer of every packet ([`layer_of_counter`]).
const LAYER_SHIFT: u32 = 28;
/// Simulcast: the first packets of each layer carry the `mid` and
/// `rtp-stream-id` header extensions (how the server learns the layer's
/// SSRC). libwebrtc sends them until an RTCP receiver report acknowledges
/// the SSRC; rtc 0.21.1 does not surface RTCP to a sender, so the client
/// sends them on the first this many packets of each layer.
const RID_PACKETS: u64 = 100;
/// The RFC 8843 / RFC 8852 header extensions a simulcast publisher sends.
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// A gap in a received stream's packet counter counts as loss unless the
/// later packet was sent this much later than the previous one (the server
/// paused the stream: last-N, the loudest audio) or starts a key frame (the
/// server restarted it).
const PAUSE_NS: u64 = 500_000_000;
/// How many missing counters a received stream remembers (for late packets).
const MISSING_MAX: usize = 4096;
/// Receiving in slots: how long around a `slots` message a packet of the
/// slot's previous or next occupant still counts as theirs. The message
/// comes by WebSocket and the media by UDP, and the client's loop takes
/// whichever is ready first: the previous occupant's last packets can be
/// read after the message (they waited in the socket's buffer), and the
/// next occupant's first audio before it (the server forwards it within
/// milliseconds of the switch, while the message crosses the signaling
/// task and the WebSocket). The server stops the previous occupant before
/// it announces the next; no order between the two transports exists.
const SLOT_GRACE: Duration = Duration::from_secs(1);

/// The simulcast layer a payload's packet counter carries: 1 = `q`, 2 = `h`,
/// 3 = `f`, 0 = a single-layer stream.
pub fn layer_of_counter(counter: u32) -> u8 {
    (counter >> LAYER_SHIFT) as u8
}

/// The key frame dimensions of a layer (0 or 3: full; 2: ½; 1: ¼).
fn layer_dims(layer: u8) -> (u16, u16) {
    match layer {
        1 => (VP8_WIDTH / 4, VP8_HEIGHT / 4),
        2 => (VP8_WIDTH / 2, VP8_HEIGHT / 2),
        _ => (VP8_WIDTH, VP8_HEIGHT),
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "audio" => Some(Kind::Audio),
            "video" => Some(Kind::Video),
            _ => None,
        }
    }
    fn tag(self) -> u8 {
        match self {
            Kind::Audio => b'a',
            Kind::Video => b'v',
        }
    }
}

/// Which of the client's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Publisher,
    Subscriber,
}

impl Pc {
    fn as_str(self) -> &'static str {
        match self {
            Pc::Publisher => "publisher",
            Pc::Subscriber => "subscriber",
        }
    }
}

/// Transport protocol of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

/// Where one received datagram came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteAddr {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The connection whose socket received it.
    pub pc: Pc,
}

/// What the client received of one kind of media from one participant.
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    /// RTP packets delivered by the subscriber connection.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Packets whose payload verified (pattern and checksum).
    pub intact: u64,
    /// Packets whose payload did not verify.
    pub corrupted: u64,
    /// Intact packets whose embedded sender is not the participant the SDP
    /// (msid) attributes the track to: the SFU routed them to the wrong track.
    pub misattributed: u64,
    /// Video: packets that start a key frame.
    pub keyframes: u64,
    /// Packets with the RTP marker bit.
    pub markers: u64,
    /// Video: intact packets that arrived before the first key frame (a
    /// decoder could show nothing until then).
    pub before_keyframe: u64,
    /// Distinct SSRCs seen.
    pub ssrcs: BTreeSet<u32>,
    /// Time from the start of `join` to the first packet.
    pub first_after: Option<Duration>,
    /// Lowest embedded packet counter seen.
    pub min_counter: Option<u32>,
    /// Highest embedded packet counter seen.
    pub max_counter: Option<u32>,
    /// Intact packets and payload bytes per simulcast layer of the sender
    /// ([`layer_of_counter`]: 0 for a single-layer stream, 1 `q`, 2 `h`,
    /// 3 `f`). With simulcast `min_counter`, `max_counter` and
    /// [`MediaStats::lost`] mix the layers: use `gaps` instead.
    pub layers: BTreeMap<u8, (u64, u64)>,
    /// Packets missing between consecutive intact packets of the same
    /// layer (a gap after a pause of the stream or at a restart on a key
    /// frame is not counted, see `PAUSE_NS`), less those that arrived late.
    pub gaps: i64,
    /// The latest intact packet: (layer, counter, send stamp or 0).
    pub last_seen: Option<(u8, u32, u64)>,
    /// Counters counted in `gaps` and not arrived yet (at most
    /// `MISSING_MAX`; older ones are forgotten, staying lost).
    pub missing: BTreeSet<u32>,
    /// Intact packets whose counter arrived before (or was never missed).
    pub duplicates: u64,
}

impl MediaStats {
    /// Packets missing between the lowest and the highest counter seen
    /// (negative would mean duplicates).
    pub fn lost(&self) -> i64 {
        match (self.min_counter, self.max_counter) {
            (Some(lo), Some(hi)) => i64::from(hi) - i64::from(lo) + 1 - self.intact as i64,
            _ => 0,
        }
    }
}

/// Everything the client recorded. Participants are keyed by their id.
#[derive(Debug, Default)]
pub struct ClientState {
    /// This client's participant id (from `joined`).
    pub participant_id: String,
    /// Every server message except `pong`, in order of arrival.
    pub events: Vec<Value>,
    /// Errors: `error` answers of the server, and faults of the client itself
    /// (bad SDP from the server, failed connections).
    pub errors: Vec<String>,
    /// Media received per (publishing participant, kind). Tracks the client
    /// could not attribute are under participant `"?"`.
    pub media: BTreeMap<(String, Kind), MediaStats>,
    /// Packets sent by this client per kind.
    pub sent: BTreeMap<Kind, u64>,
    /// Key frame requests (PLI or FIR) seen from the server. Stays 0 with
    /// `rtc` 0.21.1, which does not surface RTCP on a sending connection.
    pub keyframe_requests: u64,
    /// Every (transport, address, connection) a datagram came from.
    pub remote_addrs: BTreeSet<RemoteAddr>,
    /// Connection states seen per connection, in order.
    pub connection_states: BTreeMap<Pc, Vec<String>>,
    /// Time from the start of `join` to the connection's `connected`.
    pub connected_after: BTreeMap<Pc, Duration>,
    /// Subscriber offers answered.
    pub subscriber_offers: u64,
    /// Tracks announced by the server (`joined.tracks`, `track_published`)
    /// and not unpublished since: track id -> (participant id, kind).
    pub published_tracks: BTreeMap<String, (String, Kind)>,
    /// The socket has closed (after `leave`, or by the server).
    pub closed: bool,
    /// The audio level (RFC 6464: 0 loudest .. 127 silence) this client
    /// stamps on its audio packets from now on; `None`: no level extension
    /// (see [`TestClient::set_audio_level`]).
    pub audio_level_out: Option<u8>,
    /// Loss dropped on purpose and its repair (see [`crate::repair`]).
    pub repair: crate::repair::RepairStats,
    /// The latest resume token (`joined`, then each `resumed`).
    pub resume_token: Option<String>,
    /// Messages of the session received since `joined` (what `resume`
    /// and `ping` report as `received`).
    pub received: u64,
    /// What happened when, from the start of `join`: server messages by
    /// type, connection states, first packets (for diagnosing delays).
    pub timeline: Vec<(Duration, String)>,
    /// Datagrams received per connection.
    pub datagrams_in: BTreeMap<Pc, u64>,
    /// Bytes of the datagrams (or ICE-TCP frames) received per connection.
    pub datagram_bytes_in: BTreeMap<Pc, u64>,
    /// Datagrams sent per connection.
    pub datagrams_out: BTreeMap<Pc, u64>,
    /// Bytes of the datagrams sent per connection.
    pub datagram_bytes_out: BTreeMap<Pc, u64>,
    /// RTP payload bytes sent per kind.
    pub sent_bytes: BTreeMap<Kind, u64>,
    /// With a [`MediaClock`]: the forwarding delay of every packet stamped in
    /// the window and received, in microseconds (send stamp to the read of
    /// the datagram that carried it).
    pub delays_us: Vec<u32>,
    /// With a [`MediaClock`]: media packets this client sent in the window.
    pub window_sent: u64,
    /// With a [`MediaClock`]: intact media packets stamped in the window
    /// that this client received.
    pub window_received: u64,
    /// With a [`MediaClock`]: the counter gaps (see [`MediaStats::gaps`])
    /// ending at a packet stamped in the window, over every stream.
    pub window_gaps: i64,
    /// Key frames this client sent because the server asked (PLI/FIR,
    /// with [`RepairOptions::answer_keyframe_requests`]) or because a
    /// simulcast layer was resumed (`layers_wanted`).
    pub keyframes_on_request: u64,
    /// Simulcast: the layers (rids) the server wants, from its latest
    /// `layers_wanted` (all three until it says otherwise).
    pub layers_active: Vec<String>,
}

impl ClientState {
    /// Media received from `participant_id` of `kind` (zero when none).
    pub fn received(&self, participant_id: &str, kind: Kind) -> MediaStats {
        self.media
            .get(&(participant_id.to_owned(), kind))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether an event of type `ty` arrived for which `pred` holds.
    pub fn has_event(&self, ty: &str, pred: impl Fn(&Value) -> bool) -> bool {
        self.events
            .iter()
            .any(|e| e.get("type").and_then(Value::as_str) == Some(ty) && pred(e))
    }

    /// Total corrupted packets over every stream.
    pub fn corrupted_total(&self) -> u64 {
        self.media.values().map(|m| m.corrupted).sum()
    }
}

/// Intact packets `c` received of `kind` from each of `from` during `window`.
pub async fn received_during(
    c: &TestClient,
    from: &[&TestClient],
    kind: Kind,
    window: Duration,
) -> Vec<u64> {
    let count = || -> Vec<u64> {
        from.iter()
            .map(|p| c.received(p.participant_id(), kind).intact)
            .collect()
    };
    let before = count();
    tokio::time::sleep(window).await;
    count().iter().zip(before).map(|(a, b)| a - b).collect()
}

/// How a client joins.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinOptions {
    /// UDP (default), or ICE-TCP active to the server's passive candidate.
    pub transport: Transport,
    /// Receive in slots (`join` with `"receive": "slots"`): received media is
    /// attributed by the server's `slots` messages, not by `msid`.
    pub slots: bool,
}

/// A clock shared by the clients of one process, for measuring forwarding
/// delays and loss over a window: senders stamp payloads with
/// [`MediaClock::now_ns`]; packets stamped inside the measurement window
/// ([`MediaClock::start_window`] .. [`MediaClock::end_window`]) are counted
/// by their sender ([`ClientState::window_sent`]) and by every receiver
/// ([`ClientState::window_received`]), which also records the delay (the
/// stamp subtracted from the time it read the datagram) in
/// [`ClientState::delays_us`]. Counting by stamp makes the window exact:
/// no packet in flight at its edges is counted on one side only.
#[derive(Debug)]
pub struct MediaClock {
    base: Instant,
    /// Window start in ns (`u64::MAX`: not started).
    window_start: AtomicU64,
    /// Window end in ns (`u64::MAX`: open).
    window_end: AtomicU64,
}

impl MediaClock {
    /// A clock whose zero is now; no window yet.
    pub fn new() -> Arc<MediaClock> {
        Arc::new(MediaClock {
            base: Instant::now(),
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
        })
    }

    /// Nanoseconds since the clock was made.
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Opens the measurement window now.
    pub fn start_window(&self) {
        self.window_end.store(u64::MAX, Ordering::Relaxed);
        self.window_start.store(self.now_ns(), Ordering::Relaxed);
    }

    /// Closes the measurement window now.
    pub fn end_window(&self) {
        self.window_end.store(self.now_ns(), Ordering::Relaxed);
    }

    /// Whether a packet stamped `ns` belongs to the window.
    pub fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start.load(Ordering::Relaxed)
            && ns < self.window_end.load(Ordering::Relaxed)
    }
}

/// What a client sends, and whether it measures delays (load benchmarks).
/// The default is what the tests use.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Publish an Opus and a VP8 track; false: join and only receive.
    pub publish: bool,
    /// Send audio packets (Opus-sized, every 20 ms).
    pub audio: bool,
    /// Send video frames (~30 per second).
    pub video: bool,
    /// Payload bytes of a delta video frame, split into packets of at most
    /// 1100 bytes (key frames are 4 times larger). None: the tests' small
    /// frames (one packet; key frames three).
    pub video_frame_bytes: Option<usize>,
    /// A key frame every this many video frames.
    pub keyframe_every: u64,
    /// Stamp payloads with the send time and record delays on receipt.
    pub clock: Option<Arc<MediaClock>>,
    /// Publish the video as three simulcast layers, as Chromium does: one
    /// encoding per RTP stream id of [`SIMULCAST_RIDS`] (`q`, `h`, `f`:
    /// ¼, ½ and all of the frame bytes, key frames announcing ¼, ½ and the
    /// full dimensions), each on its own SSRC ([`SIMULCAST_SSRCS`]) that
    /// the SDP does not declare (`a=rid:… send`, `a=simulcast:send q;h;f`);
    /// the first packets of each layer carry the `mid` and `rtp-stream-id`
    /// header extensions. The client keeps only the layers the server's
    /// `layers_wanted` names (the lowest always) and starts a resumed layer
    /// with a key frame.
    pub simulcast: bool,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            publish: true,
            audio: true,
            video: true,
            video_frame_bytes: None,
            keyframe_every: KEYFRAME_EVERY,
            clock: None,
            simulcast: false,
        }
    }
}

/// Commands from the handle to the client's task.
enum Cmd {
    Leave(oneshot::Sender<anyhow::Result<()>>),
    /// Drops the WebSocket abruptly (no close frame, no `leave`); the peer
    /// connections go on.
    DropWs(oneshot::Sender<()>),
    /// A new WebSocket: `hello`, then `resume` with the latest token and the
    /// count of messages received. Answers the `resumed` or `error` message.
    Resume {
        url: String,
        meeting_id: Option<String>,
        reply: oneshot::Sender<anyhow::Result<Value>>,
    },
    /// Moves both connections to new UDP sockets on `ip` (the old ones are
    /// closed, as when a network goes away) and restarts ICE: the publisher
    /// re-offers with new credentials, the server is asked (`ice_restart`)
    /// for a subscriber offer with new ones.
    MoveTo(IpAddr, oneshot::Sender<anyhow::Result<()>>),
    /// Sends a request (it gets the next `id`); an `error` answer goes to
    /// [`ClientState::errors`].
    Send(Value),
}

/// A test participant. Dropping it stops its task abruptly (sockets closed,
/// no `leave` sent), like a browser tab that was killed.
pub struct TestClient {
    participant_id: String,
    state: Arc<Mutex<ClientState>>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestClient {
    /// Connects to `ws_url`, joins with `token`, publishes one Opus and one
    /// VP8 track and returns once the server answered the publish offer.
    pub async fn join(ws_url: &str, token: &str) -> anyhow::Result<TestClient> {
        Self::join_with(ws_url, token, JoinOptions::default()).await
    }

    /// As [`TestClient::join`], with options (ICE-TCP instead of UDP).
    pub async fn join_with(
        ws_url: &str,
        token: &str,
        options: JoinOptions,
    ) -> anyhow::Result<TestClient> {
        Self::join_media(ws_url, token, options, MediaOptions::default()).await
    }

    /// As [`TestClient::join_with`], choosing what the client sends. A client
    /// that does not publish returns as soon as it has joined.
    pub async fn join_media(
        ws_url: &str,
        token: &str,
        options: JoinOptions,
        media: MediaOptions,
    ) -> anyhow::Result<TestClient> {
        Self::join_repair(ws_url, token, options, media, RepairOptions::default()).await
    }

    /// As [`TestClient::join_media`], dropping packets on purpose, offering
    /// RTX or RED, answering key frame requests ([`RepairOptions`]).
    pub async fn join_repair(
        ws_url: &str,
        token: &str,
        options: JoinOptions,
        media: MediaOptions,
        repair: RepairOptions,
    ) -> anyhow::Result<TestClient> {
        let started = Instant::now();
        let state = Arc::new(Mutex::new(ClientState::default()));
        let (ws, participant_id) = handshake(ws_url, token, &state, options.slots).await?;
        Self::start(
            ws,
            participant_id,
            started,
            state,
            options,
            media,
            repair,
            LOOPBACK,
        )
        .await
    }

    /// Runs a client over signaling that is already joined as
    /// `participant_id` (no `hello`/`join` is sent): `signal` is usually an
    /// adapter to another server's API (see [`Signal::Channel`]). As
    /// [`TestClient::join_media`] otherwise: a publisher sends `publish` and
    /// returns once it is answered. Both connections use UDP sockets on
    /// `bind_ip` (another server may not answer 127.0.0.1: Janus does not).
    pub async fn join_signal(
        signal: Signal,
        participant_id: &str,
        bind_ip: IpAddr,
        media: MediaOptions,
    ) -> anyhow::Result<TestClient> {
        let state = Arc::new(Mutex::new(ClientState::default()));
        Self::start(
            signal,
            participant_id.to_owned(),
            Instant::now(),
            state,
            JoinOptions::default(),
            media,
            RepairOptions::default(),
            bind_ip,
        )
        .await
    }

    /// The joined client's task: publisher connection, publish offer, run.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        mut ws: Ws,
        participant_id: String,
        started: Instant,
        state: Arc<Mutex<ClientState>>,
        options: JoinOptions,
        media: MediaOptions,
        repair: RepairOptions,
        bind_ip: IpAddr,
    ) -> anyhow::Result<TestClient> {
        lock(&state).participant_id = participant_id.clone();
        if media.simulcast {
            lock(&state).layers_active = SIMULCAST_RIDS.iter().map(|r| (*r).to_owned()).collect();
        }

        let mut publisher = Peer::publisher_on(
            &participant_id,
            options.transport,
            &repair,
            bind_ip,
            media.simulcast,
        )
        .await?;
        publisher.drop_every = repair.drop_out_every;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();

        let mut driver = Driver {
            participant_id: participant_id.clone(),
            started,
            state: state.clone(),
            next_id: 10,
            pending: HashMap::new(),
            publisher,
            subscriber: None,
            ready: Some(ready_tx),
            transport: options.transport,
            audio: SendState::default(),
            video: SendState::default(),
            layers: if media.simulcast {
                LayerSend::all()
            } else {
                Vec::new()
            },
            sub_tracks: HashMap::new(),
            slot_owner: HashMap::new(),
            slot_previous: HashMap::new(),
            slot_early: Vec::new(),
            media,
            last_rx_ns: 0,
            repair,
            last_audio: None,
            bind_ip,
        };
        // The publish offer goes out before the task starts, so a failure here
        // is the caller's error.
        if driver.media.publish {
            driver.send_publish(&mut ws).await?;
        } else if let Some(ready) = driver.ready.take() {
            let _ = ready.send(Ok(()));
        }
        let task = tokio::spawn(async move {
            if let Err(e) = driver.run(ws, cmd_rx).await {
                let mut st = lock(&driver.state);
                st.errors.push(format!("client task ended: {e:#}"));
                st.closed = true;
            }
            if let Some(ready) = driver.ready.take() {
                let _ = ready.send(Err(anyhow!("client task ended before publish_answer")));
            }
        });
        let client = TestClient {
            participant_id,
            state,
            cmd_tx,
            task,
        };
        match tokio::time::timeout(STEP_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(client),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => bail!("client task ended before publish_answer"),
            Err(_) => bail!("no publish_answer within {STEP_TIMEOUT:?}"),
        }
    }

    /// Says hello, joins, sends a real `publish` offer and then vanishes at
    /// once: the WebSocket and the UDP socket are dropped without `leave`,
    /// before the answer is read. Returns the participant id it had.
    pub async fn publish_and_vanish(ws_url: &str, token: &str) -> anyhow::Result<String> {
        let state = Arc::new(Mutex::new(ClientState::default()));
        let (mut ws, participant_id) = handshake(ws_url, token, &state, false).await?;
        let mut publisher = Peer::publisher(&participant_id, Transport::Udp).await?;
        let offer = publisher.create_offer()?;
        send_json(&mut ws, &json!({"type": "publish", "id": 2, "sdp": offer})).await?;
        send_json(
            &mut ws,
            &json!({"type": "candidate", "pc": "publisher", "candidate": publisher.candidate_json()}),
        )
        .await?;
        drop(publisher);
        drop(ws);
        Ok(participant_id)
    }

    /// This client's participant id.
    pub fn participant_id(&self) -> &str {
        &self.participant_id
    }

    /// A view of what the client recorded so far.
    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        lock(&self.state)
    }

    /// Media received from `participant_id` of `kind`.
    pub fn received(&self, participant_id: &str, kind: Kind) -> MediaStats {
        self.state().received(participant_id, kind)
    }

    /// Every (transport, address) a datagram came from, on both connections.
    pub fn remote_addrs(&self) -> BTreeSet<RemoteAddr> {
        self.state().remote_addrs.clone()
    }

    /// Waits until `cond` holds on the recorded state, or fails after
    /// `timeout` with `what` and a summary of the state.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&ClientState) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(&self.state()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what}; state: {}",
                    self.participant_id,
                    self.summary()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A one-paragraph summary of the recorded state, for failure messages.
    pub fn summary(&self) -> String {
        let st = self.state();
        let mut out = String::new();
        for ((p, k), m) in &st.media {
            out.push_str(&format!(
                "[{p} {k:?}: {} pkts, {} intact, {} corrupted, {} misattributed, {} keyframes, first after {:?}] ",
                m.packets, m.intact, m.corrupted, m.misattributed, m.keyframes, m.first_after
            ));
        }
        out.push_str(&format!(
            "sent {:?}; states {:?}; offers answered {}; errors {:?}; events {}",
            st.sent,
            st.connection_states,
            st.subscriber_offers,
            st.errors,
            st.events
                .iter()
                .filter_map(|e| e.get("type").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        ));
        out
    }

    /// Sends `leave` and waits for `bye` (or the socket closing), then closes
    /// both connections. The recorded state stays readable.
    pub async fn leave(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Cmd::Leave(tx))
            .map_err(|_| anyhow!("client task already ended"))?;
        match tokio::time::timeout(STEP_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => bail!("client task ended during leave"),
            Err(_) => bail!("no bye within {STEP_TIMEOUT:?}"),
        }
    }

    /// Stamps this RFC 6464 audio level (0 loudest .. 127 silence) on the
    /// client's audio packets from now on; `None`: no level at all.
    pub fn set_audio_level(&self, level: Option<u8>) {
        self.state().audio_level_out = level;
    }

    /// Sends a request of `docs/protocol.md` (an object with its `type`;
    /// the client adds the `id`). Returns once it is queued; an `error`
    /// answer goes to [`ClientState::errors`].
    pub fn send(&self, request: Value) -> anyhow::Result<()> {
        self.cmd_tx
            .send(Cmd::Send(request))
            .map_err(|_| anyhow!("client task already ended"))
    }

    /// Asks for a quality (`high`, `medium`, `low`, `off`) of another
    /// participant's video track (`set_quality`).
    pub fn set_quality(&self, track_id: &str, quality: &str) -> anyhow::Result<()> {
        self.send(json!({"type": "set_quality", "track_id": track_id, "quality": quality}))
    }

    /// [`set_quality`](Self::set_quality) for many tracks in one message
    /// (`track_ids`); the `ok` answer (in the events) names the tracks the
    /// server did not know in `unknown_track_ids`.
    pub fn set_qualities(&self, track_ids: &[&str], quality: &str) -> anyhow::Result<()> {
        self.send(json!({"type": "set_quality", "track_ids": track_ids, "quality": quality}))
    }

    /// Drops the WebSocket abruptly (as a network change does); media goes on.
    pub async fn drop_ws(&self) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Cmd::DropWs(tx))
            .map_err(|_| anyhow!("client task already ended"))?;
        rx.await.map_err(|_| anyhow!("client task ended"))
    }

    /// Resumes the session on a new WebSocket to `ws_url`; returns the
    /// server's answer (`resumed`, or an `error`).
    pub async fn resume(&self, ws_url: &str, meeting_id: Option<&str>) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Cmd::Resume {
                url: ws_url.to_owned(),
                meeting_id: meeting_id.map(str::to_owned),
                reply: tx,
            })
            .map_err(|_| anyhow!("client task already ended"))?;
        match tokio::time::timeout(STEP_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => bail!("client task ended during resume"),
            Err(_) => bail!("no answer to resume within {STEP_TIMEOUT:?}"),
        }
    }

    /// Moves the client's media to new UDP sockets on `ip` and restarts ICE
    /// on both connections (returns once the requests are sent).
    pub async fn move_to(&self, ip: IpAddr) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Cmd::MoveTo(ip, tx))
            .map_err(|_| anyhow!("client task already ended"))?;
        match tokio::time::timeout(STEP_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => bail!("client task ended during the move"),
            Err(_) => bail!("the move did not finish within {STEP_TIMEOUT:?}"),
        }
    }

    /// Stops the client abruptly: no `leave`, sockets dropped.
    pub fn vanish(self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<ClientState>) -> MutexGuard<'_, ClientState> {
    // A poisoned lock only means a test thread panicked while reading; the
    // data is still what was recorded.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

async fn send_json(ws: &mut Ws, v: &Value) -> anyhow::Result<()> {
    ws.send(Message::text(v.to_string()))
        .await
        .context("websocket send")
}

/// Reads the next JSON text message (skipping pings and binary frames).
async fn recv_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let msg = tokio::time::timeout(STEP_TIMEOUT, ws.next())
            .await
            .map_err(|_| anyhow!("no message from the server within {STEP_TIMEOUT:?}"))?;
        match msg {
            None => bail!("the server closed the websocket"),
            Some(Err(e)) => bail!("websocket: {e}"),
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).context("server sent bad JSON")
            }
            Some(Ok(Message::Close(f))) => bail!("the server closed the websocket: {f:?}"),
            Some(Ok(_)) => continue,
        }
    }
}

/// hello, join; returns the socket and the participant id.
async fn handshake(
    ws_url: &str,
    token: &str,
    state: &Mutex<ClientState>,
    slots: bool,
) -> anyhow::Result<(Ws, String)> {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .with_context(|| format!("connect {ws_url}"))?;
    let mut ws = Signal::Ws(Box::new(ws));
    send_json(
        &mut ws,
        &json!({"type": "hello", "version": 1, "client": "giaoban-tests/rtc"}),
    )
    .await?;
    let hello = recv_json(&mut ws).await?;
    if hello.get("type").and_then(Value::as_str) != Some("hello") {
        bail!("expected hello, got {hello}");
    }
    let mut join = json!({"type": "join", "id": 1, "token": token});
    if slots {
        join["receive"] = json!("slots");
    }
    send_json(&mut ws, &join).await?;
    loop {
        let msg = recv_json(&mut ws).await?;
        match msg.get("type").and_then(Value::as_str) {
            Some("joined") => {
                let id = msg
                    .pointer("/participant/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("joined without participant.id: {msg}"))?
                    .to_owned();
                let mut st = lock(state);
                st.resume_token = msg
                    .get("resume_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(tracks) = msg.get("tracks").and_then(Value::as_array) {
                    for t in tracks {
                        note_track(&mut st, t);
                    }
                }
                st.events.push(msg);
                return Ok((ws, id));
            }
            Some("error") => bail!("join failed: {msg}"),
            _ => lock(state).events.push(msg),
        }
    }
}

fn note_track(st: &mut ClientState, t: &Value) {
    let (Some(tid), Some(pid), Some(kind)) = (
        t.get("track_id").and_then(Value::as_str),
        t.get("participant_id").and_then(Value::as_str),
        t.get("kind").and_then(Value::as_str).and_then(Kind::parse),
    ) else {
        st.errors.push(format!("malformed track: {t}"));
        return;
    };
    st.published_tracks
        .insert(tid.to_owned(), (pid.to_owned(), kind));
}

/// How a connection reaches the server.
enum Link {
    /// Its own UDP socket.
    Udp(UdpSocket),
    /// ICE-TCP, active: one TCP connection to the server's passive
    /// candidate (found in the server's SDP), RFC 4571 framing.
    Tcp {
        stream: Option<TcpStream>,
        decoder: TcpFrameDecoder,
    },
}

/// What one read of a connection's link gave.
enum Received {
    Datagram(usize, SocketAddr),
    Stream(usize),
    Closed,
}

/// One peer connection with its own socket.
struct Peer {
    pc: RTCPeerConnection,
    link: Link,
    /// The local address of the link (for TCP: of the connection, once made).
    local_addr: SocketAddr,
    which: Pc,
    /// The host candidate (its `candidate:` line).
    candidate_line: String,
    connected: bool,
    /// ICE is connected (DTLS can be read).
    ice_connected: bool,
    /// DTLS datagrams that arrived before ICE was connected (the stack
    /// refuses them then); replayed once it is, as browsers do.
    early_dtls: Vec<TaggedBytesMut>,
    /// Datagrams sent so far (the first few go into the timeline).
    sent_out: u64,
    buf: Vec<u8>,
    /// After a move to a new socket: its host candidate, added to the
    /// connection once its ICE restart has dropped the old ones.
    moved_candidate: Option<rtc::peer_connection::transport::RTCIceCandidateInit>,
    /// Drop every n-th video datagram on its first transmission (0: none):
    /// outgoing on a publisher, incoming on a subscriber.
    drop_every: u64,
    /// Video datagrams counted for `drop_every`.
    drop_count: u64,
}

impl Peer {
    /// A connection with its own link. `keyframe_tap`: hand the server's
    /// PLI/FIR to the application ([`KeyframeTap`]); `ip`: where a UDP
    /// socket binds (127.0.0.1 for giaoban).
    async fn bind_on(
        which: Pc,
        media_engine: MediaEngine,
        transport: Transport,
        keyframe_tap: bool,
        ip: IpAddr,
    ) -> anyhow::Result<Peer> {
        let (link, local_addr, network, tcp_type, settings) = match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
                let local_addr = socket.local_addr()?;
                (
                    Link::Udp(socket),
                    local_addr,
                    "udp",
                    TcpType::Unspecified,
                    // An ICE restart after a move forgets the old socket's
                    // candidate (see `Peer::rebind`).
                    SettingEngineBuilder::new()
                        .with_discard_local_candidates_during_ice_restart(true)
                        .build(),
                )
            }
            Transport::Tcp => (
                Link::Tcp {
                    stream: None,
                    decoder: TcpFrameDecoder::new(),
                },
                // An active candidate listens nowhere: port 9 by convention.
                SocketAddr::from(([127, 0, 0, 1], 9)),
                "tcp",
                TcpType::Active,
                SettingEngineBuilder::new()
                    .with_network_types(vec![NetworkType::Tcp4])
                    .build(),
            ),
        };
        let mut media_engine = media_engine;
        let mut registry = Registry::new();
        if keyframe_tap {
            registry = registry.with(Slot::Custom(1), KeyframeTap::default());
        }
        if which == Pc::Subscriber {
            // Before the NACK generator (7_000), as in the server.
            registry = registry.with(Slot::from(6_500), RtxUnwrap::default());
        }
        let registry = browser_like_interceptors(registry, &mut media_engine)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_setting_engine(settings)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(Instant::now())?;
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: network.to_owned(),
                address: local_addr.ip().to_string(),
                port: local_addr.port(),
                component: 1,
                ..Default::default()
            },
            tcp_type,
        }
        .new_candidate_host()?;
        let init = RTCIceCandidate::from(&candidate).to_json()?;
        let candidate_line = init.candidate.clone();
        pc.add_local_candidate(init)?;
        Ok(Peer {
            pc,
            link,
            local_addr,
            which,
            candidate_line,
            connected: false,
            ice_connected: false,
            early_dtls: Vec::new(),
            sent_out: 0,
            buf: vec![0; 2048],
            moved_candidate: None,
            drop_every: 0,
            drop_count: 0,
        })
    }

    /// The publisher: Opus + VP8 registered, one sendonly track of each.
    async fn publisher(participant_id: &str, transport: Transport) -> anyhow::Result<Peer> {
        Peer::publisher_with(participant_id, transport, &RepairOptions::default()).await
    }

    /// As [`Peer::publisher`], with RTX, RED, another Opus fmtp, or the key
    /// frame tap as `repair` asks.
    async fn publisher_with(
        participant_id: &str,
        transport: Transport,
        repair: &RepairOptions,
    ) -> anyhow::Result<Peer> {
        Peer::publisher_on(participant_id, transport, repair, LOOPBACK, false).await
    }

    /// As [`Peer::publisher_with`], a UDP socket on `ip`; with `simulcast`
    /// the video track has three encodings (see [`MediaOptions::simulcast`]).
    async fn publisher_on(
        participant_id: &str,
        transport: Transport,
        repair: &RepairOptions,
        ip: IpAddr,
        simulcast: bool,
    ) -> anyhow::Result<Peer> {
        let mut opus = opus_codec();
        if let Some(fmtp) = &repair.opus_fmtp {
            opus.rtp_codec.sdp_fmtp_line = fmtp.clone();
        }
        let mut me = MediaEngine::default();
        if repair.publisher_red {
            // RED first, as a browser offers it when its page prefers RED.
            me.register_codec(red_codec(), RtpCodecKind::Audio)?;
        }
        me.register_codec(opus.clone(), RtpCodecKind::Audio)?;
        me.register_codec(vp8_codec(), RtpCodecKind::Video)?;
        // Offered always, stamped only once a level is set.
        me.register_header_extension(
            rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        if repair.publisher_rtx {
            me.register_codec(rtx_codec(97, 96), RtpCodecKind::Video)?;
        }
        if simulcast {
            // What Chromium offers for a simulcast camera: mid, rid and
            // repaired rid (the last unused here: no RTX with simulcast).
            rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers(&mut me)?;
        }
        let mut peer = Peer::bind_on(
            Pc::Publisher,
            me,
            transport,
            repair.answer_keyframe_requests,
            ip,
        )
        .await?;
        for (kind, ssrc, codec) in [
            (RtpCodecKind::Audio, AUDIO_SSRC, opus),
            (RtpCodecKind::Video, VIDEO_SSRC, vp8_codec()),
        ] {
            let name = if kind == RtpCodecKind::Audio {
                "audio"
            } else {
                "video"
            };
            let encodings = if simulcast && kind == RtpCodecKind::Video {
                // One encoding per layer, lowest first (Chromium's order).
                SIMULCAST_RIDS
                    .iter()
                    .zip(SIMULCAST_SSRCS)
                    .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            rid: (*rid).to_owned(),
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec: codec.rtp_codec.clone(),
                        ..Default::default()
                    })
                    .collect()
            } else {
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.rtp_codec.clone(),
                    ..Default::default()
                }]
            };
            let track = MediaStreamTrack::new(
                participant_id.to_owned(),
                format!("{participant_id}-{name}"),
                format!("{name} of {participant_id}"),
                kind,
                encodings,
            );
            peer.pc.add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![participant_id.to_owned()],
                    send_encodings: vec![],
                }),
            )?;
        }
        Ok(peer)
    }

    /// The subscriber: receives whatever the server offers of the default
    /// codecs (and `audio/red` if `repair` says so); drops video on arrival
    /// as `repair` says.
    async fn subscriber_with(
        transport: Transport,
        repair: &RepairOptions,
        ip: IpAddr,
    ) -> anyhow::Result<Peer> {
        let mut me = MediaEngine::default();
        me.register_default_codecs()?;
        if repair.subscriber_red {
            me.register_codec(red_codec(), RtpCodecKind::Audio)?;
        }
        let mut peer = Peer::bind_on(Pc::Subscriber, me, transport, false, ip).await?;
        peer.drop_every = repair.drop_in_every;
        Ok(peer)
    }

    fn create_offer(&mut self) -> anyhow::Result<String> {
        let offer = self.pc.create_offer(None)?;
        self.pc
            .set_local_description(Instant::now(), offer.clone())?;
        Ok(self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .unwrap_or(offer.sdp))
    }

    /// Moves a UDP connection to a new socket on `ip`: the old socket is
    /// closed; the new host candidate is kept for after the ICE restart.
    async fn rebind(&mut self, ip: IpAddr) -> anyhow::Result<()> {
        let Link::Udp(_) = &self.link else {
            bail!("only a UDP connection can move");
        };
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("bind {ip}"))?;
        self.local_addr = socket.local_addr()?;
        self.link = Link::Udp(socket);
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.local_addr.ip().to_string(),
                port: self.local_addr.port(),
                component: 1,
                ..Default::default()
            },
            tcp_type: TcpType::Unspecified,
        }
        .new_candidate_host()?;
        let init = RTCIceCandidate::from(&candidate).to_json()?;
        self.candidate_line = init.candidate.clone();
        self.moved_candidate = Some(init);
        self.ice_connected = false;
        self.early_dtls.clear();
        Ok(())
    }

    /// Adds the moved socket's candidate (after the restart was applied).
    fn add_moved_candidate(&mut self) -> anyhow::Result<bool> {
        match self.moved_candidate.take() {
            Some(init) => {
                self.pc.add_local_candidate(init)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn local_ufrag(&self) -> Option<String> {
        let sdp = self.pc.local_description()?.sdp;
        sdp.lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(str::to_owned))
    }

    /// The host candidate as the protocol's `candidate` object.
    fn candidate_json(&self) -> Value {
        json!({
            "candidate": self.candidate_line,
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": self.local_ufrag(),
        })
    }

    fn transport(&self, peer_addr: SocketAddr) -> TransportContext {
        TransportContext {
            local_addr: self.local_addr,
            peer_addr,
            ecn: None,
            transport_protocol: match self.link {
                Link::Udp(_) => TransportProtocol::UDP,
                Link::Tcp { .. } => TransportProtocol::TCP,
            },
        }
    }

    /// For ICE-TCP: connects to the server's passive TCP candidate in
    /// `remote_sdp`, once.
    async fn connect_tcp(&mut self, remote_sdp: &str) -> anyhow::Result<()> {
        let Link::Tcp { stream, .. } = &mut self.link else {
            return Ok(());
        };
        if stream.is_some() {
            return Ok(());
        }
        let target = tcp_passive_candidate(remote_sdp)
            .ok_or_else(|| anyhow!("no passive TCP candidate in the server's SDP"))?;
        let s = TcpStream::connect(target)
            .await
            .with_context(|| format!("ICE-TCP connect to {target}"))?;
        s.set_nodelay(true)?;
        self.local_addr = s.local_addr()?;
        *stream = Some(s);
        Ok(())
    }

    /// Waits for the next datagram (UDP) or bytes (TCP).
    async fn recv(&mut self) -> std::io::Result<Received> {
        match &mut self.link {
            Link::Udp(socket) => {
                let (n, from) = socket.recv_from(&mut self.buf).await?;
                Ok(Received::Datagram(n, from))
            }
            Link::Tcp {
                stream: Some(stream),
                ..
            } => {
                let n = stream.read(&mut self.buf).await?;
                Ok(if n == 0 {
                    Received::Closed
                } else {
                    Received::Stream(n)
                })
            }
            Link::Tcp { stream: None, .. } => std::future::pending().await,
        }
    }

    /// Sends everything the connection has queued.
    async fn flush(&mut self, state: &Mutex<ClientState>, started: Instant) {
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(out) = self.pc.poll_write() {
            if self.which == Pc::Publisher && drop_on_departure(self, state, &out.message) {
                continue;
            }
            count += 1;
            bytes += out.message.len() as u64;
            if self.sent_out < TIMELINE_DATAGRAMS {
                self.sent_out += 1;
                let what = classify(out.message.first().copied());
                lock(state).timeline.push((
                    started.elapsed(),
                    format!(
                        "{} sent {what} ({} bytes) to {}",
                        self.which.as_str(),
                        out.message.len(),
                        out.transport.peer_addr
                    ),
                ));
            }
            // A send error (e.g. the server's port closed) is like a lost datagram.
            match &mut self.link {
                Link::Udp(socket) => {
                    let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
                }
                Link::Tcp {
                    stream: Some(stream),
                    ..
                } => {
                    let _ = stream.write_all(&frame_packet(&out.message)).await;
                }
                Link::Tcp { stream: None, .. } => {}
            }
        }
        if count > 0 {
            let mut st = lock(state);
            *st.datagrams_out.entry(self.which).or_default() += count;
            *st.datagram_bytes_out.entry(self.which).or_default() += bytes;
        }
    }
}

fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// RED (RFC 2198) around Opus at 111, as browsers offer it.
fn red_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/red".to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "111/111".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 63,
    }
}

/// RTX (RFC 4588) for the video payload type `apt`.
fn rtx_codec(pt: u8, apt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/rtx".to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: format!("apt={apt}"),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

fn vp8_codec() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")],
        },
        payload_type: 96,
    }
}

/// Sending state of one outgoing track.
#[derive(Default)]
struct SendState {
    sender: Option<RTCRtpSenderId>,
    payload_type: Option<u8>,
    seq: u16,
    timestamp: u32,
    /// Packet counter embedded in payloads.
    counter: u32,
    /// Video: frames sent.
    frames: u64,
    /// Video: a key frame was asked for (PLI/FIR).
    keyframe_asked: bool,
    /// Audio: the negotiated id of the audio-level header extension.
    level_ext: Option<u8>,
    /// Video with simulcast: the negotiated ids of the `mid` and
    /// `rtp-stream-id` header extensions, and the section's mid.
    mid_ext: Option<u8>,
    rid_ext: Option<u8>,
    mid: Option<String>,
}

/// Sending state of one simulcast layer.
struct LayerSend {
    /// Its RTP stream id and SSRC.
    rid: &'static str,
    ssrc: u32,
    /// 1 = `q`, 2 = `h`, 3 = `f` (carried in the payload counter).
    layer: u8,
    seq: u16,
    timestamp: u32,
    /// Packet counter of this layer (without the layer bits).
    counter: u32,
    /// The server wants it (`layers_wanted`); the lowest always runs.
    active: bool,
    /// A key frame was asked for (PLI/FIR on its SSRC, or resumed).
    keyframe_asked: bool,
    /// Packets sent with the `mid`/`rtp-stream-id` extensions.
    tagged: u64,
}

impl LayerSend {
    fn all() -> Vec<LayerSend> {
        SIMULCAST_RIDS
            .iter()
            .zip(SIMULCAST_SSRCS)
            .enumerate()
            .map(|(i, (rid, ssrc))| LayerSend {
                rid,
                ssrc,
                layer: i as u8 + 1,
                seq: (i as u16) << 12,
                // Each layer has its own timestamp base, as in Chromium.
                timestamp: (i as u32) << 28,
                counter: 0,
                active: true,
                keyframe_asked: false,
                tagged: 0,
            })
            .collect()
    }
}

/// What a request sent with an `id` was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Publish,
    SubscriberAnswer,
    Ping,
    IceRestart,
    Request,
}

/// The client's task: owns the sockets and the connections.
struct Driver {
    participant_id: String,
    started: Instant,
    state: Arc<Mutex<ClientState>>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    publisher: Peer,
    subscriber: Option<Peer>,
    /// How both connections reach the server.
    transport: Transport,
    /// Resolves `join` once the publish offer is answered.
    ready: Option<oneshot::Sender<anyhow::Result<()>>>,
    audio: SendState,
    video: SendState,
    /// With simulcast: the video layers (empty without).
    layers: Vec<LayerSend>,
    /// Subscriber tracks from the server's offers (msid): track id ->
    /// (participant id, kind).
    sub_tracks: HashMap<String, (String, Kind)>,
    /// Receiving in slots: the participant each slot carries now, from the
    /// latest `slots` message.
    slot_owner: HashMap<String, String>,
    /// Receiving in slots: each slot's previous occupant and when the
    /// `slots` message that replaced it came (see [`SLOT_GRACE`]).
    slot_previous: HashMap<String, (String, Instant)>,
    /// Receiving in slots: packets on a slot whose payload names neither
    /// its occupant nor its previous one: (slot, sender, kind, when). The
    /// next `slots` message that gives the slot to that sender within
    /// [`SLOT_GRACE`] clears them (the occupant's media came first);
    /// otherwise they count as misattributed once [`SLOT_GRACE`] is over.
    slot_early: Vec<(String, String, Kind, Instant)>,
    /// What to send, and the delay clock.
    media: MediaOptions,
    /// With a clock: when the latest datagram was read ([`MediaClock::now_ns`]).
    last_rx_ns: u64,
    /// Loss dropped on purpose, RTX, RED, key frame requests.
    repair: RepairOptions,
    /// The previous audio payload (the redundant block of the next RED packet).
    /// The address both connections' UDP sockets bind (127.0.0.1 unless
    /// [`TestClient::join_signal`] says otherwise).
    bind_ip: IpAddr,
    last_audio: Option<Vec<u8>>,
}

enum Input {
    Ws(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Udp(Pc, std::io::Result<Received>),
    Cmd(Option<Cmd>),
    Timer,
    Audio,
    Video,
    Ping,
}

async fn recv_opt(peer: Option<&mut Peer>) -> (Pc, std::io::Result<Received>) {
    match peer {
        Some(p) => {
            let r = p.recv().await;
            (p.which, r)
        }
        None => std::future::pending().await,
    }
}

impl Driver {
    fn id(&mut self, what: Pending) -> u64 {
        self.next_id += 1;
        self.pending.insert(self.next_id, what);
        self.next_id
    }

    fn record_error(&self, e: impl std::fmt::Display) {
        lock(&self.state).errors.push(e.to_string());
    }

    /// A new socket: hello, then resume; returns it with the answer.
    async fn resume(&mut self, url: &str, meeting_id: Option<&str>) -> anyhow::Result<(Ws, Value)> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connect {url}"))?;
        let mut ws = Signal::Ws(Box::new(ws));
        send_json(
            &mut ws,
            &json!({"type": "hello", "version": 1, "client": "giaoban-tests/rtc"}),
        )
        .await?;
        let hello = recv_json(&mut ws).await?;
        if hello.get("type").and_then(Value::as_str) != Some("hello") {
            bail!("expected hello, got {hello}");
        }
        let (token, received) = {
            let st = lock(&self.state);
            (st.resume_token.clone().unwrap_or_default(), st.received)
        };
        let mut req =
            json!({"type": "resume", "id": 1, "resume_token": token, "received": received});
        if let Some(m) = meeting_id {
            req["meeting_id"] = json!(m);
        }
        send_json(&mut ws, &req).await?;
        let answer = recv_json(&mut ws).await?;
        let mut st = lock(&self.state);
        st.timeline.push((
            self.started.elapsed(),
            format!("resume answered {}", answer["type"]),
        ));
        if answer.get("type").and_then(Value::as_str) == Some("resumed") {
            st.resume_token = answer
                .get("resume_token")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        drop(st);
        Ok((ws, answer))
    }

    /// Moves both connections to new sockets on `ip` and restarts ICE.
    async fn move_to(&mut self, ws: &mut Ws, ip: IpAddr) -> anyhow::Result<()> {
        self.publisher.rebind(ip).await?;
        if let Some(sub) = self.subscriber.as_mut() {
            sub.rebind(ip).await?;
        }
        lock(&self.state)
            .timeline
            .push((self.started.elapsed(), format!("moved to {ip}")));
        // Publisher: a new offer with new ICE credentials.
        self.publisher.pc.restart_ice();
        let sdp = self.publisher.create_offer()?;
        self.publisher.add_moved_candidate()?;
        let id = self.id(Pending::Publish);
        send_json(ws, &json!({"type": "publish", "id": id, "sdp": sdp})).await?;
        let cand = self.publisher.candidate_json();
        send_json(
            ws,
            &json!({"type": "candidate", "pc": "publisher", "candidate": cand}),
        )
        .await?;
        // Subscriber: the server offers new credentials.
        if self.subscriber.is_some() {
            let id = self.id(Pending::IceRestart);
            send_json(ws, &json!({"type": "ice_restart", "id": id})).await?;
        }
        Ok(())
    }

    async fn send_publish(&mut self, ws: &mut Ws) -> anyhow::Result<()> {
        let sdp = self.publisher.create_offer()?;
        let id = self.id(Pending::Publish);
        send_json(ws, &json!({"type": "publish", "id": id, "sdp": sdp})).await?;
        let cand = self.publisher.candidate_json();
        send_json(
            ws,
            &json!({"type": "candidate", "pc": "publisher", "candidate": cand}),
        )
        .await
    }

    async fn run(
        &mut self,
        ws: Ws,
        mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    ) -> anyhow::Result<()> {
        // None between a dropped socket and a resume.
        let mut ws = Some(ws);
        let mut audio_tick = tokio::time::interval(AUDIO_INTERVAL);
        audio_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut video_tick = tokio::time::interval(VIDEO_INTERVAL);
        video_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ping_tick = tokio::time::interval(Duration::from_secs(10));
        let mut leaving: Option<oneshot::Sender<anyhow::Result<()>>> = None;
        loop {
            self.drive().await;
            let deadline = [
                self.publisher.pc.poll_timeout(),
                self.subscriber.as_mut().and_then(|s| s.pc.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            let publisher = &mut self.publisher;
            let subscriber = self.subscriber.as_mut();
            let ws_next = async {
                match ws.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                m = ws_next => Input::Ws(m),
                r = publisher.recv() => Input::Udp(Pc::Publisher, r),
                (pc, r) = recv_opt(subscriber) => Input::Udp(pc, r),
                c = cmd_rx.recv(), if leaving.is_none() => Input::Cmd(c),
                _ = sleep => Input::Timer,
                _ = audio_tick.tick() => Input::Audio,
                _ = video_tick.tick() => Input::Video,
                _ = ping_tick.tick() => Input::Ping,
            };
            match input {
                Input::Ws(None)
                | Input::Ws(Some(Err(_)))
                | Input::Ws(Some(Ok(Message::Close(_)))) => {
                    lock(&self.state).closed = true;
                    if let Some(l) = leaving.take() {
                        let _ = l.send(Ok(()));
                    } else {
                        self.record_error("the server closed the websocket");
                    }
                    break;
                }
                Input::Ws(Some(Ok(Message::Text(t)))) => {
                    lock(&self.state).received += 1;
                    let Some(w) = ws.as_mut() else { continue };
                    match serde_json::from_str::<Value>(t.as_str()) {
                        Ok(v) => {
                            let bye = v.get("type").and_then(Value::as_str) == Some("bye");
                            if let Err(e) = self.on_server(w, v).await {
                                self.record_error(format!("{e:#}"));
                            }
                            if bye {
                                lock(&self.state).closed = true;
                                if let Some(l) = leaving.take() {
                                    let _ = l.send(Ok(()));
                                }
                                break;
                            }
                        }
                        Err(e) => self.record_error(format!("server sent bad JSON: {e}")),
                    }
                }
                Input::Ws(Some(Ok(_))) => {}
                Input::Udp(pc, Ok(r)) => self.on_received(pc, r),
                Input::Udp(pc, Err(e)) => {
                    // ICMP port unreachable shows up as a recv error on some
                    // systems: not fatal.
                    tracing::debug!("{}: udp recv on {}: {e}", self.participant_id, pc.as_str());
                }
                Input::Cmd(Some(Cmd::Leave(reply))) => {
                    let Some(w) = ws.as_mut() else {
                        let _ = reply.send(Err(anyhow!("no WebSocket to leave on")));
                        continue;
                    };
                    send_json(w, &json!({"type": "leave"})).await?;
                    leaving = Some(reply);
                }
                Input::Cmd(Some(Cmd::DropWs(reply))) => {
                    // Dropped, not closed: the server sees the TCP connection
                    // end without a close frame.
                    drop(ws.take());
                    lock(&self.state)
                        .timeline
                        .push((self.started.elapsed(), "websocket dropped".to_owned()));
                    let _ = reply.send(());
                }
                Input::Cmd(Some(Cmd::Resume {
                    url,
                    meeting_id,
                    reply,
                })) => match self.resume(&url, meeting_id.as_deref()).await {
                    Ok((w, answer)) => {
                        if answer.get("type").and_then(Value::as_str) == Some("resumed") {
                            ws = Some(w);
                        }
                        let _ = reply.send(Ok(answer));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Input::Cmd(Some(Cmd::MoveTo(ip, reply))) => {
                    let r = match ws.as_mut() {
                        Some(w) => self.move_to(w, ip).await,
                        None => Err(anyhow!("no WebSocket to negotiate on")),
                    };
                    let _ = reply.send(r);
                }
                Input::Cmd(Some(Cmd::Send(mut request))) => {
                    let Some(w) = ws.as_mut() else {
                        self.record_error("no WebSocket to send a request on");
                        continue;
                    };
                    request["id"] = json!(self.id(Pending::Request));
                    send_json(w, &request).await?;
                }
                Input::Cmd(None) => break,
                Input::Timer => {}
                Input::Audio => self.send_audio(),
                Input::Video => self.send_video(),
                Input::Ping => {
                    let Some(w) = ws.as_mut() else { continue };
                    let id = self.id(Pending::Ping);
                    let ts = self.started.elapsed().as_millis() as u64;
                    let received = lock(&self.state).received;
                    send_json(
                        w,
                        &json!({"type": "ping", "id": id, "ts": ts, "received": received}),
                    )
                    .await?;
                }
            }
        }
        let _ = self.publisher.pc.close();
        self.publisher.flush(&self.state, self.started).await;
        if let Some(s) = self.subscriber.as_mut() {
            let _ = s.pc.close();
            s.flush(&self.state, self.started).await;
        }
        Ok(())
    }

    /// Lets both connections run: timers, writes, events, reads.
    async fn drive(&mut self) {
        for _ in 0..64 {
            let mut progressed = false;
            let now = Instant::now();
            for which in [Pc::Publisher, Pc::Subscriber] {
                let Some(peer) = (match which {
                    Pc::Publisher => Some(&mut self.publisher),
                    Pc::Subscriber => self.subscriber.as_mut(),
                }) else {
                    continue;
                };
                if peer.pc.poll_timeout().is_some_and(|t| t <= now) {
                    if let Err(e) = peer.pc.handle_timeout(now) {
                        lock(&self.state)
                            .errors
                            .push(format!("{} timeout: {e}", which.as_str()));
                    }
                }
                let mut events = Vec::new();
                while let Some(e) = peer.pc.poll_event() {
                    events.push(e);
                }
                let mut messages = Vec::new();
                while let Some(m) = peer.pc.poll_read() {
                    messages.push(m.message);
                }
                progressed |= !events.is_empty() || !messages.is_empty();
                for e in events {
                    self.on_pc_event(which, e);
                }
                for m in messages {
                    self.on_pc_message(which, m);
                }
            }
            self.publisher.flush(&self.state, self.started).await;
            if let Some(s) = self.subscriber.as_mut() {
                s.flush(&self.state, self.started).await;
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_received(&mut self, which: Pc, r: Received) {
        let peer = match which {
            Pc::Publisher => &mut self.publisher,
            Pc::Subscriber => match self.subscriber.as_mut() {
                Some(s) => s,
                None => return,
            },
        };
        match r {
            Received::Datagram(n, from) => {
                let data = BytesMut::from(&peer.buf[..n.min(peer.buf.len())]);
                self.on_datagram(which, data, from, Transport::Udp);
                // Take what else is already queued on the socket before the
                // connections run (one wake-up for a burst: cheaper under load).
                for _ in 0..UDP_BATCH {
                    let peer = match which {
                        Pc::Publisher => &mut self.publisher,
                        Pc::Subscriber => match self.subscriber.as_mut() {
                            Some(s) => s,
                            None => return,
                        },
                    };
                    let Link::Udp(socket) = &peer.link else {
                        break;
                    };
                    let Ok((n, from)) = socket.try_recv_from(&mut peer.buf) else {
                        break;
                    };
                    let data = BytesMut::from(&peer.buf[..n.min(peer.buf.len())]);
                    self.on_datagram(which, data, from, Transport::Udp);
                }
            }
            Received::Stream(n) => {
                let Link::Tcp { stream, decoder } = &mut peer.link else {
                    return;
                };
                let Some(from) = stream.as_ref().and_then(|s| s.peer_addr().ok()) else {
                    return;
                };
                decoder.extend_from_slice(&peer.buf[..n.min(peer.buf.len())]);
                let mut frames = Vec::new();
                while let Some(f) = decoder.next_packet() {
                    frames.push(f);
                }
                for f in frames {
                    self.on_datagram(which, BytesMut::from(&f[..]), from, Transport::Tcp);
                }
            }
            Received::Closed => {
                if let Link::Tcp { stream, decoder } = &mut peer.link {
                    *stream = None;
                    decoder.clear();
                }
                self.record_error(format!("{}: the server closed ICE-TCP", which.as_str()));
            }
        }
    }

    fn on_datagram(&mut self, which: Pc, data: BytesMut, from: SocketAddr, transport: Transport) {
        let n = data.len();
        if let Some(clock) = &self.media.clock {
            self.last_rx_ns = clock.now_ns();
        }
        let peer = match which {
            Pc::Publisher => &mut self.publisher,
            Pc::Subscriber => match self.subscriber.as_mut() {
                Some(s) => s,
                None => return,
            },
        };
        {
            let mut st = lock(&self.state);
            st.remote_addrs.insert(RemoteAddr {
                transport,
                addr: from,
                pc: which,
            });
            *st.datagram_bytes_in.entry(which).or_default() += n as u64;
            let seen = st.datagrams_in.entry(which).or_default();
            *seen += 1;
            if *seen <= TIMELINE_DATAGRAMS {
                let what = classify(data.first().copied());
                st.timeline.push((
                    self.started.elapsed(),
                    format!("{} got {what} ({n} bytes) from {from}", which.as_str()),
                ));
            }
        }
        let msg = TaggedBytesMut {
            now: Instant::now(),
            transport: peer.transport(from),
            message: data,
        };
        let early = !peer.ice_connected && classify(msg.message.first().copied()) == "DTLS";
        let copy = early.then(|| TaggedBytesMut {
            now: msg.now,
            transport: msg.transport,
            message: msg.message.clone(),
        });
        // The stack silently drops what arrives before ICE has selected a
        // pair: keep early DTLS to replay it then.
        if let Some(m) = copy {
            if peer.early_dtls.len() < 16 {
                peer.early_dtls.push(m);
                lock(&self.state).timeline.push((
                    self.started.elapsed(),
                    format!("{} kept an early DTLS datagram", which.as_str()),
                ));
            }
        }
        if which == Pc::Subscriber && drop_on_arrival(peer, &self.state, &msg.message) {
            return;
        }
        if let Err(e) = peer.pc.handle_read(msg) {
            tracing::debug!("{}: {} read: {e}", self.participant_id, which.as_str());
        }
    }

    fn on_pc_event(&mut self, which: Pc, e: RTCPeerConnectionEvent) {
        match e {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                let mut st = lock(&self.state);
                st.connection_states
                    .entry(which)
                    .or_default()
                    .push(s.to_string());
                st.timeline.push((
                    self.started.elapsed(),
                    format!("{} connection {s}", which.as_str()),
                ));
                if s == RTCPeerConnectionState::Connected {
                    st.connected_after
                        .entry(which)
                        .or_insert_with(|| self.started.elapsed());
                }
                if s == RTCPeerConnectionState::Failed {
                    st.errors
                        .push(format!("{} connection failed", which.as_str()));
                }
                drop(st);
                let peer = match which {
                    Pc::Publisher => Some(&mut self.publisher),
                    Pc::Subscriber => self.subscriber.as_mut(),
                };
                if let Some(p) = peer {
                    p.connected = s == RTCPeerConnectionState::Connected;
                }
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(s) => {
                lock(&self.state).timeline.push((
                    self.started.elapsed(),
                    format!("{} ice {s}", which.as_str()),
                ));
                // DTLS starts at the next timeout: run it now (see
                // notes/webrtc-stack.md, pitfall 1).
                let peer = match which {
                    Pc::Publisher => Some(&mut self.publisher),
                    Pc::Subscriber => self.subscriber.as_mut(),
                };
                if let Some(p) = peer {
                    p.ice_connected = matches!(
                        s,
                        RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                    );
                    if p.ice_connected {
                        for mut m in std::mem::take(&mut p.early_dtls) {
                            m.now = Instant::now();
                            let _ = p.pc.handle_read(m);
                        }
                    }
                    let _ = p.pc.handle_timeout(Instant::now());
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init))
                if which == Pc::Subscriber && !self.sub_tracks.contains_key(&init.track_id) =>
            {
                let kind = self.subscriber.as_mut().and_then(|s| {
                    s.pc.rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind())
                });
                let kind = match kind {
                    Some(RtpCodecKind::Audio) => Some(Kind::Audio),
                    Some(RtpCodecKind::Video) => Some(Kind::Video),
                    _ => None,
                };
                if let (Some(pid), Some(kind)) = (init.stream_ids.first(), kind) {
                    self.sub_tracks
                        .insert(init.track_id.clone(), (pid.clone(), kind));
                }
            }
            _ => {}
        }
    }

    fn on_pc_message(&mut self, which: Pc, m: RTCMessage) {
        match (which, m) {
            (Pc::Subscriber, RTCMessage::RtpPacket(track_id, pkt)) => self.on_rtp(&track_id, pkt),
            (Pc::Publisher, RTCMessage::RtcpPacket(_, packets)) => {
                for p in packets {
                    let any = p.as_any();
                    let ssrcs: Vec<u32> =
                        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                            vec![pli.media_ssrc]
                        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                            fir.fir.iter().map(|e| e.ssrc).collect()
                        } else {
                            continue;
                        };
                    {
                        // Simulcast: a key frame of the layer asked for.
                        let mut layer_asked = false;
                        for l in self.layers.iter_mut() {
                            if ssrcs.contains(&l.ssrc) {
                                l.keyframe_asked = true;
                                layer_asked = true;
                            }
                        }
                        if !layer_asked {
                            self.video.keyframe_asked = true;
                        }
                        let mut st = lock(&self.state);
                        st.keyframe_requests += 1;
                        if st.keyframe_requests <= TIMELINE_DATAGRAMS {
                            st.timeline
                                .push((self.started.elapsed(), "key frame requested".to_owned()));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Packets on a slot that named somebody it was not announced for
    /// (`slot_early`) and no announcement explained within
    /// [`SLOT_GRACE`]: misattributed.
    fn settle_slot_early(
        early: &mut Vec<(String, String, Kind, Instant)>,
        st: &mut ClientState,
        now: Instant,
    ) {
        early.retain(|(_, sender, kind, at)| {
            if now - *at <= SLOT_GRACE {
                return true;
            }
            st.media
                .entry((sender.clone(), *kind))
                .or_default()
                .misattributed += 1;
            false
        });
    }

    fn on_rtp(&mut self, track_id: &str, mut pkt: rtc::rtp::Packet) {
        let (mut owner, kind, slot) = match self.sub_tracks.get(track_id) {
            // A slot: whoever the server said it carries now.
            Some((p, k)) if p.starts_with("slot-") => (
                self.slot_owner
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| "?".to_owned()),
                Some(*k),
                Some(p.clone()),
            ),
            Some((p, k)) => (p.clone(), Some(*k), None),
            None => ("?".to_owned(), None, None),
        };
        note_repair(&self.state, kind, &mut pkt);
        let verdict = kind.map(|k| verify_payload(k, &pkt.payload));
        let kind = kind.unwrap_or(Kind::Audio);
        let elapsed = self.started.elapsed();
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        // Receiving in slots: a packet of the slot's previous occupant just
        // after the switch is the previous occupant's; one of somebody else
        // waits for the next `slots` message ([`SLOT_GRACE`]).
        let mut early = false;
        if let (Some(slot), Some(Ok(v))) = (&slot, &verdict) {
            if v.sender != owner {
                let now = Instant::now();
                if self
                    .slot_previous
                    .get(slot)
                    .is_some_and(|(p, at)| *p == v.sender && now - *at <= SLOT_GRACE)
                {
                    owner = v.sender.clone();
                } else {
                    self.slot_early
                        .push((slot.clone(), v.sender.clone(), kind, now));
                    owner = v.sender.clone();
                    early = true;
                }
            }
        }
        Self::settle_slot_early(&mut self.slot_early, st, Instant::now());
        let m = st.media.entry((owner.clone(), kind)).or_default();
        m.packets += 1;
        m.bytes += pkt.payload.len() as u64;
        m.ssrcs.insert(pkt.header.ssrc);
        if pkt.header.marker {
            m.markers += 1;
        }
        if m.first_after.is_none() {
            m.first_after = Some(elapsed);
            st.timeline
                .push((elapsed, format!("first {kind:?} packet from {owner}")));
        }
        match verdict {
            Some(Ok(v)) => {
                m.intact += 1;
                let layer = layer_of_counter(v.counter);
                let per_layer = m.layers.entry(layer).or_default();
                per_layer.0 += 1;
                per_layer.1 += pkt.payload.len() as u64;
                // Loss: a gap in the counter between packets of one layer,
                // unless the stream was paused or restarted at a key frame.
                let sent = v.sent_ns.unwrap_or(0);
                let mut late = false;
                let gap: i64 = match m.last_seen {
                    Some((l, c, at)) if l == layer => {
                        if v.counter <= c {
                            // Late: a repair of a gap counted before, or a
                            // copy of a packet that came.
                            late = true;
                            if m.missing.remove(&v.counter) {
                                -1
                            } else {
                                m.duplicates += 1;
                                0
                            }
                        } else if v.counter == c.wrapping_add(1)
                            || v.keyframe
                            || sent.saturating_sub(at) > PAUSE_NS
                        {
                            0
                        } else {
                            for missed in (c + 1..v.counter).take(MISSING_MAX) {
                                m.missing.insert(missed);
                            }
                            while m.missing.len() > MISSING_MAX {
                                m.missing.pop_first();
                            }
                            i64::from(v.counter - c - 1)
                        }
                    }
                    _ => 0,
                };
                m.gaps += gap;
                if !late {
                    m.last_seen = Some((layer, v.counter, sent));
                }
                if let (Some(sent), Some(clock)) = (v.sent_ns, &self.media.clock) {
                    if clock.in_window(sent) {
                        let us = self.last_rx_ns.saturating_sub(sent) / 1000;
                        st.delays_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        st.window_received += 1;
                        st.window_gaps += gap;
                    }
                }
                if v.sender != owner && !early {
                    m.misattributed += 1;
                }
                if v.keyframe {
                    m.keyframes += 1;
                } else if m.keyframes == 0 && kind == Kind::Video {
                    m.before_keyframe += 1;
                }
                m.max_counter = m.max_counter.max(Some(v.counter));
                m.min_counter = Some(m.min_counter.map_or(v.counter, |c| c.min(v.counter)));
            }
            _ => m.corrupted += 1,
        }
    }

    fn sender_ready(&mut self, kind: Kind) -> Option<(RTCRtpSenderId, u8)> {
        if !self.publisher.connected {
            return None;
        }
        let st = match kind {
            Kind::Audio => &self.audio,
            Kind::Video => &self.video,
        };
        Some((st.sender?, st.payload_type?))
    }

    fn send_audio(&mut self) {
        if !self.media.audio {
            return;
        }
        let Some((sender, pt)) = self.sender_ready(Kind::Audio) else {
            return;
        };
        let stamp = self.media.clock.as_ref().map(|c| c.now_ns());
        let mut payload = make_pattern_at(
            Kind::Audio,
            &self.participant_id,
            self.audio.counter,
            64,
            stamp,
        );
        let mut pt = pt;
        if self.repair.publisher_red {
            if let Some(red_pt) = self.publisher_pt(sender, "audio/red") {
                let red = crate::repair::red_payload(pt, self.last_audio.as_deref(), &payload);
                self.last_audio = Some(std::mem::replace(&mut payload, red));
                pt = red_pt;
            }
        }
        let level = lock(&self.state).audio_level_out;
        let a = &mut self.audio;
        let mut pkt = rtp_packet(pt, a.seq, a.timestamp, AUDIO_SSRC, false, payload);
        if let (Some(level), Some(id)) = (level, a.level_ext) {
            // RFC 6464: V bit (voice) and the level in -dBov.
            let _ = pkt
                .header
                .set_extension(id, Bytes::from(vec![0x80 | level.min(127)]));
        }
        a.seq = a.seq.wrapping_add(1);
        a.timestamp = a.timestamp.wrapping_add(960);
        a.counter = a.counter.wrapping_add(1);
        self.write(sender, Kind::Audio, pkt, stamp);
    }

    /// The payload type the publisher connection negotiated for `mime`.
    fn publisher_pt(&mut self, sender: RTCRtpSenderId, mime: &str) -> Option<u8> {
        let mut s = self.publisher.pc.rtp_sender(sender)?;
        s.get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
            .map(|c| c.payload_type)
    }

    fn send_video(&mut self) {
        if !self.media.video {
            return;
        }
        let Some((sender, pt)) = self.sender_ready(Kind::Video) else {
            return;
        };
        let stamp = self.media.clock.as_ref().map(|c| c.now_ns());
        if !self.layers.is_empty() {
            self.send_layers(sender, pt, stamp);
            return;
        }
        let v = &mut self.video;
        let periodic = v.frames.is_multiple_of(self.media.keyframe_every.max(1));
        let keyframe = periodic || v.keyframe_asked;
        if v.keyframe_asked && !periodic {
            lock(&self.state).keyframes_on_request += 1;
        }
        v.keyframe_asked = false;
        let picture_id = (v.frames & 0x7fff) as u16;
        let (count, filler) = frame_split(self.media.video_frame_bytes, keyframe);
        let mut packets = Vec::with_capacity(count);
        for i in 0..count {
            let mut payload = vp8_descriptor(i == 0, picture_id);
            if i == 0 {
                payload.extend_from_slice(&vp8_frame_header(keyframe));
            }
            payload.extend(make_pattern_at(
                Kind::Video,
                &self.participant_id,
                v.counter,
                filler,
                stamp,
            ));
            packets.push(rtp_packet(
                pt,
                v.seq,
                v.timestamp,
                VIDEO_SSRC,
                i + 1 == count,
                payload,
            ));
            v.seq = v.seq.wrapping_add(1);
            v.counter = v.counter.wrapping_add(1);
        }
        v.frames += 1;
        v.timestamp = v.timestamp.wrapping_add(3000);
        for p in packets {
            self.write(sender, Kind::Video, p, stamp);
        }
    }

    /// One frame of every active simulcast layer (see
    /// [`MediaOptions::simulcast`]).
    fn send_layers(&mut self, sender: RTCRtpSenderId, pt: u8, stamp: Option<u64>) {
        let periodic = self
            .video
            .frames
            .is_multiple_of(self.media.keyframe_every.max(1));
        let picture_id = (self.video.frames & 0x7fff) as u16;
        let (mid_ext, rid_ext) = (self.video.mid_ext, self.video.rid_ext);
        let mid = Bytes::from(self.video.mid.clone().unwrap_or_default().into_bytes());
        let mut packets = Vec::new();
        let mut on_request = 0;
        for l in self.layers.iter_mut() {
            if !l.active {
                // The capture clock runs on while a layer is paused.
                l.timestamp = l.timestamp.wrapping_add(3000);
                continue;
            }
            let keyframe = periodic || l.keyframe_asked;
            if l.keyframe_asked && !periodic {
                on_request += 1;
            }
            l.keyframe_asked = false;
            // q, h, f: ¼, ½ and all of the frame.
            let bytes = self
                .media
                .video_frame_bytes
                .map(|b| (b << (l.layer - 1)) / 4);
            let (count, filler) = frame_split(bytes, keyframe);
            for i in 0..count {
                let mut payload = vp8_descriptor(i == 0, picture_id);
                if i == 0 {
                    payload
                        .extend_from_slice(&vp8_frame_header_sized(keyframe, layer_dims(l.layer)));
                }
                let counter =
                    (u32::from(l.layer) << LAYER_SHIFT) | (l.counter & ((1 << LAYER_SHIFT) - 1));
                payload.extend(make_pattern_at(
                    Kind::Video,
                    &self.participant_id,
                    counter,
                    filler,
                    stamp,
                ));
                let mut pkt = rtp_packet(pt, l.seq, l.timestamp, l.ssrc, i + 1 == count, payload);
                if l.tagged < RID_PACKETS {
                    if let (Some(m), Some(r)) = (mid_ext, rid_ext) {
                        let _ = pkt.header.set_extension(m, mid.clone());
                        let _ = pkt
                            .header
                            .set_extension(r, Bytes::from_static(l.rid.as_bytes()));
                    }
                    l.tagged += 1;
                }
                packets.push(pkt);
                l.seq = l.seq.wrapping_add(1);
                l.counter = l.counter.wrapping_add(1);
            }
            l.timestamp = l.timestamp.wrapping_add(3000);
        }
        self.video.frames += 1;
        if on_request > 0 {
            lock(&self.state).keyframes_on_request += on_request;
        }
        for p in packets {
            self.write(sender, Kind::Video, p, stamp);
        }
    }

    fn write(
        &mut self,
        sender: RTCRtpSenderId,
        kind: Kind,
        pkt: rtc::rtp::Packet,
        stamp: Option<u64>,
    ) {
        let len = pkt.payload.len() as u64;
        let in_window = match (stamp, &self.media.clock) {
            (Some(ns), Some(clock)) => clock.in_window(ns),
            _ => false,
        };
        let result = match self.publisher.pc.rtp_sender(sender) {
            Some(mut s) => s.write_rtp(Instant::now(), pkt).map_err(|e| e.to_string()),
            None => Err("no such sender".to_owned()),
        };
        let mut st = lock(&self.state);
        match result {
            Ok(()) => {
                *st.sent.entry(kind).or_default() += 1;
                *st.sent_bytes.entry(kind).or_default() += len;
                if in_window {
                    st.window_sent += 1;
                }
            }
            Err(e) => {
                // One error per kind is enough to diagnose.
                let msg = format!("write_rtp {kind:?}: {e}");
                if !st.errors.contains(&msg) {
                    st.errors.push(msg);
                }
            }
        }
    }

    /// After the publish answer: find the senders and their negotiated payload types.
    fn bind_senders(&mut self) {
        let senders: Vec<RTCRtpSenderId> = self.publisher.pc.get_senders().collect();
        for id in senders {
            let Some(mut s) = self.publisher.pc.rtp_sender(id) else {
                continue;
            };
            let kind = s.track().kind();
            let (mime, state) = match kind {
                RtpCodecKind::Audio => (MIME_TYPE_OPUS, &mut self.audio),
                RtpCodecKind::Video => (MIME_TYPE_VP8, &mut self.video),
                _ => continue,
            };
            let pt = s
                .get_parameters()
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|c| c.payload_type);
            state.sender = Some(id);
            state.payload_type = pt;
            let params = s.get_parameters();
            let ext = |uri: &str| {
                params
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .find(|h| h.uri == uri)
                    .and_then(|h| u8::try_from(h.id).ok())
            };
            state.level_ext = ext(AUDIO_LEVEL_URI);
            state.mid_ext = ext(MID_URI);
            state.rid_ext = ext(RID_URI);
            if kind == RtpCodecKind::Video && !self.layers.is_empty() {
                state.mid = self
                    .publisher
                    .pc
                    .local_description()
                    .and_then(|d| section_mid(&d.sdp, "video"));
                if state.mid_ext.is_none() || state.rid_ext.is_none() {
                    lock(&self.state)
                        .errors
                        .push("simulcast: mid/rid extensions not negotiated".to_owned());
                }
            }
            if pt.is_none() {
                lock(&self.state)
                    .errors
                    .push(format!("{mime} was not negotiated on the publisher"));
            }
        }
    }

    async fn on_server(&mut self, ws: &mut Ws, v: Value) -> anyhow::Result<()> {
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let id = v.get("id").and_then(Value::as_u64);
        let pending = id.and_then(|i| self.pending.remove(&i));
        if ty != "pong" {
            let mut st = lock(&self.state);
            match ty.as_str() {
                "track_published" => {
                    if let Some(t) = v.get("track") {
                        note_track(&mut st, t);
                    }
                }
                "track_unpublished" => {
                    if let Some(t) = v.get("track_id").and_then(Value::as_str) {
                        st.published_tracks.remove(t);
                    }
                }
                "slots" => {
                    let now = Instant::now();
                    let before = std::mem::take(&mut self.slot_owner);
                    for s in v
                        .get("slots")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let (Some(slot), Some(owner)) = (
                            s.get("slot").and_then(Value::as_str),
                            s.get("participant_id").and_then(Value::as_str),
                        ) {
                            self.slot_owner.insert(slot.to_owned(), owner.to_owned());
                        }
                    }
                    for (slot, owner) in before {
                        if self.slot_owner.get(&slot) != Some(&owner) {
                            self.slot_previous.insert(slot, (owner, now));
                        }
                    }
                    // Media of a slot's new occupant that came before this
                    // message was early, not misattributed.
                    let owners = &self.slot_owner;
                    self.slot_early.retain(|(slot, sender, _, at)| {
                        owners.get(slot) != Some(sender) || now - *at > SLOT_GRACE
                    });
                    Self::settle_slot_early(&mut self.slot_early, &mut st, now);
                }
                _ => {}
            }
            st.timeline
                .push((self.started.elapsed(), format!("server: {ty}")));
            st.events.push(v.clone());
        }
        match ty.as_str() {
            "publish_answer" => {
                let sdp = v
                    .get("sdp")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("publish_answer without sdp"))?;
                let connected = self.publisher.connect_tcp(sdp).await;
                let r = connected
                    .and_then(|()| {
                        RTCSessionDescription::answer(sdp.to_owned())
                            .map_err(|e| anyhow!("bad answer: {e}"))
                    })
                    .and_then(|a| {
                        self.publisher
                            .pc
                            .set_remote_description(Instant::now(), a)
                            .map_err(|e| anyhow!("publish_answer not applied: {e}"))
                    });
                if r.is_ok() {
                    self.bind_senders();
                }
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(match &r {
                        Ok(()) => Ok(()),
                        Err(e) => Err(anyhow!("{e}")),
                    });
                }
                r?;
            }
            "layers_wanted" if !self.layers.is_empty() => {
                let wanted: Vec<&str> = v
                    .get("layers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (i, l) in self.layers.iter_mut().enumerate() {
                    // The lowest layer always runs.
                    let on = i == 0 || wanted.contains(&l.rid);
                    if on && !l.active {
                        // A resumed encoding starts with a key frame.
                        l.keyframe_asked = true;
                    }
                    l.active = on;
                }
                lock(&self.state).layers_active = self
                    .layers
                    .iter()
                    .filter(|l| l.active)
                    .map(|l| l.rid.to_owned())
                    .collect();
            }
            "subscriber_offer" => {
                let sdp = v
                    .get("sdp")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("subscriber_offer without sdp"))?
                    .to_owned();
                self.on_subscriber_offer(ws, sdp).await?;
            }
            "error" => {
                let mut st = lock(&self.state);
                st.errors.push(format!("server error: {v}"));
                drop(st);
                if pending == Some(Pending::Publish) {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(anyhow!("publish failed: {v}")));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_subscriber_offer(&mut self, ws: &mut Ws, sdp: String) -> anyhow::Result<()> {
        let first = self.subscriber.is_none();
        if first {
            self.subscriber =
                Some(Peer::subscriber_with(self.transport, &self.repair, self.bind_ip).await?);
        }
        let Some(sub) = self.subscriber.as_mut() else {
            bail!("no subscriber connection");
        };
        sub.connect_tcp(&sdp).await?;
        for (track_id, owner) in msid_tracks(&sdp) {
            self.sub_tracks.insert(track_id, owner);
        }
        crate::repair::sdp_repair(&sdp, &mut lock(&self.state).repair);
        let offer = RTCSessionDescription::offer(sdp).map_err(|e| anyhow!("bad offer: {e}"))?;
        sub.pc
            .set_remote_description(Instant::now(), offer)
            .map_err(|e| anyhow!("subscriber_offer not applied: {e}"))?;
        // After a move: an offer with new credentials restarted ICE (and
        // dropped the old socket's candidate); the new one goes in now.
        let moved = sub.add_moved_candidate()?;
        let answer = sub
            .pc
            .create_answer(None)
            .map_err(|e| anyhow!("create_answer: {e}"))?;
        sub.pc
            .set_local_description(Instant::now(), answer.clone())
            .map_err(|e| anyhow!("set_local_description(answer): {e}"))?;
        let answer_sdp = sub
            .pc
            .local_description()
            .map(|d| d.sdp)
            .unwrap_or(answer.sdp);
        let cand = sub.candidate_json();
        lock(&self.state).subscriber_offers += 1;
        let id = self.id(Pending::SubscriberAnswer);
        send_json(
            ws,
            &json!({"type": "subscriber_answer", "id": id, "sdp": answer_sdp}),
        )
        .await?;
        if first || moved {
            send_json(
                ws,
                &json!({"type": "candidate", "pc": "subscriber", "candidate": cand}),
            )
            .await?;
        }
        Ok(())
    }
}

/// The stack's default interceptors (NACK, simulcast header extensions,
/// TWCC feedback, RTCP reports), except that a missing packet is NACKed at
/// most 10 times, as a browser does (libwebrtc's `kMaxNackRetries`); the
/// stack's default NACKs it every 100 ms for as long as it stays missing,
/// which no real client does and which, on a starved machine, made the load
/// generator itself multiply the server's retransmissions.
fn browser_like_interceptors(
    registry: Registry,
    media_engine: &mut MediaEngine,
) -> anyhow::Result<Registry> {
    use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder};
    use rtc::rtp_transceiver::rtp_sender::RTCPFeedback;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "nack".into(),
                parameter: parameter.into(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry = registry
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(10)
                .build(),
        );
    configure_simulcast_extension_headers(media_engine)?;
    let registry = configure_twcc_receiver_only(registry, media_engine)?;
    Ok(configure_rtcp_reports(registry))
}

/// Subscriber: whether to drop this arriving datagram on purpose (every
/// `drop_every`-th video datagram, never a resent one), recording what
/// arrives on RTX SSRCs and what is dropped.
fn drop_on_arrival(peer: &mut Peer, state: &Mutex<ClientState>, data: &[u8]) -> bool {
    let Some(h) = crate::repair::rtp_head(data) else {
        return false;
    };
    let mut st = lock(state);
    let r = &mut st.repair;
    if r.offered_fid.values().any(|rtx| *rtx == h.ssrc) {
        r.rtx_in += 1;
        r.rtx_in_streams.insert((h.ssrc, h.pt));
        return false;
    }
    if peer.drop_every == 0 || !r.video_pts.contains(&h.pt) {
        return false;
    }
    if r.dropped_in.contains_key(&(h.ssrc, h.seq)) {
        r.plain_resent_in += 1;
        return false;
    }
    peer.drop_count += 1;
    if !peer.drop_count.is_multiple_of(peer.drop_every) {
        return false;
    }
    r.dropped_in.insert((h.ssrc, h.seq), Instant::now());
    true
}

/// Publisher: whether to drop this departing datagram on purpose (every
/// `drop_every`-th first transmission of video), recording resends.
fn drop_on_departure(peer: &mut Peer, state: &Mutex<ClientState>, data: &[u8]) -> bool {
    let Some(h) = crate::repair::rtp_head(data) else {
        return false;
    };
    if h.ssrc != VIDEO_SSRC {
        // Simulcast layers are media too (and never dropped on purpose).
        if h.ssrc != AUDIO_SSRC && !SIMULCAST_SSRCS.contains(&h.ssrc) {
            lock(state).repair.rtx_out += 1;
        }
        return false;
    }
    if peer.drop_every == 0 {
        return false;
    }
    let mut st = lock(state);
    if st.repair.dropped_out.contains_key(&h.seq) {
        st.repair.plain_resent_out += 1;
        return false;
    }
    peer.drop_count += 1;
    if !peer.drop_count.is_multiple_of(peer.drop_every) {
        return false;
    }
    st.repair.dropped_out.insert(h.seq, Instant::now());
    true
}

/// Subscriber: notes a delivered packet that repairs one dropped on
/// arrival; reduces a RED payload to its primary block (checking the
/// redundant ones) so the rest of the client sees plain Opus.
fn note_repair(state: &Mutex<ClientState>, kind: Option<Kind>, pkt: &mut rtc::rtp::Packet) {
    let mut st = lock(state);
    let r = &mut st.repair;
    let key = (pkt.header.ssrc, pkt.header.sequence_number);
    if let Some(at) = r.dropped_in.get(&key) {
        if r.repaired_in.insert(key) {
            r.repair_times.push(at.elapsed());
        }
    }
    if kind != Some(Kind::Audio) {
        return;
    }
    r.audio_pts.insert(pkt.header.payload_type);
    if r.offered_red_pt != Some(pkt.header.payload_type) {
        return;
    }
    r.red_in += 1;
    let Some(blocks) = crate::repair::red_blocks(&pkt.payload) else {
        r.red_bad += 1;
        return;
    };
    let Some(((primary_pt, primary), redundant)) = blocks.split_last() else {
        r.red_bad += 1;
        return;
    };
    for (_, b) in redundant {
        if verify_payload(Kind::Audio, b).is_ok() {
            r.red_redundant_intact += 1;
        } else {
            r.red_bad += 1;
        }
    }
    pkt.header.payload_type = *primary_pt;
    pkt.payload = pkt.payload.slice_ref(primary);
}

/// The first `tcptype passive` TCP candidate of an SDP.
fn tcp_passive_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let c = line.trim().strip_prefix("a=candidate:")?;
        let f: Vec<&str> = c.split_whitespace().collect();
        // foundation component transport priority address port typ host tcptype passive
        if f.len() < 8 || !f[2].eq_ignore_ascii_case("tcp") || !c.contains("tcptype passive") {
            return None;
        }
        let ip: std::net::IpAddr = f[4].parse().ok()?;
        let port: u16 = f[5].parse().ok()?;
        Some(SocketAddr::new(ip, port))
    })
}

/// What a datagram is, by its first byte (RFC 7983).
fn classify(first: Option<u8>) -> &'static str {
    match first {
        Some(0..=3) => "STUN",
        Some(20..=63) => "DTLS",
        Some(128..=191) => "RTP/RTCP",
        _ => "other",
    }
}

/// The `a=mid` of the first media section of `kind` (`audio`, `video`).
fn section_mid(sdp: &str, kind: &str) -> Option<String> {
    let mut in_kind = false;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("m=") {
            in_kind = rest.split_whitespace().next() == Some(kind);
        } else if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_kind) {
            return Some(mid.to_owned());
        }
    }
    None
}

/// Tracks of an SDP by `a=msid:<stream> <track>` and the m-line's kind.
pub fn msid_tracks(sdp: &str) -> Vec<(String, (String, Kind))> {
    let mut out = Vec::new();
    let mut kind = None;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("m=") {
            kind = rest.split_whitespace().next().and_then(Kind::parse);
        } else if let Some(rest) = line.strip_prefix("a=msid:") {
            let mut it = rest.split_whitespace();
            if let (Some(stream), Some(track), Some(k)) = (it.next(), it.next(), kind) {
                out.push((track.to_owned(), (stream.to_owned(), k)));
            }
        }
    }
    out
}

fn rtp_packet(
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

/// FNV-1a, 32 bits.
fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn filler_byte(counter: u32, i: usize) -> u8 {
    (counter as u8)
        .wrapping_mul(31)
        .wrapping_add((i as u8).wrapping_mul(7))
        ^ 0x5a
}

/// MAGIC | kind | len | sender | counter (BE) | filler | checksum (BE).
pub fn make_pattern(kind: Kind, sender: &str, counter: u32, filler: usize) -> Vec<u8> {
    make_pattern_at(kind, sender, counter, filler, None)
}

/// As [`make_pattern`]; with `sent_ns`, the pattern starts with
/// [`MAGIC_STAMPED`] and carries the send time (BE) after the counter.
pub fn make_pattern_at(
    kind: Kind,
    sender: &str,
    counter: u32,
    filler: usize,
    sent_ns: Option<u64>,
) -> Vec<u8> {
    let name = &sender.as_bytes()[..sender.len().min(255)];
    let mut out = Vec::with_capacity(22 + name.len() + filler);
    out.extend_from_slice(if sent_ns.is_some() {
        MAGIC_STAMPED
    } else {
        MAGIC
    });
    out.push(kind.tag());
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&counter.to_be_bytes());
    if let Some(ns) = sent_ns {
        out.extend_from_slice(&ns.to_be_bytes());
    }
    out.extend((0..filler).map(|i| filler_byte(counter, i)));
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_be_bytes());
    out
}

/// A verified payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sender: String,
    pub counter: u32,
    /// Video: the packet starts a key frame.
    pub keyframe: bool,
    /// The send time the payload carries ([`MediaClock::now_ns`]), if stamped.
    pub sent_ns: Option<u64>,
}

fn check_pattern(kind: Kind, p: &[u8]) -> Result<(String, u32, Option<u64>), &'static str> {
    if p.len() < 4 + 2 + 4 + 4 {
        return Err("no magic");
    }
    let stamped = match &p[..4] {
        m if m == MAGIC => false,
        m if m == MAGIC_STAMPED => true,
        _ => return Err("no magic"),
    };
    if p[4] != kind.tag() {
        return Err("wrong kind");
    }
    let name_len = usize::from(p[5]);
    let body_end = p.len() - 4;
    let stamp_len = if stamped { 8 } else { 0 };
    if 6 + name_len + 4 + stamp_len > body_end {
        return Err("too short");
    }
    let sum = u32::from_be_bytes([
        p[body_end],
        p[body_end + 1],
        p[body_end + 2],
        p[body_end + 3],
    ]);
    if checksum(&p[..body_end]) != sum {
        return Err("bad checksum");
    }
    let sender = std::str::from_utf8(&p[6..6 + name_len]).map_err(|_| "bad name")?;
    let c = 6 + name_len;
    let counter = u32::from_be_bytes([p[c], p[c + 1], p[c + 2], p[c + 3]]);
    let sent_ns = stamped.then(|| {
        let mut ns = [0u8; 8];
        ns.copy_from_slice(&p[c + 4..c + 12]);
        u64::from_be_bytes(ns)
    });
    if p[c + 4 + stamp_len..body_end]
        .iter()
        .enumerate()
        .any(|(i, b)| *b != filler_byte(counter, i))
    {
        return Err("bad filler");
    }
    Ok((sender.to_owned(), counter, sent_ns))
}

/// Checks a received payload of `kind`: the VP8 descriptor and frame header
/// for video, then the pattern.
pub fn verify_payload(kind: Kind, p: &[u8]) -> Result<Verified, &'static str> {
    match kind {
        Kind::Audio => {
            let (sender, counter, sent_ns) = check_pattern(kind, p)?;
            Ok(Verified {
                sender,
                counter,
                keyframe: false,
                sent_ns,
            })
        }
        Kind::Video => {
            let (rest, dims) = strip_vp8(p)?;
            let (sender, counter, sent_ns) = check_pattern(kind, rest)?;
            // A simulcast layer's key frames announce that layer's size.
            if dims.is_some_and(|d| d != layer_dims(layer_of_counter(counter))) {
                return Err("key frame dimensions of another layer");
            }
            let keyframe = dims.is_some();
            Ok(Verified {
                sender,
                counter,
                keyframe,
                sent_ns,
            })
        }
    }
}

/// VP8 payload descriptor (RFC 7741 §4.2): X=1, S as given, PID 0, then
/// I=1 with a 15-bit picture id.
fn vp8_descriptor(start: bool, picture_id: u16) -> Vec<u8> {
    let first = 0x80 | if start { 0x10 } else { 0 };
    vec![
        first,
        0x80,
        0x80 | ((picture_id >> 8) as u8 & 0x7f),
        (picture_id & 0xff) as u8,
    ]
}

/// Packets and filler bytes per packet of a video frame: `bytes` of a
/// delta frame (key frames [`KEYFRAME_FACTOR`] times more) in packets of at
/// most [`MAX_VIDEO_PAYLOAD`]; `None`: the tests' small frames.
fn frame_split(bytes: Option<usize>, keyframe: bool) -> (usize, usize) {
    match bytes {
        None if keyframe => (KEYFRAME_PACKETS, 400),
        None => (1, 160),
        Some(bytes) => {
            let bytes = if keyframe {
                bytes * KEYFRAME_FACTOR
            } else {
                bytes
            };
            let count = bytes.div_ceil(MAX_VIDEO_PAYLOAD).max(1);
            (count, bytes / count)
        }
    }
}

/// VP8 frame header (RFC 6386 §9.1): the 3-byte frame tag (bit 0: 0 = key
/// frame; show_frame set; a first-partition size), and for key frames the
/// start code and the dimensions.
fn vp8_frame_header(keyframe: bool) -> Vec<u8> {
    vp8_frame_header_sized(keyframe, (VP8_WIDTH, VP8_HEIGHT))
}

/// As [`vp8_frame_header`], announcing `dims` (width, height) in key frames.
fn vp8_frame_header_sized(keyframe: bool, dims: (u16, u16)) -> Vec<u8> {
    let first_part_size: u32 = 100;
    let tag: u32 = (if keyframe { 0 } else { 1 }) | (1 << 4) | (first_part_size << 5);
    let mut out = vec![tag as u8, (tag >> 8) as u8, (tag >> 16) as u8];
    if keyframe {
        out.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        out.extend_from_slice(&dims.0.to_le_bytes());
        out.extend_from_slice(&dims.1.to_le_bytes());
    }
    out
}

/// Key frame dimensions: width, height.
type Dims = (u16, u16);

/// Skips the VP8 payload descriptor and, at the start of a frame, the frame
/// header; returns the rest and, if it starts a key frame, the dimensions.
fn strip_vp8(p: &[u8]) -> Result<(&[u8], Option<Dims>), &'static str> {
    let get = |i: usize| p.get(i).copied().ok_or("vp8 descriptor truncated");
    let b0 = get(0)?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            i += if get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    let start = b0 & 0x10 != 0 && b0 & 0x0f == 0;
    let mut keyframe = None;
    if start {
        let tag = get(i)?;
        get(i + 2)?;
        i += 3;
        if tag & 1 == 0 {
            if p.get(i..i + 3) != Some(&[0x9d, 0x01, 0x2a][..]) {
                return Err("key frame without start code");
            }
            let w = u16::from_le_bytes([get(i + 3)?, get(i + 4)?]) & 0x3fff;
            let h = u16::from_le_bytes([get(i + 5)?, get(i + 6)?]) & 0x3fff;
            if ![1u8, 2, 3].iter().any(|l| layer_dims(*l) == (w, h)) {
                return Err("key frame with wrong dimensions");
            }
            keyframe = Some((w, h));
            i += 7;
        }
    }
    p.get(i..).map(|r| (r, keyframe)).ok_or("vp8 truncated")
}

/// What a [`WhepPlayer`] received: packets per sending participant (read
/// from the payload pattern, whatever SSRC the server rewrote them to) and
/// kind, with the times of the first and last.
#[derive(Debug, Default)]
pub struct WhepState {
    /// (sender, kind) → (packets, first arrival, last arrival).
    pub received: BTreeMap<(String, Kind), (u64, Instant, Instant)>,
    /// Packets whose payload named nobody (corrupt or not ours).
    pub unattributed: u64,
    pub connected: bool,
    pub errors: Vec<String>,
}

impl WhepState {
    /// Packets of `kind` received from `sender` so far.
    pub fn packets(&self, sender: &str, kind: Kind) -> u64 {
        self.received
            .get(&(sender.to_owned(), kind))
            .map_or(0, |r| r.0)
    }
}

/// A WHEP player (docs/whip-whep.md): one `recvonly` webrtc-rs connection
/// (audio and video) offered by `POST /whep/{meeting}`, driven on its own
/// UDP socket by a task that counts what it plays per sender.
pub struct WhepPlayer {
    state: Arc<Mutex<WhepState>>,
    task: JoinHandle<()>,
}

impl Drop for WhepPlayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WhepPlayer {
    /// Offers to play `meeting` at `base` (the server's HTTP URL) with an
    /// invitation `token`; returns once the server answered.
    pub async fn play(base: &str, meeting: &str, token: &str) -> anyhow::Result<WhepPlayer> {
        let mut me = MediaEngine::default();
        me.register_default_codecs()?;
        let mut peer = Peer::bind_on(Pc::Subscriber, me, Transport::Udp, false, LOOPBACK).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            peer.pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )?;
        }
        let offer = peer.create_offer()?;
        let resp = reqwest::Client::new()
            .post(format!("{base}/whep/{meeting}"))
            .bearer_auth(token)
            .header("content-type", "application/sdp")
            .body(offer)
            .send()
            .await?;
        let status = resp.status();
        let answer = resp.text().await?;
        if status != reqwest::StatusCode::CREATED {
            bail!("WHEP offer: {status}: {answer}");
        }
        let answer =
            RTCSessionDescription::answer(answer).map_err(|e| anyhow!("bad answer: {e}"))?;
        peer.pc
            .set_remote_description(Instant::now(), answer)
            .map_err(|e| anyhow!("WHEP answer not applied: {e}"))?;
        let state = Arc::new(Mutex::new(WhepState::default()));
        let task = tokio::spawn(Self::run(peer, state.clone()));
        Ok(WhepPlayer { state, task })
    }

    /// What the player has received so far.
    pub fn state(&self) -> MutexGuard<'_, WhepState> {
        lock_whep(&self.state)
    }

    async fn run(mut peer: Peer, state: Arc<Mutex<WhepState>>) {
        let dummy = Mutex::new(ClientState::default());
        let started = Instant::now();
        loop {
            let now = Instant::now();
            if peer.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = peer.pc.handle_timeout(now);
            }
            while let Some(e) = peer.pc.poll_event() {
                match e {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                        let mut st = lock_whep(&state);
                        st.connected = s == RTCPeerConnectionState::Connected;
                        if s == RTCPeerConnectionState::Failed {
                            st.errors.push("WHEP connection failed".to_owned());
                        }
                    }
                    RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(s) => {
                        // As in the client's driver: replay early DTLS, and
                        // start DTLS now.
                        peer.ice_connected = matches!(
                            s,
                            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                        );
                        if peer.ice_connected {
                            for mut m in std::mem::take(&mut peer.early_dtls) {
                                m.now = Instant::now();
                                let _ = peer.pc.handle_read(m);
                            }
                        }
                        let _ = peer.pc.handle_timeout(Instant::now());
                    }
                    _ => {}
                }
            }
            while let Some(m) = peer.pc.poll_read() {
                if let RTCMessage::RtpPacket(_, pkt) = m.message {
                    let got = verify_payload(Kind::Video, &pkt.payload)
                        .map(|v| (v, Kind::Video))
                        .or_else(|_| {
                            verify_payload(Kind::Audio, &pkt.payload).map(|v| (v, Kind::Audio))
                        });
                    let mut st = lock_whep(&state);
                    match got {
                        Ok((v, kind)) => {
                            let at = Instant::now();
                            let e = st.received.entry((v.sender, kind)).or_insert((0, at, at));
                            e.0 += 1;
                            e.2 = at;
                        }
                        Err(_) => st.unattributed += 1,
                    }
                }
            }
            peer.flush(&dummy, started).await;
            let wake = peer
                .pc
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(50))
                .max(Instant::now() + Duration::from_millis(1));
            tokio::select! {
                r = peer.recv() => match r {
                    Ok(Received::Datagram(n, from)) => {
                        let msg = TaggedBytesMut {
                            now: Instant::now(),
                            transport: peer.transport(from),
                            message: BytesMut::from(&peer.buf[..n.min(peer.buf.len())]),
                        };
                        if !peer.ice_connected
                            && classify(msg.message.first().copied()) == "DTLS"
                            && peer.early_dtls.len() < 16
                        {
                            peer.early_dtls.push(TaggedBytesMut {
                                now: msg.now,
                                transport: msg.transport,
                                message: msg.message.clone(),
                            });
                        }
                        let _ = peer.pc.handle_read(msg);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        lock_whep(&state).errors.push(format!("WHEP socket: {e}"));
                        return;
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}

fn lock_whep(state: &Mutex<WhepState>) -> MutexGuard<'_, WhepState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_verify_and_corruption_is_seen() {
        let p = make_pattern(Kind::Audio, "p-1", 7, 64);
        assert_eq!(
            verify_payload(Kind::Audio, &p),
            Ok(Verified {
                sender: "p-1".into(),
                counter: 7,
                keyframe: false,
                sent_ns: None
            })
        );
        let stamped = make_pattern_at(Kind::Audio, "p-1", 8, 64, Some(123_456_789));
        assert_eq!(
            verify_payload(Kind::Audio, &stamped).map(|v| (v.counter, v.sent_ns)),
            Ok((8, Some(123_456_789)))
        );
        let mut bad = stamped.clone();
        bad[14] ^= 1;
        assert!(verify_payload(Kind::Audio, &bad).is_err());
        let mut bad = p.clone();
        bad[20] ^= 1;
        assert!(verify_payload(Kind::Audio, &bad).is_err());
        assert!(verify_payload(Kind::Audio, &p[..p.len() - 1]).is_err());
        assert!(verify_payload(Kind::Video, &p).is_err());
        assert!(verify_payload(Kind::Audio, &[]).is_err());
    }

    #[test]
    fn vp8_payloads_verify() {
        for (start, key) in [(true, true), (true, false), (false, false)] {
            let mut p = vp8_descriptor(start, 300);
            if start {
                p.extend(vp8_frame_header(key));
            }
            p.extend(make_pattern(Kind::Video, "p-2", 9, 100));
            let v = verify_payload(Kind::Video, &p).map_err(|e| e.to_string());
            assert_eq!(
                v,
                Ok(Verified {
                    sender: "p-2".into(),
                    counter: 9,
                    keyframe: key,
                    sent_ns: None
                })
            );
        }
        for n in 0..8 {
            let mut p = vp8_descriptor(true, 1);
            p.extend(vp8_frame_header(true));
            assert!(verify_payload(Kind::Video, &p[..n]).is_err());
        }
    }

    #[test]
    fn simulcast_layers_are_told_apart() {
        // q's key frames announce a quarter of the size; the counter says q.
        let q = (u32::from(1u8) << LAYER_SHIFT) | 5;
        let mut p = vp8_descriptor(true, 7);
        p.extend(vp8_frame_header_sized(true, layer_dims(1)));
        p.extend(make_pattern(Kind::Video, "p-3", q, 40));
        let v = verify_payload(Kind::Video, &p).map_err(|e| e.to_string());
        assert_eq!(
            v.map(|v| (layer_of_counter(v.counter), v.keyframe)),
            Ok((1, true))
        );
        // A key frame of the full size on q's counter is not what q sends.
        let mut p = vp8_descriptor(true, 7);
        p.extend(vp8_frame_header(true));
        p.extend(make_pattern(Kind::Video, "p-3", q, 40));
        assert!(verify_payload(Kind::Video, &p).is_err());
        assert_eq!(layer_of_counter(123), 0);
        assert_eq!(
            section_mid(
                "m=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\n",
                "video"
            ),
            Some("1".to_owned())
        );
    }

    #[test]
    fn msid_lines_map_tracks() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=msid:p-1 t-a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:p-2 t-v\r\n";
        assert_eq!(
            msid_tracks(sdp),
            vec![
                ("t-a".to_owned(), ("p-1".to_owned(), Kind::Audio)),
                ("t-v".to_owned(), ("p-2".to_owned(), Kind::Video)),
            ]
        );
    }
}
