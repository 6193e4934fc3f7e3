//! Overload without collapse: when the engine is short of CPU, rooms shed
//! video in the order a chair would choose ([`crate::room::Shed`]: the
//! high layers of thumbnails, then thumbnails), keeping every audio, the
//! featured participant's and the speaker's video, and every handshake
//! (STUN and DTLS skip the full media queue: `net`'s readers hand them to
//! the engine's priority queue, which it drains first).
//!
//! Short of CPU means, over a window of [`WINDOW`]: the engine was busy
//! (handling input and draining its connections, not waiting) for at least
//! `busy_high` of the time, or datagrams were dropped because its queue
//! was full. Each such window sheds one step more (at most every
//! `step_every`); `calm_for` of windows under `busy_low` without drops
//! gives one step back ([`OverloadConfig`], defaults 85 %, 55 %, 2 s, 5 s).

use std::time::{Duration, Instant};

use super::Engine;
use crate::room::Shed;
use crate::OverloadConfig;

/// The window the engine's load is judged over.
const WINDOW: Duration = Duration::from_secs(1);

/// The engine's load, as measured by its own loop.
#[derive(Debug)]
pub(super) struct Load {
    config: OverloadConfig,
    window_start: Instant,
    busy: Duration,
    /// Datagrams dropped (process-wide counter) at the window's start.
    drops_at_start: u64,
    /// What is shed now, and since when it last changed.
    shed: Shed,
    changed: Instant,
    /// Since when the windows have been calm.
    calm_since: Option<Instant>,
    /// Busy share of the last window (for the stats).
    pub last_busy: f64,
}

impl Load {
    pub fn new(now: Instant, config: OverloadConfig) -> Load {
        Load {
            config,
            window_start: now,
            busy: Duration::ZERO,
            drops_at_start: 0,
            shed: Shed::None,
            changed: now,
            calm_since: None,
            last_busy: 0.0,
        }
    }

    /// The loop was busy for `d`.
    pub fn busy(&mut self, d: Duration) {
        self.busy += d;
    }

    pub fn shed(&self) -> Shed {
        self.shed
    }

    /// At the end of a window: the new level when it changes.
    pub fn judge(&mut self, now: Instant, drops: u64) -> Option<Shed> {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return None;
        }
        let share = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        let dropped = drops.saturating_sub(self.drops_at_start);
        self.last_busy = share;
        self.window_start = now;
        self.busy = Duration::ZERO;
        self.drops_at_start = drops;
        let next = if share >= self.config.busy_high || dropped > 0 {
            self.calm_since = None;
            if now.saturating_duration_since(self.changed) < self.config.step_every {
                return None;
            }
            match self.shed {
                Shed::None => Shed::ThumbnailLayers,
                _ => Shed::Thumbnails,
            }
        } else if share < self.config.busy_low {
            let since = *self.calm_since.get_or_insert(now);
            if now.saturating_duration_since(since) < self.config.calm_for {
                return None;
            }
            self.calm_since = Some(now);
            match self.shed {
                Shed::Thumbnails => Shed::ThumbnailLayers,
                _ => Shed::None,
            }
        } else {
            self.calm_since = None;
            return None;
        };
        if next == self.shed {
            return None;
        }
        tracing::warn!(from = ?self.shed, to = ?next, busy = share, dropped, "media engine load: shedding");
        self.shed = next;
        self.changed = now;
        Some(next)
    }
}

impl Engine {
    /// Judges the load at the end of each window and sets every room's
    /// shedding to match.
    pub(super) fn overload_tick(&mut self, now: Instant) {
        let drops = crate::net::datagrams_dropped();
        let Some(shed) = self.load.judge(now, drops) else {
            return;
        };
        self.stats.shed_changes += 1;
        for room in self.rooms.values_mut() {
            room.set_shed(shed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_engine_sheds_step_by_step_and_recovers_when_calm() {
        let t0 = Instant::now();
        let mut l = Load::new(t0, OverloadConfig::default());
        let mut now = t0;
        let mut window = |l: &mut Load, busy_ms: u64, drops: u64| {
            l.busy(Duration::from_millis(busy_ms));
            now += Duration::from_millis(1000);
            l.judge(now, drops)
        };
        // Busy 95 %: the first step waits STEP_EVERY after the start.
        assert_eq!(window(&mut l, 950, 0), None);
        assert_eq!(window(&mut l, 950, 0), Some(Shed::ThumbnailLayers));
        assert_eq!(window(&mut l, 950, 0), None, "too soon for another step");
        // Drops count as overload even when the loop looked less busy.
        assert_eq!(window(&mut l, 700, 10), Some(Shed::Thumbnails));
        assert_eq!(window(&mut l, 950, 10), None, "nothing more to shed");
        // In between: stays.
        for _ in 0..10 {
            assert_eq!(window(&mut l, 700, 10), None);
        }
        // Calm for CALM_FOR: one step back, then another.
        let mut back = Vec::new();
        for _ in 0..12 {
            if let Some(s) = window(&mut l, 200, 10) {
                back.push(s);
            }
        }
        assert_eq!(back, vec![Shed::ThumbnailLayers, Shed::None]);
        assert_eq!(l.shed(), Shed::None);
    }

    #[test]
    fn the_thresholds_are_settings() {
        let t0 = Instant::now();
        let config = OverloadConfig {
            busy_high: 0.6,
            busy_low: 0.3,
            step_every: Duration::from_secs(1),
            calm_for: Duration::from_secs(3),
        };
        let mut l = Load::new(t0, config);
        let mut now = t0;
        let mut window = |l: &mut Load, busy_ms: u64| {
            l.busy(Duration::from_millis(busy_ms));
            now += Duration::from_millis(1000);
            l.judge(now, 0)
        };
        // 70 % is overloaded at 0.6 (the default, 0.85, would not shed),
        // and a step may follow a second after the last.
        assert_eq!(window(&mut l, 700), Some(Shed::ThumbnailLayers));
        assert_eq!(window(&mut l, 700), Some(Shed::Thumbnails));
        // 40 % is neither overloaded nor calm.
        for _ in 0..5 {
            assert_eq!(window(&mut l, 400), None);
        }
        // Calm (20 %) for 3 s: one step back.
        let back: Vec<_> = (0..4).filter_map(|_| window(&mut l, 200)).collect();
        assert_eq!(back, vec![Shed::ThumbnailLayers]);
    }
}
