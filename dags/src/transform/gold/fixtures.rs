//! Tiny silver frames for the gold tests, in the exact silver schemas, so
//! each test states only the numbers it checks.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use polars::prelude::*;

use crate::transform::frame::FrameBuilder;
use sources::odds_math::decimal_to_american;

/// Snapshot minutes count from here; games commence at minute 100.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 8, 15, 0, 0).unwrap()
}

pub fn at(minute: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minute)
}

/// One silver odds row.
#[derive(Clone)]
pub struct Quote {
    pub game_id: Option<&'static str>,
    pub bookmaker: &'static str,
    pub minute: i64,
    pub commence_minute: i64,
    pub market: &'static str,
    pub outcome: &'static str,
    pub decimal: f64,
    pub point: Option<f64>,
}

impl Quote {
    pub fn h2h(bookmaker: &'static str, minute: i64, outcome: &'static str, decimal: f64) -> Self {
        Quote {
            game_id: Some("nfl:1"),
            bookmaker,
            minute,
            commence_minute: 100,
            market: "h2h",
            outcome,
            decimal,
            point: None,
        }
    }

    pub fn spread(
        bookmaker: &'static str,
        minute: i64,
        outcome: &'static str,
        point: f64,
        decimal: f64,
    ) -> Self {
        Quote {
            market: "spreads",
            point: Some(point),
            ..Quote::h2h(bookmaker, minute, outcome, decimal)
        }
    }

    pub fn total(
        bookmaker: &'static str,
        minute: i64,
        outcome: &'static str,
        point: f64,
        decimal: f64,
    ) -> Self {
        Quote {
            market: "totals",
            point: Some(point),
            ..Quote::h2h(bookmaker, minute, outcome, decimal)
        }
    }

    pub fn game(self, game_id: Option<&'static str>) -> Self {
        Quote { game_id, ..self }
    }
}

/// silver.odds rows; `overround`/`no_vig_prob` are left null (gold
/// recomputes them) and the flags are deliberately not trusted.
pub fn odds(quotes: &[Quote]) -> DataFrame {
    let q = quotes;
    fn sport(game_id: Option<&str>) -> &str {
        game_id.map_or("nfl", |g| g.split(':').next().unwrap_or("nfl"))
    }
    FrameBuilder::new()
        .str("sport", q.iter().map(|x| Some(sport(x.game_id))))
        .date(
            "sports_date",
            q.iter().map(|x| Some(at(x.minute).date_naive())),
        )
        .str(
            "event_id",
            q.iter()
                .map(|x| Some(format!("ev-{}", x.game_id.unwrap_or("x")))),
        )
        .str("game_id", q.iter().map(|x| x.game_id))
        .ts(
            "commence_time",
            q.iter().map(|x| Some(at(x.commence_minute))),
        )
        // The names of `game(…, "A", "B", …)`, so the event maps to it.
        .str("home_team", q.iter().map(|_| Some("Team A")))
        .str("away_team", q.iter().map(|_| Some("Team B")))
        .str("bookmaker", q.iter().map(|x| Some(x.bookmaker)))
        .str("market", q.iter().map(|x| Some(x.market)))
        .str("outcome", q.iter().map(|x| Some(x.outcome)))
        .f64(
            "price_american",
            q.iter().map(|x| decimal_to_american(x.decimal)),
        )
        .f64("price_decimal", q.iter().map(|x| Some(x.decimal)))
        .f64("point", q.iter().map(|x| x.point))
        .f64("implied_prob", q.iter().map(|x| Some(1.0 / x.decimal)))
        .f64("overround", q.iter().map(|_| None))
        .f64("no_vig_prob", q.iter().map(|_| None))
        .ts(
            "bookmaker_last_update",
            q.iter().map(|x| Some(at(x.minute))),
        )
        .ts("snapshot_time", q.iter().map(|x| Some(at(x.minute))))
        .bool("is_pre_game", q.iter().map(|_| Some(true)))
        .bool("is_opening", q.iter().map(|_| Some(false)))
        .bool("is_closing", q.iter().map(|_| Some(false)))
        .str("run_id", q.iter().map(|_| Some("silver-run")))
        .build()
        .unwrap()
}

/// One silver game; `day` is a September 2024 day, kickoff 17:00 UTC.
#[derive(Clone)]
pub struct Game {
    pub game_id: &'static str,
    pub season: i32,
    pub day: u32,
    pub home: &'static str,
    pub away: &'static str,
    pub home_score: i32,
    pub away_score: i32,
    pub venue_id: Option<&'static str>,
    pub indoor: Option<bool>,
}

pub fn game(
    game_id: &'static str,
    day: u32,
    home: &'static str,
    away: &'static str,
    home_score: i32,
    away_score: i32,
) -> Game {
    Game {
        game_id,
        season: 2024,
        day,
        home,
        away,
        home_score,
        away_score,
        venue_id: Some("espn:3738"),
        indoor: Some(false),
    }
}

pub fn kickoff(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, day, 17, 0, 0).unwrap()
}

pub fn games(rows: &[Game]) -> DataFrame {
    let g = rows;
    let sport = |id: &str| id.split(':').next().unwrap().to_owned();
    FrameBuilder::new()
        .str("sport", g.iter().map(|x| Some(sport(x.game_id))))
        .date(
            "sports_date",
            g.iter().map(|x| NaiveDate::from_ymd_opt(2024, 9, x.day)),
        )
        .str("game_id", g.iter().map(|x| Some(x.game_id)))
        .int("season", g.iter().map(|x| Some(x.season)))
        .int("season_type", g.iter().map(|_| Some(2)))
        .int("week", g.iter().map(|_| Some(1)))
        .ts("start_time", g.iter().map(|x| Some(kickoff(x.day))))
        .str("status", g.iter().map(|_| Some("STATUS_FINAL")))
        .str(
            "home_team_id",
            g.iter()
                .map(|x| Some(format!("{}:{}", sport(x.game_id), x.home))),
        )
        .str(
            "away_team_id",
            g.iter()
                .map(|x| Some(format!("{}:{}", sport(x.game_id), x.away))),
        )
        .str(
            "home_team_name",
            g.iter().map(|x| Some(format!("Team {}", x.home))),
        )
        .str(
            "away_team_name",
            g.iter().map(|x| Some(format!("Team {}", x.away))),
        )
        .int("home_score", g.iter().map(|x| Some(x.home_score)))
        .int("away_score", g.iter().map(|x| Some(x.away_score)))
        .int(
            "total_points",
            g.iter().map(|x| Some(x.home_score + x.away_score)),
        )
        .int(
            "home_margin",
            g.iter().map(|x| Some(x.home_score - x.away_score)),
        )
        .int("periods", g.iter().map(|_| Some(4)))
        .bool("overtime", g.iter().map(|_| Some(false)))
        .str("venue_id", g.iter().map(|x| x.venue_id))
        .str(
            "venue_name",
            g.iter().map(|x| x.venue_id.map(|v| format!("Venue {v}"))),
        )
        .bool("venue_indoor", g.iter().map(|x| x.indoor))
        .long("attendance", g.iter().map(|_| Some(60_000)))
        .bool("neutral_site", g.iter().map(|_| Some(false)))
        .str("run_id", g.iter().map(|_| Some("silver-run")))
        .build()
        .unwrap()
}

/// silver.game_periods rows: (game_id, period, home points, away points).
pub fn periods(rows: &[(&str, i32, i32, i32)]) -> DataFrame {
    let sport = |id: &str| id.split(':').next().unwrap().to_owned();
    FrameBuilder::new()
        .str("sport", rows.iter().map(|r| Some(sport(r.0))))
        .date(
            "sports_date",
            rows.iter().map(|_| NaiveDate::from_ymd_opt(2024, 9, 8)),
        )
        .str("game_id", rows.iter().map(|r| Some(r.0)))
        .int("period", rows.iter().map(|r| Some(r.1)))
        .bool("is_overtime", rows.iter().map(|r| Some(r.1 > 4)))
        .int("home_points", rows.iter().map(|r| Some(r.2)))
        .int("away_points", rows.iter().map(|r| Some(r.3)))
        .build()
        .unwrap()
}

/// silver.weather rows: (venue_id, observed_at, temperature °C, wind m/s,
/// precipitation mm).
pub fn weather(rows: &[(&str, DateTime<Utc>, f64, f64, f64)]) -> DataFrame {
    FrameBuilder::new()
        .str("sport", rows.iter().map(|_| Some("nfl")))
        .date("sports_date", rows.iter().map(|r| Some(r.1.date_naive())))
        .str("venue_id", rows.iter().map(|r| Some(r.0)))
        .ts("observed_at", rows.iter().map(|r| Some(r.1)))
        .f64("temperature_c", rows.iter().map(|r| Some(r.2)))
        .f64("wind_speed_ms", rows.iter().map(|r| Some(r.3)))
        .f64("wind_deg", rows.iter().map(|_| Some(180.0)))
        .f64("precipitation_mm", rows.iter().map(|r| Some(r.4)))
        .f64("humidity_pct", rows.iter().map(|_| Some(50.0)))
        .str("condition", rows.iter().map(|_| None::<String>))
        .str("run_id", rows.iter().map(|_| Some("silver-run")))
        .build()
        .unwrap()
}

/// Value of `column` in the row where `key_col == key` (the tests' lookup).
pub fn cell_f64(df: &DataFrame, filters: &[(&str, &str)], column: &str) -> Option<f64> {
    row(df, filters)
        .column(column)
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
}

pub fn cell_i64(df: &DataFrame, filters: &[(&str, &str)], column: &str) -> Option<i64> {
    row(df, filters)
        .column(column)
        .unwrap()
        .i64()
        .unwrap()
        .get(0)
}

pub fn cell_str(df: &DataFrame, filters: &[(&str, &str)], column: &str) -> Option<String> {
    row(df, filters)
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .map(str::to_owned)
}

/// The one row matching every (string column, value) filter.
pub fn row(df: &DataFrame, filters: &[(&str, &str)]) -> DataFrame {
    let mut pred = lit(true);
    for (c, v) in filters {
        pred = pred.and(col(*c).eq(lit(*v)));
    }
    let out = df.clone().lazy().filter(pred).collect().unwrap();
    assert_eq!(out.height(), 1, "one row for {filters:?} in {df}");
    out
}

/// The frame's schema matches the table's exactly.
pub fn assert_schema(df: &DataFrame, def: &lakehouse::iceberg::TableDef) {
    let got: Vec<(String, DataType)> = df
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.dtype().clone()))
        .collect();
    let want: Vec<(String, DataType)> = def
        .columns
        .iter()
        .map(|c| (c.name.to_owned(), c.kind.polars()))
        .collect();
    assert_eq!(got, want, "schema of {}", def.full_name());
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// silver.news rows: (item, team id or None, minute published, sentiment).
pub fn news(rows: &[(&str, Option<&str>, i64, f64)]) -> DataFrame {
    FrameBuilder::new()
        .str("sport", rows.iter().map(|_| Some("nfl")))
        .date(
            "sports_date",
            rows.iter().map(|r| Some(at(r.2).date_naive())),
        )
        .str("item_id", rows.iter().map(|r| Some(r.0)))
        .str("team_id", rows.iter().map(|r| r.1))
        .str(
            "team_name",
            rows.iter().map(|r| r.1.map(|t| format!("Team {t}"))),
        )
        .str("matched_on", rows.iter().map(|r| r.1))
        .ts("published_at", rows.iter().map(|r| Some(at(r.2))))
        .str("source", rows.iter().map(|_| Some("ESPN")))
        .str("title", rows.iter().map(|r| Some(format!("Story {}", r.0))))
        .str(
            "url",
            rows.iter().map(|r| Some(format!("https://x/{}", r.0))),
        )
        .f64("sentiment", rows.iter().map(|r| Some(r.3)))
        .str("run_id", rows.iter().map(|_| Some("silver-run")))
        .build()
        .unwrap()
}
