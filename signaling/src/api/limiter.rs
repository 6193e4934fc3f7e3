//! Login throttling: at most [`MAX_FAILURES`] failed logins per username and
//! client address in a sliding [`WINDOW`]; past that, every attempt (even
//! with the right password) is refused until the window has moved on.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts allowed per window.
pub const MAX_FAILURES: usize = 5;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept before old ones are swept.
const SWEEP_AT: usize = 10_000;

type Key = (String, Option<IpAddr>);

/// Failed logins per (username, address).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new() -> LoginLimiter {
        LoginLimiter::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(seconds to wait)` when this key is blocked now.
    pub fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.lock();
        let key = (username.to_owned(), ip);
        let Some(q) = map.get_mut(&key) else {
            return Ok(());
        };
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= MAX_FAILURES {
            let oldest = q.front().copied().unwrap_or(now);
            let wait = WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        if q.is_empty() {
            map.remove(&key);
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub fn failed(&self, username: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = map.entry((username.to_owned(), ip)).or_default();
        q.push_back(now);
        while q.len() > MAX_FAILURES {
            q.pop_front();
        }
    }

    /// A successful login clears the key.
    pub fn succeeded(&self, username: &str, ip: Option<IpAddr>) {
        self.lock().remove(&(username.to_owned(), ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_five_failures_per_key() {
        let l = LoginLimiter::new();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(l.check("a", ip).is_ok());
            l.failed("a", ip);
        }
        let wait = l.check("a", ip).expect_err("blocked");
        assert!((1..=60).contains(&wait));
        assert!(l.check("b", ip).is_ok(), "another username");
        assert!(
            l.check("a", Some(IpAddr::from([10, 0, 0, 2]))).is_ok(),
            "another address"
        );
        l.succeeded("a", ip);
        assert!(l.check("a", ip).is_ok());
    }
}
