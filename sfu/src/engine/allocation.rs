//! The allocation tick: what each subscriber receives, re-decided every
//! [`ALLOC_TICK`] from the room's loudness, its speaking history, what the
//! subscriber's display asked for and the bandwidth estimate of its
//! connection. The decisions themselves are the pure functions of
//! `crate::alloc`; this applies them as caps on the subscriber's
//! [`Forward`](crate::forward::Forward)s (switches then happen at keyframes,
//! which forwarding asks the publisher for).
//!
//! # Upgrades: timed trials
//! An estimate that came from congestion grows only up to 1.5 times what the
//! subscriber acknowledged (see `bwe.rs`), so a higher layer needs evidence
//! that the link carries it. Probing with padding is not available: `rtc`
//! 0.21.1 writes at most 4 bytes of RTP padding, and duplicates of media
//! packets are dropped by the receiver's SRTP replay check before its
//! congestion feedback sees them. So the evidence is a *trial*: once the link
//! has been free of congestion for [`TRIAL_QUIET`], the most important track
//! held below its wish goes one layer up for [`TRIAL_TIME`]. Congestion
//! (delay overuse or loss) during the trial ends it at once and the track
//! goes back down; the next trial waits twice as long (from
//! [`TRIAL_BACKOFF_MIN`] to [`TRIAL_BACKOFF_MAX`]). A trial that runs its
//! time raises the estimate to the rate it needed, so the allocation keeps
//! the layer.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::Engine;
use crate::alloc::{self, AudioCandidate, Selected, VideoCandidate, AUDIBLE, AUDIO_BPS};
use crate::forward::layer_rank;
use crate::{MediaKind, ParticipantId, Quality, RoomId, SfuEvent};

/// How often the allocation runs.
pub(super) const ALLOC_TICK: Duration = Duration::from_millis(100);
/// How long a trial upgrade runs before it counts as carried.
const TRIAL_TIME: Duration = Duration::from_secs(3);
/// Congestion-free time before a trial.
const TRIAL_QUIET: Duration = Duration::from_secs(3);
/// Wait between trials: after a success, and doubling after each failure up to the max.
const TRIAL_BACKOFF_MIN: Duration = Duration::from_secs(4);
const TRIAL_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Loss above this during a trial fails it.
const TRIAL_LOSS: f64 = 0.05;
/// An audio level older than this does not make a track audible.
const LEVEL_FRESH: Duration = Duration::from_millis(500);
/// How long a new audio track may go without a level before a subscriber in
/// slots takes it for one that sends none (and always gets it). A client's
/// first packets may come before it stamps levels; forwarding them meanwhile
/// would make every subscriber in slots grow an audio slot per newcomer.
/// (A subscriber without slots gets such a track at once, as before: its
/// track is negotiated anyway, and holding it back would cut its start.)
const LEVEL_GRACE: Duration = Duration::from_secs(1);

/// The allocation's settings (from [`crate::SfuConfig`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AllocConfig {
    /// Video of at most this many publishers per subscriber (0: all).
    pub last_n: usize,
    /// Audio of at most this many publishers per subscriber (0: all).
    pub audio_loudest: usize,
}

/// A room's history, for the allocation.
#[derive(Debug, Default)]
pub(super) struct RoomAlloc {
    /// Participants who were the active speaker, most recent first.
    spoke: Vec<ParticipantId>,
    /// When each audio track (room-wide id) was last audible.
    audible: HashMap<String, Instant>,
}

/// One subscriber's allocation state.
#[derive(Debug, Default)]
pub(super) struct SubAlloc {
    /// The audio tracks selected as the loudest.
    audio: Vec<Selected>,
    /// Video tracks paused by last-N, as last announced.
    paused: BTreeSet<String>,
    trial: Option<Trial>,
    backoff: Duration,
    next_trial: Option<Instant>,
    /// The estimate last logged.
    logged_bps: Option<u64>,
}

#[derive(Debug, Clone)]
struct Trial {
    track: String,
    rank: u8,
    started: Instant,
    /// The total rate the allocation needs with the trial layer.
    total_bps: u64,
}

/// A decision for one forward: (publisher, track, cap).
type Decision = (ParticipantId, String, Quality);

fn rank_quality(rank: u8) -> Quality {
    match rank {
        0 => Quality::Low,
        1 => Quality::Medium,
        _ => Quality::High,
    }
}

fn quality_rank(q: Quality) -> Option<u8> {
    match q {
        Quality::Off => None,
        Quality::Low => Some(0),
        Quality::Medium => Some(1),
        Quality::High => Some(2),
    }
}

impl Engine {
    /// Re-decides what every subscriber receives.
    pub(super) fn alloc_tick(&mut self) {
        let now = Instant::now();
        self.room_alloc.retain(|r, _| self.rooms.contains_key(r));
        self.sub_alloc
            .retain(|p, _| self.participants.contains_key(p));
        let rooms: Vec<(RoomId, Vec<ParticipantId>)> = self
            .rooms
            .iter()
            .map(|(r, m)| (r.clone(), m.clone()))
            .collect();
        for (room, members) in rooms {
            self.note_room(&room, &members, now);
            // Out of the map while its subscribers are decided (read by each).
            let ra = self.room_alloc.remove(&room).unwrap_or_default();
            for sub in &members {
                self.allocate_for(&room, &members, sub, &ra, now);
            }
            self.room_alloc.insert(room, ra);
        }
    }

    /// Re-decides what one subscriber receives now, not at the next tick
    /// (its slots were just negotiated, or it just joined in slots).
    pub(super) fn allocate_now(&mut self, sub: &ParticipantId) {
        let Some(room) = self.participants.get(sub).map(|p| p.room.clone()) else {
            return;
        };
        let members = self.rooms.get(&room).cloned().unwrap_or_default();
        let ra = self.room_alloc.remove(&room).unwrap_or_default();
        self.allocate_for(&room, &members, sub, &ra, Instant::now());
        self.room_alloc.insert(room, ra);
    }

    /// Updates a room's speaking history and audible times.
    fn note_room(&mut self, room: &RoomId, members: &[ParticipantId], now: Instant) {
        let current = self.speakers.get(room).and_then(|s| s.current.clone());
        let ra = self.room_alloc.entry(room.clone()).or_default();
        if let Some(cur) = current {
            if ra.spoke.first() != Some(&cur) {
                ra.spoke.retain(|p| *p != cur);
                ra.spoke.insert(0, cur);
            }
        }
        ra.spoke.retain(|p| members.contains(p));
        let mut live = Vec::new();
        for m in members {
            let Some(p) = self.participants.get(m) else {
                continue;
            };
            for t in p.tracks.iter().filter(|t| t.kind == MediaKind::Audio) {
                live.push(t.id.clone());
                let fresh = t
                    .last_level
                    .is_some_and(|at| now.saturating_duration_since(at) < LEVEL_FRESH);
                if fresh && t.loudness >= AUDIBLE {
                    ra.audible.insert(t.id.clone(), now);
                }
            }
        }
        ra.audible.retain(|id, _| live.contains(id));
    }

    /// Decides and applies what `sub` receives.
    fn allocate_for(
        &mut self,
        room: &RoomId,
        members: &[ParticipantId],
        sub: &ParticipantId,
        ra: &RoomAlloc,
        now: Instant,
    ) {
        let Some(sub_key) = self
            .participants
            .get(sub)
            .map(|p| p.subscriber)
            .filter(|k| self.peers.contains_key(k))
        else {
            return;
        };
        let config = self.alloc_config;
        let in_slots = self
            .participants
            .get(sub)
            .is_some_and(|p| p.slots.is_some());
        let speaker = self.speakers.get(room).and_then(|s| s.current.clone());
        let (spoke, audible) = (&ra.spoke, &ra.audible);
        let mut decisions: Vec<Decision> = Vec::new();

        // Audio: the loudest, among tracks that say how loud they are;
        // a track without levels cannot be judged and always goes.
        let mut audio_cands = Vec::new();
        let mut levelless = Vec::new();
        for m in members.iter().filter(|m| *m != sub) {
            let Some(p) = self.participants.get(m) else {
                continue;
            };
            for t in p.tracks.iter().filter(|t| t.kind == MediaKind::Audio) {
                if !t.subscribers.iter().any(|f| f.sub == sub_key) {
                    continue;
                }
                if in_slots
                    && t.last_level.is_none()
                    && config.audio_loudest != 0
                    && now.saturating_duration_since(t.since) < LEVEL_GRACE
                {
                    // Not judged yet: not forwarded yet.
                    decisions.push((m.clone(), t.id.clone(), Quality::Off));
                } else if t.last_level.is_none() || config.audio_loudest == 0 {
                    levelless.push((m.clone(), t.id.clone()));
                } else {
                    audio_cands.push((
                        m.clone(),
                        AudioCandidate {
                            track: t.id.clone(),
                            loudness: t.loudness,
                            last_audible: audible.get(&t.id).copied(),
                        },
                    ));
                }
            }
        }
        let sa = self.sub_alloc.entry(sub.clone()).or_default();
        let cands: Vec<AudioCandidate> = audio_cands.iter().map(|c| c.1.clone()).collect();
        if alloc::select_audio(&mut sa.audio, &cands, config.audio_loudest, now) {
            tracing::debug!(subscriber = %sub, audio = ?sa.audio.iter().map(|s| &s.track).collect::<Vec<_>>(), "loudest audio");
        }
        let mut audio_on = levelless.len();
        for (m, c) in &audio_cands {
            let on = sa.audio.iter().any(|s| s.track == c.track);
            audio_on += usize::from(on);
            let cap = if on { Quality::High } else { Quality::Off };
            decisions.push((m.clone(), c.track.clone(), cap));
        }
        for (m, t) in levelless {
            decisions.push((m, t, Quality::High));
        }

        // Video: last-N publishers, then layers within the estimate.
        struct V {
            publisher: ParticipantId,
            track: String,
            cand: VideoCandidate,
            current_rank: Option<u8>,
        }
        let mut publishers = Vec::new();
        let mut videos: Vec<V> = Vec::new();
        for m in members.iter().filter(|m| *m != sub) {
            let Some(p) = self.participants.get(m) else {
                continue;
            };
            for t in p.tracks.iter().filter(|t| t.kind == MediaKind::Video) {
                let Some(f) = t.subscribers.iter().find(|f| f.sub == sub_key) else {
                    continue;
                };
                let Some(wish) = quality_rank(f.quality) else {
                    continue;
                };
                let layers = t.layers.costs();
                if layers.is_empty() {
                    continue;
                }
                if !publishers.contains(m) {
                    publishers.push(m.clone());
                }
                let recency = spoke
                    .iter()
                    .position(|s| s == m)
                    .map_or(0, |i| u32::MAX - i as u32);
                videos.push(V {
                    publisher: m.clone(),
                    track: t.id.clone(),
                    cand: VideoCandidate {
                        wish,
                        priority: (speaker.as_ref() == Some(m), wish, recency),
                        layers,
                    },
                    current_rank: f.current().map(layer_rank),
                });
            }
        }
        let shown = alloc::last_n(&publishers, spoke, config.last_n);
        let mut paused = BTreeSet::new();
        videos.retain(|v| {
            if shown.contains(&v.publisher) {
                true
            } else {
                paused.insert(v.track.clone());
                decisions.push((v.publisher.clone(), v.track.clone(), Quality::Off));
                false
            }
        });
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
        if let Some(sa) = self.sub_alloc.get_mut(sub) {
            let moved = match (sa.logged_bps, estimate.bps) {
                (None, None) => false,
                (Some(a), Some(b)) => a.abs_diff(b) * 5 > a,
                _ => true,
            };
            if moved {
                sa.logged_bps = estimate.bps;
                tracing::debug!(subscriber = %sub, bps = ?estimate.bps, acked = estimate.acked_bps,
                    loss = estimate.loss, "bandwidth estimate");
            }
        }
        let reserved = audio_on as u64 * AUDIO_BPS;
        let cands: Vec<VideoCandidate> = videos.iter().map(|v| v.cand.clone()).collect();
        let mut caps = alloc::allocate(estimate.bps, reserved, &cands);

        // Trials.
        let Some(sa) = self.sub_alloc.get_mut(sub) else {
            return;
        };
        let mut accept = None;
        if let Some(trial) = sa.trial.clone() {
            let gone = !videos.iter().any(|v| v.track == trial.track);
            let congested = estimate.congested_at.is_some_and(|t| t > trial.started)
                || estimate.loss > TRIAL_LOSS;
            if gone || congested {
                sa.trial = None;
                sa.backoff = (sa.backoff * 2).clamp(TRIAL_BACKOFF_MIN, TRIAL_BACKOFF_MAX);
                sa.next_trial = Some(now + sa.backoff);
                if !gone {
                    tracing::debug!(subscriber = %sub, track = %trial.track, backoff = ?sa.backoff, "trial upgrade failed");
                }
            } else if now.saturating_duration_since(trial.started) >= TRIAL_TIME {
                let reached = videos
                    .iter()
                    .find(|v| v.track == trial.track)
                    .and_then(|v| v.current_rank)
                    .is_some_and(|r| r >= trial.rank);
                sa.trial = None;
                if reached {
                    tracing::debug!(subscriber = %sub, track = %trial.track, bps = trial.total_bps, "trial upgrade carried");
                    accept = Some(trial.total_bps);
                    sa.backoff = TRIAL_BACKOFF_MIN;
                } else {
                    sa.backoff = (sa.backoff * 2).clamp(TRIAL_BACKOFF_MIN, TRIAL_BACKOFF_MAX);
                }
                sa.next_trial = Some(now + sa.backoff);
            }
        }
        let quiet = estimate
            .congested_at
            .is_none_or(|t| now.saturating_duration_since(t) >= TRIAL_QUIET);
        if sa.trial.is_none()
            && estimate.bps.is_some()
            && !estimate.from_remb
            && accept.is_none()
            && quiet
            && sa.next_trial.is_none_or(|t| now >= t)
        {
            // The most important track held below its wish, one layer up.
            let mut order: Vec<usize> = (0..videos.len()).filter(|i| caps[*i].1).collect();
            order.sort_by(|a, b| videos[*b].cand.priority.cmp(&videos[*a].cand.priority));
            if let Some(&i) = order.first() {
                let v = &videos[i];
                let cur = caps[i].0.unwrap_or(2);
                let cost = |rank: u8| {
                    v.cand
                        .layers
                        .iter()
                        .find(|l| l.0 == rank)
                        .map_or(0, |l| l.1)
                };
                if let Some(&(next, next_bps)) = v
                    .cand
                    .layers
                    .iter()
                    .find(|l| l.0 > cur && l.0 <= v.cand.wish)
                {
                    let allocated: u64 = videos
                        .iter()
                        .zip(&caps)
                        .map(|(v, c)| {
                            let r = c.0.unwrap_or(2);
                            v.cand.layers.iter().find(|l| l.0 == r).map_or(0, |l| l.1)
                        })
                        .sum();
                    let total = reserved + allocated + next_bps.saturating_sub(cost(cur));
                    tracing::debug!(subscriber = %sub, track = %v.track, layer = next, bps = total, "trial upgrade");
                    sa.trial = Some(Trial {
                        track: v.track.clone(),
                        rank: next,
                        started: now,
                        total_bps: total,
                    });
                }
            }
        }
        if let Some(trial) = &sa.trial {
            if let Some(i) = videos.iter().position(|v| v.track == trial.track) {
                caps[i].0 = Some(caps[i].0.unwrap_or(2).max(trial.rank));
            }
        }
        for (v, (cap, _)) in videos.iter().zip(&caps) {
            let q = cap.map_or(Quality::High, rank_quality);
            if cap.is_some() && estimate.bps.is_some() {
                tracing::trace!(subscriber = %sub, track = %v.track, layers = ?v.cand.layers, ?q, "layer costs");
            }
            decisions.push((v.publisher.clone(), v.track.clone(), q));
        }
        let paused_changed = sa.paused != paused;
        if paused_changed {
            sa.paused = paused.clone();
        }
        if let (Some(bps), Some(slot)) = (accept, self.peers.get(&sub_key)) {
            slot.peer.bandwidth_accept(bps);
        }

        // Apply.
        let mut in_slots = Vec::new();
        for (publisher, track, cap) in decisions {
            let Some(t) = self
                .participants
                .get_mut(&publisher)
                .and_then(|p| p.tracks.iter_mut().find(|t| t.id == track))
            else {
                continue;
            };
            if let Some(f) = t.subscribers.iter_mut().find(|f| f.sub == sub_key) {
                if f.set_cap(cap) {
                    tracing::debug!(subscriber = %sub, track = %track, ?cap, layers = ?t.layers.costs(), "allocation");
                }
                if f.via_slots() && f.effective() != Quality::Off {
                    in_slots.push((publisher, track));
                }
            }
        }
        self.assign_slots(sub, sub_key, &in_slots);
        if paused_changed {
            if let Some(p) = self.participants.get(sub) {
                let _ = p.events.send(SfuEvent::VideoPaused {
                    track_ids: paused.into_iter().collect(),
                });
            }
        }
    }
}
