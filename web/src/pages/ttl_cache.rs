//! Results kept for a short while per filter, for pages whose reads cost
//! more than their data changes: the analytics marts (rebuilt nightly, kept
//! a minute) and the markets board (polled every second by every open
//! page, kept half a second so viewers of one day share one read).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    keep_for: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    /// Values kept `keep_for`; past `max_entries` keys the cache starts over.
    pub fn new(keep_for: Duration, max_entries: usize) -> Self {
        TtlCache {
            keep_for,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key` if it is fresh, else `load`'s, kept when it is Ok.
    pub async fn get_or_load<E, F>(&self, key: String, load: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Ok(entries) = self.entries.lock() {
            if let Some((at, value)) = entries.get(&key) {
                if at.elapsed() < self.keep_for {
                    return Ok(value.clone());
                }
            }
        }
        let value = load.await?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max_entries {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value.clone()));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fresh_values_are_reused_and_stale_ones_reloaded() {
        let cache: TtlCache<u32> = TtlCache::new(Duration::from_millis(50), 2);
        let load = |v: u32| async move { Ok::<u32, ()>(v) };
        assert_eq!(cache.get_or_load("a".into(), load(1)).await, Ok(1));
        assert_eq!(cache.get_or_load("a".into(), load(2)).await, Ok(1));
        assert_eq!(cache.get_or_load("b".into(), load(3)).await, Ok(3));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get_or_load("a".into(), load(4)).await, Ok(4));
        // Errors are not kept.
        assert_eq!(
            cache
                .get_or_load("c".into(), async { Err::<u32, ()>(()) })
                .await,
            Err(())
        );
        assert_eq!(cache.get_or_load("c".into(), load(5)).await, Ok(5));
    }
}
