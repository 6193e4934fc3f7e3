//! One published track as one subscriber receives it: which simulcast layer,
//! and the rewriting that makes layer switches invisible (one SSRC, continuous
//! sequence numbers, timestamps and VP8 picture ids).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{self, VideoCodec};
use crate::peer::RtpPacket;
use crate::Quality;

/// A layer not seen for this long is taken as stopped by the publisher.
const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);

/// How good a layer is, from its RTP stream id. Browsers and encoders name
/// their layers by convention: q/h/f (quarter, half, full), l/m/h, 0/1/2.
pub(crate) fn layer_rank(rid: &str) -> u8 {
    match rid {
        "q" | "l" | "low" | "0" => 0,
        "h" | "m" | "mid" | "medium" | "1" => 1,
        "f" | "high" | "full" | "2" => 2,
        _ => 1,
    }
}

/// Layers of a track seen recently.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    seen: Vec<(String, Instant)>,
}

impl Layers {
    /// Notes a packet of `rid`; returns whether the layer is new.
    pub fn saw(&mut self, rid: &str, now: Instant) -> bool {
        if let Some(l) = self.seen.iter_mut().find(|l| l.0 == rid) {
            l.1 = now;
            false
        } else {
            self.seen.push((rid.to_owned(), now));
            self.seen.sort_by_key(|l| layer_rank(&l.0));
            true
        }
    }

    /// The layer to send a subscriber who wants `q`, among those alive now.
    pub fn choose(&self, q: Quality, now: Instant) -> Option<&str> {
        let alive: Vec<&str> = self
            .seen
            .iter()
            .filter(|l| now.duration_since(l.1) < LAYER_TIMEOUT)
            .map(|l| l.0.as_str())
            .collect();
        pick(&alive, q)
    }

    /// How many layers the track has had.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Every layer the track has had, lowest first.
    pub fn all(&self) -> Vec<String> {
        self.seen.iter().map(|l| l.0.clone()).collect()
    }

    /// The layers the publisher should send for subscribers with these
    /// wishes, lowest first. The lowest layer always runs, so a newcomer or a
    /// thumbnail has something to show at once.
    pub fn wanted(&self, wishes: impl Iterator<Item = Quality>) -> Vec<String> {
        let all: Vec<&str> = self.seen.iter().map(|l| l.0.as_str()).collect();
        let mut out: Vec<&str> = all.first().copied().into_iter().collect();
        for q in wishes {
            if let Some(rid) = pick(&all, q) {
                if !out.contains(&rid) {
                    out.push(rid);
                }
            }
        }
        out.sort_by_key(|rid| layer_rank(rid));
        out.into_iter().map(str::to_owned).collect()
    }
}

/// The best of `layers` (lowest first) at or below the wish, else the lowest.
fn pick<'a>(layers: &[&'a str], q: Quality) -> Option<&'a str> {
    let want = match q {
        Quality::Off => return None,
        Quality::Low => 0,
        Quality::Medium => 1,
        Quality::High => 2,
    };
    layers
        .iter()
        .rev()
        .find(|rid| layer_rank(rid) <= want)
        .or_else(|| layers.first())
        .copied()
}

/// Output-stream continuity across source switches.
#[derive(Debug, Default)]
struct Rewriter {
    started: bool,
    seq_delta: u16,
    ts_delta: u32,
    pic_delta: u16,
    tl0_delta: u8,
    last_seq: u16,
    last_ts: u32,
    last_pic: Option<u16>,
    last_tl0: Option<u8>,
    last_sent: Option<Instant>,
}

fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Rewriter {
    /// Starts a new source at `p` (the first packet of a keyframe).
    fn switch(
        &mut self,
        p: &RtpPacket,
        vp8: Option<&codec::Vp8Descriptor>,
        clock: u32,
        now: Instant,
    ) {
        if !self.started {
            self.started = true;
            return;
        }
        self.seq_delta = self
            .last_seq
            .wrapping_add(1)
            .wrapping_sub(p.sequence_number);
        // Advance the timestamp by the wall-clock time since the last packet.
        let elapsed = self
            .last_sent
            .map(|t| now.duration_since(t))
            .unwrap_or_default();
        let ticks = ((elapsed.as_micros() as u64 * u64::from(clock)) / 1_000_000).max(1) as u32;
        self.ts_delta = self.last_ts.wrapping_add(ticks).wrapping_sub(p.timestamp);
        if let Some(d) = vp8 {
            if let (Some((_, _, pic)), Some(last)) = (d.picture_id, self.last_pic) {
                self.pic_delta = last.wrapping_add(1).wrapping_sub(pic);
            }
            if let (Some((_, tl0)), Some(last)) = (d.tl0picidx, self.last_tl0) {
                self.tl0_delta = last.wrapping_add(1).wrapping_sub(tl0);
            }
        }
    }

    fn rewrite(
        &mut self,
        p: &RtpPacket,
        vp8: Option<&codec::Vp8Descriptor>,
        now: Instant,
    ) -> RtpPacket {
        let seq = p.sequence_number.wrapping_add(self.seq_delta);
        let ts = p.timestamp.wrapping_add(self.ts_delta);
        if seq_newer(seq, self.last_seq) || self.last_sent.is_none() {
            self.last_seq = seq;
            self.last_ts = ts;
        }
        self.last_sent = Some(now);
        let mut payload = p.payload.clone();
        if let Some(d) = vp8 {
            let mut pic_out = None;
            let mut tl0_out = None;
            if let Some((at, width, pic)) = d.picture_id {
                let mask = if width == 15 { 0x7fff } else { 0x7f };
                let v = pic.wrapping_add(self.pic_delta) & mask;
                pic_out = Some((at, width, v));
                self.last_pic = Some(v);
            }
            if let Some((at, tl0)) = d.tl0picidx {
                let v = tl0.wrapping_add(self.tl0_delta);
                tl0_out = Some((at, v));
                self.last_tl0 = Some(v);
            }
            if (self.pic_delta != 0 && pic_out.is_some())
                || (self.tl0_delta != 0 && tl0_out.is_some())
            {
                let mut buf = BytesMut::from(&p.payload[..]);
                if let Some((at, width, v)) = pic_out {
                    codec::write_vp8_picture_id(&mut buf, at, width, v);
                }
                if let Some((at, v)) = tl0_out {
                    codec::write_vp8_tl0(&mut buf, at, v);
                }
                payload = Bytes::from(buf);
            }
        }
        RtpPacket {
            marker: p.marker,
            sequence_number: seq,
            timestamp: ts,
            ssrc: p.ssrc,
            payload,
        }
    }
}

/// What to do with one packet for one subscriber.
pub(crate) enum Verdict {
    /// Send this (rewritten) packet.
    Send(RtpPacket),
    /// Not for this subscriber now.
    Skip,
    /// Not yet: the subscriber waits for a keyframe of this packet's layer.
    NeedKeyframe,
}

/// A track as one subscriber receives it.
#[derive(Debug)]
pub(crate) struct Forward {
    /// The subscriber connection.
    pub sub: crate::engine::PeerKey,
    /// What the subscriber asked for.
    pub quality: Quality,
    /// The layer now forwarded (its rid), once a keyframe started it.
    current: Option<String>,
    rw: Rewriter,
}

impl Forward {
    pub fn new(sub: crate::engine::PeerKey, quality: Quality) -> Forward {
        Forward {
            sub,
            quality,
            current: None,
            rw: Rewriter::default(),
        }
    }

    /// Decides for a packet of `layer`; `codec` is the track's video codec
    /// (`None` for audio), `clock` its clock rate.
    pub fn on_packet(
        &mut self,
        layers: &Layers,
        layer: &str,
        p: &RtpPacket,
        codec: Option<VideoCodec>,
        clock: u32,
        now: Instant,
    ) -> Verdict {
        let Some(target) = layers.choose(self.quality, now) else {
            return Verdict::Skip;
        };
        let vp8 = match codec {
            Some(VideoCodec::Vp8) => codec::parse_vp8(&p.payload),
            _ => None,
        };
        if self.current.as_deref() == Some(layer) && (target == layer || codec.is_none()) {
            return Verdict::Send(self.rw.rewrite(p, vp8.as_ref(), now));
        }
        if target != layer {
            return Verdict::Skip;
        }
        // The wanted layer: switch to it where a decoder can start.
        let can_start = match codec {
            None => true,
            Some(c) => codec::is_keyframe_start(c, &p.payload),
        };
        if !can_start {
            // Keep sending the current layer meanwhile; ask for a keyframe.
            return Verdict::NeedKeyframe;
        }
        self.current = Some(layer.to_owned());
        self.rw.switch(p, vp8.as_ref(), clock, now);
        Verdict::Send(self.rw.rewrite(p, vp8.as_ref(), now))
    }

    /// The layer now forwarded.
    #[cfg(test)]
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp8(seq: u16, ts: u32, pic: u16, key: bool, start: bool) -> RtpPacket {
        let b0 = if start { 0x90 } else { 0x80 };
        let hdr = if key { 0x10 } else { 0x11 };
        let payload = vec![b0, 0x80, 0x80 | (pic >> 8) as u8, pic as u8, hdr, 0, 0];
        RtpPacket {
            marker: true,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 1,
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn layer_choice_follows_wish_and_availability() {
        let now = Instant::now();
        let mut l = Layers::default();
        l.saw("f", now);
        l.saw("q", now);
        assert_eq!(l.choose(Quality::High, now), Some("f"));
        assert_eq!(l.choose(Quality::Medium, now), Some("q"));
        assert_eq!(l.choose(Quality::Low, now), Some("q"));
        assert_eq!(l.choose(Quality::Off, now), None);
        l.saw("h", now);
        assert_eq!(l.choose(Quality::Medium, now), Some("h"));
        // Only "f" keeps coming: it is all there is.
        let later = now + Duration::from_secs(2);
        l.saw("f", later);
        assert_eq!(l.choose(Quality::Low, later), Some("f"));
    }

    #[test]
    fn wanted_layers_follow_the_wishes() {
        let now = Instant::now();
        let mut l = Layers::default();
        for rid in ["f", "h", "q"] {
            l.saw(rid, now);
        }
        assert_eq!(
            l.wanted([Quality::Low, Quality::Low].into_iter()),
            vec!["q"]
        );
        assert_eq!(l.wanted([Quality::Off].into_iter()), vec!["q"]);
        assert_eq!(
            l.wanted([Quality::High, Quality::Low].into_iter()),
            vec!["q", "f"]
        );
        assert_eq!(
            l.wanted([Quality::Medium, Quality::High].into_iter()),
            vec!["q", "h", "f"]
        );
        // A paused layer still counts as the track's: it can be asked back.
        let later = now + Duration::from_secs(5);
        l.saw("q", later);
        assert_eq!(l.wanted([Quality::High].into_iter()), vec!["q", "f"]);
        assert_eq!(l.all(), vec!["q", "h", "f"]);
    }

    #[test]
    fn switching_waits_for_a_keyframe_and_keeps_the_stream_continuous() {
        let t0 = Instant::now();
        let mut layers = Layers::default();
        layers.saw("q", t0);
        layers.saw("f", t0);
        let mut f = Forward::new(1, Quality::Low);
        let codec = Some(VideoCodec::Vp8);
        // Low layer starts at a keyframe.
        let Verdict::Send(a) = f.on_packet(
            &layers,
            "q",
            &vp8(100, 9000, 10, true, true),
            codec,
            90000,
            t0,
        ) else {
            panic!("first keyframe not sent")
        };
        assert_eq!((a.sequence_number, a.timestamp), (100, 9000));
        let Verdict::Send(b) = f.on_packet(
            &layers,
            "q",
            &vp8(101, 12000, 11, false, true),
            codec,
            90000,
            t0,
        ) else {
            panic!("delta not sent")
        };
        assert_eq!(b.sequence_number, 101);
        // The subscriber now wants the high layer: its delta frames wait...
        f.quality = Quality::High;
        let t1 = t0 + Duration::from_millis(33);
        assert!(matches!(
            f.on_packet(
                &layers,
                "f",
                &vp8(5000, 500_000, 900, false, true),
                codec,
                90000,
                t1
            ),
            Verdict::NeedKeyframe
        ));
        assert!(matches!(
            f.on_packet(
                &layers,
                "q",
                &vp8(102, 15000, 12, false, true),
                codec,
                90000,
                t1
            ),
            Verdict::Skip
        ));
        // ...and its keyframe switches, continuing numbering.
        let Verdict::Send(c) = f.on_packet(
            &layers,
            "f",
            &vp8(5001, 503_000, 901, true, true),
            codec,
            90000,
            t1,
        ) else {
            panic!("switch not made")
        };
        assert_eq!(c.sequence_number, 102);
        assert!(c.timestamp.wrapping_sub(12000) > 0 && c.timestamp.wrapping_sub(12000) < 90000);
        let d = codec::parse_vp8(&c.payload).unwrap();
        assert_eq!(d.picture_id.map(|p| p.2), Some(12));
        assert_eq!(f.current(), Some("f"));
        let Verdict::Send(e) = f.on_packet(
            &layers,
            "f",
            &vp8(5002, 506_000, 902, false, true),
            codec,
            90000,
            t1,
        ) else {
            panic!("next not sent")
        };
        assert_eq!(e.sequence_number, 103);
        assert_eq!(
            codec::parse_vp8(&e.payload)
                .unwrap()
                .picture_id
                .map(|p| p.2),
            Some(13)
        );
    }

    #[test]
    fn audio_passes_unchanged() {
        let t0 = Instant::now();
        let mut layers = Layers::default();
        layers.saw("", t0);
        let mut f = Forward::new(1, Quality::High);
        let p = RtpPacket {
            marker: false,
            sequence_number: 7,
            timestamp: 960,
            ssrc: 3,
            payload: Bytes::from_static(b"opus"),
        };
        let Verdict::Send(out) = f.on_packet(&layers, "", &p, None, 48000, t0) else {
            panic!("audio not sent")
        };
        assert_eq!((out.sequence_number, out.timestamp), (7, 960));
    }
}
