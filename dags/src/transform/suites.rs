//! The quality rules of each silver table, as declarative suites the gate
//! tasks evaluate (docs/quality.md#silver-games, #silver-odds,
//! #silver-weather and #silver-news; levels: docs/quality.md#severity).
//!
//! Error-level rules are the ones a dashboard would be wrong to show data
//! past; warn-level ones are recorded for a person to look at (unmapped
//! odds events, vig outside the usual band, day-over-day volume swings that
//! schedules explain).

use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::{event_games, silver_tables};
use lakehouse::quality::{Check, Suite};

/// Volume between consecutive sports days swings with the schedule (a
/// Sunday slate vs a Tuesday), so only an order-of-magnitude change warns.
const ROW_COUNT_BAND: (f64, f64) = (0.1, 10.0);

fn schema(def: &lakehouse::iceberg::TableDef) -> Check {
    Check::schema(def.columns.iter().map(|c| (c.name, c.kind.polars())))
}

pub fn games() -> Suite {
    Suite::new(silver_tables::GAMES.full_name())
        .key(["game_id"])
        .error(schema(&silver_tables::GAMES))
        .error(Check::not_null([
            "game_id",
            "sport",
            "start_time",
            "home_team_id",
            "away_team_id",
            "home_score",
            "away_score",
        ]))
        .error(Check::unique(["game_id"]))
        .error(Check::at_least("home_score", 0.0))
        .error(Check::at_least("away_score", 0.0))
        .error(Check::expression(
            "period scores sum to the final score",
            col("home_period_sum")
                .eq(col("home_score"))
                .and(col("away_period_sum").eq(col("away_score"))),
        ))
        .error(Check::expression(
            "home and away are different teams",
            col("home_team_id").neq(col("away_team_id")),
        ))
        .warn(Check::row_count_vs_previous(
            ROW_COUNT_BAND.0,
            ROW_COUNT_BAND.1,
        ))
}

/// silver.games with each side's summed period points beside it, for the
/// "period scores sum to the final score" rule.
pub fn games_with_period_sums(games: &DataFrame, periods: &DataFrame) -> PolarsResult<DataFrame> {
    let sums = periods.clone().lazy().group_by([col("game_id")]).agg([
        col("home_points").sum().alias("home_period_sum"),
        col("away_points").sum().alias("away_period_sum"),
    ]);
    games
        .clone()
        .lazy()
        .join(
            sums,
            [col("game_id")],
            [col("game_id")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
}

pub fn odds() -> Suite {
    Suite::new(silver_tables::ODDS.full_name())
        .key([
            "event_id",
            "bookmaker",
            "market",
            "outcome",
            "snapshot_time",
        ])
        .error(schema(&silver_tables::ODDS))
        .error(Check::not_null([
            "event_id",
            "bookmaker",
            "market",
            "outcome",
            "snapshot_time",
            "price_decimal",
        ]))
        .error(Check::unique([
            "event_id",
            "bookmaker",
            "market",
            "outcome",
            "snapshot_time",
        ]))
        .error(Check::accepted_values(
            "market",
            ["h2h", "spreads", "totals"],
        ))
        .error(Check::accepted_values(
            "outcome",
            ["home", "away", "draw", "over", "under"],
        ))
        .error(Check::between_exclusive(
            "price_american",
            -100_000.0,
            100_000.0,
        ))
        .error(Check::expression(
            "price_american is not zero",
            col("price_american").neq(lit(0.0)),
        ))
        .error(Check::range("price_decimal", Some(1.0), None, false, false))
        .error(Check::between_exclusive("implied_prob", 0.0, 1.0))
        .error(Check::expression(
            "h2h has both sides",
            col("market")
                .neq(lit("h2h"))
                .or(col("outcomes_in_market").gt_eq(lit(2))),
        ))
        .error(Check::expression(
            "no snapshot after commence_time counted as pre-game",
            col("is_pre_game")
                .not()
                .or(col("snapshot_time").lt_eq(col("commence_time"))),
        ))
        .warn(Check::between_exclusive("overround", -0.05, 0.30))
        .warn(Check::expression(
            "an event whose games are modelled maps to a game",
            col("game_id").is_not_null().or(col("awaiting_games")),
        ))
        .warn(Check::row_count_vs_previous(
            ROW_COUNT_BAND.0,
            ROW_COUNT_BAND.1,
        ))
}

/// silver.odds with what its checks need beside each row: the number of
/// outcomes of the bookmaker's market at the snapshot ("h2h has both
/// sides"), and `awaiting_games`, true for an unmapped row of an event
/// commencing at or after `until` — the end of the day modelled — whose
/// game later nights bring (gold maps it then), so that only events that
/// should have matched a game warn.
pub fn odds_for_checks(odds: &DataFrame, until: DateTime<Utc>) -> PolarsResult<DataFrame> {
    let awaiting = event_games::applied(odds.clone().lazy()).select([
        col("sport"),
        col("event_id"),
        event_games::awaiting_games(until).alias("awaiting_games"),
    ]);
    odds.clone()
        .lazy()
        .with_column(
            col("outcome")
                .count()
                .over([
                    col("event_id"),
                    col("bookmaker"),
                    col("market"),
                    col("snapshot_time"),
                ])?
                .alias("outcomes_in_market"),
        )
        .join(
            awaiting,
            [col("sport"), col("event_id")],
            [col("sport"), col("event_id")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
}

pub fn weather() -> Suite {
    Suite::new(silver_tables::WEATHER.full_name())
        .key(["sport", "venue_id", "observed_at"])
        .error(schema(&silver_tables::WEATHER))
        .error(Check::not_null(["venue_id", "observed_at"]))
        .error(Check::unique(["sport", "venue_id", "observed_at"]))
        .error(Check::between("temperature_c", -60.0, 60.0))
        .error(Check::between("wind_speed_ms", 0.0, 100.0))
        .error(Check::at_least("precipitation_mm", 0.0))
        .error(Check::between("humidity_pct", 0.0, 100.0))
        .warn(Check::row_count_vs_previous(
            ROW_COUNT_BAND.0,
            ROW_COUNT_BAND.1,
        ))
}

pub fn news() -> Suite {
    Suite::new(silver_tables::NEWS.full_name())
        .key(["sport", "item_id", "team_key"])
        .error(schema(&silver_tables::NEWS))
        .error(Check::not_null([
            "sport",
            "item_id",
            "published_at",
            "title",
            "url",
            "sentiment",
        ]))
        .error(Check::unique(["sport", "item_id", "team_key"]))
        .error(Check::between_exclusive("sentiment", -1.0, 1.0))
        .error(Check::expression(
            "a matched team belongs to the sport",
            col("team_id")
                .is_null()
                .or(col("team_id").str().starts_with(concat_str(
                    [col("sport"), lit(":")],
                    "",
                    false,
                ))),
        ))
        .warn(Check::not_null(["team_id"]))
        .warn(Check::row_count_vs_previous(
            ROW_COUNT_BAND.0,
            ROW_COUNT_BAND.1,
        ))
}

/// silver.news with `team_key` (the team id, or `-` for an article naming
/// none): uniqueness checks skip null keys, and an unmatched article must
/// still appear once.
pub fn news_with_team_key(news: &DataFrame) -> PolarsResult<DataFrame> {
    news.clone()
        .lazy()
        .with_column(col("team_id").fill_null(lit("-")).alias("team_key"))
        .collect()
}
