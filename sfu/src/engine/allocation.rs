//! The allocation tick, on the engine's side: every [`ALLOC_TICK`] it
//! describes each room's tracks to the room's sans-I/O core
//! ([`crate::room::Room`]: the speaking history, last-N, the loudest audio,
//! layers within the bandwidth estimate, trials, shedding) and applies what
//! the core decides as caps on the subscribers'
//! [`Forward`](crate::forward::Forward)s (switches then happen at keyframes,
//! which forwarding asks the publisher for), moves slots, and tells the
//! participants what is paused.

use std::time::{Duration, Instant};

use super::Engine;
use crate::forward::layer_rank;
use crate::room::{Allocation, AudioView, Room, VideoView};
use crate::{MediaKind, ParticipantId, Quality, RoomId, SfuEvent};

pub(crate) use crate::room::AllocConfig;

/// How often the allocation runs.
pub(super) const ALLOC_TICK: Duration = Duration::from_millis(100);

impl Engine {
    /// Re-decides what every subscriber receives.
    pub(super) fn alloc_tick(&mut self) {
        let now = Instant::now();
        let rooms: Vec<RoomId> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.note_room(&room, now);
            let members = self.members(&room);
            for sub in &members {
                self.allocate_for(&room, sub, now);
            }
        }
    }

    /// Re-decides what one subscriber receives now, not at the next tick
    /// (its slots were just negotiated, or it just joined in slots).
    pub(super) fn allocate_now(&mut self, sub: &ParticipantId) {
        let Some(room) = self.participants.get(sub).map(|p| p.room.clone()) else {
            return;
        };
        self.allocate_for(&room, sub, Instant::now());
    }

    /// A room's members, in the order they joined.
    pub(super) fn members(&self, room: &RoomId) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| r.members().to_vec())
            .unwrap_or_default()
    }

    /// Tells the room's core which audio tracks are audible now (its
    /// speaking history and audible times).
    pub(super) fn note_room(&mut self, room: &RoomId, now: Instant) {
        let Some(core) = self.rooms.get_mut(room) else {
            return;
        };
        let participants = &self.participants;
        let members: Vec<ParticipantId> = core.members().to_vec();
        let tracks = members
            .iter()
            .filter_map(|m| participants.get(m))
            .flat_map(|p| {
                let blocked = p.blocked.of(MediaKind::Audio);
                p.tracks
                    .iter()
                    .filter(|t| t.kind == MediaKind::Audio)
                    .map(move |t| {
                        (
                            t.id.as_str(),
                            Room::audible_now(blocked, t.loudness, t.last_level, now),
                        )
                    })
            });
        core.handle_audio(now, tracks);
    }

    /// Decides (in the room's core) and applies what `sub` receives.
    fn allocate_for(&mut self, room: &RoomId, sub: &ParticipantId, now: Instant) {
        let Some(sub_key) = self
            .participants
            .get(sub)
            .map(|p| p.subscriber)
            .filter(|k| self.peers.contains_key(k))
        else {
            return;
        };
        let in_slots = self
            .participants
            .get(sub)
            .is_some_and(|p| p.slots.is_some());
        let estimate = self
            .peers
            .get(&sub_key)
            .map(|s| s.peer.bandwidth(now))
            .unwrap_or(crate::bwe::Estimate {
                bps: None,
                acked_bps: 0,
                loss: 0.0,
                congested_at: None,
                from_remb: false,
            });
        let Some(core) = self.rooms.get_mut(room) else {
            return;
        };
        // The views borrow the engine's tracks; `at` says where each is,
        // to apply the decisions by the same order.
        let mut audio = Vec::new();
        let mut video = Vec::new();
        let mut audio_at = Vec::new();
        let mut video_at = Vec::new();
        let members = core.members().to_vec();
        for m in members.iter().filter(|m| *m != sub) {
            let Some(p) = self.participants.get(m) else {
                continue;
            };
            for (ti, t) in p.tracks.iter().enumerate() {
                let Some(f) = t.subscribers.iter().find(|f| f.sub == sub_key) else {
                    continue;
                };
                match t.kind {
                    MediaKind::Audio => {
                        audio.push(AudioView {
                            track: &t.id,
                            blocked: p.blocked.of(MediaKind::Audio),
                            loudness: t.loudness,
                            last_level: t.last_level,
                            since: t.since,
                        });
                        audio_at.push((m.clone(), ti));
                    }
                    MediaKind::Video => {
                        video.push(VideoView {
                            publisher: m,
                            track: &t.id,
                            blocked: p.blocked.of(MediaKind::Video),
                            featured: p.featured,
                            wish: f.quality,
                            layers: t.layers.costs(),
                            current_rank: f.current().map(layer_rank),
                        });
                        video_at.push((m.clone(), ti));
                    }
                }
            }
        }
        core.handle_allocate(now, sub, in_slots, &audio, &video, &estimate);
        drop((audio, video));
        while let Some(a) = self.rooms.get_mut(room).and_then(Room::poll_allocation) {
            self.apply_allocation(sub_key, a, &audio_at, &video_at);
        }
    }

    /// Applies a room's decision for one subscriber: caps, slots, paused
    /// videos, an accepted trial.
    fn apply_allocation(
        &mut self,
        sub_key: super::PeerKey,
        a: Allocation,
        audio_at: &[(ParticipantId, usize)],
        video_at: &[(ParticipantId, usize)],
    ) {
        let sub = &a.subscriber;
        if let (Some(bps), Some(slot)) = (a.accept_bps, self.peers.get(&sub_key)) {
            slot.peer.bandwidth_accept(bps);
        }
        let decisions = audio_at
            .iter()
            .zip(a.audio.iter().map(|q| Some(*q)))
            .chain(video_at.iter().zip(a.video.iter().copied()));
        let mut in_slots = Vec::new();
        for ((publisher, ti), cap) in decisions {
            let Some(cap) = cap else { continue };
            let Some(t) = self
                .participants
                .get_mut(publisher)
                .and_then(|p| p.tracks.get_mut(*ti))
            else {
                continue;
            };
            if let Some(f) = t.subscribers.iter_mut().find(|f| f.sub == sub_key) {
                if f.set_cap(cap) {
                    tracing::debug!(subscriber = %sub, track = %t.id, ?cap, layers = ?t.layers.costs(), "allocation");
                }
                if f.via_slots() && f.effective() != Quality::Off {
                    in_slots.push((publisher.clone(), t.id.clone()));
                }
            }
        }
        self.assign_slots(sub, sub_key, &in_slots);
        if let Some(paused) = a.paused {
            if let Some(p) = self.participants.get(sub) {
                let _ = p.events.send(SfuEvent::VideoPaused {
                    track_ids: paused.into_iter().collect(),
                });
            }
        }
    }
}
