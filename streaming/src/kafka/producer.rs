//! One shared async producer: envelopes to their topics keyed by
//! the payload's key (event id), so every update of an event lands on one
//! partition, in order. Missing topics are created with a configured
//! partition count; failed deliveries are retried and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::kafka::settings::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::client_log::QuietContext;
use serde::Serialize;
use thiserror::Error;

use std::fmt::Display;

use crate::envelope::{encode, Envelope, Keyed};

#[derive(Debug, Error)]
pub enum ProduceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("encoding the envelope: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("creating topic `{topic}`: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("delivery to `{topic}` failed after {attempts} attempts: {error}")]
    Delivery {
        topic: String,
        attempts: u32,
        error: KafkaError,
    },
}

/// Delivery counters, for health reports.
#[derive(Debug, Default)]
pub struct ProducerStats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    /// Times the producer started over as a new one after a delivery
    /// failed for good ([`Producer::send_raw`]).
    pub started_over: AtomicU64,
}

/// `KAFKA_LINGER_MS`: how long the producer gathers a partition's messages
/// into one batch before sending it.
pub const LINGER_MS_ENV: &str = "KAFKA_LINGER_MS";
/// librdkafka's own: BetFlow's publishers send a poll's messages as a
/// group and wait for it, so lingering longer would only delay each group.
pub const DEFAULT_LINGER_MS: u64 = 5;

/// Cheap to clone; every clone shares the underlying librdkafka producer.
#[derive(Clone)]
pub struct Producer {
    /// The librdkafka producer and its generation: replaced by a new one
    /// when a delivery fails for good.
    inner: Arc<RwLock<(u64, FutureProducer<QuietContext>)>>,
    kafka: KafkaSettings,
    linger_ms: u64,
    attempts: u32,
    stats: Arc<ProducerStats>,
}

/// An idempotent producer for `kafka`'s cluster, batching for `linger_ms`.
fn client(
    kafka: &KafkaSettings,
    linger_ms: u64,
) -> Result<FutureProducer<QuietContext>, KafkaError> {
    kafka
        .client_config()
        .set("message.timeout.ms", "10000")
        .set("acks", "all")
        // librdkafka's own retries then neither duplicate nor reorder
        // a partition's messages; a resend after `message.timeout.ms`
        // (`send_raw`) is a new message, which the consumers' keyed
        // upserts absorb.
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .create_with_context(QuietContext::default())
}

impl Producer {
    /// A producer for `kafka`'s cluster that creates missing topics with
    /// its partitions, batching for its `linger_ms`.
    pub fn new(kafka: &KafkaSettings) -> Result<Self, ProduceError> {
        Self::with_linger(kafka, kafka.linger_ms)
    }

    /// [`Producer::new`] batching for `linger_ms`: a steady stream of
    /// independent updates goes out in fewer, larger record batches.
    pub fn with_linger(kafka: &KafkaSettings, linger_ms: u64) -> Result<Self, ProduceError> {
        Ok(Self {
            inner: Arc::new(RwLock::new((0, client(kafka, linger_ms)?))),
            kafka: kafka.clone(),
            linger_ms,
            attempts: 3,
            stats: Arc::new(ProducerStats::default()),
        })
    }

    /// The librdkafka producer now, and its generation.
    fn current(&self) -> (u64, FutureProducer<QuietContext>) {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        (inner.0, inner.1.clone())
    }

    /// Replaces generation `failed` of the librdkafka producer with a new
    /// one, unless another send did already. The new one asks the broker
    /// for a new producer id: a broker that restarted without the state of
    /// the old id (seen with tansu 0.6, which then panicked on every batch
    /// of that id, restart after restart) takes its batches as a new
    /// producer's.
    fn start_over(&self, failed: u64) {
        // A burst of failed sends builds one new client, not one each.
        if self.current().0 != failed {
            return;
        }
        let fresh = match client(&self.kafka, self.linger_ms) {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!("cannot start the Kafka producer over: {e}");
                return;
            }
        };
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.0 != failed {
            return;
        }
        let old = std::mem::replace(&mut *inner, (failed + 1, fresh));
        drop(inner);
        self.stats.started_over.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "the Kafka producer starts over with a new producer id after a failed delivery"
        );
        // Closing a librdkafka client joins its threads: off the runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(move || drop(old))),
            Err(_) => drop(old),
        }
    }

    pub fn stats(&self) -> &ProducerStats {
        &self.stats
    }

    /// Creates the topics that do not exist yet.
    pub async fn ensure_topics<T: Display>(&self, topics: &[T]) -> Result<(), ProduceError> {
        let names: Vec<String> = topics.iter().map(T::to_string).collect();
        ensure_topics(&self.kafka, &names).await
    }

    /// Publishes one envelope to its topic, keyed by the payload's key.
    pub async fn publish<P: Serialize + Keyed, K: Serialize>(
        &self,
        topic: impl Display,
        envelope: &Envelope<P, K>,
    ) -> Result<(i32, i64), ProduceError> {
        let (key, value) = encode(envelope)?;
        self.send_raw(&topic.to_string(), Some(&key), &value).await
    }

    /// Sends bytes as they are (replays, tests of malformed input); retries
    /// a failed delivery up to the configured attempts, and after the last
    /// starts the producer over ([`Producer::start_over`]). Returns
    /// (partition, offset).
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(i32, i64), ProduceError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(value);
            if let Some(k) = key {
                record = record.key(k);
            }
            let (generation, producer) = self.current();
            match producer.send(record, Duration::from_secs(10)).await {
                Ok(delivery) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok((delivery.partition, delivery.offset));
                }
                Err((error, _)) if attempt < self.attempts => {
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(topic, attempt, "delivery failed ({error}); retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err((error, _)) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    // The old producer closes once its last send is done.
                    drop(producer);
                    self.start_over(generation);
                    return Err(ProduceError::Delivery {
                        topic: topic.to_string(),
                        attempts: attempt,
                        error,
                    });
                }
            }
        }
    }
}

/// Creates each topic in `names` unless it exists, with `kafka`'s
/// partitions and replication factor.
pub async fn ensure_topics(kafka: &KafkaSettings, names: &[String]) -> Result<(), ProduceError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                kafka.partitions.max(1),
                TopicReplication::Fixed(kafka.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(ProduceError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}
