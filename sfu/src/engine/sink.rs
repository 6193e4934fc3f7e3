//! Forwarding targets. A forwarded packet goes to a [`Sink`]: one sent
//! track of one connection, whatever the connection is (a participant's
//! subscriber connection, a player's connection of the main view, later a
//! recorder). Who receives a track is decided elsewhere (the track's
//! [`Forward`](crate::forward::Forward)s, `viewers`); this is the one place
//! that hands a packet decided for a target to that target's connection.

use std::collections::HashMap;
use std::time::Instant;

use super::workers::SendQueue;
use super::{PeerKey, PeerSlot};
use crate::peer::RtpPacket;
use crate::SfuError;

/// In which codec a sink's sent track carries what it is sent.
#[derive(Debug, Clone, Copy)]
pub(super) enum SinkCodec<'a> {
    /// The sent track's own negotiated codec (a subscriber's track, a
    /// slot): a RED payload goes out as RED where the remote accepted it,
    /// else as its primary block.
    Own,
    /// The codec named here (a player's track follows whatever codec the
    /// main view's source sends).
    Named(&'a str),
}

/// One sent track of one connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sink<'a> {
    pub key: PeerKey,
    /// The sent track's name on that connection.
    pub track: &'a str,
    pub codec: SinkCodec<'a>,
}

/// Whether `key`'s connection can be sent media now (DTLS is up): a target
/// whose connection is not is skipped before any per-target work.
pub(super) fn ready(peers: &HashMap<PeerKey, PeerSlot>, key: PeerKey) -> bool {
    peers.get(&key).is_some_and(|s| s.connected)
}

/// Hands `out` to the sink's connection; `red`: the payload is RED around
/// the track's codec. On success the packet is queued on the connection,
/// and the connection in `sending`, for the send workers to write
/// (`workers`). Returns whether it was queued.
pub(super) fn send(
    peers: &mut HashMap<PeerKey, PeerSlot>,
    sending: &mut SendQueue,
    sink: Sink<'_>,
    now: Instant,
    out: &RtpPacket,
    red: bool,
) -> bool {
    let Some(slot) = peers.get_mut(&sink.key).filter(|s| s.connected) else {
        return false;
    };
    let was_queued = slot.peer.has_queued();
    let result: Result<(), SfuError> = match (sink.codec, red) {
        (SinkCodec::Own, true) => slot.peer.send_red(now, sink.track, out),
        (SinkCodec::Own, false) => slot.peer.send_rtp(now, sink.track, out),
        (SinkCodec::Named(mime), _) => slot.peer.send_rtp_as(now, sink.track, Some(mime), out),
    };
    match result {
        Ok(()) => {
            if !was_queued {
                sending.keys.push(sink.key);
            }
            sending.packets += 1;
            true
        }
        Err(e) => {
            tracing::trace!(track = sink.track, "forward: {e}");
            false
        }
    }
}
