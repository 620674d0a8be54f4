//! Silver: bronze rows cleaned and conformed, as polars lazy plans.
//!
//! * games: the latest load of each game, finals only, canonical ids
//!   (`{sport}:{espn id}` for games and teams, `espn:{id}` for venues),
//!   margins and overtime; its periods as their own table.
//! * odds: one row per (event, bookmaker, market, outcome, snapshot),
//!   implied and no-vig probability, overround, opening and closing flags
//!   (closing = last snapshot at or before commence time), and the event
//!   mapped to its game by teams and start time.
//! * weather: one row per venue and hour.

use polars::prelude::*;

/// An odds event maps to a game with the same teams whose start is within
/// this many hours of the event's commence time (sources disagree by
/// minutes; a rescheduled game moves by days).
pub const MAP_TOLERANCE_HOURS: i64 = 12;

/// Periods in regulation: NHL plays three, the others four.
pub fn regulation_periods(sport: &str) -> usize {
    if sport == "nhl" {
        3
    } else {
        4
    }
}

fn by_newest_load(lf: LazyFrame) -> LazyFrame {
    lf.sort(
        ["ingested_at"],
        SortMultipleOptions::default().with_order_descending(true),
    )
}

/// silver.games and silver.game_periods from the bronze.games rows of the
/// days being modelled.
pub fn games(bronze: LazyFrame, run_id: &str) -> PolarsResult<(DataFrame, DataFrame)> {
    let latest = by_newest_load(bronze)
        .unique_stable(Some(cols(["sport", "game_id"])), UniqueKeepStrategy::First)
        .filter(col("state").eq(lit("post")))
        .sort(
            ["sport", "start_time", "game_id"],
            SortMultipleOptions::default(),
        )
        .collect()?;
    let (periods, period_rows) = periods_of(&latest)?;
    let id = |prefix: Expr, c: &str| concat_str([prefix, lit(":"), col(c)], "", false);
    let games = latest
        .lazy()
        .with_column(Series::new("periods".into(), periods).lit())
        .select([
            col("sport"),
            col("sports_date"),
            id(col("sport"), "game_id").alias("game_id"),
            col("season"),
            col("season_type"),
            col("week"),
            col("start_time"),
            col("status_name").alias("status"),
            id(col("sport"), "home_team_id").alias("home_team_id"),
            id(col("sport"), "away_team_id").alias("away_team_id"),
            col("home_team_name"),
            col("away_team_name"),
            col("home_score"),
            col("away_score"),
            (col("home_score") + col("away_score")).alias("total_points"),
            (col("home_score") - col("away_score")).alias("home_margin"),
            col("periods").cast(DataType::Int32),
            col("periods")
                .gt(when(col("sport").eq(lit("nhl")))
                    .then(lit(3))
                    .otherwise(lit(4)))
                .alias("overtime"),
            id(lit("espn"), "venue_id").alias("venue_id"),
            col("venue_name"),
            col("venue_indoor"),
            col("attendance"),
            col("neutral_site"),
            lit(run_id).alias("run_id"),
        ])
        .collect()?;
    Ok((games, period_rows))
}

/// Periods played per game (the longer line score) and one row per
/// (game, period). Line scores are comma-separated in bronze.
fn periods_of(latest: &DataFrame) -> PolarsResult<(Vec<i32>, DataFrame)> {
    let sport = latest.column("sport")?.str()?.clone();
    let date = latest.column("sports_date")?.cast(&DataType::Int32)?;
    let date = date.i32()?;
    let game = latest.column("game_id")?.str()?.clone();
    let home = latest.column("home_linescores")?.str()?.clone();
    let away = latest.column("away_linescores")?.str()?.clone();
    let parse = |s: Option<&str>| -> Vec<Option<i32>> {
        s.unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.trim().parse().ok())
            .collect()
    };
    let mut periods = Vec::with_capacity(latest.height());
    let (mut r_sport, mut r_date, mut r_game, mut r_period, mut r_ot, mut r_home, mut r_away) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..latest.height() {
        let s = sport.get(i).unwrap_or_default();
        let h = parse(home.get(i));
        let a = parse(away.get(i));
        let n = h.len().max(a.len());
        periods.push(n as i32);
        for p in 0..n {
            r_sport.push(s.to_owned());
            r_date.push(date.get(i));
            r_game.push(format!("{s}:{}", game.get(i).unwrap_or_default()));
            r_period.push(p as i32 + 1);
            r_ot.push(p >= regulation_periods(s));
            r_home.push(h.get(p).copied().flatten());
            r_away.push(a.get(p).copied().flatten());
        }
    }
    let rows = DataFrame::new_infer_height(vec![
        Series::new("sport".into(), r_sport).into_column(),
        Series::new("sports_date".into(), r_date)
            .cast(&DataType::Date)?
            .into_column(),
        Series::new("game_id".into(), r_game).into_column(),
        Series::new("period".into(), r_period).into_column(),
        Series::new("is_overtime".into(), r_ot).into_column(),
        Series::new("home_points".into(), r_home).into_column(),
        Series::new("away_points".into(), r_away).into_column(),
    ])?;
    Ok((periods, rows))
}

/// silver.odds from the bronze.odds rows of the days being modelled and
/// the silver games of those days (for the event → game mapping).
pub fn odds(bronze: LazyFrame, games: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let line = [
        col("event_id"),
        col("bookmaker"),
        col("market"),
        col("outcome"),
    ];
    let book_market = [
        col("event_id"),
        col("bookmaker"),
        col("market"),
        col("snapshot_time"),
    ];
    let micros = |c: &str| col(c).cast(DataType::Int64);
    let tolerance = lit(MAP_TOLERANCE_HOURS * 3_600_000_000);
    // One candidate game per (sport, home, away): the day's slate has each
    // pairing once; the start-time check below rejects a stale match.
    let candidates = games
        .select([
            col("sport"),
            col("home_team_name"),
            col("away_team_name"),
            col("game_id").alias("candidate_game_id"),
            col("start_time").alias("candidate_start"),
        ])
        .unique_stable(
            Some(cols(["sport", "home_team_name", "away_team_name"])),
            UniqueKeepStrategy::First,
        );
    by_newest_load(bronze)
        .unique_stable(
            Some(cols([
                "event_id",
                "bookmaker",
                "market",
                "outcome",
                "snapshot_time",
            ])),
            UniqueKeepStrategy::First,
        )
        .join(
            candidates,
            [col("sport"), col("home_team"), col("away_team")],
            [col("sport"), col("home_team_name"), col("away_team_name")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            when(
                (micros("commence_time") - micros("candidate_start"))
                    .abs()
                    .lt_eq(tolerance),
            )
            .then(col("candidate_game_id"))
            .otherwise(lit(NULL).cast(DataType::String))
            .alias("game_id"),
            (lit(1.0) / col("price_decimal")).alias("implied_prob"),
            col("snapshot_time")
                .lt_eq(col("commence_time"))
                .alias("is_pre_game"),
        ])
        .with_columns([
            (col("implied_prob").sum().over(book_market.clone())? - lit(1.0)).alias("overround"),
            (col("implied_prob") / col("implied_prob").sum().over(book_market)?)
                .alias("no_vig_prob"),
            col("snapshot_time")
                .eq(col("snapshot_time").min().over(line.clone())?)
                .alias("is_opening"),
            col("snapshot_time")
                .eq(when(col("is_pre_game"))
                    .then(col("snapshot_time"))
                    .otherwise(lit(NULL).cast(DataType::Datetime(TimeUnit::Microseconds, None)))
                    .max()
                    .over(line)?)
                .fill_null(lit(false))
                .alias("is_closing"),
        ])
        .select([
            col("sport"),
            col("sports_date"),
            col("event_id"),
            col("game_id"),
            col("commence_time"),
            col("home_team"),
            col("away_team"),
            col("bookmaker"),
            col("market"),
            col("outcome"),
            col("price_american"),
            col("price_decimal"),
            col("point"),
            col("implied_prob"),
            col("overround"),
            col("no_vig_prob"),
            col("last_update").alias("bookmaker_last_update"),
            col("snapshot_time"),
            col("is_pre_game"),
            col("is_opening"),
            col("is_closing"),
            lit(run_id).alias("run_id"),
        ])
        .sort(
            [
                "event_id",
                "bookmaker",
                "market",
                "outcome",
                "snapshot_time",
            ],
            SortMultipleOptions::default(),
        )
        .collect()
}

/// silver.weather from the bronze.weather rows of the days being modelled.
pub fn weather(bronze: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    by_newest_load(bronze)
        .unique_stable(
            Some(cols(["sport", "venue_id", "observed_at"])),
            UniqueKeepStrategy::First,
        )
        .select([
            col("sport"),
            col("sports_date"),
            concat_str([lit("espn"), lit(":"), col("venue_id")], "", false).alias("venue_id"),
            col("observed_at"),
            col("temperature_c"),
            col("wind_speed_ms"),
            col("wind_deg"),
            col("precipitation_mm"),
            col("humidity_pct"),
            lit(NULL).cast(DataType::String).alias("condition"),
            lit(run_id).alias("run_id"),
        ])
        .sort(
            ["sport", "venue_id", "observed_at"],
            SortMultipleOptions::default(),
        )
        .collect()
}
