//! Text checks of stream payloads ([`Keyed::text_problem`]): the bounds of
//! docs/quality.md#text-fields applied to what a message carries. A NUL
//! would fail the serving upsert of its whole batch, and the consumer would
//! read the message again after every restart; a message with one is
//! dead-lettered as `bad_text` at decoding instead. Reasons name the
//! field, never quote it: the reason is stored as text too.
//!
//! [`Keyed::text_problem`]: streaming::envelope::Keyed::text_problem

use serde_json::Value;
use sources::text;

/// `value` against `max` characters, no control character or bidi override.
pub use text::check_field as field;

/// [`field`] for a value that may be absent.
pub fn optional(name: &str, value: Option<&str>, max: usize) -> Result<(), String> {
    value.map_or(Ok(()), |v| field(name, v, max))
}

/// Titles and descriptions: as [`field`], but a tab or line break is
/// allowed (the serving tables keep it as a space).
pub fn prose(name: &str, value: &str, max: usize) -> Result<(), String> {
    text::field(name, value, max).map(drop)
}

/// Every string of `value`, object keys included, against `max`: for
/// nested data (a box score) kept as it came.
pub fn strings(name: &str, value: &Value, max: usize) -> Result<(), String> {
    match value {
        Value::String(s) => field(name, s, max),
        Value::Array(items) => items.iter().try_for_each(|v| strings(name, v, max)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            field(name, k, max)?;
            strings(name, v, max)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_name_the_field_and_never_quote_it() {
        let err = field("home team", "Lions\0", 200).unwrap_err();
        assert_eq!(err, "home team holds a NUL character");
        assert!(!err.contains('\0'));
        assert!(field("id", &"x".repeat(129), 128)
            .unwrap_err()
            .starts_with("id is 129 characters long"));
        assert!(optional("clock", None, 8).is_ok());
        assert!(optional("clock", Some("12:\u{202E}00"), 8).is_err());
    }

    #[test]
    fn prose_keeps_line_breaks_and_refuses_nul() {
        assert!(prose("title", "Knee injury\nout for season", 2_000).is_ok());
        assert!(field("title", "Knee injury\nout", 2_000).is_err());
        assert!(prose("title", "bad\0title", 2_000).is_err());
    }

    #[test]
    fn nested_strings_and_keys_are_all_checked() {
        let clean =
            json!({"leaders": [{"name": "A. Player", "value": 3}], "stats": {"yards": "312"}});
        assert!(strings("box score", &clean, 200).is_ok());
        let nul_value = json!({"leaders": [{"name": "A.\u{0}Player"}]});
        assert_eq!(
            strings("box score", &nul_value, 200).unwrap_err(),
            "box score holds a NUL character"
        );
        let bidi_key = json!({"stats": {"ya\u{202E}rds": "312"}});
        assert!(strings("box score", &bidi_key, 200).is_err());
    }

    fn envelope(kind: &str, payload: serde_json::Value) -> Vec<u8> {
        json!({
            "schema_version": 1, "source": "test", "sport": "nfl", "kind": kind,
            "event_time": "2026-01-04T18:00:00Z", "ingest_time": "2026-01-04T18:00:01Z",
            "payload": payload,
        })
        .to_string()
        .into_bytes()
    }

    fn code_of<P>(kind: &str, key: &[u8], payload: serde_json::Value) -> &'static str
    where
        P: serde::de::DeserializeOwned + streaming::envelope::Keyed,
    {
        let topic = format!("betflow.{kind}.nfl");
        match crate::live::envelope::decode::<P>(&topic, Some(key), &envelope(kind, payload)) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn games_weather_and_news_with_bad_text_are_dead_lettered_at_decoding() {
        use crate::live::games::GameUpdate;
        use crate::live::news::NewsItem;
        use crate::live::weather::WeatherUpdate;
        let game = |matchup: serde_json::Value, box_score: serde_json::Value| {
            json!({"game_id": "g1", "status": "in_progress", "home_team_id": "1", "away_team_id": "2",
                   "matchup": matchup, "box_score": box_score})
        };
        let teams = |home: &str| json!({"home_team": home, "away_team": "Bears", "start_time": "2026-01-04T18:00:00Z"});
        let leader = |athlete: &str| {
            json!({"leaders": [{"category": "passing", "team_id": "1",
            "athlete": athlete, "display_value": "21-30, 212 YDS", "value": 212.0}]})
        };
        assert_eq!(
            code_of::<GameUpdate>("games", b"g1", game(teams("Lions"), leader("J. Goff"))),
            "ok"
        );
        assert_eq!(
            code_of::<GameUpdate>("games", b"g1", game(teams("Li\u{0}ons"), leader("J. Goff"))),
            "bad_text"
        );
        assert_eq!(
            code_of::<GameUpdate>("games", b"g1", game(teams(&"L".repeat(201)), json!(null))),
            "bad_text"
        );
        assert_eq!(
            code_of::<GameUpdate>(
                "games",
                b"g1",
                game(teams("Lions"), leader("J.\u{202E}Goff"))
            ),
            "bad_text"
        );

        let weather =
            |condition: &str| json!({"game_id": "g1", "venue_id": "v1", "condition": condition});
        assert_eq!(
            code_of::<WeatherUpdate>("weather", b"g1", weather("Light rain")),
            "ok"
        );
        assert_eq!(
            code_of::<WeatherUpdate>("weather", b"g1", weather("rain\u{0}")),
            "bad_text"
        );

        let news = |title: &str| json!({"item_id": "n1", "team_id": "t1", "source": "espn", "title": title});
        assert_eq!(
            code_of::<NewsItem>("news", b"t1", news("Knee injury\nout for season")),
            "ok"
        );
        assert_eq!(
            code_of::<NewsItem>("news", b"t1", news("Knee\u{0}injury")),
            "bad_text"
        );
        assert_eq!(
            code_of::<NewsItem>("news", b"t1", news(&"t".repeat(2_001))),
            "bad_text"
        );
    }
}
