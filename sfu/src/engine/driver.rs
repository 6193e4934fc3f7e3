//! The driver: the engine's one task. It owns the sockets' side (datagrams
//! in from the readers of `net`, STUN and DTLS first; datagrams out, UDP in
//! `sendmmsg` batches per socket, TCP frames to their writers), the timers
//! of every connection and the ticks, and measures its own load
//! (`overload`). Everything it wakes for is handed to the engine's
//! handlers; then every touched connection is drained.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::{allocation, Command, Engine, EARLY_DATAGRAMS, SPEAKER_TICK};
use crate::net::{self, Inbound};
use crate::peer::Proto;

/// What woke the engine's loop.
enum Wake {
    Command(Option<Command>),
    Inbound(Option<Inbound>),
    Handshake(Option<Inbound>),
    SpeakerTick,
    AllocTick,
    Timers,
}

impl Engine {
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut handshakes: mpsc::Receiver<Inbound>,
    ) {
        let mut speaker_tick = tokio::time::interval(SPEAKER_TICK);
        speaker_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut handshakes_open = true;
        let mut alloc_tick = tokio::time::interval(allocation::ALLOC_TICK);
        alloc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                cmd = commands.recv() => Wake::Command(cmd),
                msg = inbound.recv() => Wake::Inbound(msg),
                // Handshakes come first in the loop below; this only wakes
                // the engine for them (and never stops it: the readers may
                // all be gone while TCP still carries media).
                msg = handshakes.recv(), if handshakes_open => Wake::Handshake(msg),
                _ = speaker_tick.tick() => Wake::SpeakerTick,
                _ = alloc_tick.tick() => Wake::AllocTick,
                _ = sleep => Wake::Timers,
            };
            // From here the loop is busy (the load of `overload`).
            let woke = Instant::now();
            match wake {
                Wake::Command(Some(Command::Shutdown { reply })) => {
                    self.shutdown();
                    let _ = reply.send(());
                    return;
                }
                Wake::Command(Some(cmd)) => self.command(cmd),
                Wake::Command(None) => {
                    self.shutdown();
                    return;
                }
                Wake::Inbound(None) => return,
                Wake::Handshake(None) => handshakes_open = false,
                Wake::Handshake(Some(msg)) => self.inbound(msg),
                Wake::Inbound(Some(msg)) => {
                    self.inbound(msg);
                    // Take what else is queued without going back to the timer.
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Ok(msg) => self.inbound(msg),
                            Err(_) => break,
                        }
                    }
                }
                Wake::SpeakerTick => {
                    self.speakers_tick();
                    if self.trim_at.is_some_and(|t| t <= woke) {
                        self.trim_at = None;
                        crate::memory::release_freed();
                    }
                    self.layers_tick();
                }
                Wake::AllocTick => {
                    self.overload_tick(woke);
                    self.alloc_tick();
                    self.renegotiate_waiting();
                }
                Wake::Timers => {
                    let now = woke;
                    while let Some(&(t, key)) = self.timers.first() {
                        if t > now {
                            break;
                        }
                        self.timers.pop_first();
                        if let Some(slot) = self.peers.get_mut(&key) {
                            slot.deadline = None;
                            slot.peer.handle_timeout(now);
                            self.touched.push(key);
                        }
                    }
                }
            }
            // Handshakes first: what the readers could not queue behind
            // media (the engine is behind) is never refused.
            while let Ok(msg) = handshakes.try_recv() {
                self.inbound(msg);
            }
            self.flush();
            self.load.busy(woke.elapsed());
        }
    }

    pub(super) fn inbound(&mut self, msg: Inbound) {
        match msg {
            Inbound::Datagram {
                proto,
                local,
                remote,
                data,
            } => {
                match proto {
                    Proto::Udp => self.stats.udp_datagrams_in += 1,
                    Proto::Tcp => self.stats.tcp_frames_in += 1,
                }
                self.stats.bytes_in += data.len() as u64;
                let Some(key) = self.route(proto, remote, &data) else {
                    self.stats.datagrams_unrouted += 1;
                    return;
                };
                if let Some(slot) = self.peers.get_mut(&key) {
                    if slot.awaiting_answer {
                        if slot.early.len() < EARLY_DATAGRAMS {
                            slot.early.push((proto, local, remote, data));
                        }
                        return;
                    }
                    slot.peer
                        .handle_input(Instant::now(), proto, local, remote, data);
                    self.touched.push(key);
                }
            }
            Inbound::TcpOpen { remote, writer } => {
                self.tcp.insert(remote, writer);
            }
            Inbound::TcpClosed { remote } => {
                self.tcp.remove(&remote);
                self.by_addr.remove(&(Proto::Tcp, remote));
            }
        }
    }

    /// Queues a UDP datagram for `send_udp` or hands a frame to its TCP writer.
    pub(super) fn transmit(
        &mut self,
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
        data: BytesMut,
    ) {
        match proto {
            Proto::Udp => self.udp_out.push(net::Outgoing {
                local,
                remote,
                data,
            }),
            Proto::Tcp => {
                if let Some(w) = self.tcp.get(&remote) {
                    let len = data.len() as u64;
                    if w.send(data).is_ok() {
                        self.stats.datagrams_out += 1;
                        self.stats.bytes_out += len;
                    }
                }
            }
        }
    }

    /// Sends the queued UDP datagrams, in order, batched per socket.
    pub(super) fn send_udp(&mut self) {
        if self.udp_out.is_empty() {
            return;
        }
        let mut out = std::mem::take(&mut self.udp_out);
        let r = super::workers::send_grouped(&mut out, &self.udp);
        self.stats.datagrams_out += r.datagrams as u64;
        self.stats.bytes_out += r.bytes;
        self.stats.udp_send_calls += r.calls;
        // Keep the allocation for the next flush.
        out.clear();
        self.udp_out = out;
    }

    /// Drains every touched peer (datagrams out, events handled, timers
    /// set) and writes the packets forwarded meanwhile (`workers`), until
    /// nothing is left; then sends the queued UDP datagrams.
    pub(super) fn flush(&mut self) {
        loop {
            self.drain_touched();
            if self.sending.keys.is_empty() {
                break;
            }
            // The written connections are touched again: their timers and
            // whatever writing made besides media.
            self.write_queued();
        }
        self.send_udp();
    }

    /// Drains every touched peer: datagrams out, events handled, timers set.
    fn drain_touched(&mut self) {
        // Reused between peers and flushes: no allocation per forwarded
        // packet's connection.
        let mut events = std::mem::take(&mut self.scratch_events);
        let mut out = std::mem::take(&mut self.scratch_out);
        while let Some(key) = self.touched.pop() {
            events.clear();
            out.clear();
            let Some(slot) = self.peers.get_mut(&key) else {
                continue;
            };
            while let Some(ev) = slot.peer.poll_event() {
                events.push(ev);
            }
            while let Some(t) = slot.peer.poll_transmit() {
                out.push(t);
            }
            // The last media/DTLS datagram tells the path the stack uses
            // (STUN answers go to every checking address).
            let worker_sent_on = slot.sent_on.take();
            let sent_on = out
                .iter()
                .rev()
                .find(|t| !crate::stun::is_stun(&t.data))
                .map(|t| (t.proto, t.remote))
                .or(worker_sent_on);
            let new_path = sent_on.filter(|p| slot.path != Some(*p) || slot.ufrags.len() > 1);
            // A peer whose first local description was made elsewhere than
            // in `publish`/`renegotiate` gets its ufrag routed here.
            let unrouted = slot.ufrags.is_empty();
            let deadline = slot.peer.poll_timeout();
            if slot.deadline != deadline {
                if let Some(d) = slot.deadline {
                    self.timers.remove(&(d, key));
                }
                if let Some(d) = deadline {
                    self.timers.insert((d, key));
                }
                slot.deadline = deadline;
            }
            for t in out.drain(..) {
                self.transmit(t.proto, t.local, t.remote, t.data);
            }
            if unrouted {
                self.sync_ufrag(key);
            }
            if let Some(path) = new_path {
                self.note_path(key, path);
            }
            for ev in events.drain(..) {
                self.peer_event(key, ev);
            }
        }
        self.scratch_events = events;
        self.scratch_out = out;
    }
}
