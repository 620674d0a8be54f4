//! Kafka I/O around the broker-independent core: the settings every client
//! shares ([`client`]: brokers, TLS, SASL); one producer ([`producer`]); the
//! consumer-group stream task, one generic loop over a processor's
//! [`consumer::TopicProcessor`] ([`consumer`], settings in [`config`],
//! membership in [`group`], transactional writes in `write`, dead letters
//! and [`checkpoint`]s); and the raw topic [`archive`].

pub mod archive;
pub mod checkpoint;
pub mod client;
pub mod config;
pub mod consumer;
pub mod group;
pub mod producer;
mod write;

/// `KAFKA_BROKERS`: bootstrap servers; the Kafka stream tasks run only when set.
pub const BROKERS_ENV: &str = "KAFKA_BROKERS";
/// `KAFKA_PARTITIONS`: partitions of topics BetFlow creates (default 3).
pub const PARTITIONS_ENV: &str = "KAFKA_PARTITIONS";
pub const DEFAULT_PARTITIONS: i32 = 3;

/// Partition count from the environment, else [`DEFAULT_PARTITIONS`].
pub fn partitions_from_env() -> i32 {
    config::positive(PARTITIONS_ENV).unwrap_or(DEFAULT_PARTITIONS)
}

/// `KAFKA_REPLICATION_FACTOR`: replicas of topics BetFlow creates (default
/// 1, what a one-broker cluster holds; production clusters want 3).
pub const REPLICATION_FACTOR_ENV: &str = "KAFKA_REPLICATION_FACTOR";
pub const DEFAULT_REPLICATION_FACTOR: i32 = 1;

/// Replication factor from the environment, else [`DEFAULT_REPLICATION_FACTOR`].
pub fn replication_factor_from_env() -> i32 {
    config::positive(REPLICATION_FACTOR_ENV).unwrap_or(DEFAULT_REPLICATION_FACTOR)
}
