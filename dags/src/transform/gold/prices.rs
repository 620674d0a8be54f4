//! The odds preparation every odds mart shares: mapped snapshots with their
//! bookmaker market recomputed ([`priced`]), each outcome's opening and
//! closing line ([`outcome_lines`]), and a game's closing consensus spread
//! and total ([`game_closing_lines`]).

use polars::prelude::*;

use super::{cols_of, null_of};

/// One price series: a bookmaker's outcome of a market in a game.
pub(super) const OUTCOME: [&str; 5] = ["sport", "game_id", "bookmaker", "market", "outcome"];

/// One quote of a bookmaker's market: its outcomes at one snapshot.
const MARKET_SNAPSHOT: [&str; 4] = ["game_id", "bookmaker", "market", "snapshot_time"];

/// Timestamps as silver holds them (UTC by convention).
pub(super) fn ts_dtype() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, None)
}

/// A point as an exact join key: points are multiples of 0.5, and float
/// keys with nulls are awkward to join on. Null (h2h) stays null.
pub(super) fn point_key(point: &str) -> Expr {
    (col(point) * lit(100.0))
        .round(0, RoundMode::HalfToEven)
        .cast(DataType::Int64)
}

/// Silver odds mapped to a game, one row per (game, bookmaker, market,
/// outcome, snapshot), sorted by series and time, with:
/// `pre_game` (snapshot at or before commence time), `vig` (Σ implied − 1
/// of the bookmaker's market at the snapshot, a fraction), `fair_prob`
/// (implied / Σ implied) — both null when the snapshot has fewer than two
/// outcomes — and `point_key`.
pub(super) fn priced(odds: LazyFrame) -> PolarsResult<LazyFrame> {
    let series_time: Vec<&str> = OUTCOME.iter().copied().chain(["snapshot_time"]).collect();
    let snapshot = cols_of(&MARKET_SNAPSHOT);
    let complete = col("book_outcomes").gt_eq(lit(2));
    Ok(odds
        .filter(col("game_id").is_not_null())
        .sort(
            series_time
                .iter()
                .copied()
                .chain(["event_id"])
                .collect::<Vec<_>>(),
            SortMultipleOptions::default(),
        )
        // Two events mapped to one game would otherwise double its outcomes.
        .unique_stable(Some(cols(series_time)), UniqueKeepStrategy::First)
        .with_columns([
            col("snapshot_time")
                .lt_eq(col("commence_time"))
                .alias("pre_game"),
            col("implied_prob")
                .sum()
                .over(snapshot.clone())?
                .alias("book_sum"),
            col("implied_prob")
                .count()
                .over(snapshot)?
                .alias("book_outcomes"),
            point_key("point").alias("point_key"),
        ])
        .with_columns([
            when(complete.clone())
                .then(col("book_sum") - lit(1.0))
                .otherwise(null_of(DataType::Float64))
                .alias("vig"),
            when(complete)
                .then(col("implied_prob") / col("book_sum"))
                .otherwise(null_of(DataType::Float64))
                .alias("fair_prob"),
        ]))
}

/// `c` at the rows where `flag` holds (one row per series: the opening or
/// the closing snapshot).
fn at(flag: &str, c: &str) -> Expr {
    col(c).filter(col(flag)).first()
}

/// One row per [`OUTCOME`] series of [`priced`] rows: snapshot counts and
/// the opening (first snapshot) and closing (last snapshot at or before
/// commence time; null when there is none) time, prices, point, implied
/// and no-vig probability. Closing is an explicit filter on the whole
/// series, never "the last row so far" (the original's `last_value` bug).
pub(super) fn outcome_lines(priced: LazyFrame) -> PolarsResult<LazyFrame> {
    let key = cols_of(&OUTCOME);
    let pre_game_time = when(col("pre_game"))
        .then(col("snapshot_time"))
        .otherwise(null_of(ts_dtype()));
    let mut aggs = vec![
        len().alias("snapshots"),
        col("pre_game").sum().alias("pre_game_snapshots"),
        col("commence_time").first().alias("commence_time"),
    ];
    for (flag, prefix) in [("is_open", "opening"), ("is_close", "closing")] {
        for (c, suffix) in [
            ("snapshot_time", "time"),
            ("price_decimal", "decimal"),
            ("price_american", "american"),
            ("point", "point"),
            ("point_key", "point_key"),
            ("implied_prob", "prob"),
            ("fair_prob", "fair_prob"),
        ] {
            aggs.push(at(flag, c).alias(format!("{prefix}_{suffix}")));
        }
    }
    Ok(priced
        .with_columns([
            col("snapshot_time")
                .eq(col("snapshot_time").min().over(key.clone())?)
                .alias("is_open"),
            col("snapshot_time")
                .eq(pre_game_time.max().over(key.clone())?)
                .fill_null(lit(false))
                .alias("is_close"),
        ])
        .group_by(key)
        .agg(aggs))
}

/// One row per game with closing lines: the median across bookmakers of
/// their closing home spread (`close_home_spread`) and closing total
/// (`close_total`, the over's point).
pub(super) fn game_closing_lines(lines: LazyFrame) -> LazyFrame {
    let spread = col("market")
        .eq(lit("spreads"))
        .and(col("outcome").eq(lit("home")));
    let total = col("market")
        .eq(lit("totals"))
        .and(col("outcome").eq(lit("over")));
    lines
        .filter(col("closing_point").is_not_null())
        .group_by([col("game_id")])
        .agg([
            col("closing_point")
                .filter(spread)
                .median()
                .alias("close_home_spread"),
            col("closing_point")
                .filter(total)
                .median()
                .alias("close_total"),
        ])
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{odds, Quote};
    use super::*;

    #[test]
    fn vig_and_fair_probability_per_market_snapshot() {
        // 1.91 / 1.91: Σ p = 2/1.91 = 1.047120…, vig 4.712 %, fair 0.5 each.
        let df = priced(
            odds(&[
                Quote::h2h("bk", 0, "home", 1.91),
                Quote::h2h("bk", 0, "away", 1.91),
                Quote::h2h("bk", 10, "home", 2.5),
            ])
            .lazy(),
        )
        .unwrap()
        .collect()
        .unwrap();
        let vig = df.column("vig").unwrap().f64().unwrap();
        assert!((vig.get(0).unwrap() - (2.0 / 1.91 - 1.0)).abs() < 1e-12);
        assert!(
            (df.column("fair_prob")
                .unwrap()
                .f64()
                .unwrap()
                .get(1)
                .unwrap()
                - 0.5)
                .abs()
                < 1e-12
        );
        // A snapshot with one side only has no vig.
        assert_eq!(vig.get(2), None);
    }
}
