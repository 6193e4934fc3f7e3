//! Setting up a connection: the media engine (codecs, RTX, RED, header
//! extensions, feedback), the interceptor chain for the direction the
//! connection carries, ICE-lite with the stack's ICE timers off, and our
//! host candidates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::interceptors::{BweFeed, RtcpTap, RtxRetag, RtxUnwrap};
use super::*;

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
        let feedback = Arc::new(super::figures::Feedback::default());
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
                .with(Slot::Custom(1), RtcpTap::new(bwe.clone(), feedback.clone()));
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
            counters: Default::default(),
            feedback,
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
            outbox: Vec::new(),
        })
    }
}
