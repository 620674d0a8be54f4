//! The raw topic archive: a consumer group of its own copies every record
//! of every BetFlow topic, untouched, into the lake as gzipped NDJSON
//! (docs/lake-layout.md#topic-archive):
//!
//! `raw/topics/{topic}/date=YYYY-MM-DD/hour=HH/part-{partition}-{first_offset}.ndjson.gz`
//!
//! Records are batched per partition and a batch is written when it reaches
//! `max_bytes`, when it is `flush_after` old, or before a record of another
//! hour (by the record's Kafka timestamp) joins it; the partition's offset
//! is committed only after the object is written. An object's key depends
//! only on its first record, so after a crash the consumer re-reads from the
//! committed offset, rebuilds a batch starting at the same record and
//! replaces the object it may already have written: every record ends up in
//! exactly one object. That needs the batch to start exactly at the
//! committed offset: a partition that arrives from past it (tansu serves a
//! partition assigned inside a record batch from the next batch on) is
//! fetched again from before it, and what precedes it is skipped, the way
//! the processors do ([`group::seek_back`]). (Two members writing the
//! same partition could still race on one key, but only if one outlived
//! its membership in the middle of a write: the rebalance waits for a
//! live member to give its partitions up, which it does between records.
//! The loser's commit fails and it restarts, but its object may have
//! landed last.) Offsets must never start over: a topic deleted and created
//! again under its name, or the log of an in-memory broker lost when it
//! restarts (`betflow up`'s embedded one keeps its log on disk unless
//! tansu lacks SQLite support), would write its new records under the keys
//! of the old ones of the same hour.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use orchestrator::{StreamContext, StreamTask, TaskError};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

use super::group::{self, seek_back, Rebalances, SeekBack, Stuck, IDLE_WAKEUP, SEEK_TIMEOUT};
use super::settings::KafkaSettings;
use lakehouse::lake::{gzip, ObjectStore};

/// Root of the topic archive in the lake.
pub const TOPICS_ROOT: &str = "raw/topics";
/// Its consumer group is `{KAFKA_GROUP_PREFIX}-archive`.
pub const ARCHIVE_NAME: &str = "archive";
/// `KAFKA_ARCHIVE_FLUSH_MS`: oldest a batch gets before it is written (default 60 s).
pub const FLUSH_MS_ENV: &str = "KAFKA_ARCHIVE_FLUSH_MS";
/// `KAFKA_ARCHIVE_MAX_BYTES`: uncompressed size that writes a batch (default 16 MiB).
pub const MAX_BYTES_ENV: &str = "KAFKA_ARCHIVE_MAX_BYTES";

/// One archived record: an NDJSON line. Key and value keep their exact
/// bytes: as text and embedded JSON when they are (a value is embedded only
/// if it is one-line JSON, so a line stays a record), else as hex. No
/// value field at all is a record with no value (a tombstone).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp (ms since the epoch), if it has one.
    pub timestamp_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
}

/// `value` as embedded JSON, if it is one-line JSON that keeps its exact
/// bytes that way (serde_json's raw values drop surrounding whitespace).
fn embeddable_json(value: &[u8]) -> Option<Box<RawValue>> {
    if value.contains(&b'\n') {
        return None;
    }
    let text: &str = std::str::from_utf8(value).ok()?;
    RawValue::from_string(text.to_string())
        .ok()
        .filter(|raw| raw.get() == text)
}

impl ArchivedRecord {
    fn of(msg: &BorrowedMessage<'_>) -> Self {
        let key: Option<&[u8]> = msg.key();
        let text_key: Option<String> =
            key.and_then(|k| std::str::from_utf8(k).ok().map(str::to_string));
        let value: Option<&[u8]> = msg.payload();
        let json_value: Option<Box<RawValue>> = value.and_then(embeddable_json);
        Self {
            topic: msg.topic().to_string(),
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp_ms: msg.timestamp().to_millis(),
            key_hex: key.filter(|_| text_key.is_none()).map(hex::encode),
            key: text_key,
            value_hex: value.filter(|_| json_value.is_none()).map(hex::encode),
            value: json_value,
        }
    }

    /// The record's key bytes, as produced.
    pub fn key_bytes(&self) -> Option<Vec<u8>> {
        match (&self.key, &self.key_hex) {
            (Some(k), _) => Some(k.as_bytes().to_vec()),
            (None, Some(h)) => hex::decode(h).ok(),
            (None, None) => None,
        }
    }

    /// The record's value bytes, as produced.
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        match (&self.value, &self.value_hex) {
            (Some(v), _) => Some(v.get().as_bytes().to_vec()),
            (None, Some(h)) => hex::decode(h).ok(),
            (None, None) => None,
        }
    }
}

/// The object of a batch of `topic`'s `partition` starting at `first_offset`
/// (a record of `date`, `hour`).
pub fn archive_key(
    topic: &str,
    date: NaiveDate,
    hour: u32,
    partition: i32,
    first_offset: i64,
) -> String {
    format!(
        "{TOPICS_ROOT}/{topic}/date={}/hour={hour:02}/part-{partition}-{first_offset}.ndjson.gz",
        date.format("%Y-%m-%d")
    )
}

/// Opens the lake the archive writes to, when its task starts (a bad
/// lake setting fails the task, not the DAG build).
pub type OpenLake = Arc<dyn Fn() -> Result<Arc<dyn ObjectStore>, TaskError> + Send + Sync>;

/// The archive consumer's settings.
#[derive(Clone)]
pub struct ArchiveConsumer {
    /// Every topic it archives.
    pub topics: Vec<String>,
    pub open_lake: OpenLake,
    pub kafka: KafkaSettings,
    pub group_id: String,
    pub flush_after: Duration,
    pub max_bytes: usize,
}

impl ArchiveConsumer {
    /// On `kafka`'s cluster, group `{prefix}-archive`, flushing as its
    /// archive settings say.
    pub fn new(kafka: &KafkaSettings, topics: Vec<String>, open_lake: OpenLake) -> Self {
        let config = kafka.consumer(ARCHIVE_NAME);
        Self {
            topics,
            open_lake,
            group_id: config.group_id,
            flush_after: kafka.archive_flush_after,
            max_bytes: kafka.archive_max_bytes,
            kafka: kafka.clone(),
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::msg(format!("{what}: {e}"))
}

/// Records of one partition not written yet.
struct Batch {
    first_offset: i64,
    next_offset: i64,
    date: NaiveDate,
    hour: u32,
    started: Instant,
    records: u64,
    lines: Vec<u8>,
}

/// Where an assigned partition's archive goes on.
#[derive(Debug, Default)]
struct Position {
    /// Offset of the next record to archive (`None`: the first that arrives,
    /// for a partition the group never committed).
    next: Option<i64>,
    /// `(next, to)` of the last seek back, until the record at `next` arrives.
    rewound: Option<SeekBack>,
}

/// What to do with a received record ([`Position::admit`]).
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Archive,
    /// Before where the archive goes on: archived already.
    Skip,
    /// Records before it were never received: fetch again from this offset.
    Rewind(i64),
}

impl Position {
    fn admit(&mut self, offset: i64) -> Admit {
        match self.next {
            Some(next) if offset < next => Admit::Skip,
            Some(next) if offset > next => {
                if let Some(seek) = seek_back(next, self.rewound) {
                    self.rewound = Some(seek);
                    let (_, to) = seek;
                    return Admit::Rewind(to);
                }
                tracing::warn!(
                    "offsets {next}..{offset} are no longer in the log; archiving on from {offset}"
                );
                self.archived(offset);
                Admit::Archive
            }
            _ => {
                self.archived(offset);
                Admit::Archive
            }
        }
    }

    fn archived(&mut self, offset: i64) {
        self.next = Some(offset + 1);
        self.rewound = None;
    }
}

#[derive(Default)]
struct Health {
    records: u64,
    /// Seeks back after a partition arrived from past its committed offset.
    rewinds: u64,
    objects: u64,
    bytes: u64,
    /// `topic/partition` → next offset archived and committed.
    committed: BTreeMap<String, i64>,
    last_object: Option<String>,
}

impl Health {
    fn json(&self) -> serde_json::Value {
        json!({
            "records": self.records,
            "rewinds": self.rewinds,
            "objects": self.objects,
            "bytes": self.bytes,
            "committed": self.committed,
            "last_object": self.last_object,
        })
    }
}

type Batches = HashMap<(String, i32), Batch>;
type Positions = HashMap<(String, i32), Position>;

/// Whether to archive `msg`. A record from past its partition's position
/// is not: the partition is sought back instead.
fn admit(
    consumer: &StreamConsumer<Rebalances>,
    positions: &mut Positions,
    msg: &BorrowedMessage<'_>,
    health: &mut Health,
) -> bool {
    let key = (msg.topic().to_string(), msg.partition());
    let position: &mut Position = positions.entry(key).or_default();
    let to: i64 = match position.admit(msg.offset()) {
        Admit::Archive => return true,
        Admit::Skip => return false,
        Admit::Rewind(to) => to,
    };
    let (topic, partition) = (msg.topic(), msg.partition());
    tracing::info!(
        topic,
        partition,
        "archive received offset {} past its position; fetching again from {to}",
        msg.offset()
    );
    // Fails when a rebalance took the partition away meanwhile (its next
    // owner starts from the commit); otherwise the next record asks again.
    match consumer.seek(topic, partition, Offset::Offset(to), SEEK_TIMEOUT) {
        Ok(()) => health.rewinds += 1,
        Err(e) => {
            tracing::warn!(topic, partition, "seeking back to {to}: {e}");
            position.rewound = None;
        }
    }
    false
}

#[async_trait]
impl StreamTask for ArchiveConsumer {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        let store: Arc<dyn ObjectStore> = (self.open_lake)()?;
        let topics: Vec<String> = self.topics.clone();
        super::producer::ensure_topics(&self.kafka, &topics)
            .await
            .map_err(|e| fail("creating topics", e))?;
        let consumer: StreamConsumer<Rebalances> =
            group::join(&self.kafka, &self.group_id, &topics)
                .map_err(|e| fail("joining the consumer group", e))?;
        let mut batches: Batches = HashMap::new();
        let mut positions: Positions = HashMap::new();
        let mut health = Health::default();
        let mut stuck = Stuck::default();
        ctx.report(health.json());
        let mut reported: u64 = 0;
        loop {
            if let Some(why) = stuck.check(&consumer, &self.group_id) {
                return Err(TaskError::msg(format!(
                    "consumer group {}: {why}; rejoining",
                    self.group_id
                )));
            }
            let msg: Option<BorrowedMessage<'_>> = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Ok(()),
                m = tokio::time::timeout(IDLE_WAKEUP, consumer.recv()) => match m {
                    Ok(m) => Some(m.map_err(|e| fail("receiving", e))?),
                    Err(_) => None,
                },
            };
            // After the receive: a rebalance runs inside it, and the
            // record may be the first of a partition it assigned.
            for key in group::take_revoked(&consumer) {
                // Unwritten records are re-read by the partition's next owner.
                batches.remove(&key);
                positions.remove(&key);
            }
            let assigned: group::Assigned = group::take_assigned(&consumer).map_err(|why| {
                TaskError::msg(format!(
                    "consumer group {}: {why}; rejoining",
                    self.group_id
                ))
            })?;
            for (key, at) in assigned {
                positions.insert(
                    key,
                    Position {
                        next: at,
                        rewound: None,
                    },
                );
            }
            let admitted: Option<BorrowedMessage<'_>> =
                msg.filter(|msg| admit(&consumer, &mut positions, msg, &mut health));
            if let Some(msg) = admitted {
                let key = (msg.topic().to_string(), msg.partition());
                let at: DateTime<Utc> = msg
                    .timestamp()
                    .to_millis()
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or_else(Utc::now);
                let (date, hour) = (at.date_naive(), at.hour());
                // A part never spans two hours.
                if batches
                    .get(&key)
                    .is_some_and(|b| (b.date, b.hour) != (date, hour))
                {
                    self.flush(&*store, &consumer, &mut batches, &key, &mut health)
                        .await?;
                }
                let batch: &mut Batch = batches.entry(key.clone()).or_insert_with(|| Batch {
                    first_offset: msg.offset(),
                    next_offset: msg.offset(),
                    date,
                    hour,
                    started: Instant::now(),
                    records: 0,
                    lines: Vec::new(),
                });
                serde_json::to_writer(&mut batch.lines, &ArchivedRecord::of(&msg))
                    .map_err(|e| fail("encoding a record", e))?;
                batch.lines.push(b'\n');
                batch.records += 1;
                batch.next_offset = msg.offset() + 1;
                if batch.lines.len() >= self.max_bytes {
                    self.flush(&*store, &consumer, &mut batches, &key, &mut health)
                        .await?;
                }
            }
            let due: Vec<(String, i32)> = batches
                .iter()
                .filter(|(_, b)| b.started.elapsed() >= self.flush_after)
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                self.flush(&*store, &consumer, &mut batches, &key, &mut health)
                    .await?;
            }
            if health.objects != reported {
                reported = health.objects;
                ctx.report(health.json());
            }
        }
    }
}

impl ArchiveConsumer {
    /// Writes a partition's batch, then commits its offset. A failed commit
    /// fails the task: the restart re-reads from the last commit and
    /// rewrites the same object.
    async fn flush(
        &self,
        store: &dyn ObjectStore,
        consumer: &StreamConsumer<Rebalances>,
        batches: &mut Batches,
        key: &(String, i32),
        health: &mut Health,
    ) -> Result<(), TaskError> {
        let Some(batch) = batches.remove(key) else {
            return Ok(());
        };
        let (topic, partition) = key;
        let object: String = archive_key(
            topic,
            batch.date,
            batch.hour,
            *partition,
            batch.first_offset,
        );
        let bytes: Vec<u8> = gzip(&object, &batch.lines)?;
        let size: u64 = bytes.len() as u64;
        store.put(&object, bytes).await?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, *partition, Offset::Offset(batch.next_offset))
            .map_err(|e| fail("listing offsets", e))?;
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| fail(&format!("committing {topic}/{partition} after {object}"), e))?;
        health.records += batch.records;
        health.objects += 1;
        health.bytes += size;
        health
            .committed
            .insert(format!("{topic}/{partition}"), batch.next_offset);
        health.last_object = Some(object);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_lake_layout() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 4).expect("date");
        assert_eq!(
            archive_key("betflow.odds.nba", day, 7, 2, 1234),
            "raw/topics/betflow.odds.nba/date=2026-01-04/hour=07/part-2-1234.ndjson.gz"
        );
    }

    #[test]
    fn a_partition_arriving_past_its_commit_is_fetched_again_and_resumes_at_it() {
        let mut position = Position {
            next: Some(5_000),
            rewound: None,
        };
        // The broker served the next record batch on: fetch from before it.
        assert_eq!(position.admit(5_040), Admit::Rewind(3_976));
        // Still past it after the seek (a longer batch): further back.
        assert_eq!(position.admit(5_040), Admit::Rewind(2_952));
        // What precedes the commit was archived by the last owner.
        assert_eq!(position.admit(2_952), Admit::Skip);
        assert_eq!(position.admit(4_999), Admit::Skip);
        assert_eq!(position.admit(5_000), Admit::Archive);
        assert_eq!(position.admit(5_001), Admit::Archive);
        assert_eq!(position.rewound, None);
        assert_eq!(position.next, Some(5_002));
    }

    #[test]
    fn a_partition_never_committed_starts_with_what_arrives_first() {
        let mut position = Position::default();
        assert_eq!(position.admit(17), Admit::Archive);
        assert_eq!(position.admit(18), Admit::Archive);
    }

    #[test]
    fn records_gone_from_the_log_leave_a_hole_after_a_seek_to_its_start() {
        let mut position = Position {
            next: Some(300),
            rewound: None,
        };
        assert_eq!(position.admit(900), Admit::Rewind(0));
        assert_eq!(position.admit(900), Admit::Archive);
        assert_eq!(position.next, Some(901));
    }

    #[test]
    fn records_keep_their_exact_bytes() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
        let cases: [Case<'_>; 7] = [
            (Some(b"evt-1"), Some(br#"{"a": 1.50, "b":[1,2]}"#)),
            (Some(b"padded"), Some(b" {\"a\":1} ")),
            (Some(b"cr"), Some(b"{\"a\":1}\r")),
            (Some(&[0xff, 0x00]), Some(b"not json")),
            (None, Some(b"{\n  \"pretty\": true\n}")),
            (Some(b"k"), Some(&[0xc3, 0x28])),
            (Some(b"tombstone"), None),
        ];
        for (key, value) in cases {
            let record = ArchivedRecord {
                topic: "t".into(),
                partition: 0,
                offset: 1,
                timestamp_ms: None,
                key: key
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .map(str::to_string),
                key_hex: key
                    .filter(|k| std::str::from_utf8(k).is_err())
                    .map(hex::encode),
                value: value.and_then(embeddable_json),
                value_hex: None,
            };
            let record = ArchivedRecord {
                value_hex: value.filter(|_| record.value.is_none()).map(hex::encode),
                ..record
            };
            let line: String = serde_json::to_string(&record).expect("json");
            assert!(!line.contains('\n'), "{line}");
            let back: ArchivedRecord = serde_json::from_str(&line).expect("parses");
            assert_eq!(back.key_bytes().as_deref(), key, "{line}");
            assert_eq!(back.value_bytes().as_deref(), value, "{line}");
        }
        assert_eq!(hex::decode("0aff").ok(), Some(vec![0x0a, 0xff]));
        assert_eq!(hex::decode("0af").ok(), None);
    }
}
