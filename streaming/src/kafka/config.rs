//! Settings of the stream consumers: the consumer group and sizes
//! ([`ConsumerConfig`], made by [`super::settings::KafkaSettings::consumer`]),
//! and the windows and lateness a processor's settings name.

use std::time::Duration;

use chrono::TimeDelta;

use orchestrator::setting::{Lookup, SettingError};

use super::settings::KafkaSettings;
use crate::window::{parse_duration, WindowSpec};

/// Settings shared by every consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The cluster, and the partitions of topics it creates when missing.
    pub kafka: KafkaSettings,
    pub group_id: String,
    /// Larger messages are dead-lettered (`oversized`) without being parsed.
    pub max_message_bytes: usize,
    /// Messages written per transaction at most.
    pub batch_max: usize,
    /// Minimum time between two checkpoints of a partition: each serializes
    /// the partition's whole state, so not on every batch.
    pub checkpoint_every: Duration,
    /// How far an event time may run ahead of its ingest time (and of this
    /// consumer's clock) before the message is dead-lettered as `future`.
    pub max_event_skew: TimeDelta,
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
/// `KAFKA_MAX_EVENT_SKEW_SECS`: how far ahead of its ingest time (and of
/// the consumer's clock) an event may be stamped (default 300).
pub const MAX_EVENT_SKEW_ENV: &str = "KAFKA_MAX_EVENT_SKEW_SECS";
pub const DEFAULT_MAX_EVENT_SKEW: TimeDelta = TimeDelta::minutes(5);
/// Reason code of messages stamped further ahead than `max_event_skew`.
pub const FUTURE: &str = "future";
/// Reason code of messages stamped before any source's data (2000).
pub const IMPLAUSIBLE: &str = "implausible_time";
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
/// else `default`.
pub fn window_setting(
    env: &impl Lookup,
    name: &str,
    default: WindowSpec,
) -> Result<WindowSpec, SettingError> {
    let var: String = format!("BETFLOW_{}_WINDOW", name.to_uppercase());
    let Some(value) = env.get(&var) else {
        return Ok(default);
    };
    value
        .parse()
        .map_err(|e| SettingError::invalid(&var, &value, e))
}

/// `BETFLOW_ALLOWED_LATENESS` (`30s`, `2m`), else [`DEFAULT_ALLOWED_LATENESS`].
pub fn lateness_setting(env: &impl Lookup) -> Result<TimeDelta, SettingError> {
    let Some(value) = env.get(ALLOWED_LATENESS_ENV) else {
        return Ok(DEFAULT_ALLOWED_LATENESS);
    };
    parse_duration(&value).map_err(|e| SettingError::invalid(ALLOWED_LATENESS_ENV, &value, e))
}
