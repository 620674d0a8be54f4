//! What every BetFlow Kafka client of a deployment shares, resolved once
//! when the binary starts: the brokers, TLS and SASL, and the sizes and
//! periods of topics, consumers, the producer and the archive. A bad value
//! stops the start naming the variable; nothing here reads the environment
//! later.

use std::time::Duration;

use chrono::TimeDelta;
use orchestrator::setting::{self, Lookup, SettingError};
use rdkafka::config::ClientConfig;

use super::archive::{FLUSH_MS_ENV, MAX_BYTES_ENV};
use super::client::SECURITY_SETTINGS;
use super::config::{
    ConsumerConfig, BATCH_MAX_ENV, CHECKPOINT_MS_ENV, DEFAULT_BATCH_MAX, DEFAULT_CHECKPOINT,
    DEFAULT_GROUP_PREFIX, DEFAULT_MAX_EVENT_SKEW, DEFAULT_MAX_MESSAGE_BYTES, GROUP_PREFIX_ENV,
    MAX_EVENT_SKEW_ENV, MAX_MESSAGE_BYTES_ENV,
};
use super::producer::{DEFAULT_LINGER_MS, LINGER_MS_ENV};
use super::{
    DEFAULT_PARTITIONS, DEFAULT_REPLICATION_FACTOR, PARTITIONS_ENV, REPLICATION_FACTOR_ENV,
};

/// The settings of one Kafka cluster's clients.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers (`KAFKA_BROKERS`, or the embedded broker's).
    pub brokers: String,
    /// librdkafka security properties and their values (`KAFKA_SECURITY_*`,
    /// `KAFKA_SASL_*`, `KAFKA_SSL_*`), passed as they are: librdkafka
    /// checks them when a client is created and names what it rejects.
    pub security: Vec<(&'static str, String)>,
    /// Partitions of topics BetFlow creates (`KAFKA_PARTITIONS`).
    pub partitions: i32,
    /// Replicas of topics BetFlow creates (`KAFKA_REPLICATION_FACTOR`).
    pub replication_factor: i32,
    /// Consumer groups are `{prefix}-{processor}` (`KAFKA_GROUP_PREFIX`).
    pub group_prefix: String,
    /// Larger messages are dead-lettered unparsed (`KAFKA_MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
    /// Messages written per transaction at most (`KAFKA_BATCH_MAX`).
    pub batch_max: usize,
    /// Minimum time between checkpoints of a partition (`KAFKA_CHECKPOINT_MS`).
    pub checkpoint_every: Duration,
    /// How far ahead an event may be stamped (`KAFKA_MAX_EVENT_SKEW_SECS`).
    pub max_event_skew: TimeDelta,
    /// The producer's batching delay (`KAFKA_LINGER_MS`).
    pub linger_ms: u64,
    /// The archive writes a topic's batch after this long (`KAFKA_ARCHIVE_FLUSH_MS`).
    pub archive_flush_after: Duration,
    /// ...or when it holds this many bytes (`KAFKA_ARCHIVE_MAX_BYTES`).
    pub archive_max_bytes: usize,
}

impl KafkaSettings {
    /// `brokers` with every default: what the embedded broker and tests use.
    pub fn new(brokers: &str) -> Self {
        KafkaSettings {
            brokers: brokers.to_owned(),
            security: Vec::new(),
            partitions: DEFAULT_PARTITIONS,
            replication_factor: DEFAULT_REPLICATION_FACTOR,
            group_prefix: DEFAULT_GROUP_PREFIX.to_owned(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            batch_max: DEFAULT_BATCH_MAX,
            checkpoint_every: DEFAULT_CHECKPOINT,
            max_event_skew: DEFAULT_MAX_EVENT_SKEW,
            linger_ms: DEFAULT_LINGER_MS,
            archive_flush_after: Duration::from_secs(60),
            archive_max_bytes: 16 << 20,
        }
    }

    /// `brokers` with the other `KAFKA_*` settings of `env`.
    pub fn resolve(brokers: &str, env: &impl Lookup) -> Result<Self, SettingError> {
        let d = KafkaSettings::new(brokers);
        let security = SECURITY_SETTINGS
            .iter()
            .filter_map(|(name, property)| env.get(name).map(|v| (*property, v)))
            .collect();
        Ok(KafkaSettings {
            brokers: d.brokers,
            security,
            partitions: setting::positive(env, PARTITIONS_ENV)?.unwrap_or(d.partitions),
            replication_factor: setting::positive(env, REPLICATION_FACTOR_ENV)?
                .unwrap_or(d.replication_factor),
            group_prefix: env.get(GROUP_PREFIX_ENV).unwrap_or(d.group_prefix),
            max_message_bytes: setting::positive(env, MAX_MESSAGE_BYTES_ENV)?
                .unwrap_or(d.max_message_bytes),
            batch_max: setting::positive(env, BATCH_MAX_ENV)?.unwrap_or(d.batch_max),
            checkpoint_every: setting::positive(env, CHECKPOINT_MS_ENV)?
                .map(Duration::from_millis)
                .unwrap_or(d.checkpoint_every),
            max_event_skew: setting::positive(env, MAX_EVENT_SKEW_ENV)?
                .map(|secs: u64| TimeDelta::seconds(secs as i64))
                .unwrap_or(d.max_event_skew),
            linger_ms: setting::parsed(env, LINGER_MS_ENV, "must be whole milliseconds")?
                .unwrap_or(d.linger_ms),
            archive_flush_after: setting::positive(env, FLUSH_MS_ENV)?
                .map(Duration::from_millis)
                .unwrap_or(d.archive_flush_after),
            archive_max_bytes: setting::positive(env, MAX_BYTES_ENV)?
                .unwrap_or(d.archive_max_bytes),
        })
    }

    /// These settings with `partitions` per topic created.
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// A librdkafka client configuration: the brokers and the security
    /// properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (property, value) in &self.security {
            config.set(*property, value);
        }
        config
    }

    /// The consumer of processor `name`, in group `{prefix}-{name}`.
    pub fn consumer(&self, name: &str) -> ConsumerConfig {
        ConsumerConfig {
            kafka: self.clone(),
            group_id: format!("{}-{name}", self.group_prefix),
            max_message_bytes: self.max_message_bytes,
            batch_max: self.batch_max,
            checkpoint_every: self.checkpoint_every,
            max_event_skew: self.max_event_skew,
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestrator::setting::Vars;

    use super::*;

    #[test]
    fn a_bad_number_is_named_not_replaced_by_the_default() {
        for (name, value) in [
            ("KAFKA_PARTITIONS", "zero"),
            ("KAFKA_BATCH_MAX", "0"),
            ("KAFKA_ARCHIVE_MAX_BYTES", "-1"),
        ] {
            let err = KafkaSettings::resolve("b:9092", &Vars::new([(name, value)])).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{name}=\"{value}\"")),
                "{err}"
            );
        }
    }

    #[test]
    fn consumers_are_grouped_under_the_prefix() {
        let env = Vars::new([("KAFKA_GROUP_PREFIX", "staging"), ("KAFKA_PARTITIONS", "6")]);
        let kafka = KafkaSettings::resolve("b:9092", &env).unwrap();
        let odds = kafka.consumer("odds");
        assert_eq!(odds.group_id, "staging-odds");
        assert_eq!(odds.kafka.partitions, 6);
    }
}
