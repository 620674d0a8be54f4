//! Gold: the marts and dimensions of DATA.md ("Gold marts"), rebuilt from
//! the whole silver history each night as polars lazy plans.
//!
//! One `pub fn` per table ([`super::gold_tables`] declares them) takes the
//! silver tables it reads as `LazyFrame`s and returns a DataFrame whose
//! columns are exactly the table's, in its order and dtypes, sorted by its
//! grain. [`build_all`] runs them all over one [`SilverInputs`], sharing
//! the odds preparation (`prices.rs`) instead of repeating it per mart.
//!
//! Choices DATA.md leaves open, made once here:
//! * Opening and closing lines are recomputed over the full history rather
//!   than read from silver's `is_opening` / `is_closing`, which silver sets
//!   per modelled day (the original's "opening/closing computed only over
//!   the incremental batch" bug, had we trusted them).
//! * Vig, no-vig and favourites are recomputed per bookmaker market snapshot
//!   from `implied_prob` and need at least two outcomes; a snapshot missing
//!   a side has no vig rather than a wrong one.
//! * Prices are compared across bookmakers (best price, consensus) only at
//!   the same point: a −3 and a −3.5 spread are different bets.
//! * Unmapped odds (no `game_id`) are left out of every game-grain mart;
//!   `dim_bookmakers` still counts them.

mod dims;
mod games;
mod markets;
mod movement;
mod news;
mod prices;
mod weather;

#[cfg(test)]
mod fixtures;

use polars::prelude::*;

use super::gold_tables as t;
use super::silver_tables as silver;
use crate::iceberg::TableDef;

pub use dims::{dim_bookmakers, dim_dates, dim_markets, dim_teams, dim_venues};
pub use games::{scoring_patterns, team_trends};
pub use markets::{bookmaker_comparison, market_efficiency};
pub use movement::{closing_line_value, odds_movement};
pub use news::{news_sentiment_daily, MOVE_HOURS};
pub use weather::weather_impact;

/// The silver tables gold reads, whole. A frame with no columns (the table
/// does not exist yet, e.g. the first night) stands for an empty table.
#[derive(Debug, Clone, Default)]
pub struct SilverInputs {
    pub games: DataFrame,
    pub game_periods: DataFrame,
    pub odds: DataFrame,
    pub weather: DataFrame,
    pub news: DataFrame,
}

/// Every gold table built from `inputs`, in [`t::ALL`]'s order, each row
/// stamped with `run_id`.
pub fn build_all(
    inputs: &SilverInputs,
    run_id: &str,
) -> PolarsResult<Vec<(&'static TableDef, DataFrame)>> {
    let games = input(&inputs.games, &silver::GAMES)?;
    let periods = input(&inputs.game_periods, &silver::GAME_PERIODS)?;
    let odds = input(&inputs.odds, &silver::ODDS)?;
    let weather = input(&inputs.weather, &silver::WEATHER)?;
    let news = input(&inputs.news, &silver::NEWS)?;

    // Materialised once: every odds mart starts from the same prepared rows.
    let priced = prices::priced(odds.clone())?.collect()?.lazy();
    let lines = prices::outcome_lines(priced.clone())?.collect()?.lazy();
    let game_lines = prices::game_closing_lines(lines.clone()).collect()?.lazy();

    Ok(vec![
        (
            &t::MARKET_EFFICIENCY,
            markets::market_efficiency_of(priced.clone(), run_id)?,
        ),
        (
            &t::ODDS_MOVEMENT,
            movement::odds_movement_of(priced.clone(), lines.clone(), run_id)?,
        ),
        (
            &t::CLOSING_LINE_VALUE,
            movement::closing_line_value_of(lines.clone(), run_id)?,
        ),
        (
            &t::BOOKMAKER_COMPARISON,
            markets::bookmaker_comparison_of(priced.clone(), lines, games.clone(), run_id)?,
        ),
        (
            &t::TEAM_TRENDS,
            games::team_trends_of(games.clone(), game_lines.clone(), run_id)?,
        ),
        (
            &t::SCORING_PATTERNS,
            scoring_patterns(games.clone(), periods, run_id)?,
        ),
        (
            &t::WEATHER_IMPACT,
            weather::weather_impact_of(games.clone(), game_lines, weather.clone(), run_id)?,
        ),
        (
            &t::NEWS_SENTIMENT_DAILY,
            news::news_sentiment_daily_of(news, priced, games.clone(), run_id)?,
        ),
        (&t::DIM_TEAMS, dim_teams(games.clone(), run_id)?),
        (&t::DIM_VENUES, dim_venues(games.clone(), run_id)?),
        (&t::DIM_BOOKMAKERS, dim_bookmakers(odds.clone(), run_id)?),
        (&t::DIM_MARKETS, dim_markets(run_id)?),
        (&t::DIM_DATES, dim_dates(games, odds, weather, run_id)?),
    ])
}

/// `df` as a lazy frame with `def`'s columns and dtypes; a missing column
/// is an error (silver and gold disagree), except that a frame without any
/// columns is the empty table.
fn input(df: &DataFrame, def: &TableDef) -> PolarsResult<LazyFrame> {
    if df.width() == 0 {
        return Ok(empty(def).lazy());
    }
    let exprs: Vec<Expr> = def
        .columns
        .iter()
        .map(|c| col(c.name).cast(c.kind.polars()))
        .collect();
    Ok(df.clone().lazy().select(exprs))
}

/// No rows, `def`'s schema.
pub fn empty(def: &TableDef) -> DataFrame {
    let columns: Vec<Column> = def
        .columns
        .iter()
        .map(|c| Column::new_empty(c.name.into(), &c.kind.polars()))
        .collect();
    DataFrame::new_infer_height(columns).expect("columns of equal (zero) length")
}

/// Selects `def`'s columns in order, cast to their kinds, with `run_id`
/// filled in, sorted by the grain `key` so reruns produce identical files.
fn finish(lf: LazyFrame, def: &TableDef, key: &[&str], run_id: &str) -> PolarsResult<DataFrame> {
    let exprs: Vec<Expr> = def
        .columns
        .iter()
        .map(|c| {
            if c.name == "run_id" {
                lit(run_id).alias("run_id")
            } else {
                col(c.name).cast(c.kind.polars())
            }
        })
        .collect();
    let lf = lf.select(exprs);
    if key.is_empty() {
        return lf.collect();
    }
    lf.sort(
        key.iter().map(|k| (*k).into()).collect::<Vec<PlSmallStr>>(),
        SortMultipleOptions::default().with_maintain_order(true),
    )
    .collect()
}

/// A typed null, for `otherwise` branches.
fn null_of(dtype: DataType) -> Expr {
    lit(NULL).cast(dtype)
}

/// `col(name)` for each name.
fn cols_of(names: &[&str]) -> Vec<Expr> {
    names.iter().map(|n| col(*n)).collect()
}

/// Left join on several keys where null keys match (a null season, a null
/// point on h2h).
fn left_join_nulls(left: LazyFrame, right: LazyFrame, on: &[&str]) -> LazyFrame {
    let args = JoinArgs {
        nulls_equal: true,
        ..JoinArgs::new(JoinType::Left)
    };
    left.join(right, cols_of(on), cols_of(on), args)
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn check_all(tables: &[(&'static TableDef, DataFrame)]) {
        let names: Vec<&str> = tables.iter().map(|(d, _)| d.name).collect();
        let want: Vec<&str> = t::ALL.iter().map(|d| d.name).collect();
        assert_eq!(names, want);
        for (def, df) in tables {
            assert_schema(df, def);
            for c in def.columns.iter().filter(|c| c.required) {
                assert_eq!(
                    df.column(c.name).unwrap().null_count(),
                    0,
                    "{}.{} is required",
                    def.full_name(),
                    c.name
                );
            }
        }
    }

    #[test]
    fn empty_inputs_build_empty_tables_with_their_schemas() {
        let none = build_all(&SilverInputs::default(), "r").unwrap();
        check_all(&none);
        let schemas_only = SilverInputs {
            games: empty(&silver::GAMES),
            game_periods: empty(&silver::GAME_PERIODS),
            odds: empty(&silver::ODDS),
            weather: empty(&silver::WEATHER),
            news: empty(&silver::NEWS),
        };
        let built = build_all(&schemas_only, "r").unwrap();
        check_all(&built);
        for (def, df) in &built {
            let expected = if def.name == "dim_markets" { 7 } else { 0 };
            assert_eq!(df.height(), expected, "{}", def.full_name());
        }
    }

    #[test]
    fn a_small_history_fills_every_table() {
        let inputs = SilverInputs {
            games: games(&[game("nfl:1", 8, "A", "B", 27, 20)]),
            game_periods: periods(&[("nfl:1", 1, 14, 10), ("nfl:1", 2, 13, 10)]),
            odds: odds(&[
                Quote::h2h("a", 0, "home", 1.80),
                Quote::h2h("a", 0, "away", 2.10),
                Quote::h2h("b", 0, "home", 1.85),
                Quote::h2h("b", 0, "away", 2.00),
                Quote::spread("a", 0, "home", -3.5, 1.91),
                Quote::spread("a", 0, "away", 3.5, 1.91),
                Quote::total("a", 0, "over", 44.5, 1.91),
                Quote::total("a", 0, "under", 44.5, 1.91),
            ]),
            weather: weather(&[("espn:3738", kickoff(8), 18.0, 6.0, 0.0)]),
            news: news(&[("s1", Some("nfl:A"), 5, 0.4)]),
        };
        let built = build_all(&inputs, "run-7").unwrap();
        check_all(&built);
        for (def, df) in &built {
            assert!(df.height() > 0, "{} is empty", def.full_name());
            let runs = df.column("run_id").unwrap().str().unwrap();
            assert!(runs.iter().all(|r| r == Some("run-7")));
        }
    }
}
