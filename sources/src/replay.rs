//! The offline source: real recorded payloads (sources/fixtures/real, compiled
//! into the binary) served as if they came from the APIs, so every DAG runs
//! without network or keys. Responses are [`Fetched`]s like the HTTP
//! clients', and go through the same decode and validation.
//!
//! ESPN scoreboards are filtered to the requested sports day as
//! `dates=YYYYMMDD` would; historical odds are wrapped from the odds
//! captures (no real historical capture exists, see SOURCES.md). News is
//! the two recorded NewsAPI responses (no RSS capture exists), served as
//! every sport's feed with each article moved onto the requested sports
//! day at its original New York wall-clock time.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::America::New_York;
use serde_json::{json, Map, Value};

use super::error::SourceError;
use super::http::{decode_bytes, Fetched};
use super::lenient;
use super::odds_api::OddsFormat;
use super::weather::Units;
use crate::sport::sports_day;

/// What a capture is a response of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    EspnScoreboard,
    EspnSummary,
    Odds(OddsFormat),
    Scores,
    OpenWeather(Units),
    OpenMeteo,
    /// A NewsAPI `/v2/top-headlines` response.
    NewsApi,
}

/// One recorded response.
#[derive(Debug, Clone, Copy)]
pub struct Capture {
    /// File name under sources/fixtures/real (origins in its SOURCES.md).
    pub file: &'static str,
    pub kind: Kind,
    /// Our sport key; empty for weather.
    pub sport: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! capture {
    ($file:literal, $kind:expr, $sport:literal) => {
        Capture {
            file: $file,
            kind: $kind,
            sport: $sport,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/real/",
                $file
            )),
        }
    };
}

/// Every bundled capture.
pub const CAPTURES: &[Capture] = &[
    capture!(
        "espn_nfl_scoreboard_vasqued2.json",
        Kind::EspnScoreboard,
        "nfl"
    ),
    capture!(
        "espn_nfl_scoreboard_smythmyke.json",
        Kind::EspnScoreboard,
        "nfl"
    ),
    capture!(
        "espn_nfl_scoreboard_2023_week5_pregame.json",
        Kind::EspnScoreboard,
        "nfl"
    ),
    capture!(
        "espn_nba_scoreboard_andrewscheiner.json",
        Kind::EspnScoreboard,
        "nba"
    ),
    capture!(
        "espn_nba_scoreboard_JoeyG1973.json",
        Kind::EspnScoreboard,
        "nba"
    ),
    capture!(
        "espn_nhl_scoreboard_vasqued2.json",
        Kind::EspnScoreboard,
        "nhl"
    ),
    capture!(
        "espn_college-football_scoreboard_vasqued2.json",
        Kind::EspnScoreboard,
        "ncaaf"
    ),
    capture!(
        "espn_college-football_scoreboard_herumph.json",
        Kind::EspnScoreboard,
        "ncaaf"
    ),
    capture!("espn_nfl_summary_smythmyke.json", Kind::EspnSummary, "nfl"),
    capture!("espn_nba_summary_smythmyke.json", Kind::EspnSummary, "nba"),
    capture!("espn_nba_summary_cwhitelam.json", Kind::EspnSummary, "nba"),
    capture!("espn_nhl_summary_smythmyke.json", Kind::EspnSummary, "nhl"),
    capture!(
        "espn_college-football_summary_herumph.json",
        Kind::EspnSummary,
        "ncaaf"
    ),
    capture!(
        "theoddsapi_nfl_odds_jonathaanh.json",
        Kind::Odds(OddsFormat::American),
        "nfl"
    ),
    capture!(
        "odds_api_v4_nfl_odds_h2h_american_2023-02-06.json",
        Kind::Odds(OddsFormat::American),
        "nfl"
    ),
    capture!(
        "theoddsapi_nfl_odds_5050club.json",
        Kind::Odds(OddsFormat::Decimal),
        "nfl"
    ),
    capture!(
        "theoddsapi_nba_odds_jonathaanh.json",
        Kind::Odds(OddsFormat::American),
        "nba"
    ),
    capture!("theoddsapi_nfl_scores_5050club.json", Kind::Scores, "nfl"),
    capture!("theoddsapi_nba_scores_trenod.json", Kind::Scores, "nba"),
    capture!(
        "openweather_current_camtjohn.json",
        Kind::OpenWeather(Units::Imperial),
        ""
    ),
    capture!(
        "openweather_current_HarrisonLeece.json",
        Kind::OpenWeather(Units::Standard),
        ""
    ),
    capture!("openmeteo_forecast_ZennoFact.json", Kind::OpenMeteo, ""),
    capture!("openmeteo_forecast_TheLuck1987.json", Kind::OpenMeteo, ""),
    capture!(
        "newsapi_top-headlines_sports_softdev629.json",
        Kind::NewsApi,
        ""
    ),
    capture!(
        "newsapi_top-headlines_football_Arpana-Sitoula.json",
        Kind::NewsApi,
        ""
    ),
];

const API: &str = "replay";

/// The replay source. Stateless today; a seeded season generator would hang
/// off it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replay;

fn parse(c: &Capture) -> Result<Value, SourceError> {
    decode_bytes(API, c.file, c.bytes)
}

fn fetched(what: String, body: Vec<u8>) -> Fetched {
    Fetched {
        url: format!("replay://{what}"),
        body,
        quota: None,
    }
}

fn to_bytes(value: &Value, what: &str) -> Result<Vec<u8>, SourceError> {
    serde_json::to_vec(value).map_err(|e| SourceError::Decode {
        api: API,
        what: what.to_string(),
        path: ".".to_string(),
        message: e.to_string(),
    })
}

/// The New York sports day of a time field (ISO or Unix) of `v`.
fn day_of(v: &Value, field: &str) -> Option<NaiveDate> {
    let t: DateTime<Utc> = match v.get(field)? {
        Value::String(s) => lenient::parse_time(s)?,
        Value::Number(n) => lenient::from_unix(n.as_f64()?)?,
        _ => return None,
    };
    Some(sports_day(t))
}

impl Replay {
    /// Captures of `kind` for `sport`.
    pub fn captures(
        self,
        sport: &str,
        matches: impl Fn(Kind) -> bool,
    ) -> impl Iterator<Item = &'static Capture> {
        let sport: String = sport.to_string();
        CAPTURES
            .iter()
            .filter(move |c| c.sport == sport && matches(c.kind))
    }

    /// Sports days with at least one recorded ESPN game for `sport`.
    pub fn scoreboard_dates(self, sport: &str) -> Result<BTreeSet<NaiveDate>, SourceError> {
        let mut dates: BTreeSet<NaiveDate> = BTreeSet::new();
        for c in self.captures(sport, |k| k == Kind::EspnScoreboard) {
            let payload: Value = parse(c)?;
            for e in payload
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                dates.extend(day_of(e, "date"));
            }
        }
        Ok(dates)
    }

    /// The scoreboard of `sport` for sports day `date`: the recorded events
    /// of that day (none on a day without captures, as ESPN answers on an
    /// off day), with the season and week of the capture they came from.
    pub fn scoreboard(self, sport: &str, date: NaiveDate) -> Result<Fetched, SourceError> {
        let mut events: Vec<Value> = Vec::new();
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let mut head: Map<String, Value> = Map::new();
        for c in self.captures(sport, |k| k == Kind::EspnScoreboard) {
            let payload: Value = parse(c)?;
            let day_events = payload
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| day_of(e, "date") == Some(date));
            for e in day_events {
                let id: String = e.get("id").map(Value::to_string).unwrap_or_default();
                if ids.insert(id) {
                    events.push(e.clone());
                    if head.is_empty() {
                        for key in ["leagues", "season", "week"] {
                            if let Some(v) = payload.get(key) {
                                head.insert(key.to_string(), v.clone());
                            }
                        }
                    }
                }
            }
        }
        head.insert("events".to_string(), Value::Array(events));
        let what: String = format!("espn/{sport}/scoreboard?dates={}", date.format("%Y%m%d"));
        Ok(fetched(
            what.clone(),
            to_bytes(&Value::Object(head), &what)?,
        ))
    }

    /// The recorded summary of `event_id`, if any.
    pub fn summary(self, sport: &str, event_id: &str) -> Result<Option<Fetched>, SourceError> {
        for c in self.captures(sport, |k| k == Kind::EspnSummary) {
            let payload: Value = parse(c)?;
            let id: Option<&str> = payload.pointer("/header/id").and_then(Value::as_str);
            if id == Some(event_id) {
                return Ok(Some(fetched(c.file.to_string(), c.bytes.to_vec())));
            }
        }
        Ok(None)
    }

    /// `/odds` as recorded for `sport`: one response per capture, in its own
    /// price format. With `date`, only events commencing on that sports day.
    pub fn odds(
        self,
        sport: &str,
        date: Option<NaiveDate>,
    ) -> Result<Vec<(OddsFormat, Fetched)>, SourceError> {
        let mut out: Vec<(OddsFormat, Fetched)> = Vec::new();
        for c in self.captures(sport, |k| matches!(k, Kind::Odds(_))) {
            let Kind::Odds(format) = c.kind else { continue };
            let Some(date) = date else {
                out.push((format, fetched(c.file.to_string(), c.bytes.to_vec())));
                continue;
            };
            let payload: Value = parse(c)?;
            let events: Vec<Value> = payload
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| day_of(e, "commence_time") == Some(date))
                .cloned()
                .collect();
            if !events.is_empty() {
                out.push((
                    format,
                    fetched(c.file.to_string(), to_bytes(&Value::Array(events), c.file)?),
                ));
            }
        }
        Ok(out)
    }

    /// `/scores` as recorded for `sport`.
    pub fn scores(self, sport: &str) -> Vec<Fetched> {
        self.captures(sport, |k| k == Kind::Scores)
            .map(|c| fetched(c.file.to_string(), c.bytes.to_vec()))
            .collect()
    }

    /// A `/v4/historical/.../odds` snapshot at or before `at`, built from the
    /// American-price odds captures: each capture is one snapshot taken at
    /// its latest bookmaker update. `None` when no capture is that old.
    pub fn historical_odds(
        self,
        sport: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Fetched>, SourceError> {
        let mut snapshots: Vec<(DateTime<Utc>, Value)> = Vec::new();
        for c in self.captures(sport, |k| k == Kind::Odds(OddsFormat::American)) {
            let payload: Value = parse(c)?;
            let taken: Option<DateTime<Utc>> = payload
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| {
                    e.get("bookmakers")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .filter_map(|b| {
                    b.get("last_update")
                        .and_then(Value::as_str)
                        .and_then(lenient::parse_time)
                })
                .max();
            if let Some(taken) = taken {
                snapshots.push((taken, payload));
            }
        }
        snapshots.sort_by_key(|(t, _)| *t);
        let Some(i) = snapshots.iter().rposition(|(t, _)| *t <= at) else {
            return Ok(None);
        };
        let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body: Value = json!({
            "timestamp": iso(snapshots[i].0),
            "previous_timestamp": i.checked_sub(1).map(|p| iso(snapshots[p].0)),
            "next_timestamp": snapshots.get(i + 1).map(|(t, _)| iso(*t)),
            "data": snapshots[i].1,
        });
        let what: String = format!("odds_api/{sport}/historical?date={}", iso(at));
        Ok(Some(fetched(what.clone(), to_bytes(&body, &what)?)))
    }

    /// Recorded OpenWeather current readings with the units they were taken in.
    pub fn openweather_current(self) -> Vec<(Units, Fetched)> {
        CAPTURES
            .iter()
            .filter_map(|c| match c.kind {
                Kind::OpenWeather(units) => {
                    Some((units, fetched(c.file.to_string(), c.bytes.to_vec())))
                }
                _ => None,
            })
            .collect()
    }

    /// Recorded Open-Meteo hourly responses (forecast captures; same shape
    /// as the archive's).
    pub fn open_meteo(self) -> Vec<Fetched> {
        CAPTURES
            .iter()
            .filter(|c| c.kind == Kind::OpenMeteo)
            .map(|c| fetched(c.file.to_string(), c.bytes.to_vec()))
            .collect()
    }

    /// The recorded NewsAPI responses as if fetched for sports day `date`:
    /// each article's `publishedAt` is moved onto `date`, keeping its New
    /// York wall-clock time, so every replayed day has a day of news and the
    /// same date always gets the same bytes. Everything else is as recorded
    /// (articles without a parseable date stay as they are, to be rejected).
    pub fn news(self, date: NaiveDate) -> Result<Vec<Fetched>, SourceError> {
        let mut out: Vec<Fetched> = Vec::new();
        for c in CAPTURES.iter().filter(|c| c.kind == Kind::NewsApi) {
            let mut payload: Value = parse(c)?;
            let articles = payload
                .get_mut("articles")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for a in articles {
                let moved: Option<String> = a
                    .get("publishedAt")
                    .and_then(Value::as_str)
                    .and_then(lenient::parse_time)
                    .map(|t| onto_day(t, date).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                if let Some(moved) = moved {
                    a["publishedAt"] = Value::String(moved);
                }
            }
            let what: String = format!("newsapi/{}?date={date}", c.file);
            out.push(fetched(what.clone(), to_bytes(&payload, &what)?));
        }
        Ok(out)
    }
}

/// `t` moved onto New York day `date` at the same New York wall-clock time;
/// a time that day skips (spring forward) moves an hour later.
pub fn onto_day(t: DateTime<Utc>, date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_time(t.with_timezone(&New_York).time());
    New_York
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            New_York
                .from_local_datetime(&(local + TimeDelta::hours(1)))
                .earliest()
        })
        .map_or(t, |l| l.with_timezone(&Utc))
}
