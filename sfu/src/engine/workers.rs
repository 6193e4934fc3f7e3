//! Send workers: the per-packet heavy part of forwarding, spread over
//! several threads. The engine's task decides everything (the room's
//! choices, each subscriber's layer, the rewrite of sequence numbers and
//! timestamps) and queues each packet on its target connection
//! ([`crate::peer::Peer::send_rtp_as`] only queues). Once per flush the
//! connections with queued packets are written: the stack's write path
//! (its interceptors, marshal, SRTP protect) and the UDP send
//! (`sendmmsg`). With one worker, or little to write, the engine's task
//! does it itself, as before; with more, the connections are split by a
//! hash of their key over `workers` threads (the engine's own and
//! `workers - 1` scoped ones), each writing its connections and sending
//! their datagrams in its own batches. A connection is written by one
//! thread at a time, and the engine waits for all of them before it goes
//! on: nothing is shared or locked on the path, and the decisions stay
//! with one owner.
//!
//! TCP frames, and what the connections make besides media (DTLS, RTCP
//! answers), stay on the engine: the workers hand TCP back, and the
//! touched connections are drained as any other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::{Engine, PeerKey, PeerSlot};
use crate::net;
use crate::peer::{Proto, Transmit};

/// The most send workers the default (the machine's cores) asks for.
pub(crate) const DEFAULT_MAX: usize = 8;

/// The most send workers a setting may ask for.
pub(crate) const MAX: usize = 64;

/// Fewer packets queued than this are written by the engine's task alone:
/// starting the other threads costs more than the work (tens of
/// microseconds against ~5-10 µs per packet).
const PARALLEL_MIN: usize = 48;

/// The connections with packets queued since the last write.
#[derive(Debug, Default)]
pub(super) struct SendQueue {
    /// Each connection once, in the order it was first queued.
    pub keys: Vec<PeerKey>,
    /// Packets queued.
    pub packets: usize,
}

/// The workers' count when the setting says 0: the machine's cores, at
/// most [`DEFAULT_MAX`].
pub(crate) fn default_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, DEFAULT_MAX)
}

/// What one worker did.
#[derive(Default)]
struct Done {
    sent: net::Sent,
    refused: usize,
    /// TCP frames, sent by the engine.
    tcp: Vec<Transmit>,
}

impl Engine {
    /// Writes every connection with queued packets (see the module's doc).
    pub(super) fn write_queued(&mut self) {
        if self.sending.keys.is_empty() {
            return;
        }
        let packets = std::mem::take(&mut self.sending.packets);
        let mut keys = std::mem::take(&mut self.sending.keys);
        if self.workers <= 1 || packets < PARALLEL_MIN || keys.len() < 2 {
            // Inline: drained with the other touched connections, their
            // datagrams in the engine's own batches.
            for key in keys.drain(..) {
                if let Some(slot) = self.peers.get_mut(&key) {
                    let refused = slot.peer.write_queued();
                    self.stats.rtp_packets_refused += refused as u64;
                    self.touched.push(key);
                }
            }
            self.sending.keys = keys;
            return;
        }
        let n = self.workers.min(keys.len());
        let mut groups: Vec<Vec<&mut PeerSlot>> = (0..n).map(|_| Vec::new()).collect();
        for (key, slot) in self.peers.iter_mut() {
            if slot.peer.has_queued() {
                groups[worker_of(*key, n)].push(slot);
            }
        }
        self.touched.append(&mut keys);
        self.sending.keys = keys;
        if self.send_scratch.len() < n {
            self.send_scratch.resize_with(n, Vec::new);
        }
        let udp = &self.udp;
        let mut scratch = self.send_scratch.iter_mut();
        let mut groups = groups.into_iter();
        let (Some(first), Some(first_out)) = (groups.next(), scratch.next()) else {
            return;
        };
        let done: Vec<Done> = std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .zip(scratch)
                .map(|(group, out)| s.spawn(move || write_group(group, out, udp)))
                .collect();
            let mut done = vec![write_group(first, first_out, udp)];
            for h in handles {
                match h.join() {
                    Ok(d) => done.push(d),
                    // A panic is a bug; it is the engine's, as it would be
                    // on the engine's own thread.
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
            done
        });
        self.stats.send_parallel_writes += 1;
        for d in done {
            self.stats.datagrams_out += d.sent.datagrams as u64;
            self.stats.bytes_out += d.sent.bytes;
            self.stats.udp_send_calls += d.sent.calls;
            self.stats.rtp_packets_refused += d.refused as u64;
            for t in d.tcp {
                self.transmit(t.proto, t.local, t.remote, t.data);
            }
        }
    }
}

/// Which worker writes connection `key` of `n`.
fn worker_of(key: PeerKey, n: usize) -> usize {
    // Keys are handed out in sequence; a multiplicative hash spreads
    // neighbours (a participant's two connections) apart.
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % n
}

/// One worker's share: writes its connections' queued packets, drains what
/// the stack made of them and sends the UDP datagrams in batches per socket.
fn write_group(
    group: Vec<&mut PeerSlot>,
    out: &mut Vec<net::Outgoing>,
    udp: &HashMap<SocketAddr, Arc<UdpSocket>>,
) -> Done {
    let mut done = Done::default();
    out.clear();
    for slot in group {
        done.refused += slot.peer.write_queued();
        while let Some(t) = slot.peer.poll_transmit() {
            if !crate::stun::is_stun(&t.data) {
                slot.sent_on = Some((t.proto, t.remote));
            }
            match t.proto {
                Proto::Udp => out.push(net::Outgoing {
                    local: t.local,
                    remote: t.remote,
                    data: t.data,
                }),
                Proto::Tcp => done.tcp.push(t),
            }
        }
    }
    done.sent = send_grouped(out, udp);
    out.clear();
    done
}

/// Sends `out` in batches per local socket, each destination's datagrams in
/// order.
pub(super) fn send_grouped(
    out: &mut [net::Outgoing],
    udp: &HashMap<SocketAddr, Arc<UdpSocket>>,
) -> net::Sent {
    let mut sent = net::Sent::default();
    // Grouped by socket; a stable sort keeps each destination's order.
    if out.windows(2).any(|w| w[0].local != w[1].local) {
        out.sort_by_key(|o| o.local);
    }
    let mut rest = &out[..];
    while let Some(first) = rest.first() {
        let n = rest.iter().take_while(|o| o.local == first.local).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let Some(sock) = udp.get(&group[0].local).or_else(|| udp.values().next()) else {
            continue;
        };
        let r = net::send_batch(sock, group);
        sent.datagrams += r.datagrams;
        sent.bytes += r.bytes;
        sent.calls += r.calls;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_the_workers() {
        for n in 1..=4 {
            let mut counts = vec![0; n];
            for key in 1..=400u64 {
                counts[worker_of(key, n)] += 1;
            }
            let (min, max) = (counts.iter().min(), counts.iter().max());
            assert!(
                max.zip(min)
                    .is_some_and(|(max, min)| max - min <= 400 / n / 4),
                "{n} workers: {counts:?}"
            );
        }
    }

    #[test]
    fn the_default_count_is_the_cores_capped() {
        let n = default_count();
        assert!((1..=DEFAULT_MAX).contains(&n));
    }
}
