//! Property-based fuzzing of every decoder that reads outside input: the
//! ESPN, Odds API, Open-Meteo, OpenWeather and NewsAPI payloads, RSS and
//! Atom feeds, a day's stored news object, the recorded captures the replay
//! source serves (the seeds below), and the Kafka envelope of each topic
//! kind through its stream processor.
//!
//! Inputs are arbitrary bytes, real payloads cut, flipped and spliced with
//! JSON fragments, and real payloads with one node replaced by arbitrary
//! JSON (deep nesting, NUL and bidi-override strings, huge and non-finite
//! numbers). The properties: no panic; a decoder refuses or keeps each
//! record on its own (never more records kept than sent); and what it keeps
//! holds the rules (no NUL in any text, only valid odds prices).
//!
//! Each property runs `BETFLOW_FUZZ_CASES` cases (default 128) from a fixed
//! seed, so the time is bounded and CI repeatable;
//! `BETFLOW_FUZZ_SEED=random BETFLOW_FUZZ_CASES=20000 cargo nextest run -p
//! dags --test it fuzz` searches longer. A failure found that way becomes
//! a test of its own below.

use std::path::PathBuf;

use chrono::{NaiveDate, TimeDelta};
use dags::ingest::news::read_day;
use dags::live::envelope::{decode, Topics};
use dags::live::games::GamesProcessor;
use dags::live::news::NewsProcessor;
use dags::live::odds::OddsProcessor;
use dags::live::weather::{Thresholds, WeatherProcessor};
use dags::live::{games::GameUpdate, news::NewsItem, odds::OddsPayload, weather::WeatherUpdate};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde::Serialize;
use serde_json::{json, Value};
use sources::espn::{validate_scoreboard, validate_summary};
use sources::http::decode_bytes;
use sources::news::{parse_feed, parse_newsapi};
use sources::odds_api::{validate_historical, validate_odds, validate_scores, OddsFormat};
use sources::weather::{CurrentWeather, OpenMeteo, Units};
use streaming::window::WindowSpec;
use streaming::PartitionState;

/// `BETFLOW_FUZZ_CASES` cases from the seed `BETFLOW_FUZZ_SEED` (a
/// number, or `random`). The default seed is fixed, so CI is repeatable;
/// a search for new failures sets another seed or `random`.
fn config() -> Config {
    let cases: u32 = std::env::var("BETFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let rng_seed = match std::env::var("BETFLOW_FUZZ_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().expect("BETFLOW_FUZZ_SEED: a number or `random`")),
        None => RngSeed::Fixed(20_261_206),
    };
    Config {
        cases,
        rng_seed,
        failure_persistence: None,
        ..Config::default()
    }
}

fn fixture(dir: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sources/fixtures")
        .join(dir)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn real(prefix: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sources/fixtures/real");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(prefix) && f.ends_with(".json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixture starts with {prefix}");
    files.iter().map(|f| fixture("real", f)).collect()
}

/// JSON fragments a splice inserts: openers of deep nesting, values of
/// the wrong type, text a decoder must refuse.
const SPLICES: &[&str] = &[
    "{\"a\":",
    "[[[[[[[[",
    "null",
    "\"\\u0000\"",
    "\"\\u202e\"",
    "1e400",
    "-0",
    "\"",
    "}",
    "]",
    ",",
    "\u{feff}",
];

/// A seed with a few byte-level edits: cut, flip, insert, splice, delete.
fn bytes_from(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let edits = prop::collection::vec((any::<u32>(), any::<u8>(), 0u8..5), 1..6);
    (0..n, edits).prop_map(move |(i, edits)| {
        let mut b: Vec<u8> = seeds[i].clone();
        for (pos, byte, op) in edits {
            let p = pos as usize % (b.len() + 1);
            match op {
                0 => b.truncate(p),
                1 if p < b.len() => b[p] = byte,
                2 => b.insert(p, byte),
                3 => {
                    let s = SPLICES[byte as usize % SPLICES.len()].as_bytes();
                    b.splice(p..p, s.iter().copied());
                }
                _ => {
                    let end = (p + 1 + byte as usize % 64).min(b.len());
                    b.drain(p..end);
                }
            }
        }
        b
    })
}

/// Arbitrary JSON, nested up to 6 deep.
fn any_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        ".{0,12}",
        Just("\u{0}".to_owned()),
        Just("Celtics\u{202E}".to_owned()),
        Just("-110".to_owned()),
        Just("2024-09-08T12:00:00Z".to_owned()),
        Just("https://example.com/a".to_owned()),
        Just("h2h".to_owned()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            any::<f64>(),
            Just(1e300),
            Just(1.0),
            Just(0.5),
            Just(-100.0)
        ]
        .prop_map(|f| json!(f)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the node reached by following `path` (child indexes, modulo
/// each node's size) with `new`.
fn replace_at(v: &mut Value, path: &[u16], new: Value) {
    let Some((&step, rest)) = path.split_first() else {
        *v = new;
        return;
    };
    let child: Option<&mut Value> = match v {
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            a.get_mut(step as usize % n)
        }
        Value::Object(o) if !o.is_empty() => {
            let n = o.len();
            o.values_mut().nth(step as usize % n)
        }
        _ => None,
    };
    match child {
        Some(c) => replace_at(c, rest, new),
        None => *v = new,
    }
}

/// A seed parsed, with one node replaced by arbitrary JSON.
fn json_from(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Value> {
    let parsed: Vec<Value> = seeds
        .iter()
        .map(|s| serde_json::from_slice(s).expect("seed is JSON"))
        .collect();
    let n = parsed.len();
    (0..n, prop::collection::vec(any::<u16>(), 0..8), any_json()).prop_map(move |(i, path, new)| {
        let mut v = parsed[i].clone();
        replace_at(&mut v, &path, new);
        v
    })
}

/// Bytes, or JSON from the seeds: what a source may send.
fn payloads(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Value> {
    prop_oneof![
        json_from(seeds.clone()),
        bytes_from(seeds).prop_filter_map("not JSON", |b| serde_json::from_slice(&b).ok()),
    ]
}

/// No text of a kept record holds a NUL or a bidi override.
fn clean_text<T: Serialize>(records: &[T]) {
    fn walk(v: &Value) {
        match v {
            Value::String(s) => assert!(
                !s.contains('\0') && !s.contains('\u{202E}'),
                "a kept record holds a NUL or U+202E: {s:?}"
            ),
            Value::Array(a) => a.iter().for_each(walk),
            Value::Object(o) => o.values().for_each(walk),
            _ => {}
        }
    }
    walk(&serde_json::to_value(records).unwrap());
}

fn count(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn espn_scoreboards(v in payloads(real("espn_").into_iter().filter(|s| s.windows(10).any(|w| w == b"\"events\":[")).collect())) {
        for sport in ["nfl", "nba", "nhl", "college-football"] {
            if let Ok(out) = validate_scoreboard(sport, &v) {
                prop_assert!(out.good.len() <= count(&v, "events"));
                clean_text(&out.good);
            }
        }
    }

    #[test]
    fn espn_summaries(v in payloads(real("espn_nba_summary").into_iter().chain(real("espn_nfl_summary")).collect())) {
        let out = validate_summary("nba", &v);
        clean_text(&out.good);
    }

    #[test]
    fn odds_api_odds_and_scores(v in payloads(real("theoddsapi_").into_iter().chain(real("odds_api_")).collect())) {
        for format in [OddsFormat::American, OddsFormat::Decimal] {
            if let Ok(out) = validate_odds(&v, format) {
                prop_assert!(out.good.len() <= v.as_array().map_or(0, Vec::len));
                clean_text(&out.good);
                for event in &out.good {
                    for q in event.quotes(format) {
                        prop_assert!(q.price_decimal.is_finite() && q.price_decimal > 1.0, "{q:?}");
                        prop_assert!(q.price_american.is_finite() && q.price_american.abs() >= 100.0, "{q:?}");
                    }
                }
            }
            let wrapped = json!({"timestamp": "2024-09-08T12:00:00Z", "previous_timestamp": null,
                                 "next_timestamp": null, "data": v});
            if let Ok((_, out)) = validate_historical(&wrapped, format) {
                clean_text(&out.good);
            }
        }
        if let Ok(out) = validate_scores(&v) {
            clean_text(&out.good);
        }
    }

    #[test]
    fn weather_bodies(b in prop_oneof![bytes_from(real("openmeteo_")), bytes_from(real("openweather_"))]) {
        if let Ok(m) = decode_bytes::<OpenMeteo>("fuzz", "open-meteo", &b) {
            for o in m.observations() {
                prop_assert!(o.temperature_c.is_none_or(f64::is_finite));
            }
        }
        if let Ok(c) = decode_bytes::<CurrentWeather>("fuzz", "openweather", &b) {
            for units in [Units::Standard, Units::Metric] {
                let _ = c.observation(units);
            }
        }
    }

    #[test]
    fn rss_and_atom_feeds(b in prop_oneof![
        bytes_from(vec![
            fixture("handwritten", "espn_style_nfl_news.rss.xml"),
            fixture("handwritten", "sample_news.atom.xml"),
        ]),
        prop::collection::vec(any::<u8>(), 0..2048),
    ]) {
        if let Ok(out) = parse_feed(&b, "https://feeds.example.com/rss") {
            clean_text(&out.good);
            for item in &out.good {
                prop_assert!(item.url.starts_with("http"), "{item:?}");
                prop_assert!(!item.title.is_empty());
            }
        }
    }

    #[test]
    fn newsapi_responses_and_stored_news_days(v in payloads(real("newsapi_"))) {
        if let Ok(out) = parse_newsapi(&v, "replay://fuzz") {
            prop_assert!(out.good.len() <= count(&v, "articles"));
            clean_text(&out.good);
        }
        // The same body as a day's stored news object, beside a feed whose
        // fetch failed and one that is not a stored feed at all.
        let day = json!([
            {"feed": "https://newsapi.org/v2/top-headlines", "format": "newsapi", "body": v},
            {"feed": "https://down.example.com/rss", "format": "xml", "error": "HTTP 503"},
            v,
        ]);
        let date = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        if let Ok(out) = read_day(&day, date) {
            clean_text(&out.items);
            prop_assert_eq!(out.feeds, 3);
        }
    }

    #[test]
    fn envelopes_through_their_processors(
        (which, bytes) in (0usize..4).prop_flat_map(|k| (Just(k), prop_oneof![
            bytes_from(vec![envelope(k)]),
            json_from(vec![envelope(k)]).prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..512),
        ])),
    ) {
        let spec = WindowSpec::tumbling_minutes(5).unwrap();
        let lateness = TimeDelta::minutes(1);
        let topic = ["betflow.odds.nba", "betflow.games.nba", "betflow.weather.nfl", "betflow.news.nfl"][which];
        let key: &[u8] = [b"ev1".as_slice(), b"401", b"401", b"nfl:21"][which];
        match which {
            0 => drive(OddsProcessor::new(spec, lateness).unwrap(), topic, key, &bytes),
            1 => drive(GamesProcessor::new(spec, lateness).unwrap(), topic, key, &bytes),
            2 => drive(WeatherProcessor::new(Thresholds::default()), topic, key, &bytes),
            _ => drive(NewsProcessor::new(spec, lateness).unwrap(), topic, key, &bytes),
        }
    }
}

/// Decodes a message for `state`, applies it, and checkpoints the state
/// through JSON and back, as a consumer does.
fn drive<S: PartitionState<Topics = Topics>>(mut state: S, topic: &str, key: &[u8], bytes: &[u8]) {
    let Ok(envelope) = decode::<S::Payload>(topic, Some(key), bytes) else {
        return;
    };
    let _ = state.apply(&envelope);
    let snapshot = serde_json::to_vec(&state.snapshot()).expect("a snapshot serializes");
    let back: S::Snapshot = serde_json::from_slice(&snapshot).expect("and reads back");
    state.restore(back);
    let _ = state.apply(&envelope);
}

/// A valid message of each kind: the seed of its mutations.
fn envelope(which: usize) -> Vec<u8> {
    let head = |kind: &str, sport: &str, source: &str| {
        json!({"schema_version": 1, "source": source, "sport": sport, "kind": kind,
               "event_time": "2026-01-04T18:01:00Z", "ingest_time": "2026-01-04T18:01:02Z"})
    };
    let (mut msg, payload) = match which {
        0 => (
            head("odds", "nba", "odds_api"),
            json!({"odds_format": "american", "event": {
                "id": "ev1", "sport_key": "basketball_nba", "commence_time": "2026-01-05T00:00:00Z",
                "home_team": "Boston Celtics", "away_team": "New York Knicks",
                "bookmakers": [{"key": "a", "title": "A", "last_update": "2026-01-04T18:00:00Z",
                    "markets": [{"key": "h2h", "outcomes": [
                        {"name": "Boston Celtics", "price": -120},
                        {"name": "New York Knicks", "price": 110}]}]}]}}),
        ),
        1 => (
            head("games", "nba", "espn"),
            json!({"game_id": "401", "status": "in", "period": 2, "clock": "5:00",
                   "home_team_id": "nba:2", "away_team_id": "nba:18",
                   "home_score": 50, "away_score": 48,
                   "matchup": {"home_team": "Boston Celtics", "away_team": "New York Knicks",
                               "start_time": "2026-01-04T17:00:00Z"}}),
        ),
        2 => (
            head("weather", "nfl", "open_meteo"),
            json!({"game_id": "401", "venue_id": "espn:3622", "temperature_c": 2.5,
                   "wind_speed_ms": 6.0, "wind_deg": 180.0, "precipitation_mm": 0.2,
                   "humidity_pct": 80.0, "condition": "Rain"}),
        ),
        _ => (
            head("news", "nfl", "rss"),
            json!({"item_id": "abc", "team_id": "nfl:21", "source": "ESPN",
                   "title": "Eagles win big", "description": "A dominant victory"}),
        ),
    };
    msg["payload"] = payload;
    msg.to_string().into_bytes()
}

/// The envelope seeds are valid messages, so the mutations start from
/// what a processor accepts.
#[test]
fn the_envelope_seeds_decode() {
    decode::<OddsPayload>("betflow.odds.nba", Some(b"ev1"), &envelope(0)).expect("odds");
    decode::<GameUpdate>("betflow.games.nba", Some(b"401"), &envelope(1)).expect("games");
    decode::<WeatherUpdate>("betflow.weather.nfl", Some(b"401"), &envelope(2)).expect("weather");
    decode::<NewsItem>("betflow.news.nfl", Some(b"nfl:21"), &envelope(3)).expect("news");
}

/// Found by the fuzzing above: a scores entry whose team or score name
/// held a bidi override or a NUL was kept, and would have reached the
/// serving tables. Now it is rejected with the reason.
#[test]
fn scores_with_spoofed_or_nul_names_are_rejected() {
    let event = |home: &str, score_name: &str| {
        json!({"id": "ev1", "sport_key": "basketball_nba", "commence_time": "2024-11-15T01:00:00Z",
               "completed": true, "home_team": home, "away_team": "New York Knicks",
               "scores": [{"name": score_name, "score": "101"}, {"name": "New York Knicks", "score": "99"}]})
    };
    let payload = json!([
        event("Boston Celtics\u{202E}", "Boston Celtics\u{202E}"),
        event("Boston Celtics", "Boston\u{0}Celtics"),
        event("Boston Celtics", "Boston Celtics"),
    ]);
    let out = validate_scores(&payload).unwrap();
    assert_eq!(out.good.len(), 1);
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("home team holds the bidirectional override U+202E"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("score name holds a NUL"), "{reasons:?}");
}

/// A five-megabyte name is refused or cut, never kept whole.
#[test]
fn five_megabyte_strings_are_not_kept() {
    let huge = "A".repeat(5 * 1024 * 1024);
    let articles = json!({"status": "ok", "articles": [
        {"url": "https://cnn.com/a", "publishedAt": "2024-09-08T12:00:00Z", "title": huge,
         "source": {"name": "CNN"}},
        {"url": "https://cnn.com/b", "publishedAt": "2024-09-08T12:00:00Z", "title": "Fine",
         "description": huge, "source": {"name": huge}},
    ]});
    let out = parse_newsapi(&articles, "replay://huge").unwrap();
    assert_eq!(out.good.len(), 1);
    assert_eq!(out.rejected.len(), 1);
    let kept = serde_json::to_string(&out.good).unwrap();
    assert!(kept.len() < 10_000, "{} bytes kept", kept.len());
}
