//! Answers a subscriber's NACKs from a short history of what was sent.
//!
//! This replaces rtc 0.21.1's `NackResponderInterceptor` (same slot, same
//! retransmissions: the original packet again, or RFC 4588 RTX on the
//! stream's RTX SSRC and payload type) for what it cost in memory. The
//! stack's responder gives every bound stream a send buffer of a fixed
//! number of slots as soon as the stream is bound, that is when the track is
//! negotiated: a subscriber connection negotiates every other participant's
//! video and receives at most last-N of them, so most of those buffers never
//! hold a packet. And the slots count packets, not time: 256 packets are
//! 0.2 s of a 2.5 Mbit/s layer but 8 s of a thumbnail layer at one packet per
//! frame, each kept packet holding its (per subscriber rewritten) payload.
//!
//! Here a stream's history is allocated on its first packet, keeps what was
//! sent in the last [`KEEP`] (at most [`MAX_PACKETS`] packets), and is freed
//! again once the stream has sent nothing for that long (a paused layer, a
//! video last-N no longer forwards). A receiver asks within a round trip or
//! two; what is older would come too late to play (libwebrtc keeps about
//! the same: a second, or three round trips where they are longer).
//!
//! Retransmissions are bounded too. A packet is sent again at most once per
//! [`RESEND_INTERVAL`], however often it is asked for, and the connection
//! sends at most one retransmission per media packet it sent (credits, up
//! to [`MAX_CREDITS`] saved): a receiver that lost everything for a while
//! (a starved machine) asks for up to a second of every stream at once, and
//! answering all of it in one burst doubled the load that lost it, and left
//! every queue of the connection's pipeline sized for thousands of packets
//! for the rest of its life (8 MB for one connection, measured).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rtc::interceptor::{
    Attribute, AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::shared::TransportContext;

/// How long a sent packet can be asked for again.
pub(super) const KEEP: Duration = Duration::from_secs(1);

/// Packets kept per stream at most, whatever their age.
pub(super) const MAX_PACKETS: usize = 512;

/// A packet is sent again at most once in this time.
const RESEND_INTERVAL: Duration = Duration::from_millis(100);

/// Retransmissions a connection may save up (one per packet sent).
const MAX_CREDITS: u16 = 256;

/// One packet sent, as much of it as a retransmission needs (the server
/// sends neither CSRCs nor header extensions above this interceptor; the
/// transport-wide sequence number is added below it, anew for each
/// retransmission). Half the size of a kept `rtp::Packet`.
struct Kept {
    at: Instant,
    /// When it was last sent again.
    resent: Option<Instant>,
    timestamp: u32,
    sequence_number: u16,
    payload_type: u8,
    marker: bool,
    payload: bytes::Bytes,
}

/// One sent stream.
struct Stream {
    /// RTX SSRC and payload type, where the remote accepted RTX.
    rtx: Option<(u32, u8)>,
    rtx_sequence_number: u16,
    /// What was sent, oldest first (in the order sent); empty and without
    /// an allocation while the stream sends nothing.
    sent: VecDeque<Kept>,
}

impl Stream {
    /// Forgets what was sent before `now - KEEP`; frees the history when
    /// nothing is left, and most of it when a quarter is used (the stream
    /// went from a large layer to a small one).
    fn expire(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|k| now.saturating_duration_since(k.at) > KEEP)
        {
            self.sent.pop_front();
        }
        if self.sent.is_empty() {
            if self.sent.capacity() > 0 {
                self.sent = VecDeque::new();
            }
        } else if self.sent.capacity() > 64 && self.sent.len() < self.sent.capacity() / 4 {
            self.sent.shrink_to(self.sent.len() * 2);
        }
    }

    fn remember(&mut self, now: Instant, p: &rtc::rtp::packet::Packet) {
        self.expire(now);
        if self.sent.len() >= MAX_PACKETS {
            self.sent.pop_front();
        }
        self.sent.push_back(Kept {
            at: now,
            resent: None,
            timestamp: p.header.timestamp,
            sequence_number: p.header.sequence_number,
            payload_type: p.header.payload_type,
            marker: p.header.marker,
            payload: p.payload.clone(),
        });
    }

    /// The packet sent with sequence number `seq`, if still kept.
    fn find(&mut self, seq: u16) -> Option<&mut Kept> {
        let first = self.sent.front()?.sequence_number;
        // Sent in order, the packet is at its distance from the first one;
        // else (a late packet was forwarded in between) look for it.
        let at = usize::from(seq.wrapping_sub(first));
        if self.sent.get(at).is_some_and(|k| k.sequence_number == seq) {
            return self.sent.get_mut(at);
        }
        self.sent
            .iter_mut()
            .rev()
            .find(|k| k.sequence_number == seq)
    }
}

/// The NACK responder (see the module).
#[derive(Default)]
pub(super) struct NackResponder {
    /// Streams the stack bound that accept generic NACK, by SSRC.
    streams: HashMap<u32, Stream>,
    /// The next RTX sequence number of unbound streams, by RTX SSRC: a
    /// track that takes a removed track's SSRCs again (`Peer::add_sender`)
    /// continues its retransmissions' numbering, as the remote's SRTP
    /// replay window for the SSRC wants.
    rtx_next: HashMap<u32, u16>,
    /// When to look for histories to expire: set while any stream keeps
    /// packets.
    next_expiry: Option<Instant>,
    /// Retransmissions it may send now (see the module).
    credits: u16,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl NackResponder {
    fn on_nack(&mut self, now: Instant, nack: &TransportLayerNack) {
        let Some(stream) = self.streams.get_mut(&nack.media_ssrc) else {
            return;
        };
        let asked = nack.nacks.iter().flat_map(|pair| {
            std::iter::once(pair.packet_id).chain(
                (0..16u16)
                    .filter(|i| pair.lost_packets & (1 << i) != 0)
                    .map(|i| pair.packet_id.wrapping_add(i + 1)),
            )
        });
        for seq in asked {
            if self.credits == 0 {
                break;
            }
            let rtx_sequence_number = stream.rtx_sequence_number;
            let rtx = stream.rtx;
            let Some(original) = stream.find(seq) else {
                continue;
            };
            if original
                .resent
                .is_some_and(|t| now.saturating_duration_since(t) < RESEND_INTERVAL)
            {
                continue;
            }
            original.resent = Some(now);
            let original = &*original;
            let (ssrc, payload_type, sequence_number, payload) = match rtx {
                Some((ssrc, pt)) => {
                    // RFC 4588: the original sequence number, then the payload.
                    let mut payload = Vec::with_capacity(2 + original.payload.len());
                    payload.extend_from_slice(&seq.to_be_bytes());
                    payload.extend_from_slice(&original.payload);
                    (ssrc, pt, rtx_sequence_number, payload.into())
                }
                None => (
                    nack.media_ssrc,
                    original.payload_type,
                    seq,
                    original.payload.clone(),
                ),
            };
            let packet = rtc::rtp::packet::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    ssrc,
                    payload_type,
                    sequence_number,
                    timestamp: original.timestamp,
                    marker: original.marker,
                    ..Default::default()
                },
                payload,
            };
            if rtx.is_some() {
                stream.rtx_sequence_number = rtx_sequence_number.wrapping_add(1);
            }
            self.credits -= 1;
            // Marked so that the send history below counts it as new bytes
            // on the wire, as the stack's responder does.
            self.write.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtp(packet)).with(Attribute::Retransmission),
            });
        }
    }

    /// (Packets kept, streams with an allocated history), for tests.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let packets = self.streams.values().map(|s| s.sent.len()).sum();
        let allocated = self
            .streams
            .values()
            .filter(|s| s.sent.capacity() > 0)
            .count();
        (packets, allocated)
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for NackResponder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(nack) = p.as_any().downcast_ref::<TransportLayerNack>() {
                    self.on_nack(msg.now, nack);
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &msg.message.packet {
            if let Some(stream) = self.streams.get_mut(&p.header.ssrc) {
                stream.remember(msg.now, p);
                self.credits = (self.credits + 1).min(MAX_CREDITS);
                if self.next_expiry.is_none() {
                    self.next_expiry = Some(msg.now + KEEP);
                }
            }
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        if self.next_expiry.is_some_and(|t| t <= now) {
            for s in self.streams.values_mut() {
                s.expire(now);
            }
            self.next_expiry = self
                .streams
                .values()
                .any(|s| !s.sent.is_empty())
                .then_some(now + KEEP);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.next_expiry
    }
}

impl Interceptor for NackResponder {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty());
        if nack {
            let rtx = info.ssrc_rtx.zip(info.payload_type_rtx);
            let rtx_sequence_number = rtx
                .and_then(|(ssrc, _)| self.rtx_next.remove(&ssrc))
                .unwrap_or(0);
            self.streams.insert(
                info.ssrc,
                Stream {
                    rtx,
                    rtx_sequence_number,
                    sent: VecDeque::new(),
                },
            );
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(Stream {
            rtx: Some((rtx_ssrc, _)),
            rtx_sequence_number,
            ..
        }) = self.streams.remove(&info.ssrc)
        {
            self.rtx_next.insert(rtx_ssrc, rtx_sequence_number);
        }
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::RTCPFeedback;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
    use rtc::sansio::Protocol;

    fn info(ssrc: u32, rtx: Option<(u32, u8)>) -> StreamInfo {
        StreamInfo {
            ssrc,
            ssrc_rtx: rtx.map(|r| r.0),
            payload_type: 96,
            payload_type_rtx: rtx.map(|r| r.1),
            clock_rate: 90_000,
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".into(),
                parameter: "".into(),
            }],
            ..Default::default()
        }
    }

    fn rtp(now: Instant, ssrc: u32, seq: u16) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtc::rtp::packet::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    payload_type: 96,
                    sequence_number: seq,
                    timestamp: u32::from(seq) * 3000,
                    marker: seq % 2 == 1,
                    ssrc,
                    ..Default::default()
                },
                payload: vec![seq as u8; 10].into(),
            })),
        }
    }

    fn nack(now: Instant, ssrc: u32, packet_id: u16, lost_packets: u16) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc: ssrc,
                nacks: vec![NackPair {
                    packet_id,
                    lost_packets,
                }],
            })])),
        }
    }

    /// Sends `seqs` (draining the written packets) and returns the responder.
    fn sent(r: &mut NackResponder, now: Instant, ssrc: u32, seqs: impl Iterator<Item = u16>) {
        for seq in seqs {
            r.handle_write(rtp(now, ssrc, seq)).unwrap();
            while r.poll_write().is_some() {}
        }
    }

    fn resent(r: &mut NackResponder) -> Vec<rtc::rtp::packet::Packet> {
        while r.poll_read().is_some() {}
        std::iter::from_fn(|| r.poll_write())
            .map(|m| {
                assert!(m.message.has(&Attribute::Retransmission));
                match m.message.packet {
                    Packet::Rtp(p) => p,
                    _ => panic!("not RTP"),
                }
            })
            .collect()
    }

    #[test]
    fn a_bound_stream_allocates_nothing_until_it_sends() {
        let now = Instant::now();
        let mut r = NackResponder::default();
        for ssrc in 1..=50 {
            r.bind_local_stream(&info(ssrc, None));
        }
        assert_eq!(r.kept(), (0, 0));
        assert_eq!(r.poll_timeout(), None);
        sent(&mut r, now, 7, 0..3);
        assert_eq!(r.kept(), (3, 1));
        // An unbound SSRC (audio: no generic NACK) is not kept.
        sent(&mut r, now, 99, 0..3);
        assert_eq!(r.kept(), (3, 1));
    }

    #[test]
    fn nacked_packets_are_sent_again() {
        let now = Instant::now();
        let mut r = NackResponder::default();
        r.bind_local_stream(&info(7, None));
        sent(&mut r, now, 7, 65_530..=65_535);
        sent(&mut r, now, 7, 0..10);
        // 65 534, and from the bitmap + 1 (65 535) and + 3 (1, wrapped).
        r.handle_read(nack(now, 7, 65_534, 0b101)).unwrap();
        let again = resent(&mut r);
        let seqs: Vec<u16> = again.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs, vec![65_534, 65_535, 1]);
        // The original packet again, as it was sent.
        let p = &again[2];
        assert_eq!(p.header.version, 2);
        assert_eq!(p.header.ssrc, 7);
        assert_eq!(p.header.payload_type, 96);
        assert_eq!(p.header.timestamp, 3000);
        assert!(p.header.marker);
        assert_eq!(&p.payload[..], &[1u8; 10]);
        // Not sent, or another stream's: nothing.
        r.handle_read(nack(now, 7, 500, 0)).unwrap();
        r.handle_read(nack(now, 8, 1, 0)).unwrap();
        assert!(resent(&mut r).is_empty());
    }

    #[test]
    fn retransmissions_are_bounded() {
        let t0 = Instant::now();
        let mut r = NackResponder::default();
        r.bind_local_stream(&info(7, None));
        sent(&mut r, t0, 7, 0..300);
        // Asked twice at once: sent once; asked again after the interval:
        // sent again.
        r.handle_read(nack(t0, 7, 250, 0)).unwrap();
        r.handle_read(nack(t0, 7, 250, 0)).unwrap();
        assert_eq!(resent(&mut r).len(), 1);
        let t1 = t0 + RESEND_INTERVAL;
        r.handle_read(nack(t1, 7, 250, 0)).unwrap();
        assert_eq!(resent(&mut r).len(), 1);
        // Everything asked for: MAX_CREDITS (less the two above) at most,
        // then one per packet sent.
        for first in (0..300u16).step_by(17) {
            r.handle_read(nack(t1, 7, first, 0xffff)).unwrap();
        }
        assert_eq!(resent(&mut r).len(), usize::from(MAX_CREDITS) - 2);
        sent(&mut r, t1, 7, 300..303);
        r.handle_read(nack(t1, 7, 0, 0xffff)).unwrap();
        assert_eq!(resent(&mut r).len(), 0, "resent within the interval");
        let t2 = t1 + RESEND_INTERVAL;
        r.handle_read(nack(t2, 7, 0, 0xffff)).unwrap();
        assert_eq!(resent(&mut r).len(), 3);
    }

    #[test]
    fn a_late_packet_is_found_out_of_order() {
        let now = Instant::now();
        let mut r = NackResponder::default();
        r.bind_local_stream(&info(7, None));
        sent(&mut r, now, 7, [10, 11, 13, 12, 14].into_iter());
        r.handle_read(nack(now, 7, 12, 0b11)).unwrap();
        let seqs: Vec<u16> = resent(&mut r)
            .iter()
            .map(|p| p.header.sequence_number)
            .collect();
        assert_eq!(seqs, vec![12, 13, 14]);
    }

    #[test]
    fn retransmissions_use_rtx_where_negotiated() {
        let now = Instant::now();
        let mut r = NackResponder::default();
        r.bind_local_stream(&info(7, Some((70, 97))));
        sent(&mut r, now, 7, 100..105);
        r.handle_read(nack(now, 7, 101, 0b1)).unwrap();
        let p = resent(&mut r);
        assert_eq!(p.len(), 2);
        for (i, p) in p.iter().enumerate() {
            let osn = 101 + i as u16;
            assert_eq!(p.header.version, 2);
            assert_eq!(p.header.ssrc, 70);
            assert_eq!(p.header.payload_type, 97);
            assert_eq!(p.header.sequence_number, i as u16);
            assert_eq!(p.header.timestamp, u32::from(osn) * 3000);
            assert_eq!(&p.payload[..2], &osn.to_be_bytes());
            assert_eq!(&p.payload[2..], &[osn as u8; 10]);
        }
    }

    #[test]
    fn a_stream_on_a_taken_rtx_ssrc_continues_its_numbering() {
        let now = Instant::now();
        let mut r = NackResponder::default();
        r.bind_local_stream(&info(7, Some((70, 97))));
        sent(&mut r, now, 7, 100..105);
        r.handle_read(nack(now, 7, 101, 0b1)).unwrap();
        assert_eq!(resent(&mut r).len(), 2);
        r.unbind_local_stream(&info(7, Some((70, 97))));
        // A new track takes SSRC 7 and RTX SSRC 70 again: its first
        // retransmission follows the two sent before.
        r.bind_local_stream(&info(7, Some((70, 97))));
        sent(&mut r, now, 7, 500..505);
        r.handle_read(nack(now + Duration::from_millis(200), 7, 502, 0))
            .unwrap();
        let again = resent(&mut r);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].header.ssrc, 70);
        assert_eq!(again[0].header.sequence_number, 2);
        // Another RTX SSRC starts afresh.
        r.bind_local_stream(&info(8, Some((80, 97))));
        sent(&mut r, now, 8, 10..12);
        r.handle_read(nack(now + Duration::from_millis(200), 8, 10, 0))
            .unwrap();
        assert_eq!(resent(&mut r)[0].header.sequence_number, 0);
    }

    #[test]
    fn history_is_bounded_in_time_and_count_and_freed() {
        let t0 = Instant::now();
        let mut r = NackResponder::default();
        r.bind_local_stream(&info(7, None));
        sent(&mut r, t0, 7, 0..10);
        let t1 = t0 + KEEP / 2;
        sent(&mut r, t1, 7, 10..20);
        // Past KEEP for the first ten only.
        let t2 = t0 + KEEP + Duration::from_millis(1);
        sent(&mut r, t2, 7, 20..21);
        assert_eq!(r.kept(), (11, 1));
        r.handle_read(nack(t2, 7, 9, 0b1)).unwrap();
        let seqs: Vec<u16> = resent(&mut r)
            .iter()
            .map(|p| p.header.sequence_number)
            .collect();
        assert_eq!(seqs, vec![10]);
        // The stream pauses: the timer frees its history.
        let t3 = t2 + KEEP + Duration::from_millis(1);
        let due = r.poll_timeout().expect("a timer while packets are kept");
        assert!(due <= t3);
        r.handle_timeout(t3).unwrap();
        assert_eq!(r.kept(), (0, 0));
        assert_eq!(r.poll_timeout(), None);
        // At most MAX_PACKETS at once.
        sent(&mut r, t3, 7, 0..(MAX_PACKETS as u16 + 5));
        assert_eq!(r.kept(), (MAX_PACKETS, 1));
        r.unbind_local_stream(&info(7, None));
        assert_eq!(r.kept(), (0, 0));
    }
}
