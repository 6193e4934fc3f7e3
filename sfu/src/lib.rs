//! giaoban's media plane: a WebRTC SFU whose peers all share one UDP port and
//! one TCP port (ICE-TCP, RFC 4571 framing).
//!
//! # Layout
//! - [`Sfu`]: the handle the server holds. [`Sfu::start`] binds the media
//!   sockets and spawns the engine; [`Sfu::join`] adds a participant to a room.
//! - [`Participant`]: one participant's side of the media plane: its publisher
//!   connection (client offers, we answer), its subscriber connection (we offer,
//!   client answers), trickled candidates. Dropping it (or [`Participant::leave`])
//!   removes the participant from its room.
//! - [`SfuEvent`]: what the engine tells the server about a participant
//!   (a subscriber offer to relay, tracks going live or away, connection state).
//! - [`ParticipantFigures`] ([`Sfu::participant_figures`]): what the
//!   server measured of each participant's connections (packets, bytes,
//!   loss, round-trip time, NACKs, keyframe requests, layers, path), for
//!   the operator's dashboard; from counters the connections keep anyway
//!   (`peer::figures`).
//! - [`Viewer`] ([`Sfu::view`]): a player of a room's main view (WHEP): the
//!   client offers to receive, we answer with one audio and one video track
//!   that follow the featured participant or the active speaker;
//!   [`ViewerEvent`] says what happens to it.
//! - The server's two controls of a room, for the chair (by participant id):
//!   [`Sfu::block_media`] blocks (a chair's mute) or unblocks one kind of a
//!   participant's media: none of its packets of that kind are forwarded to
//!   anyone (subscribers, slots, players), whatever its client sends; blocked
//!   audio neither speaks nor takes a loudest place, blocked video takes no
//!   last-N place; the block outlives its tracks (set it before the first
//!   publish to join muted); unblocking resumes at once, video at a keyframe
//!   asked of the publisher. [`Sfu::set_featured_id`] features a participant
//!   (the floor holder, a WHIP encoder) as [`Participant::set_featured`]
//!   does. Both answer [`SfuError::UnknownParticipant`] for an id not (or no
//!   longer) in the media plane. See `engine::blocking`.
//! - `engine` (private): the driver. One task owns every peer connection,
//!   the sockets' demultiplexing and the forwarding decisions; nothing on
//!   the hot path locks (the send workers borrow disjoint connections while
//!   the task waits for them). `engine` itself holds the participants, rooms and tracks and
//!   their commands; its parts: `engine::driver` (the task's loop: datagrams
//!   in, handshakes first, timers and ticks, draining connections, batched
//!   sends), `engine::demux` (which connection a datagram is for: ufrags
//!   and paths), `engine::stats` ([`SfuStats`]), `engine::allocation`
//!   (describes each room's tracks to
//!   its `room` core every 100 ms and applies the decisions),
//!   `engine::blocking` (the chair's blocks), `engine::slots` (receiving in
//!   slots), `engine::viewers` (WHEP players of the main view),
//!   `engine::sink` (a forwarding target, subscriber or player, and the one
//!   function that sends to it), `engine::overload` (the engine's load and
//!   what it sheds when short of CPU, [`OverloadConfig`]), `engine::workers`
//!   (the send workers: the queued forwarded packets written, SRTP-protected
//!   and sent by several threads, split by connection).
//! - `room` (private): a room's behaviour without I/O: members, the active
//!   speaker, last-N, the loudest audio, layers within each subscriber's
//!   bandwidth, trials of a higher layer, shedding; driven by `handle_*`
//!   with an explicit clock, read with `poll_*`, tested in memory.
//! - `alloc` (private): the pure functions `room` decides with (loudest
//!   audio with hysteresis, last-N, layers within a budget).
//! - `forward` (private): one track as one subscriber receives it: the
//!   simulcast layer chosen, switching at keyframes, the rewrite of sequence
//!   numbers, timestamps and VP8 picture ids.
//! - `codec` (private): what forwarding reads in payloads (VP8 and H.264
//!   keyframes, VP8 picture ids, RED, RTX).
//! - `bwe` (private): the bandwidth estimate of what a connection sends,
//!   from TWCC feedback or REMB.
//! - `peer` (private): the only module that speaks to the WebRTC stack
//!   (webrtc-rs `rtc`, sans-I/O). Its types do not leak out of it. Its
//!   parts: `peer::setup` (media engine, interceptor chain, ICE-lite),
//!   `peer::receive` (the stack's events and packets into ours, without
//!   per-packet copies), `peer::ssrc` (recycling sent SSRCs),
//!   `peer::interceptors` (our stages of the stack's chain behind one
//!   `Tap`), `peer::sdp` (what we read and rewrite of SDP), `peer::nack`
//!   (the NACK responder), `peer::liveness` (when a connection is gone: any
//!   datagram from the peer counts, so encoders that send ICE keepalives
//!   only every 25 s, libnice, stay up), `peer::figures` (a connection's
//!   own counters and what its remote's RTCP said, for
//!   [`ParticipantFigures`]), `peer::fuzzing`.
//! - `net` (private): the UDP socket and the TCP listener with RFC 4571
//!   framing, the caps on media TCP connections, and (`demux`)
//!   routing of STUN by class (requests by USERNAME, responses by 5-tuple);
//!   handshakes that find the engine's queue full go to its priority queue.
//! - `stun` (private): the little of STUN the engine reads itself.
//! - `memory` (private): giving freed heap back to the system.
//! - [`fuzzing`]: entry points for the fuzz targets.
//!
//! Errors are [`SfuError`]: an error means bad input from a client (bad SDP,
//! a negotiation out of order) or a closed engine; a panic would be a bug.

use std::net::{IpAddr, SocketAddr};

mod alloc;
#[cfg(test)]
mod alloc_count;
#[cfg(test)]
#[global_allocator]
static COUNTING: alloc_count::Counting = alloc_count::Counting;
mod bwe;
mod codec;
mod engine;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod memory;
mod net;
mod peer;
mod room;
mod stun;

/// How the media plane listens and what it announces.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// UDP address to bind; every peer shares this one socket.
    pub udp_bind: SocketAddr,
    /// TCP address to bind for ICE-TCP (normally the same port number as UDP).
    pub tcp_bind: SocketAddr,
    /// Addresses announced as host candidates. Empty: the bind address when it
    /// is not unspecified, otherwise the machine's non-loopback addresses.
    pub announce_ips: Vec<IpAddr>,
    /// A 1:1 NAT's public address, announced in addition (for example the
    /// address of the province's gateway in front of the server).
    pub nat_1to1_ip: Option<IpAddr>,
    /// Also announce 127.0.0.1 (tests and single-machine demos).
    pub include_loopback: bool,
    /// Each subscriber receives video of at most this many publishers, the
    /// most recent speakers first (0: all). When the engine is short of
    /// CPU it sheds thumbnails below this (see `engine::overload`).
    pub last_n: usize,
    /// Each subscriber receives audio of at most this many publishers, the
    /// loudest (0: all). Tracks without the audio-level extension always go
    /// (to subscribers in slots after a second: a client's first packets
    /// may lack the level).
    pub audio_loudest: usize,
    /// Open media TCP connections from one IP address at most.
    pub tcp_max_per_address: usize,
    /// A media TCP connection that has not passed ICE this soon is closed.
    pub tcp_ice_timeout: std::time::Duration,
    /// Threads that write forwarded packets (the stack's write path, SRTP
    /// protect, `sendmmsg`), the engine's own included; 0: the machine's
    /// cores, at most 8. The decisions stay on the engine's one task (see
    /// `engine::workers`).
    pub send_workers: usize,
    /// When the engine counts as short of CPU and sheds (see
    /// `engine::overload`).
    pub overload: OverloadConfig,
}

/// When the engine sheds video for lack of CPU, and when it gives it back.
/// Judged over windows of one second: a window in which the engine's loop
/// was busy at least `busy_high` of the time, or dropped datagrams, sheds
/// one step more (at most every `step_every`); windows under `busy_low`
/// without drops for `calm_for` give one step back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverloadConfig {
    /// Busy share (0..1] of a window that counts as overloaded.
    pub busy_high: f64,
    /// Busy share under which a window counts as calm (below `busy_high`).
    pub busy_low: f64,
    /// Least time between two steps of shedding.
    pub step_every: std::time::Duration,
    /// Calm this long before one step back.
    pub calm_for: std::time::Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            busy_high: 0.85,
            busy_low: 0.55,
            step_every: std::time::Duration::from_secs(2),
            calm_for: std::time::Duration::from_secs(5),
        }
    }
}

/// Identifies a room (a meeting's media).
pub type RoomId = String;
/// Identifies a participant within the SFU (unique across rooms).
pub type ParticipantId = String;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// What a subscriber wants of a video track: a simulcast layer (the best
/// one the publisher sends at or below the wish), or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    Off,
    Low,
    Medium,
    High,
}

impl Quality {
    /// Parses the protocol's names: `off`, `low`, `medium`, `high`.
    pub fn parse(s: &str) -> Option<Quality> {
        Some(match s {
            "off" => Quality::Off,
            "low" => Quality::Low,
            "medium" => Quality::Medium,
            "high" => Quality::High,
            _ => return None,
        })
    }
}

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcKind {
    Publisher,
    Subscriber,
}

/// State of one peer connection, as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// A trickled ICE candidate as browsers give it (`RTCIceCandidate.toJSON()`).
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
    pub username_fragment: Option<String>,
}

/// What the engine tells the server about one participant.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuEvent {
    /// A new offer for the participant's subscriber connection: relay it to the
    /// client and pass its answer to [`Participant::subscriber_answer`].
    SubscriberOffer { sdp: String },
    /// A track of this participant is live (its first media packet arrived).
    TrackPublished { track_id: String, kind: MediaKind },
    /// A track of this participant went away (renegotiated off or closed).
    TrackUnpublished { track_id: String },
    /// One of the participant's connections changed state.
    Connection { pc: PcKind, state: ConnectionState },
    /// The room's active speaker changed (from the audio-level extension);
    /// sent to every participant of the room.
    ActiveSpeaker { participant: ParticipantId },
    /// Which simulcast layers (RTP stream ids) of this participant's video
    /// track anybody receives: the client should send only these (the others
    /// are paused until wanted again; the lowest always runs).
    LayersWanted {
        track_id: String,
        layers: Vec<String>,
    },
    /// The video tracks this participant does not receive now because of
    /// last-N (the full list; empty: none). Sent when it changes.
    VideoPaused { track_ids: Vec<String> },
    /// A participant that receives in slots ([`Sfu::join_in_slots`]): its
    /// slots and what each carries now (the full list). Sent when it changes.
    Slots { slots: Vec<SlotInfo> },
}

/// One slot of a subscriber connection that receives in slots: a sent track
/// (named `slot` in its `msid`) that carries one publisher's track at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotInfo {
    /// The sent track's name, also its `msid` stream and track id.
    pub slot: String,
    pub kind: MediaKind,
    /// What it carries now: (publisher, room-wide track id); `None`: nothing.
    pub source: Option<(ParticipantId, String)>,
}

/// What the server measured of one participant's media connections, for
/// the operator's dashboard ([`Sfu::participant_figures`]). Counters are
/// cumulative since the connection was made (a rejoin starts afresh);
/// rates and loss over an interval are the caller's, from two readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParticipantFigures {
    pub participant: ParticipantId,
    /// What its publisher connection received: RTP packets and payload
    /// bytes (retransmissions included), and the sequence numbers missing
    /// when the next packet of their stream came (before any
    /// retransmission repaired them).
    pub packets_in: u64,
    pub bytes_in: u64,
    pub lost_in: u64,
    /// How long ago its last media packet came; `None`: none yet.
    pub last_media_in: Option<std::time::Duration>,
    /// Keyframe requests (PLI) the server sent it.
    pub keyframes_asked: u64,
    /// What its subscriber connection sent: RTP packets and payload bytes
    /// (forwarded media and retransmissions).
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Generic NACKs and keyframe requests (PLI, FIR) it sent about what
    /// it receives.
    pub nacks_received: u64,
    pub keyframe_requests_received: u64,
    /// Its latest receiver report: the worst fraction lost (0 to 1) of
    /// what it receives.
    pub loss_out: Option<f64>,
    /// The round-trip time of its latest receiver report that echoed one
    /// of the server's sender reports.
    pub rtt: Option<std::time::Duration>,
    /// The simulcast layer (RTP stream id; "" without simulcast) of each
    /// video it receives now, best first.
    pub layers: Vec<String>,
    /// The transport its media connection uses: `udp` or `tcp` (ICE-TCP).
    /// A TURN relay is not visible to the server (it sees the relay's
    /// address); `None` before media flowed.
    pub path: Option<&'static str>,
}

/// What the engine tells the server about a player of a room's main view
/// ([`Sfu::view`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerEvent {
    /// The player's connection changed state.
    Connection(ConnectionState),
    /// The participant shown changed (`None`: nobody publishes).
    MainView { participant: Option<ParticipantId> },
}

/// Errors of the media plane.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("could not bind the media sockets: {0}")]
    Bind(#[from] std::io::Error),
    #[error("the SDP was not accepted: {0}")]
    BadSdp(String),
    #[error("negotiation out of order: {0}")]
    Negotiation(String),
    #[error("the candidate was not accepted: {0}")]
    BadCandidate(String),
    #[error("participant {0} is already in the media plane")]
    AlreadyJoined(String),
    #[error("unknown participant")]
    UnknownParticipant,
    #[error("unknown track {0}")]
    UnknownTrack(String),
    #[error("the media engine has stopped")]
    Stopped,
}

pub use engine::{Participant, Sfu, SfuStats, Viewer};
/// Gives freed heap memory back to the system (glibc's `malloc_trim`; a
/// no-op elsewhere): for the server after bursts of large allocations.
pub use memory::release_freed as release_freed_memory;
