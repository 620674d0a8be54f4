//! Silver: bronze rows cleaned and conformed, as polars lazy plans.
//!
//! * games: the latest load of each game, finals only, canonical ids
//!   (`{sport}:{espn id}` for games and teams, `espn:{id}` for venues),
//!   margins and overtime; its periods as their own table.
//! * odds: one row per (event, bookmaker, market, outcome, snapshot),
//!   implied and no-vig probability, overround, opening and closing flags
//!   (closing = last snapshot at or before commence time), and the event
//!   mapped to its game where the game is modelled already
//!   ([`super::event_games`]; gold maps every event again).
//! * weather: one row per venue and hour.

use polars::prelude::*;

use super::event_games;

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
/// the silver games modelled so far around them (for the event → game
/// map, [`event_games::silver_window`]); an event whose game is not among
/// them keeps a null `game_id`.
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
    // Materialised: both the event map and the rows start from it.
    let latest = by_newest_load(bronze)
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
        .collect()?
        .lazy();
    let map = event_games::event_games(event_games::events(latest.clone()), games)?.collect()?;
    event_games::with_games(latest, map.lazy())
        .with_columns([
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::transform::event_games::modelled_until;
    use crate::transform::event_games::tests::games;
    use crate::transform::frame::FrameBuilder;
    use crate::transform::suites;
    use lakehouse::quality::{evaluate, Context};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 9, d).unwrap()
    }

    fn at(d: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 9, d, hour, 0, 0).unwrap()
    }

    /// bronze.odds of Friday Sept 6: both h2h sides of each (event, home,
    /// away, commence), quoted at 16:00 UTC.
    fn bronze_friday(events: &[(&str, &str, &str, DateTime<Utc>)]) -> LazyFrame {
        let rows: Vec<(&str, &str, &str, DateTime<Utc>, &str)> = events
            .iter()
            .flat_map(|e| [(e.0, e.1, e.2, e.3, "home"), (e.0, e.1, e.2, e.3, "away")])
            .collect();
        let r = &rows;
        FrameBuilder::new()
            .str("sport", r.iter().map(|_| Some("nfl")))
            .date("sports_date", r.iter().map(|_| Some(day(6))))
            .ts("snapshot_time", r.iter().map(|_| Some(at(6, 16))))
            .str("event_id", r.iter().map(|x| Some(x.0)))
            .ts("commence_time", r.iter().map(|x| Some(x.3)))
            .str("home_team", r.iter().map(|x| Some(x.1)))
            .str("away_team", r.iter().map(|x| Some(x.2)))
            .str("bookmaker", r.iter().map(|_| Some("bk")))
            .str("market", r.iter().map(|_| Some("h2h")))
            .str("outcome", r.iter().map(|x| Some(x.4)))
            .str("outcome_name", r.iter().map(|x| Some(x.4)))
            .f64("price_american", r.iter().map(|_| Some(-110.0)))
            .f64("price_decimal", r.iter().map(|_| Some(1.0 + 100.0 / 110.0)))
            .f64("point", r.iter().map(|_| None))
            .ts("last_update", r.iter().map(|_| Some(at(6, 16))))
            .str("source", r.iter().map(|_| Some("replay")))
            .str("raw_key", r.iter().map(|_| Some("raw/x")))
            .str("run_id", r.iter().map(|_| Some("bronze")))
            .ts("ingested_at", r.iter().map(|_| Some(at(10, 0))))
            .build()
            .unwrap()
            .lazy()
    }

    fn game_of(odds: &DataFrame, event: &str) -> Option<String> {
        let df = odds
            .clone()
            .lazy()
            .filter(col("event_id").eq(lit(event)))
            .collect()
            .unwrap();
        let ids = df.column("game_id").unwrap().str().unwrap().clone();
        assert!(ids.iter().all(|g| g == ids.get(0)), "one game per event");
        ids.get(0).map(str::to_owned)
    }

    #[test]
    fn silver_maps_the_games_modelled_and_the_gate_warns_only_on_real_misses() {
        let friday_night = at(6, 23);
        let sunday = at(8, 17);
        let bronze = bronze_friday(&[
            // Quoted on Friday, two days before Sunday's game.
            ("a", "Bills", "Jets", sunday),
            ("b", "Chiefs", "Ravens", friday_night),
            // A matchup no game has.
            ("c", "Bills", "Ravens", friday_night),
        ]);
        let friday_game = ("nfl:2", "Chiefs", "Ravens", friday_night);
        let sunday_game = ("nfl:1", "Bills", "Jets", sunday);

        // The nightly run: Friday's games are in silver, Sunday's are not yet.
        let nightly = odds(bronze.clone(), games(&[friday_game]), "r").unwrap();
        assert_eq!(game_of(&nightly, "a"), None);
        assert_eq!(game_of(&nightly, "b").as_deref(), Some("nfl:2"));
        assert_eq!(game_of(&nightly, "c"), None);

        // Only "c" warns: "a" waits for Sunday, which gold maps once it is in.
        let frame = suites::odds_for_checks(&nightly, modelled_until(day(6))).unwrap();
        let results = evaluate(&suites::odds(), &frame, &Context::new(at(7, 10)));
        let mapping = results
            .iter()
            .find(|r| r.check == "an event whose games are modelled maps to a game")
            .expect("the mapping check runs");
        assert!(!mapping.passed);
        assert_eq!(mapping.observed, Some(2.0), "{}", mapping.detail);
        let failed_other: Vec<&str> = results
            .iter()
            .filter(|r| !r.passed && r.check != mapping.check && !r.check.starts_with("row_count"))
            .map(|r| r.check.as_str())
            .collect();
        assert!(failed_other.is_empty(), "{failed_other:?}");

        // Re-run with Sunday's game modelled (a backfill): "a" maps too.
        let later = odds(bronze, games(&[friday_game, sunday_game]), "r").unwrap();
        assert_eq!(game_of(&later, "a").as_deref(), Some("nfl:1"));
        assert_eq!(game_of(&later, "c"), None);
    }
}
