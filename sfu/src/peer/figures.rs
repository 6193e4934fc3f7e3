//! A connection's own figures for the operator's dashboard (issue 23):
//! what the server measured of one peer connection, read once a second at
//! most ([`Peer::figures`]), never computed per packet beyond a few
//! counter increments.
//!
//! - [`Counters`]: plain fields of the [`Peer`] that the engine's thread
//!   bumps where it already handles a packet: media received (the receive
//!   translation, which already looks the stream up, also notes its
//!   sequence gaps), keyframes asked.
//! - [`Feedback`]: what leaves a sending connection and what its remote's
//!   RTCP says, noted by [`RtcpTap`] (which the stack owns, at the wire
//!   end of the chain, so wherever the stack's write path runs) in
//!   atomics the peer reads: media sent (retransmissions included), NACKs
//!   and keyframe requests received, the latest receiver report's loss,
//!   and the round-trip time from a receiver report's LSR/DLSR matched
//!   against the sender reports this connection wrote (no wall clock
//!   involved).
//!
//! [`RtcpTap`]: super::interceptors::RtcpTap

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Peer;

/// A connection's figures at one moment (cumulative counters since it
/// was made, and the latest of what its remote reported).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PeerFigures {
    /// RTP packets and payload bytes received (retransmissions included).
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Sequence numbers missing when the next packet of their stream came
    /// (before any retransmission repaired them).
    pub lost_in: u64,
    /// When the last RTP packet came.
    pub last_in: Option<Instant>,
    /// RTP packets and payload bytes sent (forwarded media and
    /// retransmissions).
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Keyframe requests (PLI) sent to the remote.
    pub keyframes_asked: u64,
    /// Generic NACKs and keyframe requests (PLI, FIR) the remote sent.
    pub nacks_received: u64,
    pub keyframe_requests_received: u64,
    /// The remote's latest receiver report: the worst fraction lost of
    /// its report blocks, 0 to 1.
    pub remote_fraction_lost: Option<f64>,
    /// The latest round-trip time measured from a receiver report.
    pub rtt: Option<Duration>,
}

/// What the engine's thread counts on a [`Peer`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub lost_in: u64,
    pub last_in: Option<Instant>,
    pub keyframes_asked: u64,
}

impl Counters {
    /// A received RTP packet of `payload` bytes; `lost`: the sequence
    /// numbers its stream skipped before it ([`seq_gap`]).
    pub fn received(&mut self, payload: usize, lost: u64, now: Instant) {
        self.packets_in += 1;
        self.bytes_in += payload as u64;
        self.lost_in += lost;
        self.last_in = Some(now);
    }
}

/// The sequence numbers skipped between a stream's last packet and `seq`,
/// and notes `seq` as the last. A late packet (reordered, retransmitted)
/// counts nothing and is not the last; a jump of more than 1000 is a
/// restarted stream, not loss.
pub(super) fn seq_gap(last: &mut Option<u16>, seq: u16) -> u64 {
    const MAX_GAP: i16 = 1000;
    let Some(prev) = *last else {
        *last = Some(seq);
        return 0;
    };
    let delta = seq.wrapping_sub(prev) as i16;
    if delta <= 0 {
        return 0;
    }
    *last = Some(seq);
    if delta <= MAX_GAP {
        (delta - 1) as u64
    } else {
        0
    }
}

/// No figure (the atomics' "none").
const NONE: u32 = u32::MAX;
/// Sender reports remembered for matching receiver reports (several
/// streams each send one about every second).
const SENT_REPORTS: usize = 32;

/// What the remote's RTCP says, shared between the [`Peer`] and its
/// [`RtcpTap`](super::interceptors::RtcpTap).
#[derive(Debug)]
pub(super) struct Feedback {
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    nacks: AtomicU64,
    keyframe_requests: AtomicU64,
    /// Fraction lost in 1/256 (the RTCP unit); [`NONE`] before a report.
    fraction_lost: AtomicU32,
    /// Microseconds; [`NONE`] before a measurement.
    rtt_us: AtomicU32,
}

impl Default for Feedback {
    fn default() -> Self {
        Feedback {
            packets_out: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            fraction_lost: AtomicU32::new(NONE),
            rtt_us: AtomicU32::new(NONE),
        }
    }
}

impl Feedback {
    /// An RTP packet of `payload` bytes leaves.
    pub fn sent(&self, payload: usize) {
        self.packets_out.fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(payload as u64, Relaxed);
    }

    pub fn nack(&self) {
        self.nacks.fetch_add(1, Relaxed);
    }

    pub fn keyframe_request(&self) {
        self.keyframe_requests.fetch_add(1, Relaxed);
    }

    /// A receiver report's worst fraction lost (1/256).
    pub fn fraction_lost(&self, fraction: u8) {
        self.fraction_lost.store(u32::from(fraction), Relaxed);
    }

    pub fn rtt(&self, rtt: Duration) {
        let us = u32::try_from(rtt.as_micros()).unwrap_or(NONE - 1);
        self.rtt_us.store(us, Relaxed);
    }
}

/// The sender reports a connection wrote, by their compact NTP time (the
/// middle 32 bits, which a receiver report's LSR echoes), for the
/// round-trip time: `arrival - sent - DLSR`.
#[derive(Debug, Default)]
pub(super) struct SentReports {
    sent: VecDeque<(u32, Instant)>,
}

impl SentReports {
    pub fn wrote(&mut self, ntp_time: u64, now: Instant) {
        if self.sent.len() >= SENT_REPORTS {
            self.sent.pop_front();
        }
        self.sent.push_back(((ntp_time >> 16) as u32, now));
    }

    /// The round-trip time a report block says: `lsr` echoes one of our
    /// sender reports, `dlsr` (1/65536 s) is how long the remote held it.
    pub fn rtt(&self, lsr: u32, dlsr: u32, now: Instant) -> Option<Duration> {
        if lsr == 0 {
            return None;
        }
        let sent = self.sent.iter().rev().find(|(c, _)| *c == lsr)?.1;
        let held = Duration::from_micros(u64::from(dlsr) * 1_000_000 / 65_536);
        now.checked_duration_since(sent)?.checked_sub(held)
    }
}

impl Peer {
    /// This connection's figures now (a few loads; nothing of the stack).
    pub fn figures(&self) -> PeerFigures {
        let c = &self.counters;
        let f = &self.feedback;
        let fraction = f.fraction_lost.load(Relaxed);
        let rtt = f.rtt_us.load(Relaxed);
        PeerFigures {
            packets_in: c.packets_in,
            bytes_in: c.bytes_in,
            lost_in: c.lost_in,
            last_in: c.last_in,
            packets_out: f.packets_out.load(Relaxed),
            bytes_out: f.bytes_out.load(Relaxed),
            keyframes_asked: c.keyframes_asked,
            nacks_received: f.nacks.load(Relaxed),
            keyframe_requests_received: f.keyframe_requests.load(Relaxed),
            remote_fraction_lost: (fraction != NONE).then(|| f64::from(fraction) / 256.0),
            rtt: (rtt != NONE).then(|| Duration::from_micros(u64::from(rtt))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_loss_once_and_ignore_late_packets() {
        let mut last = None;
        assert_eq!(seq_gap(&mut last, 10), 0);
        assert_eq!(seq_gap(&mut last, 11), 0);
        assert_eq!(seq_gap(&mut last, 14), 2);
        // 12 and 13 come late (retransmitted): no loss, 14 stays the last.
        assert_eq!(seq_gap(&mut last, 12), 0);
        assert_eq!(seq_gap(&mut last, 13), 0);
        assert_eq!(last, Some(14));
        // Across the wrap.
        let mut last = Some(65_534);
        assert_eq!(seq_gap(&mut last, 1), 2);
        // A restarted stream is not loss.
        assert_eq!(seq_gap(&mut last, 20_000), 0);
        assert_eq!(last, Some(20_000));
    }

    #[test]
    fn round_trip_from_a_receiver_report() {
        let t0 = Instant::now();
        let mut sr = SentReports::default();
        let ntp: u64 = 0x1234_5678_9abc_def0;
        sr.wrote(ntp, t0);
        let lsr = (ntp >> 16) as u32;
        // Held 100 ms by the remote, back 130 ms after it was sent: 30 ms.
        let rtt = sr
            .rtt(lsr, 6_554, t0 + Duration::from_millis(130))
            .expect("matched");
        assert!(
            rtt >= Duration::from_millis(29) && rtt <= Duration::from_millis(31),
            "{rtt:?}"
        );
        assert_eq!(sr.rtt(0, 0, t0), None);
        assert_eq!(sr.rtt(lsr + 1, 0, t0), None);
        // A report that says it held ours longer than it was away: none.
        assert_eq!(sr.rtt(lsr, 65_536, t0 + Duration::from_millis(10)), None);
    }
}
