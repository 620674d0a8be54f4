//! Consumer-group membership shared by the stream consumers: the client
//! settings, which partitions were revoked, and recovery from a group the
//! broker left stuck.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;

/// Longest wait for a message before a loop does its periodic work anyway
/// (due checkpoints or flushes, the stuck-group check).
pub const IDLE_WAKEUP: Duration = Duration::from_secs(1);
/// Longest a fetch waits for data at the broker.
const FETCH_WAIT: Duration = Duration::from_millis(20);
/// Session timeout of the consumers: a crashed member's partitions move
/// to the others after this long.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a member may go without partitions before it checks whether
/// the group is stuck (see [`Rebalances`]).
pub const ASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(3 * SESSION_TIMEOUT.as_secs());

/// A consumer of `topics` in `group_id` committing its offsets itself,
/// from the earliest offset when the group has none.
pub fn join(
    brokers: &str,
    group_id: &str,
    topics: &[String],
) -> Result<StreamConsumer<Rebalances>, KafkaError> {
    let consumer: StreamConsumer<Rebalances> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        // librdkafka's 500 ms default: a broker that holds a fetch for the
        // whole wait (tansu does) would put it in every message's latency.
        .set("fetch.wait.max.ms", FETCH_WAIT.as_millis().to_string())
        .create_with_context(Rebalances::default())?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    Ok(consumer)
}

/// Follows rebalances: revoked partitions are recorded so a loop drops
/// their state (another member of the group may move them ahead before
/// they come back), and how long the member has gone without partitions.
///
/// That second part works around two ways tansu 0.6 leaves a group stuck
/// after a member dies: the new member waits forever for an assignment
/// from the dead leader, or the group completes with the new member's empty
/// follower assignment when the dead leader expires during its SyncGroup.
/// Either way the member gets no partitions though it is alone in the
/// group, which [`Stuck::check`] detects so the task can end: the
/// supervisor restarts it, and the fresh member's join succeeds.
pub struct Rebalances {
    revoked: Mutex<Vec<(String, i32)>>,
    /// Since when, and with how many partitions (`None`: no assignment yet).
    assignment: Mutex<(Instant, Option<usize>)>,
}

impl Default for Rebalances {
    fn default() -> Self {
        Self {
            revoked: Mutex::new(Vec::new()),
            assignment: Mutex::new((Instant::now(), None)),
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

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition())),
                );
            }
            self.set_assignment(None);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.set_assignment(Some(tpl.count()));
        }
    }
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

/// The stuck-group check of one consumer (see [`Rebalances`]).
#[derive(Debug, Default)]
pub struct Stuck {
    /// The empty assignment (by its start) already found legitimate.
    checked_alone: Option<Instant>,
}

impl Stuck {
    /// Why the member is stuck without partitions, if it is: no assignment
    /// at all for [`ASSIGNMENT_TIMEOUT`], or an empty one that long while
    /// the group has no other member. An empty assignment with other
    /// members is normal (more members than partitions); the group is
    /// described once per assignment.
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
            Some(0) if self.checked_alone != Some(since) => {
                self.checked_alone = Some(since);
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
