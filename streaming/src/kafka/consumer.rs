//! The consumer-group stream task every processor runs in: one loop over a
//! [`TopicProcessor`], so odds, games, weather and news share how messages
//! are batched, decoded, dead-lettered, written and checkpointed.
//!
//! Processor state is kept per partition (Kafka's unit of ordering and of
//! rebalancing), so results depend only on each partition's message order:
//! not on how partitions interleave, how many processes share the group, or
//! where a crash fell. Each batch of messages is written in one Postgres
//! transaction, which also saves, at most every `checkpoint_every`, each
//! touched partition's state with its next offset
//! ([`super::checkpoint`]). Only after that commit is the same offset
//! committed to Kafka. A restart (crash, rebalance, deploy) restores the
//! checkpoint, skips what it already covers and re-applies the rest, whose
//! upserts rewrite identical rows.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::{StreamContext, StreamTask, TaskError};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use sqlx::postgres::PgPool;
use sqlx::PgConnection;

use super::checkpoint::{self, Checkpoint, Partition};
use super::config::{
    ConsumerConfig, FUTURE, IMPLAUSIBLE, MAX_EVENT_SKEW_ENV, MAX_MESSAGE_BYTES_ENV, OVERSIZED,
    OVERSIZED_KEPT_BYTES,
};
use super::group::{
    self, seek_back, Rebalances, SeekBack, Stuck, IDLE_WAKEUP, LAG_EVERY, SEEK_TIMEOUT,
};
use super::write::Prepared;
use crate::dead_letter::DeadLetterReason;
use crate::envelope::{decode, Envelope, TopicScheme};
use crate::window::WindowError;
pub use crate::PartitionState;

/// Why an event time cannot be true, if it cannot: stamped further ahead
/// of its ingest time, or of `now`, than `skew` (`future`), or before 2000,
/// older than any source's data (`implausible_time`).
pub fn implausible_time(
    event_time: DateTime<Utc>,
    ingest_time: DateTime<Utc>,
    now: DateTime<Utc>,
    skew: chrono::TimeDelta,
) -> Option<DeadLetterReason> {
    let limit = ingest_time.min(now) + skew;
    if event_time > limit {
        return Some(DeadLetterReason::new(
            FUTURE,
            format!(
                "event time {event_time} is more than {}s ahead of its ingest time {ingest_time} or of now ({MAX_EVENT_SKEW_ENV})",
                skew.num_seconds()
            ),
        ));
    }
    let earliest = DateTime::from_timestamp(946_684_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    (event_time < earliest).then(|| {
        DeadLetterReason::new(
            IMPLAUSIBLE,
            format!("event time {event_time} is before 2000, older than any source's data"),
        )
    })
}

/// Envelope fields a sink needs besides the processor's output.
#[derive(Debug, Clone)]
pub struct Meta {
    pub sport: String,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

/// Row counters a sink increments, by name (shown in the task's health).
pub type Counters = BTreeMap<&'static str, u64>;

/// The topic scheme of a processor's messages.
type Topics<P> = <<P as TopicProcessor>::State as PartitionState>::Topics;

/// The output of a processor's messages.
pub type Output<P> = <<P as TopicProcessor>::State as PartitionState>::Output;

/// A processor as a consumer runs it: which topics, what state per
/// partition, and how its output reaches `serving`.
#[async_trait]
pub trait TopicProcessor: Send + Sync + 'static {
    /// The `processor` column of its serving and dead-letter rows.
    const NAME: &'static str;
    /// It consumes every topic of this kind (each scope's).
    const KIND: crate::Kind<Self::State>;
    /// Counters its sink reports, shown as zeros before the first message.
    const COUNTERS: &'static [&'static str];
    /// One partition's state.
    type State: PartitionState;

    /// The configuration the state depends on (window size, lateness,
    /// thresholds): a checkpoint saved under another one is not restored.
    fn fingerprint(&self) -> String;
    fn fresh(&self) -> Result<Self::State, WindowError>;
    /// Upserts one message's output. Every write must be idempotent: after
    /// a restart the messages since the last checkpoint are written again.
    async fn write(
        &self,
        conn: &mut PgConnection,
        meta: &Meta,
        output: &Output<Self>,
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error>;
    /// Upserts the outputs of a batch's messages, in offset order, in one
    /// transaction. The default writes them one by one; a sink whose
    /// messages keep overwriting the same rows coalesces them first, so a
    /// busy key costs one row write per batch instead of one per message.
    async fn write_many(
        &self,
        conn: &mut PgConnection,
        outputs: &[(&Meta, &Output<Self>)],
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        for (meta, output) in outputs {
            self.write(conn, meta, output, counters).await?;
        }
        Ok(())
    }
}

/// A consumer-group stream task running `processor`.
pub struct KafkaConsumer<P> {
    pub config: ConsumerConfig,
    pub processor: P,
}

impl<P: TopicProcessor> KafkaConsumer<P> {
    pub fn new(config: ConsumerConfig, processor: P) -> Self {
        Self { config, processor }
    }
}

pub(super) fn fail(what: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::msg(format!("{what}: {e}"))
}

/// One assigned partition's processing state.
pub(super) struct Part<S> {
    pub(super) state: S,
    /// Offset after the last message the state holds (applied, or covered
    /// by the restored checkpoint); see [`KafkaConsumer::admit`]. The state
    /// of a revoked partition is kept until it is checkpointed: a partition
    /// that comes back before then goes on with it, and one that comes back
    /// later reloads the checkpoint, so members added to the group free the
    /// memory of the partitions they took.
    pub(super) next_offset: Option<i64>,
    /// Applied messages not in a checkpoint yet.
    pub(super) dirty: bool,
    /// `(next_offset, to)` of this member's last seek back (see
    /// [`KafkaConsumer::admit`]), until the message at `next_offset`
    /// arrives or the partition is revoked.
    pub(super) rewound: Option<SeekBack>,
    /// Revoked, and no message of it applied since.
    pub(super) revoked: bool,
    /// Whether the log was checked to reach `next_offset` since the state
    /// was opened or the partition last revoked ([`KafkaConsumer::log_restarted`]).
    pub(super) log_checked: bool,
}

/// What to do with a received message ([`KafkaConsumer::admit`]).
enum Admit {
    Apply,
    /// Applied already.
    Skip,
    /// Messages before it were never applied: fetch the partition again
    /// from this offset (this message and the rest already fetched are
    /// dropped).
    Rewind(i64),
}

#[derive(Default)]
pub(super) struct Health {
    messages: u64,
    skipped: u64,
    /// Partitions continued past messages never applied ([`KafkaConsumer::admit`]).
    holes: u64,
    /// Partitions fetched again from where their state ends.
    rewinds: u64,
    pub(super) dead_letters: u64,
    pub(super) sink_errors: u64,
    pub(super) checkpoints: u64,
    discarded_checkpoints: u64,
    /// Partitions whose log ended before their checkpoint (created again).
    log_restarts: u64,
    pub(super) counters: Counters,
    /// `topic/partition` → next offset applied.
    positions: BTreeMap<String, i64>,
    /// `topic/partition` → next offset checkpointed (and committed).
    committed: BTreeMap<String, i64>,
    /// `topic/partition` → messages in the log past the last one received
    /// (librdkafka's statistics), refreshed every [`LAG_EVERY`].
    lag: BTreeMap<String, i64>,
}

impl Health {
    fn json(&self) -> Value {
        let mut doc = json!({
            "messages": self.messages,
            "skipped": self.skipped,
            "holes": self.holes,
            "rewinds": self.rewinds,
            "dead_letters": self.dead_letters,
            "sink_errors": self.sink_errors,
            "checkpoints": self.checkpoints,
            "discarded_checkpoints": self.discarded_checkpoints,
            "log_restarts": self.log_restarts,
            "positions": self.positions,
            "committed": self.committed,
            "lag": self.lag,
            "lag_total": self.lag.values().sum::<i64>(),
            "last_message": Utc::now().to_rfc3339(),
        });
        if let Value::Object(map) = &mut doc {
            for (name, n) in &self.counters {
                map.insert((*name).to_string(), json!(n));
            }
        }
        doc
    }
}

pub(super) type Parts<S> = HashMap<(String, i32), Part<S>>;

#[async_trait]
impl<P: TopicProcessor> StreamTask for KafkaConsumer<P> {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        // The process's own database (embedded or DATABASE_URL) holds `serving`.
        let pool: PgPool = ctx.database().clone();
        let cfg: &ConsumerConfig = &self.config;
        let topics: Vec<String> = Topics::<P>::topics_of(P::KIND);
        super::producer::ensure_topics(&cfg.kafka, &topics)
            .await
            .map_err(|e| fail(&format!("creating {} topics", P::KIND), e))?;
        let consumer: StreamConsumer<Rebalances> = group::join(&cfg.kafka, &cfg.group_id, &topics)
            .map_err(|e| fail("joining the consumer group", e))?;
        // Fail now, not on the first message, if the configuration is bad.
        self.processor
            .fresh()
            .map_err(|e| fail(&format!("{} processor", P::NAME), e))?;

        let mut parts: Parts<P::State> = HashMap::new();
        let mut health = Health::default();
        for name in P::COUNTERS {
            health.counters.insert(*name, 0);
        }
        ctx.report(health.json());
        let mut last_checkpoint: Instant = Instant::now();
        let mut last_lag: Instant = Instant::now();
        let mut stuck = Stuck::default();
        loop {
            if let Some(why) = stuck.check(&consumer, &cfg.group_id) {
                return Err(TaskError::msg(format!(
                    "consumer group {}: {why}; rejoining",
                    cfg.group_id
                )));
            }
            let first: Option<BorrowedMessage<'_>> = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Ok(()),
                m = tokio::time::timeout(IDLE_WAKEUP.min(cfg.checkpoint_every), consumer.recv()) => match m {
                    Ok(m) => Some(m.map_err(|e| fail("receiving", e))?),
                    // Idle: still checkpoint what the last batch applied.
                    Err(_) => None,
                },
            };
            let mut batch: Vec<BorrowedMessage<'_>> = first.into_iter().collect();
            while !batch.is_empty() && batch.len() < cfg.batch_max {
                // A zero timeout takes only what librdkafka already fetched.
                match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                    Ok(m) => batch.push(m.map_err(|e| fail("receiving", e))?),
                    Err(_) => break,
                }
            }
            let mut prepared: Vec<Prepared<'_, Output<P>>> = Vec::with_capacity(batch.len());
            // A partition that comes back starts over from its committed
            // offset: a seek back made before it left says nothing then.
            for key in group::take_revoked(&consumer) {
                if let Some(part) = parts.get_mut(&key) {
                    part.rewound = None;
                    part.revoked = true;
                    part.log_checked = false;
                }
            }
            // A revoked partition's state, once checkpointed, is what the
            // checkpoint restores should the partition come back.
            parts.retain(|_, p| !p.revoked || p.dirty);
            // Partitions sought back in this batch: their later messages in
            // it were fetched before the seek.
            let mut rewound: Vec<(String, i32)> = Vec::new();
            for msg in &batch {
                let key = (msg.topic().to_string(), msg.partition());
                if rewound.contains(&key) {
                    continue;
                }
                match self
                    .admit(
                        &consumer,
                        &pool,
                        &mut parts,
                        &key,
                        msg.offset(),
                        &mut health,
                    )
                    .await?
                {
                    Admit::Apply => {}
                    Admit::Skip => continue,
                    Admit::Rewind(to) => {
                        let (topic, partition) = &key;
                        tracing::info!(
                            processor = P::NAME,
                            topic,
                            partition,
                            "received offset {} past the state; fetching again from {to}",
                            msg.offset()
                        );
                        // Fails when a rebalance took the partition away
                        // meanwhile (librdkafka only seeks a fetched one):
                        // its next owner starts from the committed offset.
                        if let Err(e) =
                            consumer.seek(topic, *partition, Offset::Offset(to), SEEK_TIMEOUT)
                        {
                            tracing::warn!(
                                processor = P::NAME,
                                topic,
                                partition,
                                "seeking back to {to}: {e}; dropping what was fetched past the state"
                            );
                            if let Some(part) = parts.get_mut(&key) {
                                part.rewound = None;
                            }
                        } else {
                            health.rewinds += 1;
                        }
                        rewound.push(key);
                        continue;
                    }
                }
                let Some(part) = parts.get_mut(&key) else {
                    continue;
                };
                prepared.push(self.prepare(part, msg));
                part.next_offset = Some(msg.offset() + 1);
                part.dirty = true;
                part.revoked = false;
                health
                    .positions
                    .insert(format!("{}/{}", key.0, key.1), msg.offset() + 1);
            }
            if last_lag.elapsed() >= LAG_EVERY {
                health.lag = group::lag(&consumer);
                last_lag = Instant::now();
                ctx.report(health.json());
            }
            let due: bool = last_checkpoint.elapsed() >= cfg.checkpoint_every;
            if prepared.is_empty() && !(due && parts.values().any(|p| p.dirty)) {
                continue;
            }
            let committed: Vec<((String, i32), i64)> = self
                .write_batch(&pool, &prepared, &mut parts, due, &mut health)
                .await?;
            if due {
                last_checkpoint = Instant::now();
            }
            if !committed.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for ((topic, partition), next) in &committed {
                    tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                        .map_err(|e| fail("listing offsets", e))?;
                    health
                        .committed
                        .insert(format!("{topic}/{partition}"), *next);
                }
                // A lost commit only means re-applying from the checkpoint,
                // which skips what it covers: log, do not fail.
                if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                    tracing::warn!(processor = P::NAME, "committing offsets: {e}");
                }
            }
            health.messages += prepared.len() as u64;
            ctx.report(health.json());
        }
    }
}

impl<P: TopicProcessor> KafkaConsumer<P> {
    /// Whether the log of a partition whose checkpoint continues at `next`
    /// ends before it: the topic was deleted and created again, or the
    /// broker lost its log (an in-memory one does when it restarts). The
    /// checkpoint is discarded then, since the new log's offsets start over
    /// and would all be skipped as applied. A bounded blocking call, made
    /// once per opening of a partition's state or return of the partition,
    /// for the first message that comes before the state.
    async fn log_restarted(
        &self,
        consumer: &StreamConsumer<Rebalances>,
        pool: &PgPool,
        (topic, partition): &(String, i32),
        next: i64,
    ) -> Result<bool, TaskError> {
        // Not knowing would mean skipping what may be a new log's messages:
        // fail instead, and the restarted task asks again.
        let (_, high): (i64, i64) = consumer
            .fetch_watermarks(topic, *partition, SEEK_TIMEOUT)
            .map_err(|e| fail(&format!("reading the end of {topic}/{partition}"), e))?;
        if next <= high {
            return Ok(false);
        }
        tracing::warn!(
            processor = P::NAME,
            topic,
            partition,
            "the checkpoint continues at offset {next} but the log ends at {high}: \
             the topic was created again; starting it afresh"
        );
        let at = Partition {
            group_id: &self.config.group_id,
            topic,
            partition: *partition,
        };
        checkpoint::discard(pool, at, next)
            .await
            .map_err(|e| fail("discarding the checkpoint", e))?;
        Ok(true)
    }

    /// A newly seen partition: its checkpoint restored, else empty state.
    async fn open_part(
        &self,
        pool: &PgPool,
        (topic, partition): &(String, i32),
        health: &mut Health,
    ) -> Result<Part<P::State>, TaskError> {
        let at = Partition {
            group_id: &self.config.group_id,
            topic,
            partition: *partition,
        };
        let saved: Option<Checkpoint> = checkpoint::load(pool, at)
            .await
            .map_err(|e| fail("loading the checkpoint", e))?;
        let fresh = || {
            self.processor
                .fresh()
                .map_err(|e| fail(&format!("{} processor", P::NAME), e))
        };
        let Some(saved) = saved else {
            return Ok(Part {
                state: fresh()?,
                next_offset: None,
                rewound: None,
                dirty: false,
                revoked: false,
                log_checked: false,
            });
        };
        let fingerprint: String = self.processor.fingerprint();
        let restored: Result<P::State, String> = if saved.processor != P::NAME
            || saved.fingerprint != fingerprint
        {
            Err(format!(
                "saved by {} under `{}`, now {} under `{fingerprint}`",
                saved.processor,
                saved.fingerprint,
                P::NAME
            ))
        } else {
            serde_json::from_value::<<P::State as PartitionState>::Snapshot>(saved.state)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    let mut state: P::State = self.processor.fresh().map_err(|e| e.to_string())?;
                    state.restore(s);
                    // A checkpoint saved before future-stamped events were
                    // refused may hold a watermark years ahead: pull it back.
                    state.heal(Utc::now() + self.config.max_event_skew);
                    Ok(state)
                })
        };
        let state: P::State = match restored {
            Ok(state) => state,
            Err(why) => {
                // The offset still holds: what it covers is in `serving`.
                tracing::warn!(
                    processor = P::NAME,
                    topic,
                    partition,
                    "checkpoint not restored ({why}); continuing at offset {} with empty state",
                    saved.next_offset
                );
                health.discarded_checkpoints += 1;
                fresh()?
            }
        };
        Ok(Part {
            state,
            next_offset: Some(saved.next_offset),
            dirty: false,
            rewound: None,
            revoked: false,
            log_checked: false,
        })
    }

    /// Whether the message at `offset` continues the state of its
    /// partition, which holds everything before its `next_offset`: the
    /// checkpoint's state the first time the partition is seen, then its
    /// own. One below it was applied already (the partition came back from
    /// its committed offset): skipped. One above it comes after messages
    /// another member applied (the partition was away): the state is
    /// reloaded from the checkpoint, which the committed offset never
    /// passes.
    ///
    /// Should even that not reach the message, the partition is fetched
    /// again from before where the state ends ([`seek_back`]: tansu
    /// serves a partition assigned inside a record batch from the next
    /// batch on), and what comes before it is skipped. Only a message past
    /// the state after a seek to the start of the log means the log no
    /// longer has what is missing; that hole is logged and counted.
    async fn admit(
        &self,
        consumer: &StreamConsumer<Rebalances>,
        pool: &PgPool,
        parts: &mut Parts<P::State>,
        key: &(String, i32),
        offset: i64,
        health: &mut Health,
    ) -> Result<Admit, TaskError> {
        if !parts.contains_key(key) {
            let part = self.open_part(pool, key, health).await?;
            parts.insert(key.clone(), part);
        }
        let Some(part) = parts.get_mut(key) else {
            return Ok(Admit::Skip);
        };
        // The first message from before the state after it was opened or
        // the partition came back: the log may have started over.
        if let Some(next) = part.next_offset.filter(|next| offset < *next) {
            if !part.log_checked {
                part.log_checked = true;
                if self.log_restarted(consumer, pool, key, next).await? {
                    health.log_restarts += 1;
                    *part = Part {
                        state: self
                            .processor
                            .fresh()
                            .map_err(|e| fail(&format!("{} processor", P::NAME), e))?,
                        next_offset: None,
                        dirty: false,
                        rewound: None,
                        revoked: false,
                        log_checked: true,
                    };
                }
            }
        }
        let next: i64 = match part.next_offset {
            Some(next) if offset > next => next,
            Some(next) if offset < next => {
                health.skipped += 1;
                return Ok(Admit::Skip);
            }
            _ => {
                part.rewound = None;
                return Ok(Admit::Apply);
            }
        };
        let rewound: Option<SeekBack> = part.rewound;
        let saved: Part<P::State> = self.open_part(pool, key, health).await?;
        match saved.next_offset {
            Some(at) if at >= next && at <= offset => *part = saved,
            Some(at) if at > offset => {
                *part = saved;
                health.skipped += 1;
                return Ok(Admit::Skip);
            }
            _ => {}
        }
        if let Some(next) = part.next_offset.filter(|n| *n < offset) {
            // A seek made for another state (since reloaded) says nothing.
            if let Some(seek) = seek_back(next, rewound) {
                part.rewound = Some(seek);
                let (_, to) = seek;
                return Ok(Admit::Rewind(to));
            }
            let (topic, partition) = key;
            tracing::warn!(
                processor = P::NAME,
                topic,
                partition,
                "offsets {next}..{offset} were never applied (no longer in the log?); continuing with a hole"
            );
            health.holes += 1;
        }
        part.rewound = None;
        Ok(Admit::Apply)
    }

    /// Size check, decode, apply: what to write for one message.
    fn prepare<'m>(
        &self,
        part: &mut Part<P::State>,
        msg: &'m BorrowedMessage<'m>,
    ) -> Prepared<'m, Output<P>> {
        let payload: &[u8] = msg.payload().unwrap_or_default();
        let rejected = |problem: DeadLetterReason| Prepared {
            msg,
            meta: None,
            output: None,
            problem: Some(problem),
        };
        if payload.len() > self.config.max_message_bytes {
            return rejected(DeadLetterReason::new(
                OVERSIZED,
                format!(
                    "message of {} bytes exceeds the limit of {} bytes ({MAX_MESSAGE_BYTES_ENV}); payload truncated to its first {} bytes",
                    payload.len(),
                    self.config.max_message_bytes,
                    OVERSIZED_KEPT_BYTES.min(payload.len())
                ),
            ));
        }
        let envelope: Envelope<<P::State as PartitionState>::Payload, crate::Kind<P::State>> =
            match decode::<Topics<P>, _>(msg.topic(), msg.key(), payload) {
                Ok(e) => e,
                Err(e) => return rejected(DeadLetterReason::new(e.code(), e.to_string())),
            };
        if let Some(problem) = implausible_time(
            envelope.event_time,
            envelope.ingest_time,
            Utc::now(),
            self.config.max_event_skew,
        ) {
            // Never applied: one bad clock must not move a watermark.
            return rejected(problem);
        }
        let (output, problem) = part.state.apply(&envelope);
        Prepared {
            msg,
            meta: Some(Meta {
                sport: envelope.sport,
                event_time: envelope.event_time,
                ingest_time: envelope.ingest_time,
            }),
            output: Some(output),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn events_stamped_ahead_of_their_ingest_or_of_now_are_future() {
        let skew = TimeDelta::minutes(5);
        let now = at("2026-12-05T18:00:00Z");
        let ingest = at("2026-12-05T17:59:58Z");
        // A true event: a little before its ingest time.
        assert!(implausible_time(at("2026-12-05T17:59:00Z"), ingest, now, skew).is_none());
        // Within the skew of a fast clock.
        assert!(implausible_time(at("2026-12-05T18:03:00Z"), ingest, now, skew).is_none());
        let year_2099 = implausible_time(at("2099-01-01T00:00:00Z"), ingest, now, skew).unwrap();
        assert_eq!(year_2099.code, FUTURE);
        // An ingest time in the future does not excuse it: now bounds both.
        let both_ahead = implausible_time(
            at("2099-01-01T00:00:00Z"),
            at("2099-01-01T00:00:00Z"),
            now,
            skew,
        )
        .unwrap();
        assert_eq!(both_ahead.code, FUTURE);
        let epoch = implausible_time(at("1970-01-01T00:00:00Z"), ingest, now, skew).unwrap();
        assert_eq!(epoch.code, IMPLAUSIBLE);
    }
}
