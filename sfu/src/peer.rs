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
use rtc::interceptor::{
    CongestionControlBuilder, ReceiverReportBuilder, SenderReportBuilder, TwccSenderBuilder,
};
use rtc::interceptor::{Registry, Slot};
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
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RTCRtpRtxParameters,
    RTCRtpSendParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::{Candidate, ConnectionState, MediaKind, SfuError};

mod figures;
mod interceptors;
mod liveness;
mod nack;
mod receive;
mod sdp;
mod setup;
mod ssrc;

pub(crate) use figures::PeerFigures;
pub(crate) use interceptors::nacks_received;
use interceptors::{asks_for_keyframe, lock_bwe, lock_repair, lock_rtx_send, RepairState};
use interceptors::{is_media_codec, rtx_payload_types};
use receive::StreamMeta;
pub(crate) use sdp::ufrag_in;
use sdp::{keep_simulcast_bindings, RepairNegotiation};
use ssrc::{take_free_ssrc, FreeSsrc, SeqCarry};

const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const RRID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
const MIME_TYPE_RTX: &str = "video/rtx";
const MIME_TYPE_RED: &str = "audio/red";
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
    /// The stream's codec and layer are shared, not copied, per packet
    /// (the forwarding path allocates nothing of its own per packet).
    pub codec: Option<Arc<Codec>>,
    /// The simulcast layer (RTP stream id), empty without simulcast.
    pub layer: Arc<str>,
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
    /// The operator's figures of this connection ([`figures`]): what it
    /// counts itself, and what its wire end saw ([`RtcpTap`]).
    counters: figures::Counters,
    feedback: Arc<figures::Feedback>,
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
    /// Packets decided and rewritten for this connection, not yet handed to
    /// the stack: [`Peer::write_queued`] writes them (the stack's write path
    /// and SRTP), which the engine does on its send workers. Kept between
    /// flushes, so queueing allocates nothing once it has grown.
    outbox: Vec<(RTCRtpSenderId, Instant, rtc::rtp::packet::Packet)>,
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

fn stack_err(context: &str, e: impl std::fmt::Display) -> SfuError {
    SfuError::Negotiation(format!("{context}: {e}"))
}

impl Peer {
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
        // What was queued goes out under the negotiation it was made for.
        self.write_queued();
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
        // What was queued goes out under the negotiation it was made for.
        self.write_queued();
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
        // What was queued goes out under the negotiation it was made for.
        self.write_queued();
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
        // What was queued goes out under the senders it was made for.
        self.write_queued();
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
        // What was queued goes out under the negotiation it was made for.
        self.write_queued();
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
    /// of our tracks, rewriting SSRC and payload type. The packet is queued:
    /// [`Peer::write_queued`] hands it to the stack.
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
        self.outbox.push((slot.id, now, packet));
        Ok(())
    }

    /// Whether packets wait for [`Peer::write_queued`].
    pub fn has_queued(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Hands the queued packets to the stack, in order: its write path
    /// (interceptors, marshal, SRTP protect) runs here, and what it makes
    /// is then drained by [`Peer::poll_transmit`]. Returns how many the
    /// stack refused (a sender removed meanwhile, a payload type or SSRC it
    /// does not accept).
    pub fn write_queued(&mut self) -> usize {
        let mut refused = 0;
        for (id, now, packet) in self.outbox.drain(..) {
            let r = match self.pc.rtp_sender(id) {
                Some(mut sender) => sender
                    .write_rtp(now, packet)
                    .map_err(|e| stack_err("write rtp", e)),
                None => Err(SfuError::Negotiation("sender gone".into())),
            };
            if let Err(e) = r {
                refused += 1;
                tracing::trace!("forward: {e}");
            }
        }
        refused
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
            self.counters.keyframes_asked += 1;
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
}

/// Fuzzing entry points (see `crate::fuzzing`).
pub(crate) mod fuzzing;

#[cfg(test)]
mod tests {
    use super::interceptors::{RtxRetag, RtxUnwrap};
    use super::ssrc::SSRC_REST;
    use super::*;
    use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    use rtc::sansio::Protocol;

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
