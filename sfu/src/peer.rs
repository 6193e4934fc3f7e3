//! The only module that speaks to the WebRTC stack (webrtc-rs `rtc`, sans-I/O).
//!
//! The boundary is "datagram in, datagrams and events out, timeouts": the
//! engine hands a [`Peer`] what arrived on a socket and its timer ticks, and
//! drains [`Peer::poll_transmit`] and [`Peer::poll_event`]. Nothing of `rtc`
//! appears in this module's signatures, so changing the stack changes this file
//! alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_simulcast_extension_headers,
    configure_twcc_receiver_only,
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
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::{Candidate, ConnectionState, MediaKind, SfuError};

const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

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

/// One WebRTC peer connection on the server side (ICE-lite, DTLS server).
pub(crate) struct Peer {
    pc: RTCPeerConnection,
    /// Our ICE username fragment: the engine routes STUN by it.
    ufrag: String,
    /// Received tracks: track id -> (receiver, kind, ssrc of the media).
    receivers: Vec<(RecvTrack, RTCRtpReceiverId, MediaKind)>,
    /// Sent tracks by track id (looked up for every forwarded packet).
    senders: HashMap<SendTrack, SenderSlot>,
    /// Per received stream (SSRC, payload type): codec, layer, audio-level id.
    stream_meta: HashMap<(u32, u8), StreamMeta>,
    /// Events already translated, waiting for the engine.
    pending: std::collections::VecDeque<PeerEvent>,
    last_state: ConnectionState,
}

#[derive(Default)]
struct StreamMeta {
    codec: Option<Codec>,
    layer: String,
    level_ext: Option<u8>,
}

struct SenderSlot {
    id: RTCRtpSenderId,
    ssrc: u32,
    codec: Codec,
    /// The payload type the remote accepted for `codec`, once negotiated.
    payload_type: Option<u8>,
}

fn random_string(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn media_engine() -> Result<MediaEngine, SfuError> {
    let mut engine = MediaEngine::default();
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
    pub fn new(candidates: &[LocalCandidate]) -> Result<Peer, SfuError> {
        let ufrag = random_string(16);
        let pwd = random_string(32);
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag.clone(), pwd)
            .with_answering_dtls_role(RTCDtlsRole::Server)
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
        let registry = Registry::new().with(Slot::Custom(1), FeedbackTap::default());
        let registry = configure_nack(registry, &mut engine);
        let registry = configure_rtcp_reports(registry);
        // Transport-wide congestion control feedback for what publishers send:
        // without it a browser's send estimate starts at 300 kbit/s and climbs
        // only from receiver reports, so its top simulcast layer takes ~20 s.
        let registry = configure_twcc_receiver_only(registry, &mut engine)
            .map_err(|e| stack_err("media engine", e))?;
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
            ufrag,
            receivers: Vec::new(),
            stream_meta: HashMap::new(),
            senders: HashMap::new(),
            pending: Default::default(),
            last_state: ConnectionState::Connecting,
        })
    }

    /// Our ICE username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Applies a remote offer and returns our answer.
    pub fn accept_offer(&mut self, now: Instant, sdp: String) -> Result<String, SfuError> {
        let offer =
            RTCSessionDescription::offer(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        self.stream_meta.clear();
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
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
        Ok(offer.sdp)
    }

    /// Applies the remote answer to our offer.
    pub fn accept_answer(&mut self, now: Instant, sdp: String) -> Result<(), SfuError> {
        let answer =
            RTCSessionDescription::answer(sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(|e| SfuError::BadSdp(e.to_string()))?;
        // Payload types may have changed with this answer.
        for s in self.senders.values_mut() {
            s.payload_type = None;
        }
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
        let ssrc = loop {
            let s: u32 = rand::random();
            if s != 0 && !self.senders.values().any(|x| x.ssrc == s) {
                break s;
            }
        };
        let rtp_codec = RTCRtpCodec {
            mime_type: codec.mime_type.clone(),
            clock_rate: codec.clock_rate,
            channels: codec.channels,
            sdp_fmtp_line: codec.fmtp.clone(),
            rtcp_feedback: vec![],
        };
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
                codec: codec.clone(),
                payload_type: None,
            },
        );
        Ok(())
    }

    /// Removes a track we send. Returns whether it was there.
    pub fn remove_send_track(&mut self, track: &str) -> Result<bool, SfuError> {
        let Some(slot) = self.senders.remove(track) else {
            return Ok(false);
        };
        self.pc
            .remove_track(slot.id)
            .map_err(|e| stack_err("remove track", e))?;
        Ok(true)
    }

    /// Sends a packet on one of our tracks, rewriting SSRC and payload type.
    pub fn send_rtp(&mut self, now: Instant, track: &str, p: &RtpPacket) -> Result<(), SfuError> {
        let Some(slot) = self.senders.get_mut(track) else {
            return Err(SfuError::Negotiation("no such sent track".into()));
        };
        let pt = match slot.payload_type {
            Some(pt) => pt,
            None => {
                let mut sender = self
                    .pc
                    .rtp_sender(slot.id)
                    .ok_or_else(|| SfuError::Negotiation("sender gone".into()))?;
                let params = sender.get_parameters();
                let pt = params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| {
                        c.rtp_codec
                            .mime_type
                            .eq_ignore_ascii_case(&slot.codec.mime_type)
                    })
                    .map(|c| c.payload_type)
                    .ok_or_else(|| SfuError::Negotiation("codec not negotiated".into()))?;
                slot.payload_type = Some(pt);
                pt
            }
        };
        let mut packet = rtc::rtp::packet::Packet::default();
        packet.header.version = 2;
        packet.header.marker = p.marker;
        packet.header.payload_type = pt;
        packet.header.sequence_number = p.sequence_number;
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

    /// Asks the remote side for a keyframe on a received track.
    pub fn request_keyframe(&mut self, now: Instant, track: &str) -> Result<(), SfuError> {
        let Some(&(_, receiver_id, _)) = self.receivers.iter().find(|r| r.0 == track) else {
            return Ok(());
        };
        let mut receiver = self
            .pc
            .rtp_receiver(receiver_id)
            .ok_or_else(|| SfuError::Negotiation("receiver gone".into()))?;
        let ssrcs: Vec<u32> = receiver.track().ssrcs().collect();
        for media_ssrc in ssrcs {
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
        Ok(())
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
        self.pc.poll_timeout()
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

    /// Translates the stack's events and messages into ours.
    fn collect(&mut self) {
        let mut connected_now = false;
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                    if let Some(state) = to_state(s) {
                        if state != self.last_state {
                            self.last_state = state;
                            self.pending.push_back(PeerEvent::State(state));
                        }
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
                                let codec = params
                                    .codecs
                                    .iter()
                                    .find(|c| c.payload_type == pt)
                                    .map(|c| Codec {
                                        mime_type: c.rtp_codec.mime_type.clone(),
                                        clock_rate: c.rtp_codec.clock_rate,
                                        channels: c.rtp_codec.channels,
                                        fmtp: c.rtp_codec.sdp_fmtp_line.clone(),
                                    });
                                StreamMeta {
                                    codec,
                                    layer,
                                    level_ext,
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
                    let (codec, layer, level_ext) = match self.stream_meta.get(&key) {
                        Some(m) => (m.codec.clone(), m.layer.clone(), m.level_ext),
                        None => (None, String::new(), None),
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

/// Whether an RTCP compound packet asks for a keyframe (PLI or FIR).
fn asks_for_keyframe(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    packets.iter().any(|p| {
        let any = p.as_any();
        any.downcast_ref::<PictureLossIndication>().is_some()
            || any.downcast_ref::<FullIntraRequest>().is_some()
    })
}

/// Marks inbound keyframe requests (PLI, FIR) for delivery to the application.
///
/// rtc 0.21.1 ends every interceptor chain with a pass-through that drops
/// inbound RTCP unless an interceptor marks it `DeliverToApplication`; without
/// this tap a subscriber's PLI about a forwarded stream would never reach us.
#[derive(Default)]
struct FeedbackTap {
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
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

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
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
        let mut p = Peer::new(&[
            LocalCandidate {
                proto: Proto::Udp,
                addr: "127.0.0.1:40000".parse().unwrap(),
            },
            LocalCandidate {
                proto: Proto::Tcp,
                addr: "127.0.0.1:40000".parse().unwrap(),
            },
        ])
        .unwrap();
        let codec = Codec {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90000,
            channels: 0,
            fmtp: String::new(),
        };
        p.add_send_track("p-1", "t-1", MediaKind::Video, &codec)
            .unwrap();
        let sdp = p.create_offer(Instant::now()).unwrap();
        assert!(sdp.contains("a=ice-lite"), "{sdp}");
        assert!(sdp.contains("udp"), "{sdp}");
        assert!(sdp.contains("tcptype passive"), "{sdp}");
        assert!(sdp.contains("msid:p-1 t-1"), "{sdp}");
        assert!(sdp.contains(p.ufrag()), "{sdp}");
    }
}
