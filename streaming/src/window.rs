//! Event-time windows with watermarks, generic over key and aggregate.
//!
//! Windows are aligned to the Unix epoch: a window of `size` starts at every
//! multiple of `slide` (tumbling when `slide == size`), so every consumer
//! process computes the same window bounds for the same event and the sink
//! can upsert by (processor, key, window start) idempotently.
//!
//! The watermark is the maximum event time seen minus the allowed lateness.
//! It never moves back. A window `[start, end)` closes, is emitted and its
//! state is dropped as soon as the watermark reaches `end`: no accepted event
//! can fall into it afterwards, and memory stays bounded by the number of
//! keys active within `size + lateness` of the newest event, however long
//! the stream runs. An event older than the watermark is *late*: it is not
//! added to any window (some of its windows may already be emitted, and
//! adding it to the rest would make overlapping windows disagree) and is
//! handed back to the caller, with the watermark, for the dead-letter table.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a window accumulates. One value per (key, window); it sees the
/// window's events in arrival order, which under out-of-order delivery is not
/// event-time order, so implementations compare event times themselves.
pub trait Aggregate {
    /// One input record.
    type Event;
    /// What a closed window produces.
    type Output;
    /// Adds one event that happened at `event_time`.
    fn add(&mut self, event_time: DateTime<Utc>, event: &Self::Event);
    /// The window's result; `None` when the events gave nothing to report
    /// (e.g. only duplicates or unusable prices).
    fn finish(&self) -> Option<Self::Output>;
}

/// Window size and slide. Tumbling when they are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    size_ms: i64,
    slide_ms: i64,
}

/// A configuration that cannot produce a sound window stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WindowError {
    #[error("window size must be positive, got {0} ms")]
    NonPositiveSize(i64),
    #[error("window slide must be positive, got {0} ms")]
    NonPositiveSlide(i64),
    /// A slide longer than the size leaves gaps where events fall in no window.
    #[error("window slide ({slide_ms} ms) must not exceed its size ({size_ms} ms)")]
    SlideExceedsSize { size_ms: i64, slide_ms: i64 },
    #[error("allowed lateness must not be negative, got {0} ms")]
    NegativeLateness(i64),
    #[error("{0:?} is not a duration: a whole number and a unit, s, m or h (e.g. 90s, 5m)")]
    Duration(String),
}

/// A duration written as a whole number and a unit: `90s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, WindowError> {
    let text: &str = text.trim();
    let bad = || WindowError::Duration(text.to_string());
    let unit_at: usize = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let count: i64 = text[..unit_at].parse().map_err(|_| bad())?;
    let unit: TimeDelta = match &text[unit_at..] {
        "s" => TimeDelta::seconds(1),
        "m" => TimeDelta::minutes(1),
        "h" => TimeDelta::hours(1),
        _ => return Err(bad()),
    };
    unit.checked_mul(i32::try_from(count).map_err(|_| bad())?)
        .ok_or_else(bad)
}

impl std::str::FromStr for WindowSpec {
    type Err = WindowError;

    /// `SIZE` for tumbling windows, `SIZE/SLIDE` for sliding ones:
    /// `5m`, `10m/5m`, `20m/5m`.
    fn from_str(text: &str) -> Result<Self, WindowError> {
        match text.split_once('/') {
            None => Self::tumbling(parse_duration(text)?),
            Some((size, slide)) => Self::sliding(parse_duration(size)?, parse_duration(slide)?),
        }
    }
}

impl WindowSpec {
    /// These windows with `allowed_lateness`, as a checkpoint fingerprint:
    /// state built under other settings must not be restored.
    pub fn fingerprint(&self, allowed_lateness: TimeDelta) -> String {
        format!(
            "size={}ms slide={}ms lateness={}ms",
            self.size().num_milliseconds(),
            self.slide().num_milliseconds(),
            allowed_lateness.num_milliseconds()
        )
    }

    /// Windows of `size` starting every `slide`.
    pub fn sliding(size: TimeDelta, slide: TimeDelta) -> Result<Self, WindowError> {
        let size_ms: i64 = size.num_milliseconds();
        let slide_ms: i64 = slide.num_milliseconds();
        if size_ms <= 0 {
            return Err(WindowError::NonPositiveSize(size_ms));
        }
        if slide_ms <= 0 {
            return Err(WindowError::NonPositiveSlide(slide_ms));
        }
        if slide_ms > size_ms {
            return Err(WindowError::SlideExceedsSize { size_ms, slide_ms });
        }
        Ok(Self { size_ms, slide_ms })
    }

    /// Back-to-back windows of `size`.
    pub fn tumbling(size: TimeDelta) -> Result<Self, WindowError> {
        Self::sliding(size, size)
    }

    /// Tumbling windows of a whole number of minutes (3, 5, 10, 20 typical).
    pub fn tumbling_minutes(minutes: i64) -> Result<Self, WindowError> {
        Self::tumbling(TimeDelta::minutes(minutes))
    }

    /// Tumbling windows of `minutes` (0 counts as 1): infallible, for
    /// compiled-in defaults.
    pub const fn tumbling_whole_minutes(minutes: u32) -> Self {
        let size_ms: i64 = if minutes == 0 { 1 } else { minutes as i64 } * 60_000;
        Self {
            size_ms,
            slide_ms: size_ms,
        }
    }

    pub fn size(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.size_ms)
    }

    pub fn slide(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.slide_ms)
    }

    /// Start times (epoch ms) of every window containing `t_ms`, newest first:
    /// `ceil(size / slide)` of them when the slide divides the size.
    pub fn starts_containing(&self, t_ms: i64) -> Vec<i64> {
        let last: i64 = t_ms.div_euclid(self.slide_ms) * self.slide_ms;
        let mut starts: Vec<i64> = Vec::new();
        let mut start: i64 = last;
        while start + self.size_ms > t_ms {
            starts.push(start);
            start -= self.slide_ms;
        }
        starts
    }
}

/// Bounds of one window, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A closed window's result for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed<K, O> {
    pub key: K,
    pub window: Window,
    /// Events the window received (duplicates included).
    pub events: u64,
    /// Latest event time in the window: the row's `event_time`.
    pub max_event_time: DateTime<Utc>,
    /// Latest ingest time of its events: the row's `ingest_time`.
    pub max_ingest_time: DateTime<Utc>,
    pub output: O,
}

/// An event rejected because the watermark had already passed it.
#[derive(Debug, Clone, PartialEq)]
pub struct LateEvent<K, E> {
    pub key: K,
    pub event_time: DateTime<Utc>,
    /// The watermark it arrived behind.
    pub watermark: DateTime<Utc>,
    pub event: E,
}

/// Running totals, for metrics and stream health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    pub accepted: u64,
    pub late: u64,
    pub windows_emitted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Slot<A> {
    aggregate: A,
    events: u64,
    max_event_ms: i64,
    max_ingest_ms: i64,
}

/// Everything a [`Windowed`] accumulated (open windows, watermark, stats),
/// without its configuration: what a consumer checkpoints so a restart
/// continues exactly where the last checkpoint left off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedSnapshot<K, A> {
    max_event_ms: Option<i64>,
    stats: WindowStats,
    /// Open windows as (start ms, key, slot), in window order.
    open: Vec<(i64, K, Slot<A>)>,
}

/// Keyed event-time window operator. Each new window gets a clone of the
/// `template` aggregate, so aggregates can carry their own configuration.
pub struct Windowed<K, A> {
    spec: WindowSpec,
    lateness_ms: i64,
    template: A,
    /// Open windows by (start, key): ordered by start, hence by end (all
    /// windows have the same size), so closing pops from the front.
    open: BTreeMap<(i64, K), Slot<A>>,
    max_event_ms: Option<i64>,
    stats: WindowStats,
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl<K: Ord + Clone, A: Aggregate + Clone> Windowed<K, A> {
    pub fn new(
        spec: WindowSpec,
        allowed_lateness: TimeDelta,
        template: A,
    ) -> Result<Self, WindowError> {
        let lateness_ms: i64 = allowed_lateness.num_milliseconds();
        if lateness_ms < 0 {
            return Err(WindowError::NegativeLateness(lateness_ms));
        }
        Ok(Self {
            spec,
            lateness_ms,
            template,
            open: BTreeMap::new(),
            max_event_ms: None,
            stats: WindowStats::default(),
        })
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.max_event_ms
            .map(|m| m.saturating_sub(self.lateness_ms))
    }

    /// Max event time seen − allowed lateness; `None` before the first event.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark_ms().map(to_time)
    }

    /// The accumulated state, for a checkpoint.
    pub fn snapshot(&self) -> WindowedSnapshot<K, A> {
        WindowedSnapshot {
            max_event_ms: self.max_event_ms,
            stats: self.stats,
            open: self
                .open
                .iter()
                .map(|((start, key), slot)| (*start, key.clone(), slot.clone()))
                .collect(),
        }
    }

    /// Replaces the accumulated state with a checkpointed one. The snapshot
    /// must come from an operator with the same spec and lateness (callers
    /// fingerprint the configuration next to it).
    pub fn restore(&mut self, snapshot: WindowedSnapshot<K, A>) {
        self.max_event_ms = snapshot.max_event_ms;
        self.stats = snapshot.stats;
        self.open = snapshot
            .open
            .into_iter()
            .map(|(start, key, slot)| ((start, key), slot))
            .collect();
    }

    /// Pulls the newest event time back to `not_after` when it is beyond
    /// it, and drops the windows that start after it: what events stamped
    /// in the future left in a restored state. Whether anything changed.
    pub fn heal(&mut self, not_after: DateTime<Utc>) -> bool {
        let limit = not_after.timestamp_millis();
        match self.max_event_ms {
            Some(max) if max > limit => {
                self.max_event_ms = Some(limit);
                self.open.retain(|(start, _), _| *start <= limit);
                true
            }
            _ => false,
        }
    }

    /// (key, window) pairs currently held in memory.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Adds one event to every window containing it, or hands it back when
    /// it is behind the watermark. Call [`Windowed::drain_closed`] afterwards
    /// (per event or per polled batch) to emit what the watermark closed.
    pub fn push(
        &mut self,
        key: K,
        event_time: DateTime<Utc>,
        ingest_time: DateTime<Utc>,
        event: A::Event,
    ) -> Result<(), LateEvent<K, A::Event>> {
        let t_ms: i64 = event_time.timestamp_millis();
        let ingest_ms: i64 = ingest_time.timestamp_millis();
        if let Some(wm) = self.watermark_ms() {
            if t_ms < wm {
                self.stats.late += 1;
                return Err(LateEvent {
                    key,
                    event_time,
                    watermark: to_time(wm),
                    event,
                });
            }
        }
        for start in self.spec.starts_containing(t_ms) {
            let slot: &mut Slot<A> =
                self.open
                    .entry((start, key.clone()))
                    .or_insert_with(|| Slot {
                        aggregate: self.template.clone(),
                        events: 0,
                        max_event_ms: t_ms,
                        max_ingest_ms: ingest_ms,
                    });
            slot.aggregate.add(event_time, &event);
            slot.events += 1;
            slot.max_event_ms = slot.max_event_ms.max(t_ms);
            slot.max_ingest_ms = slot.max_ingest_ms.max(ingest_ms);
        }
        self.stats.accepted += 1;
        self.max_event_ms = Some(self.max_event_ms.map_or(t_ms, |m| m.max(t_ms)));
        Ok(())
    }

    /// Removes and returns every window whose end the watermark has reached,
    /// oldest first. Their state is gone afterwards.
    pub fn drain_closed(&mut self) -> Vec<Closed<K, A::Output>> {
        match self.watermark_ms() {
            Some(wm) => self.drain_while(|end| end <= wm),
            None => Vec::new(),
        }
    }

    /// Emits every open window regardless of the watermark, for a clean
    /// shutdown or the end of a replay.
    pub fn flush_all(&mut self) -> Vec<Closed<K, A::Output>> {
        self.drain_while(|_| true)
    }

    fn drain_while(&mut self, closes: impl Fn(i64) -> bool) -> Vec<Closed<K, A::Output>> {
        let size_ms: i64 = self.spec.size_ms;
        let mut closed: Vec<Closed<K, A::Output>> = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            let start: i64 = entry.key().0;
            if !closes(start + size_ms) {
                break;
            }
            let ((start, key), slot): ((i64, K), Slot<A>) = entry.remove_entry();
            self.stats.windows_emitted += 1;
            if let Some(output) = slot.aggregate.finish() {
                closed.push(Closed {
                    key,
                    window: Window {
                        start: to_time(start),
                        end: to_time(start + size_ms),
                    },
                    events: slot.events,
                    max_event_time: to_time(slot.max_event_ms),
                    max_ingest_time: to_time(slot.max_ingest_ms),
                    output,
                });
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests;
