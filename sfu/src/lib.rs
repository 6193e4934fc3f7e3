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
//! - [`Viewer`] ([`Sfu::view`]): a player of a room's main view (WHEP): the
//!   client offers to receive, we answer with one audio and one video track
//!   that follow the featured participant or the active speaker;
//!   [`ViewerEvent`] says what happens to it.
//! - `engine` (private): the one task that owns every peer connection, the
//!   sockets' demultiplexing and the forwarding; nothing on the hot path locks.
//! - `peer` (private): the only module that speaks to the WebRTC stack
//!   (webrtc-rs `rtc`, sans-I/O). Its types do not leak out of it.
//!   `peer::liveness` decides when a connection is gone: any datagram from
//!   the peer (STUN, DTLS, SRTP, SRTCP) counts, so encoders that send ICE
//!   keepalives only every 25 s (libnice) stay up.
//! - `net` (private): the UDP socket and the TCP listener with RFC 4571
//!   framing, the caps on media TCP connections, and (`demux`)
//!   routing of STUN by class (requests by USERNAME, responses by 5-tuple).
//!
//! Errors are [`SfuError`]: an error means bad input from a client (bad SDP,
//! a negotiation out of order) or a closed engine; a panic would be a bug.

use std::net::{IpAddr, SocketAddr};

mod alloc;
mod bwe;
mod codec;
mod engine;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod memory;
mod net;
mod peer;

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
    /// most recent speakers first (0: all).
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
