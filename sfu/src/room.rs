//! A room's behaviour without I/O: who is in it, who speaks, and what each
//! subscriber receives (last-N video, the loudest audio, the layer of each
//! video within its bandwidth, timed trials of a higher layer, what is
//! shed under overload). No sockets, no tasks, no clock of its own: the
//! driver (the engine) calls `handle_*` with the time and what it measured,
//! and takes the decisions with `poll_*`, so the unit tests below run a
//! room's minutes in microseconds.
//!
//! The driver owns the media (connections, tracks, forwards, the smoothed
//! loudness of each audio track, each layer's measured cost); it describes
//! them to the room in plain views ([`AudioView`], [`VideoView`]) indexed as
//! it likes, and applies the room's [`Allocation`] by the same indexes.
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
//!
//! # Shedding
//! When the driver says the engine is short of CPU ([`Room::set_shed`]), the
//! room gives up, in this order: the high layers of thumbnails (video of
//! neither the featured participant, the chair or floor holder, nor the
//! active speaker), then thumbnails. Audio and the featured participant's
//! and the speaker's video are never shed, and joins are never refused.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::alloc::{self, AudioCandidate, Selected, VideoCandidate, AUDIBLE, AUDIO_BPS};
use crate::bwe::Estimate;
use crate::{ParticipantId, Quality};

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
/// (A subscriber without slots gets such a track at once: its track is
/// negotiated anyway, and holding it back would cut its start.)
const LEVEL_GRACE: Duration = Duration::from_secs(1);
/// Loudness (smoothed, 0..1) a participant needs to become the active speaker.
pub(crate) const SPEAKER_THRESHOLD: f32 = 0.55;
/// How much louder than the current speaker a new one must be.
const SPEAKER_MARGIN: f32 = 0.05;
/// Least time a speaker holds the place before another takes it.
const SPEAKER_HOLD: Duration = Duration::from_secs(1);

/// The allocation's settings (from [`crate::SfuConfig`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AllocConfig {
    /// Video of at most this many publishers per subscriber (0: all).
    pub last_n: usize,
    /// Audio of at most this many publishers per subscriber (0: all).
    pub audio_loudest: usize,
}

/// How much the room gives up because the engine is short of CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Shed {
    /// Nothing.
    #[default]
    None,
    /// Thumbnails at their lowest layer.
    ThumbnailLayers,
    /// No thumbnails: only the featured participant's and the active
    /// speaker's video (and all audio).
    Thumbnails,
}

/// One audio track a subscriber is subscribed to, as the room sees it.
#[derive(Debug, Clone)]
pub(crate) struct AudioView<'a> {
    pub track: &'a str,
    /// The server blocks it (a chair's mute): heard by nobody.
    pub blocked: bool,
    /// Smoothed loudness, 0 (silence) to 1.
    pub loudness: f32,
    /// When its last audio level came (`None`: it sends none).
    pub last_level: Option<Instant>,
    /// When its first packet came.
    pub since: Instant,
}

/// One video track a subscriber is subscribed to, as the room sees it.
#[derive(Debug, Clone)]
pub(crate) struct VideoView<'a> {
    pub publisher: &'a str,
    pub track: &'a str,
    pub blocked: bool,
    /// The publisher is featured (the chair, the floor holder).
    pub featured: bool,
    /// What the subscriber's display asked for.
    pub wish: Quality,
    /// The track's layers: (rank, bits per second), lowest first; empty
    /// until a packet came.
    pub layers: Vec<(u8, u64)>,
    /// The layer rank the subscriber gets now (`None`: none yet).
    pub current_rank: Option<u8>,
}

/// What one subscriber receives, by the indexes of the views it was
/// decided from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Allocation {
    pub subscriber: ParticipantId,
    /// The cap of each audio view (`Off` or `High`).
    pub audio: Vec<Quality>,
    /// The cap of each video view; `None`: left as it is (the subscriber
    /// asked for nothing, or the track has no layer yet).
    pub video: Vec<Option<Quality>>,
    /// The video tracks last-N (or shedding) pauses, when that changed.
    pub paused: Option<BTreeSet<String>>,
    /// A trial carried: the subscriber's estimate should accept this rate.
    pub accept_bps: Option<u64>,
}

/// What the room tells the driver, besides allocations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RoomEvent {
    /// The active speaker changed.
    ActiveSpeaker(ParticipantId),
}

#[derive(Debug, Clone)]
struct Trial {
    track: String,
    rank: u8,
    started: Instant,
    /// The total rate the allocation needs with the trial layer.
    total_bps: u64,
}

/// One subscriber's allocation state.
#[derive(Debug, Default)]
struct SubState {
    /// The audio tracks selected as the loudest.
    audio: Vec<Selected>,
    /// Video tracks paused, as last announced.
    paused: BTreeSet<String>,
    trial: Option<Trial>,
    backoff: Duration,
    next_trial: Option<Instant>,
    /// The estimate last logged.
    logged_bps: Option<u64>,
}

/// A room: members, the active speaker, the speaking history and what
/// each subscriber was given.
#[derive(Debug, Default)]
pub(crate) struct Room {
    config: AllocConfig,
    /// In the order they joined.
    members: Vec<ParticipantId>,
    /// The active speaker and since when.
    speaker: Option<(ParticipantId, Instant)>,
    /// Participants who were the active speaker, most recent first.
    spoke: Vec<ParticipantId>,
    /// When each audio track (room-wide id) was last audible.
    audible: HashMap<String, Instant>,
    subs: HashMap<ParticipantId, SubState>,
    shed: Shed,
    events: VecDeque<RoomEvent>,
    allocations: VecDeque<Allocation>,
}

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

impl Room {
    pub fn new(config: AllocConfig) -> Room {
        Room {
            config,
            ..Room::default()
        }
    }

    /// The members, in the order they joined.
    pub fn members(&self) -> &[ParticipantId] {
        &self.members
    }

    /// The active speaker.
    pub fn speaker(&self) -> Option<&ParticipantId> {
        self.speaker.as_ref().map(|(p, _)| p)
    }

    /// Sets how much is shed; returns whether it changed.
    pub fn set_shed(&mut self, shed: Shed) -> bool {
        std::mem::replace(&mut self.shed, shed) != shed
    }

    /// A participant joins (a second join changes nothing).
    pub fn handle_join(&mut self, participant: &str) {
        if !self.members.iter().any(|m| m == participant) {
            self.members.push(participant.to_owned());
        }
    }

    /// A participant leaves: it speaks no more and receives nothing.
    pub fn handle_leave(&mut self, participant: &str) {
        self.members.retain(|m| m != participant);
        self.spoke.retain(|m| m != participant);
        self.subs.remove(participant);
        self.forget_speaker(participant);
    }

    /// `participant`'s audio was blocked or left: if it was the speaker,
    /// the next one is announced without waiting for the hold.
    pub fn forget_speaker(&mut self, participant: &str) {
        if self.speaker.as_ref().is_some_and(|(p, _)| p == participant) {
            self.speaker = None;
        }
    }

    /// The loudness of each member's unblocked audio (one entry per track):
    /// the loudest above [`SPEAKER_THRESHOLD`], clearly louder than the
    /// current speaker who held the place [`SPEAKER_HOLD`], becomes the
    /// speaker ([`RoomEvent::ActiveSpeaker`]).
    pub fn handle_loudness<'a>(
        &mut self,
        now: Instant,
        loudness: impl IntoIterator<Item = (&'a str, f32)>,
    ) {
        let mut best: Option<(&str, f32)> = None;
        let mut current_loudness = 0.0;
        let current = self.speaker.as_ref().map(|(p, _)| p.as_str());
        for (m, l) in loudness {
            if Some(m) == current {
                current_loudness = l;
            }
            if best.is_none_or(|(_, b)| l > b) {
                best = Some((m, l));
            }
        }
        let Some((loudest, l)) = best else {
            return;
        };
        let changes = current != Some(loudest)
            && l >= SPEAKER_THRESHOLD
            && l > current_loudness + SPEAKER_MARGIN
            && self
                .speaker
                .as_ref()
                .is_none_or(|(_, since)| now.duration_since(*since) >= SPEAKER_HOLD);
        if !changes {
            return;
        }
        self.speaker = Some((loudest.to_owned(), now));
        self.events
            .push_back(RoomEvent::ActiveSpeaker(loudest.to_owned()));
    }

    /// Updates the speaking history and the audible times from the room's
    /// audio tracks: (track, audible now). A track not listed is gone.
    pub fn handle_audio<'a>(
        &mut self,
        now: Instant,
        tracks: impl IntoIterator<Item = (&'a str, bool)>,
    ) {
        if let Some((cur, _)) = &self.speaker {
            if self.spoke.first() != Some(cur) {
                let cur = cur.clone();
                self.spoke.retain(|p| *p != cur);
                self.spoke.insert(0, cur);
            }
        }
        let members = &self.members;
        self.spoke.retain(|p| members.contains(p));
        let mut live: Vec<&str> = Vec::new();
        for (track, audible) in tracks {
            live.push(track);
            if audible {
                match self.audible.get_mut(track) {
                    Some(at) => *at = now,
                    None => {
                        self.audible.insert(track.to_owned(), now);
                    }
                }
            }
        }
        self.audible.retain(|id, _| live.contains(&id.as_str()));
    }

    /// Whether an audio track counts as audible now from its state.
    pub fn audible_now(
        blocked: bool,
        loudness: f32,
        last_level: Option<Instant>,
        now: Instant,
    ) -> bool {
        !blocked
            && loudness >= AUDIBLE
            && last_level.is_some_and(|at| now.saturating_duration_since(at) < LEVEL_FRESH)
    }

    /// Decides what `subscriber` receives now of the tracks it is subscribed
    /// to; the result comes out of [`Room::poll_allocation`].
    pub fn handle_allocate(
        &mut self,
        now: Instant,
        subscriber: &str,
        in_slots: bool,
        audio: &[AudioView<'_>],
        video: &[VideoView<'_>],
        estimate: &Estimate,
    ) {
        let config = self.config;
        let speaker = self.speaker.as_ref().map(|(p, _)| p.as_str());
        let mut out = Allocation {
            subscriber: subscriber.to_owned(),
            audio: vec![Quality::Off; audio.len()],
            video: vec![None; video.len()],
            paused: None,
            accept_bps: None,
        };

        // Audio: the loudest, among tracks that say how loud they are;
        // a track without levels cannot be judged and always goes.
        let mut cands = Vec::new();
        let mut cand_of = Vec::new();
        let mut levelless = 0;
        for (i, a) in audio.iter().enumerate() {
            if a.blocked {
                // Blocked by the server: no place among the loudest, no slot.
                out.audio[i] = Quality::Off;
            } else if in_slots
                && a.last_level.is_none()
                && config.audio_loudest != 0
                && now.saturating_duration_since(a.since) < LEVEL_GRACE
            {
                // Not judged yet: not forwarded yet.
                out.audio[i] = Quality::Off;
            } else if a.last_level.is_none() || config.audio_loudest == 0 {
                out.audio[i] = Quality::High;
                levelless += 1;
            } else {
                cands.push(AudioCandidate {
                    track: a.track.to_owned(),
                    loudness: a.loudness,
                    last_audible: self.audible.get(a.track).copied(),
                });
                cand_of.push(i);
            }
        }
        let sa = self.subs.entry(subscriber.to_owned()).or_default();
        if alloc::select_audio(&mut sa.audio, &cands, config.audio_loudest, now) {
            tracing::debug!(subscriber = %subscriber, audio = ?sa.audio.iter().map(|s| &s.track).collect::<Vec<_>>(), "loudest audio");
        }
        let mut audio_on = levelless;
        for (c, &i) in cands.iter().zip(&cand_of) {
            let on = sa.audio.iter().any(|s| s.track == c.track);
            audio_on += usize::from(on);
            out.audio[i] = if on { Quality::High } else { Quality::Off };
        }

        // Video: last-N publishers, then layers within the estimate.
        let mut publishers: Vec<String> = Vec::new();
        let mut chosen: Vec<usize> = Vec::new();
        let mut vcands: Vec<VideoCandidate> = Vec::new();
        for (i, v) in video.iter().enumerate() {
            if v.blocked {
                // Blocked by the server: no last-N place, no bandwidth.
                out.video[i] = Some(Quality::Off);
                continue;
            }
            let Some(wish) = quality_rank(v.wish) else {
                continue;
            };
            if v.layers.is_empty() {
                continue;
            }
            if !publishers.iter().any(|p| p == v.publisher) {
                publishers.push(v.publisher.to_owned());
            }
            let recency = self
                .spoke
                .iter()
                .position(|s| s == v.publisher)
                .map_or(0, |i| u32::MAX - i as u32);
            chosen.push(i);
            vcands.push(VideoCandidate {
                wish,
                priority: (speaker == Some(v.publisher), wish, recency),
                layers: v.layers.clone(),
            });
        }
        let shown = alloc::last_n(&publishers, &self.spoke, config.last_n);
        let mut paused = BTreeSet::new();
        let mut k = 0;
        while k < chosen.len() {
            let v = &video[chosen[k]];
            // Shedding: thumbnails go (or keep their lowest layer below).
            let thumbnail = !v.featured && speaker != Some(v.publisher);
            let shed = thumbnail && self.shed >= Shed::Thumbnails;
            if shown.contains(v.publisher) && !shed {
                k += 1;
            } else {
                paused.insert(v.track.to_owned());
                out.video[chosen[k]] = Some(Quality::Off);
                chosen.remove(k);
                vcands.remove(k);
            }
        }
        let reserved = audio_on as u64 * AUDIO_BPS;
        let mut caps = alloc::allocate(estimate.bps, reserved, &vcands);

        // Trials.
        let sa = self.subs.entry(subscriber.to_owned()).or_default();
        // The estimate, logged when it moved by a fifth (the tests read it).
        let moved = match (sa.logged_bps, estimate.bps) {
            (None, None) => false,
            (Some(a), Some(b)) => a.abs_diff(b) * 5 > a,
            _ => true,
        };
        if moved {
            sa.logged_bps = estimate.bps;
            tracing::debug!(subscriber = %subscriber, bps = ?estimate.bps, acked = estimate.acked_bps,
                loss = estimate.loss, "bandwidth estimate");
        }
        let track_of = |j: usize| video[chosen[j]].track;
        if let Some(trial) = sa.trial.clone() {
            let pos = (0..chosen.len()).find(|&j| track_of(j) == trial.track);
            let congested = estimate.congested_at.is_some_and(|t| t > trial.started)
                || estimate.loss > TRIAL_LOSS;
            if pos.is_none() || congested {
                sa.trial = None;
                sa.backoff = (sa.backoff * 2).clamp(TRIAL_BACKOFF_MIN, TRIAL_BACKOFF_MAX);
                sa.next_trial = Some(now + sa.backoff);
                if pos.is_some() {
                    tracing::debug!(subscriber = %subscriber, track = %trial.track, backoff = ?sa.backoff, "trial upgrade failed");
                }
            } else if now.saturating_duration_since(trial.started) >= TRIAL_TIME {
                let reached = pos
                    .and_then(|j| video[chosen[j]].current_rank)
                    .is_some_and(|r| r >= trial.rank);
                sa.trial = None;
                if reached {
                    tracing::debug!(subscriber = %subscriber, track = %trial.track, bps = trial.total_bps, "trial upgrade carried");
                    out.accept_bps = Some(trial.total_bps);
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
            && out.accept_bps.is_none()
            && quiet
            && sa.next_trial.is_none_or(|t| now >= t)
            && self.shed == Shed::None
        {
            // The most important track held below its wish, one layer up.
            let mut order: Vec<usize> = (0..vcands.len()).filter(|j| caps[*j].1).collect();
            order.sort_by(|a, b| vcands[*b].priority.cmp(&vcands[*a].priority));
            if let Some(&j) = order.first() {
                let c = &vcands[j];
                let cur = caps[j].0.unwrap_or(2);
                let cost = |rank: u8| c.layers.iter().find(|l| l.0 == rank).map_or(0, |l| l.1);
                if let Some(&(next, next_bps)) =
                    c.layers.iter().find(|l| l.0 > cur && l.0 <= c.wish)
                {
                    let allocated: u64 = vcands
                        .iter()
                        .zip(&caps)
                        .map(|(v, cap)| {
                            let r = cap.0.unwrap_or(2);
                            v.layers.iter().find(|l| l.0 == r).map_or(0, |l| l.1)
                        })
                        .sum();
                    let total = reserved + allocated + next_bps.saturating_sub(cost(cur));
                    tracing::debug!(subscriber = %subscriber, track = %track_of(j), layer = next, bps = total, "trial upgrade");
                    sa.trial = Some(Trial {
                        track: track_of(j).to_owned(),
                        rank: next,
                        started: now,
                        total_bps: total,
                    });
                }
            }
        }
        if let Some(trial) = &sa.trial {
            if let Some(j) = (0..chosen.len()).find(|&j| track_of(j) == trial.track) {
                caps[j].0 = Some(caps[j].0.unwrap_or(2).max(trial.rank));
            }
        }
        for (j, (cap, _)) in caps.iter().enumerate() {
            let v = &video[chosen[j]];
            let mut q = cap.map_or(Quality::High, rank_quality);
            if self.shed >= Shed::ThumbnailLayers && !v.featured && speaker != Some(v.publisher) {
                q = q.min(Quality::Low);
            }
            out.video[chosen[j]] = Some(q);
        }
        if sa.paused != paused {
            sa.paused = paused.clone();
            out.paused = Some(paused);
        }
        self.allocations.push_back(out);
    }

    /// The next allocation decided.
    pub fn poll_allocation(&mut self) -> Option<Allocation> {
        self.allocations.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// Makes every audible time `by` older (tests: time passing).
    #[cfg(test)]
    pub fn age_audible(&mut self, by: Duration) {
        for at in self.audible.values_mut() {
            *at = at.checked_sub(by).unwrap_or(*at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room's clock in the tests: starts now, moves only when told.
    struct Clock(Instant);

    impl Clock {
        fn advance(&mut self, ms: u64) -> Instant {
            self.0 += Duration::from_millis(ms);
            self.0
        }
    }

    fn unconstrained() -> Estimate {
        Estimate {
            bps: None,
            acked_bps: 0,
            loss: 0.0,
            congested_at: None,
            from_remb: false,
        }
    }

    fn estimate(bps: u64) -> Estimate {
        Estimate {
            bps: Some(bps),
            ..unconstrained()
        }
    }

    /// Three simulcast layers at 150k, 500k and 1.5M.
    fn layers() -> Vec<(u8, u64)> {
        vec![(0, 150_000), (1, 500_000), (2, 1_500_000)]
    }

    /// A room of `n` members p0..pn (p0 is the subscriber in the tests).
    fn room(n: usize, last_n: usize, audio_loudest: usize) -> (Room, Vec<String>) {
        let mut r = Room::new(AllocConfig {
            last_n,
            audio_loudest,
        });
        let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
        for id in &ids {
            r.handle_join(id);
        }
        (r, ids)
    }

    fn videos<'a>(ids: &'a [String], tracks: &'a [String]) -> Vec<VideoView<'a>> {
        ids.iter()
            .zip(tracks)
            .skip(1)
            .map(|(p, t)| VideoView {
                publisher: p,
                track: t,
                blocked: false,
                featured: false,
                wish: Quality::High,
                layers: layers(),
                current_rank: Some(2),
            })
            .collect()
    }

    /// Speaks: `who` is loud for long enough to become the speaker.
    fn speak(r: &mut Room, clock: &mut Clock, who: &str) {
        let now = clock.advance(1100);
        r.handle_loudness(now, [(who, 0.9)]);
        r.handle_audio(now, std::iter::empty());
    }

    #[test]
    fn the_loudest_speaker_is_announced_after_the_hold() {
        let (mut r, _) = room(3, 0, 0);
        let mut clock = Clock(Instant::now());
        let t0 = clock.advance(0);
        // Too quiet: nobody.
        r.handle_loudness(t0, [("p1", 0.3), ("p2", 0.2)]);
        assert_eq!(r.poll_event(), None);
        r.handle_loudness(t0, [("p1", 0.8), ("p2", 0.6)]);
        assert_eq!(r.poll_event(), Some(RoomEvent::ActiveSpeaker("p1".into())));
        // p2 louder, but within p1's hold: p1 stays.
        let t = clock.advance(500);
        r.handle_loudness(t, [("p1", 0.6), ("p2", 0.9)]);
        assert_eq!(r.poll_event(), None);
        // After the hold, clearly louder: p2.
        let t = clock.advance(600);
        r.handle_loudness(t, [("p1", 0.6), ("p2", 0.9)]);
        assert_eq!(r.poll_event(), Some(RoomEvent::ActiveSpeaker("p2".into())));
        assert_eq!(r.speaker().map(String::as_str), Some("p2"));
        // A speaker who leaves speaks no more.
        r.handle_leave("p2");
        assert_eq!(r.speaker(), None);
    }

    #[test]
    fn last_n_shows_the_most_recent_speakers_then_the_first_to_join() {
        let (mut r, ids) = room(6, 2, 0);
        let tracks: Vec<String> = ids.iter().map(|p| format!("v-{p}")).collect();
        let mut clock = Clock(Instant::now());
        let video = videos(&ids, &tracks);
        let shown = |a: &Allocation| -> Vec<usize> {
            (0..a.video.len())
                .filter(|i| a.video[*i] != Some(Quality::Off))
                .map(|i| i + 1)
                .collect()
        };
        // Nobody spoke: the first two to join (p1, p2).
        let now = clock.advance(0);
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(shown(&a), vec![1, 2]);
        assert_eq!(
            a.paused,
            Some(["v-p3", "v-p4", "v-p5"].map(String::from).into())
        );
        // p4 speaks, then p5: they are shown, most recent first.
        speak(&mut r, &mut clock, "p4");
        speak(&mut r, &mut clock, "p5");
        let now = clock.advance(100);
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(shown(&a), vec![4, 5]);
        // p3 speaks: p4 (the oldest speaker) gives its place.
        speak(&mut r, &mut clock, "p3");
        let now = clock.advance(100);
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(shown(&a), vec![3, 5]);
        // Unchanged pause set: not announced again.
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        assert_eq!(r.poll_allocation().expect("allocation").paused, None);
    }

    #[test]
    fn the_loudest_audio_is_heard_and_a_pause_between_words_keeps_it() {
        let (mut r, ids) = room(4, 0, 1);
        let tracks: Vec<String> = ids.iter().map(|p| format!("a-{p}")).collect();
        let mut clock = Clock(Instant::now());
        let t0 = clock.advance(0);
        let view = |loud: [f32; 3], at: Instant| -> Vec<AudioView<'_>> {
            (0..3)
                .map(|i| AudioView {
                    track: &tracks[i + 1],
                    blocked: false,
                    loudness: loud[i],
                    last_level: Some(at),
                    since: t0,
                })
                .collect()
        };
        let heard = |r: &mut Room, loud: [f32; 3], at: Instant| -> Vec<bool> {
            let audio = view(loud, at);
            r.handle_audio(
                at,
                audio.iter().map(|a| {
                    (
                        a.track,
                        Room::audible_now(false, a.loudness, a.last_level, at),
                    )
                }),
            );
            r.handle_allocate(at, "p0", false, &audio, &[], &unconstrained());
            let a = r.poll_allocation().expect("allocation");
            a.audio.iter().map(|q| *q == Quality::High).collect()
        };
        // p2 speaks: only p2 is heard.
        let now = clock.advance(20);
        assert_eq!(heard(&mut r, [0.1, 0.9, 0.1], now), [false, true, false]);
        // A pause between words (p2 quiet for 400 ms) while p3 speaks:
        // p2 keeps the place.
        let now = clock.advance(400);
        assert_eq!(heard(&mut r, [0.1, 0.1, 0.9], now), [false, true, false]);
        // p2 stays silent: after the yield time and its least hold, p3 is heard.
        let mut last = Vec::new();
        for _ in 0..30 {
            let now = clock.advance(100);
            last = heard(&mut r, [0.1, 0.1, 0.9], now);
        }
        assert_eq!(last, [false, false, true]);
        // A track that sends no level cannot be judged: it always goes.
        let now = clock.advance(100);
        let mut audio = view([0.1, 0.1, 0.9], now);
        audio[0].last_level = None;
        r.handle_allocate(now, "p0", false, &audio, &[], &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.audio, vec![Quality::High, Quality::Off, Quality::High]);
    }

    #[test]
    fn a_blocked_track_gets_no_place_and_a_muted_speaker_is_forgotten() {
        let (mut r, ids) = room(3, 1, 1);
        let tracks: Vec<String> = ids.iter().map(|p| format!("v-{p}")).collect();
        let mut clock = Clock(Instant::now());
        speak(&mut r, &mut clock, "p2");
        let mut video = videos(&ids, &tracks);
        let now = clock.advance(100);
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video, vec![Some(Quality::Off), Some(Quality::High)]);
        // The chair mutes p2's video: its last-N place goes to p1.
        video[1].blocked = true;
        r.forget_speaker("p2");
        assert_eq!(r.speaker(), None);
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video, vec![Some(Quality::High), Some(Quality::Off)]);
    }

    #[test]
    fn layers_fit_the_estimate_and_a_trial_raises_one_after_a_quiet_link() {
        let (mut r, ids) = room(3, 0, 0);
        let tracks: Vec<String> = ids.iter().map(|p| format!("v-{p}")).collect();
        let mut clock = Clock(Instant::now());
        speak(&mut r, &mut clock, "p1");
        let mut video = videos(&ids, &tracks);
        // A receiver's REMB of 900 kbit/s (no trials with REMB): both keep
        // their lowest layer (300k), the speaker p1 goes up to the middle
        // (500k) within the budget, p2 stays low.
        let remb = Estimate {
            from_remb: true,
            ..estimate(900_000)
        };
        let now = clock.advance(100);
        r.handle_allocate(now, "p0", false, &[], &video, &remb);
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video, vec![Some(Quality::Medium), Some(Quality::Low)]);
        // Unconstrained: the best layer each asked for.
        r.handle_allocate(now, "p0", false, &[], &video, &unconstrained());
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video, vec![Some(Quality::High), Some(Quality::High)]);
        // 900 kbit/s from congestion control, a quiet link: a trial lifts
        // p1 one layer (High) for its time; it reached the layer, so the
        // rate it needed is accepted.
        video[0].current_rank = Some(1);
        r.handle_allocate(now, "p0", false, &[], &video, &estimate(900_000));
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video[0], Some(Quality::High), "trial layer");
        video[0].current_rank = Some(2);
        let later = clock.advance(3100);
        r.handle_allocate(later, "p0", false, &[], &video, &estimate(900_000));
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.accept_bps, Some(1_650_000));
        // Congestion during the next trial ends it: back to the middle layer.
        let later = clock.advance(4100);
        r.handle_allocate(later, "p0", false, &[], &video, &estimate(900_000));
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video[0], Some(Quality::High), "second trial");
        let congested = Estimate {
            congested_at: Some(clock.advance(500)),
            ..estimate(900_000)
        };
        let later = clock.advance(10);
        r.handle_allocate(later, "p0", false, &[], &video, &congested);
        let a = r.poll_allocation().expect("allocation");
        assert_eq!(a.video[0], Some(Quality::Medium), "failed trial");
        assert_eq!(a.accept_bps, None);
    }

    #[test]
    fn shedding_drops_thumbnail_layers_then_thumbnails_and_keeps_the_rest() {
        let (mut r, ids) = room(4, 0, 0);
        let tracks: Vec<String> = ids.iter().map(|p| format!("v-{p}")).collect();
        let audio_tracks: Vec<String> = ids.iter().map(|p| format!("a-{p}")).collect();
        let mut clock = Clock(Instant::now());
        speak(&mut r, &mut clock, "p2");
        let mut video = videos(&ids, &tracks);
        // p1 is featured (the chair), p2 speaks, p3 is a thumbnail.
        video[0].featured = true;
        let now = clock.advance(100);
        let audio: Vec<AudioView<'_>> = audio_tracks[1..]
            .iter()
            .map(|t| AudioView {
                track: t,
                blocked: false,
                loudness: 0.0,
                last_level: None,
                since: now,
            })
            .collect();
        let decide = |r: &mut Room| {
            r.handle_allocate(now, "p0", false, &audio, &video, &unconstrained());
            r.poll_allocation().expect("allocation")
        };
        assert!(!r.set_shed(Shed::None));
        let a = decide(&mut r);
        assert_eq!(a.video, vec![Some(Quality::High); 3]);
        assert!(r.set_shed(Shed::ThumbnailLayers));
        let a = decide(&mut r);
        assert_eq!(
            a.video,
            vec![Some(Quality::High), Some(Quality::High), Some(Quality::Low)]
        );
        assert!(r.set_shed(Shed::Thumbnails));
        let a = decide(&mut r);
        assert_eq!(
            a.video,
            vec![Some(Quality::High), Some(Quality::High), Some(Quality::Off)]
        );
        assert_eq!(a.paused, Some(["v-p3".to_owned()].into()));
        // Audio is never shed.
        assert_eq!(a.audio, vec![Quality::High; 3]);
        // Back to normal: the thumbnail comes back.
        r.set_shed(Shed::None);
        let a = decide(&mut r);
        assert_eq!(a.video[2], Some(Quality::High));
        assert_eq!(a.paused, Some(BTreeSet::new()));
    }
}
