//! BetFlow's topic names, `betflow.{kind}.{sport}` (docs/topics.md), and the
//! envelope of their messages: streaming's generic envelope over the one
//! [`Kind`] enum, decoded against [`Topics`].

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
pub use streaming::envelope::{encode, DecodeError, Keyed, TopicScheme, SCHEMA_VERSION};

use crate::Sport;

/// Every topic's prefix.
pub const TOPIC_PREFIX: &str = "betflow";

/// The data family of a topic and of an envelope's `kind`: the one kind enum.
pub use sources::DataKind as Kind;

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

/// One topic message's value, of BetFlow's kinds.
pub type Envelope<P> = streaming::envelope::Envelope<P, Kind>;

/// BetFlow's topics, `betflow.{kind}.{sport}`, as the streaming runtime sees them.
#[derive(Debug, Clone, Copy)]
pub struct Topics;

impl TopicScheme for Topics {
    type Kind = Kind;

    fn parse(topic: &str) -> Result<(String, Kind), String> {
        match topic.parse::<Topic>() {
            Ok(t) => Ok((t.sport.key.to_owned(), t.kind)),
            Err(DecodeError::Topic { reason, .. }) => Err(reason),
            Err(other) => Err(other.to_string()),
        }
    }

    fn topics_of(kind: Kind) -> Vec<String> {
        Topic::all()
            .into_iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.to_string())
            .collect()
    }

    fn all() -> Vec<String> {
        Topic::all().iter().map(Topic::to_string).collect()
    }
}

/// Decodes one message of one of BetFlow's topics (see [`streaming::envelope::decode`]).
pub fn decode<P: DeserializeOwned + Keyed>(
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<Envelope<P>, DecodeError> {
    streaming::envelope::decode::<Topics, P>(topic, key, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
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
