//! How soon a supervisor looks again at a server it starts again.
//!
//! `up` watches the embedded Postgres and the embedded Kafka broker and
//! starts either again when it dies. A server that dies again right after
//! each start (a full disk, a corrupt file, a port another program took)
//! must not be restarted every couple of seconds for ever: while it dies
//! within [`CRASH_LOOP`] of each start, the wait before the next look
//! doubles, up to [`MAX_WAIT`]; a server that stays up a while is watched
//! at the normal pace again.

use std::time::{Duration, Instant};

/// Restarts closer together than this are a crash loop.
pub const CRASH_LOOP: Duration = Duration::from_secs(60);
/// The longest wait between two looks.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The wait before a supervisor's next look.
#[derive(Debug)]
pub struct Restarts {
    every: Duration,
    wait: Duration,
    last: Option<Instant>,
}

impl Restarts {
    /// Looks every `every` while the server stays up.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            wait: every,
            last: None,
        }
    }

    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The server was up at `now`: the normal pace, once the last restart
    /// is a crash loop's length behind.
    pub fn running(&mut self, now: Instant) {
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= CRASH_LOOP)
        {
            self.wait = self.every;
        }
    }

    /// The server was started again at `now`. True when it cannot have
    /// stayed up [`CRASH_LOOP`] since the start before (it is found dead
    /// one wait after dying at the latest): the next look then comes later.
    pub fn restarted(&mut self, now: Instant) -> bool {
        let looping = self
            .last
            .is_some_and(|last| now.duration_since(last) < CRASH_LOOP + self.wait);
        self.wait = if looping {
            (self.wait * 2).min(MAX_WAIT)
        } else {
            self.every
        };
        self.last = Some(now);
        looping
    }

    /// What a restart's log line adds when [`Restarts::restarted`] found a
    /// crash loop.
    pub fn looping_note(&self, looping: bool) -> String {
        if looping {
            format!(
                "; it died soon after its last start, next look in {}s",
                self.wait.as_secs()
            )
        } else {
            String::new()
        }
    }

    /// Starting it failed: try again later each time.
    pub fn failed(&mut self) {
        self.wait = (self.wait * 2).min(MAX_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(2);

    #[test]
    fn a_server_that_dies_after_each_start_is_looked_at_less_and_less_often() {
        let t0 = Instant::now();
        let mut r = Restarts::new(EVERY);
        assert!(!r.restarted(t0), "a first restart is not a loop");
        assert_eq!(r.wait(), EVERY);
        let mut at = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            at += r.wait();
            assert!(r.restarted(at));
            waits.push(r.wait().as_secs());
        }
        assert_eq!(waits, [4, 8, 16, 32, 60, 60, 60]);
        // Seen up in between does not reset the pace inside the loop.
        r.running(at + Duration::from_secs(1));
        assert_eq!(r.wait(), MAX_WAIT);
    }

    #[test]
    fn a_server_that_stays_up_is_watched_at_the_normal_pace_again() {
        let t0 = Instant::now();
        let mut r = Restarts::new(EVERY);
        r.restarted(t0);
        r.restarted(t0 + Duration::from_secs(2));
        assert_eq!(r.wait(), Duration::from_secs(4));
        r.running(t0 + Duration::from_secs(70));
        assert_eq!(r.wait(), EVERY);
        // A death long after the last restart is restarted at once.
        assert!(!r.restarted(t0 + Duration::from_secs(300)));
        assert_eq!(r.wait(), EVERY);
    }

    #[test]
    fn failed_starts_back_off_up_to_a_minute() {
        let mut r = Restarts::new(EVERY);
        let waits: Vec<u64> = (0..7)
            .map(|_| {
                r.failed();
                r.wait().as_secs()
            })
            .collect();
        assert_eq!(waits, [4, 8, 16, 32, 60, 60, 60]);
    }
}
