//! Results kept for a short while per filter, for pages whose reads cost
//! more than their data changes: the analytics marts (rebuilt nightly, kept
//! a minute) and the markets board (polled every second by every open
//! page, kept half a second so viewers of one day share one read).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

pub struct TtlCache<V> {
    keep_for: Duration,
    max_entries: usize,
    /// Per key: when its value was asked for first, and the value once
    /// loaded. Requests that miss together wait for one load.
    entries: Mutex<HashMap<String, Entry<V>>>,
}

/// When a key was first asked for, and its value once loaded.
type Entry<V> = (Instant, Arc<OnceCell<V>>);

impl<V: Clone> TtlCache<V> {
    /// Values kept `keep_for`; past `max_entries` keys the cache starts over.
    pub fn new(keep_for: Duration, max_entries: usize) -> Self {
        TtlCache {
            keep_for,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key` if it is fresh, else `load`'s (one load at a time
    /// per key: callers that miss meanwhile get the same value), kept when
    /// it is Ok.
    pub async fn get_or_load<E, F>(&self, key: String, load: F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let cell: Arc<OnceCell<V>> = match self.entries.lock() {
            Ok(mut entries) => match entries.get(&key) {
                Some((at, cell)) if at.elapsed() < self.keep_for => cell.clone(),
                _ => {
                    if entries.len() >= self.max_entries {
                        entries.clear();
                    }
                    let cell = Arc::new(OnceCell::new());
                    entries.insert(key, (Instant::now(), cell.clone()));
                    cell
                }
            },
            // A poisoned map: load without caching.
            Err(_) => Arc::new(OnceCell::new()),
        };
        cell.get_or_try_init(|| load).await.cloned()
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

    #[tokio::test]
    async fn callers_that_miss_together_share_one_load() {
        let cache: Arc<TtlCache<u32>> = Arc::new(TtlCache::new(Duration::from_secs(5), 8));
        let loads = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load("board".into(), async {
                            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<u32, ()>(7)
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
