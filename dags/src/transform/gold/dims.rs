//! The dimensions: teams, venues and bookmakers as seen in silver, the
//! static markets, and the calendar spanning the data.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use polars::prelude::*;

use super::{finish, left_join_nulls, null_of};
use crate::ingest::weather::VENUE_SEED;
use crate::transform::frame::FrameBuilder;
use crate::transform::gold_tables as t;

/// gold.dim_teams from silver games.
///
/// One row per team id (type-1): a renamed team keeps its id and gets the
/// display name of its latest game in `name`, with every name it has had
/// listed in `aliases`, so old and new names both resolve to one team.
/// Silver carries no abbreviation yet; the column is kept (null) so
/// dashboards do not change shape when it arrives.
pub fn dim_teams(games: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let side = |us: &str| {
        games.clone().select([
            col(format!("{us}_team_id")).alias("team_id"),
            col("sport"),
            col(format!("{us}_team_name")).alias("name"),
            col("sports_date"),
            col("start_time"),
        ])
    };
    let lf = concat([side("home"), side("away")], UnionArgs::default())?
        .group_by([col("team_id"), col("sport")])
        .agg([
            col("name")
                .sort_by([col("start_time")], SortMultipleOptions::default())
                .drop_nulls()
                .last()
                .alias("name"),
            distinct_joined("name", "; ").alias("aliases"),
            len().alias("games"),
            col("sports_date").min().alias("first_seen"),
            col("sports_date").max().alias("last_seen"),
        ])
        .with_column(null_of(DataType::String).alias("abbreviation"));
    finish(lf, &t::DIM_TEAMS, &["team_id"], run_id)
}

/// The distinct non-null values of a string column, sorted and joined.
fn distinct_joined(c: &str, separator: &str) -> Expr {
    col(c)
        .drop_nulls()
        .unique()
        .sort(SortOptions::default())
        .str()
        .join(separator, true)
}

/// gold.dim_venues from silver games, with coordinates from the venue seed
/// table the weather ingest uses.
pub fn dim_venues(games: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let latest = |c: &str| {
        col(c)
            .sort_by([col("start_time")], SortMultipleOptions::default())
            .drop_nulls()
            .last()
    };
    let seed = FrameBuilder::new()
        .str(
            "venue_id",
            VENUE_SEED.iter().map(|v| Some(format!("espn:{}", v.0))),
        )
        .f64("lat", VENUE_SEED.iter().map(|v| Some(v.1)))
        .f64("lon", VENUE_SEED.iter().map(|v| Some(v.2)))
        .build()?
        .lazy()
        .unique_stable(Some(cols(["venue_id"])), UniqueKeepStrategy::First);
    let venues = games
        .filter(col("venue_id").is_not_null())
        .group_by([col("venue_id")])
        .agg([
            latest("venue_name").alias("name"),
            latest("venue_indoor").alias("indoor"),
            distinct_joined("sport", ",").alias("sports"),
            len().alias("games"),
            col("sports_date").min().alias("first_seen"),
            col("sports_date").max().alias("last_seen"),
        ]);
    let lf = left_join_nulls(venues, seed, &["venue_id"]);
    finish(lf, &t::DIM_VENUES, &["venue_id"], run_id)
}

/// gold.dim_bookmakers from silver odds, mapped to a game or not.
pub fn dim_bookmakers(odds: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    dim_bookmakers_of(bookmaker_partials(odds), run_id)
}

/// What dim_bookmakers counts of some odds (mapped to games), one row per
/// (bookmaker, sport, market, event, game): the partials of several parts
/// of the odds stack into the partials of the whole.
pub(super) fn bookmaker_partials(odds: LazyFrame) -> LazyFrame {
    odds.group_by([
        col("bookmaker"),
        col("sport"),
        col("market"),
        col("event_id"),
        col("game_id"),
    ])
    .agg([
        len().cast(DataType::Int64).alias("prices"),
        col("snapshot_time").min().alias("first_seen"),
        col("snapshot_time").max().alias("last_seen"),
    ])
}

/// gold.dim_bookmakers from [`bookmaker_partials`].
pub(super) fn dim_bookmakers_of(partials: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let lf = partials.group_by([col("bookmaker")]).agg([
        distinct_joined("sport", ",").alias("sports"),
        distinct_joined("market", ",").alias("markets"),
        col("event_id").drop_nulls().n_unique().alias("events"),
        col("game_id").drop_nulls().n_unique().alias("games"),
        col("prices").sum().alias("prices"),
        col("first_seen").min().alias("first_seen"),
        col("last_seen").max().alias("last_seen"),
    ]);
    finish(lf, &t::DIM_BOOKMAKERS, &["bookmaker"], run_id)
}

/// The markets BetFlow ingests (`regions=us&markets=h2h,spreads,totals`)
/// and their outcomes, as silver names them.
const MARKETS: &[(&str, &str, &str, bool, &str)] = &[
    ("h2h", "home", "Moneyline", false, "the home team wins"),
    ("h2h", "away", "Moneyline", false, "the away team wins"),
    (
        "h2h",
        "draw",
        "Moneyline",
        false,
        "the game ends level (three-way markets)",
    ),
    (
        "spreads",
        "home",
        "Point spread",
        true,
        "home margin + the home point > 0",
    ),
    (
        "spreads",
        "away",
        "Point spread",
        true,
        "away margin + the away point > 0",
    ),
    (
        "totals",
        "over",
        "Total points",
        true,
        "total points > the point",
    ),
    (
        "totals",
        "under",
        "Total points",
        true,
        "total points < the point",
    ),
];

/// gold.dim_markets: static.
pub fn dim_markets(run_id: &str) -> PolarsResult<DataFrame> {
    let lf = FrameBuilder::new()
        .str("market", MARKETS.iter().map(|m| Some(m.0)))
        .str("outcome", MARKETS.iter().map(|m| Some(m.1)))
        .str("market_name", MARKETS.iter().map(|m| Some(m.2)))
        .bool("has_point", MARKETS.iter().map(|m| Some(m.3)))
        .str("description", MARKETS.iter().map(|m| Some(m.4)))
        .build()?
        .lazy();
    finish(lf, &t::DIM_MARKETS, &[], run_id)
}

/// gold.dim_dates: every day from the earliest to the latest sports date
/// of games, odds and weather (empty when all three are).
pub fn dim_dates(
    games: LazyFrame,
    odds: LazyFrame,
    weather: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let span = concat(
        [games, odds, weather].map(|lf| lf.select([col("sports_date")])),
        UnionArgs::default(),
    )?
    .select([
        col("sports_date").min().alias("first"),
        col("sports_date").max().alias("last"),
    ])
    .collect()?;
    let day = |c: &str| -> PolarsResult<Option<NaiveDate>> {
        let days = span.column(c)?.cast(&DataType::Int32)?;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        Ok(days
            .i32()?
            .get(0)
            .map(|d| epoch + Duration::days(i64::from(d))))
    };
    let days: Vec<NaiveDate> = match (day("first")?, day("last")?) {
        (Some(first), Some(last)) => first.iter_days().take_while(|d| *d <= last).collect(),
        _ => Vec::new(),
    };
    let int = |f: fn(&NaiveDate) -> i32| days.iter().map(move |d| Some(f(d)));
    let lf = FrameBuilder::new()
        .date("date", days.iter().map(|d| Some(*d)))
        .int("year", int(|d| d.year()))
        .int("month", int(|d| d.month() as i32))
        .int("day", int(|d| d.day() as i32))
        .int(
            "iso_weekday",
            int(|d| d.weekday().number_from_monday() as i32),
        )
        .int("iso_week", int(|d| d.iso_week().week() as i32))
        .bool(
            "is_weekend",
            days.iter()
                .map(|d| Some(matches!(d.weekday(), Weekday::Sat | Weekday::Sun))),
        )
        .build()?
        .lazy();
    finish(lf, &t::DIM_DATES, &["date"], run_id)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn a_renamed_team_keeps_one_row_with_the_latest_name() {
        let mut g = games(&[
            game("nfl:1", 8, "A", "B", 1, 0),
            game("nfl:2", 15, "A", "C", 1, 0),
        ]);
        // Team A renamed before its second game.
        let names = Series::new("home_team_name".into(), ["Old A", "New A"]);
        g.with_column(names.into_column()).unwrap();
        let df = dim_teams(g.lazy(), "r").unwrap();
        assert_schema(&df, &t::DIM_TEAMS);
        assert_eq!(df.height(), 3);
        let a = [("team_id", "nfl:A")];
        assert_eq!(cell_str(&df, &a, "name").as_deref(), Some("New A"));
        assert_eq!(
            cell_str(&df, &a, "aliases").as_deref(),
            Some("New A; Old A")
        );
        assert_eq!(cell_i64(&df, &a, "games"), Some(2));
    }

    #[test]
    fn venues_carry_seed_coordinates() {
        let df = dim_venues(games(&[game("nfl:1", 8, "A", "B", 1, 0)]).lazy(), "r").unwrap();
        assert_schema(&df, &t::DIM_VENUES);
        let v = [("venue_id", "espn:3738")];
        assert!(close(cell_f64(&df, &v, "lat").unwrap(), 42.0909));
        assert_eq!(cell_str(&df, &v, "sports").as_deref(), Some("nfl"));
    }

    #[test]
    fn bookmakers_count_unmapped_events_too() {
        let quotes = [
            Quote::h2h("bk", 0, "home", 1.9),
            Quote::total("bk", 0, "over", 40.0, 1.9).game(None),
        ];
        let df = dim_bookmakers(odds(&quotes).lazy(), "r").unwrap();
        assert_schema(&df, &t::DIM_BOOKMAKERS);
        let k = [("bookmaker", "bk")];
        assert_eq!(cell_i64(&df, &k, "events"), Some(2));
        assert_eq!(cell_i64(&df, &k, "games"), Some(1));
        assert_eq!(cell_str(&df, &k, "markets").as_deref(), Some("h2h,totals"));
    }

    #[test]
    fn calendar_spans_the_data_with_iso_weekdays() {
        let g = games(&[
            game("nfl:1", 6, "A", "B", 1, 0),
            game("nfl:2", 9, "A", "C", 1, 0),
        ]);
        let empty = |def| super::super::empty(def).lazy();
        let df = dim_dates(
            g.lazy(),
            empty(&crate::transform::silver_tables::ODDS),
            empty(&crate::transform::silver_tables::WEATHER),
            "r",
        )
        .unwrap();
        assert_schema(&df, &t::DIM_DATES);
        // Fri 6 … Mon 9 September 2024.
        assert_eq!(df.height(), 4);
        let weekday: Vec<Option<i32>> = df
            .column("iso_weekday")
            .unwrap()
            .i32()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(weekday, [Some(5), Some(6), Some(7), Some(1)]);
        let weekend: Vec<Option<bool>> = df
            .column("is_weekend")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(weekend, [Some(false), Some(true), Some(true), Some(false)]);
    }

    #[test]
    fn markets_are_static() {
        let df = dim_markets("r").unwrap();
        assert_schema(&df, &t::DIM_MARKETS);
        assert_eq!(df.height(), 7);
    }
}
