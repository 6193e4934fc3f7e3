//! Receive translation: what the stack reads (events, RTP, RTCP) becomes
//! [`PeerEvent`]s for the engine. What the stack knows of a received stream
//! is looked up once per (SSRC, payload type) and shared with every packet
//! of it ([`StreamMeta`]): no per-packet copies.

use std::sync::Arc;
use std::time::Instant;

use super::*;

#[derive(Default)]
pub(super) struct StreamMeta {
    /// Shared with every [`Incoming`] of the stream: handing it on per
    /// packet is a reference count, not a copy of its strings.
    codec: Option<Arc<Codec>>,
    layer: Arc<str>,
    level_ext: Option<u8>,
    /// The payload type is `audio/red` around `codec`.
    red: bool,
    /// The stream's last sequence number, for the loss of the operator's
    /// figures ([`super::figures::seq_gap`]).
    last_seq: Option<u16>,
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

impl Peer {
    /// Translates the stack's events and messages into ours.
    pub(super) fn collect(&mut self) {
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
        let now = Instant::now();
        self.report_state(now);
        if connected_now {
            if let Err(e) = self.pc.handle_timeout(now) {
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
                                    codec: codec.map(Arc::new),
                                    layer: Arc::from(layer),
                                    level_ext,
                                    red,
                                    last_seq: None,
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
                    let seq = packet.header.sequence_number;
                    let (codec, layer, level_ext, red, lost) = match self.stream_meta.get_mut(&key)
                    {
                        Some(m) => {
                            let lost = super::figures::seq_gap(&mut m.last_seq, seq);
                            (m.codec.clone(), m.layer.clone(), m.level_ext, m.red, lost)
                        }
                        None => (None, Arc::from(""), None, false, 0),
                    };
                    self.counters.received(packet.payload.len(), lost, now);
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
