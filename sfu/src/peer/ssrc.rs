//! SSRC recycling on a connection that sends: a removed sent track's SSRC
//! (and its RTX SSRC) rests, then a new track of the same kind takes it
//! again and continues its sequence numbers ([`SeqCarry`]), so that the
//! remote's SRTP state for the SSRC stays valid (see [`super::Peer`]'s
//! `add_sender`).

use std::time::Instant;

use crate::MediaKind;

/// How long the SSRC of a removed sent track rests before a new track of
/// the connection takes it again.
pub(super) const SSRC_REST: std::time::Duration = std::time::Duration::from_secs(10);

/// Sequence numbers on an SSRC taken again: the new track's packets
/// continue where the removed track's stopped. SRTP protects each SSRC with
/// a replay window and a rollover counter that the receiver keeps for the
/// SSRC, not for the track: a new stream that started at its own (random)
/// sequence number, behind the old one, was dropped by Chromium as replayed
/// or undecryptable, and the rejoined participant was not heard.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SeqCarry {
    /// The removed track's newest sequence number, until the first packet.
    pub(super) after: Option<u16>,
    pub(super) offset: u16,
    /// The newest sequence number sent.
    pub(super) newest: Option<u16>,
}

impl SeqCarry {
    pub(super) fn continuing(after: Option<u16>) -> SeqCarry {
        SeqCarry {
            after,
            ..SeqCarry::default()
        }
    }

    /// The newest sequence number on the SSRC: sent by this track, or, if
    /// it sent nothing, by the track it took the SSRC from.
    pub(super) fn last(&self) -> Option<u16> {
        self.newest.or(self.after)
    }

    /// The sequence number to send `seq` as.
    pub(super) fn map(&mut self, seq: u16) -> u16 {
        if let Some(after) = self.after.take() {
            self.offset = after.wrapping_add(1).wrapping_sub(seq);
        }
        let out = seq.wrapping_add(self.offset);
        if self
            .newest
            .is_none_or(|n| crate::forward::seq_newer(out, n))
        {
            self.newest = Some(out);
        }
        out
    }
}

/// The SSRC of a removed sent track, waiting to be taken again.
pub(super) struct FreeSsrc {
    pub(super) ssrc: u32,
    /// The removed video track's RTX SSRC, taken with it.
    pub(super) rtx_ssrc: Option<u32>,
    /// The newest sequence number sent on it.
    pub(super) newest_seq: Option<u16>,
    pub(super) kind: MediaKind,
    /// When the track was removed.
    pub(super) at: Instant,
    /// `Peer::offers_made` then: the removal is in the offers after it.
    pub(super) offers_made: u64,
}

/// Takes the oldest free SSRC of `kind` that may be used again at `now`:
/// rested [`SSRC_REST`], and removed before an offer that has been answered
/// (`offer_answered`, see `Peer::offers_made`).
pub(super) fn take_free_ssrc(
    free: &mut std::collections::VecDeque<FreeSsrc>,
    kind: MediaKind,
    offer_answered: u64,
    now: Instant,
) -> Option<FreeSsrc> {
    let i = free.iter().position(|f| {
        f.kind == kind
            && offer_answered > f.offers_made
            && now.saturating_duration_since(f.at) >= SSRC_REST
    })?;
    free.remove(i)
}
