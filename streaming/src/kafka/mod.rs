//! Kafka I/O around the broker-independent core: the settings every client
//! shares ([`client`]: brokers, TLS, SASL); one producer ([`producer`]); the
//! consumer-group stream task, one generic loop over a processor's
//! [`consumer::TopicProcessor`] ([`consumer`], settings in [`config`],
//! membership in [`group`], transactional writes in `write`, dead letters
//! and [`checkpoint`]s); and the raw topic [`archive`].

pub mod archive;
pub mod checkpoint;
pub mod client;
pub mod client_log;
pub mod config;
pub mod consumer;
pub mod group;
pub mod producer;
pub mod settings;
mod write;

/// `KAFKA_BROKERS`: bootstrap servers; the Kafka stream tasks run only when set.
pub use settings::KafkaSettings;

pub const BROKERS_ENV: &str = "KAFKA_BROKERS";
/// `KAFKA_PARTITIONS`: partitions of topics BetFlow creates (default 3).
pub const PARTITIONS_ENV: &str = "KAFKA_PARTITIONS";
pub const DEFAULT_PARTITIONS: i32 = 3;

/// `KAFKA_REPLICATION_FACTOR`: replicas of topics BetFlow creates (default
/// 1, what a one-broker cluster holds; production clusters want 3).
pub const REPLICATION_FACTOR_ENV: &str = "KAFKA_REPLICATION_FACTOR";
pub const DEFAULT_REPLICATION_FACTOR: i32 = 1;
