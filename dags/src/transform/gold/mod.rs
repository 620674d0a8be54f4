//! Gold: the marts and dimensions of docs/data-model.md#gold-tables, rebuilt
//! from the whole silver history each night as polars lazy plans.
//!
//! One `pub fn` per table ([`super::gold_tables`] declares them) takes the
//! silver tables it reads as `LazyFrame`s and returns a DataFrame whose
//! columns are exactly the table's, in its order and dtypes, sorted by its
//! grain. [`build_all`] runs them all over one [`SilverInputs`], sharing
//! the odds preparation (`prices.rs`) instead of repeating it per mart;
//! [`build_one`] builds one table, as each gold task does.
//!
//! Choices made once here:
//! * Odds events are mapped to games here, over the whole history
//!   ([`super::event_games`], docs/data-model.md#event-to-game-mapping),
//!   not taken from silver's `game_id`: silver maps a day before the games
//!   its snapshots quote days ahead are modelled. The per-table functions
//!   take odds whose `game_id` is that map's; [`build_all`] and
//!   [`build_one`] apply it first.
//! * Opening and closing lines are recomputed over the full history rather
//!   than read from silver's `is_opening` / `is_closing`, which silver sets
//!   per modelled day only, so they describe one day's snapshots, not the
//!   whole series (docs/formulas.md#opening-and-closing-lines).
//! * Vig, no-vig and favourites are recomputed per bookmaker market snapshot
//!   from `implied_prob` and need at least two outcomes; a snapshot missing
//!   a side has no vig rather than a wrong one.
//! * Prices are compared across bookmakers (best price, consensus) only at
//!   the same point: a −3 and a −3.5 spread are different bets.
//! * Unmapped odds (no `game_id`) are left out of every game-grain mart;
//!   `dim_bookmakers` still counts them.
//!
//! Gold reads only the silver columns it uses ([`reads`]): a season of
//! silver.odds is millions of rows, and the columns no mart reads
//! (silver's own flags, vig and map, the run id) would be most of them.

mod dims;
mod fair;
mod games;
mod markets;
mod movement;
mod news;
mod prices;
mod weather;

#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use polars::prelude::*;
use pricing::Rules;

use super::event_games;
use super::gold_tables as t;
use super::silver_tables as silver;
use lakehouse::iceberg::TableDef;

pub use dims::{dim_bookmakers, dim_dates, dim_markets, dim_teams, dim_venues};
pub use games::{scoring_patterns, team_trends};
pub use markets::{bookmaker_comparison, market_efficiency};
pub use movement::{closing_line_value, odds_movement};
pub use news::{news_sentiment_daily, MOVE_HOURS};
pub use weather::weather_impact;

/// The silver tables gold reads, whole or only the columns of [`reads`]. A
/// frame with no columns (the table does not exist yet, e.g. the first
/// night, or the table being built reads none of it) stands for an empty
/// table.
#[derive(Debug, Clone, Default)]
pub struct SilverInputs {
    pub games: DataFrame,
    pub game_periods: DataFrame,
    pub odds: DataFrame,
    pub weather: DataFrame,
    pub news: DataFrame,
    /// The odds' events ([`event_games::events`]) when read apart, so that
    /// `odds` can leave the team names out; `None`: taken from `odds`.
    pub odds_events: Option<DataFrame>,
    /// Where the odds marts read each sport's odds when set (then only
    /// what is not per sport, like `dim_dates`, reads `odds`), so that one
    /// sport's prices are held at a time, never the whole history.
    pub odds_by_sport: Option<OddsBySport>,
}

/// Reads one sport's silver odds on demand: the gold tasks read each sport
/// from Iceberg in turn.
#[derive(Clone)]
pub struct OddsBySport(Arc<ReadSport>);

type ReadSport = dyn Fn(&str) -> PolarsResult<DataFrame> + Send + Sync;

impl OddsBySport {
    pub fn new(read: impl Fn(&str) -> PolarsResult<DataFrame> + Send + Sync + 'static) -> Self {
        Self(Arc::new(read))
    }

    fn read(&self, sport: &str) -> PolarsResult<DataFrame> {
        (self.0)(sport)
    }
}

impl std::fmt::Debug for OddsBySport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OddsBySport(..)")
    }
}

/// silver.odds as the odds marts read it: prices and what places them
/// (the `game_id` is gold's own map).
const ODDS_PRICES: &[&str] = &[
    "sport",
    "event_id",
    "commence_time",
    "bookmaker",
    "market",
    "outcome",
    "price_american",
    "price_decimal",
    "point",
    "implied_prob",
    "snapshot_time",
];

/// silver.games as the marts and dimensions read it (the event map's
/// columns included).
const GAMES: &[&str] = &[
    "sport",
    "sports_date",
    "game_id",
    "season",
    "start_time",
    "home_team_id",
    "away_team_id",
    "home_team_name",
    "away_team_name",
    "home_score",
    "away_score",
    "total_points",
    "venue_id",
    "venue_name",
    "venue_indoor",
];

const GAME_PERIODS: &[&str] = &[
    "sport",
    "game_id",
    "period",
    "is_overtime",
    "home_points",
    "away_points",
];

const WEATHER: &[&str] = &[
    "venue_id",
    "observed_at",
    "temperature_c",
    "wind_speed_ms",
    "precipitation_mm",
];

const NEWS: &[&str] = &[
    "sport",
    "sports_date",
    "item_id",
    "team_id",
    "team_name",
    "published_at",
    "sentiment",
];

/// The columns of silver table `input` that building gold table `table`
/// reads; empty when it reads none of that table. Odds marts read the
/// event map's team names in a scan of their own
/// ([`event_games::EVENT_COLUMNS`], [`SilverInputs::odds_events`]) that is
/// reduced to one row per event before the prices are read.
pub fn reads(table: &TableDef, input: &TableDef) -> &'static [&'static str] {
    const MAP: &[&str] = &event_games::GAME_COLUMNS;
    match (table.name, input.name) {
        ("market_efficiency" | "odds_movement" | "closing_line_value", "odds") => ODDS_PRICES,
        ("market_efficiency" | "odds_movement" | "closing_line_value", "games") => MAP,
        (
            "bookmaker_comparison" | "team_trends" | "weather_impact" | "news_sentiment_daily",
            "odds",
        ) => ODDS_PRICES,
        (
            "bookmaker_comparison"
            | "team_trends"
            | "weather_impact"
            | "news_sentiment_daily"
            | "scoring_patterns"
            | "dim_teams"
            | "dim_venues",
            "games",
        ) => GAMES,
        ("scoring_patterns", "game_periods") => GAME_PERIODS,
        ("weather_impact", "weather") => WEATHER,
        ("news_sentiment_daily", "news") => NEWS,
        ("dim_bookmakers", "odds") => {
            &["sport", "event_id", "bookmaker", "market", "snapshot_time"]
        }
        ("dim_bookmakers", "games") => MAP,
        ("dim_dates", "odds" | "games" | "weather") => &["sports_date"],
        _ => &[],
    }
}

/// Every column of `input` that some gold table reads, in the table's
/// order: what one [`build_all`] over projected inputs needs.
pub fn reads_any(input: &TableDef) -> Vec<&'static str> {
    input
        .columns
        .iter()
        .map(|c| c.name)
        .filter(|name| t::ALL.iter().any(|g| reads(g, input).contains(name)))
        .collect()
}

/// Whether building `table` maps odds events to games (and so reads
/// [`event_games::EVENT_COLUMNS`] of silver.odds).
pub fn maps_events(table: &TableDef) -> bool {
    reads(table, &silver::ODDS).contains(&"event_id")
}

/// The typed silver inputs.
struct Inputs {
    games: LazyFrame,
    periods: LazyFrame,
    odds: LazyFrame,
    weather: LazyFrame,
    news: LazyFrame,
}

impl Inputs {
    fn of(inputs: &SilverInputs) -> PolarsResult<Inputs> {
        Ok(Inputs {
            games: input(&inputs.games, &silver::GAMES)?,
            periods: input(&inputs.game_periods, &silver::GAME_PERIODS)?,
            odds: input(&inputs.odds, &silver::ODDS)?,
            weather: input(&inputs.weather, &silver::WEATHER)?,
            news: input(&inputs.news, &silver::NEWS)?,
        })
    }

    /// Gold's event → game map ([`event_games::event_games`]) over the
    /// whole history: one row per event, small.
    fn event_map(&self, inputs: &SilverInputs) -> PolarsResult<DataFrame> {
        let events = match &inputs.odds_events {
            Some(df) => input(df, &silver::ODDS)?,
            None => event_games::events(self.odds.clone()),
        };
        event_games::event_games(events, self.games.clone())?.collect()
    }

    /// `f` over the odds of each sport in turn, the map applied
    /// ([`SportOdds`]), in the map's sport order; a sport of more than
    /// [`CHUNK_ROWS`] odds rows in parts of whole games, so that no part
    /// holds many more. With no odds, `f` runs once over the empty odds, so
    /// its table still has its schema.
    fn per_sport<T>(
        &self,
        inputs: &SilverInputs,
        mut f: impl FnMut(SportOdds) -> PolarsResult<T>,
    ) -> PolarsResult<Vec<T>> {
        let map = self.event_map(inputs)?;
        let sports = map.column("sport")?.unique_stable()?;
        let sports: Vec<String> = sports.str()?.iter().flatten().map(str::to_owned).collect();
        if sports.is_empty() {
            let mapped = event_games::with_games(self.odds.clone(), map.lazy());
            return Ok(vec![f(SportOdds { mapped })?]);
        }
        let mut out = Vec::with_capacity(sports.len());
        for sport in sports {
            let of_sport = || col("sport").eq(lit(sport.as_str()));
            let odds = match &inputs.odds_by_sport {
                Some(by_sport) => input(&by_sport.read(&sport)?, &silver::ODDS)?,
                None => self.odds.clone().filter(of_sport()),
            };
            let sport_map = map.clone().lazy().filter(of_sport()).collect()?;
            for part in game_parts(&sport_map, rows(odds.clone())?)? {
                let mapped = event_games::of_mapped_events(odds.clone(), part.lazy());
                out.push(f(SportOdds { mapped })?);
            }
        }
        Ok(out)
    }
}

/// Odds rows above which gold splits a sport's games into parts: a part's
/// prepared odds take about half a kilobyte a row while it is built. Below
/// about 1.5M rows more parts stop saving memory and start costing scans.
const CHUNK_ROWS: usize = 1_500_000;

/// Rows of `lf`.
fn rows(lf: LazyFrame) -> PolarsResult<usize> {
    let n = lf.select([len()]).collect()?;
    let n = n.column("len")?.cast(&DataType::UInt64)?;
    Ok(n.u64()?.get(0).unwrap_or(0) as usize)
}

/// `map` (one sport's events and their games) split into parts of whole
/// games, as many as `odds_rows` needs at [`CHUNK_ROWS`] a part, the
/// events of no game in the first.
fn game_parts(map: &DataFrame, odds_rows: usize) -> PolarsResult<Vec<DataFrame>> {
    let parts = odds_rows.div_ceil(CHUNK_ROWS).max(1);
    if parts == 1 {
        return Ok(vec![map.clone()]);
    }
    let ids = map.column("game_id")?.drop_nulls().unique()?;
    let ids = ids.as_materialized_series().sort(SortOptions::default())?;
    let per_part = ids.len().div_ceil(parts).max(1);
    let mut out = Vec::with_capacity(parts);
    for (i, start) in (0..ids.len()).step_by(per_part).enumerate() {
        let part = ids.slice(start as i64, per_part);
        let mut of_part = col("game_id").is_in(lit(part).implode(false), false);
        if i == 0 {
            of_part = of_part.or(col("game_id").is_null());
        }
        out.push(map.clone().lazy().filter(of_part).collect()?);
    }
    Ok(out)
}

/// One sport's silver odds with gold's map applied. Gold works one sport at
/// a time: every odds mart's grain holds a game or a sport, so a sport's
/// rows build its rows alone, and only one sport's prepared odds are held
/// at once (a season of one sport is a fraction of all the odds). The
/// mapped rows are a plan, not a copy: each use filters and maps again,
/// which costs less than holding them beside [`SportOdds::priced`].
struct SportOdds {
    mapped: LazyFrame,
}

impl SportOdds {
    fn odds(&self) -> LazyFrame {
        self.mapped.clone()
    }

    /// [`prices::priced`], materialised (every odds mart starts from it).
    fn priced(&self) -> PolarsResult<LazyFrame> {
        Ok(prices::priced(self.odds())?.collect()?.lazy())
    }
}

/// The parts one sport at a time made of one table, stacked and sorted by
/// its grain `key` (each part is sorted alone).
fn stack(parts: Vec<DataFrame>, key: &[&str]) -> PolarsResult<DataFrame> {
    let mut parts = parts.into_iter();
    let Some(mut all) = parts.next() else {
        return Err(polars_err!(ComputeError: "no part to stack"));
    };
    let mut stacked = false;
    for part in parts {
        all.vstack_mut(&part)?;
        stacked = true;
    }
    if !stacked || key.is_empty() {
        return Ok(all);
    }
    all.lazy()
        .sort(
            key.iter().map(|k| (*k).into()).collect::<Vec<PlSmallStr>>(),
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()
}

/// Stacks intermediate frames (no order to keep) into one lazy frame.
fn concat_parts(parts: Vec<DataFrame>) -> PolarsResult<LazyFrame> {
    stack(parts, &[]).map(IntoLazy::lazy)
}

/// What one sport's odds give the tables built over all sports at once.
struct SportParts {
    market_efficiency: DataFrame,
    odds_movement: DataFrame,
    closing_line_value: DataFrame,
    comparison_partials: DataFrame,
    game_lines: DataFrame,
    team_consensus: DataFrame,
    bookmakers: DataFrame,
}

/// Every gold table built from `inputs`, in [`t::ALL`]'s order, each row
/// stamped with `run_id`.
pub fn build_all(
    inputs: &SilverInputs,
    rules: &Rules,
    run_id: &str,
) -> PolarsResult<Vec<(&'static TableDef, DataFrame)>> {
    let s = Inputs::of(inputs)?;
    let games = s.games.clone();
    let parts = s.per_sport(inputs, |sport| {
        let bookmakers = dims::bookmaker_partials(sport.odds()).collect()?;
        // Materialised once: every odds mart starts from the same prepared rows.
        let priced = sport.priced()?;
        drop(sport);
        let lines = prices::outcome_lines(priced.clone())?.collect()?.lazy();
        // The fair lines once, for the series and for the bookmakers.
        let clv = movement::clv_rows(lines.clone(), rules)?.collect()?.lazy();
        Ok(SportParts {
            market_efficiency: markets::market_efficiency_of(priced.clone(), run_id)?,
            odds_movement: movement::odds_movement_of(priced.clone(), lines.clone(), run_id)?,
            closing_line_value: movement::closing_line_value_from(clv.clone(), run_id)?,
            comparison_partials: markets::comparison_partials(priced.clone(), clv, games.clone())?
                .collect()?,
            game_lines: prices::game_closing_lines(lines).collect()?,
            team_consensus: news::team_consensus(priced, games.clone()).collect()?,
            bookmakers,
        })
    })?;
    // Each table's parts, one per sport or part of a sport (clones share the columns).
    let of = |f: fn(&SportParts) -> &DataFrame| parts.iter().map(|p| f(p).clone()).collect();
    let market_efficiency = stack(of(|p| &p.market_efficiency), markets::EFFICIENCY_KEY)?;
    let odds_movement = stack(of(|p| &p.odds_movement), &prices::OUTCOME)?;
    let closing_line_value = stack(of(|p| &p.closing_line_value), &prices::OUTCOME)?;
    let bookmaker_comparison =
        markets::bookmaker_comparison_from(concat_parts(of(|p| &p.comparison_partials))?, run_id)?;
    let game_lines = concat_parts(of(|p| &p.game_lines))?;
    let team_consensus = concat_parts(of(|p| &p.team_consensus))?;
    let bookmakers = concat_parts(of(|p| &p.bookmakers))?;

    Ok(vec![
        (&t::MARKET_EFFICIENCY, market_efficiency),
        (&t::ODDS_MOVEMENT, odds_movement),
        (&t::CLOSING_LINE_VALUE, closing_line_value),
        (&t::BOOKMAKER_COMPARISON, bookmaker_comparison),
        (
            &t::TEAM_TRENDS,
            games::team_trends_of(games.clone(), game_lines.clone(), run_id)?,
        ),
        (
            &t::SCORING_PATTERNS,
            scoring_patterns(games.clone(), s.periods.clone(), run_id)?,
        ),
        (
            &t::WEATHER_IMPACT,
            weather::weather_impact_of(games.clone(), game_lines, s.weather.clone(), run_id)?,
        ),
        (
            &t::NEWS_SENTIMENT_DAILY,
            news::news_sentiment_daily_of(s.news.clone(), team_consensus, run_id)?,
        ),
        (&t::DIM_TEAMS, dim_teams(games.clone(), run_id)?),
        (&t::DIM_VENUES, dim_venues(games.clone(), run_id)?),
        (
            &t::DIM_BOOKMAKERS,
            dims::dim_bookmakers_of(bookmakers, run_id)?,
        ),
        (&t::DIM_MARKETS, dim_markets(run_id)?),
        (
            &t::DIM_DATES,
            dim_dates(games, s.odds.clone(), s.weather.clone(), run_id)?,
        ),
    ])
}

/// Gold table `def` built from `inputs` (which need hold only the columns
/// of [`reads`]), each row stamped with `run_id`.
pub fn build_one(
    def: &TableDef,
    inputs: &SilverInputs,
    rules: &Rules,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let s = Inputs::of(inputs)?;
    let games = || s.games.clone();
    let lines = |o: &SportOdds| -> PolarsResult<LazyFrame> {
        Ok(prices::outcome_lines(o.priced()?)?.collect()?.lazy())
    };
    let game_lines = || -> PolarsResult<LazyFrame> {
        concat_parts(s.per_sport(inputs, |o| prices::game_closing_lines(lines(&o)?).collect())?)
    };
    match def.name {
        "market_efficiency" => stack(
            s.per_sport(inputs, |o| {
                markets::market_efficiency_of(o.priced()?, run_id)
            })?,
            markets::EFFICIENCY_KEY,
        ),
        "odds_movement" => stack(
            s.per_sport(inputs, |o| {
                let priced = o.priced()?;
                let lines = prices::outcome_lines(priced.clone())?.collect()?.lazy();
                movement::odds_movement_of(priced, lines, run_id)
            })?,
            &prices::OUTCOME,
        ),
        "closing_line_value" => stack(
            s.per_sport(inputs, |o| {
                movement::closing_line_value_of(lines(&o)?, rules, run_id)
            })?,
            &prices::OUTCOME,
        ),
        "bookmaker_comparison" => markets::bookmaker_comparison_from(
            concat_parts(s.per_sport(inputs, |o| {
                let priced = o.priced()?;
                let clv = movement::clv_rows(prices::outcome_lines(priced.clone())?, rules)?;
                markets::comparison_partials(priced, clv, games())?.collect()
            })?)?,
            run_id,
        ),
        "team_trends" => games::team_trends_of(games(), game_lines()?, run_id),
        "scoring_patterns" => scoring_patterns(games(), s.periods.clone(), run_id),
        "weather_impact" => {
            weather::weather_impact_of(games(), game_lines()?, s.weather.clone(), run_id)
        }
        "news_sentiment_daily" => {
            let consensus = concat_parts(s.per_sport(inputs, |o| {
                news::team_consensus(o.priced()?, games()).collect()
            })?)?;
            news::news_sentiment_daily_of(s.news.clone(), consensus, run_id)
        }
        "dim_teams" => dim_teams(games(), run_id),
        "dim_venues" => dim_venues(games(), run_id),
        "dim_bookmakers" => {
            let partials = concat_parts(
                s.per_sport(inputs, |o| dims::bookmaker_partials(o.odds()).collect())?,
            )?;
            dims::dim_bookmakers_of(partials, run_id)
        }
        "dim_markets" => dim_markets(run_id),
        "dim_dates" => dim_dates(games(), s.odds.clone(), s.weather.clone(), run_id),
        other => Err(polars_err!(ComputeError: "no gold builder for `{other}`")),
    }
}

/// `df`'s columns of `def`, cast to their kinds, as a lazy frame. A frame
/// without any columns is the empty table (every column); otherwise only
/// the columns present are there, so a mart reading a column its task
/// did not scan fails when planned instead of reading nulls.
fn input(df: &DataFrame, def: &TableDef) -> PolarsResult<LazyFrame> {
    if df.width() == 0 {
        return Ok(empty(def).lazy());
    }
    let exprs: Vec<Expr> = def
        .columns
        .iter()
        .filter(|c| df.column(c.name).is_ok())
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
        let none = build_all(&SilverInputs::default(), &Rules::default(), "r").unwrap();
        check_all(&none);
        let schemas_only = SilverInputs {
            games: empty(&silver::GAMES),
            game_periods: empty(&silver::GAME_PERIODS),
            odds: empty(&silver::ODDS),
            weather: empty(&silver::WEATHER),
            news: empty(&silver::NEWS),
            odds_events: None,
            odds_by_sport: None,
        };
        let built = build_all(&schemas_only, &Rules::default(), "r").unwrap();
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
            odds_events: None,
            odds_by_sport: None,
        };
        let built = build_all(&inputs, &Rules::default(), "run-7").unwrap();
        check_all(&built);
        for (def, df) in &built {
            assert!(df.height() > 0, "{} is empty", def.full_name());
            let runs = df.column("run_id").unwrap().str().unwrap();
            assert!(runs.iter().all(|r| r == Some("run-7")));
        }
    }

    /// Two games and their odds, the second game's quoted two days out and
    /// left unmapped by silver, plus an event of a matchup no game has.
    fn history() -> SilverInputs {
        let two_days = -2 * 24 * 60;
        let second = |q: Quote| Quote {
            minute: q.minute + 7 * 24 * 60,
            commence_minute: 100 + 7 * 24 * 60,
            ..q.game(None)
        };
        let mut odds_rows = odds(&[
            Quote::h2h("a", 0, "home", 1.80),
            Quote::h2h("a", 0, "away", 2.10),
            Quote::h2h("b", 0, "home", 1.85),
            Quote::h2h("b", 0, "away", 2.00),
            Quote::h2h("a", 60, "home", 1.70),
            Quote::h2h("a", 60, "away", 2.25),
            Quote::spread("a", 0, "home", -3.5, 1.91),
            Quote::spread("a", 0, "away", 3.5, 1.91),
            Quote::total("a", 0, "over", 44.5, 1.91),
            Quote::total("a", 0, "under", 44.5, 1.91),
        ]);
        // Game 2 (A v C, a week later), quoted from two days before it.
        let mut later = odds(&[
            second(Quote::h2h("a", two_days, "home", 1.60)),
            second(Quote::h2h("a", two_days, "away", 2.50)),
            second(Quote::h2h("a", 0, "home", 1.55)),
            second(Quote::h2h("a", 0, "away", 2.60)),
        ]);
        let name = |n: &str| Series::new(n.into(), vec!["Team C"; later.height()]);
        later.with_column(name("away_team").into_column()).unwrap();
        let events = Series::new("event_id".into(), vec!["ev-2"; later.height()]);
        later.with_column(events.into_column()).unwrap();
        // An event of a matchup without a game (B at home v C).
        let mut stray = odds(&[
            Quote::h2h("a", 0, "home", 1.90).game(None),
            Quote::h2h("a", 0, "away", 1.90).game(None),
        ]);
        stray
            .with_column(Series::new("home_team".into(), ["Team B", "Team B"]).into_column())
            .unwrap();
        stray
            .with_column(Series::new("away_team".into(), ["Team C", "Team C"]).into_column())
            .unwrap();
        stray
            .with_column(Series::new("event_id".into(), ["ev-x", "ev-x"]).into_column())
            .unwrap();
        odds_rows.vstack_mut(&later).unwrap();
        odds_rows.vstack_mut(&stray).unwrap();
        SilverInputs {
            games: games(&[
                game("nfl:1", 8, "A", "B", 27, 20),
                game("nfl:2", 15, "A", "C", 17, 21),
            ]),
            game_periods: periods(&[("nfl:1", 1, 14, 10), ("nfl:1", 2, 13, 10)]),
            odds: odds_rows,
            weather: weather(&[("espn:3738", kickoff(8), 18.0, 6.0, 0.0)]),
            news: news(&[("s1", Some("nfl:A"), 5, 0.4)]),
            odds_events: None,
            odds_by_sport: None,
        }
    }

    /// The distinct values of string column `name`, sorted.
    fn distinct(df: &DataFrame, name: &str) -> Vec<String> {
        let values = df.column(name).unwrap().unique_stable().unwrap();
        let mut values: Vec<String> = values
            .str()
            .unwrap()
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        values.sort();
        values
    }

    fn games_of(df: &DataFrame) -> Vec<String> {
        distinct(df, "game_id")
    }

    #[test]
    fn gold_maps_the_events_silver_could_not_and_only_those_with_a_game() {
        let built = build_all(&history(), &Rules::default(), "r").unwrap();
        let table = |name: &str| &built.iter().find(|(d, _)| d.name == name).unwrap().1;
        // Game 2's snapshots (from two days out) count; the stray event does not.
        assert_eq!(games_of(table("market_efficiency")), ["nfl:1", "nfl:2"]);
        assert_eq!(games_of(table("odds_movement")), ["nfl:1", "nfl:2"]);
        let books = table("dim_bookmakers");
        let a = [("bookmaker", "a")];
        assert_eq!(fixtures::cell_i64(books, &a, "events"), Some(3));
        assert_eq!(fixtures::cell_i64(books, &a, "games"), Some(2));
        // Opened two days before game 2 at 1.60, closed at 1.55.
        let movement = table("odds_movement");
        let k = [("game_id", "nfl:2"), ("market", "h2h"), ("outcome", "home")];
        assert!(close(
            cell_f64(movement, &k, "opening_decimal").unwrap(),
            1.60
        ));
        assert!(close(
            cell_f64(movement, &k, "closing_decimal").unwrap(),
            1.55
        ));
    }

    /// `df` as if it were another sport's: every string naming the NFL
    /// names `sport` instead, and event ids are the other sport's own.
    fn as_sport(df: &DataFrame, sport: &str) -> DataFrame {
        let columns: Vec<Column> = df
            .columns()
            .iter()
            .map(|c| {
                if c.dtype() != &DataType::String {
                    return c.clone();
                }
                let renamed: StringChunked = c
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        v.map(|v| match c.name().as_str() {
                            "event_id" => format!("{sport}-{v}"),
                            _ => v.replace("nfl", sport),
                        })
                    })
                    .collect();
                renamed.with_name(c.name().clone()).into_column()
            })
            .collect();
        DataFrame::new_infer_height(columns).unwrap()
    }

    #[test]
    fn a_history_of_two_sports_builds_what_one_pass_over_both_builds() {
        let nfl = history();
        let stacked = |f: fn(&SilverInputs) -> &DataFrame| {
            let mut df = f(&nfl).clone();
            df.vstack_mut(&as_sport(f(&nfl), "nba")).unwrap();
            df
        };
        let both = SilverInputs {
            games: stacked(|i| &i.games),
            game_periods: stacked(|i| &i.game_periods),
            odds: stacked(|i| &i.odds),
            weather: nfl.weather.clone(),
            news: stacked(|i| &i.news),
            odds_events: None,
            odds_by_sport: None,
        };
        let built = build_all(&both, &Rules::default(), "r").unwrap();
        let table = |name: &str| &built.iter().find(|(d, _)| d.name == name).unwrap().1;
        assert_eq!(
            games_of(table("market_efficiency")),
            ["nba:1", "nba:2", "nfl:1", "nfl:2"]
        );

        // The per-mart functions, over both sports' odds at once.
        let s = Inputs::of(&both).unwrap();
        let map = s.event_map(&both).unwrap();
        let odds = || event_games::with_games(s.odds.clone(), map.clone().lazy());
        let games = || s.games.clone();
        let news = s.news.clone();
        let weather = s.weather.clone();
        let one_pass = [
            ("market_efficiency", market_efficiency(odds(), "r")),
            ("odds_movement", odds_movement(odds(), "r")),
            (
                "closing_line_value",
                closing_line_value(odds(), &Rules::default(), "r"),
            ),
            (
                "bookmaker_comparison",
                bookmaker_comparison(odds(), games(), &Rules::default(), "r"),
            ),
            ("team_trends", team_trends(games(), odds(), "r")),
            (
                "weather_impact",
                weather_impact(games(), odds(), weather, "r"),
            ),
            (
                "news_sentiment_daily",
                news_sentiment_daily(news, odds(), games(), "r"),
            ),
            ("dim_bookmakers", dim_bookmakers(odds(), "r")),
        ];
        for (name, want) in one_pass {
            let want = want.unwrap();
            assert!(want.height() > 0, "{name} is empty");
            let got = table(name);
            assert!(got.equals_missing(&want), "{name}: {got} vs {want}");
        }
    }

    #[test]
    fn a_large_sport_is_split_into_parts_of_whole_games() {
        let map = df!(
            "sport" => ["nba"; 6],
            "event_id" => ["e1", "e2", "e3", "e4", "e5", "e6"],
            "game_id" => [Some("nba:3"), Some("nba:1"), None, Some("nba:2"), Some("nba:1"), Some("nba:4")],
        )
        .unwrap();
        assert_eq!(game_parts(&map, CHUNK_ROWS).unwrap().len(), 1);
        let parts = game_parts(&map, 2 * CHUNK_ROWS + 1).unwrap();
        let got: Vec<Vec<String>> = parts.iter().map(|p| distinct(p, "event_id")).collect();
        // Two games a part in id order; the event of no game in the first.
        assert_eq!(got, [vec!["e2", "e3", "e4", "e5"], vec!["e1", "e6"]]);
    }

    /// `input` keeps only the columns `reads` names (none: the empty
    /// table), as a gold task's scan returns them.
    fn projected(df: &DataFrame, columns: &[&str]) -> DataFrame {
        if columns.is_empty() {
            DataFrame::default()
        } else {
            df.select(columns.iter().copied()).unwrap()
        }
    }

    #[test]
    fn each_table_built_from_the_columns_it_reads_is_the_table_built_from_all() {
        let full = history();
        let all = build_all(&full, &Rules::default(), "r").unwrap();
        for (def, want) in &all {
            let read = |input: &TableDef, df: &DataFrame| projected(df, reads(def, input));
            // As the gold tasks read: a table that maps odds reads each
            // sport's odds when it gets to it, and the events apart.
            let by_sport = maps_events(def);
            let odds = read(&silver::ODDS, &full.odds);
            let inputs = SilverInputs {
                games: read(&silver::GAMES, &full.games),
                game_periods: read(&silver::GAME_PERIODS, &full.game_periods),
                odds: if by_sport {
                    DataFrame::default()
                } else {
                    odds.clone()
                },
                weather: read(&silver::WEATHER, &full.weather),
                news: read(&silver::NEWS, &full.news),
                odds_events: by_sport.then(|| {
                    event_games::events(projected(&full.odds, &event_games::EVENT_COLUMNS).lazy())
                        .collect()
                        .unwrap()
                }),
                odds_by_sport: by_sport.then(|| {
                    OddsBySport::new(move |sport| {
                        let of_sport = col("sport").eq(lit(sport.to_owned()));
                        odds.clone().lazy().filter(of_sport).collect()
                    })
                }),
            };
            let got = build_one(def, &inputs, &Rules::default(), "r")
                .unwrap_or_else(|e| panic!("{} from its columns: {e}", def.full_name()));
            assert!(
                got.equals_missing(want),
                "{}: {got} vs {want}",
                def.full_name()
            );
            if def.name != "dim_markets" {
                assert!(want.height() > 0, "{} is empty", def.full_name());
            }
        }
        // Silver's own flags, vig, map and run id are never read.
        let odds = reads_any(&silver::ODDS);
        for unread in [
            "game_id",
            "overround",
            "no_vig_prob",
            "is_opening",
            "is_closing",
            "run_id",
        ] {
            assert!(!odds.contains(&unread), "{unread}");
        }
    }
}
