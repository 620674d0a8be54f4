//! The versioned JSON envelope of every topic message, topic names and
//! message keys (DATA.md, "Kafka topics").
//!
//! Decoding checks everything a consumer must trust before a processor sees
//! the payload: the topic is ours, the envelope's sport and kind agree with
//! the topic, the schema version is one we read, and the message key is the
//! payload's own key, so partitioning (all updates of a game on one
//! partition, hence in order) cannot silently break. Each failure is a typed
//! [`DecodeError`]; the consumer adds topic/partition/offset for the
//! dead-letter row.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Sport;

/// The envelope version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Every topic's prefix.
pub const TOPIC_PREFIX: &str = "betflow";

/// The data family of a topic and of an envelope's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Games,
    Odds,
    Weather,
    News,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Games, Kind::Odds, Kind::Weather, Kind::News];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Games => "games",
            Kind::Odds => "odds",
            Kind::Weather => "weather",
            Kind::News => "news",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `betflow.{kind}.{sport}` for a sport in [`crate::SPORTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    pub kind: Kind,
    pub sport: &'static Sport,
}

impl Topic {
    pub fn new(kind: Kind, sport: &'static Sport) -> Self {
        Self { kind, sport }
    }

    /// Every topic BetFlow uses: each kind for each sport.
    pub fn all() -> Vec<Topic> {
        crate::SPORTS
            .iter()
            .flat_map(|s| Kind::ALL.into_iter().map(move |k| Topic::new(k, s)))
            .collect()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOPIC_PREFIX}.{}.{}", self.kind, self.sport.key)
    }
}

impl FromStr for Topic {
    type Err = DecodeError;

    fn from_str(topic: &str) -> Result<Self, DecodeError> {
        let bad = |reason: &str| DecodeError::Topic {
            topic: topic.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = topic.split('.');
        let (Some(prefix), Some(kind), Some(sport), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected betflow.{kind}.{sport}"));
        };
        if prefix != TOPIC_PREFIX {
            return Err(bad("prefix is not `betflow`"));
        }
        let kind: Kind = Kind::parse(kind).ok_or_else(|| bad("unknown kind"))?;
        let sport: &'static Sport = crate::sport(sport).ok_or_else(|| bad("unknown sport"))?;
        Ok(Topic { kind, sport })
    }
}

/// One topic message's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    pub schema_version: u32,
    /// The producer's source, e.g. `odds_api`, `espn`, `replay`.
    pub source: String,
    pub sport: String,
    pub kind: Kind,
    /// When it happened (a bookmaker's update, a play, an observation):
    /// windows use this, never the arrival time.
    pub event_time: DateTime<Utc>,
    /// When the producer fetched it: freshness and lag metrics.
    pub ingest_time: DateTime<Utc>,
    pub payload: P,
}

/// A payload that knows its message key (DATA.md: game/event id; news: team id).
pub trait Keyed {
    fn message_key(&self) -> &str;
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
    KindMismatch { topic: Kind, envelope: Kind },
    #[error("message has no key (expected `{expected}`)")]
    MissingKey { expected: String },
    #[error("message key is not UTF-8")]
    KeyNotUtf8,
    #[error("message key `{key}` does not match the payload's `{expected}`")]
    KeyMismatch { key: String, expected: String },
    #[error("payload key is empty")]
    EmptyPayloadKey,
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
        }
    }
}

/// Decodes one message of `topic` into an envelope of `P`, validating topic,
/// version, sport, kind and key.
pub fn decode<P: DeserializeOwned + Keyed>(
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<Envelope<P>, DecodeError> {
    let topic: Topic = topic.parse()?;
    let mut de = serde_json::Deserializer::from_slice(value);
    let envelope: Envelope<P> =
        serde_path_to_error::deserialize(&mut de).map_err(|e| DecodeError::Json {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })?;
    if envelope.schema_version == 0 || envelope.schema_version > SCHEMA_VERSION {
        return Err(DecodeError::SchemaVersion {
            found: envelope.schema_version,
        });
    }
    if envelope.sport != topic.sport.key {
        return Err(DecodeError::SportMismatch {
            topic: topic.sport.key.to_string(),
            envelope: envelope.sport,
        });
    }
    if envelope.kind != topic.kind {
        return Err(DecodeError::KindMismatch {
            topic: topic.kind,
            envelope: envelope.kind,
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
    Ok(envelope)
}

/// Encodes an envelope and returns (key, value) for the producer.
pub fn encode<P: Serialize + Keyed>(
    envelope: &Envelope<P>,
) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
    let value: Vec<u8> = serde_json::to_vec(envelope)?;
    Ok((envelope.payload.message_key().as_bytes().to_vec(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Game {
        game_id: String,
    }

    impl Keyed for Game {
        fn message_key(&self) -> &str {
            &self.game_id
        }
    }

    fn value(sport: &str, kind: &str, version: u32) -> Vec<u8> {
        json!({
            "schema_version": version, "source": "espn", "sport": sport, "kind": kind,
            "event_time": "2026-01-04T18:00:00Z", "ingest_time": "2026-01-04T18:00:05Z",
            "payload": {"game_id": "401"}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn topics_round_trip_and_reject_unknowns() {
        let t: Topic = "betflow.odds.nfl".parse().expect("valid");
        assert_eq!(t.kind, Kind::Odds);
        assert_eq!(t.sport.key, "nfl");
        assert_eq!(t.to_string(), "betflow.odds.nfl");
        assert_eq!(Topic::all().len(), 16);
        for bad in [
            "betflow.odds",
            "sports.odds.nfl",
            "betflow.bets.nfl",
            "betflow.odds.mlb",
            "betflow.odds.nfl.x",
        ] {
            let err = bad.parse::<Topic>().expect_err(bad);
            assert_eq!(err.code(), "bad_topic");
        }
    }

    #[test]
    fn decodes_a_valid_message() {
        let e: Envelope<Game> =
            decode("betflow.games.nba", Some(b"401"), &value("nba", "games", 1)).expect("valid");
        assert_eq!(e.payload.game_id, "401");
        assert_eq!(e.kind, Kind::Games);
        let (k, v) = encode(&e).expect("encodes");
        assert_eq!(k, b"401");
        let back: Envelope<Game> = decode("betflow.games.nba", Some(&k), &v).expect("round trip");
        assert_eq!(back, e);
    }

    #[test]
    fn typed_errors_for_each_rule() {
        let code = |topic: &str, key: Option<&[u8]>, v: &[u8]| {
            decode::<Game>(topic, key, v)
                .map(|_| ())
                .expect_err("must fail")
                .code()
        };
        let good = value("nba", "games", 1);
        assert_eq!(code("betflow.games.nba", Some(b"401"), b"{"), "bad_json");
        assert_eq!(
            code("betflow.games.nba", Some(b"401"), &value("nba", "games", 2)),
            "schema_version"
        );
        assert_eq!(
            code("betflow.games.nfl", Some(b"401"), &good),
            "sport_mismatch"
        );
        assert_eq!(
            code("betflow.odds.nba", Some(b"401"), &good),
            "kind_mismatch"
        );
        assert_eq!(code("betflow.games.nba", None, &good), "missing_key");
        assert_eq!(
            code("betflow.games.nba", Some(b"999"), &good),
            "key_mismatch"
        );
        assert_eq!(
            code("betflow.games.nba", Some(&[0xff]), &good),
            "key_not_utf8"
        );
        let err = decode::<Game>(
            "betflow.games.nba",
            Some(b"401"),
            br#"{"schema_version":1}"#,
        )
        .map(|_| ())
        .expect_err("missing fields");
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
