//! librdkafka's log lines and client errors, rate-limited: a broker that is
//! down makes every client log a connection failure each second, which
//! would bury everything else. Each kind of line (its facility and text
//! with the numbers taken out) is logged at most once per window; the next
//! one after the window says how many were held back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;

/// How often one kind of line may be logged.
const WINDOW: Duration = Duration::from_secs(30);
/// Kinds remembered at most (a broker's lines vary little).
const MAX_KINDS: usize = 256;

/// Which lines were logged when, and how many were held back since.
#[derive(Default)]
pub struct LogLimiter {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LogLimiter {
    /// `Some(held back since the last one)` when a line of this kind may be
    /// logged now.
    pub fn admit(&self, kind: &str, now: Instant) -> Option<u64> {
        let key: String = kind.chars().filter(|c| !c.is_ascii_digit()).collect();
        let Ok(mut seen) = self.seen.lock() else {
            return Some(0);
        };
        if seen.len() >= MAX_KINDS && !seen.contains_key(&key) {
            seen.retain(|_, (at, _)| now.duration_since(*at) < WINDOW);
        }
        match seen.get_mut(&key) {
            Some((at, held)) if now.duration_since(*at) < WINDOW => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let before = *held;
                *at = now;
                *held = 0;
                Some(before)
            }
            None => {
                seen.insert(key, (now, 0));
                Some(0)
            }
        }
    }

    /// What [`ClientContext::log`] does, through the limiter.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let Some(held) = self.admit(&format!("{fac} {message}"), Instant::now()) else {
            return;
        };
        let more = if held > 0 {
            format!(" ({held} more like it in the last {}s)", WINDOW.as_secs())
        } else {
            String::new()
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac}: {message}{more}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{fac}: {message}{more}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}{more}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "{fac}: {message}{more}")
            }
        }
    }

    /// What [`ClientContext::error`] does, through the limiter.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let Some(held) = self.admit(&format!("error {error:?} {reason}"), Instant::now()) else {
            return;
        };
        if held > 0 {
            tracing::error!(target: "librdkafka", "{error}: {reason} ({held} more like it in the last {}s)", WINDOW.as_secs());
        } else {
            tracing::error!(target: "librdkafka", "{error}: {reason}");
        }
    }
}

/// The context of clients that need nothing else (producers): the
/// rate-limited log.
#[derive(Default)]
pub struct QuietContext {
    log: LogLimiter,
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_a_kind_per_window_then_a_count_of_the_rest() {
        let l = LogLimiter::default();
        let t0 = Instant::now();
        let refused = |ms: u32| format!("FAIL 127.0.0.1:44403: Connection refused (after {ms}ms)");
        assert_eq!(l.admit(&refused(0), t0), Some(0));
        for i in 1..=29u32 {
            assert_eq!(
                l.admit(&refused(i), t0 + Duration::from_secs(u64::from(i))),
                None
            );
        }
        // Another kind is not held back by the first.
        assert_eq!(
            l.admit("FAIL: Disconnected", t0 + Duration::from_secs(5)),
            Some(0)
        );
        assert_eq!(l.admit(&refused(3), t0 + WINDOW), Some(29));
        assert_eq!(l.admit(&refused(4), t0 + WINDOW), None);
    }
}
