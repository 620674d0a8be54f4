//! A token-bucket rate limiter shared by all requests of one client.
//!
//! A rate of `r` per second allows a burst of `ceil(r)` calls, then one call
//! every `1/r` s: at rate 2, two calls go at once and the third waits ~0.5 s
//! (docs/data-model.md#sources).

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Limits calls to `rate` per second across every task holding this limiter.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    capacity: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Available tokens; negative when callers have reserved future tokens.
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// A limiter for `rate` calls per second (must be > 0; non-positive or
    /// non-finite rates mean "unlimited" so a misconfiguration cannot hang).
    pub fn new(rate: f64) -> Self {
        let capacity: f64 = if rate.is_finite() && rate > 0.0 {
            rate.ceil().max(1.0)
        } else {
            f64::INFINITY
        };
        Self {
            rate,
            capacity,
            state: Mutex::new(Bucket {
                tokens: capacity,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Calls per second this limiter allows.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Waits until this caller may make one call. Each caller reserves its
    /// token under the lock and sleeps outside it, so waiters are served in
    /// arrival order and never all wake at once.
    pub async fn acquire(&self) {
        if self.capacity.is_infinite() {
            return;
        }
        let wait: Duration = {
            let mut bucket = match self.state.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now: Instant = Instant::now();
            let elapsed: f64 = now.duration_since(bucket.refilled_at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.capacity);
            bucket.refilled_at = now;
            bucket.tokens -= 1.0;
            if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}
