//! Our interceptors in the stack's chain, and the one wrapper that gives
//! each of them the chain's queueing.
//!
//! The stack (`rtc` 0.21.1) moves every packet, read and written, through
//! each interceptor of a connection's chain as a sans-I/O [`Protocol`]
//! with its own in and out queues. Ours only look at or rewrite a packet on
//! its way: a [`Hook`] says what, and [`Tap`] is the [`Protocol`] and
//! [`Interceptor`] around it (the queues, written once).
//! - [`RtcpTap`]: the RTCP a connection receives (keyframe requests to the
//!   application, NACK counts, REMB and TWCC coverage to the estimator)
//!   and the connection's figures for the operator (`figures`);
//! - [`RtxUnwrap`]: a publisher's retransmissions back into their originals;
//! - [`RtxRetag`]: a player's retransmissions in the RTX payload type of
//!   their original's codec;
//! - [`BweFeed`]: the stack's TWCC results to our estimator (not in the
//!   chain: the congestion controller's estimator).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::interceptor::{BandwidthEstimator, PacketReport};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
use rtc::sansio::Protocol;

use super::sdp::RepairNegotiation;
use super::{nack, MIME_TYPE_RTX};

/// What one of our interceptors does to the packets passing it. Each
/// method sees a packet (or a stream bound) on its way; `false` from
/// [`Hook::on_read`] or [`Hook::on_write`] drops the packet.
pub(super) trait Hook: Send + Sync {
    /// A packet on its way in (wire to application).
    fn on_read(&mut self, _msg: &mut TaggedPacket) -> bool {
        true
    }
    /// A packet on its way out (application to wire).
    fn on_write(&mut self, _msg: &mut TaggedPacket) -> bool {
        true
    }
    fn bind_local(&mut self, _info: &StreamInfo) {}
    fn unbind_local(&mut self, _info: &StreamInfo) {}
    fn bind_remote(&mut self, _info: &StreamInfo) {}
    fn unbind_remote(&mut self, _info: &StreamInfo) {}
}

/// A [`Hook`] as a stage of the stack's chain: its read and write queues.
pub(super) struct Tap<H> {
    hook: H,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl<H> Tap<H> {
    fn new(hook: H) -> Tap<H> {
        Tap {
            hook,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }
}

/// The hook's own methods (tests drive a hook through its tap).
impl<H> std::ops::Deref for Tap<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hook
    }
}

impl<H> std::ops::DerefMut for Tap<H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.hook
    }
}

impl<H: Hook> Protocol<TaggedPacket, TaggedPacket, ()> for Tap<H> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if self.hook.on_read(&mut msg) {
            self.read.push_back(msg);
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if self.hook.on_write(&mut msg) {
            self.write.push_back(msg);
        }
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl<H: Hook> Interceptor for Tap<H> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.hook.bind_local(info);
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.hook.unbind_local(info);
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.hook.bind_remote(info);
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.hook.unbind_remote(info);
    }
}

/// Whether an RTCP compound packet asks for a keyframe (PLI or FIR).
pub(super) fn asks_for_keyframe(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
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

pub(super) fn lock_bwe(
    m: &Mutex<crate::bwe::Estimator>,
) -> std::sync::MutexGuard<'_, crate::bwe::Estimator> {
    // Only this connection's owner thread uses it; a poisoned lock still
    // holds a usable estimator.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands the stack's resolved TWCC reports to our estimator.
pub(super) struct BweFeed(pub(super) Arc<Mutex<crate::bwe::Estimator>>);

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
/// - notes the connection's own figures ([`super::figures`]): what it
///   sends (every RTP packet passes here on its way out, retransmissions
///   too), the sender reports it writes, and of the remote's RTCP the
///   NACKs, keyframe requests, and its receiver reports' loss and
///   round-trip time;
/// - passes the remote's REMB (its receive-side estimate) to our estimator,
///   and tells it which transport-wide sequence numbers each TWCC message
///   names, before the stack turns that message into results.
///
/// One interceptor for all of it: every stage of the chain moves each
/// packet, in and out, through its own queues.
pub(super) struct RtcpTap {
    bwe: Arc<Mutex<crate::bwe::Estimator>>,
    /// The connection's figures this end of the chain sees ([`figures`]).
    ///
    /// [`figures`]: super::figures
    feedback: Arc<super::figures::Feedback>,
    /// Our sender reports, for the round-trip time of receiver reports.
    sent_reports: super::figures::SentReports,
}

impl RtcpTap {
    pub(super) fn new(
        bwe: Arc<Mutex<crate::bwe::Estimator>>,
        feedback: Arc<super::figures::Feedback>,
    ) -> Tap<RtcpTap> {
        Tap::new(RtcpTap {
            bwe,
            feedback,
            sent_reports: Default::default(),
        })
    }

    /// The connection's figures in the remote's RTCP: NACKs and keyframe
    /// requests, and its receiver reports' loss and round-trip time.
    fn note_feedback(&mut self, packets: &[Box<dyn rtc::rtcp::Packet>], now: Instant) {
        use rtc::rtcp::receiver_report::ReceiverReport;
        for p in packets {
            let any = p.as_any();
            if any.downcast_ref::<TransportLayerNack>().is_some() {
                self.feedback.nack();
            } else if any.downcast_ref::<PictureLossIndication>().is_some()
                || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                self.feedback.keyframe_request();
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                if let Some(worst) = rr.reports.iter().map(|r| r.fraction_lost).max() {
                    self.feedback.fraction_lost(worst);
                }
                if let Some(rtt) = rr
                    .reports
                    .iter()
                    .filter_map(|r| self.sent_reports.rtt(r.last_sender_report, r.delay, now))
                    .min()
                {
                    self.feedback.rtt(rtt);
                }
            }
        }
    }
}

impl Hook for RtcpTap {
    fn on_write(&mut self, msg: &mut TaggedPacket) -> bool {
        match &msg.message.packet {
            Packet::Rtp(p) => self.feedback.sent(p.payload.len()),
            Packet::Rtcp(packets) => {
                use rtc::rtcp::sender_report::SenderReport;
                for p in packets {
                    if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                        self.sent_reports.wrote(sr.ntp_time, msg.now);
                    }
                }
            }
            _ => {}
        }
        true
    }

    fn on_read(&mut self, msg: &mut TaggedPacket) -> bool {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate as Remb;
            use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc as Twcc;
            count_nacks(packets);
            self.note_feedback(packets, msg.now);
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
        true
    }
}

/// Shared between a [`Peer`] and its [`RtxUnwrap`] interceptor (which the
/// stack owns once built): the peer writes what was negotiated.
#[derive(Debug, Default)]
pub(super) struct RepairState {
    pub(super) negotiated: RepairNegotiation,
}

pub(super) fn lock_repair(m: &Mutex<RepairState>) -> std::sync::MutexGuard<'_, RepairState> {
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
pub(super) struct RtxUnwrap {
    shared: Arc<Mutex<RepairState>>,
    /// RTX SSRC -> the SSRC it repairs.
    rtx_of: HashMap<u32, u32>,
    /// (mid, rid) of a simulcast layer -> its SSRC, from packets carrying both.
    layers: HashMap<(Vec<u8>, Vec<u8>), u32>,
    /// (mid, rid) an RTX SSRC named whose layer was not seen yet.
    unresolved: HashMap<u32, (Vec<u8>, Vec<u8>)>,
}

impl RtxUnwrap {
    pub(super) fn new(shared: Arc<Mutex<RepairState>>) -> Tap<RtxUnwrap> {
        Tap::new(RtxUnwrap {
            shared,
            rtx_of: HashMap::new(),
            layers: HashMap::new(),
            unresolved: HashMap::new(),
        })
    }

    /// Rewrites `p` in place when it is a retransmission that can be unwrapped.
    pub(super) fn on_rtp(&mut self, p: &mut rtc::rtp::packet::Packet) {
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

impl Hook for RtxUnwrap {
    fn on_read(&mut self, msg: &mut TaggedPacket) -> bool {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.on_rtp(p);
        }
        true
    }

    fn on_write(&mut self, msg: &mut TaggedPacket) -> bool {
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
                return false;
            }
        }
        true
    }
    fn bind_remote(&mut self, info: &StreamInfo) {
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
    fn unbind_remote(&mut self, info: &StreamInfo) {
        self.rtx_of
            .retain(|rtx, primary| *rtx != info.ssrc && *primary != info.ssrc);
        self.layers.retain(|_, ssrc| *ssrc != info.ssrc);
    }
}

/// Whether a codec carries media itself (not RTX, RED or FEC around another).
pub(super) fn is_media_codec(mime: &str) -> bool {
    let sub = mime.rsplit('/').next().unwrap_or(mime);
    !["rtx", "red", "ulpfec", "flexfec-03"]
        .iter()
        .any(|w| sub.eq_ignore_ascii_case(w))
}

/// Media payload type -> the RTX payload type that repairs it (`apt=`),
/// among negotiated codecs.
pub(super) fn rtx_payload_types(codecs: &[RTCRtpCodecParameters]) -> HashMap<u8, u8> {
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

pub(super) fn lock_rtx_send(
    m: &Mutex<HashMap<u8, u8>>,
) -> std::sync::MutexGuard<'_, HashMap<u8, u8>> {
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
pub(super) struct RtxRetag {
    send_rtx: Arc<Mutex<HashMap<u8, u8>>>,
    /// RTX SSRC -> its stream.
    streams: HashMap<u32, RetagStream>,
    /// Media SSRC -> its RTX SSRC.
    rtx_of: HashMap<u32, u32>,
}

impl RtxRetag {
    pub(super) fn new(send_rtx: Arc<Mutex<HashMap<u8, u8>>>) -> Tap<RtxRetag> {
        Tap::new(RtxRetag {
            send_rtx,
            streams: HashMap::new(),
            rtx_of: HashMap::new(),
        })
    }

    /// Follows one packet on its way out; rewrites it if it is an RTX
    /// packet whose payload type does not fit its original.
    pub(super) fn on_rtp(&mut self, p: &mut rtc::rtp::packet::Packet) {
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

impl Hook for RtxRetag {
    fn on_write(&mut self, msg: &mut TaggedPacket) -> bool {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.on_rtp(p);
        }
        true
    }

    fn bind_local(&mut self, info: &StreamInfo) {
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
    fn unbind_local(&mut self, info: &StreamInfo) {
        if let Some(rtx) = self.rtx_of.remove(&info.ssrc) {
            self.streams.remove(&rtx);
        }
    }
}
