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
    seen: Vec<Seen>,
    /// Measured bitrate per layer (for the bandwidth allocation).
    rates: Vec<(String, Rate)>,
}

/// One layer of a track.
#[derive(Debug)]
struct Seen {
    rid: String,
    /// When its last packet came.
    at: Instant,
    /// The newest sequence number noted, and whether the last packet noted
    /// was older than it (a retransmission or a reordered packet).
    order: Option<(u16, bool)>,
}

/// How often a layer's bitrate is re-measured.
const RATE_WINDOW: Duration = Duration::from_millis(1000);

/// What each layer costs when it was never measured (the web client's
/// simulcast settings: q 150 kbit/s, h 500 kbit/s, f 1.5 Mbit/s).
pub(crate) fn nominal_bps(rank: u8) -> u64 {
    match rank {
        0 => 150_000,
        1 => 500_000,
        _ => 1_500_000,
    }
}

/// A layer's measured bitrate: bytes over windows, smoothed.
#[derive(Debug, Default)]
struct Rate {
    window_start: Option<Instant>,
    bytes: u64,
    bps: Option<f64>,
}

impl Layers {
    /// Notes a packet of `rid`; returns whether the layer is new.
    pub fn saw(&mut self, rid: &str, now: Instant) -> bool {
        if let Some(l) = self.seen.iter_mut().find(|l| l.rid == rid) {
            l.at = now;
            false
        } else {
            self.seen.push(Seen {
                rid: rid.to_owned(),
                at: now,
                order: None,
            });
            self.seen.sort_by_key(|l| layer_rank(&l.rid));
            true
        }
    }

    /// Notes the sequence number of a packet of `rid` (after [`Layers::saw`],
    /// which makes the layer known).
    pub fn note_seq(&mut self, rid: &str, seq: u16) {
        let Some(l) = self.seen.iter_mut().find(|l| l.rid == rid) else {
            return;
        };
        l.order = Some(match l.order {
            Some((newest, _)) if !seq_newer(seq, newest) => (newest, true),
            _ => (seq, false),
        });
    }

    /// Whether the last packet noted of `rid` came after a newer one: a
    /// publisher's retransmission (of a packet the server asked again, or
    /// one a receiver of ours asked again) or a reordered packet. Such a
    /// packet may start a keyframe, but an old one: a layer switch there
    /// would continue with a gap as large as its age, which the receiver
    /// can only fill with the next keyframe.
    pub fn last_was_late(&self, rid: &str) -> bool {
        self.seen
            .iter()
            .any(|l| l.rid == rid && l.order.is_some_and(|(_, late)| late))
    }

    /// Counts a packet of `rid` of `bytes` (on the wire) for its bitrate.
    pub fn count(&mut self, rid: &str, bytes: usize, now: Instant) {
        let pos = match self.rates.iter().position(|r| r.0 == rid) {
            Some(p) => p,
            None => {
                self.rates.push((rid.to_owned(), Rate::default()));
                self.rates.len() - 1
            }
        };
        let r = &mut self.rates[pos].1;
        let start = *r.window_start.get_or_insert(now);
        r.bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let measured = r.bytes as f64 * 8.0 / elapsed.as_secs_f64();
            r.bps = Some(match r.bps {
                Some(old) => 0.6 * old + 0.4 * measured,
                None => measured,
            });
            r.bytes = 0;
            r.window_start = Some(now);
        }
    }

    /// Every layer the track has had with its cost in bits per second
    /// (measured, else nominal), lowest first: (rank, bps). A layer costs at
    /// least 1.5 times the one below: a layer measured while it was starting
    /// (or paused) must not look cheaper than a smaller one.
    pub fn costs(&self) -> Vec<(u8, u64)> {
        let mut floor = 0u64;
        self.seen
            .iter()
            .map(|l| {
                let rank = layer_rank(&l.rid);
                let measured = self
                    .rates
                    .iter()
                    .find(|r| r.0 == l.rid)
                    .and_then(|r| r.1.bps)
                    .map(|b| b as u64);
                let cost = measured.unwrap_or_else(|| nominal_bps(rank)).max(floor);
                floor = cost + cost / 2;
                (rank, cost)
            })
            .collect()
    }

    /// The layer to send a subscriber who wants `q`, among those alive now.
    pub fn choose(&self, q: Quality, now: Instant) -> Option<&str> {
        // Per packet and subscriber: no allocation (`pick` over the alive
        // layers without collecting them).
        let want = match q {
            Quality::Off => return None,
            Quality::Low => 0,
            Quality::Medium => 1,
            Quality::High => 2,
        };
        let mut alive = self
            .seen
            .iter()
            .filter(|l| now.duration_since(l.at) < LAYER_TIMEOUT)
            .map(|l| l.rid.as_str());
        let lowest = alive.next()?;
        let mut best = (layer_rank(lowest) <= want).then_some(lowest);
        for rid in alive {
            if layer_rank(rid) <= want {
                best = Some(rid);
            }
        }
        Some(best.unwrap_or(lowest))
    }

    /// How many layers the track has had.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Every layer the track has had, lowest first.
    pub fn all(&self) -> Vec<String> {
        self.seen.iter().map(|l| l.rid.clone()).collect()
    }

    /// The layers the publisher should send for subscribers with these
    /// wishes, lowest first. The lowest layer always runs, so a newcomer or a
    /// thumbnail has something to show at once.
    pub fn wanted(&self, wishes: impl Iterator<Item = Quality>) -> Vec<String> {
        let all: Vec<&str> = self.seen.iter().map(|l| l.rid.as_str()).collect();
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

/// Output-stream continuity across source switches. A subscriber's slot
/// (see `engine::slots`) keeps one while no track holds the slot.
#[derive(Debug, Default)]
pub(crate) struct Rewriter {
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
    /// Output sequence numbers sent lately: bit `i` is `last_seq - i`.
    sent: SentWindow,
}

/// How far behind the newest output sequence number a packet may still be
/// sent (late, e.g. repaired); older ones are dropped.
const SENT_WINDOW: u16 = 256;

/// A bitmap of the last [`SENT_WINDOW`] output sequence numbers: which were
/// sent. The same packet may reach the forwarder twice (a publisher's
/// retransmission of a packet that was late, not lost, unwrapped from RTX
/// into the original), and sending it twice under one sequence number makes
/// the receiver's SRTP drop the copy as a replay, which its transport-wide
/// feedback then reports as lost: false congestion (seen with Chromium on
/// a loaded machine: 4 of 5 video packets "lost" for seconds).
#[derive(Debug, Default, Clone, Copy)]
struct SentWindow([u128; 2]);

impl SentWindow {
    /// The newest number moved `d` ahead and was sent.
    fn advance(&mut self, d: u16) {
        let [lo, hi] = &mut self.0;
        match d {
            0 => {}
            1..=127 => {
                *hi = (*hi << d) | (*lo >> (128 - d));
                *lo <<= d;
            }
            128..=255 => {
                *hi = *lo << (d - 128);
                *lo = 0;
            }
            _ => *self = SentWindow::default(),
        }
        self.0[0] |= 1;
    }

    /// Whether `age` (behind the newest) was sent; marks it sent.
    fn check_and_set(&mut self, age: u16) -> bool {
        let (word, bit) = (usize::from(age / 128), age % 128);
        let mask = 1u128 << bit;
        let was = self.0[word] & mask != 0;
        self.0[word] |= mask;
        was
    }
}

/// Packets not forwarded because that subscriber already got them or they
/// came too late, process-wide, for the metrics.
static DUPLICATES_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Duplicate or too-late packets dropped since the process started.
pub(crate) fn duplicates_dropped() -> u64 {
    DUPLICATES_DROPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether RTP sequence number `a` comes after `b` (modulo 2^16).
pub(crate) fn seq_newer(a: u16, b: u16) -> bool {
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
    ) -> Option<RtpPacket> {
        let seq = p.sequence_number.wrapping_add(self.seq_delta);
        let ts = p.timestamp.wrapping_add(self.ts_delta);
        if self.last_sent.is_none() {
            self.sent = SentWindow::default();
            self.sent.advance(0);
            self.last_seq = seq;
            self.last_ts = ts;
        } else if seq_newer(seq, self.last_seq) {
            self.sent.advance(seq.wrapping_sub(self.last_seq));
            self.last_seq = seq;
            self.last_ts = ts;
        } else {
            // Late: send it once, if the receiver can still use it.
            let age = self.last_seq.wrapping_sub(seq);
            if age >= SENT_WINDOW || self.sent.check_and_set(age) {
                DUPLICATES_DROPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return None;
            }
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
        Some(RtpPacket {
            marker: p.marker,
            sequence_number: seq,
            timestamp: ts,
            ssrc: p.ssrc,
            payload,
        })
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

/// Switches of a subscriber's stream from one simulcast layer to another
/// (not its first start), process-wide, for the metrics.
static LAYER_SWITCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Layer switches since the process started.
pub(crate) fn layer_switches() -> u64 {
    LAYER_SWITCHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// A track as one subscriber receives it.
#[derive(Debug)]
pub(crate) struct Forward {
    /// The subscriber connection.
    pub sub: crate::engine::PeerKey,
    /// What the subscriber asked for.
    pub quality: Quality,
    /// What the allocation allows (bandwidth, last-N, loudest audio);
    /// the subscriber gets the lower of the two.
    cap: Quality,
    /// The layer now forwarded (its rid), once a keyframe started it.
    current: Option<String>,
    rw: Rewriter,
    /// The subscriber receives in slots: the track is sent only while it
    /// holds one of the connection's slots.
    via_slots: bool,
    /// The slot (its sent track's name) the track holds now.
    slot: Option<String>,
}

impl Forward {
    pub fn new(sub: crate::engine::PeerKey, quality: Quality) -> Forward {
        Forward {
            sub,
            quality,
            cap: Quality::High,
            current: None,
            rw: Rewriter::default(),
            via_slots: false,
            slot: None,
        }
    }

    /// A track as a subscriber that receives in slots gets it: sent only
    /// while it holds a slot ([`Forward::take_slot`]).
    pub fn in_slots(sub: crate::engine::PeerKey, quality: Quality) -> Forward {
        Forward {
            via_slots: true,
            ..Forward::new(sub, quality)
        }
    }

    /// Whether packets go to the subscriber now: always, unless it
    /// receives in slots and the track holds none.
    pub fn sending(&self) -> bool {
        !self.via_slots || self.slot.is_some()
    }

    /// Whether the subscriber receives this track in slots.
    pub fn via_slots(&self) -> bool {
        self.via_slots
    }

    /// The sent track the packets go out on: the slot held, else the
    /// track's own (`own`) on the subscriber connection.
    pub fn out_track<'a>(&'a self, own: &'a str) -> &'a str {
        self.slot.as_deref().unwrap_or(own)
    }

    /// The track takes slot `name` with the slot's stream: it starts where
    /// a decoder can (a keyframe) and continues the slot's sequence numbers,
    /// timestamps and VP8 picture ids, as [`Forward::rebase`].
    pub fn take_slot(&mut self, name: String, stream: Rewriter) {
        self.slot = Some(name);
        self.rw = stream;
        self.current = None;
    }

    /// The track gives its slot back: the slot's name and stream.
    pub fn leave_slot(&mut self) -> Option<(String, Rewriter)> {
        let name = self.slot.take()?;
        self.current = None;
        Some((name, std::mem::take(&mut self.rw)))
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
        let Some(target) = layers.choose(self.effective(), now) else {
            return Verdict::Skip;
        };
        let vp8 = match codec {
            Some(VideoCodec::Vp8) => codec::parse_vp8(&p.payload),
            _ => None,
        };
        if self.current.as_deref() == Some(layer) && (target == layer || codec.is_none()) {
            return self
                .rw
                .rewrite(p, vp8.as_ref(), now)
                .map_or(Verdict::Skip, Verdict::Send);
        }
        if target != layer {
            return Verdict::Skip;
        }
        // The wanted layer: switch to it where a decoder can start, in the
        // stream as it goes on (not at a late copy of an older keyframe).
        if layers.last_was_late(layer) {
            return Verdict::Skip;
        }
        let can_start = match codec {
            None => true,
            Some(c) => codec::is_keyframe_start(c, &p.payload),
        };
        if !can_start {
            // Keep sending the current layer meanwhile; ask for a keyframe.
            return Verdict::NeedKeyframe;
        }
        if self.current.is_some() {
            LAYER_SWITCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.current = Some(layer.to_owned());
        self.rw.switch(p, vp8.as_ref(), clock, now);
        self.rw
            .rewrite(p, vp8.as_ref(), now)
            .map_or(Verdict::Skip, Verdict::Send)
    }

    /// The source changes to another track (a player's main view moving to
    /// another speaker): the new track starts at its first packet a decoder
    /// can start from, and the output keeps its SSRC and continues its
    /// sequence numbers, timestamps and VP8 picture ids.
    pub fn rebase(&mut self) {
        self.current = None;
    }

    /// What the subscriber receives: its wish within the allocation's cap.
    pub fn effective(&self) -> Quality {
        self.quality.min(self.cap)
    }

    /// The allocation's cap.
    #[cfg(test)]
    pub fn cap(&self) -> Quality {
        self.cap
    }

    /// Sets the allocation's cap; returns whether it changed. A track that
    /// goes off restarts, when it comes back, where a decoder can start (a
    /// keyframe; any packet for audio) and continues the numbering.
    pub fn set_cap(&mut self, cap: Quality) -> bool {
        if cap == self.cap {
            return false;
        }
        self.cap = cap;
        if cap == Quality::Off {
            self.current = None;
        }
        true
    }

    /// The layer now forwarded.
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
    fn forwarding_a_packet_allocates_nothing() {
        // Issue 25: no per-packet allocation on the forwarding path. A
        // subscriber on the top layer of three, then one held at the
        // lowest (its packets of other layers skipped): the decision and
        // the rewrite per packet and subscriber allocate nothing (the
        // payload is shared, not copied: no VP8 picture id offset here).
        let t0 = Instant::now();
        let mut l = Layers::default();
        for rid in ["q", "h", "f"] {
            l.saw(rid, t0);
        }
        let mut high = Forward::new(1, Quality::High);
        let mut low = Forward::new(2, Quality::Low);
        let packets: Vec<(RtpPacket, &str)> = (0..300u16)
            .map(|i| {
                let rid = ["q", "h", "f"][usize::from(i % 3)];
                (vp8(i / 3, u32::from(i / 3) * 3000, i / 3, i < 3, true), rid)
            })
            .collect();
        // The first keyframes start both streams (a switch remembers the
        // layer's name once).
        for (p, rid) in &packets[..3] {
            let _ = high.on_packet(&l, rid, p, Some(VideoCodec::Vp8), 90000, t0);
            let _ = low.on_packet(&l, rid, p, Some(VideoCodec::Vp8), 90000, t0);
        }
        // `bytes` makes a buffer built from a Vec shared at its first
        // clone (one allocation per received packet, whatever the fan-out,
        // as for the stack's decrypted payloads): done before counting.
        for (p, _) in &packets {
            std::hint::black_box(p.payload.clone());
        }
        let before = crate::alloc_count::allocations();
        let mut sent = 0;
        for (p, rid) in &packets[3..] {
            for f in [&mut high, &mut low] {
                if let Verdict::Send(out) =
                    f.on_packet(&l, rid, p, Some(VideoCodec::Vp8), 90000, t0)
                {
                    sent += 1;
                    std::hint::black_box(out);
                }
            }
        }
        let allocated = crate::alloc_count::allocations() - before;
        assert_eq!(sent, 198, "each subscriber got its layer");
        assert_eq!(allocated, 0, "allocations for {} decisions", 2 * 297);
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
    fn a_late_copy_of_an_old_keyframe_does_not_start_a_switch() {
        let t0 = Instant::now();
        let mut layers = Layers::default();
        let codec = Some(VideoCodec::Vp8);
        let mut f = Forward::new(1, Quality::High);
        let feed = |f: &mut Forward, layers: &mut Layers, rid: &str, p: RtpPacket| {
            layers.saw(rid, t0);
            layers.note_seq(rid, p.sequence_number);
            f.on_packet(layers, rid, &p, codec, 90000, t0)
        };
        // The low layer runs (its keyframe at 150, then deltas up to 200);
        // the subscriber gets the high one.
        layers.saw("f", t0);
        for seq in 150..=200 {
            let key = seq == 150;
            let _ = feed(&mut f, &mut layers, "q", vp8(seq, 0, seq, key, true));
        }
        assert!(matches!(
            feed(&mut f, &mut layers, "f", vp8(5000, 0, 1, true, true)),
            Verdict::Send(_)
        ));
        let Verdict::Send(last) = feed(&mut f, &mut layers, "f", vp8(5001, 0, 2, false, true))
        else {
            panic!("the high layer's delta was not sent")
        };
        f.quality = Quality::Low;
        assert!(matches!(
            feed(&mut f, &mut layers, "q", vp8(201, 0, 201, false, true)),
            Verdict::NeedKeyframe
        ));
        // The publisher sends its old keyframe packet again (a browser pads
        // its bandwidth probes with retransmissions): switching there would
        // continue 52 packets past the new keyframe (202 - 150), a gap the
        // receiver could only fill with the keyframe after.
        assert!(!layers.last_was_late("q") && !layers.last_was_late("f"));
        assert!(matches!(
            feed(&mut f, &mut layers, "q", vp8(150, 0, 150, true, true)),
            Verdict::Skip
        ));
        assert!(layers.last_was_late("q"));
        assert_eq!(f.current(), Some("f"));
        // The new keyframe, in order, switches without a gap.
        let Verdict::Send(p) = feed(&mut f, &mut layers, "q", vp8(202, 0, 202, true, true)) else {
            panic!("the keyframe in order did not switch")
        };
        assert_eq!(p.sequence_number, last.sequence_number.wrapping_add(1));
        assert_eq!(f.current(), Some("q"));
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
        let switches = layer_switches();
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
        assert!(layer_switches() > switches, "switch not counted");
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
    fn a_cap_lowers_the_layer_and_off_restarts_continuously() {
        let t0 = Instant::now();
        let mut layers = Layers::default();
        layers.saw("q", t0);
        layers.saw("f", t0);
        let codec = Some(VideoCodec::Vp8);
        let mut f = Forward::new(1, Quality::High);
        assert!(matches!(
            f.on_packet(
                &layers,
                "f",
                &vp8(10, 1000, 1, true, true),
                codec,
                90000,
                t0
            ),
            Verdict::Send(_)
        ));
        // The allocation caps it to the low layer: the switch waits for a
        // keyframe of "q", the wish stays what the display asked.
        assert!(f.set_cap(Quality::Low));
        assert!(!f.set_cap(Quality::Low));
        assert_eq!(
            (f.quality, f.cap(), f.effective()),
            (Quality::High, Quality::Low, Quality::Low)
        );
        assert!(matches!(
            f.on_packet(
                &layers,
                "q",
                &vp8(500, 7000, 50, false, true),
                codec,
                90000,
                t0
            ),
            Verdict::NeedKeyframe
        ));
        let Verdict::Send(a) = f.on_packet(
            &layers,
            "q",
            &vp8(501, 7000, 51, true, true),
            codec,
            90000,
            t0,
        ) else {
            panic!("no switch down")
        };
        assert_eq!(a.sequence_number, 11);
        // Paused (last-N), then back: nothing meanwhile, then a keyframe
        // continues the numbering.
        f.set_cap(Quality::Off);
        assert!(matches!(
            f.on_packet(
                &layers,
                "q",
                &vp8(502, 10000, 52, false, true),
                codec,
                90000,
                t0
            ),
            Verdict::Skip
        ));
        f.set_cap(Quality::High);
        let t1 = t0 + Duration::from_millis(500);
        assert!(matches!(
            f.on_packet(
                &layers,
                "f",
                &vp8(20, 4000, 9, false, true),
                codec,
                90000,
                t1
            ),
            Verdict::NeedKeyframe
        ));
        let Verdict::Send(b) = f.on_packet(
            &layers,
            "f",
            &vp8(21, 4000, 10, true, true),
            codec,
            90000,
            t1,
        ) else {
            panic!("no resume")
        };
        assert_eq!(b.sequence_number, 12);
        let dt = b.timestamp.wrapping_sub(a.timestamp);
        assert!((40_000..50_000).contains(&dt), "timestamp advanced by {dt}");
    }

    #[test]
    fn layer_costs_are_measured_or_nominal() {
        let t0 = Instant::now();
        let mut l = Layers::default();
        l.saw("q", t0);
        l.saw("h", t0);
        assert_eq!(l.costs(), vec![(0, 150_000), (1, 500_000)]);
        // 100 packets of 1250 bytes over a second: 1 Mbit/s.
        for i in 0..=100u64 {
            l.count("q", 1250, t0 + Duration::from_millis(i * 10));
        }
        assert_eq!(l.costs()[0].0, 0);
        // "h" never measured: nominal 500k, but at least 1.5 x "q".
        assert!(l.costs()[1].1 >= l.costs()[0].1 * 3 / 2, "{:?}", l.costs());
        assert!(
            (990_000..1_020_000).contains(&l.costs()[0].1),
            "{:?}",
            l.costs()
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

    #[test]
    fn a_packet_is_forwarded_once_and_late_ones_within_the_window() {
        let t0 = Instant::now();
        let mut layers = Layers::default();
        layers.saw("", t0);
        let mut f = Forward::new(1, Quality::High);
        let audio = |seq: u16| RtpPacket {
            marker: false,
            sequence_number: seq,
            timestamp: u32::from(seq) * 960,
            ssrc: 3,
            payload: Bytes::from_static(b"opus"),
        };
        let mut send = |seq: u16| match f.on_packet(&layers, "", &audio(seq), None, 48000, t0) {
            Verdict::Send(out) => Some(out.sequence_number),
            _ => None,
        };
        assert_eq!(send(10), Some(10));
        assert_eq!(send(12), Some(12));
        // The same packet again (a retransmission of one that was late, not
        // lost): not twice under one sequence number.
        assert_eq!(send(12), None);
        // 11 never came: late, it still goes, once.
        assert_eq!(send(11), Some(11));
        assert_eq!(send(11), None);
        assert_eq!(send(10), None);
        // Far ahead (a jump beyond the window) and back within it.
        assert_eq!(send(300), Some(300));
        assert_eq!(send(299), Some(299));
        assert_eq!(send(300), None);
        // 45 = 300 - 255: the oldest still accepted; 44 is too late.
        assert_eq!(send(45), Some(45));
        assert_eq!(send(44), None);
        // Across the wrap of the sequence numbers (half the space ahead
        // at most is "newer").
        assert_eq!(send(30_000), Some(30_000));
        assert_eq!(send(60_000), Some(60_000));
        assert_eq!(send(65_530), Some(65_530));
        assert_eq!(send(3), Some(3));
        assert_eq!(send(65_533), Some(65_533));
        assert_eq!(send(65_533), None);
        assert!(duplicates_dropped() >= 6);
    }

    #[test]
    fn the_sent_window_shifts_across_its_two_words() {
        let mut w = SentWindow::default();
        w.advance(0);
        w.advance(100); // the first is now 100 behind
        assert!(w.check_and_set(100));
        w.advance(100); // 200 behind: in the upper word
        assert!(w.check_and_set(200));
        assert!(!w.check_and_set(199));
        w.advance(130); // 330 behind: gone; 199 -> 329 gone; 100 -> 230
        assert!(w.check_and_set(230));
        assert!(!w.check_and_set(231));
        w.advance(300);
        assert!(!w.check_and_set(1));
        assert!(w.check_and_set(0));
    }

    #[test]
    fn rebasing_to_another_track_continues_the_stream() {
        let t0 = Instant::now();
        let (mut one, mut two) = (Layers::default(), Layers::default());
        one.saw("", t0);
        two.saw("", t0);
        let mut f = Forward::new(1, Quality::High);
        let codec = Some(VideoCodec::Vp8);
        let Verdict::Send(a) =
            f.on_packet(&one, "", &vp8(10, 1000, 5, true, true), codec, 90000, t0)
        else {
            panic!("first keyframe not sent")
        };
        assert_eq!(a.sequence_number, 10);
        // The main view moves to another publisher: its delta frames wait for
        // a keyframe, which continues the numbering.
        f.rebase();
        let t1 = t0 + Duration::from_millis(40);
        assert!(matches!(
            f.on_packet(
                &two,
                "",
                &vp8(900, 77_000, 300, false, true),
                codec,
                90000,
                t1
            ),
            Verdict::NeedKeyframe
        ));
        let Verdict::Send(b) = f.on_packet(
            &two,
            "",
            &vp8(901, 80_000, 301, true, true),
            codec,
            90000,
            t1,
        ) else {
            panic!("rebase not made")
        };
        assert_eq!(b.sequence_number, 11);
        let dt = b.timestamp.wrapping_sub(1000);
        assert!(dt > 0 && dt < 90000, "timestamp jumped by {dt}");
        assert_eq!(
            codec::parse_vp8(&b.payload)
                .unwrap()
                .picture_id
                .map(|p| p.2),
            Some(6)
        );
    }
}
