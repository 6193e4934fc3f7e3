//! The media plane's counters: [`SfuStats`], the loss count of what
//! publishers send, and each participant's figures for the operator's
//! dashboard ([`Sfu::participant_figures`](crate::Sfu::participant_figures)).

use super::Engine;

/// Counters of the media plane.
#[derive(Debug, Clone, Default)]
pub struct SfuStats {
    pub rooms: usize,
    pub participants: usize,
    pub peers: usize,
    pub udp_datagrams_in: u64,
    pub tcp_frames_in: u64,
    /// Datagrams no peer claimed (unknown STUN username or address).
    pub datagrams_unrouted: u64,
    pub rtp_packets_in: u64,
    pub rtp_packets_forwarded: u64,
    pub keyframe_requests_sent: u64,
    /// Bytes of the datagrams and frames counted in `udp_datagrams_in`
    /// and `tcp_frames_in`.
    pub bytes_in: u64,
    /// Datagrams and ICE-TCP frames sent, and their bytes.
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// System calls that sent UDP datagrams (one `sendmmsg` sends many).
    pub udp_send_calls: u64,
    /// RTP payload bytes received from publishers and forwarded.
    pub rtp_payload_bytes_in: u64,
    pub rtp_payload_bytes_forwarded: u64,
    /// Sequence numbers missing from publishers' streams when the next
    /// packet arrived (before any retransmission repairs them).
    pub rtp_packets_lost: u64,
    /// Times a subscriber's stream moved from one simulcast layer to another.
    pub layer_switches: u64,
    /// Packets not forwarded to a subscriber because it already got them
    /// (a publisher's retransmission of a late packet) or too late.
    pub duplicates_dropped: u64,
    /// Datagrams dropped on arrival because the engine was behind (its
    /// inbound queue full).
    pub datagrams_dropped: u64,
    /// Media TCP connections closed by the port's limits: over the
    /// per-address cap, no ICE within the timeout, or idle after it.
    pub tcp_refused: u64,
    /// NACK feedback received (generic NACKs) and the packets they ask for.
    pub nacks_received: u64,
    pub nack_packets_requested: u64,
    /// Packets not forwarded because their kind of the publisher's media
    /// is blocked ([`Sfu::block_media`](crate::Sfu::block_media)).
    pub rtp_packets_blocked: u64,
    /// What the engine sheds because it is short of CPU (see
    /// `engine::overload`): 0 nothing, 1 thumbnails' high layers,
    /// 2 thumbnails. Audio, the featured participant's and the speaker's
    /// video and handshakes are never shed.
    pub shed_level: u8,
    /// Times the shed level changed.
    pub shed_changes: u64,
    /// The share of the last second the engine's loop was busy (0..1).
    pub engine_busy: f64,
    /// Forwarded packets the stack refused when they were written (a sent
    /// track removed meanwhile, a payload type it does not accept).
    pub rtp_packets_refused: u64,
    /// Flushes whose queued packets were written by several send workers
    /// at once (`engine::workers`).
    pub send_parallel_writes: u64,
}

impl Engine {
    /// Counts a publisher's packet, and the sequence numbers skipped
    /// before it. A late packet (reordered or retransmitted) counts no
    /// loss; a jump of more than `MAX_GAP` is a restarted stream, not loss.
    pub(super) fn count_rtp_in(&mut self, packet: &crate::peer::RtpPacket) {
        const MAX_GAP: i16 = 1000;
        /// Streams remembered at most (a bound, not a working limit).
        const MAX_STREAMS: usize = 4096;
        self.stats.rtp_packets_in += 1;
        self.stats.rtp_payload_bytes_in += packet.payload.len() as u64;
        let seq = packet.sequence_number;
        let last = self.last_seq.get(&packet.ssrc).copied();
        if last.is_none() && self.last_seq.len() >= MAX_STREAMS {
            self.last_seq.clear();
        }
        match last {
            None => {
                self.last_seq.insert(packet.ssrc, seq);
            }
            Some(last) => {
                let delta = seq.wrapping_sub(last) as i16;
                if delta > 0 {
                    if delta <= MAX_GAP {
                        self.stats.rtp_packets_lost += (delta - 1) as u64;
                    }
                    self.last_seq.insert(packet.ssrc, seq);
                }
            }
        }
    }
}

impl super::Sfu {
    /// What the server measured of each participant of `room` now
    /// ([`ParticipantFigures`](crate::ParticipantFigures)): counters its
    /// connections keep anyway and the latest of their remotes' RTCP, read
    /// in one command (nothing is computed per packet for it). Rates are
    /// the caller's: two calls a second or more apart. Empty for a room
    /// with nobody in it.
    pub async fn participant_figures(
        &self,
        room: &str,
    ) -> Result<Vec<crate::ParticipantFigures>, crate::SfuError> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.commands
            .send(super::Command::Figures {
                room: room.to_owned(),
                reply,
            })
            .map_err(|_| crate::SfuError::Stopped)?;
        wait.await.map_err(|_| crate::SfuError::Stopped)
    }
}

impl Engine {
    /// Each participant of `room`: its publisher connection's receive
    /// figures, its subscriber connection's send figures, the layer of each
    /// video it receives now, its path. One pass over the room's forwards
    /// for the layers (not one per participant).
    pub(super) fn participant_figures(&self, room: &str) -> Vec<crate::ParticipantFigures> {
        use crate::peer::{PeerFigures, Proto};
        let now = std::time::Instant::now();
        let members: Vec<&super::ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.room == room)
            .map(|(id, _)| id)
            .collect();
        let mut layers: std::collections::HashMap<super::PeerKey, Vec<String>> =
            std::collections::HashMap::new();
        for id in &members {
            let Some(p) = self.participants.get(*id) else {
                continue;
            };
            for t in p
                .tracks
                .iter()
                .filter(|t| t.kind == crate::MediaKind::Video)
            {
                for f in t.subscribers.iter().filter(|f| f.sending()) {
                    if let Some(layer) = f.current() {
                        layers.entry(f.sub).or_default().push(layer.to_owned());
                    }
                }
            }
        }
        let figures = |key: super::PeerKey| -> (PeerFigures, Option<Proto>) {
            self.peers.get(&key).map_or_else(Default::default, |s| {
                (s.peer.figures(), s.path.map(|(proto, _)| proto))
            })
        };
        members
            .into_iter()
            .filter_map(|id| {
                let p = self.participants.get(id)?;
                let (fin, path_in) = figures(p.publisher);
                let (fout, path_out) = figures(p.subscriber);
                let mut received = layers.remove(&p.subscriber).unwrap_or_default();
                received.sort_by_key(|l| std::cmp::Reverse(crate::forward::layer_rank(l)));
                Some(crate::ParticipantFigures {
                    participant: id.clone(),
                    packets_in: fin.packets_in,
                    bytes_in: fin.bytes_in,
                    lost_in: fin.lost_in,
                    last_media_in: fin.last_in.map(|t| now.saturating_duration_since(t)),
                    keyframes_asked: fin.keyframes_asked,
                    packets_out: fout.packets_out,
                    bytes_out: fout.bytes_out,
                    nacks_received: fout.nacks_received,
                    keyframe_requests_received: fout.keyframe_requests_received,
                    loss_out: fout.remote_fraction_lost,
                    rtt: fout.rtt,
                    layers: received,
                    path: path_in.or(path_out).map(|proto| match proto {
                        Proto::Udp => "udp",
                        Proto::Tcp => "tcp",
                    }),
                })
            })
            .collect()
    }
}
