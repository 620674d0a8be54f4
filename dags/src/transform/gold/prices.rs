//! The odds preparation every odds mart shares: mapped snapshots with their
//! bookmaker market recomputed ([`priced`]), each outcome's opening and
//! closing line ([`outcome_lines`]), and a game's closing consensus spread
//! and total ([`game_closing_lines`]).

use polars::prelude::*;

use super::{cols_of, null_of};

/// One price series: a bookmaker's outcome of a market in a game.
pub(super) const OUTCOME: [&str; 5] = ["sport", "game_id", "bookmaker", "market", "outcome"];

/// A bookmaker's market in one game.
pub(super) const MARKET: [&str; 4] = ["sport", "game_id", "bookmaker", "market"];

/// [`priced`]'s number of an [`OUTCOME`] series.
pub(super) const SERIES: &str = "series";

/// [`priced`]'s number of a [`MARKET`].
pub(super) const BOOK_MARKET: &str = "book_market";

/// Whether a row of a sorted frame starts a run of equal `key` values: some
/// key column differs from the row before (the first row always does).
fn run_number_starts(key: &[&str]) -> Expr {
    key.iter()
        .map(|c| col(*c).neq_missing(col(*c).shift(lit(1))))
        .reduce(Expr::or)
        .expect("a key has columns")
}

/// Numbers the runs of equal `key` values of a sorted frame from 1.
fn run_number(key: &[&str]) -> Expr {
    run_number_starts(key).cast(DataType::UInt32).cum_sum(false)
}

/// `c` at the series' previous row of a frame of [`priced`] rows (any
/// filter of them: filters keep the order), null at a series' first row.
pub(super) fn previous_in_series(c: &str) -> Expr {
    when(col(SERIES).eq(col(SERIES).shift(lit(1))))
        .then(col(c).shift(lit(1)))
        .otherwise(lit(NULL))
}

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
///
/// Two integer keys number the runs of the sort: [`SERIES`] (one per
/// [`OUTCOME`] series) and [`BOOK_MARKET`] (one per bookmaker market of a
/// game). Windows and groups over them hash one integer instead of five
/// strings, and because the rows are sorted a series' previous snapshot
/// is the row before ([`previous_in_series`]).
pub(super) fn priced(odds: LazyFrame) -> PolarsResult<LazyFrame> {
    let series_time: Vec<&str> = OUTCOME.iter().copied().chain(["snapshot_time"]).collect();
    let snapshot = [col(BOOK_MARKET), col("snapshot_time")];
    let complete = col("book_outcomes").gt_eq(lit(2));
    // Only what the marts read goes through the sort (the event only to
    // break ties between two events of one game).
    let read: Vec<&str> = series_time
        .iter()
        .copied()
        .chain([
            "event_id",
            "commence_time",
            "price_american",
            "price_decimal",
            "point",
            "implied_prob",
        ])
        .collect();
    Ok(odds
        .filter(col("game_id").is_not_null())
        .select(cols_of(&read))
        .sort(
            series_time
                .iter()
                .copied()
                .chain(["event_id"])
                .collect::<Vec<_>>(),
            SortMultipleOptions::default(),
        )
        // Two events mapped to one game would otherwise double its outcomes:
        // of rows equal but for the event, the sort put the one to keep first.
        .filter(run_number_starts(&series_time))
        .drop(by_name(["event_id"], true, false))
        .with_columns([
            run_number(&OUTCOME).alias(SERIES),
            run_number(&MARKET).alias(BOOK_MARKET),
        ])
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
        ])
        .drop(by_name(["book_sum", "book_outcomes"], true, false)))
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
/// series, never "the last row so far", so a price quoted in play is never
/// the close (docs/formulas.md#opening-and-closing-lines).
pub(super) fn outcome_lines(priced: LazyFrame) -> PolarsResult<LazyFrame> {
    let key = [col(SERIES)];
    let pre_game_time = when(col("pre_game"))
        .then(col("snapshot_time"))
        .otherwise(null_of(ts_dtype()));
    let mut aggs: Vec<Expr> = OUTCOME.iter().map(|c| col(*c).first()).collect();
    aggs.extend([
        len().alias("snapshots"),
        col("pre_game").sum().alias("pre_game_snapshots"),
        col("commence_time").first().alias("commence_time"),
    ]);
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
