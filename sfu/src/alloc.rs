//! What each subscriber receives: the decisions of the allocation, as pure
//! functions the engine calls on its tick (and the unit tests call with a
//! synthetic clock).
//!
//! - [`select_audio`]: the N loudest audio tracks, with hysteresis: a track is
//!   selected while it has been audible within the last [`AUDIO_HOLD`] (so a
//!   pause between words does not cut it), and a selected track gives its
//!   place to a louder one only when it has been inaudible for
//!   [`AUDIO_YIELD_AFTER`] and has held the place for [`AUDIO_MIN_SELECTED`].
//! - [`last_n`]: the publishers whose video a subscriber receives: the most
//!   recent speakers first, then the others in the order they joined.
//! - [`allocate`]: the simulcast layer of each video track within the
//!   bandwidth estimate: every track keeps its lowest layer (a smaller picture
//!   rather than a frozen one), then tracks are raised in priority order
//!   (active speaker, larger tiles, recent speakers) as far as the budget goes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Smoothed loudness (0..1) above which a track is audible (about -55 dBov).
pub(crate) const AUDIBLE: f32 = 0.55;
/// A selected track stays selected this long after it was last audible.
pub(crate) const AUDIO_HOLD: Duration = Duration::from_millis(1500);
/// Least time a track holds its place before a louder one may take it.
pub(crate) const AUDIO_MIN_SELECTED: Duration = Duration::from_secs(2);
/// A selected track gives its place to a louder one only after being
/// inaudible this long (a pause between words is shorter).
pub(crate) const AUDIO_YIELD_AFTER: Duration = Duration::from_millis(600);
/// How much louder a newcomer must be to take a place.
pub(crate) const AUDIO_MARGIN: f32 = 0.1;
/// Bits per second reserved for each forwarded audio track.
pub(crate) const AUDIO_BPS: u64 = 50_000;

/// One audio track as the selection sees it.
#[derive(Debug, Clone)]
pub(crate) struct AudioCandidate {
    pub track: String,
    /// Smoothed loudness, 0 (silence) to 1.
    pub loudness: f32,
    /// When the track was last audible.
    pub last_audible: Option<Instant>,
}

/// A selected audio track and since when.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selected {
    pub track: String,
    pub since: Instant,
}

/// Updates `selected` (at most `n` tracks) from the candidates; returns
/// whether it changed. `n == 0` is handled by the caller (everything goes).
pub(crate) fn select_audio(
    selected: &mut Vec<Selected>,
    candidates: &[AudioCandidate],
    n: usize,
    now: Instant,
) -> bool {
    let before = selected.clone();
    let active = |c: &AudioCandidate| {
        c.last_audible
            .is_some_and(|t| now.saturating_duration_since(t) < AUDIO_HOLD)
    };
    let find = |id: &str| candidates.iter().find(|c| c.track == id);
    // Drop the gone and those silent for longer than the hold.
    selected.retain(|s| find(&s.track).is_some_and(active));
    let mut waiting: Vec<&AudioCandidate> = candidates
        .iter()
        .filter(|c| active(c) && !selected.iter().any(|s| s.track == c.track))
        .collect();
    waiting.sort_by(|a, b| b.loudness.total_cmp(&a.loudness));
    for c in waiting {
        if selected.len() < n {
            selected.push(Selected {
                track: c.track.clone(),
                since: now,
            });
            continue;
        }
        // Full: the quietest place that may be given up (inaudible for a
        // while, held long enough), if the newcomer is clearly louder.
        let victim = selected
            .iter()
            .enumerate()
            .filter_map(|(i, s)| find(&s.track).map(|c| (i, s, c)))
            .filter(|(_, s, c)| {
                let quiet_for = c
                    .last_audible
                    .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
                c.loudness < AUDIBLE
                    && quiet_for >= AUDIO_YIELD_AFTER
                    && now.saturating_duration_since(s.since) >= AUDIO_MIN_SELECTED
            })
            .map(|(i, s, c)| (i, s, c.loudness))
            .min_by(|a, b| a.2.total_cmp(&b.2));
        if let Some((i, _, l)) = victim {
            if c.loudness > l + AUDIO_MARGIN {
                selected[i] = Selected {
                    track: c.track.clone(),
                    since: now,
                };
            }
        }
    }
    *selected != before
}

/// The publishers (at most `n`; 0: all) whose video a subscriber receives.
/// `candidates` are in join order; `speaking` is most recent first.
pub(crate) fn last_n(candidates: &[String], speaking: &[String], n: usize) -> BTreeSet<String> {
    if n == 0 || candidates.len() <= n {
        return candidates.iter().cloned().collect();
    }
    let mut out = BTreeSet::new();
    for p in speaking.iter().chain(candidates.iter()) {
        if out.len() >= n {
            break;
        }
        if candidates.contains(p) {
            out.insert(p.clone());
        }
    }
    out
}

/// One video track as the allocation sees it.
#[derive(Debug, Clone)]
pub(crate) struct VideoCandidate {
    /// The best layer rank the subscriber's display asked for (0..2).
    pub wish: u8,
    /// Higher goes first: (active speaker, wish, recency of speaking).
    pub priority: (bool, u8, u32),
    /// The track's layers: (rank, bits per second), lowest first; never empty.
    pub layers: Vec<(u8, u64)>,
}

/// The layer rank each track may have (`None`: no cap) within `budget`
/// bits per second (`None`: unconstrained), after `reserved` for audio.
/// The second value says whether the track got less than it wished.
pub(crate) fn allocate(
    budget: Option<u64>,
    reserved: u64,
    tracks: &[VideoCandidate],
) -> Vec<(Option<u8>, bool)> {
    let Some(budget) = budget else {
        return vec![(None, false); tracks.len()];
    };
    let lowest = |t: &VideoCandidate| t.layers.first().map(|l| l.1).unwrap_or(0);
    let floor: u64 = tracks.iter().map(lowest).sum();
    let mut left = budget.saturating_sub(reserved).saturating_sub(floor);
    let mut order: Vec<usize> = (0..tracks.len()).collect();
    order.sort_by(|a, b| tracks[*b].priority.cmp(&tracks[*a].priority));
    let mut out: Vec<(Option<u8>, bool)> = tracks
        .iter()
        .map(|t| (Some(t.layers.first().map(|l| l.0).unwrap_or(0)), false))
        .collect();
    for i in order {
        let t = &tracks[i];
        let base = lowest(t);
        let mut chosen = t.layers.first().map(|l| l.0).unwrap_or(0);
        let mut cost = 0;
        for &(rank, bps) in &t.layers {
            if rank > t.wish {
                break;
            }
            let extra = bps.saturating_sub(base);
            if extra <= left {
                chosen = rank;
                cost = extra;
            }
        }
        left -= cost;
        let best_wished = t
            .layers
            .iter()
            .filter(|l| l.0 <= t.wish)
            .map(|l| l.0)
            .max()
            .unwrap_or(chosen);
        out[i] = (Some(chosen), chosen < best_wished);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, loudness: f32, audible_ago: Option<u64>, now: Instant) -> AudioCandidate {
        AudioCandidate {
            track: id.into(),
            loudness,
            last_audible: audible_ago.map(|ms| now - Duration::from_millis(ms)),
        }
    }

    fn ids(s: &[Selected]) -> Vec<&str> {
        let mut v: Vec<&str> = s.iter().map(|x| x.track.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_loudest_are_selected_and_silence_is_not() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut sel = Vec::new();
        let c = [
            cand("a", 0.9, Some(0), t0),
            cand("b", 0.7, Some(0), t0),
            cand("c", 0.8, Some(0), t0),
            cand("silent", 0.1, None, t0),
        ];
        assert!(select_audio(&mut sel, &c, 2, t0));
        assert_eq!(ids(&sel), vec!["a", "c"]);
        // Nothing changes while nothing changes.
        assert!(!select_audio(
            &mut sel,
            &c,
            2,
            t0 + Duration::from_millis(100)
        ));
        // Room for everybody audible, never for the silent.
        let mut sel = Vec::new();
        select_audio(&mut sel, &c, 5, t0);
        assert_eq!(ids(&sel), vec!["a", "b", "c"]);
    }

    #[test]
    fn a_pause_between_words_keeps_the_place() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut sel = Vec::new();
        select_audio(
            &mut sel,
            &[cand("a", 0.9, Some(0), t0), cand("b", 0.8, Some(0), t0)],
            1,
            t0,
        );
        assert_eq!(ids(&sel), vec!["a"]);
        // "a" pauses for 600 ms (quiet now, audible 600 ms ago); "b" is loud:
        // "a" has not held its place for 2 s yet, so it stays.
        let t1 = t0 + Duration::from_millis(600);
        let c = [cand("a", 0.3, Some(600), t1), cand("b", 0.9, Some(0), t1)];
        assert!(!select_audio(&mut sel, &c, 1, t1));
        assert_eq!(ids(&sel), vec!["a"]);
        // Later, held 2 s, again a short pause (400 ms): still kept.
        let t2 = t0 + Duration::from_millis(2100);
        let c = [cand("a", 0.3, Some(400), t2), cand("b", 0.9, Some(0), t2)];
        assert!(!select_audio(&mut sel, &c, 1, t2));
        // Quiet for 700 ms while "b" speaks: "b" takes the place.
        let t3 = t0 + Duration::from_millis(2400);
        let c = [cand("a", 0.2, Some(700), t3), cand("b", 0.9, Some(0), t3)];
        assert!(select_audio(&mut sel, &c, 1, t3));
        assert_eq!(ids(&sel), vec!["b"]);
    }

    #[test]
    fn someone_speaking_is_not_cut_for_someone_slightly_louder() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut sel = Vec::new();
        select_audio(&mut sel, &[cand("a", 0.7, Some(0), t0)], 1, t0);
        let t1 = t0 + Duration::from_secs(5);
        // "a" is audible now: never displaced, however loud "b" is.
        let c = [cand("a", 0.7, Some(0), t1), cand("b", 0.99, Some(0), t1)];
        assert!(!select_audio(&mut sel, &c, 1, t1));
        // "a" goes quiet, but "b" is barely louder: no flapping.
        let c = [cand("a", 0.5, Some(200), t1), cand("b", 0.55, Some(0), t1)];
        assert!(!select_audio(&mut sel, &c, 1, t1));
        // After the hold, silence frees the place.
        let t2 = t1 + AUDIO_HOLD + Duration::from_millis(100);
        let c = [
            cand("a", 0.2, Some(AUDIO_HOLD.as_millis() as u64 + 100), t2),
            cand("b", 0.55, Some(0), t2),
        ];
        assert!(select_audio(&mut sel, &c, 1, t2));
        assert_eq!(ids(&sel), vec!["b"]);
    }

    #[test]
    fn gone_tracks_leave_the_selection() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut sel = Vec::new();
        select_audio(&mut sel, &[cand("a", 0.9, Some(0), t0)], 2, t0);
        assert!(select_audio(&mut sel, &[], 2, t0));
        assert!(sel.is_empty());
    }

    #[test]
    fn last_n_prefers_recent_speakers_then_join_order() {
        let c: Vec<String> = ["p1", "p2", "p3", "p4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(last_n(&c, &[], 2), set(&["p1", "p2"]));
        assert_eq!(last_n(&c, &["p4".into()], 2), set(&["p4", "p1"]));
        assert_eq!(
            last_n(&c, &["p4".into(), "p3".into(), "p1".into()], 2),
            set(&["p4", "p3"])
        );
        // A speaker who is not a candidate (left, or its video is off) is skipped.
        assert_eq!(
            last_n(&c, &["gone".into(), "p3".into()], 2),
            set(&["p3", "p1"])
        );
        assert_eq!(last_n(&c, &[], 0).len(), 4);
        assert_eq!(last_n(&c, &[], 9).len(), 4);
    }

    fn simulcast(wish: u8, priority: (bool, u8, u32)) -> VideoCandidate {
        VideoCandidate {
            wish,
            priority,
            layers: vec![(0, 150_000), (1, 500_000), (2, 1_500_000)],
        }
    }

    #[test]
    fn unconstrained_gives_every_wish() {
        let t = [simulcast(2, (false, 2, 0)), simulcast(0, (false, 0, 0))];
        assert_eq!(allocate(None, 0, &t), vec![(None, false), (None, false)]);
    }

    #[test]
    fn a_small_budget_gives_the_lowest_layer_not_nothing() {
        let t = [simulcast(2, (true, 2, 0)), simulcast(2, (false, 2, 0))];
        // 300 kbit/s: both on the lowest layer (even though 2 x 150k + audio
        // is over the budget: a small picture rather than none).
        assert_eq!(
            allocate(Some(300_000), 2 * AUDIO_BPS, &t),
            vec![(Some(0), true), (Some(0), true)]
        );
    }

    #[test]
    fn the_active_speaker_is_raised_first() {
        let t = [simulcast(2, (false, 2, 1)), simulcast(2, (true, 2, 0))];
        // 1 Mbit/s - 100k audio - 300k floors = 600k to share: the speaker
        // gets h (350k more), the other stays at q.
        assert_eq!(
            allocate(Some(1_000_000), 2 * AUDIO_BPS, &t),
            vec![(Some(0), true), (Some(1), true)]
        );
        // 2.5 Mbit/s: the speaker gets f, the other h.
        assert_eq!(
            allocate(Some(2_500_000), 2 * AUDIO_BPS, &t),
            vec![(Some(1), true), (Some(2), false)]
        );
    }

    #[test]
    fn a_wish_below_the_budget_is_not_exceeded() {
        let t = [simulcast(1, (false, 1, 0))];
        assert_eq!(allocate(Some(10_000_000), 0, &t), vec![(Some(1), false)]);
        // A track with one layer is never limited.
        let single = VideoCandidate {
            wish: 2,
            priority: (false, 2, 0),
            layers: vec![(1, 800_000)],
        };
        assert_eq!(
            allocate(Some(100_000), 0, &[single]),
            vec![(Some(1), false)]
        );
    }
}
