//! Settings of the stream consumers, from the environment.

use std::time::Duration;

use chrono::TimeDelta;

use crate::window::{parse_duration, WindowSpec};

/// Settings shared by every consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub group_id: String,
    /// Partitions of topics it creates when missing.
    pub partitions: i32,
    /// Larger messages are dead-lettered (`oversized`) without being parsed.
    pub max_message_bytes: usize,
    /// Messages written per transaction at most.
    pub batch_max: usize,
    /// Minimum time between two checkpoints of a partition: each serializes
    /// the partition's whole state, so not on every batch.
    pub checkpoint_every: Duration,
}

/// `KAFKA_GROUP_PREFIX`: consumer groups are `{prefix}-{processor}`
/// (default `betflow`), so several deployments (or a test's clean and
/// crashed runs) can share a cluster without sharing offsets.
pub const GROUP_PREFIX_ENV: &str = "KAFKA_GROUP_PREFIX";
pub const DEFAULT_GROUP_PREFIX: &str = "betflow";
/// `KAFKA_MAX_MESSAGE_BYTES`: the consumers' message size limit.
pub const MAX_MESSAGE_BYTES_ENV: &str = "KAFKA_MAX_MESSAGE_BYTES";
/// 256 KiB: a polled odds event with every US bookmaker is ~20 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// `KAFKA_CHECKPOINT_MS`: minimum time between checkpoints (default 1000).
pub const CHECKPOINT_MS_ENV: &str = "KAFKA_CHECKPOINT_MS";
pub const DEFAULT_CHECKPOINT: Duration = Duration::from_secs(1);
/// `KAFKA_BATCH_MAX`: messages written per transaction at most (default
/// 2000). Smaller batches commit sooner but cost a transaction each.
pub const BATCH_MAX_ENV: &str = "KAFKA_BATCH_MAX";
pub const DEFAULT_BATCH_MAX: usize = 2000;
/// Reason code of messages over `max_message_bytes`.
pub const OVERSIZED: &str = "oversized";
/// Bytes of an oversized message kept in its dead-letter row.
pub const OVERSIZED_KEPT_BYTES: usize = 4096;

/// `BETFLOW_ALLOWED_LATENESS`: how far an event may trail the newest one
/// and still count, for every windowed processor (default 1m).
pub const ALLOWED_LATENESS_ENV: &str = "BETFLOW_ALLOWED_LATENESS";
pub const DEFAULT_ALLOWED_LATENESS: TimeDelta = TimeDelta::minutes(1);

/// The windows of processor `name`: `BETFLOW_{NAME}_WINDOW`, `SIZE` for
/// tumbling windows or `SIZE/SLIDE` for sliding ones (`5m`, `20m/5m`),
/// else `default`. A value that does not parse is named in a warning.
pub fn windows_from_env(name: &str, default: WindowSpec) -> WindowSpec {
    let var: String = format!("BETFLOW_{}_WINDOW", name.to_uppercase());
    let Ok(value) = std::env::var(&var) else {
        return default;
    };
    value.parse().unwrap_or_else(|e| {
        tracing::warn!("{var}={value:?}: {e}; using the default");
        default
    })
}

/// `BETFLOW_ALLOWED_LATENESS`, else [`DEFAULT_ALLOWED_LATENESS`].
pub fn lateness_from_env() -> TimeDelta {
    let Ok(value) = std::env::var(ALLOWED_LATENESS_ENV) else {
        return DEFAULT_ALLOWED_LATENESS;
    };
    parse_duration(&value).unwrap_or_else(|e| {
        tracing::warn!("{ALLOWED_LATENESS_ENV}={value:?}: {e}; using the default");
        DEFAULT_ALLOWED_LATENESS
    })
}

/// The value of variable `name`, if set and valid; a value that does not
/// parse is named in a warning and left out, so the default applies.
pub(super) fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    let parsed = value.trim().parse().ok();
    if parsed.is_none() {
        tracing::warn!("{name}={value:?} is not valid here; using the default");
    }
    parsed
}

/// [`env`] for a setting that must be above zero: zero or less is named in
/// a warning too, and the default applies.
pub(super) fn positive<T: std::str::FromStr + PartialOrd + Default>(name: &str) -> Option<T> {
    let value: T = env(name)?;
    if value > T::default() {
        return Some(value);
    }
    tracing::warn!("{name} must be above zero; using the default");
    None
}

impl ConsumerConfig {
    /// The consumer of processor `name` (group `{KAFKA_GROUP_PREFIX}-{name}`),
    /// with `KAFKA_PARTITIONS`, `KAFKA_MAX_MESSAGE_BYTES`, `KAFKA_BATCH_MAX`
    /// and `KAFKA_CHECKPOINT_MS` or their defaults.
    pub fn new(brokers: &str, name: &str) -> Self {
        let prefix: String = std::env::var(GROUP_PREFIX_ENV)
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_GROUP_PREFIX.to_string());
        Self {
            brokers: brokers.to_string(),
            group_id: format!("{prefix}-{name}"),
            partitions: super::partitions_from_env(),
            max_message_bytes: positive(MAX_MESSAGE_BYTES_ENV).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            batch_max: positive(BATCH_MAX_ENV).unwrap_or(DEFAULT_BATCH_MAX),
            checkpoint_every: positive(CHECKPOINT_MS_ENV)
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_CHECKPOINT),
        }
    }
}
