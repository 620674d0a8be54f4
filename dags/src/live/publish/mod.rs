//! The producing side of the live topics, as stream tasks of `live_streams`.
//!
//! Offline (`BETFLOW_SOURCES` unset or `replay`) one [`replay::ReplayPublisher`]
//! publishes the replay source's current sports day in real time: every
//! message when its event time comes, so the dashboards follow today's
//! generated games, odds, weather and news as if polled. With live sources
//! the [`poll`] tasks poll the real APIs, each on its own interval.
//!
//! Every publisher of a process sends through one [`SharedProducer`] (one
//! librdkafka producer, its queue and connections), and each publisher holds
//! a Postgres advisory lock ([`lease`]) while it runs: every `betflow`
//! process supervises the same stream tasks, and without the lock a second
//! process would publish every update twice. The others wait on standby and
//! take over when the holder's session ends.

pub mod poll;
pub mod replay;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::live::envelope::Kind;
use crate::live::replay::ReplayMessage;
use streaming::kafka::producer::Producer;
pub use streaming::publish::{cursor, lease, SharedProducer};

/// What sending one group of messages did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    pub by_kind: BTreeMap<Kind, usize>,
    /// Messages whose delivery failed after the producer's retries, with why.
    pub failed: Vec<(Kind, String)>,
}

impl Sent {
    pub fn delivered(&self) -> usize {
        self.by_kind.values().sum()
    }

    pub fn add(&mut self, other: Sent) {
        for (kind, n) in other.by_kind {
            *self.by_kind.entry(kind).or_default() += n;
        }
        self.failed.extend(other.failed);
    }
}

/// Sends `group` concurrently and waits for every delivery, each envelope
/// naming `source` and stamped with `ingest_time`.
///
/// Callers pass the messages of one event time: within it each topic's keys
/// are distinct (one snapshot per event, one poll per game), so sending them
/// at once cannot reorder a key, and waiting before the next group keeps
/// every key's messages in event-time order on its partition.
pub async fn send_group(
    producer: &Producer,
    source: &'static str,
    group: Vec<ReplayMessage>,
    ingest_time: DateTime<Utc>,
) -> Sent {
    let mut sent = Sent::default();
    let mut tasks: JoinSet<Result<Kind, (Kind, String)>> = JoinSet::new();
    for m in group {
        let producer: Producer = producer.clone();
        tasks.spawn(async move {
            let kind: Kind = m.kind();
            let (key, value) = m
                .encode_from(source, ingest_time)
                .map_err(|e| (kind, e.to_string()))?;
            producer
                .send_raw(&m.topic().to_string(), Some(&key), &value)
                .await
                .map(|_| kind)
                .map_err(|e| (kind, e.to_string()))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(kind)) => *sent.by_kind.entry(kind).or_default() += 1,
            Ok(Err(failure)) => sent.failed.push(failure),
            Err(e) => sent
                .failed
                .push((Kind::Odds, format!("send task failed: {e}"))),
        }
    }
    sent
}

/// Splits time-ordered messages into runs of equal event time, for
/// [`send_group`].
pub fn groups(messages: Vec<ReplayMessage>) -> Vec<Vec<ReplayMessage>> {
    let mut out: Vec<Vec<ReplayMessage>> = Vec::new();
    for m in messages {
        match out.last_mut() {
            Some(g) if g[0].time == m.time => g.push(m),
            _ => out.push(vec![m]),
        }
    }
    out
}
