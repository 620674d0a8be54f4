//! When a supervisor may start again a server it found dead.
//!
//! `up` watches the embedded Postgres and the embedded Kafka broker and
//! starts either again when it dies. A server that dies again right after
//! each start (a full disk, a corrupt file, a port another program took)
//! must not be restarted every couple of seconds for ever: while it dies
//! within [`CRASH_LOOP`] of each start, the time between two restarts
//! doubles, up to [`MAX_WAIT`]; a server that stays up a while is started
//! again at once when it dies. The supervisor keeps looking at the normal
//! pace all along, so a death is seen within one look and only its restart
//! is held (a broker that panicked after quick kills was otherwise seen up
//! to a minute late).

use std::time::{Duration, Instant};

/// Restarts closer together than this are a crash loop.
pub const CRASH_LOOP: Duration = Duration::from_secs(60);
/// The longest time between two restarts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A supervisor's pace and its restarts' spacing.
#[derive(Debug)]
pub struct Restarts {
    every: Duration,
    /// Between the last restart (or failed start) and the next.
    wait: Duration,
    last: Option<Instant>,
    /// No restart before this: in a crash loop, or after a failed start.
    not_before: Option<Instant>,
}

impl Restarts {
    /// Looks every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            wait: every,
            last: None,
            not_before: None,
        }
    }

    /// How long until the next look: always the normal pace.
    pub fn look_every(&self) -> Duration {
        self.every
    }

    /// The spacing of restarts now: [`Restarts::look_every`] outside a crash
    /// loop, up to [`MAX_WAIT`] in one.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// How long a restart found due at `now` must still wait.
    pub fn hold(&self, now: Instant) -> Duration {
        self.not_before
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// The server was up at `now`: restarts come at once again, once the
    /// last restart is a crash loop's length behind.
    pub fn running(&mut self, now: Instant) {
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= CRASH_LOOP)
        {
            self.wait = self.every;
            self.not_before = None;
        }
    }

    /// The server was started again at `now`. True when it cannot have
    /// stayed up [`CRASH_LOOP`] since the start before: the next restart
    /// then waits longer.
    pub fn restarted(&mut self, now: Instant) -> bool {
        let looping = self
            .last
            .is_some_and(|last| now.duration_since(last) < CRASH_LOOP + self.wait);
        if looping {
            self.wait = (self.wait * 2).min(MAX_WAIT);
            self.not_before = Some(now + self.wait);
        } else {
            self.wait = self.every;
            self.not_before = None;
        }
        self.last = Some(now);
        looping
    }

    /// What a restart's log line adds when [`Restarts::restarted`] found a
    /// crash loop.
    pub fn looping_note(&self, looping: bool) -> String {
        if looping {
            format!(
                "; it died soon after its last start, so it is not started again for {}s if it dies again",
                self.wait.as_secs()
            )
        } else {
            String::new()
        }
    }

    /// Starting it failed at `now`: try again later each time.
    pub fn failed(&mut self, now: Instant) {
        self.wait = (self.wait * 2).min(MAX_WAIT);
        self.not_before = Some(now + self.wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(2);

    #[test]
    fn a_server_that_dies_after_each_start_is_started_again_less_and_less_often() {
        let t0 = Instant::now();
        let mut r = Restarts::new(EVERY);
        assert!(!r.restarted(t0), "a first restart is not a loop");
        assert_eq!(r.hold(t0), Duration::ZERO);
        let mut at = t0;
        let mut holds = Vec::new();
        for _ in 0..7 {
            // Found dead one look after its restart, it waits out the hold.
            at += r.look_every();
            at += r.hold(at);
            assert!(r.restarted(at));
            holds.push(r.hold(at).as_secs());
        }
        assert_eq!(holds, [4, 8, 16, 32, 60, 60, 60]);
        // Seen up in between does not end the loop's spacing.
        r.running(at + Duration::from_secs(1));
        assert_eq!(r.hold(at + Duration::from_secs(1)), Duration::from_secs(59));
        // The looks keep their pace all along: a death is seen at once.
        assert_eq!(r.look_every(), EVERY);
    }

    #[test]
    fn a_death_in_a_crash_loop_waits_only_for_what_is_left_of_its_hold() {
        let t0 = Instant::now();
        let mut r = Restarts::new(EVERY);
        r.restarted(t0);
        r.restarted(t0 + Duration::from_secs(2));
        r.restarted(t0 + Duration::from_secs(8));
        assert_eq!(r.wait(), Duration::from_secs(8));
        // Up for 50 s, then dead: restarted 8 s after the last restart at
        // the earliest, which is long past.
        assert_eq!(r.hold(t0 + Duration::from_secs(58)), Duration::ZERO);
        assert_eq!(r.hold(t0 + Duration::from_secs(10)), Duration::from_secs(6));
    }

    #[test]
    fn a_server_that_stays_up_is_started_again_at_once_when_it_dies() {
        let t0 = Instant::now();
        let mut r = Restarts::new(EVERY);
        r.restarted(t0);
        r.restarted(t0 + Duration::from_secs(2));
        assert_eq!(r.wait(), Duration::from_secs(4));
        r.running(t0 + Duration::from_secs(70));
        assert_eq!(r.wait(), EVERY);
        assert_eq!(r.hold(t0 + Duration::from_secs(70)), Duration::ZERO);
        // A death long after the last restart is restarted at once.
        assert!(!r.restarted(t0 + Duration::from_secs(300)));
        assert_eq!(r.hold(t0 + Duration::from_secs(300)), Duration::ZERO);
    }

    #[test]
    fn failed_starts_back_off_up_to_a_minute() {
        let t0 = Instant::now();
        let mut r = Restarts::new(EVERY);
        let holds: Vec<u64> = (0..7)
            .map(|_| {
                r.failed(t0);
                r.hold(t0).as_secs()
            })
            .collect();
        assert_eq!(holds, [4, 8, 16, 32, 60, 60, 60]);
    }
}
