//! Demultiplexing: which peer connection a datagram is for. STUN requests
//! name the peer by our ICE ufrag (USERNAME); every other datagram is known
//! by its 5-tuple, learnt from those requests (`net::demux`). The ufrags
//! a connection has (old ones stay after an ICE restart until the new path
//! carries media) and the path its stack uses are kept here.

use std::net::SocketAddr;

use super::{Engine, PeerKey};
use crate::net;
use crate::peer::Proto;
use crate::PcKind;

impl Engine {
    /// Routes STUN for the peer's current ufrag (new after an ICE restart;
    /// the old one stays until the new path works, see `note_path`).
    pub(super) fn sync_ufrag(&mut self, key: PeerKey) {
        let ufrag = self.peers.get(&key).and_then(|s| s.peer.ufrag());
        self.note_ufrag(key, ufrag);
    }

    /// As [`Engine::sync_ufrag`], with the ufrag of the local description
    /// just made (writing the description out again costs more than the
    /// rest of a renegotiation's bookkeeping).
    pub(super) fn note_ufrag(&mut self, key: PeerKey, ufrag: Option<String>) {
        let Some(ufrag) = ufrag else {
            return;
        };
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        if slot.ufrags.last() == Some(&ufrag) {
            return;
        }
        if !slot.ufrags.is_empty() {
            tracing::debug!(peer = key, owner = %slot.owner, pc = ?slot.kind, "ICE restart");
            if slot.kind == PcKind::Subscriber {
                // The client's checks with its new credentials can overtake
                // its answer: keep them until it arrives.
                slot.awaiting_answer = true;
            }
        }
        slot.ufrags.push(ufrag.clone());
        self.by_ufrag.insert(ufrag, key);
    }

    /// The stack sends media or DTLS on `path` now: when that is a new path
    /// (ICE restart, or a new pair selected), the peer's other remote
    /// addresses and old ufrags stop being routed to it.
    pub(super) fn note_path(&mut self, key: PeerKey, path: (Proto, SocketAddr)) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let changed = slot.path.is_some_and(|p| p != path);
        slot.path = Some(path);
        let stale: Vec<(Proto, SocketAddr)> = if changed {
            slot.addrs.iter().copied().filter(|a| *a != path).collect()
        } else {
            Vec::new()
        };
        slot.addrs.retain(|a| !stale.contains(a));
        let old_ufrags: Vec<String> = slot
            .ufrags
            .drain(..slot.ufrags.len().saturating_sub(1))
            .collect();
        if changed || !old_ufrags.is_empty() {
            tracing::debug!(peer = key, owner = %slot.owner, pc = ?slot.kind, remote = %path.1,
                forgotten = stale.len(), "media path");
        }
        for a in stale {
            if self.by_addr.get(&a) == Some(&key) {
                self.by_addr.remove(&a);
            }
        }
        for u in old_ufrags {
            if self.by_ufrag.get(&u) == Some(&key) {
                self.by_ufrag.remove(&u);
            }
        }
    }

    /// Which peer a datagram is for (see [`net::demux`]); a STUN request
    /// naming the peer's ufrag teaches its address.
    pub(super) fn route(
        &mut self,
        proto: Proto,
        remote: SocketAddr,
        data: &[u8],
    ) -> Option<PeerKey> {
        match net::demux(&self.by_ufrag, &self.by_addr, proto, remote, data) {
            net::Route::ByUfrag(key) => {
                let addr = (proto, remote);
                if self.by_addr.insert(addr, key) != Some(key) {
                    if let Some(slot) = self.peers.get_mut(&key) {
                        if !slot.addrs.contains(&addr) {
                            slot.addrs.push(addr);
                        }
                    }
                }
                Some(key)
            }
            net::Route::ByAddr(key) => Some(key),
            net::Route::Unrouted => None,
        }
    }
}
