//! The Odds API v4: sports, current odds, scores and historical snapshots.
//!
//! Every call costs credits, so the client returns the quota headers with
//! each response and logs them. The key travels only as the `apiKey` query
//! parameter; URLs in logs and errors have it masked and [`ApiKey`] never
//! prints it. Models accept both the older payload (no `markets[].last_update`)
//! and the current one, American or decimal prices, ISO or Unix times.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SourceError;
use crate::http::{ApiKey, Fetched, HttpClient, HttpConfig, Quota};
use crate::lenient;
use crate::odds_math::{american_to_decimal, decimal_to_american};
use crate::sport::Sport;
use crate::{decode_value, Validated};

mod screen;

pub use screen::{bookmaker_problem, price_problem, screen, BookmakerProblem, Screened};

pub const BASE_URL: &str = "https://api.the-odds-api.com";
pub const API: &str = "odds_api";
/// Environment variable holding the key.
pub const KEY_VAR: &str = "ODDS_API_KEY";
/// Requests per second (docs/data-model.md#sources).
pub const RATE_PER_SECOND: f64 = 1.0;
/// Markets BetFlow pulls.
pub const MARKETS: &str = "h2h,spreads,totals";

/// The `oddsFormat` a payload was requested in: the JSON numbers alone do
/// not say whether `2.5` is decimal or a (never valid) American price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OddsFormat {
    American,
    Decimal,
}

impl OddsFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OddsFormat::American => "american",
            OddsFormat::Decimal => "decimal",
        }
    }
}

/// `/v4/sports` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SportInfo {
    pub key: String,
    pub group: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub has_outrights: bool,
}

/// An event with its bookmakers' markets (`/odds`, and `data[]` of historical).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OddsEvent {
    pub id: String,
    pub sport_key: Option<String>,
    pub sport_title: Option<String>,
    #[serde(deserialize_with = "lenient::time")]
    pub commence_time: DateTime<Utc>,
    pub home_team: String,
    pub away_team: String,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub bookmakers: Vec<Bookmaker>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Bookmaker {
    pub key: String,
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub last_update: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub markets: Vec<Market>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Market {
    /// `h2h`, `spreads`, `totals`, `h2h_lay` …
    pub key: String,
    /// Only in the current payload format; fall back to the bookmaker's.
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub last_update: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Outcome {
    /// A team name, `Draw`, `Over` or `Under`.
    pub name: String,
    /// American (int) or decimal (float), per the request's `oddsFormat`.
    /// Anything that is not a number (`"abc"`, `null`, an object) decodes
    /// as NaN, so validation rejects this one quote, not its whole event.
    #[serde(deserialize_with = "screen::price")]
    pub price: f64,
    pub point: Option<f64>,
    pub description: Option<String>,
}

/// `/v4/sports/{sport}/scores` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ScoreEvent {
    pub id: String,
    pub sport_key: Option<String>,
    pub sport_title: Option<String>,
    #[serde(deserialize_with = "lenient::time")]
    pub commence_time: DateTime<Utc>,
    #[serde(default)]
    pub completed: bool,
    pub home_team: String,
    pub away_team: String,
    /// `null` before the game starts.
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub scores: Vec<TeamScore>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub last_update: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct TeamScore {
    pub name: String,
    /// A string in the payload (`"113"`).
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub score: Option<String>,
}

impl ScoreEvent {
    /// The score of `team` as a number, when sent and numeric.
    pub fn score_of(&self, team: &str) -> Option<u32> {
        self.scores
            .iter()
            .find(|s| s.name == team)
            .and_then(|s| s.score.as_deref())
            .and_then(|s| s.trim().parse::<u32>().ok())
    }
}

/// `/v4/historical/sports/{sport}/odds` response: one snapshot.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct HistoricalOdds {
    #[serde(deserialize_with = "lenient::time")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub previous_timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub next_timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub data: Vec<OddsEvent>,
}

/// Which side an outcome is, matched by team *name*, never by its position
/// in the list (docs/data-model.md#identifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Home,
    Away,
    Draw,
    Over,
    Under,
}

impl Side {
    /// The lowercase name stored in the tables (`home`, `over` …), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Home => "home",
            Side::Away => "away",
            Side::Draw => "draw",
            Side::Over => "over",
            Side::Under => "under",
        }
    }
}

/// One price: the grain of the silver odds snapshots
/// (docs/data-model.md#silverodds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    pub event_id: String,
    pub commence_time: DateTime<Utc>,
    pub bookmaker: String,
    pub market: String,
    pub outcome: Side,
    pub outcome_name: String,
    pub price_american: f64,
    pub price_decimal: f64,
    pub point: Option<f64>,
    /// The market's update time, else the bookmaker's.
    pub last_update: Option<DateTime<Utc>>,
}

/// One price of an event, borrowing its names from the decoded event.
#[derive(Debug, Clone, Copy)]
pub struct QuotedPrice<'a> {
    pub bookmaker: &'a str,
    pub market: &'a str,
    pub side: Side,
    pub outcome_name: &'a str,
    pub american: f64,
    pub decimal: f64,
    pub point: Option<f64>,
    /// The market's update time, else the bookmaker's.
    pub last_update: Option<DateTime<Utc>>,
}

/// Markets the quotes cover; others (`h2h_lay`, props) are skipped.
const QUOTED_MARKETS: &[&str] = &["h2h", "spreads", "totals"];

impl OddsEvent {
    /// The event's prices as quotes, both price formats filled in. Outcomes
    /// whose side cannot be told (an unknown team name) are skipped: the
    /// validation has already rejected events with such h2h markets.
    pub fn quotes(&self, format: OddsFormat) -> Vec<Quote> {
        let mut out: Vec<Quote> = Vec::new();
        self.each_quoted_price(format, |p| {
            out.push(Quote {
                event_id: self.id.clone(),
                commence_time: self.commence_time,
                bookmaker: p.bookmaker.to_owned(),
                market: p.market.to_owned(),
                outcome: p.side,
                outcome_name: p.outcome_name.to_owned(),
                price_american: p.american,
                price_decimal: p.decimal,
                point: p.point,
                last_update: p.last_update,
            });
        });
        out
    }

    /// Calls `f` with each price [`OddsEvent::quotes`] keeps, borrowed: the
    /// bulk loaders copy the strings straight into their columns.
    pub fn each_quoted_price<'a>(&'a self, format: OddsFormat, mut f: impl FnMut(QuotedPrice<'a>)) {
        for book in &self.bookmakers {
            for market in book
                .markets
                .iter()
                .filter(|m| QUOTED_MARKETS.contains(&m.key.as_str()))
            {
                for o in &market.outcomes {
                    let (Some(side), Some((american, decimal))) =
                        (self.side(&o.name), prices(o.price, format))
                    else {
                        continue;
                    };
                    f(QuotedPrice {
                        bookmaker: &book.key,
                        market: &market.key,
                        side,
                        outcome_name: &o.name,
                        american,
                        decimal,
                        point: o.point,
                        last_update: market.last_update.or(book.last_update),
                    });
                }
            }
        }
    }

    /// The side `name` stands for in this event.
    pub fn side(&self, name: &str) -> Option<Side> {
        if name == self.home_team {
            Some(Side::Home)
        } else if name == self.away_team {
            Some(Side::Away)
        } else {
            match name.to_ascii_lowercase().as_str() {
                "draw" | "tie" => Some(Side::Draw),
                "over" => Some(Side::Over),
                "under" => Some(Side::Under),
                _ => None,
            }
        }
    }
}

/// (American, decimal) of a price in `format`, if it is a valid price.
pub fn prices(price: f64, format: OddsFormat) -> Option<(f64, f64)> {
    match format {
        OddsFormat::American => american_to_decimal(price).map(|d| (price, d)),
        OddsFormat::Decimal => decimal_to_american(price).map(|a| (a, price)),
    }
}

const ODDS: &str = "odds_api.odds";
const SCORES: &str = "odds_api.scores";

/// Turns an `/odds` payload (a list of events) into good events and rejected
/// ones. Errors only when the payload is not a list.
pub fn validate_odds(
    payload: &Value,
    format: OddsFormat,
) -> Result<Validated<OddsEvent>, SourceError> {
    let events: &Vec<Value> = payload.as_array().ok_or_else(|| SourceError::Decode {
        api: API,
        what: "odds payload".to_string(),
        path: ".".to_string(),
        message: "expected a list of events".to_string(),
    })?;
    Ok(validate_events(events, format))
}

/// Validates a historical snapshot's `data`; returns the snapshot's
/// timestamps beside the records.
pub fn validate_historical(
    payload: &Value,
    format: OddsFormat,
) -> Result<(SnapshotTimes, Validated<OddsEvent>), SourceError> {
    let decode_error = |path: &str, message: String| SourceError::Decode {
        api: API,
        what: "historical odds payload".to_string(),
        path: path.to_string(),
        message,
    };
    let times: SnapshotTimes =
        decode_value::<SnapshotTimes>(payload).map_err(|m| decode_error(".", m))?;
    let data: &Vec<Value> = payload
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| decode_error("data", "missing or not a list".to_string()))?;
    Ok((times, validate_events(data, format)))
}

/// A historical snapshot's own timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct SnapshotTimes {
    #[serde(deserialize_with = "lenient::time")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub previous_timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient::opt_time")]
    pub next_timestamp: Option<DateTime<Utc>>,
}

fn validate_events(events: &[Value], format: OddsFormat) -> Validated<OddsEvent> {
    let mut out: Validated<OddsEvent> = Validated::default();
    for raw in events {
        match decode_value::<OddsEvent>(raw) {
            Ok(mut event) => match screen(&mut event, format) {
                Ok(screened) => {
                    for (reason, part) in screened.rejected_parts(&event.id, raw) {
                        out.reject(ODDS, reason, &part);
                    }
                    out.good.push(event);
                }
                Err(reason) => out.reject(ODDS, reason, raw),
            },
            Err(reason) => out.reject(ODDS, reason, raw),
        }
    }
    out
}

/// Turns a `/scores` payload into good and rejected events.
pub fn validate_scores(payload: &Value) -> Result<Validated<ScoreEvent>, SourceError> {
    let events: &Vec<Value> = payload.as_array().ok_or_else(|| SourceError::Decode {
        api: API,
        what: "scores payload".to_string(),
        path: ".".to_string(),
        message: "expected a list of events".to_string(),
    })?;
    let mut out: Validated<ScoreEvent> = Validated::default();
    for raw in events {
        match decode_value::<ScoreEvent>(raw) {
            Ok(e) => match score_text(&e) {
                Err(problem) => out.reject(SCORES, problem, raw),
                Ok(())
                    if e.completed
                        && (e.score_of(&e.home_team).is_none()
                            || e.score_of(&e.away_team).is_none()) =>
                {
                    out.reject(
                        SCORES,
                        format!("event {} is completed without both scores", e.id),
                        raw,
                    )
                }
                Ok(()) => out.good.push(e),
            },
            Err(reason) => out.reject(SCORES, reason, raw),
        }
    }
    Ok(out)
}

/// The event's id and names within the text bounds (docs/quality.md#text-fields):
/// a NUL or a bidi override in a team name must not reach the serving
/// tables through a score.
fn score_text(e: &ScoreEvent) -> Result<(), String> {
    use crate::text::{check, MAX_ID, MAX_NAME};
    check(&e.id, MAX_ID).map_err(|p| format!("event id {p}"))?;
    for (which, name) in [("home", &e.home_team), ("away", &e.away_team)] {
        check(name, MAX_NAME).map_err(|p| format!("event {}: {which} team {p}", e.id))?;
    }
    for s in &e.scores {
        check(&s.name, MAX_NAME).map_err(|p| format!("event {}: score name {p}", e.id))?;
        if let Some(score) = &s.score {
            check(score, MAX_ID).map_err(|p| format!("event {}: score {p}", e.id))?;
        }
    }
    for (which, text) in [("sport key", &e.sport_key), ("sport title", &e.sport_title)] {
        if let Some(t) = text {
            check(t, MAX_NAME).map_err(|p| format!("event {}: {which} {p}", e.id))?;
        }
    }
    Ok(())
}

/// A decoded response and the credits it cost.
#[derive(Debug, Clone)]
pub struct WithQuota<T> {
    pub value: T,
    pub quota: Option<Quota>,
}

/// The Odds API v4 client.
#[derive(Debug, Clone)]
pub struct OddsApiClient {
    http: HttpClient,
    key: ApiKey,
    format: OddsFormat,
}

impl OddsApiClient {
    /// A client against `config.base_url`, requesting American prices.
    pub fn new(config: HttpConfig, key: ApiKey) -> Result<Self, SourceError> {
        Ok(Self {
            http: HttpClient::new(API, config)?,
            key,
            format: OddsFormat::American,
        })
    }

    /// Requests prices in `format` instead of American
    /// (docs/data-model.md#sources).
    pub fn with_odds_format(mut self, format: OddsFormat) -> Self {
        self.format = format;
        self
    }

    /// The price format requested (and so the one to validate against).
    pub fn odds_format(&self) -> OddsFormat {
        self.format
    }

    async fn get(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
    ) -> Result<Fetched, SourceError> {
        query.push(("apiKey", self.key.expose().to_string()));
        self.http.get(path, &query).await
    }

    fn odds_query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("regions", "us".to_string()),
            ("markets", MARKETS.to_string()),
            ("oddsFormat", self.format.as_str().to_string()),
            ("dateFormat", "iso".to_string()),
        ]
    }

    /// `/v4/sports`: in-season sports (costs no credits).
    pub async fn sports(&self) -> Result<WithQuota<Vec<SportInfo>>, SourceError> {
        let f: Fetched = self.get("/v4/sports", Vec::new()).await?;
        Ok(WithQuota {
            value: f.decode(API)?,
            quota: f.quota,
        })
    }

    /// `/v4/sports/{key}/odds`, raw.
    pub async fn fetch_odds(&self, sport: &Sport) -> Result<Fetched, SourceError> {
        let path: String = format!("/v4/sports/{}/odds", sport.odds_api_key);
        self.get(&path, self.odds_query()).await
    }

    /// Current odds, validated.
    pub async fn odds(
        &self,
        sport: &Sport,
    ) -> Result<WithQuota<Validated<OddsEvent>>, SourceError> {
        let f: Fetched = self.fetch_odds(sport).await?;
        let payload: Value = f.decode(API)?;
        Ok(WithQuota {
            value: validate_odds(&payload, self.format)?,
            quota: f.quota,
        })
    }

    /// `/v4/sports/{key}/scores?daysFrom=N` (N in 1..=3 includes finished games), raw.
    pub async fn fetch_scores(
        &self,
        sport: &Sport,
        days_from: Option<u8>,
    ) -> Result<Fetched, SourceError> {
        let path: String = format!("/v4/sports/{}/scores", sport.odds_api_key);
        let mut query: Vec<(&str, String)> = vec![("dateFormat", "iso".to_string())];
        if let Some(days) = days_from {
            query.push(("daysFrom", days.to_string()));
        }
        self.get(&path, query).await
    }

    /// Scores, validated.
    pub async fn scores(
        &self,
        sport: &Sport,
        days_from: Option<u8>,
    ) -> Result<WithQuota<Validated<ScoreEvent>>, SourceError> {
        let f: Fetched = self.fetch_scores(sport, days_from).await?;
        let payload: Value = f.decode(API)?;
        Ok(WithQuota {
            value: validate_scores(&payload)?,
            quota: f.quota,
        })
    }

    /// `/v4/historical/sports/{key}/odds?date=…`: the snapshot at or before `at`, raw.
    pub async fn fetch_historical_odds(
        &self,
        sport: &Sport,
        at: DateTime<Utc>,
    ) -> Result<Fetched, SourceError> {
        let path: String = format!("/v4/historical/sports/{}/odds", sport.odds_api_key);
        let mut query: Vec<(&str, String)> = self.odds_query();
        query.push(("date", at.to_rfc3339_opts(SecondsFormat::Secs, true)));
        self.get(&path, query).await
    }

    /// A historical snapshot, validated.
    pub async fn historical_odds(
        &self,
        sport: &Sport,
        at: DateTime<Utc>,
    ) -> Result<WithQuota<(SnapshotTimes, Validated<OddsEvent>)>, SourceError> {
        let f: Fetched = self.fetch_historical_odds(sport, at).await?;
        let payload: Value = f.decode(API)?;
        Ok(WithQuota {
            value: validate_historical(&payload, self.format)?,
            quota: f.quota,
        })
    }
}
