//! Kafka I/O around the broker-independent core: one shared producer
//! ([`producer`]) and the consumer-group stream tasks ([`consumer`]) that
//! decode, process and upsert into the `serving.*` tables.

pub mod consumer;
pub mod producer;

/// `KAFKA_BROKERS`: bootstrap servers; the Kafka stream tasks run only when set.
pub const BROKERS_ENV: &str = "KAFKA_BROKERS";
/// `KAFKA_PARTITIONS`: partitions of topics BetFlow creates (default 3).
pub const PARTITIONS_ENV: &str = "KAFKA_PARTITIONS";
pub const DEFAULT_PARTITIONS: i32 = 3;

/// Partition count from the environment, else [`DEFAULT_PARTITIONS`].
pub fn partitions_from_env() -> i32 {
    std::env::var(PARTITIONS_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &i32| *n > 0)
        .unwrap_or(DEFAULT_PARTITIONS)
}
