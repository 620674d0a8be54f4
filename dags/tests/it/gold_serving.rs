//! Gold marts built from a tiny silver history and copied into the
//! `serving.gold_*` tables of a real throwaway Postgres, migrated by the
//! same migrator every betflow command runs.

use crate::serving_db::ServingDb;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use dags::marts_serving::{replace_serving, serving_table, ServingLoadError};
use dags::transform::frame::FrameBuilder;
use dags::transform::gold::{build_all, dim_dates, empty, SilverInputs};
use dags::transform::gold_tables as gold;
use dags::transform::silver_tables as silver;
use lakehouse::iceberg::{Kind, TableDef};
use polars::prelude::*;
use sqlx::PgPool;

fn kickoff(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, day, 17, 0, 0).unwrap()
}

/// silver.games: (game id number, day, home, away, home score, away score).
fn games(rows: &[(u32, u32, &str, &str, i32, i32)]) -> DataFrame {
    let r = rows;
    FrameBuilder::new()
        .str("sport", r.iter().map(|_| Some("nfl")))
        .date(
            "sports_date",
            r.iter().map(|g| NaiveDate::from_ymd_opt(2024, 9, g.1)),
        )
        .str("game_id", r.iter().map(|g| Some(format!("nfl:{}", g.0))))
        .int("season", r.iter().map(|_| Some(2024)))
        .int("season_type", r.iter().map(|_| Some(2)))
        .int("week", r.iter().map(|_| Some(1)))
        .ts("start_time", r.iter().map(|g| Some(kickoff(g.1))))
        .str("status", r.iter().map(|_| Some("STATUS_FINAL")))
        .str(
            "home_team_id",
            r.iter().map(|g| Some(format!("nfl:{}", g.2))),
        )
        .str(
            "away_team_id",
            r.iter().map(|g| Some(format!("nfl:{}", g.3))),
        )
        .str("home_team_name", r.iter().map(|g| Some(g.2)))
        .str("away_team_name", r.iter().map(|g| Some(g.3)))
        .int("home_score", r.iter().map(|g| Some(g.4)))
        .int("away_score", r.iter().map(|g| Some(g.5)))
        .int("total_points", r.iter().map(|g| Some(g.4 + g.5)))
        .int("home_margin", r.iter().map(|g| Some(g.4 - g.5)))
        .int("periods", r.iter().map(|_| Some(4)))
        .bool("overtime", r.iter().map(|_| Some(false)))
        .str("venue_id", r.iter().map(|_| Some("espn:3738")))
        .str("venue_name", r.iter().map(|_| Some("Gillette Stadium")))
        .bool("venue_indoor", r.iter().map(|_| Some(false)))
        .long("attendance", r.iter().map(|_| Some(65_000)))
        .bool("neutral_site", r.iter().map(|_| Some(false)))
        .str("run_id", r.iter().map(|_| Some("silver")))
        .build()
        .unwrap()
}

/// One silver.odds price: (bookmaker, minutes before kickoff, market,
/// outcome, decimal, point).
type Price<'a> = (&'a str, i64, &'a str, &'a str, f64, Option<f64>);

/// An Odds API event as silver holds it: its id, the game silver mapped it
/// to (None: not modelled when its day was), teams and kickoff day.
struct Event {
    id: &'static str,
    silver_game: Option<&'static str>,
    home: &'static str,
    away: &'static str,
    day: u32,
}

/// Game 1's event (A v B, kickoff Sept 8, 17:00), mapped by silver.
const EV1: Event = Event {
    id: "ev1",
    silver_game: Some("nfl:1"),
    home: "A",
    away: "B",
    day: 8,
};

fn odds(rows: &[Price]) -> DataFrame {
    event_odds(&EV1, rows)
}

/// Prices of `ev`, each snapshot on its own sports day.
fn event_odds(ev: &Event, rows: &[Price]) -> DataFrame {
    let r = rows;
    let at = |q: &Price| kickoff(ev.day) - Duration::minutes(q.1);
    let day_of = |q: &Price| Some((at(q) - Duration::hours(4)).date_naive());
    FrameBuilder::new()
        .str("sport", r.iter().map(|_| Some("nfl")))
        .date("sports_date", r.iter().map(day_of))
        .str("event_id", r.iter().map(|_| Some(ev.id)))
        .str("game_id", r.iter().map(|_| ev.silver_game))
        .ts("commence_time", r.iter().map(|_| Some(kickoff(ev.day))))
        .str("home_team", r.iter().map(|_| Some(ev.home)))
        .str("away_team", r.iter().map(|_| Some(ev.away)))
        .str("bookmaker", r.iter().map(|q| Some(q.0)))
        .str("market", r.iter().map(|q| Some(q.2)))
        .str("outcome", r.iter().map(|q| Some(q.3)))
        .f64("price_american", r.iter().map(|q| Some(american(q.4))))
        .f64("price_decimal", r.iter().map(|q| Some(q.4)))
        .f64("point", r.iter().map(|q| q.5))
        .f64("implied_prob", r.iter().map(|q| Some(1.0 / q.4)))
        .f64("overround", r.iter().map(|_| None))
        .f64("no_vig_prob", r.iter().map(|_| None))
        .ts("bookmaker_last_update", r.iter().map(|q| Some(at(q))))
        .ts("snapshot_time", r.iter().map(|q| Some(at(q))))
        .bool("is_pre_game", r.iter().map(|q| Some(q.1 >= 0)))
        .bool("is_opening", r.iter().map(|_| Some(false)))
        .bool("is_closing", r.iter().map(|_| Some(false)))
        .str("run_id", r.iter().map(|_| Some("silver")))
        .build()
        .unwrap()
}

fn american(decimal: f64) -> f64 {
    if decimal >= 2.0 {
        (decimal - 1.0) * 100.0
    } else {
        -100.0 / (decimal - 1.0)
    }
}

fn periods(game: u32, points: &[(i32, i32)]) -> DataFrame {
    FrameBuilder::new()
        .str("sport", points.iter().map(|_| Some("nfl")))
        .date(
            "sports_date",
            points.iter().map(|_| NaiveDate::from_ymd_opt(2024, 9, 8)),
        )
        .str(
            "game_id",
            points.iter().map(|_| Some(format!("nfl:{game}"))),
        )
        .int("period", (1..=points.len() as i32).map(Some))
        .bool("is_overtime", points.iter().map(|_| Some(false)))
        .int("home_points", points.iter().map(|p| Some(p.0)))
        .int("away_points", points.iter().map(|p| Some(p.1)))
        .build()
        .unwrap()
}

fn weather(days: &[u32]) -> DataFrame {
    FrameBuilder::new()
        .str("sport", days.iter().map(|_| Some("nfl")))
        .date(
            "sports_date",
            days.iter().map(|d| NaiveDate::from_ymd_opt(2024, 9, *d)),
        )
        .str("venue_id", days.iter().map(|_| Some("espn:3738")))
        .ts("observed_at", days.iter().map(|d| Some(kickoff(*d))))
        .f64("temperature_c", days.iter().map(|d| Some(*d as f64)))
        .f64("wind_speed_ms", days.iter().map(|d| Some(*d as f64 / 2.0)))
        .f64("wind_deg", days.iter().map(|_| Some(90.0)))
        .f64("precipitation_mm", days.iter().map(|_| Some(0.0)))
        .f64("humidity_pct", days.iter().map(|_| Some(60.0)))
        .str("condition", days.iter().map(|_| None::<&str>))
        .str("run_id", days.iter().map(|_| Some("silver")))
        .build()
        .unwrap()
}

/// silver.news: (item, team or None, minutes before kickoff on Sept 8, sentiment).
fn news(rows: &[(&str, Option<&str>, i64, f64)]) -> DataFrame {
    let r = rows;
    FrameBuilder::new()
        .str("sport", r.iter().map(|_| Some("nfl")))
        .date(
            "sports_date",
            r.iter().map(|_| NaiveDate::from_ymd_opt(2024, 9, 8)),
        )
        .str("item_id", r.iter().map(|n| Some(n.0)))
        .str("team_id", r.iter().map(|n| n.1))
        .str(
            "team_name",
            r.iter().map(|n| n.1.map(|t| format!("Team {t}"))),
        )
        .str("matched_on", r.iter().map(|n| n.1))
        .ts(
            "published_at",
            r.iter().map(|n| Some(kickoff(8) - Duration::minutes(n.2))),
        )
        .str("source", r.iter().map(|_| Some("ESPN")))
        .str("title", r.iter().map(|n| Some(format!("Story {}", n.0))))
        .str("url", r.iter().map(|n| Some(format!("https://x/{}", n.0))))
        .f64("sentiment", r.iter().map(|n| Some(n.3)))
        .str("run_id", r.iter().map(|_| Some("silver")))
        .build()
        .unwrap()
}

/// Game 2's event (C v A on Sept 15), quoted from two days before; silver
/// modelled those days before game 2 was in, so left it unmapped.
const EV2: Event = Event {
    id: "ev2",
    silver_game: None,
    home: "C",
    away: "A",
    day: 15,
};

fn first_night() -> SilverInputs {
    let mut odds_rows = odds(&[
        ("x", 300, "h2h", "home", 1.80, None),
        ("x", 300, "h2h", "away", 2.10, None),
        ("x", 30, "h2h", "home", 1.70, None),
        ("x", 30, "h2h", "away", 2.25, None),
        ("y", 300, "h2h", "home", 1.85, None),
        ("y", 300, "h2h", "away", 2.00, None),
        ("x", 300, "spreads", "home", 1.91, Some(-3.5)),
        ("x", 300, "spreads", "away", 1.91, Some(3.5)),
        ("x", 300, "totals", "over", 1.91, Some(44.5)),
        ("x", 300, "totals", "under", 1.91, Some(44.5)),
        // In play: never the closing line.
        ("x", -60, "h2h", "home", 1.10, None),
        ("x", -60, "h2h", "away", 7.00, None),
    ]);
    let two_days = 48 * 60;
    let game2 = event_odds(
        &EV2,
        &[
            ("x", two_days, "h2h", "home", 2.20, None),
            ("x", two_days, "h2h", "away", 1.70, None),
        ],
    );
    odds_rows.vstack_mut(&game2).unwrap();
    SilverInputs {
        games: games(&[(1, 8, "A", "B", 27, 20)]),
        game_periods: periods(1, &[(7, 3), (10, 7), (3, 7), (7, 3)]),
        odds: odds_rows,
        weather: weather(&[8]),
        news: news(&[
            ("n1", Some("nfl:A"), 290, 0.5),
            ("n2", Some("nfl:A"), 100, -0.1),
            ("n3", None, 100, 0.2),
        ]),
        odds_events: None,
        odds_by_sport: None,
    }
}

fn second_night() -> SilverInputs {
    let mut inputs = first_night();
    let more = games(&[(2, 15, "C", "A", 13, 24)]);
    inputs.games.vstack_mut(&more).unwrap();
    let p2 = periods(2, &[(0, 7), (3, 7), (7, 3), (3, 7)]);
    inputs.game_periods.vstack_mut(&p2).unwrap();
    inputs.weather = weather(&[8, 15]);
    inputs
}

async fn count(pool: &PgPool, def: &TableDef) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {}", serving_table(def)))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The migration's columns are the TableDef's, in order, with matching
/// types and nullability, and loaded_at: last when the table was created
/// with all of them, before the columns a later migration appended.
async fn assert_columns_match(pool: &PgPool, def: &TableDef) {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = 'serving' AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(format!("gold_{}", def.name))
    .fetch_all(pool)
    .await
    .unwrap();
    let mut want: Vec<(String, String, String)> = def
        .columns
        .iter()
        .map(|c| {
            let ty = match c.kind {
                Kind::Str => "text",
                Kind::Int => "integer",
                Kind::Long => "bigint",
                Kind::Double => "double precision",
                Kind::Bool => "boolean",
                Kind::Date => "date",
                Kind::Timestamp => "timestamp with time zone",
            };
            let nullable = if c.required { "NO" } else { "YES" };
            (c.name.to_owned(), ty.to_owned(), nullable.to_owned())
        })
        .collect();
    let loaded_at = (
        "loaded_at".to_owned(),
        "timestamp with time zone".to_owned(),
        "NO".to_owned(),
    );
    // Columns appended to a gold table follow its run_id (Iceberg numbers
    // them in order); in serving they follow loaded_at.
    let appended_from = want
        .iter()
        .position(|c| c.0 == "run_id")
        .map_or(want.len(), |i| i + 1);
    want.insert(appended_from, loaded_at);
    assert_eq!(rows, want, "columns of {}", serving_table(def));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_marts_replace_their_serving_tables() {
    let db = ServingDb::start(4).await;
    let pool = &db.pool;

    // First night: every mart loads, and the tables have the marts' shape.
    let first = build_all(&first_night(), &pricing::Rules::default(), "run-1").unwrap();
    for (def, df) in &first {
        assert_columns_match(pool, def).await;
        let n = replace_serving(pool, def, df).await.unwrap();
        assert_eq!(n as usize, df.height(), "{}", def.name);
        assert!(df.height() > 0, "{} built no rows", def.name);
    }
    let game2_markets = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM serving.gold_market_efficiency WHERE game_id = 'nfl:2'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        n
    };
    // Game 2 is not played yet: its early odds wait, unmapped.
    assert_eq!(game2_markets().await, 0);

    // Second night: the tables hold exactly the new build, no leftovers.
    let second = build_all(&second_night(), &pricing::Rules::default(), "run-2").unwrap();
    for (def, df) in &second {
        replace_serving(pool, def, df).await.unwrap();
        assert_eq!(count(pool, def).await as usize, df.height(), "{}", def.name);
        let stale: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE run_id <> 'run-2'",
            serving_table(def)
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(stale, 0, "{} kept rows of the first load", def.name);
    }
    // Game 2 is in silver now: gold maps the odds silver took two days
    // before it, whatever order the nightly DAGs ran in.
    assert_eq!(game2_markets().await, 1);
    let opening: f64 = sqlx::query_scalar(
        "SELECT opening_decimal FROM serving.gold_odds_movement \
         WHERE game_id = 'nfl:2' AND bookmaker = 'x' AND market = 'h2h' AND outcome = 'home'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!((opening - 2.20).abs() < 1e-12);
    assert_eq!(count(pool, &gold::DIM_TEAMS).await, 3);
    assert_eq!(count(pool, &gold::DIM_DATES).await, 8); // Sept 8 … 15

    // Values survive the trip: x's h2h closes at 1.70 (30 min before), not
    // at the in-play 1.10; its vig at the close is 1/1.7 + 1/2.25 − 1.
    let (closing, movement, closing_time): (f64, f64, DateTime<Utc>) = sqlx::query_as(
        "SELECT closing_decimal, movement_decimal, closing_time FROM serving.gold_odds_movement \
         WHERE bookmaker = 'x' AND market = 'h2h' AND outcome = 'home'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!((closing - 1.70).abs() < 1e-12);
    assert!((movement - (1.70 - 1.80)).abs() < 1e-12);
    assert_eq!(closing_time, kickoff(8) - Duration::minutes(30));
    let (max_vig, rating): (f64, String) = sqlx::query_as(
        "SELECT max_vig_pct, efficiency_rating FROM serving.gold_market_efficiency \
         WHERE bookmaker = 'x' AND market = 'h2h'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let v_open: f64 = (1.0 / 1.8 + 1.0 / 2.1 - 1.0) * 100.0;
    let v_close = (1.0 / 1.7 + 1.0 / 2.25 - 1.0) * 100.0;
    assert!((max_vig - v_open.max(v_close)).abs() < 1e-9);
    assert_eq!(rating, "highly_efficient");
    let (wins, season, team_name): (i64, Option<i32>, Option<String>) = sqlx::query_as(
        "SELECT wins, season, team_name FROM serving.gold_team_trends \
         WHERE team_id = 'nfl:A' AND side = 'away'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (wins, season, team_name.as_deref()),
        (1, Some(2024), Some("A"))
    );
    let first_seen: NaiveDate =
        sqlx::query_scalar("SELECT first_seen FROM serving.gold_dim_teams WHERE team_id = 'nfl:A'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(first_seen, NaiveDate::from_ymd_opt(2024, 9, 8).unwrap());

    // A's news (first article 290 min before kickoff): the consensus home
    // probability at the 300-minute snapshot (two books), then at the
    // 30-minute one (x alone).
    let (articles, mean, before, after, moved): (i64, f64, f64, f64, f64) = sqlx::query_as(
        "SELECT articles, mean_sentiment, prob_before, prob_after, consensus_move \
         FROM serving.gold_news_sentiment_daily WHERE team_id = 'nfl:A' AND sports_date = '2024-09-08'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let fair = |home: f64, away: f64| (1.0 / home) / (1.0 / home + 1.0 / away);
    let want_before = (fair(1.80, 2.10) + fair(1.85, 2.00)) / 2.0;
    let want_after = fair(1.70, 2.25);
    assert_eq!(articles, 2);
    assert!((mean - 0.2).abs() < 1e-12);
    assert!((before - want_before).abs() < 1e-12);
    assert!((after - want_after).abs() < 1e-12);
    assert!((moved - (want_after - want_before)).abs() < 1e-12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_marts_load_in_chunks_and_failed_loads_keep_the_previous_rows() {
    let db = ServingDb::start(2).await;
    let pool = &db.pool;

    // 1990-01-01 … 2024-12-31: 12 784 days, more than one insert chunk.
    let span = |first: (i32, u32, u32), last: (i32, u32, u32)| {
        FrameBuilder::new()
            .str("sport", [Some("nfl"), Some("nfl")])
            .date(
                "sports_date",
                [
                    NaiveDate::from_ymd_opt(first.0, first.1, first.2),
                    NaiveDate::from_ymd_opt(last.0, last.1, last.2),
                ],
            )
            .build()
            .unwrap()
            .lazy()
    };
    let none = |def| empty(def).lazy();
    let dates = dim_dates(
        span((1990, 1, 1), (2024, 12, 31)),
        none(&silver::ODDS),
        none(&silver::WEATHER),
        "big",
    )
    .unwrap();
    assert_eq!(dates.height(), 12_784);
    assert_eq!(
        replace_serving(pool, &gold::DIM_DATES, &dates)
            .await
            .unwrap(),
        12_784
    );
    let (n, first, last, weekends): (i64, NaiveDate, NaiveDate, i64) = sqlx::query_as(
        "SELECT count(*), min(date), max(date), count(*) FILTER (WHERE is_weekend) \
         FROM serving.gold_dim_dates",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(n, 12_784);
    assert_eq!(first, NaiveDate::from_ymd_opt(1990, 1, 1).unwrap());
    assert_eq!(last, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
    assert_eq!(weekends, 3_652);

    // A duplicate of the grain in the second chunk fails the load; the rows
    // already inserted roll back with the delete.
    let mut dup = dates.clone();
    dup.vstack_mut(&dates.slice(0, 1)).unwrap();
    let err = replace_serving(pool, &gold::DIM_DATES, &dup)
        .await
        .unwrap_err();
    assert!(matches!(err, ServingLoadError::Sql { .. }), "{err}");
    assert!(err.to_string().contains("serving.gold_dim_dates"), "{err}");
    assert_eq!(count(pool, &gold::DIM_DATES).await, 12_784);
    let runs: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT run_id FROM serving.gold_dim_dates")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(runs, ["big"]);

    // A frame without a column of the table is refused before any SQL.
    let err = replace_serving(pool, &gold::DIM_DATES, &dates.drop("iso_week").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "serving.gold_dim_dates: column `iso_week`: missing from the frame"
    );
    assert_eq!(count(pool, &gold::DIM_DATES).await, 12_784);

    // An empty mart empties its table.
    assert_eq!(
        replace_serving(pool, &gold::DIM_DATES, &empty(&gold::DIM_DATES))
            .await
            .unwrap(),
        0
    );
    assert_eq!(count(pool, &gold::DIM_DATES).await, 0);
}
