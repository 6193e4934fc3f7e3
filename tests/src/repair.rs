//! Loss repair, seen from a webrtc-rs test client ([`crate::client`]): what a
//! client drops on purpose and what comes back, RED payloads, and a tap that
//! lets a sending connection see the server's keyframe requests.
//!
//! The client drops datagrams *outside* the stack, where SRTP leaves the RTP
//! header readable (RFC 3711 encrypts the payload only): a subscriber drops
//! some of the video the server forwards before its stack sees them (its
//! stack NACKs them, the server resends them, RTX where negotiated); a
//! publisher drops some of its own first transmissions on the way out (the
//! server's stack NACKs them, the publisher's stack resends them). Every drop
//! is recorded with its time, so a repair can be matched to it by SSRC and
//! sequence number: after RTX is unwrapped the stack hands the client the
//! original SSRC and the original sequence number (the OSN).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;

/// What a client does about loss (all off by default).
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Subscriber: drop every n-th video datagram the server forwards (its
    /// first transmission; a resent packet is never dropped again). 0: none.
    pub drop_in_every: u64,
    /// Publisher: drop every n-th video packet on its first transmission
    /// (retransmissions go out). 0: none.
    pub drop_out_every: u64,
    /// Publisher: offer RTX (`video/rtx`, apt=96) for its video.
    pub publisher_rtx: bool,
    /// Publisher: offer `audio/red` (111/111) and send audio as RED with one
    /// redundant block (the previous packet).
    pub publisher_red: bool,
    /// Subscriber: accept `audio/red` besides the default codecs.
    pub subscriber_red: bool,
    /// Publisher: Opus fmtp offered instead of `minptime=10;useinbandfec=1`.
    pub opus_fmtp: Option<String>,
    /// Publisher: answer the server's PLI/FIR with a key frame (a tap makes
    /// the stack hand them over, see [`KeyframeTap`]).
    pub answer_keyframe_requests: bool,
}

/// What a client recorded about loss and repair.
#[derive(Debug, Clone, Default)]
pub struct RepairStats {
    /// Subscriber: (SSRC, sequence number) of each video datagram dropped on
    /// arrival, with when.
    pub dropped_in: BTreeMap<(u32, u16), Instant>,
    /// Subscriber: dropped packets the stack delivered later (repaired).
    pub repaired_in: BTreeSet<(u32, u16)>,
    /// Subscriber: time from each drop to the delivery of its repair.
    pub repair_times: Vec<Duration>,
    /// Subscriber: datagrams that arrived on an RTX SSRC of the server's
    /// offer, and their (SSRC, payload type).
    pub rtx_in: u64,
    pub rtx_in_streams: BTreeSet<(u32, u8)>,
    /// Subscriber: resent video that arrived on the media SSRC itself (no RTX).
    pub plain_resent_in: u64,
    /// Subscriber: from the server's offers, each `a=ssrc-group:FID` pair
    /// (media SSRC -> RTX SSRC) and each RTX payload type -> `apt`.
    pub offered_fid: BTreeMap<u32, u32>,
    pub offered_rtx_apt: BTreeMap<u8, u8>,
    /// Subscriber: the payload type the server's offer gave `audio/red`.
    pub offered_red_pt: Option<u8>,
    /// Subscriber: payload types the server's offer gave VP8 and H264.
    pub video_pts: BTreeSet<u8>,
    /// Publisher: sequence numbers of its video dropped on the way out.
    pub dropped_out: BTreeMap<u16, Instant>,
    /// Publisher: datagrams it sent on an SSRC other than its media's (RTX).
    pub rtx_out: u64,
    /// Publisher: dropped packets resent on the media SSRC (no RTX).
    pub plain_resent_out: u64,
    /// Subscriber: RED packets received, and their redundant blocks that
    /// verified (a real decoder would use them to fill a lost packet).
    pub red_in: u64,
    pub red_redundant_intact: u64,
    /// Subscriber: RED packets whose blocks did not parse or verify.
    pub red_bad: u64,
    /// Subscriber: audio payload types seen.
    pub audio_pts: BTreeSet<u8>,
}

impl RepairStats {
    /// Drops that were repaired, as a share of those made before `until`
    /// (later drops may still be in repair).
    pub fn repaired_share(&self, until: Instant) -> (usize, usize) {
        let made: Vec<&(u32, u16)> = self
            .dropped_in
            .iter()
            .filter(|(_, at)| **at < until)
            .map(|(k, _)| k)
            .collect();
        let repaired = made.iter().filter(|k| self.repaired_in.contains(k)).count();
        (repaired, made.len())
    }
}

/// The RTP header fields of a datagram (SRTP leaves them in the clear);
/// `None` for RTCP, STUN, DTLS or anything short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHead {
    pub pt: u8,
    pub seq: u16,
    pub ssrc: u32,
}

/// Reads [`RtpHead`] from a datagram (RFC 7983 demultiplexing: first byte
/// 128..=191; RFC 5761: RTCP packet types 192..=223 in the second byte).
pub fn rtp_head(d: &[u8]) -> Option<RtpHead> {
    if d.len() < 12 || !(128..=191).contains(&d[0]) || (192..=223).contains(&d[1]) {
        return None;
    }
    Some(RtpHead {
        pt: d[1] & 0x7f,
        seq: u16::from_be_bytes([d[2], d[3]]),
        ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
    })
}

/// Reads what an SDP declares about repair: `a=ssrc-group:FID` pairs, RTX
/// payload types with their `apt`, and the payload type of `audio/red`.
pub fn sdp_repair(sdp: &str, stats: &mut RepairStats) {
    let mut rtx_pts = BTreeSet::new();
    let mut apts = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("a=ssrc-group:FID ") {
            let ssrcs: Vec<u32> = rest
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            if let [media, rtx] = ssrcs[..] {
                stats.offered_fid.insert(media, rtx);
            }
        } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut f = rest.split_whitespace();
            let (Some(Ok(pt)), Some(enc)) = (f.next().map(str::parse::<u8>), f.next()) else {
                continue;
            };
            let enc = enc.to_ascii_lowercase();
            if enc.starts_with("rtx/") {
                rtx_pts.insert(pt);
            } else if enc.starts_with("red/48000") {
                stats.offered_red_pt = Some(pt);
            } else if enc.starts_with("vp8/") || enc.starts_with("h264/") {
                stats.video_pts.insert(pt);
            }
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let Some((pt, params)) = rest.split_once(' ') else {
                continue;
            };
            let apt = params
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix("apt="))
                .and_then(|v| v.parse::<u8>().ok());
            if let (Ok(pt), Some(apt)) = (pt.parse::<u8>(), apt) {
                apts.push((pt, apt));
            }
        }
    }
    for (pt, apt) in apts {
        if rtx_pts.contains(&pt) {
            stats.offered_rtx_apt.insert(pt, apt);
        }
    }
}

/// A RED payload (RFC 2198) of one redundant block (`previous`, 960 ticks
/// earlier) and the primary block, both of payload type `pt`.
pub fn red_payload(pt: u8, previous: Option<&[u8]>, primary: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + primary.len() + previous.map_or(0, <[u8]>::len));
    if let Some(prev) = previous.filter(|p| p.len() < 1024) {
        let offset: u16 = 960;
        let len = prev.len() as u16;
        out.extend_from_slice(&[
            0x80 | pt,
            (offset >> 6) as u8,
            (((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8),
            len as u8,
        ]);
        out.push(pt & 0x7f);
        out.extend_from_slice(prev);
    } else {
        out.push(pt & 0x7f);
    }
    out.extend_from_slice(primary);
    out
}

/// The blocks of a RED payload: (payload type, data), redundant ones first,
/// the primary last. `None` when malformed.
pub fn red_blocks(p: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut lens = Vec::new();
    let mut i = 0;
    loop {
        let b0 = *p.get(i)?;
        if b0 & 0x80 == 0 {
            break;
        }
        let h = p.get(i..i + 4)?;
        lens.push((
            b0 & 0x7f,
            (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]),
        ));
        i += 4;
    }
    let primary_pt = p[i] & 0x7f;
    let mut at = i + 1;
    let mut out = Vec::new();
    for (pt, len) in lens {
        out.push((pt, p.get(at..at + len)?));
        at += len;
    }
    out.push((primary_pt, p.get(at..)?));
    Some(out)
}

/// Marks inbound PLI and FIR for delivery to the application: rtc 0.21.1
/// drops inbound RTCP that no interceptor marks, so without this a sending
/// connection never learns that the server asked for a key frame.
#[derive(Default)]
pub struct KeyframeTap {
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let asks = packets.iter().any(|p| {
                let any = p.as_any();
                any.downcast_ref::<PictureLossIndication>().is_some()
                    || any.downcast_ref::<FullIntraRequest>().is_some()
            });
            if asks && !msg.message.has(&Attribute::DeliverToApplication) {
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

impl Interceptor for KeyframeTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Unwraps RFC 4588 retransmissions of SSRC-declared streams before the NACK
/// generator, as a browser does. rtc 0.21.1 unwraps them only after its
/// interceptors, so its NACK generator never learns that a NACKed packet
/// came and asks for it again every 100 ms until it leaves its window (one
/// drop measured ~40 retransmissions). The server does the same for what
/// publishers send (sfu/src/peer.rs, `RtxUnwrap`).
#[derive(Default)]
pub struct RtxUnwrap {
    /// RTX SSRC -> (media SSRC, media payload type, RTX payload type).
    streams: std::collections::HashMap<u32, (u32, u8, u8)>,
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for RtxUnwrap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            if let Some(&(ssrc, pt, rtx_pt)) = self.streams.get(&p.header.ssrc) {
                if p.header.payload_type == rtx_pt && p.payload.len() >= 2 {
                    p.header.ssrc = ssrc;
                    p.header.payload_type = pt;
                    p.header.sequence_number = u16::from_be_bytes([p.payload[0], p.payload[1]]);
                    p.header.padding = false;
                    p.payload = p.payload.slice(2..);
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
        if let (Some(rtx), Some(rtx_pt)) = (info.ssrc_rtx, info.payload_type_rtx) {
            self.streams
                .insert(rtx, (info.ssrc, info.payload_type, rtx_pt));
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.retain(|_, s| s.0 != info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_round_trips() {
        let p = red_payload(111, Some(b"prev"), b"now!");
        assert_eq!(
            red_blocks(&p),
            Some(vec![(111, &b"prev"[..]), (111, &b"now!"[..])])
        );
        let q = red_payload(111, None, b"first");
        assert_eq!(red_blocks(&q), Some(vec![(111, &b"first"[..])]));
        assert_eq!(red_blocks(&p[..3]), None);
    }

    #[test]
    fn rtp_heads_are_read_and_rtcp_is_not() {
        let mut d = vec![0x80, 96, 0x12, 0x34, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
        assert_eq!(
            rtp_head(&d),
            Some(RtpHead {
                pt: 96,
                seq: 0x1234,
                ssrc: 0xdeadbeef
            })
        );
        d[1] = 200; // a sender report
        assert_eq!(rtp_head(&d), None);
        assert_eq!(rtp_head(&[0x16, 0xfe]), None);
    }

    #[test]
    fn sdp_repair_lines_are_read() {
        let mut s = RepairStats::default();
        sdp_repair(
            "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
             a=ssrc-group:FID 10 11\r\na=rtpmap:63 red/48000/2\r\n",
            &mut s,
        );
        assert_eq!(s.offered_fid, BTreeMap::from([(10, 11)]));
        assert_eq!(s.offered_rtx_apt, BTreeMap::from([(97, 96)]));
        assert_eq!(s.offered_red_pt, Some(63));
    }
}
