//! Login rate limiting: after too many failures for one client address or
//! username within a window, further attempts are refused until it passes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(5, Duration::from_secs(300))
    }
}

impl LoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an attempt for any of `keys` (address, username) may proceed now.
    pub fn allowed(&self, keys: &[&str]) -> bool {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        keys.iter().all(|k| {
            let list = map.entry((*k).to_owned()).or_default();
            list.retain(|t| now.duration_since(*t) < self.window);
            list.len() < self.max_failures
        })
    }

    pub fn record_failure(&self, keys: &[&str]) {
        if let Ok(mut map) = self.failures.lock() {
            for k in keys {
                map.entry((*k).to_owned()).or_default().push(Instant::now());
            }
        }
    }

    pub fn record_success(&self, keys: &[&str]) {
        if let Ok(mut map) = self.failures.lock() {
            for k in keys {
                map.remove(*k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_forgives_on_success() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        assert!(l.allowed(&["1.2.3.4", "bob"]));
        l.record_failure(&["1.2.3.4", "bob"]);
        l.record_failure(&["1.2.3.4", "bob"]);
        assert!(!l.allowed(&["1.2.3.4", "alice"]), "same address");
        assert!(!l.allowed(&["5.6.7.8", "bob"]), "same username");
        assert!(l.allowed(&["5.6.7.8", "alice"]));
        l.record_success(&["1.2.3.4", "bob"]);
        assert!(l.allowed(&["1.2.3.4", "bob"]));
    }
}
