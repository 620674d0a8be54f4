//! Consumer-group membership shared by the stream consumers: the client
//! settings, where an assigned partition starts, and recovery from a group
//! the broker left stuck.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

/// Longest wait for a message before a loop does its periodic work anyway
/// (due checkpoints or flushes, the stuck-group check).
pub const IDLE_WAKEUP: Duration = Duration::from_secs(1);
/// Longest a fetch waits for data at the broker.
const FETCH_WAIT: Duration = Duration::from_millis(20);
/// How often librdkafka reports its statistics, consumer lag among them.
pub const LAG_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for the committed offsets of a new assignment.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);
/// Session timeout of the consumers: a crashed member's partitions move
/// to the others after this long.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a member may go without partitions before it checks whether
/// the group is stuck (see [`Rebalances`]).
pub const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(3 * SESSION_TIMEOUT.as_secs());

/// Longest a seek back may block a consumer loop (rare: only after a
/// partition arrived from past where it was assigned).
pub const SEEK_TIMEOUT: Duration = Duration::from_secs(5);
/// How far before the missing offset the first seek back goes; each
/// further one goes twice as far, down to the start of the log.
const REWIND_FIRST_STEP: i64 = 1024;

/// A seek back of a partition: `(next, to)`, made because the message at
/// `next` was missing, to offset `to`.
pub type SeekBack = (i64, i64);

/// The seek back for a partition whose messages must continue at `next`
/// but arrived from past it, given the partition's `last` seek back (one
/// made for another offset says nothing); `None` once the start of the log
/// was tried. Callers keep what it returns as their `last` until the
/// message at `next` arrives.
pub fn seek_back(next: i64, last: Option<SeekBack>) -> Option<SeekBack> {
    let previous: Option<i64> = last.filter(|(of, _)| *of == next).map(|(_, to)| to);
    rewind_target(next, previous).map(|to| (next, to))
}

/// Where to seek a partition whose messages must continue at `next`, when
/// the last seek for `next` (if any) went to `previous`.
///
/// A Kafka broker answers a fetch from the middle of a record batch with
/// the whole batch (the client drops what precedes the offset), but tansu
/// 0.6 answers with the batches that *start* at or after the offset, so a
/// partition assigned at a committed offset inside a batch arrives from
/// the next batch on. Seeking back before that batch, and skipping what
/// precedes `next`, gets the missing messages.
fn rewind_target(next: i64, previous: Option<i64>) -> Option<i64> {
    match previous {
        None => Some((next - REWIND_FIRST_STEP).max(0)),
        Some(0) => None,
        Some(at) => Some((next - 2 * (next - at).max(REWIND_FIRST_STEP)).max(0)),
    }
}

/// A consumer of `topics` in `group_id` committing its offsets itself,
/// from the earliest offset when the group has none.
pub fn join(
    kafka: &super::KafkaSettings,
    group_id: &str,
    topics: &[String],
) -> Result<StreamConsumer<Rebalances>, KafkaError> {
    let consumer: StreamConsumer<Rebalances> = kafka
        .client_config()
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        // librdkafka's 500 ms default: a broker that holds a fetch for the
        // whole wait (tansu does) would put it in every message's latency.
        .set("fetch.wait.max.ms", FETCH_WAIT.as_millis().to_string())
        .set("statistics.interval.ms", LAG_EVERY.as_millis().to_string())
        .create_with_context(Rebalances::default())?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    Ok(consumer)
}

/// (topic, partition) assigned to the member → the committed offset it
/// starts at (`None`: the group has none, the start of the log).
pub type Assigned = BTreeMap<(String, i32), Option<i64>>;

/// Runs rebalances (see [`ConsumerContext::rebalance`] below), records
/// revoked partitions (the archive drops their unwritten batches) and
/// follows how long the member has gone without partitions.
///
/// That works around two ways tansu 0.6 leaves a group stuck
/// after a member dies: the new member waits forever for an assignment
/// from the dead leader, or the group completes with the new member's empty
/// follower assignment when the dead leader expires during its SyncGroup.
/// Either way the member gets no partitions though it is alone in the
/// group, which [`Stuck::check`] detects so the task can end: the
/// supervisor restarts it, and the fresh member's join succeeds.
///
/// It also keeps the lag of each assigned partition from librdkafka's
/// statistics, which it computes from the high watermark every fetch
/// response carries: no extra round trip to the broker, nothing blocking
/// the consumer loop.
pub struct Rebalances {
    /// Revoked since the last [`take_revoked`].
    revoked: Mutex<Vec<(String, i32)>>,
    /// Assigned since the last [`take_assigned`] (a map, so a member
    /// that never takes them keeps one entry per partition).
    assigned: Mutex<Assigned>,
    /// An assignment whose committed offsets could not be looked up, since
    /// the last [`take_assigned`]: where its partitions start is unknown.
    lookup_failed: AtomicBool,
    /// `topic/partition` → messages in the log past the last one delivered.
    lag: Mutex<BTreeMap<String, i64>>,
    /// Since when, and with how many partitions (`None`: no assignment yet).
    assignment: Mutex<(Instant, Option<usize>)>,
    /// librdkafka's lines, rate-limited.
    log: super::client_log::LogLimiter,
}

impl Default for Rebalances {
    fn default() -> Self {
        Self {
            revoked: Mutex::new(Vec::new()),
            assigned: Mutex::new(BTreeMap::new()),
            lookup_failed: AtomicBool::new(false),
            lag: Mutex::new(BTreeMap::new()),
            assignment: Mutex::new((Instant::now(), None)),
            log: Default::default(),
        }
    }
}

impl Rebalances {
    fn assignment(&self) -> (Instant, Option<usize>) {
        self.assignment
            .lock()
            .map(|a| *a)
            .unwrap_or((Instant::now(), None))
    }

    fn set_assignment(&self, partitions: Option<usize>) {
        if let Ok(mut a) = self.assignment.lock() {
            *a = (Instant::now(), partitions);
        }
    }
}

impl ClientContext for Rebalances {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag: BTreeMap<String, i64> = BTreeMap::new();
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                // Partition -1 is librdkafka's internal unassigned queue.
                if *id < 0 || !p.desired || p.hi_offset < 0 {
                    continue;
                }
                // Delivered up to `app_offset`; before the first delivery,
                // the committed offset is where fetching starts.
                let position: i64 = if p.app_offset >= 0 {
                    p.app_offset
                } else if p.committed_offset >= 0 {
                    p.committed_offset
                } else {
                    p.lo_offset.max(0)
                };
                lag.insert(format!("{name}/{id}"), (p.hi_offset - position).max(0));
            }
        }
        if let Ok(mut kept) = self.lag.lock() {
            *kept = lag;
        }
    }
}

impl ConsumerContext for Rebalances {
    /// Eager rebalancing (the group's default protocol) with one change:
    /// each assigned partition starts at the group's committed offset,
    /// looked up now. Left to itself, librdkafka resumes a partition given
    /// straight back to this member from where its fetcher was, past the
    /// last commit (the last checkpoint), and drops what it had fetched:
    /// the state restored from the checkpoint would miss those messages.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT) {
                    Ok(committed) => {
                        for e in committed.elements() {
                            if let Offset::Offset(at) = e.offset() {
                                let _ = tpl.set_partition_offset(
                                    e.topic(),
                                    e.partition(),
                                    Offset::Offset(at),
                                );
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!("looking up committed offsets: {e}");
                        self.lookup_failed.store(true, Ordering::Relaxed);
                    }
                }
                if let Ok(mut assigned) = self.assigned.lock() {
                    assigned.extend(tpl.elements().iter().map(|e| {
                        let at: Option<i64> = match e.offset() {
                            Offset::Offset(at) => Some(at),
                            _ => None,
                        };
                        ((e.topic().to_string(), e.partition()), at)
                    }));
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!("assigning partitions: {e}");
                }
                self.set_assignment(Some(tpl.count()));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Ok(mut revoked) = self.revoked.lock() {
                    revoked.extend(
                        tpl.elements()
                            .iter()
                            .map(|e| (e.topic().to_string(), e.partition())),
                    );
                }
                self.set_assignment(None);
                if let Err(e) = consumer.unassign() {
                    tracing::error!("revoking partitions: {e}");
                }
            }
            other => tracing::error!("rebalancing: {}", RDKafkaErrorCode::from(other)),
        }
    }
}

/// Lag per `topic/partition` at librdkafka's last statistics.
pub fn lag(consumer: &StreamConsumer<Rebalances>) -> BTreeMap<String, i64> {
    consumer
        .context()
        .lag
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default()
}

/// (topic, partition) revoked since the last call.
pub fn take_revoked(consumer: &StreamConsumer<Rebalances>) -> Vec<(String, i32)> {
    consumer
        .context()
        .revoked
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default()
}

/// Partitions assigned since the last call; an error when the committed
/// offsets of one of those assignments could not be looked up, so where
/// its partitions start is not known (the task should rejoin).
pub fn take_assigned(consumer: &StreamConsumer<Rebalances>) -> Result<Assigned, String> {
    let context: &Rebalances = consumer.context();
    let assigned: Assigned = context
        .assigned
        .lock()
        .map(|mut a| std::mem::take(&mut *a))
        .unwrap_or_default();
    if context.lookup_failed.swap(false, Ordering::Relaxed) {
        return Err("the committed offsets of an assignment could not be looked up".to_string());
    }
    Ok(assigned)
}

/// The stuck-group check of one consumer (see [`Rebalances`]).
#[derive(Debug, Default)]
pub struct Stuck {
    /// When the group was last described for an empty assignment: it is
    /// described again every [`ASSIGNMENT_TIMEOUT`], since a member that
    /// shared the group then (a dead one not yet expired) may leave it.
    described_at: Option<Instant>,
}

impl Stuck {
    /// Why the member is stuck without partitions, if it is: no assignment
    /// at all for [`ASSIGNMENT_TIMEOUT`], or an empty one that long while
    /// the group has no other member. An empty assignment with other
    /// members is normal (more members than partitions); the group is
    /// described at most once per [`ASSIGNMENT_TIMEOUT`].
    pub fn check(
        &mut self,
        consumer: &StreamConsumer<Rebalances>,
        group_id: &str,
    ) -> Option<String> {
        let (since, partitions) = consumer.context().assignment();
        if since.elapsed() < ASSIGNMENT_TIMEOUT {
            return None;
        }
        match partitions {
            None => Some(format!(
                "no partition assignment for {}s",
                since.elapsed().as_secs()
            )),
            Some(0)
                if self
                    .described_at
                    .is_none_or(|at| at.elapsed() >= ASSIGNMENT_TIMEOUT) =>
            {
                self.described_at = Some(Instant::now());
                // A bounded, rare blocking call (once per empty assignment).
                let members: usize = consumer
                    .fetch_group_list(Some(group_id), Duration::from_secs(2))
                    .ok()?
                    .groups()
                    .iter()
                    .map(|g| g.members().len())
                    .sum();
                (members <= 1).then(|| {
                    format!(
                        "alone in the group but assigned no partitions for {}s",
                        since.elapsed().as_secs()
                    )
                })
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeks_back_go_twice_as_far_each_time_down_to_the_start_of_the_log() {
        let mut seeks = Vec::new();
        let mut previous = None;
        while let Some(to) = rewind_target(10_000, previous) {
            seeks.push(to);
            previous = Some(to);
        }
        assert_eq!(seeks, [8_976, 7_952, 5_904, 1_808, 0]);
    }

    #[test]
    fn near_the_start_of_the_log_the_first_seek_goes_to_it() {
        assert_eq!(rewind_target(300, None), Some(0));
        assert_eq!(rewind_target(300, Some(0)), None);
    }
}
