//! The versioned JSON envelope of every topic message (docs/topics.md).
//!
//! Decoding checks everything a consumer must trust before a processor sees
//! the payload: the topic is one of the deployment's ([`TopicScheme`]), the
//! envelope's scope and kind agree with the topic, the schema version is one
//! we read, and the message key is the payload's own key, so partitioning
//! (all updates of a game on one partition, hence in order) cannot silently
//! break. Each failure is a typed [`DecodeError`]; the consumer adds
//! topic/partition/offset for the dead-letter row.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The envelope version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How a deployment names its topics: each topic is one kind of data for
/// one scope. The streaming runtime knows no names; it asks the scheme.
pub trait TopicScheme: Send + Sync + 'static {
    /// The envelope's `kind`.
    type Kind: Copy
        + Eq
        + fmt::Debug
        + fmt::Display
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// The (scope, kind) of one of the scheme's topics, or why `topic` is
    /// not one.
    fn parse(topic: &str) -> Result<(String, Self::Kind), String>;
    /// Every topic of `kind`, one per scope.
    fn topics_of(kind: Self::Kind) -> Vec<String>;
    /// Every topic of the scheme.
    fn all() -> Vec<String>;
}

/// One topic message's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P, K> {
    pub schema_version: u32,
    /// The producer's source, e.g. `odds_api`, `espn`, `replay`.
    pub source: String,
    /// The topic's scope: BetFlow partitions its topics by league, and
    /// the field keeps the name its messages carry.
    pub sport: String,
    /// The data kind, as the deployment's [`TopicScheme`] names it.
    pub kind: K,
    /// When it happened (a bookmaker's update, a play, an observation):
    /// windows use this, never the arrival time.
    pub event_time: DateTime<Utc>,
    /// When the producer fetched it: freshness and lag metrics.
    pub ingest_time: DateTime<Utc>,
    pub payload: P,
}

/// A payload that knows its message key (docs/topics.md#message-keys: game/event id; news: team id).
pub trait Keyed {
    fn message_key(&self) -> &str;

    /// Why a text field of the payload may not be kept, if one may not: a
    /// NUL (Postgres refuses it, so one message would fail every write of
    /// its partition), a bidirectional override or a name megabytes long.
    /// Such a message is dead-lettered at decoding, before a processor
    /// sees it. The deployment knows its fields; none are checked here.
    fn text_problem(&self) -> Option<String> {
        None
    }
}

/// Why a message could not be decoded: the dead-letter row's `reason`.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("topic `{topic}`: {reason}")]
    Topic { topic: String, reason: String },
    #[error("value is not a valid envelope at {path}: {message}")]
    Json { path: String, message: String },
    #[error("schema_version {found} is not supported (newest known: {SCHEMA_VERSION})")]
    SchemaVersion { found: u32 },
    #[error("envelope sport `{envelope}` does not match topic sport `{topic}`")]
    SportMismatch { topic: String, envelope: String },
    #[error("envelope kind `{envelope}` does not match topic kind `{topic}`")]
    KindMismatch { topic: String, envelope: String },
    #[error("message has no key (expected `{expected}`)")]
    MissingKey { expected: String },
    #[error("message key is not UTF-8")]
    KeyNotUtf8,
    #[error("message key `{key}` does not match the payload's `{expected}`")]
    KeyMismatch { key: String, expected: String },
    #[error("payload key is empty")]
    EmptyPayloadKey,
    #[error("payload text cannot be kept: {reason}")]
    Text { reason: String },
}

impl DecodeError {
    /// A short stable code for grouping dead letters in dashboards.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Topic { .. } => "bad_topic",
            DecodeError::Json { .. } => "bad_json",
            DecodeError::SchemaVersion { .. } => "schema_version",
            DecodeError::SportMismatch { .. } => "sport_mismatch",
            DecodeError::KindMismatch { .. } => "kind_mismatch",
            DecodeError::MissingKey { .. } => "missing_key",
            DecodeError::KeyNotUtf8 => "key_not_utf8",
            DecodeError::KeyMismatch { .. } => "key_mismatch",
            DecodeError::EmptyPayloadKey => "empty_key",
            DecodeError::Text { .. } => "bad_text",
        }
    }
}

/// Decodes one message of `topic` into an envelope of `P`, validating topic,
/// version, sport, kind and key.
pub fn decode<S: TopicScheme, P: DeserializeOwned + Keyed>(
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<Envelope<P, S::Kind>, DecodeError> {
    let (scope, kind) = S::parse(topic).map_err(|reason| DecodeError::Topic {
        topic: topic.to_string(),
        reason,
    })?;
    let mut de = serde_json::Deserializer::from_slice(value);
    let envelope: Envelope<P, S::Kind> =
        serde_path_to_error::deserialize(&mut de).map_err(|e| DecodeError::Json {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
    if envelope.schema_version == 0 || envelope.schema_version > SCHEMA_VERSION {
        return Err(DecodeError::SchemaVersion {
            found: envelope.schema_version,
        });
    }
    if envelope.sport != scope {
        return Err(DecodeError::SportMismatch {
            topic: scope,
            envelope: envelope.sport,
        });
    }
    if envelope.kind != kind {
        return Err(DecodeError::KindMismatch {
            topic: kind.to_string(),
            envelope: envelope.kind.to_string(),
        });
    }
    let expected: &str = envelope.payload.message_key();
    if expected.is_empty() {
        return Err(DecodeError::EmptyPayloadKey);
    }
    let key: &[u8] = key.ok_or_else(|| DecodeError::MissingKey {
        expected: expected.to_string(),
    })?;
    let key: &str = std::str::from_utf8(key).map_err(|_| DecodeError::KeyNotUtf8)?;
    if key != expected {
        return Err(DecodeError::KeyMismatch {
            key: key.to_string(),
            expected: expected.to_string(),
        });
    }
    if let Some(reason) = envelope.payload.text_problem() {
        return Err(DecodeError::Text { reason });
    }
    Ok(envelope)
}

/// Encodes an envelope and returns (key, value) for the producer.
pub fn encode<P: Serialize + Keyed, K: Serialize>(
    envelope: &Envelope<P, K>,
) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
    let value: Vec<u8> = serde_json::to_vec(envelope)?;
    Ok((envelope.payload.message_key().as_bytes().to_vec(), value))
}
