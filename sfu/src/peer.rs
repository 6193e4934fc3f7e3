//! The only module that speaks to the WebRTC stack (webrtc-rs `rtc`, sans-I/O).
//!
//! The boundary is "datagram in, datagrams and events out, timeouts": the
//! engine hands a [`Peer`] what arrived on a socket and its timer ticks, and
//! drains [`Peer::poll_transmit`] and [`Peer::poll_event`]. Nothing of `rtc`
//! appears in this module's signatures, so changing the stack changes this file
//! alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::interceptor::NackGeneratorBuilder;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::interceptor::{
    BandwidthEstimator, CongestionControlBuilder, PacketReport, ReceiverReportBuilder,
    SenderReportBuilder, TwccSenderBuilder,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RTCRtpRtxParameters,
    RTCRtpSendParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::{Candidate, ConnectionState, MediaKind, SfuError};

mod liveness;
mod nack;

const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const RRID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
const MIME_TYPE_RTX: &str = "video/rtx";
const MIME_TYPE_RED: &str = "audio/red";
/// How long the SSRC of a removed sent track rests before a new track of
/// the connection takes it again (see [`Peer::add_sender`]).
const SSRC_REST: std::time::Duration = std::time::Duration::from_secs(10);
/// Times a missing received packet is NACKed at most (every 100 ms).
const NACKS_PER_PACKET: u16 = 3;

/// Transport of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    Udp,
    Tcp,
}

/// One of the server's own addresses, announced as a host candidate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalCandidate {
    pub proto: Proto,
    pub addr: SocketAddr,
}

/// A datagram a peer wants sent.
pub(crate) struct Transmit {
    pub proto: Proto,
    /// The local (announced) address it leaves from.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: BytesMut,
}

/// A codec as negotiated, independent of payload type numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Codec {
    pub mime_type: String,
    pub clock_rate: u32,
    pub channels: u16,
    pub fmtp: String,
}

/// An RTP packet, as the engine sees it.
#[derive(Debug, Clone)]
pub(crate) struct RtpPacket {
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Bytes,
}

/// Identifies a track received from the remote side.
pub(crate) type RecvTrack = String;
/// Identifies a track we send to the remote side.
pub(crate) type SendTrack = String;

/// A packet that arrived on a received track, with what forwarding needs.
pub(crate) struct Incoming {
    pub track: RecvTrack,
    pub kind: MediaKind,
    pub codec: Option<Codec>,
    /// The simulcast layer (RTP stream id), empty without simulcast.
    pub layer: String,
    /// The audio level the publisher measured (RFC 6464, -dBov, 127 = silence).
    pub audio_level: Option<u8>,
    /// The payload is RED (RFC 2198) around `codec` (Opus): forward it with
    /// [`Peer::send_red`].
    pub red: bool,
    pub packet: RtpPacket,
}

/// What a peer tells the engine.
pub(crate) enum PeerEvent {
    State(ConnectionState),
    /// Media arrived on a received track.
    Rtp(Incoming),
    /// The remote asked for a keyframe of one of the tracks we send.
    KeyframeRequest {
        track: SendTrack,
    },
    /// A received track was closed by the remote side.
    TrackClosed {
        track: RecvTrack,
    },
}

/// Which way media flows on a connection: it decides the interceptors the
/// connection runs ([`Peer::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Media comes in (a publisher connection).
    Receive,
    /// Media goes out (a subscriber or player connection).
    Send,
    /// Both (the fuzzing entry points and tests, which drive one
    /// connection either way).
    Both,
}

/// One WebRTC peer connection on the server side (ICE-lite, DTLS server).
pub(crate) struct Peer {
    pc: RTCPeerConnection,
    /// Received tracks: track id -> (receiver, kind, ssrc of the media).
    receivers: Vec<(RecvTrack, RTCRtpReceiverId, MediaKind)>,
    /// Sent tracks by track id (looked up for every forwarded packet).
    senders: HashMap<SendTrack, SenderSlot>,
    /// Per received stream (SSRC, payload type): codec, layer, audio-level id.
    stream_meta: HashMap<(u32, u8), StreamMeta>,
    /// Events already translated, waiting for the engine.
    pending: std::collections::VecDeque<PeerEvent>,
    /// The state last reported to the engine.
    last_state: ConnectionState,
    /// The state the stack reports (its ICE timers are off: see
    /// [`liveness`]).
    stack_state: ConnectionState,
    /// When anything last arrived: the silence rule of [`liveness`].
    liveness: liveness::Liveness,
    /// What the RTX unwrapper (an interceptor of this connection) needs of
    /// the negotiation, and its counters.
    repair: Arc<Mutex<RepairState>>,
    /// Per sent track: the payload types the remote accepted for `audio/red`
    /// and for the track's own codec, once looked up (see [`Peer::send_red`]).
    red_senders: HashMap<SendTrack, (Option<u8>, Option<u8>)>,
    /// SSRCs of sent tracks removed, oldest first: the next sent track of
    /// the same kind takes one again once an offer made after the removal
    /// has been answered and it has rested [`SSRC_REST`] (see
    /// [`Peer::add_sender`]).
    free_ssrcs: std::collections::VecDeque<FreeSsrc>,
    /// Offers made, and the number of the last one whose answer was applied.
    offers_made: u64,
    offer_answered: u64,
    /// The bandwidth estimate of what this connection sends (a subscriber
    /// connection), fed by the remote's TWCC feedback or REMB through two
    /// interceptors of this connection ([`BweFeed`], [`RtcpTap`]).
    bwe: Arc<Mutex<crate::bwe::Estimator>>,
    /// Media payload type -> the RTX payload type that repairs it, in what
    /// this connection sends (answer mode), for [`RtxRetag`].
    rtx_send: Arc<Mutex<HashMap<u8, u8>>>,
}

#[derive(Default)]
struct StreamMeta {
    codec: Option<Codec>,
    layer: String,
    level_ext: Option<u8>,
    /// The payload type is `audio/red` around `codec`.
    red: bool,
}

struct SenderSlot {
    id: RTCRtpSenderId,
    ssrc: u32,
    /// The RTX SSRC we chose for a video track (retransmissions on it).
    rtx_ssrc: Option<u32>,
    kind: MediaKind,
    /// The codec of what is sent; `None`: any codec the remote accepted on
    /// this track, named per packet ([`Peer::send_rtp_as`], answer mode).
    codec: Option<Codec>,
    /// The payload type the remote accepted for a codec (by MIME type), the
    /// last one looked up.
    payload_type: Option<(String, u8)>,
    /// Added to the sequence numbers of what is sent (see [`SeqCarry`]).
    seq: SeqCarry,
}

/// Sequence numbers on an SSRC taken again: the new track's packets
/// continue where the removed track's stopped. SRTP protects each SSRC with
/// a replay window and a rollover counter that the receiver keeps for the
/// SSRC, not for the track: a new stream that started at its own (random)
/// sequence number, behind the old one, was dropped by Chromium as replayed
/// or undecryptable, and the rejoined participant was not heard.
#[derive(Debug, Default, Clone, Copy)]
struct SeqCarry {
    /// The removed track's newest sequence number, until the first packet.
    after: Option<u16>,
    offset: u16,
    /// The newest sequence number sent.
    newest: Option<u16>,
}

impl SeqCarry {
    fn continuing(after: Option<u16>) -> SeqCarry {
        SeqCarry {
            after,
            ..SeqCarry::default()
        }
    }

    /// The newest sequence number on the SSRC: sent by this track, or, if
    /// it sent nothing, by the track it took the SSRC from.
    fn last(&self) -> Option<u16> {
        self.newest.or(self.after)
    }

    /// The sequence number to send `seq` as.
    fn map(&mut self, seq: u16) -> u16 {
        if let Some(after) = self.after.take() {
            self.offset = after.wrapping_add(1).wrapping_sub(seq);
        }
        let out = seq.wrapping_add(self.offset);
        if self
            .newest
            .is_none_or(|n| crate::forward::seq_newer(out, n))
        {
            self.newest = Some(out);
        }
        out
    }
}

/// The SSRC of a removed sent track, waiting to be taken again.
struct FreeSsrc {
    ssrc: u32,
    /// The removed video track's RTX SSRC, taken with it.
    rtx_ssrc: Option<u32>,
    /// The newest sequence number sent on it.
    newest_seq: Option<u16>,
    kind: MediaKind,
    /// When the track was removed.
    at: Instant,
    /// [`Peer::offers_made`] then: the removal is in the offers after it.
    offers_made: u64,
}

/// Takes the oldest free SSRC of `kind` that may be used again at `now`:
/// rested [`SSRC_REST`], and removed before an offer that has been answered
/// (`offer_answered`, see [`Peer::offers_made`]).
fn take_free_ssrc(
    free: &mut std::collections::VecDeque<FreeSsrc>,
    kind: MediaKind,
    offer_answered: u64,
    now: Instant,
) -> Option<FreeSsrc> {
    let i = free.iter().position(|f| {
        f.kind == kind
            && offer_answered > f.offers_made
            && now.saturating_duration_since(f.at) >= SSRC_REST
    })?;
    free.remove(i)
}

fn media_engine() -> Result<MediaEngine, SfuError> {
    let mut engine = MediaEngine::default();
    let rtx = |apt: u8| RTCRtpCodec {
        mime_type: MIME_TYPE_RTX.into(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: format!("apt={apt}"),
        rtcp_feedback: vec![],
    };
    let video_fb = || {
        vec![
            RTCPFeedback {
                typ: "ccm".into(),
                parameter: "fir".into(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "".into(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "pli".into(),
            },
        ]
    };
    let codecs = [
        (
            RtpCodecKind::Audio,
            RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            111,
        ),
        (
            RtpCodecKind::Video,
            RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.into(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: "".into(),
                rtcp_feedback: video_fb(),
            },
            96,
        ),
        (
            RtpCodecKind::Video,
            RTCRtpCodec {
                mime_type: MIME_TYPE_H264.into(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
                rtcp_feedback: video_fb(),
            },
            102,
        ),
        // RFC 4588 retransmissions, one RTX format per video codec: lost
        // packets are resent on a separate SSRC, so a receiver's statistics
        // and a sender's bandwidth probes (padding on the RTX SSRC) stay apart
        // from the media.
        (RtpCodecKind::Video, rtx(96), 97),
        (RtpCodecKind::Video, rtx(102), 103),
        // RFC 2198 redundant audio around Opus, as browsers offer it. Passed
        // through to subscribers that accept it, reduced to its primary Opus
        // block for those that do not.
        (
            RtpCodecKind::Audio,
            RTCRtpCodec {
                mime_type: MIME_TYPE_RED.into(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "111/111".into(),
                rtcp_feedback: vec![],
            },
            63,
        ),
    ];
    for (kind, codec, pt) in codecs {
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type: pt,
                },
                kind,
            )
            .map_err(|e| SfuError::Negotiation(format!("media engine: {e}")))?;
    }
    Ok(engine)
}

fn to_kind(kind: RtpCodecKind) -> MediaKind {
    match kind {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    }
}

fn to_state(state: RTCPeerConnectionState) -> Option<ConnectionState> {
    Some(match state {
        RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => {
            ConnectionState::Connecting
        }
        RTCPeerConnectionState::Connected => ConnectionState::Connected,
        RTCPeerConnectionState::Disconnected => ConnectionState::Disconnected,
        RTCPeerConnectionState::Failed => ConnectionState::Failed,
        RTCPeerConnectionState::Closed => ConnectionState::Closed,
        _ => return None,
    })
}

fn stack_err(context: &str, e: impl std::fmt::Display) -> SfuError {
    SfuError::Negotiation(format!("{context}: {e}"))
}

impl Peer {
    /// A new server-side peer connection announcing `candidates`.
    pub fn new(candidates: &[LocalCandidate], direction: Direction) -> Result<Peer, SfuError> {
        // No fixed ICE credentials: the stack draws random ones, and draws
        // new ones on an ICE restart (fixed ones would be reused by it).
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            // The stack's ICE timers count STUN only; zero switches them off
            // and `liveness` counts every datagram instead.
            .with_ice_timeouts(
                Some(std::time::Duration::ZERO),
                Some(std::time::Duration::ZERO),
                None,
            )
            .build();
        let mut engine = media_engine()?;
        configure_simulcast_extension_headers(&mut engine)
            .map_err(|e| stack_err("media engine", e))?;
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(|e| stack_err("media engine", e))?;
        let repair = Arc::new(Mutex::new(RepairState::default()));
        let rtx_send = Arc::new(Mutex::new(HashMap::new()));
        let bwe = Arc::new(Mutex::new(crate::bwe::Estimator::new()));
        // Every packet written or read walks every interceptor of the chain
        // (each queues and passes it on), so a connection gets only those of
        // the direction it carries: a publisher connection only receives
        // media, a subscriber (or player) connection only sends it. The SDP
        // (the media engine) is the same for both.
        let receives = matches!(direction, Direction::Receive | Direction::Both);
        let sends = matches!(direction, Direction::Send | Direction::Both);
        let mut registry = Registry::new();
        if receives {
            registry = registry
                // After FEC recovery, before the NACK generator (7_000): a
                // retransmission must count as the packet it repairs.
                .with(Slot::from(6_500), RtxUnwrap::new(repair.clone()))
                // The stack NACKs a missing packet every 100 ms until it
                // leaves the receive log (512 packets: many seconds of a
                // thumbnail). When the server itself drops datagrams (a
                // starved CPU, a full socket buffer), that asked publishers
                // for many times their media rate in retransmissions, which
                // starved it more. A packet is asked for at most
                // `NACKS_PER_PACKET` times (300 ms); later, a keyframe is the
                // cheaper repair.
                .with(
                    Slot::NackGenerator,
                    NackGeneratorBuilder::new()
                        .with_max_nacks_per_packet(NACKS_PER_PACKET)
                        .build(),
                )
                .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
        }
        if sends {
            registry = registry
                // Wire-side of the NACK responder (4_000; the write walk goes
                // from large slots to small), so that it sees the responder's
                // RTX packets.
                .with(Slot::from(3_500), RtxRetag::new(rtx_send.clone()))
                // NACK as the stack's configure_nack, but our own responder
                // (nack.rs): a history per sent stream allocated when the
                // stream first sends and bounded in time (1 s), not the
                // stack's fixed buffer per negotiated stream.
                .with(Slot::NackResponder, nack::NackResponder::default())
                .with(Slot::SenderReport, SenderReportBuilder::new().build());
        }
        for parameter in ["", "pli"] {
            engine.register_feedback(
                RTCPFeedback {
                    typ: "nack".into(),
                    parameter: parameter.into(),
                },
                RtpCodecKind::Video,
            );
        }
        // Transport-wide congestion control feedback for what publishers send:
        // without it a browser's send estimate starts at 300 kbit/s and climbs
        // only from receiver reports, so its top simulcast layer takes ~20 s.
        // The stack's helper registers the feedback and header extension in
        // the media engine (the SDP of every connection) and adds the
        // interceptor that answers; only a receiving connection keeps it.
        registry = if receives {
            configure_twcc_receiver_only(registry, &mut engine)
        } else {
            configure_twcc_receiver_only(Registry::new(), &mut engine).map(|_| registry)
        }
        .map_err(|e| stack_err("media engine", e))?;
        // What we send (subscriber connections) carries transport-wide
        // sequence numbers; the stack joins the remote's TWCC feedback to the
        // departures and hands the results to our estimator (bwe.rs). No
        // pacer: the engine fits the estimate by choosing layers. REMB is
        // offered too, as the fallback of a remote without TWCC.
        engine.register_feedback(
            RTCPFeedback {
                typ: "goog-remb".into(),
                parameter: "".into(),
            },
            RtpCodecKind::Video,
        );
        if sends {
            registry = registry
                .with(Slot::TwccSender, TwccSenderBuilder::new().build())
                .with(
                    Slot::CongestionControl,
                    CongestionControlBuilder::new(BweFeed(bwe.clone())).build(),
                )
                // Wire-side of the congestion control (see RtcpTap).
                .with(Slot::Custom(1), RtcpTap::new(bwe.clone()));
        }
        let config = RTCConfigurationBuilder::new().build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(setting_engine)
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .build(Instant::now())
            .map_err(|e| stack_err("peer connection", e))?;
        for c in candidates {
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: match c.proto {
                        Proto::Udp => "udp".to_owned(),
                        Proto::Tcp => "tcp".to_owned(),
                    },
                    address: c.addr.ip().to_string(),
                    port: c.addr.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type: match c.proto {
                    Proto::Udp => rtc::ice::tcp_type::TcpType::Unspecified,
                    Proto::Tcp => rtc::ice::tcp_type::TcpType::Passive,
                },
            }
            .new_candidate_host()
            .map_err(|e| stack_err("local candidate", e))?;
            let init = RTCIceCandidate::from(&host)
                .to_json()
                .map_err(|e| stack_err("local candidate", e))?;
            pc.add_local_candidate(init)
                .map_err(|e| stack_err("local candidate", e))?;
        }
        Ok(Peer {
            pc,
            receivers: Vec::new(),
            stream_meta: HashMap::new(),
            senders: HashMap::new(),
            pending: Default::default(),
            last_state: ConnectionState::Connecting,
            stack_state: ConnectionState::Connecting,
            liveness: liveness::Liveness::default(),
            repair,
            red_senders: HashMap::new(),
            free_ssrcs: Default::default(),
            offers_made: 0,
            offer_answered: 0,
            bwe,
            rtx_send,
        })
    }

    /// The bandwidth estimate of what this connection sends.
    pub fn bandwidth(&self, now: Instant) -> crate::bwe::Estimate {
        lock_bwe(&self.bwe).estimate(now)
    }

    /// A trial upgrade to `bps` in all went through: raise the estimate.
    pub fn bandwidth_accept(&self, bps: u64) {
        lock_bwe(&self.bwe).accept(bps);
    }

    /// Our current ICE username fragment (the engine routes STUN by it),
    /// from our latest local description: None before the first one; an
    /// ICE restart changes it.
    pub fn ufrag(&self) -> Option<String> {
        ufrag_in(&self.pc.local_description()?.sdp)
    }

    /// Asks for an ICE restart: our next offer carries new ICE credentials
    /// (for the connection where we offer; where the remote offers, a
    /// restart is its offer with new credentials, which
    /// [`Peer::accept_offer`] follows with new ones of ours).
    pub fn restart_ice(&mut self) {
        self.pc.restart_ice();
    }

    /// Applies a remote offer and returns our answer.
    pub fn accept_offer(&mut self, now: Instant, sdp: String) -> Result<String, SfuError> {
        let negotiated = RepairNegotiation::from_sdp(&sdp);
        let sdp = match self.pc.remote_description() {
            Some(previous) => keep_simulcast_bindings(&previous.sdp, &sdp),
            None => sdp,
        };
        let offer =
            RTCSessionDescription::offer(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        self.stream_meta.clear();
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        // The answer takes the offer's payload types and extension ids.
        lock_repair(&self.repair).negotiated = negotiated;
        let answer = self
            .pc
            .create_answer(None)
            .map_err(|e| stack_err("create answer", e))?;
        self.pc
            .set_local_description(now, answer.clone())
            .map_err(|e| stack_err("set local answer", e))?;
        self.collect();
        Ok(answer.sdp)
    }

    /// Makes an offer (for the subscriber connection).
    pub fn create_offer(&mut self, now: Instant) -> Result<String, SfuError> {
        let offer = self
            .pc
            .create_offer(None)
            .map_err(|e| stack_err("create offer", e))?;
        self.pc
            .set_local_description(now, offer.clone())
            .map_err(|e| stack_err("set local offer", e))?;
        self.offers_made += 1;
        Ok(offer.sdp)
    }

    /// Applies the remote answer to our offer.
    pub fn accept_answer(&mut self, now: Instant, sdp: String) -> Result<(), SfuError> {
        let answer =
            RTCSessionDescription::answer(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        self.offer_answered = self.offers_made;
        // Payload types may have changed with this answer.
        for s in self.senders.values_mut() {
            s.payload_type = None;
        }
        self.red_senders.clear();
        self.collect();
        Ok(())
    }

    /// Adds a remote candidate (trickle ICE).
    pub fn add_remote_candidate(&mut self, c: Candidate) -> Result<(), SfuError> {
        if c.candidate.trim().is_empty() {
            return Ok(());
        }
        self.pc
            .add_remote_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                username_fragment: c.username_fragment,
                ..Default::default()
            })
            .map_err(|e| SfuError::BadCandidate(e.to_string()))
    }

    /// Adds a track we send; `stream` becomes the msid stream id.
    pub fn add_send_track(
        &mut self,
        stream: &str,
        track: &str,
        kind: MediaKind,
        codec: &Codec,
    ) -> Result<(), SfuError> {
        self.add_sender(stream, track, kind, Some(codec))
    }

    /// A random SSRC that no sent track or free SSRC uses.
    fn unused_ssrc(&self) -> u32 {
        self.unused_ssrc_besides(0)
    }

    /// [`Peer::unused_ssrc`], other than `taken` (chosen, not yet recorded).
    fn unused_ssrc_besides(&self, taken: u32) -> u32 {
        loop {
            let s: u32 = rand::random();
            if s != 0
                && s != taken
                && !self
                    .senders
                    .values()
                    .any(|x| x.ssrc == s || x.rtx_ssrc == Some(s))
                && !self
                    .free_ssrcs
                    .iter()
                    .any(|f| f.ssrc == s || f.rtx_ssrc == Some(s))
            {
                return s;
            }
        }
    }

    /// Adds a sent track; without a codec it may carry any codec the remote
    /// accepts for its `m=` section (the payload type is chosen per packet).
    fn add_sender(
        &mut self,
        stream: &str,
        track: &str,
        kind: MediaKind,
        codec: Option<&Codec>,
    ) -> Result<(), SfuError> {
        // The stack keeps statistics for every SSRC a connection ever sent on
        // (rtc 0.21.1: ~0.9 KB each, never dropped, as the W3C stats model
        // keeps them), so a long-lived subscriber connection (the chair's, a
        // whole meeting of bridge points coming and going) grew by two
        // entries per participant that ever joined. A track takes the SSRC
        // of a removed track of its kind again (a video track its RTX SSRC
        // too), which keeps the entries at the most tracks the connection
        // ever had at once. Only after a rest: by then the renegotiation
        // that removed the track is done and the stack (and our
        // interceptors, keyed by SSRC) have let go of its stream, and the
        // remote's receiver of it is gone. The new track's sequence numbers
        // continue the old ones ([`SeqCarry`]; the NACK responder does the
        // same for the RTX SSRC): the remote's SRTP keeps a replay window
        // per SSRC, and Chromium dropped a reused SSRC's packets that fell
        // behind it (tests/e2e/media_checks.mjs `rejoin`).
        let reuse = take_free_ssrc(
            &mut self.free_ssrcs,
            kind,
            self.offer_answered,
            Instant::now(),
        );
        let (ssrc, rtx_ssrc, seq) = match reuse {
            Some(f) => {
                tracing::debug!(track, ssrc = f.ssrc, "sent track takes a freed SSRC");
                (f.ssrc, f.rtx_ssrc, SeqCarry::continuing(f.newest_seq))
            }
            None => (self.unused_ssrc(), None, SeqCarry::default()),
        };
        // Video retransmits on an RTX SSRC of ours (the stack would draw a
        // random one, which could not be taken again).
        let rtx_ssrc = match kind {
            MediaKind::Video => Some(rtx_ssrc.unwrap_or_else(|| self.unused_ssrc_besides(ssrc))),
            MediaKind::Audio => None,
        };
        // An empty codec leaves the transceiver's codecs as negotiated, where
        // a named one would narrow them to that codec alone.
        let rtp_codec = codec
            .map(|codec| RTCRtpCodec {
                mime_type: codec.mime_type.clone(),
                clock_rate: codec.clock_rate,
                channels: codec.channels,
                sdp_fmtp_line: codec.fmtp.clone(),
                rtcp_feedback: vec![],
            })
            .unwrap_or_default();
        let t = MediaStreamTrack::new(
            stream.to_owned(),
            track.to_owned(),
            track.to_owned(),
            match kind {
                MediaKind::Audio => RtpCodecKind::Audio,
                MediaKind::Video => RtpCodecKind::Video,
            },
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                    ..Default::default()
                },
                active: true,
                codec: rtp_codec,
                ..Default::default()
            }],
        );
        let id = self
            .pc
            .add_track(t)
            .map_err(|e| stack_err("add track", e))?;
        self.senders.insert(
            track.to_owned(),
            SenderSlot {
                id,
                ssrc,
                rtx_ssrc,
                kind,
                codec: codec.cloned(),
                payload_type: None,
                seq,
            },
        );
        Ok(())
    }

    /// Answers an offer that only receives (a player, WHEP: the client
    /// offers, we send). For each `(track, kind)` whose kind the offer has, a
    /// sent track named `track` takes the offer's `m=` section of that kind;
    /// it carries any codec negotiated there ([`Peer::send_rtp_as`]). Each
    /// sent stream gets RTCP sender reports and answers the player's NACKs
    /// (over RTX where negotiated): see [`Peer::bind_answer_sender`].
    /// Returns the answer; the kinds the offer lacks get no track.
    pub fn answer_sending(
        &mut self,
        now: Instant,
        sdp: String,
        stream: &str,
        tracks: &[(&str, MediaKind)],
    ) -> Result<String, SfuError> {
        let has_kind = |kind: MediaKind| {
            sdp.lines()
                .any(|l| l.starts_with(&format!("m={} ", kind.as_str())))
        };
        let wanted: Vec<(&str, MediaKind)> = tracks
            .iter()
            .copied()
            .filter(|(_, kind)| has_kind(*kind))
            .collect();
        if wanted.is_empty() {
            return Err(SfuError::BadSdp(
                "the offer has no audio or video section".into(),
            ));
        }
        let offer =
            RTCSessionDescription::offer(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let mut rtx_of = HashMap::new();
        for (track, kind) in &wanted {
            self.add_sender(stream, track, *kind, None)?;
            rtx_of.extend(self.bind_answer_sender(stream, track, *kind)?);
        }
        // Which RTX payload type repairs which codec, for [`RtxRetag`]
        // (before the answer is applied: that binds the streams).
        *lock_rtx_send(&self.rtx_send) = rtx_of;
        let answer = self
            .pc
            .create_answer(None)
            .map_err(|e| stack_err("create answer", e))?;
        self.pc
            .set_local_description(now, answer.clone())
            .map_err(|e| stack_err("set local answer", e))?;
        self.collect();
        Ok(answer.sdp)
    }

    /// Makes the stack bind a sent track of an answer to its RTCP machinery.
    ///
    /// rtc 0.21.1 gives a sent stream sender reports and a NACK responder
    /// only when the track's coding names a codec that matches a negotiated
    /// one (it binds the stream to its interceptors when the answer is
    /// applied); [`Peer::answer_sending`] adds its tracks without a codec so
    /// that a track can carry every codec of its section. So, once the offer
    /// is applied, this names the section's first negotiated codec and, for
    /// video where the remote accepted RTX for it, an RTX SSRC (declared in
    /// the answer as `a=ssrc-group:FID`). The negotiated codecs stay as they
    /// were, and neither the reports (SSRC, clock rate: 90 kHz for every
    /// video codec, 48 kHz for Opus and RED) nor plain retransmissions
    /// depend on the named codec; RTX does (its payload type names the codec
    /// it repairs), which [`RtxRetag`] corrects per packet. Returns the
    /// track's negotiated RTX payload types by the payload type they repair.
    fn bind_answer_sender(
        &mut self,
        stream: &str,
        track: &str,
        kind: MediaKind,
    ) -> Result<HashMap<u8, u8>, SfuError> {
        let Some(slot) = self.senders.get(track) else {
            return Ok(HashMap::new());
        };
        let (id, ssrc) = (slot.id, slot.ssrc);
        let rtx_ssrc = slot
            .rtx_ssrc
            .unwrap_or_else(|| self.unused_ssrc_besides(ssrc));
        let mut sender = self
            .pc
            .rtp_sender(id)
            .ok_or_else(|| SfuError::Negotiation("sender gone".into()))?;
        let params = sender.get_parameters().clone();
        let codecs = &params.rtp_parameters.codecs;
        let rtx_of = rtx_payload_types(codecs);
        let Some(first) = codecs
            .iter()
            .find(|c| is_media_codec(&c.rtp_codec.mime_type))
        else {
            return Ok(rtx_of);
        };
        let rtx = kind == MediaKind::Video && rtx_of.contains_key(&first.payload_type);
        let mut encodings = params.encodings.clone();
        for e in &mut encodings {
            e.codec = first.rtp_codec.clone();
            e.rtp_coding_parameters.rtx = rtx.then_some(RTCRtpRtxParameters { ssrc: rtx_ssrc });
        }
        sender
            .set_parameters(
                RTCRtpSendParameters {
                    encodings: encodings.clone(),
                    ..params.clone()
                },
                None,
            )
            .map_err(|e| stack_err("sender parameters", e))?;
        sender
            .replace_track(MediaStreamTrack::new(
                stream.to_owned(),
                track.to_owned(),
                track.to_owned(),
                match kind {
                    MediaKind::Audio => RtpCodecKind::Audio,
                    MediaKind::Video => RtpCodecKind::Video,
                },
                encodings,
            ))
            .map_err(|e| stack_err("sender track", e))?;
        Ok(rtx_of)
    }

    /// Removes a track we send. Returns whether it was there.
    pub fn remove_send_track(&mut self, track: &str) -> Result<bool, SfuError> {
        let Some(slot) = self.senders.remove(track) else {
            return Ok(false);
        };
        self.pc
            .remove_track(slot.id)
            .map_err(|e| stack_err("remove track", e))?;
        // Taken again later: see `add_sender`.
        self.free_ssrcs.push_back(FreeSsrc {
            ssrc: slot.ssrc,
            rtx_ssrc: slot.rtx_ssrc,
            newest_seq: slot.seq.last(),
            kind: slot.kind,
            at: Instant::now(),
            offers_made: self.offers_made,
        });
        Ok(true)
    }

    /// Sends a packet on one of our tracks, rewriting SSRC and payload type.
    pub fn send_rtp(&mut self, now: Instant, track: &str, p: &RtpPacket) -> Result<(), SfuError> {
        self.send_rtp_as(now, track, None, p)
    }

    /// Sends a packet in codec `mime` (default: the track's own codec) on one
    /// of our tracks, rewriting SSRC and payload type.
    pub fn send_rtp_as(
        &mut self,
        now: Instant,
        track: &str,
        mime: Option<&str>,
        p: &RtpPacket,
    ) -> Result<(), SfuError> {
        let Some(slot) = self.senders.get_mut(track) else {
            return Err(SfuError::Negotiation("no such sent track".into()));
        };
        let Some(mime) = mime.or(slot.codec.as_ref().map(|c| c.mime_type.as_str())) else {
            return Err(SfuError::Negotiation("no codec for the track".into()));
        };
        let pt = match &slot.payload_type {
            Some((m, pt)) if m.eq_ignore_ascii_case(mime) => *pt,
            _ => {
                let mut sender = self
                    .pc
                    .rtp_sender(slot.id)
                    .ok_or_else(|| SfuError::Negotiation("sender gone".into()))?;
                let params = sender.get_parameters();
                let pt = params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                    .map(|c| c.payload_type)
                    .ok_or_else(|| SfuError::Negotiation("codec not negotiated".into()))?;
                slot.payload_type = Some((mime.to_owned(), pt));
                pt
            }
        };
        let mut packet = rtc::rtp::packet::Packet::default();
        packet.header.version = 2;
        packet.header.marker = p.marker;
        packet.header.payload_type = pt;
        packet.header.sequence_number = slot.seq.map(p.sequence_number);
        packet.header.timestamp = p.timestamp;
        packet.header.ssrc = slot.ssrc;
        packet.payload = p.payload.clone();
        let id = slot.id;
        let mut sender = self
            .pc
            .rtp_sender(id)
            .ok_or_else(|| SfuError::Negotiation("sender gone".into()))?;
        sender
            .write_rtp(now, packet)
            .map_err(|e| stack_err("write rtp", e))
    }

    /// Sends a RED payload (RFC 2198 around the track's codec, Opus) on one
    /// of our tracks: as RED where the remote accepted `audio/red` (its
    /// blocks renumbered to the remote's payload type for the codec), else
    /// its primary block alone, as a plain packet of the track's codec.
    pub fn send_red(&mut self, now: Instant, track: &str, p: &RtpPacket) -> Result<(), SfuError> {
        let (red_pt, own_pt) = match self.red_senders.get(track) {
            Some(known) => *known,
            None => {
                let Some(slot) = self.senders.get(track) else {
                    return Err(SfuError::Negotiation("no such sent track".into()));
                };
                let own = slot.codec.as_ref().map(|c| c.mime_type.clone());
                let mut sender = self
                    .pc
                    .rtp_sender(slot.id)
                    .ok_or_else(|| SfuError::Negotiation("sender gone".into()))?;
                let codecs = &sender.get_parameters().rtp_parameters.codecs;
                let pt_of = |mime: &str| {
                    codecs
                        .iter()
                        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                        .map(|c| c.payload_type)
                };
                let known = (pt_of(MIME_TYPE_RED), own.as_deref().and_then(pt_of));
                self.red_senders.insert(track.to_owned(), known);
                known
            }
        };
        let Some((primary_pt, primary)) = crate::codec::red_primary(&p.payload) else {
            return Err(SfuError::Negotiation("malformed RED payload".into()));
        };
        match (red_pt, own_pt) {
            (Some(_), Some(own)) => {
                let payload = if primary_pt == own {
                    p.payload.clone()
                } else {
                    crate::codec::red_map_pt(&p.payload, primary_pt, own)
                        .map(bytes::Bytes::from)
                        .unwrap_or_else(|| p.payload.clone())
                };
                let out = RtpPacket {
                    payload,
                    ..p.clone()
                };
                self.send_rtp_as(now, track, Some(MIME_TYPE_RED), &out)
            }
            _ => {
                let out = RtpPacket {
                    payload: p.payload.slice_ref(primary),
                    ..p.clone()
                };
                self.send_rtp_as(now, track, None, &out)
            }
        }
    }

    /// Asks the publisher of receiving `track` for a keyframe of each of
    /// `layers` (rids; "" is the stream of a track without simulcast) with
    /// a PLI on that layer's SSRC; where none of them is known, of every
    /// stream of the track. Returns how many PLIs were written.
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        track: &str,
        layers: &[String],
    ) -> Result<u64, SfuError> {
        let Some(&(_, receiver_id, _)) = self.receivers.iter().find(|r| r.0 == track) else {
            return Ok(0);
        };
        let mut receiver = self
            .pc
            .rtp_receiver(receiver_id)
            .ok_or_else(|| SfuError::Negotiation("receiver gone".into()))?;
        let all: Vec<(u32, String)> = receiver
            .track()
            .ssrcs()
            .map(|ssrc| {
                let rid = receiver.track().rid(ssrc).cloned().unwrap_or_default();
                (ssrc, rid)
            })
            .collect();
        let mut chosen: Vec<u32> = all
            .iter()
            .filter(|(_, rid)| layers.contains(rid))
            .map(|(ssrc, _)| *ssrc)
            .collect();
        if chosen.is_empty() {
            chosen = all.iter().map(|(ssrc, _)| *ssrc).collect();
        }
        for &media_ssrc in &chosen {
            receiver
                .write_rtcp(
                    now,
                    vec![Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc,
                    })],
                )
                .map_err(|e| stack_err("write rtcp", e))?;
        }
        Ok(chosen.len() as u64)
    }

    /// Feeds a datagram that arrived for this peer.
    pub fn handle_input(
        &mut self,
        now: Instant,
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
        data: BytesMut,
    ) {
        // STUN, DTLS, SRTP and SRTCP alike: the peer is there.
        self.liveness.received(now);
        let r = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: remote,
                ecn: None,
                transport_protocol: match proto {
                    Proto::Udp => TransportProtocol::UDP,
                    Proto::Tcp => TransportProtocol::TCP,
                },
            },
            message: data,
        });
        if let Err(e) = r {
            tracing::trace!("datagram refused by peer: {e}");
        }
        self.collect();
    }

    /// When the peer next needs [`Peer::handle_timeout`].
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let ours = self.liveness.deadline(self.stack_state, Instant::now());
        match (self.pc.poll_timeout(), ours) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drives the peer's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.pc.handle_timeout(now) {
            tracing::trace!("peer timeout: {e}");
        }
        self.collect();
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let out = self.pc.poll_write()?;
        Some(Transmit {
            proto: match out.transport.transport_protocol {
                TransportProtocol::TCP => Proto::Tcp,
                _ => Proto::Udp,
            },
            local: out.transport.local_addr,
            remote: out.transport.peer_addr,
            data: out.message,
        })
    }

    /// The next event for the engine.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.collect();
        self.pending.pop_front()
    }

    /// Closes the connection.
    pub fn close(&mut self) {
        if let Err(e) = self.pc.close() {
            tracing::trace!("close: {e}");
        }
    }

    /// Reports the state the stack's and [`liveness`] imply, when it changed.
    fn report_state(&mut self, now: Instant) {
        let state = self.liveness.state(self.stack_state, now);
        if state != self.last_state {
            self.last_state = state;
            self.pending.push_back(PeerEvent::State(state));
        }
    }

    /// Translates the stack's events and messages into ours.
    fn collect(&mut self) {
        let mut connected_now = false;
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                    if let Some(state) = to_state(s) {
                        self.stack_state = state;
                    }
                }
                // Pitfall 1 of notes/webrtc-stack.md: get DTLS going at once.
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                    rtc::peer_connection::state::RTCIceConnectionState::Connected,
                ) => connected_now = true,
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self
                        .pc
                        .rtp_receiver(init.receiver_id)
                        .map(|r| to_kind(r.track().kind()))
                        .unwrap_or(MediaKind::Video);
                    if !self.receivers.iter().any(|r| r.0 == init.track_id) {
                        self.receivers
                            .push((init.track_id.clone(), init.receiver_id, kind));
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) => {
                    self.receivers.retain(|r| r.0 != track);
                    self.pending.push_back(PeerEvent::TrackClosed { track });
                }
                _ => {}
            }
        }
        self.report_state(Instant::now());
        if connected_now {
            if let Err(e) = self.pc.handle_timeout(Instant::now()) {
                tracing::trace!("peer timeout: {e}");
            }
        }
        while let Some(msg) = self.pc.poll_read() {
            match msg.message {
                RTCMessage::RtpPacket(track, packet) => {
                    let Some(&(_, receiver_id, kind)) =
                        self.receivers.iter().find(|r| r.0 == track)
                    else {
                        continue;
                    };
                    let pt = packet.header.payload_type;
                    let ssrc = packet.header.ssrc;
                    // What the stack knows of a stream does not change between
                    // negotiations: look it up once per (SSRC, payload type).
                    let key = (ssrc, pt);
                    if !self.stream_meta.contains_key(&key) {
                        let meta = match self.pc.rtp_receiver(receiver_id) {
                            Some(mut r) => {
                                let layer = r.track().rid(ssrc).cloned().unwrap_or_default();
                                let params = &r.get_parameters().rtp_parameters;
                                let level_ext = params
                                    .header_extensions
                                    .iter()
                                    .find(|h| h.uri == AUDIO_LEVEL_URI)
                                    .and_then(|h| u8::try_from(h.id).ok());
                                let codec_of =
                                    |pt: u8| {
                                        params.codecs.iter().find(|c| c.payload_type == pt).map(
                                            |c| Codec {
                                                mime_type: c.rtp_codec.mime_type.clone(),
                                                clock_rate: c.rtp_codec.clock_rate,
                                                channels: c.rtp_codec.channels,
                                                fmtp: c.rtp_codec.sdp_fmtp_line.clone(),
                                            },
                                        )
                                    };
                                let mut codec = codec_of(pt);
                                // RED (RFC 2198) is a wrapper: the track's codec is
                                // the one its fmtp names ("111/111": Opus at 111).
                                let red = codec.as_ref().is_some_and(|c| {
                                    c.mime_type.eq_ignore_ascii_case(MIME_TYPE_RED)
                                });
                                if red {
                                    codec = codec
                                        .as_ref()
                                        .and_then(|c| c.fmtp.split('/').next())
                                        .and_then(|p| p.trim().parse::<u8>().ok())
                                        .and_then(codec_of);
                                }
                                StreamMeta {
                                    codec,
                                    layer,
                                    level_ext,
                                    red,
                                }
                            }
                            None => StreamMeta::default(),
                        };
                        // Bounded: a hostile publisher cycling SSRCs cannot grow it.
                        if self.stream_meta.len() >= 64 {
                            self.stream_meta.clear();
                        }
                        self.stream_meta.insert(key, meta);
                    }
                    let (codec, layer, level_ext, red) = match self.stream_meta.get(&key) {
                        Some(m) => (m.codec.clone(), m.layer.clone(), m.level_ext, m.red),
                        None => (None, String::new(), None, false),
                    };
                    // RFC 6464: the level in -dBov, 0 (loudest) to 127 (silence).
                    let audio_level = level_ext
                        .filter(|_| kind == MediaKind::Audio)
                        .and_then(|id| packet.header.get_extension(id))
                        .and_then(|v| v.first().map(|b| b & 0x7f));
                    self.pending.push_back(PeerEvent::Rtp(Incoming {
                        track,
                        kind,
                        codec,
                        layer,
                        audio_level,
                        red,
                        packet: RtpPacket {
                            marker: packet.header.marker,
                            sequence_number: packet.header.sequence_number,
                            timestamp: packet.header.timestamp,
                            ssrc,
                            payload: packet.payload,
                        },
                    }));
                }
                RTCMessage::RtcpPacket(track, packets) => {
                    if !self.senders.contains_key(&track) {
                        continue;
                    }
                    if asks_for_keyframe(&packets) {
                        self.pending.push_back(PeerEvent::KeyframeRequest { track });
                    }
                }
                _ => {}
            }
        }
    }
}

/// The ICE username fragment an SDP names.
pub(crate) fn ufrag_in(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| {
        l.trim()
            .strip_prefix("a=ice-ufrag:")
            .map(|u| u.trim().to_owned())
    })
}

/// Whether an RTCP compound packet asks for a keyframe (PLI or FIR).
fn asks_for_keyframe(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    packets.iter().any(|p| {
        let any = p.as_any();
        any.downcast_ref::<PictureLossIndication>().is_some()
            || any.downcast_ref::<FullIntraRequest>().is_some()
    })
}

/// Generic NACKs received (only subscriber connections are sent media, so
/// only they send them), and the packets they ask for; process-wide totals
/// for the metrics (the NACK responder, nack.rs, answers them).
static NACKS_RECEIVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static NACK_PACKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_nacks(packets: &[Box<dyn rtc::rtcp::Packet>]) {
    use std::sync::atomic::Ordering::Relaxed;
    for p in packets {
        if let Some(n) = p.as_any().downcast_ref::<TransportLayerNack>() {
            let asked: u64 = n
                .nacks
                .iter()
                .map(|pair| 1 + u64::from(pair.lost_packets.count_ones()))
                .sum();
            NACKS_RECEIVED.fetch_add(1, Relaxed);
            NACK_PACKETS.fetch_add(asked, Relaxed);
        }
    }
}

/// (NACKs received, packets they asked for) since the process started.
pub(crate) fn nacks_received() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (NACKS_RECEIVED.load(Relaxed), NACK_PACKETS.load(Relaxed))
}

fn lock_bwe(m: &Mutex<crate::bwe::Estimator>) -> std::sync::MutexGuard<'_, crate::bwe::Estimator> {
    // Only this connection's owner thread uses it; a poisoned lock still
    // holds a usable estimator.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands the stack's resolved TWCC reports to our estimator.
struct BweFeed(Arc<Mutex<crate::bwe::Estimator>>);

impl BandwidthEstimator for BweFeed {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let results: Vec<crate::bwe::PacketResult> = reports
            .iter()
            .map(|r| crate::bwe::PacketResult {
                departure: r.departure,
                arrival: if r.arrived { r.arrival } else { None },
                size: r.size,
                twcc_seq: r.is_twcc.then_some(r.twcc_sequence_number),
            })
            .collect();
        lock_bwe(&self.0).on_feedback(now, &results);
    }

    fn target_bitrate(&self) -> f64 {
        // Read by the stack to pace; there is no pacer in our chain.
        lock_bwe(&self.0)
            .estimate(Instant::now())
            .bps
            .map_or(0.0, |b| b as f64)
    }
}

/// Reads the RTCP a connection receives, at the wire end of its chain (the
/// read walk goes from small slots to large, so before the congestion
/// control at 1_000):
/// - marks keyframe requests (PLI, FIR) for delivery to the application:
///   rtc 0.21.1 ends every chain with a pass-through that drops inbound RTCP
///   unless an interceptor marks it `DeliverToApplication`, and without this
///   a subscriber's PLI about a forwarded stream would never reach us;
/// - counts generic NACKs for the metrics;
/// - passes the remote's REMB (its receive-side estimate) to our estimator,
///   and tells it which transport-wide sequence numbers each TWCC message
///   names, before the stack turns that message into results.
///
/// One interceptor for all of it: every stage of the chain moves each
/// packet, in and out, through its own queues.
struct RtcpTap {
    bwe: Arc<Mutex<crate::bwe::Estimator>>,
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl RtcpTap {
    fn new(bwe: Arc<Mutex<crate::bwe::Estimator>>) -> RtcpTap {
        RtcpTap {
            bwe,
            read: Default::default(),
            write: Default::default(),
        }
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate as Remb;
            use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc as Twcc;
            count_nacks(packets);
            for p in packets {
                if let Some(fb) = p.as_any().downcast_ref::<Twcc>() {
                    lock_bwe(&self.bwe)
                        .on_twcc_coverage(fb.base_sequence_number, fb.packet_status_count);
                }
                if let Some(remb) = p.as_any().downcast_ref::<Remb>() {
                    if remb.bitrate.is_finite() && remb.bitrate > 0.0 {
                        lock_bwe(&self.bwe).on_remb(msg.now, remb.bitrate as u64);
                    }
                }
            }
            if asks_for_keyframe(packets) && !msg.message.has(&Attribute::DeliverToApplication) {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What a publisher's offer says about retransmissions: which payload types
/// are RTX and which payload type each repairs (`apt=`), and the ids of the
/// header extensions that tie an RTX stream to its simulcast layer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RepairNegotiation {
    /// RTX payload type -> the payload type it repairs.
    apt: HashMap<u8, u8>,
    mid_ext: Option<u8>,
    rid_ext: Option<u8>,
    rrid_ext: Option<u8>,
}

impl RepairNegotiation {
    /// Reads the offer's `a=rtpmap`, `a=fmtp` and `a=extmap` lines (an answer
    /// keeps the offer's payload types and extension ids). Unknown or odd
    /// lines are ignored.
    fn from_sdp(sdp: &str) -> RepairNegotiation {
        let mut n = RepairNegotiation::default();
        let mut rtx_pts = Vec::new();
        let mut apts = Vec::new();
        for line in sdp.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                let mut f = rest.split_whitespace();
                if let (Some(pt), Some(enc)) = (f.next(), f.next()) {
                    let is_rtx = enc
                        .split('/')
                        .next()
                        .is_some_and(|e| e.eq_ignore_ascii_case("rtx"));
                    if let (true, Ok(pt)) = (is_rtx, pt.parse::<u8>()) {
                        rtx_pts.push(pt);
                    }
                }
            } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
                let Some((pt, params)) = rest.split_once(' ') else {
                    continue;
                };
                let apt = params
                    .split(';')
                    .filter_map(|kv| kv.trim().strip_prefix("apt="))
                    .find_map(|v| v.trim().parse::<u8>().ok());
                if let (Ok(pt), Some(apt)) = (pt.parse::<u8>(), apt) {
                    apts.push((pt, apt));
                }
            } else if let Some(rest) = line.strip_prefix("a=extmap:") {
                let mut f = rest.split_whitespace();
                let (Some(id), Some(uri)) = (f.next(), f.next()) else {
                    continue;
                };
                // "id" or "id/direction".
                let Some(id) = id.split('/').next().and_then(|i| i.parse::<u8>().ok()) else {
                    continue;
                };
                match uri {
                    MID_URI => n.mid_ext = Some(id),
                    RID_URI => n.rid_ext = Some(id),
                    RRID_URI => n.rrid_ext = Some(id),
                    _ => {}
                }
            }
        }
        for (pt, apt) in apts {
            if rtx_pts.contains(&pt) {
                n.apt.insert(pt, apt);
            }
        }
        n
    }
}

/// The `a=mid` and the sorted `a=rid` ids of each media section of an SDP
/// that is not receive-only or inactive (what the remote sends).
fn sending_rid_sections(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut mid = None;
        let mut rids = Vec::new();
        let mut sends = true;
        for line in section.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.trim().to_owned());
            } else if let Some(r) = line.strip_prefix("a=rid:") {
                // "a=rid:<id> send [...]"
                let mut f = r.split_whitespace();
                if let (Some(id), Some("send")) = (f.next(), f.next()) {
                    rids.push(id.to_owned());
                }
            } else if line == "a=recvonly" || line == "a=inactive" {
                sends = false;
            }
        }
        if let (Some(mid), true, false) = (mid, sends, rids.is_empty()) {
            rids.sort();
            out.push((mid, rids));
        }
    }
    out
}

/// Works around rtc 0.21.1 forgetting simulcast layers on renegotiation.
///
/// Applying a remote offer replaces every receiving track that the offer
/// describes; for a simulcast section (`a=rid`) the new track's layers have
/// no SSRC yet, and the stack learns each layer's SSRC again only from the
/// `mid`/`rid` RTP header extensions. Browsers send those only at the start
/// of a stream (Chromium stops once the receiver acknowledged the SSRC), so
/// after a re-offer (an ICE restart, a track added) every packet of an
/// existing simulcast video was dropped inside the stack until the browser
/// happened to restart that layer, seconds or never.
///
/// The stack leaves a receiver alone when the offer describes no track for
/// its section: it derives a simulcast track only when the section names
/// its stream (`a=msid`), and an SSRC track only from `a=ssrc` lines. So for
/// each section that was already receiving the same `a=rid` layers in the
/// previous remote offer, this drops those lines from what the stack is
/// given; layers, codecs, extensions, direction and `a=simulcast` stay, so
/// the answer is the same. New sections, changed layer sets and
/// non-simulcast sections pass unchanged.
fn keep_simulcast_bindings(previous: &str, offer: &str) -> String {
    let before = sending_rid_sections(previous);
    let now = sending_rid_sections(offer);
    let keep: Vec<&str> = now
        .iter()
        .filter(|s| before.contains(s))
        .map(|(mid, _)| mid.as_str())
        .collect();
    if keep.is_empty() {
        return offer.to_owned();
    }
    let mut out = String::with_capacity(offer.len());
    // Sections start at "m=" lines; the mid of a section is only known
    // once its `a=mid` is read, so buffer one section at a time.
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let kept = section.first().is_some_and(|l| l.starts_with("m="))
            && section.iter().any(|l| {
                l.trim()
                    .strip_prefix("a=mid:")
                    .is_some_and(|m| keep.contains(&m.trim()))
            });
        for line in section.drain(..) {
            let t = line.trim_start();
            if kept
                && (t.starts_with("a=msid:")
                    || t.starts_with("a=ssrc:")
                    || t.starts_with("a=ssrc-group:"))
            {
                continue;
            }
            out.push_str(line);
        }
    };
    for line in offer.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(line);
    }
    flush(&mut section, &mut out);
    out
}

/// Shared between a [`Peer`] and its [`RtxUnwrap`] interceptor (which the
/// stack owns once built): the peer writes what was negotiated.
#[derive(Debug, Default)]
struct RepairState {
    negotiated: RepairNegotiation,
}

fn lock_repair(m: &Mutex<RepairState>) -> std::sync::MutexGuard<'_, RepairState> {
    // Nothing panics while holding it; a poisoned lock still holds good data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most streams the unwrapper remembers (a hostile publisher cycling SSRCs
/// cannot grow its maps past this).
const REPAIR_MAX_STREAMS: usize = 64;

/// Turns a publisher's RFC 4588 retransmissions back into the packets they
/// repair, before the NACK generator sees them.
///
/// rtc 0.21.1 unwraps RTX itself only for streams whose SSRCs the SDP
/// declares (`a=ssrc-group:FID`), and only after the interceptors: its NACK
/// generator never learns that a NACKed packet arrived and keeps asking for
/// it. Browsers' simulcast layers declare no SSRC at all: their RTX streams
/// are known by the `repaired-rtp-stream-id` header extension, which the
/// stack does not handle, so it would drop every retransmission. Here an RTX
/// packet becomes its original (SSRC of the stream it repairs, payload type
/// from `apt=`, sequence number from the OSN) in both cases. Padding-only RTX
/// packets (bandwidth probes) pass untouched: the transport-wide congestion
/// control feedback must still count them, and the stack drops them after.
struct RtxUnwrap {
    shared: Arc<Mutex<RepairState>>,
    /// RTX SSRC -> the SSRC it repairs.
    rtx_of: HashMap<u32, u32>,
    /// (mid, rid) of a simulcast layer -> its SSRC, from packets carrying both.
    layers: HashMap<(Vec<u8>, Vec<u8>), u32>,
    /// (mid, rid) an RTX SSRC named whose layer was not seen yet.
    unresolved: HashMap<u32, (Vec<u8>, Vec<u8>)>,
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl RtxUnwrap {
    fn new(shared: Arc<Mutex<RepairState>>) -> RtxUnwrap {
        RtxUnwrap {
            shared,
            rtx_of: HashMap::new(),
            layers: HashMap::new(),
            unresolved: HashMap::new(),
            read: Default::default(),
            write: Default::default(),
        }
    }

    /// Rewrites `p` in place when it is a retransmission that can be unwrapped.
    fn on_rtp(&mut self, p: &mut rtc::rtp::packet::Packet) {
        let n = lock_repair(&self.shared).negotiated.clone_ids();
        let h = &p.header;
        let mid = n
            .mid_ext
            .and_then(|id| h.get_extension(id))
            .map(|v| v.to_vec());
        // A layer's own packets: remember its SSRC by (mid, rid).
        if let (Some(mid), Some(rid)) = (
            mid.clone(),
            n.rid_ext
                .and_then(|id| h.get_extension(id))
                .map(|v| v.to_vec()),
        ) {
            if !self.layers.contains_key(&(mid.clone(), rid.clone())) {
                if self.layers.len() >= REPAIR_MAX_STREAMS {
                    self.layers.clear();
                }
                let ssrc = h.ssrc;
                self.layers.insert((mid.clone(), rid.clone()), ssrc);
                let waiting: Vec<u32> = self
                    .unresolved
                    .iter()
                    .filter(|(_, k)| **k == (mid.clone(), rid.clone()))
                    .map(|(r, _)| *r)
                    .collect();
                for rtx in waiting {
                    self.unresolved.remove(&rtx);
                    self.remember(rtx, ssrc);
                }
            }
        }
        // An RTX stream names the layer it repairs with rrid.
        if let (Some(mid), Some(rrid)) = (
            mid,
            n.rrid_ext
                .and_then(|id| h.get_extension(id))
                .map(|v| v.to_vec()),
        ) {
            if !self.rtx_of.contains_key(&h.ssrc) {
                match self.layers.get(&(mid.clone(), rrid.clone())) {
                    Some(&primary) => self.remember(h.ssrc, primary),
                    None => {
                        if self.unresolved.len() >= REPAIR_MAX_STREAMS {
                            self.unresolved.clear();
                        }
                        self.unresolved.insert(h.ssrc, (mid, rrid));
                    }
                }
            }
        }
        let Some(&primary) = self.rtx_of.get(&p.header.ssrc) else {
            return;
        };
        let Some(apt) = lock_repair(&self.shared)
            .negotiated
            .apt
            .get(&p.header.payload_type)
            .copied()
        else {
            return;
        };
        let Some((osn, _)) = crate::codec::rtx_unwrap(&p.payload) else {
            // Padding-only: a probe, not a retransmission.
            return;
        };
        p.header.ssrc = primary;
        p.header.payload_type = apt;
        p.header.sequence_number = osn;
        p.header.padding = false;
        p.payload = p.payload.slice(2..);
    }

    fn remember(&mut self, rtx: u32, primary: u32) {
        if rtx == primary {
            return;
        }
        if self.rtx_of.len() >= REPAIR_MAX_STREAMS {
            self.rtx_of.clear();
        }
        self.rtx_of.insert(rtx, primary);
    }
}

impl RepairNegotiation {
    /// The extension ids alone (cheap to copy out of the lock per packet).
    fn clone_ids(&self) -> RepairIds {
        RepairIds {
            mid_ext: self.mid_ext,
            rid_ext: self.rid_ext,
            rrid_ext: self.rrid_ext,
        }
    }
}

#[derive(Clone, Copy)]
struct RepairIds {
    mid_ext: Option<u8>,
    rid_ext: Option<u8>,
    rrid_ext: Option<u8>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for RtxUnwrap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.on_rtp(p);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        // The NACK generator also watches an RTX stream's own numbering, and
        // with the retransmissions unwrapped it sees only the probes' gaps:
        // its NACKs for an RTX SSRC ask for nothing that exists. Drop them.
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            let before = packets.len();
            packets.retain(|p| {
                p.as_any()
                    .downcast_ref::<TransportLayerNack>()
                    .is_none_or(|n| !self.rtx_of.contains_key(&n.media_ssrc))
            });
            if before > 0 && packets.is_empty() {
                return Ok(());
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxUnwrap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        // A stream whose SDP declared its RTX SSRC (a=ssrc-group:FID).
        if let Some(rtx) = info.ssrc_rtx {
            self.remember(rtx, info.ssrc);
            if let Some(pt) = info.payload_type_rtx {
                lock_repair(&self.shared)
                    .negotiated
                    .apt
                    .entry(pt)
                    .or_insert(info.payload_type);
            }
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.rtx_of
            .retain(|rtx, primary| *rtx != info.ssrc && *primary != info.ssrc);
        self.layers.retain(|_, ssrc| *ssrc != info.ssrc);
    }
}

/// Whether a codec carries media itself (not RTX, RED or FEC around another).
fn is_media_codec(mime: &str) -> bool {
    let sub = mime.rsplit('/').next().unwrap_or(mime);
    !["rtx", "red", "ulpfec", "flexfec-03"]
        .iter()
        .any(|w| sub.eq_ignore_ascii_case(w))
}

/// Media payload type -> the RTX payload type that repairs it (`apt=`),
/// among negotiated codecs.
fn rtx_payload_types(codecs: &[RTCRtpCodecParameters]) -> HashMap<u8, u8> {
    codecs
        .iter()
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX))
        .filter_map(|c| {
            let apt = c
                .rtp_codec
                .sdp_fmtp_line
                .split(';')
                .filter_map(|kv| kv.trim().strip_prefix("apt="))
                .find_map(|v| v.trim().parse::<u8>().ok())?;
            Some((apt, c.payload_type))
        })
        .collect()
}

fn lock_rtx_send(m: &Mutex<HashMap<u8, u8>>) -> std::sync::MutexGuard<'_, HashMap<u8, u8>> {
    // Written once per answer, read per retransmission; a poisoned lock
    // still holds a usable map.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many sent packets' payload types [`RtxRetag`] remembers per stream:
/// as many as the NACK responder keeps at most.
const RETAG_HISTORY: usize = nack::MAX_PACKETS;

/// One sent stream with an RTX SSRC, as [`RtxRetag`] follows it.
struct RetagStream {
    /// The SSRC of the media it repairs.
    primary: u32,
    /// (sequence number, payload type) of recent media packets, by
    /// sequence number modulo [`RETAG_HISTORY`].
    sent: Vec<Option<(u16, u8)>>,
}

/// Keeps retransmissions right when a sent stream changes codec.
///
/// A WHEP player's video track carries whatever codec the main view's
/// source sends (VP8 from a browser, H.264 from an encoder), but the NACK
/// responder (nack.rs) wraps every retransmission in the one RTX payload type
/// bound to the stream, whose `apt=` names one codec: an H.264 packet sent
/// back as VP8's RTX would be handed to the player's VP8 depacketizer. This
/// interceptor, between the responder and the wire, remembers the payload
/// type of each media packet sent and rewrites each RTX packet to the RTX
/// payload type of its original's codec, or, where that codec has no RTX
/// negotiated, back into a plain retransmission (the original's SSRC,
/// sequence number and payload type). Connections without an RTX SSRC
/// (every one but a player's) pass through untouched.
struct RtxRetag {
    send_rtx: Arc<Mutex<HashMap<u8, u8>>>,
    /// RTX SSRC -> its stream.
    streams: HashMap<u32, RetagStream>,
    /// Media SSRC -> its RTX SSRC.
    rtx_of: HashMap<u32, u32>,
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl RtxRetag {
    fn new(send_rtx: Arc<Mutex<HashMap<u8, u8>>>) -> RtxRetag {
        RtxRetag {
            send_rtx,
            streams: HashMap::new(),
            rtx_of: HashMap::new(),
            read: Default::default(),
            write: Default::default(),
        }
    }

    /// Follows one packet on its way out; rewrites it if it is an RTX
    /// packet whose payload type does not fit its original.
    fn on_rtp(&mut self, p: &mut rtc::rtp::packet::Packet) {
        if self.rtx_of.is_empty() {
            return;
        }
        let ssrc = p.header.ssrc;
        if let Some(s) = self.rtx_of.get(&ssrc).and_then(|r| self.streams.get_mut(r)) {
            let seq = p.header.sequence_number;
            s.sent[usize::from(seq) % RETAG_HISTORY] = Some((seq, p.header.payload_type));
            return;
        }
        let Some(s) = self.streams.get(&ssrc) else {
            return;
        };
        let Some((osn, _)) = crate::codec::rtx_unwrap(&p.payload) else {
            // Padding only: no original to name.
            return;
        };
        let Some(pt) = s.sent[usize::from(osn) % RETAG_HISTORY]
            .filter(|(seq, _)| *seq == osn)
            .map(|(_, pt)| pt)
        else {
            return;
        };
        match lock_rtx_send(&self.send_rtx).get(&pt) {
            Some(&rtx_pt) => p.header.payload_type = rtx_pt,
            None => {
                p.header.ssrc = s.primary;
                p.header.sequence_number = osn;
                p.header.payload_type = pt;
                p.payload = p.payload.slice(2..);
            }
        }
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for RtxRetag {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.on_rtp(p);
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxRetag {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        // Only where the connection sends in answer mode (a player): the
        // payload types are known before the answer is applied, which binds
        // the streams. A subscriber's stream keeps one codec, and its RTX
        // needs no care.
        if lock_rtx_send(&self.send_rtx).is_empty() {
            return;
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx_of.insert(info.ssrc, rtx);
            self.streams.insert(
                rtx,
                RetagStream {
                    primary: info.ssrc,
                    sent: vec![None; RETAG_HISTORY],
                },
            );
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = self.rtx_of.remove(&info.ssrc) {
            self.streams.remove(&rtx);
        }
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The USERNAME attribute of a STUN message, if `data` is one.
pub(crate) fn stun_username(data: &[u8]) -> Option<&str> {
    // RFC 5389: 20-byte header, first two bits zero, magic cookie 0x2112A442.
    if data.len() < 20 || data[0] & 0xc0 != 0 || data[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let value = body.get(i + 4..i + 4 + alen)?;
        if typ == 0x0006 {
            return std::str::from_utf8(value).ok();
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}

/// Whether a datagram looks like STUN (RFC 7983 demultiplexing: first byte 0..3).
pub(crate) fn is_stun(data: &[u8]) -> bool {
    data.first().is_some_and(|b| *b < 4)
}

/// Fuzzing entry points (see `crate::fuzzing`).
pub(crate) mod fuzzing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username_is_found() {
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        let user = b"abcd:efg";
        let mut attrs = vec![0x00, 0x06, 0, user.len() as u8];
        attrs.extend_from_slice(user);
        m[2..4].copy_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&attrs);
        assert_eq!(stun_username(&m), Some("abcd:efg"));
    }

    #[test]
    fn stun_username_rejects_garbage() {
        assert_eq!(stun_username(&[]), None);
        assert_eq!(stun_username(&[0u8; 19]), None);
        let mut m = vec![0x00, 0x01, 0, 40, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0xff, 0xff]);
        assert_eq!(stun_username(&m), None);
    }

    #[test]
    fn a_peer_offers_with_our_candidates() {
        let mut p = Peer::new(
            &[
                LocalCandidate {
                    proto: Proto::Udp,
                    addr: "127.0.0.1:40000".parse().unwrap(),
                },
                LocalCandidate {
                    proto: Proto::Tcp,
                    addr: "127.0.0.1:40000".parse().unwrap(),
                },
            ],
            Direction::Send,
        )
        .unwrap();
        let codec = vp8_codec();
        p.add_send_track("p-1", "t-1", MediaKind::Video, &codec)
            .unwrap();
        let sdp = p.create_offer(Instant::now()).unwrap();
        assert!(sdp.contains("a=ice-lite"), "{sdp}");
        assert!(sdp.contains("udp"), "{sdp}");
        assert!(sdp.contains("tcptype passive"), "{sdp}");
        assert!(sdp.contains("msid:p-1 t-1"), "{sdp}");
        let ufrag = p.ufrag().expect("a local description");
        assert!(sdp.contains(&format!("a=ice-ufrag:{ufrag}")), "{sdp}");
        // An ICE restart draws new credentials.
        p.restart_ice();
        let again = p.create_offer(Instant::now()).unwrap();
        let new = p.ufrag().expect("a local description");
        assert_ne!(new, ufrag);
        assert!(again.contains(&format!("a=ice-ufrag:{new}")), "{again}");
    }
    /// Parts of a Chromium publish offer (simulcast camera with RTX).
    const CHROMIUM_OFFER_PART: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
a=extmap:11/sendonly urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 rtx-time=3000;apt=102\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n";

    /// A Chromium-shaped publisher offer: Opus with a declared SSRC, VP8
    /// simulcast q/h/f by rid.
    fn simulcast_offer(ufrag: &str, rids: &[&str]) -> String {
        let mut s = format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:{ufrag}\r\na=mid:0\r\n\
             a=sendonly\r\na=msid:s a1\r\na=rtpmap:111 opus/48000/2\r\n\
             a=ssrc:1111 cname:x\r\na=ssrc:1111 msid:s a1\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=ice-ufrag:{ufrag}\r\na=mid:1\r\n\
             a=sendonly\r\na=msid:s v1\r\na=rtpmap:96 VP8/90000\r\n\
             a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
        );
        for r in rids {
            s.push_str(&format!("a=rid:{r} send\r\n"));
        }
        s.push_str(&format!("a=simulcast:send {}\r\n", rids.join(";")));
        s
    }

    #[test]
    fn a_reoffer_keeps_known_simulcast_layers_away_from_the_stack() {
        let first = simulcast_offer("aaaa", &["q", "h", "f"]);
        let again = simulcast_offer("bbbb", &["q", "h", "f"]);
        let kept = keep_simulcast_bindings(&first, &again);
        let (audio, video) = kept.split_once("m=video").expect("video section");
        // The audio section (no rids) is untouched, SSRC lines and all.
        assert!(audio.contains("a=ssrc:1111 msid:s a1\r\n"));
        assert!(audio.contains("a=msid:s a1\r\n"));
        // The simulcast section keeps everything but what would make the
        // stack replace its receiver.
        assert!(!video.contains("a=msid:"));
        assert!(!video.contains("a=ssrc"));
        for l in [
            "a=rid:q send",
            "a=rid:f send",
            "a=simulcast:send q;h;f",
            "a=ice-ufrag:bbbb",
        ] {
            assert!(video.contains(l), "{l} missing");
        }
        assert!(kept.ends_with("\r\n"));
        assert_eq!(kept.len(), again.len() - "a=msid:s v1\r\n".len());
    }

    #[test]
    fn a_first_or_changed_simulcast_section_is_left_to_the_stack() {
        let first = simulcast_offer("aaaa", &["q", "h", "f"]);
        // Another layer set is a new negotiation of that track.
        let changed = simulcast_offer("aaaa", &["q", "h"]);
        assert_eq!(keep_simulcast_bindings(&first, &changed), changed);
        // No simulcast before (a plain offer): nothing to keep.
        let plain = first.replace("a=rid:", "a=x-rid:");
        assert_eq!(keep_simulcast_bindings(&plain, &first), first);
        // A section that stopped sending is not a known sender any more.
        let stopped = first.replace("a=mid:1\r\na=sendonly", "a=mid:1\r\na=inactive");
        assert_eq!(keep_simulcast_bindings(&stopped, &first), first);
    }

    #[test]
    fn repair_negotiation_is_read_from_the_offer() {
        let n = RepairNegotiation::from_sdp(CHROMIUM_OFFER_PART);
        assert_eq!(n.apt, HashMap::from([(97, 96), (103, 102)]));
        assert_eq!(
            (n.mid_ext, n.rid_ext, n.rrid_ext),
            (Some(4), Some(10), Some(11))
        );
        assert_eq!(
            RepairNegotiation::from_sdp("a=fmtp:97 apt=x\r\na=extmap:x urn\r\ngarbage"),
            RepairNegotiation::default()
        );
    }

    fn rtp(
        ssrc: u32,
        pt: u8,
        seq: u16,
        exts: &[(u8, &[u8])],
        payload: &[u8],
    ) -> rtc::rtp::packet::Packet {
        let mut p = rtc::rtp::packet::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.payload_type = pt;
        p.header.sequence_number = seq;
        p.header.timestamp = 1234;
        if !exts.is_empty() {
            p.header.extension = true;
            p.header.extension_profile = 0xBEDE;
            for (id, v) in exts {
                p.header
                    .set_extension(*id, bytes::Bytes::copy_from_slice(v))
                    .unwrap();
            }
        }
        p.payload = bytes::Bytes::copy_from_slice(payload);
        p
    }

    #[test]
    fn simulcast_rtx_is_unwrapped_by_repaired_stream_id() {
        let shared = Arc::new(Mutex::new(RepairState::default()));
        lock_repair(&shared).negotiated = RepairNegotiation::from_sdp(CHROMIUM_OFFER_PART);
        let mut u = RtxUnwrap::new(shared);
        // Layer "h" arrives on SSRC 1000 (mid 0, rid h).
        let mut media = rtp(1000, 96, 500, &[(4, b"0"), (10, b"h")], &[0x90, 1, 2]);
        u.on_rtp(&mut media);
        assert_eq!(media.header.ssrc, 1000);
        // Its RTX stream on SSRC 2000 repairs sequence number 499.
        let mut rtx = rtp(
            2000,
            97,
            7,
            &[(4, b"0"), (11, b"h")],
            &[0x01, 0xf3, 0x90, 9],
        );
        u.on_rtp(&mut rtx);
        assert_eq!(
            (
                rtx.header.ssrc,
                rtx.header.payload_type,
                rtx.header.sequence_number
            ),
            (1000, 96, 499)
        );
        assert_eq!(&rtx.payload[..], &[0x90, 9]);
        assert_eq!(rtx.header.timestamp, 1234);
        // Later retransmissions no longer carry mid/rrid (acknowledged SSRC).
        let mut later = rtp(2000, 97, 8, &[], &[0x01, 0xf4, 0x90]);
        u.on_rtp(&mut later);
        assert_eq!(
            (later.header.ssrc, later.header.sequence_number),
            (1000, 500)
        );
        // A padding-only probe on the RTX SSRC passes untouched.
        let mut probe = rtp(2000, 97, 9, &[], &[]);
        u.on_rtp(&mut probe);
        assert_eq!((probe.header.ssrc, probe.header.payload_type), (2000, 97));
        // An RTX stream named before its layer was seen is resolved later.
        let mut early = rtp(2001, 97, 1, &[(4, b"0"), (11, b"f")], &[0, 5, 0x90]);
        u.on_rtp(&mut early);
        assert_eq!(early.header.ssrc, 2001);
        u.on_rtp(&mut rtp(1001, 96, 5, &[(4, b"0"), (10, b"f")], &[0x90]));
        let mut again = rtp(2001, 97, 2, &[], &[0, 4, 0x90]);
        u.on_rtp(&mut again);
        assert_eq!((again.header.ssrc, again.header.sequence_number), (1001, 4));
        // An unknown SSRC with the RTX payload type is left alone.
        let mut stranger = rtp(3000, 97, 1, &[], &[0, 4, 0x90]);
        u.on_rtp(&mut stranger);
        assert_eq!(stranger.header.ssrc, 3000);
    }

    #[test]
    fn declared_rtx_is_unwrapped_and_its_nacks_dropped() {
        let shared = Arc::new(Mutex::new(RepairState::default()));
        let mut u = RtxUnwrap::new(shared);
        u.bind_remote_stream(&StreamInfo {
            ssrc: 10,
            ssrc_rtx: Some(11),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        });
        let mut rtx = rtp(11, 97, 1, &[], &[0x12, 0x34, 0xaa]);
        u.on_rtp(&mut rtx);
        assert_eq!(
            (
                rtx.header.ssrc,
                rtx.header.payload_type,
                rtx.header.sequence_number
            ),
            (10, 96, 0x1234)
        );
        let nack = |ssrc: u32| -> Box<dyn rtc::rtcp::Packet> {
            Box::new(TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc: ssrc,
                nacks: vec![],
            })
        };
        let msg = |packets| TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: Packet::Rtcp(packets).into(),
        };
        // A NACK for the RTX SSRC goes nowhere; one for the media goes out.
        u.handle_write(msg(vec![nack(11)])).unwrap();
        assert!(u.poll_write().is_none());
        u.handle_write(msg(vec![nack(10), nack(11)])).unwrap();
        let Some(out) = u.poll_write() else {
            panic!("media NACK dropped")
        };
        let Packet::Rtcp(left) = &out.message.packet else {
            panic!("not RTCP")
        };
        assert_eq!(left.len(), 1);
    }

    /// A connection with one UDP candidate, for tests that only negotiate.
    fn udp_peer() -> Peer {
        Peer::new(
            &[LocalCandidate {
                proto: Proto::Udp,
                addr: "127.0.0.1:40000".parse().unwrap(),
            }],
            Direction::Both,
        )
        .unwrap()
    }

    fn vp8_codec() -> Codec {
        Codec {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90000,
            channels: 0,
            fmtp: String::new(),
        }
    }

    fn opus_codec(fmtp: &str) -> Codec {
        Codec {
            mime_type: MIME_TYPE_OPUS.into(),
            clock_rate: 48000,
            channels: 2,
            fmtp: fmtp.into(),
        }
    }

    #[test]
    fn a_removed_ssrc_is_taken_again_after_an_answer_and_a_rest() {
        let t0 = Instant::now();
        let free = |ssrc, kind, offers_made| FreeSsrc {
            ssrc,
            rtx_ssrc: None,
            newest_seq: Some(ssrc as u16 * 100),
            kind,
            at: t0,
            offers_made,
        };
        let mut q: std::collections::VecDeque<FreeSsrc> = [
            free(1, MediaKind::Video, 3),
            free(2, MediaKind::Audio, 3),
            free(3, MediaKind::Video, 4),
        ]
        .into();
        let rested = t0 + SSRC_REST;
        let mut take = |kind, answered, now| {
            take_free_ssrc(&mut q, kind, answered, now).map(|f| (f.ssrc, f.newest_seq))
        };
        // Not rested, or the offer without the removal answered: nothing.
        assert_eq!(take(MediaKind::Video, 4, t0), None);
        assert_eq!(take(MediaKind::Video, 3, rested), None);
        // Oldest of the kind first; the other kind untouched.
        assert_eq!(take(MediaKind::Video, 4, rested), Some((1, Some(100))));
        assert_eq!(take(MediaKind::Video, 4, rested), None);
        assert_eq!(take(MediaKind::Video, 5, rested), Some((3, Some(300))));
        assert_eq!(take(MediaKind::Audio, 5, rested), Some((2, Some(200))));
        assert!(q.is_empty());
    }

    #[test]
    fn a_taken_ssrc_continues_the_removed_tracks_sequence_numbers() {
        // The removed track stopped at 65_534; the new one starts at 1_000.
        let mut c = SeqCarry::continuing(Some(65_534));
        assert_eq!(c.map(1_000), 65_535);
        assert_eq!(c.map(1_001), 0);
        assert_eq!(c.map(1_003), 2);
        // A late packet keeps its place; the newest stays.
        assert_eq!(c.map(1_002), 1);
        assert_eq!(c.newest, Some(2));
        // A new SSRC sends the numbers as they are.
        let mut fresh = SeqCarry::default();
        assert_eq!(fresh.map(7), 7);
        assert_eq!(fresh.newest, Some(7));
        // A removed track that never sent: the new one is as a new SSRC.
        let mut silent = SeqCarry::continuing(None);
        assert_eq!(silent.map(42), 42);
        // A track that took the SSRC and left before sending passes the
        // old numbering on.
        assert_eq!(SeqCarry::continuing(Some(9)).last(), Some(9));
        assert_eq!(c.last(), Some(2));
    }

    #[test]
    fn a_freed_ssrc_is_kept_with_its_rtx_and_taken_only_when_allowed() {
        let mut p = udp_peer();
        let vp8 = vp8_codec();
        let opus = opus_codec("");
        p.add_send_track("p-1", "t-a", MediaKind::Audio, &opus)
            .unwrap();
        p.add_send_track("p-1", "t-v", MediaKind::Video, &vp8)
            .unwrap();
        let audio = p.senders["t-a"].ssrc;
        let (video, rtx) = (p.senders["t-v"].ssrc, p.senders["t-v"].rtx_ssrc);
        assert_eq!(p.senders["t-a"].rtx_ssrc, None);
        let rtx = rtx.expect("a video track has an RTX SSRC of ours");
        let sdp = p.create_offer(Instant::now()).unwrap();
        // The offer names our RTX SSRC beside the video's.
        assert!(
            sdp.contains(&format!("a=ssrc-group:FID {video} {rtx}")),
            "{sdp}"
        );
        assert!(p.remove_send_track("t-a").unwrap());
        assert!(p.remove_send_track("t-v").unwrap());
        // Both kept for later, the video with its RTX SSRC.
        assert_eq!(p.free_ssrcs.len(), 2);
        assert_eq!(p.free_ssrcs[0].ssrc, audio);
        assert_eq!(
            (p.free_ssrcs[1].ssrc, p.free_ssrcs[1].rtx_ssrc),
            (video, Some(rtx))
        );
        // The offer without the removal is unanswered, and no rest: new.
        p.add_send_track("p-2", "t-a2", MediaKind::Audio, &opus)
            .unwrap();
        p.add_send_track("p-2", "t-v2", MediaKind::Video, &vp8)
            .unwrap();
        assert_ne!(p.senders["t-a2"].ssrc, audio);
        assert_ne!(p.senders["t-v2"].ssrc, video);
        assert_eq!(p.free_ssrcs.len(), 2);
        // Once allowed, a new video track takes both SSRCs again.
        p.offer_answered = p.offers_made + 1;
        for f in &mut p.free_ssrcs {
            f.at -= SSRC_REST;
        }
        p.add_send_track("p-3", "t-v3", MediaKind::Video, &vp8)
            .unwrap();
        assert_eq!(
            (p.senders["t-v3"].ssrc, p.senders["t-v3"].rtx_ssrc),
            (video, Some(rtx))
        );
        let sdp = p.create_offer(Instant::now()).unwrap();
        assert!(
            sdp.contains(&format!("a=ssrc-group:FID {video} {rtx}")),
            "{sdp}"
        );
    }

    #[test]
    fn subscriber_offers_rtx_and_red() {
        let mut p = udp_peer();
        let vp8 = vp8_codec();
        let opus = opus_codec("minptime=10;useinbandfec=1;usedtx=1");
        p.add_send_track("p-1", "t-v", MediaKind::Video, &vp8)
            .unwrap();
        p.add_send_track("p-1", "t-a", MediaKind::Audio, &opus)
            .unwrap();
        let sdp = p.create_offer(Instant::now()).unwrap();
        assert!(sdp.contains("a=rtpmap:97 rtx/90000"), "{sdp}");
        assert!(sdp.contains("a=fmtp:97 apt=96"), "{sdp}");
        assert!(sdp.contains("a=ssrc-group:FID"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:63 red/48000/2"), "{sdp}");
        assert!(sdp.contains("a=fmtp:63 111/111"), "{sdp}");
        // Opus FEC stays on: a subscriber decodes what the publisher put in.
        assert!(sdp.contains("useinbandfec=1"), "{sdp}");
    }

    #[test]
    fn sent_rtx_follows_the_codec_of_its_original() {
        // Sent: VP8 at 96 (RTX 97), H.264 at 102 (RTX 103), H.264 at 104
        // without RTX; the responder bound the stream as VP8 (RTX 97).
        let send_rtx = Arc::new(Mutex::new(HashMap::from([(96, 97), (102, 103)])));
        let mut r = RtxRetag::new(send_rtx);
        // Nothing bound with an RTX SSRC: packets pass untouched.
        let mut alone = rtp(2000, 97, 1, &[], &[0, 5, 1]);
        r.on_rtp(&mut alone);
        assert_eq!(alone.header.payload_type, 97);
        r.bind_local_stream(&StreamInfo {
            ssrc: 1000,
            ssrc_rtx: Some(2000),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        });
        for (seq, pt) in [(10, 96), (11, 102), (12, 104)] {
            let mut media = rtp(1000, pt, seq, &[], &[0x90, 1]);
            r.on_rtp(&mut media);
            assert_eq!((media.header.ssrc, media.header.payload_type), (1000, pt));
        }
        // The responder's RTX packets, all as VP8's RTX.
        let mut vp8 = rtp(2000, 97, 0, &[], &[0, 10, 0x90, 1]);
        r.on_rtp(&mut vp8);
        assert_eq!((vp8.header.ssrc, vp8.header.payload_type), (2000, 97));
        let mut h264 = rtp(2000, 97, 1, &[], &[0, 11, 0x90, 1]);
        r.on_rtp(&mut h264);
        assert_eq!((h264.header.ssrc, h264.header.payload_type), (2000, 103));
        assert_eq!(&h264.payload[..], &[0, 11, 0x90, 1]);
        // A codec without RTX: back to a plain retransmission.
        let mut plain = rtp(2000, 97, 2, &[], &[0, 12, 0x90, 1]);
        r.on_rtp(&mut plain);
        assert_eq!(
            (
                plain.header.ssrc,
                plain.header.payload_type,
                plain.header.sequence_number
            ),
            (1000, 104, 12)
        );
        assert_eq!(&plain.payload[..], &[0x90, 1]);
        // An original out of the history (or never sent) and a padding-only
        // probe are left as they are.
        let mut unknown = rtp(2000, 97, 3, &[], &[0x04, 0x0a, 0x90]);
        r.on_rtp(&mut unknown);
        assert_eq!(
            (unknown.header.ssrc, unknown.header.payload_type),
            (2000, 97)
        );
        let mut probe = rtp(2000, 97, 4, &[], &[]);
        r.on_rtp(&mut probe);
        assert_eq!((probe.header.ssrc, probe.header.payload_type), (2000, 97));
        // Unbound: nothing is followed any more.
        r.unbind_local_stream(&StreamInfo {
            ssrc: 1000,
            ..Default::default()
        });
        let mut after = rtp(2000, 97, 5, &[], &[0, 11, 0x90]);
        r.on_rtp(&mut after);
        assert_eq!(after.header.payload_type, 97);
        // A connection that does not send in answer mode (a subscriber's:
        // one codec per stream) is not followed at all.
        let mut sub = RtxRetag::new(Arc::new(Mutex::new(HashMap::new())));
        sub.bind_local_stream(&StreamInfo {
            ssrc: 1000,
            ssrc_rtx: Some(2000),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        });
        sub.on_rtp(&mut rtp(1000, 104, 12, &[], &[0x90, 1]));
        let mut kept = rtp(2000, 97, 0, &[], &[0, 12, 0x90, 1]);
        sub.on_rtp(&mut kept);
        assert_eq!((kept.header.ssrc, kept.header.payload_type), (2000, 97));
    }

    #[test]
    fn rtx_payload_types_are_read_from_negotiated_codecs() {
        let codec = |mime: &str, fmtp: &str, pt: u8| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: fmtp.into(),
                rtcp_feedback: vec![],
            },
            payload_type: pt,
        };
        let codecs = [
            codec(MIME_TYPE_VP8, "", 96),
            codec(MIME_TYPE_RTX, "apt=96", 97),
            codec(MIME_TYPE_H264, "packetization-mode=1", 102),
            codec(MIME_TYPE_RTX, "rtx-time=3000; apt=102", 103),
            codec(MIME_TYPE_RTX, "apt=x", 105),
        ];
        assert_eq!(
            rtx_payload_types(&codecs),
            HashMap::from([(96, 97), (102, 103)])
        );
        assert!(is_media_codec(MIME_TYPE_VP8) && is_media_codec(MIME_TYPE_OPUS));
        for m in [
            MIME_TYPE_RTX,
            MIME_TYPE_RED,
            "video/ulpfec",
            "video/flexfec-03",
        ] {
            assert!(!is_media_codec(m), "{m}");
        }
    }
}
