//! When a connection is alive: the one rule behind the state every path
//! (WebSocket participant, WHIP publisher, WHEP player) is told.
//!
//! The stack's own ICE timers count only STUN, and the server (ICE-lite,
//! controlled) sends no checks of its own, so a client that keeps its
//! consent with keepalives every 25 s (libnice, RFC 8445 allows 15 s and
//! more) while streaming media was declared disconnected 5 s after it
//! connected. Here everything the peer sends counts: STUN, DTLS, SRTP and
//! SRTCP. The stack's timers are switched off ([`super::Peer::new`]) and a
//! connected peer becomes [`ConnectionState::Disconnected`] after
//! [`DISCONNECTED_AFTER`] of silence (forwarding to it pauses; anything
//! from it makes it connected again) and [`ConnectionState::Failed`] after
//! [`FAILED_AFTER`] (gone: a publisher's tracks are unpublished, a WHIP or
//! WHEP session ends). A browser tab that closes is noticed by its
//! WebSocket closing, not here.

use std::time::{Duration, Instant};

use crate::ConnectionState;

/// Silence after which a connected peer is reported disconnected: above the
/// longest keepalive interval seen (libnice: 25 s) with room for a lost one
/// to be retried (the RFC 8445 minimum of 15 s is well inside).
pub(crate) const DISCONNECTED_AFTER: Duration = Duration::from_secs(35);
/// Silence after which a connected peer is gone for good.
pub(crate) const FAILED_AFTER: Duration = Duration::from_secs(40);

/// Last-received time of one connection and the state it implies.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// When anything last arrived from the peer.
    last_rx: Option<Instant>,
    /// Declared failed by silence: final while the stack still calls the
    /// connection connected (an ICE restart starts afresh).
    failed: bool,
}

impl Liveness {
    /// Something (any protocol) arrived from the peer at `now`.
    pub fn received(&mut self, now: Instant) {
        self.last_rx = Some(self.last_rx.map_or(now, |t| t.max(now)));
    }

    /// The state to report at `now`, given the stack's (`stack`): the
    /// stack's, except that a connected peer silent too long is
    /// disconnected, then failed.
    pub fn state(&mut self, stack: ConnectionState, now: Instant) -> ConnectionState {
        if stack != ConnectionState::Connected {
            // Checking again (an ICE restart), closed, or failed by the
            // stack's own verdict: the stack's word.
            self.failed = false;
            return stack;
        }
        if self.failed {
            return ConnectionState::Failed;
        }
        let Some(last) = self.last_rx else {
            return stack;
        };
        let silent = now.saturating_duration_since(last);
        if silent >= FAILED_AFTER {
            self.failed = true;
            ConnectionState::Failed
        } else if silent >= DISCONNECTED_AFTER {
            ConnectionState::Disconnected
        } else {
            ConnectionState::Connected
        }
    }

    /// When silence alone would next change [`Liveness::state`].
    pub fn deadline(&self, stack: ConnectionState, now: Instant) -> Option<Instant> {
        if self.failed || stack != ConnectionState::Connected {
            return None;
        }
        let last = self.last_rx?;
        let disconnect = last + DISCONNECTED_AFTER;
        Some(if now < disconnect {
            disconnect
        } else {
            last + FAILED_AFTER
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionState::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn keepalives_every_25_s_with_media_between_keep_a_peer_connected() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.received(t0);
        // Media every 40 ms for 60 s: always connected, the deadline moves.
        for ms in (0..60_000).step_by(40) {
            let now = t0 + Duration::from_millis(ms);
            l.received(now);
            assert_eq!(l.state(Connected, now), Connected);
            assert_eq!(l.deadline(Connected, now), Some(now + DISCONNECTED_AFTER));
        }
        // Keepalives alone, 30 s apart (longer than libnice's 25 s).
        let mut now = t0 + secs(60);
        for _ in 0..5 {
            assert_eq!(l.state(Connected, now + secs(30)), Connected);
            now += secs(30);
            l.received(now);
        }
    }

    #[test]
    fn silence_disconnects_then_fails_for_good() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.received(t0);
        assert_eq!(l.deadline(Connected, t0), Some(t0 + DISCONNECTED_AFTER));
        let quiet = t0 + DISCONNECTED_AFTER;
        assert_eq!(l.state(Connected, quiet), Disconnected);
        assert_eq!(l.deadline(Connected, quiet), Some(t0 + FAILED_AFTER));
        // Anything arriving brings it back.
        l.received(quiet);
        assert_eq!(l.state(Connected, quiet), Connected);
        let gone = quiet + FAILED_AFTER;
        assert_eq!(l.state(Connected, gone), Failed);
        assert_eq!(l.deadline(Connected, gone), None);
        l.received(gone);
        assert_eq!(l.state(Connected, gone), Failed, "failed is final");
        // Unless the connection starts again (an ICE restart).
        let later = gone + secs(1);
        assert_eq!(l.state(Connecting, later), Connecting);
        l.received(later);
        assert_eq!(l.state(Connected, later), Connected);
    }

    #[test]
    fn the_stack_state_passes_through_until_connected() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        assert_eq!(l.state(Connecting, t0 + secs(100)), Connecting);
        assert_eq!(l.deadline(Connecting, t0), None);
        // Connected before anything was counted: no silence to measure.
        assert_eq!(l.state(Connected, t0), Connected);
        assert_eq!(l.deadline(Connected, t0), None);
        l.received(t0);
        // The stack's own verdicts (closed, failed DTLS) are reported as such.
        assert_eq!(l.state(Closed, t0 + secs(100)), Closed);
        assert_eq!(l.state(Failed, t0), Failed);
        assert_eq!(l.state(Connected, t0 + secs(1)), Connected);
    }
}
