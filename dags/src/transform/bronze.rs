//! Bronze: the raw lake's payloads as typed rows, one per source record
//! (a game, a price, an hourly observation), with where each came from.
//!
//! The validators of [`sources`] decide what a record is; records
//! they reject were dead-lettered by the `validate` tasks already and are
//! left out here, so bronze holds exactly the valid records of the raw day.

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::{DataFrame, PolarsResult};
use serde_json::Value;

use super::frame::FrameBuilder;
use crate::ingest::weather::OutdoorVenue;
use lakehouse::iceberg::table::{opt, req};
use lakehouse::iceberg::{Kind, TableDef};
use sources::espn::{self, GameRecord};
use sources::news::FeedItem;

use sources::weather::{Observation, OpenMeteo};

/// Ingestion metadata every bronze row carries.
#[derive(Debug, Clone)]
pub struct Origin {
    pub sport: String,
    pub sports_date: NaiveDate,
    /// `replay`, `espn`, `the_odds_api`, `open_meteo`.
    pub source: String,
    /// The raw-lake object the record was read from.
    pub raw_key: String,
    pub run_id: String,
    pub ingested_at: DateTime<Utc>,
}

/// The columns every bronze table ends with.
macro_rules! origin_columns {
    () => {
        [
            req("source", Kind::Str, "source of the raw object"),
            req(
                "raw_key",
                Kind::Str,
                "raw-lake key of the object the row came from",
            ),
            req("run_id", Kind::Str, "BetFlow run that loaded the row"),
            req(
                "ingested_at",
                Kind::Timestamp,
                "when the row was loaded, UTC",
            ),
        ]
    };
}

const ORIGIN: [lakehouse::iceberg::Column; 4] = origin_columns!();

const GAMES_COLUMNS: [lakehouse::iceberg::Column; 32] = {
    let head = [
        req("sport", Kind::Str, "league key"),
        req("sports_date", Kind::Date, "sports day of the scoreboard"),
        req("game_id", Kind::Str, "ESPN event id"),
        req("start_time", Kind::Timestamp, "scheduled start, UTC"),
        opt("season", Kind::Int, "season year"),
        opt("season_type", Kind::Int, "season type"),
        opt("week", Kind::Int, "week"),
        req("state", Kind::Str, "pre, in or post"),
        opt("status_name", Kind::Str, "ESPN status name"),
        opt("status_detail", Kind::Str, "ESPN status detail"),
        req("period", Kind::Int, "current or last period"),
        req("home_team_id", Kind::Str, "ESPN team id"),
        req("home_team_name", Kind::Str, "display name"),
        opt("home_team_abbr", Kind::Str, "abbreviation"),
        opt("home_score", Kind::Int, "points"),
        req(
            "home_linescores",
            Kind::Str,
            "points per period, comma-separated",
        ),
        req("away_team_id", Kind::Str, "ESPN team id"),
        req("away_team_name", Kind::Str, "display name"),
        opt("away_team_abbr", Kind::Str, "abbreviation"),
        opt("away_score", Kind::Int, "points"),
        req(
            "away_linescores",
            Kind::Str,
            "points per period, comma-separated",
        ),
        opt("venue_id", Kind::Str, "ESPN venue id"),
        opt("venue_name", Kind::Str, "venue"),
        opt("venue_city", Kind::Str, "city"),
        opt("venue_state", Kind::Str, "state"),
        opt("venue_indoor", Kind::Bool, "indoor"),
        opt("attendance", Kind::Long, "attendance"),
        req("neutral_site", Kind::Bool, "neutral site"),
    ];
    concat(head, ORIGIN)
};

const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [lakehouse::iceberg::Column; A],
    b: [lakehouse::iceberg::Column; B],
) -> [lakehouse::iceberg::Column; C] {
    assert!(A + B == C);
    let mut out = [b[0]; C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < B {
        out[A + j] = b[j];
        j += 1;
    }
    out
}

pub static GAMES: TableDef = TableDef {
    namespace: "bronze",
    name: "games",
    columns: &GAMES_COLUMNS,
    partition_by: &["sport", "sports_date"],
    doc: "ESPN scoreboard events, one row per event",
};

const ODDS_COLUMNS: [lakehouse::iceberg::Column; 19] = concat(
    [
        req("sport", Kind::Str, "league key"),
        req(
            "sports_date",
            Kind::Date,
            "sports day the snapshots were taken for",
        ),
        req(
            "snapshot_time",
            Kind::Timestamp,
            "the snapshot's timestamp, UTC",
        ),
        req("event_id", Kind::Str, "The Odds API event id"),
        req("commence_time", Kind::Timestamp, "event start, UTC"),
        req("home_team", Kind::Str, "home team"),
        req("away_team", Kind::Str, "away team"),
        req("bookmaker", Kind::Str, "bookmaker key"),
        req("market", Kind::Str, "h2h, spreads or totals"),
        req("outcome", Kind::Str, "home, away, draw, over, under"),
        req("outcome_name", Kind::Str, "outcome as the source names it"),
        req("price_american", Kind::Double, "American odds"),
        req("price_decimal", Kind::Double, "decimal odds"),
        opt("point", Kind::Double, "line"),
        opt(
            "last_update",
            Kind::Timestamp,
            "market or bookmaker update time",
        ),
    ],
    ORIGIN,
);

pub static ODDS: TableDef = TableDef {
    namespace: "bronze",
    name: "odds",
    columns: &ODDS_COLUMNS,
    partition_by: &["sport", "sports_date"],
    doc: "Historical odds snapshots, one row per price",
};

const WEATHER_COLUMNS: [lakehouse::iceberg::Column; 15] = concat(
    [
        req("sport", Kind::Str, "league whose games listed the venue"),
        req("sports_date", Kind::Date, "sports day"),
        req("venue_id", Kind::Str, "ESPN venue id"),
        opt("latitude", Kind::Double, "venue latitude"),
        opt("longitude", Kind::Double, "venue longitude"),
        req("observed_at", Kind::Timestamp, "hour, UTC"),
        opt("temperature_c", Kind::Double, "°C"),
        opt("wind_speed_ms", Kind::Double, "m/s"),
        opt("wind_deg", Kind::Double, "degrees"),
        opt("precipitation_mm", Kind::Double, "mm"),
        opt("humidity_pct", Kind::Double, "%"),
    ],
    ORIGIN,
);

pub static WEATHER: TableDef = TableDef {
    namespace: "bronze",
    name: "weather",
    columns: &WEATHER_COLUMNS,
    partition_by: &["sport", "sports_date"],
    doc: "Hourly observations at outdoor venues, one row per venue and hour",
};

const NEWS_COLUMNS: [lakehouse::iceberg::Column; 12] = concat(
    [
        req("sport", Kind::Str, "league whose feeds listed the article"),
        req(
            "sports_date",
            Kind::Date,
            "New York day the article was published",
        ),
        req(
            "item_id",
            Kind::Str,
            "hash of the url (128 bits of SHA-256, hex)",
        ),
        req("url", Kind::Str, "article link"),
        req("title", Kind::Str, "headline, tags stripped"),
        opt(
            "summary",
            Kind::Str,
            "description or summary, tags stripped",
        ),
        req("published_at", Kind::Timestamp, "publication time, UTC"),
        req(
            "outlet",
            Kind::Str,
            "publisher: NewsAPI source, feed title or host",
        ),
    ],
    ORIGIN,
);

pub static NEWS: TableDef = TableDef {
    namespace: "bronze",
    name: "news",
    columns: &NEWS_COLUMNS,
    partition_by: &["sport", "sports_date"],
    doc: "News articles of the sports day, one row per article and load",
};

fn origin(b: FrameBuilder, rows: &[&Origin]) -> FrameBuilder {
    b.str("source", rows.iter().map(|o| Some(o.source.clone())))
        .str("raw_key", rows.iter().map(|o| Some(o.raw_key.clone())))
        .str("run_id", rows.iter().map(|o| Some(o.run_id.clone())))
        .ts("ingested_at", rows.iter().map(|o| Some(o.ingested_at)))
}

fn join(points: &[u32]) -> String {
    points
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Valid games of one scoreboard payload.
pub fn games(payload: &Value, origin_of: &Origin) -> Result<Vec<GameRecord>, String> {
    espn::validate_scoreboard(&origin_of.sport, payload)
        .map(|v| v.good)
        .map_err(|e| e.to_string())
}

/// bronze.games rows.
pub fn games_frame(rows: &[(GameRecord, &Origin)]) -> PolarsResult<DataFrame> {
    let g = |f: fn(&GameRecord) -> Option<String>| rows.iter().map(move |(r, _)| f(r));
    let b = FrameBuilder::new()
        .str("sport", rows.iter().map(|(_, o)| Some(o.sport.clone())))
        .date("sports_date", rows.iter().map(|(_, o)| Some(o.sports_date)))
        .str("game_id", g(|r| Some(r.game_id.clone())))
        .ts("start_time", rows.iter().map(|(r, _)| Some(r.start_time)))
        .int("season", rows.iter().map(|(r, _)| r.season))
        .int("season_type", rows.iter().map(|(r, _)| r.season_type))
        .int("week", rows.iter().map(|(r, _)| r.week.map(|w| w as i32)))
        .str(
            "state",
            g(|r| Some(format!("{:?}", r.state).to_lowercase())),
        )
        .str("status_name", g(|r| r.status_name.clone()))
        .str("status_detail", g(|r| r.status_detail.clone()))
        .int("period", rows.iter().map(|(r, _)| Some(r.period as i32)))
        .str("home_team_id", g(|r| Some(r.home.team_id.clone())))
        .str("home_team_name", g(|r| Some(r.home.name.clone())))
        .str("home_team_abbr", g(|r| r.home.abbreviation.clone()))
        .int(
            "home_score",
            rows.iter().map(|(r, _)| r.home.score.map(|s| s as i32)),
        )
        .str("home_linescores", g(|r| Some(join(&r.home.linescores))))
        .str("away_team_id", g(|r| Some(r.away.team_id.clone())))
        .str("away_team_name", g(|r| Some(r.away.name.clone())))
        .str("away_team_abbr", g(|r| r.away.abbreviation.clone()))
        .int(
            "away_score",
            rows.iter().map(|(r, _)| r.away.score.map(|s| s as i32)),
        )
        .str("away_linescores", g(|r| Some(join(&r.away.linescores))))
        .str(
            "venue_id",
            g(|r| r.venue.as_ref().map(|v| v.venue_id.clone())),
        )
        .str(
            "venue_name",
            g(|r| r.venue.as_ref().and_then(|v| v.name.clone())),
        )
        .str(
            "venue_city",
            g(|r| r.venue.as_ref().and_then(|v| v.city.clone())),
        )
        .str(
            "venue_state",
            g(|r| r.venue.as_ref().and_then(|v| v.state.clone())),
        )
        .bool(
            "venue_indoor",
            rows.iter()
                .map(|(r, _)| r.venue.as_ref().and_then(|v| v.indoor)),
        )
        .long(
            "attendance",
            rows.iter().map(|(r, _)| r.attendance.map(|a| a as i64)),
        )
        .bool(
            "neutral_site",
            rows.iter().map(|(r, _)| Some(r.neutral_site)),
        );
    let origins: Vec<&Origin> = rows.iter().map(|(_, o)| *o).collect();
    origin(b, &origins).build()
}

// bronze.odds rows are built column by column in `bronze_odds`.

/// One hourly observation at one venue.
#[derive(Debug, Clone)]
pub struct WeatherRow {
    pub venue: OutdoorVenue,
    pub observation: Observation,
}

/// Observations of one stored weather object:
/// `[{"venue": …, "url": …, "response": <Open-Meteo body>}, …]`.
pub fn weather(payload: &Value) -> Vec<WeatherRow> {
    let mut out = Vec::new();
    for item in payload.as_array().map(Vec::as_slice).unwrap_or_default() {
        let venue: Option<OutdoorVenue> = item
            .get("venue")
            .and_then(|v| sources::decode_value(v).ok());
        let response: Option<OpenMeteo> = item
            .get("response")
            .and_then(|v| sources::decode_value(v).ok());
        let (Some(venue), Some(response)) = (venue, response) else {
            continue;
        };
        out.extend(
            response
                .observations()
                .into_iter()
                .map(|observation| WeatherRow {
                    venue: venue.clone(),
                    observation,
                }),
        );
    }
    out
}

/// bronze.weather rows.
pub fn weather_frame(rows: &[(WeatherRow, &Origin)]) -> PolarsResult<DataFrame> {
    let o = |f: fn(&Observation) -> Option<f64>| rows.iter().map(move |(r, _)| f(&r.observation));
    let b = FrameBuilder::new()
        .str("sport", rows.iter().map(|(_, o)| Some(o.sport.clone())))
        .date("sports_date", rows.iter().map(|(_, o)| Some(o.sports_date)))
        .str(
            "venue_id",
            rows.iter().map(|(r, _)| Some(r.venue.venue_id.clone())),
        )
        .f64("latitude", rows.iter().map(|(r, _)| Some(r.venue.lat)))
        .f64("longitude", rows.iter().map(|(r, _)| Some(r.venue.lon)))
        .ts(
            "observed_at",
            rows.iter().map(|(r, _)| Some(r.observation.observed_at)),
        )
        .f64("temperature_c", o(|w| w.temperature_c))
        .f64("wind_speed_ms", o(|w| w.wind_speed_ms))
        .f64("wind_deg", o(|w| w.wind_deg))
        .f64("precipitation_mm", o(|w| w.precipitation_mm))
        .f64("humidity_pct", o(|w| w.humidity_pct));
    let origins: Vec<&Origin> = rows.iter().map(|(_, o)| *o).collect();
    origin(b, &origins).build()
}

/// The day's articles of one stored news object (a JSON array of feeds).
/// Rejected articles were dead-lettered by `validate`; left out here.
pub fn news(payload: &Value, origin_of: &Origin) -> Vec<FeedItem> {
    crate::ingest::news::read_day(payload, origin_of.sports_date)
        .map(|d| d.items)
        .unwrap_or_default()
}

/// bronze.news rows.
pub fn news_frame(rows: &[(FeedItem, &Origin)]) -> PolarsResult<DataFrame> {
    let n = |f: fn(&FeedItem) -> Option<String>| rows.iter().map(move |(r, _)| f(r));
    let b = FrameBuilder::new()
        .str("sport", rows.iter().map(|(_, o)| Some(o.sport.clone())))
        .date("sports_date", rows.iter().map(|(_, o)| Some(o.sports_date)))
        .str("item_id", n(|r| Some(r.item_id.clone())))
        .str("url", n(|r| Some(r.url.clone())))
        .str("title", n(|r| Some(r.title.clone())))
        .str("summary", n(|r| r.summary.clone()))
        .ts(
            "published_at",
            rows.iter().map(|(r, _)| Some(r.published_at)),
        )
        .str("outlet", n(|r| Some(r.source.clone())));
    let origins: Vec<&Origin> = rows.iter().map(|(_, o)| *o).collect();
    origin(b, &origins).build()
}
