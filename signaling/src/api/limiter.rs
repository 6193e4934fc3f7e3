//! Login protection, in front of the password hash:
//!
//! - [`LoginLimiter`]: the throttle. Every attempt is counted *before* it is
//!   hashed, per (normalized username, client address) and per client
//!   address, in a sliding [`WINDOW`]: past [`PAIR_MAX_ATTEMPTS`] failed
//!   attempts for one username from one address, or [`ADDRESS_MAX_ATTEMPTS`]
//!   from one address (any usernames), further attempts from there are
//!   refused (429) without hashing. A success clears its pair and gives its
//!   address attempt back. An account is never throttled as a whole, so a
//!   flood from one address cannot lock the real `admin` out from another.
//!   Both tables hold at most [`MAX_KEYS`] keys (the oldest go first).
//! - [`HashGate`]: at most N password hashes at once (Argon2id takes 19 MiB
//!   each, from a pool in `cabinet`); a login that cannot start within
//!   [`GATE_WAIT`] gets 503. Once no hash has run for [`RELEASE_AFTER`], the
//!   pool is freed and the heap given back to the system.
//! - [`client_ip`]: the client's address, from `X-Forwarded-For` only when
//!   the TCP peer is a trusted proxy.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::IpNet;

/// Failed attempts allowed per (username, address) and window.
pub const PAIR_MAX_ATTEMPTS: usize = 5;
/// Failed attempts allowed per address (any usernames) and window.
pub const ADDRESS_MAX_ATTEMPTS: usize = 30;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept per table; past that, expired keys go, then the oldest.
pub const MAX_KEYS: usize = 10_000;
/// Longest username accepted at all (longer ones are refused before
/// anything else, and never stored).
pub const MAX_USERNAME_CHARS: usize = 64;
/// How long a login waits for a free hashing slot before 503.
pub const GATE_WAIT: Duration = Duration::from_secs(2);
/// Quiet time after the last hash before its memory is given back.
pub const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// The throttle's key for a username: trimmed and lowercase (as accounts
/// are stored).
pub fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// The throttle's key for an address: IPv4 as is (IPv4-mapped IPv6 too),
/// IPv6 by its /64 (one host usually holds a whole /64).
fn address_key(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !(u128::MAX >> 64);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
        v4 => v4,
    })
}

/// Attempts per key in the window, bounded in keys.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, VecDeque<Instant>>,
    max_attempts: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(max_attempts: usize) -> Table<K> {
        Table {
            map: HashMap::new(),
            max_attempts,
        }
    }

    /// `Some(seconds to wait)` when `key` is blocked now.
    fn blocked(&mut self, key: &K, now: Instant) -> Option<u64> {
        let q = self.map.get_mut(key)?;
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.is_empty() {
            self.map.remove(key);
            return None;
        }
        if q.len() < self.max_attempts {
            return None;
        }
        let oldest = q.front().copied().unwrap_or(now);
        Some(
            WINDOW
                .saturating_sub(now.duration_since(oldest))
                .as_secs()
                .max(1),
        )
    }

    fn add(&mut self, key: K, now: Instant) {
        if !self.map.contains_key(&key) && self.map.len() >= MAX_KEYS {
            self.make_room(now);
        }
        let q = self.map.entry(key).or_default();
        q.push_back(now);
        while q.len() > self.max_attempts {
            q.pop_front();
        }
    }

    /// Gives the newest attempt of `key` back.
    fn refund(&mut self, key: &K) {
        if let Some(q) = self.map.get_mut(key) {
            q.pop_back();
            if q.is_empty() {
                self.map.remove(key);
            }
        }
    }

    fn clear(&mut self, key: &K) {
        self.map.remove(key);
    }

    /// Drops expired keys; if that is not enough, the tenth of the keys
    /// whose last attempt is oldest.
    fn make_room(&mut self, now: Instant) {
        self.map
            .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        if self.map.len() < MAX_KEYS {
            return;
        }
        let mut last: Vec<Instant> = self
            .map
            .values()
            .filter_map(|q| q.back().copied())
            .collect();
        if last.is_empty() {
            return;
        }
        let n = (MAX_KEYS / 10).min(last.len() - 1);
        let (_, cut, _) = last.select_nth_unstable(n);
        let cut = *cut;
        self.map.retain(|_, q| q.back().is_some_and(|t| *t > cut));
    }
}

/// The two tables under one lock.
#[derive(Debug)]
struct Tables {
    pairs: Table<(String, Option<IpAddr>)>,
    addresses: Table<Option<IpAddr>>,
}

/// The login throttle (see the module documentation).
#[derive(Debug)]
pub struct LoginLimiter {
    tables: Mutex<Tables>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new()
    }
}

impl LoginLimiter {
    pub fn new() -> LoginLimiter {
        LoginLimiter {
            tables: Mutex::new(Tables {
                pairs: Table::new(PAIR_MAX_ATTEMPTS),
                addresses: Table::new(ADDRESS_MAX_ATTEMPTS),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt for `username` (a [`username_key`]) from `ip`,
    /// before it is checked: `Err(seconds to wait)` when the pair or the
    /// address is blocked (then nothing is counted and nothing may be
    /// hashed).
    pub fn attempt(&self, username: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let addr = address_key(ip);
        let pair = (username.to_owned(), addr);
        let mut t = self.lock();
        let wait = [t.pairs.blocked(&pair, now), t.addresses.blocked(&addr, now)]
            .into_iter()
            .flatten()
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        t.pairs.add(pair, now);
        t.addresses.add(addr, now);
        Ok(())
    }

    /// The attempt succeeded: the pair starts afresh, and the address gets
    /// the attempt back.
    pub fn succeeded(&self, username: &str, ip: Option<IpAddr>) {
        let addr = address_key(ip);
        let mut t = self.lock();
        t.pairs.clear(&(username.to_owned(), addr));
        t.addresses.refund(&addr);
    }

    /// The attempt was never checked (the server was too busy): it does not
    /// count.
    pub fn not_checked(&self, username: &str, ip: Option<IpAddr>) {
        let addr = address_key(ip);
        let mut t = self.lock();
        t.pairs.refund(&(username.to_owned(), addr));
        t.addresses.refund(&addr);
    }

    /// Keys held (pairs, addresses).
    pub fn len(&self) -> (usize, usize) {
        let t = self.lock();
        (t.pairs.map.len(), t.addresses.map.len())
    }
}

/// At most N password hashes at once (see the module documentation).
#[derive(Debug)]
pub struct HashGate {
    sem: Arc<Semaphore>,
    permits: usize,
    wait: Duration,
    /// Slots taken so far: tells a pending release whether hashes ran since.
    entered: Arc<AtomicU64>,
}

impl HashGate {
    /// A gate of `permits` slots (0: half the CPU cores, at least one, so
    /// a flood of logins leaves the media plane the other half); a caller
    /// waits up to `wait` for one.
    pub fn new(permits: usize, wait: Duration) -> HashGate {
        let permits = if permits == 0 {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        } else {
            permits
        };
        HashGate {
            sem: Arc::new(Semaphore::new(permits)),
            permits,
            wait,
            entered: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Slots of the gate.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// A slot, or `None` when none came free within the wait.
    pub async fn enter(&self) -> Option<HashPermit> {
        let p = tokio::time::timeout(self.wait, self.sem.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        self.entered.fetch_add(1, Ordering::SeqCst);
        Some(HashPermit {
            permit: Some(p),
            sem: self.sem.clone(),
            permits: self.permits,
            entered: self.entered.clone(),
        })
    }
}

/// One hashing slot; move it into the task that hashes, so the slot stays
/// taken until the hash is done even if the client goes away.
#[derive(Debug)]
pub struct HashPermit {
    permit: Option<OwnedSemaphorePermit>,
    sem: Arc<Semaphore>,
    permits: usize,
    entered: Arc<AtomicU64>,
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.sem.available_permits() != self.permits {
            return;
        }
        // The last hash for now: if none starts for a moment, give its
        // memory back (each slot holds 19 MiB, which glibc would keep).
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (sem, permits, entered) = (self.sem.clone(), self.permits, self.entered.clone());
        let seen = entered.load(Ordering::SeqCst);
        rt.spawn(async move {
            tokio::time::sleep(RELEASE_AFTER).await;
            if entered.load(Ordering::SeqCst) == seen && sem.available_permits() == permits {
                let _ = tokio::task::spawn_blocking(|| {
                    cabinet::Store::release_password_memory();
                    sfu::release_freed_memory();
                })
                .await;
            }
        });
    }
}

/// The client's address: the TCP `peer`, or, when the peer is one of the
/// `trusted` proxies, the nearest address in `X-Forwarded-For` (read from
/// the right) that is not a trusted proxy itself.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, maybe with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn pair_blocked_before_hashing_and_other_address_free() {
        let l = LoginLimiter::new();
        for _ in 0..PAIR_MAX_ATTEMPTS {
            assert!(l.attempt("admin", ip(1)).is_ok());
        }
        let wait = l.attempt("admin", ip(1)).expect_err("blocked");
        assert!((1..=60).contains(&wait));
        assert!(l.attempt("other", ip(1)).is_ok(), "another username");
        assert!(l.attempt("admin", ip(2)).is_ok(), "another address");
        l.succeeded("admin", ip(2));
        assert_eq!(l.len(), (2, 1), "the success left nothing for 10.0.0.2");
    }

    #[test]
    fn address_blocked_across_usernames_and_success_refunds() {
        let l = LoginLimiter::new();
        for i in 0..ADDRESS_MAX_ATTEMPTS - 1 {
            assert!(l.attempt(&format!("u{i}"), ip(1)).is_ok());
        }
        assert!(l.attempt("admin", ip(1)).is_ok());
        l.succeeded("admin", ip(1));
        assert!(l.attempt("last", ip(1)).is_ok(), "the success was refunded");
        assert!(l.attempt("admin", ip(1)).is_err(), "the address is full");
        assert!(l.attempt("admin", ip(3)).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        let m: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(address_key(Some(m)), ip(1));
    }

    #[test]
    fn tables_stay_bounded() {
        let mut t: Table<u32> = Table::new(5);
        let now = Instant::now();
        for i in 0..(MAX_KEYS as u32 * 3) {
            t.add(i, now + Duration::from_micros(u64::from(i)));
        }
        assert!(t.map.len() <= MAX_KEYS);
        assert!(
            t.map.contains_key(&(MAX_KEYS as u32 * 3 - 1)),
            "the newest stays"
        );
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = vec![IpNet::parse("192.168.1.0/24").expect("net")];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().expect("hv"));
        let proxy: Option<IpAddr> = Some([192, 168, 1, 5].into());
        let stranger: Option<IpAddr> = Some([9, 9, 9, 9].into());
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &h, &trusted), Some([5, 6, 7, 8].into()));
        h.insert(
            "x-forwarded-for",
            "1.2.3.4, 192.168.1.7:8080".parse().expect("hv"),
        );
        assert_eq!(client_ip(proxy, &h, &trusted), Some([1, 2, 3, 4].into()));
        h.insert("x-forwarded-for", "garbage".parse().expect("hv"));
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[]), proxy);
    }
}
