//! Login rate limiting.
//!
//! Guesses are counted per (client, username) and per client, where a
//! client is its address (an IPv6 address by its /64, which one host
//! usually holds whole). Counting per username alone would let anyone lock
//! `admin` out from everywhere; per pair, an attacker locks out only
//! themselves. An attempt reserves its guess before the password is
//! checked, so parallel requests cannot all pass one check; a success
//! gives back only its own pair's guesses. The map is bounded: when full,
//! the entry seen least recently is dropped, so unique usernames cannot
//! grow it without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest username kept as a key; longer ones are cut (no real username
/// is longer: they are at most 64 characters).
const USERNAME_KEY_CHARS: usize = 64;

/// Failures kept track of, at most.
const MAX_KEYS: usize = 10_000;

pub struct LoginLimiter {
    /// Guesses per (client, username) within the window.
    per_pair: usize,
    /// Guesses per client, across usernames, within the window.
    per_client: usize,
    window: Duration,
    guesses: Mutex<Guesses>,
}

struct Guesses {
    /// Each key's guesses still in the window, and when it was last touched.
    by_key: HashMap<String, (Vec<Instant>, Instant)>,
    max_keys: usize,
}

impl Guesses {
    fn live(&mut self, key: &str, now: Instant, window: Duration) -> usize {
        match self.by_key.get_mut(key) {
            Some((times, _)) => {
                times.retain(|t| now.duration_since(*t) < window);
                times.len()
            }
            None => 0,
        }
    }

    fn push(&mut self, key: String, at: Instant) {
        if !self.by_key.contains_key(&key) && self.by_key.len() >= self.max_keys {
            if let Some(oldest) = self
                .by_key
                .iter()
                .min_by_key(|(_, (_, touched))| *touched)
                .map(|(k, _)| k.clone())
            {
                self.by_key.remove(&oldest);
            }
        }
        let entry = self.by_key.entry(key).or_insert_with(|| (Vec::new(), at));
        entry.0.push(at);
        entry.1 = at;
    }

    fn take_back(&mut self, key: &str, at: Instant) {
        if let Some((times, _)) = self.by_key.get_mut(key) {
            if let Some(i) = times.iter().position(|t| *t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
}

impl Default for LoginLimiter {
    /// Five guesses per client and username, twenty per client, in five minutes.
    fn default() -> Self {
        Self::new(5, 20, Duration::from_secs(300))
    }
}

/// A guess counted before the password is checked.
#[must_use = "a guess is counted as failed unless it is given back"]
pub struct Guess {
    limiter: Arc<LoginLimiter>,
    pair: String,
    client: String,
}

impl Guess {
    /// The password was right: this guess and the earlier failures of the
    /// same client and username no longer count. The client's guesses at
    /// other usernames still do.
    pub fn succeeded(self) {
        if let Ok(mut g) = self.limiter.guesses.lock() {
            if let Some((times, _)) = g.by_key.remove(&self.pair) {
                for t in times {
                    g.take_back(&self.client, t);
                }
            }
        }
    }
}

/// The key of a client: its address, an IPv6 one by its /64.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl LoginLimiter {
    pub fn new(per_pair: usize, per_client: usize, window: Duration) -> Self {
        Self {
            per_pair,
            per_client,
            window,
            guesses: Mutex::new(Guesses {
                by_key: HashMap::new(),
                max_keys: MAX_KEYS,
            }),
        }
    }

    /// At most `n` keys tracked (the default is 10,000).
    pub fn with_max_keys(self, n: usize) -> Self {
        if let Ok(mut g) = self.guesses.lock() {
            g.max_keys = n;
        }
        self
    }

    /// Counts a guess of `username` from `client` (see [`client_key`]), or
    /// `None` when the pair or the client has used up its guesses.
    pub fn reserve(self: &Arc<Self>, client: &str, username: &str) -> Option<Guess> {
        let name: String = username.chars().take(USERNAME_KEY_CHARS).collect();
        let pair = format!("{client}\u{1f}{name}");
        let client = format!("{client}\u{1f}");
        let now = Instant::now();
        let mut g = self.guesses.lock().ok()?;
        if g.live(&pair, now, self.window) >= self.per_pair
            || g.live(&client, now, self.window) >= self.per_client
        {
            return None;
        }
        g.push(pair.clone(), now);
        g.push(client.clone(), now);
        Some(Guess {
            limiter: self.clone(),
            pair,
            client,
        })
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.guesses.lock().unwrap().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_pair: usize, per_client: usize) -> Arc<LoginLimiter> {
        Arc::new(LoginLimiter::new(
            per_pair,
            per_client,
            Duration::from_secs(60),
        ))
    }

    #[test]
    fn a_pair_gets_its_guesses_then_waits() {
        let l = limiter(2, 10);
        assert!(l.reserve("1.2.3.4", "bob").is_some());
        assert!(l.reserve("1.2.3.4", "bob").is_some());
        assert!(l.reserve("1.2.3.4", "bob").is_none(), "third guess");
        // Locking bob out from one address leaves him alone elsewhere.
        assert!(l.reserve("5.6.7.8", "bob").is_some());
        assert!(l.reserve("1.2.3.4", "alice").is_some());
    }

    #[test]
    fn parallel_attempts_share_one_budget() {
        let l = limiter(5, 100);
        let granted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|_| s.spawn(|| l.reserve("1.2.3.4", "admin").is_some()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(granted, 5);
    }

    #[test]
    fn a_success_gives_back_only_its_own_pairs_guesses() {
        let l = limiter(5, 4);
        drop(l.reserve("1.2.3.4", "mallory"));
        drop(l.reserve("1.2.3.4", "mallory"));
        drop(l.reserve("1.2.3.4", "bob"));
        l.reserve("1.2.3.4", "bob").unwrap().succeeded();
        // bob's two are given back; mallory's two still count.
        assert!(l.reserve("1.2.3.4", "carol").is_some());
        assert!(l.reserve("1.2.3.4", "carol").is_some());
        assert!(l.reserve("1.2.3.4", "carol").is_none(), "client budget");
    }

    #[test]
    fn a_client_cannot_spray_usernames() {
        let l = limiter(5, 3);
        for name in ["a", "b", "c"] {
            drop(l.reserve("1.2.3.4", name));
        }
        assert!(l.reserve("1.2.3.4", "d").is_none());
    }

    #[test]
    fn long_usernames_are_cut_and_the_map_is_bounded() {
        let l =
            Arc::new(LoginLimiter::new(1, usize::MAX, Duration::from_secs(60)).with_max_keys(100));
        drop(l.reserve("1.2.3.4", &"x".repeat(5_000_000)));
        assert!(
            l.reserve("1.2.3.4", &"x".repeat(64)).is_none(),
            "cut to the same key"
        );
        for i in 0..500 {
            drop(l.reserve(&format!("10.0.{}.{}", i / 256, i % 256), "u"));
        }
        assert!(l.keys() <= 100, "{} keys", l.keys());
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(client_key(mapped), "1.2.3.4");
    }
}
