//! Line marts per outcome: `odds_movement` (opening → closing, volatility,
//! biggest move) and `closing_line_value` (each opening price against the
//! closing no-vig consensus at the same point).

use polars::prelude::*;

use pricing::Rules;

use super::fair::{self, At};
use super::prices::{self, OUTCOME};
use super::{cols_of, finish, left_join_nulls, null_of};
use crate::transform::gold_tables as t;

/// gold.odds_movement from silver odds.
pub fn odds_movement(odds: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let priced = prices::priced(odds)?;
    let lines = prices::outcome_lines(priced.clone())?;
    odds_movement_of(priced, lines, run_id)
}

/// Per series over its pre-game snapshots: volatility (sample stdev of
/// implied probability, null under two snapshots) and the biggest move
/// (largest |Δ implied probability| from the previous snapshot, earliest on
/// a tie; null when the price never moved).
fn pre_game_moves(priced: LazyFrame) -> PolarsResult<LazyFrame> {
    let prev = prices::previous_in_series("implied_prob");
    let biggest_first = SortMultipleOptions::default()
        .with_order_descending_multi([true, false])
        .with_nulls_last(true);
    let biggest = |c: &str| {
        col(c)
            .sort_by(
                [col("abs_move"), col("snapshot_time")],
                biggest_first.clone(),
            )
            .first()
    };
    let moved = col("max_abs_move").gt(lit(0.0));
    Ok(priced
        .filter(col("pre_game"))
        .with_column((col("implied_prob") - prev).alias("prob_move"))
        .with_column(col("prob_move").abs().alias("abs_move"))
        .group_by([col(prices::SERIES)])
        .agg([
            col("implied_prob").count().alias("n"),
            col("implied_prob").std(1).alias("volatility"),
            col("abs_move").max().alias("max_abs_move"),
            biggest("snapshot_time").alias("biggest_move_time"),
            biggest("prob_move").alias("biggest_move_prob"),
        ])
        .with_columns([
            when(col("n").gt_eq(lit(2)))
                .then(col("volatility"))
                .otherwise(null_of(DataType::Float64))
                .alias("volatility"),
            when(moved.clone())
                .then(col("biggest_move_time"))
                .otherwise(null_of(prices::ts_dtype()))
                .alias("biggest_move_time"),
            when(moved)
                .then(col("biggest_move_prob"))
                .otherwise(null_of(DataType::Float64))
                .alias("biggest_move_prob"),
        ]))
}

pub(super) fn odds_movement_of(
    priced: LazyFrame,
    lines: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let moves = pre_game_moves(priced)?;
    let diff = |c: &str| col(format!("closing_{c}")) - col(format!("opening_{c}"));
    let lf = left_join_nulls(lines, moves, &[prices::SERIES]).with_columns([
        diff("decimal").alias("movement_decimal"),
        diff("american").alias("movement_american"),
        diff("point").alias("movement_point"),
        diff("prob").alias("movement_prob"),
    ]);
    finish(lf, &t::ODDS_MOVEMENT, &OUTCOME, run_id)
}

/// gold.closing_line_value from silver odds, judged by `rules`.
pub fn closing_line_value(odds: LazyFrame, rules: &Rules, run_id: &str) -> PolarsResult<DataFrame> {
    let lines = prices::outcome_lines(prices::priced(odds)?)?;
    closing_line_value_of(lines, rules, run_id)
}

pub(super) fn closing_line_value_of(
    lines: LazyFrame,
    rules: &Rules,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    closing_line_value_from(clv_rows(lines, rules)?, run_id)
}

/// gold.closing_line_value from [`clv_rows`] already made.
pub(super) fn closing_line_value_from(clv: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    finish(clv, &t::CLOSING_LINE_VALUE, &OUTCOME, run_id)
}

/// Each series' opening price beside the [fair lines](fair::fair_lines) at
/// its point: the fair close (every bookmaker's last pre-game market, with
/// `rules`' de-vig method and anchor) and the fair open (every bookmaker's
/// first market). CLV = opening decimal × fair closing probability − 1 and
/// the opening's expected value = opening decimal × fair opening
/// probability − 1; both null without a line at that point or when the
/// "opening" came after commence time (a price first seen in play has no
/// close to beat).
pub(super) fn clv_rows(lines: LazyFrame, rules: &Rules) -> PolarsResult<LazyFrame> {
    let at_point = ["sport", "game_id", "market", "outcome", "point_key"];
    let keyed =
        |more: Vec<Expr>| -> Vec<Expr> { cols_of(&at_point).into_iter().chain(more).collect() };
    let close = fair::fair_lines(lines.clone(), At::Closing, rules)?.select(keyed(vec![
        col("fair_prob").alias("close_fair_prob"),
        col("fair_books").alias("consensus_bookmakers"),
        col("fair_basis").alias("close_fair_basis"),
    ]));
    let open = fair::fair_lines(lines.clone(), At::Opening, rules)?
        .select(keyed(vec![col("fair_prob").alias("open_fair_prob")]));
    let opening = lines.with_column(col("opening_point_key").alias("point_key"));
    let before_start = col("opening_time").lt_eq(col("commence_time"));
    let priced_at = |fair: &str| {
        when(before_start.clone())
            .then(col("opening_decimal") * col(fair) - lit(1.0))
            .otherwise(null_of(DataType::Float64))
    };
    Ok(
        left_join_nulls(left_join_nulls(opening, close, &at_point), open, &at_point).with_columns(
            [
                col("consensus_bookmakers").fill_null(lit(0)),
                (lit(1.0) / col("close_fair_prob")).alias("close_fair_decimal"),
                priced_at("close_fair_prob").alias("clv"),
                priced_at("open_fair_prob").alias("opening_ev"),
            ],
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn closing_is_the_last_pre_game_snapshot_not_the_last_one() {
        // Commence at minute 100; the 130 snapshot is in play.
        let quotes = [
            Quote::h2h("bk", 0, "home", 2.00),
            Quote::h2h("bk", 50, "home", 1.80),
            Quote::h2h("bk", 100, "home", 1.70),
            Quote::h2h("bk", 130, "home", 1.20),
        ];
        let df = odds_movement(odds(&quotes).lazy(), "r").unwrap();
        assert_schema(&df, &t::ODDS_MOVEMENT);
        let k = [("outcome", "home")];
        assert!(close(cell_f64(&df, &k, "opening_decimal").unwrap(), 2.00));
        assert!(close(cell_f64(&df, &k, "opening_american").unwrap(), 100.0));
        assert!(close(cell_f64(&df, &k, "closing_decimal").unwrap(), 1.70));
        // 1.70 → −100/0.7 = −142.857…; 2.00 → +100: movement −242.857….
        assert!(close(
            cell_f64(&df, &k, "closing_american").unwrap(),
            -100.0 / 0.7
        ));
        assert!(close(cell_f64(&df, &k, "movement_decimal").unwrap(), -0.30));
        assert!(close(
            cell_f64(&df, &k, "movement_american").unwrap(),
            -100.0 / 0.7 - 100.0
        ));
        assert!(close(
            cell_f64(&df, &k, "movement_prob").unwrap(),
            1.0 / 1.7 - 0.5
        ));
        assert_eq!(cell_i64(&df, &k, "snapshots"), Some(4));
        assert_eq!(cell_i64(&df, &k, "pre_game_snapshots"), Some(3));
        let closing = row(&df, &k)
            .column("closing_time")
            .unwrap()
            .datetime()
            .unwrap()
            .phys
            .get(0);
        assert_eq!(closing, Some(at(100).timestamp_micros()));
    }

    #[test]
    fn movement_in_point_volatility_and_biggest_move() {
        // Spread home: −3 @1.91 → −3.5 @1.95 → −3.5 @1.80.
        // Implied: 0.5235602, 0.5128205, 0.5555556; moves −0.0107397, +0.0427350.
        let quotes = [
            Quote::spread("bk", 0, "home", -3.0, 1.91),
            Quote::spread("bk", 30, "home", -3.5, 1.95),
            Quote::spread("bk", 60, "home", -3.5, 1.80),
        ];
        let df = odds_movement(odds(&quotes).lazy(), "r").unwrap();
        let k = [("market", "spreads")];
        assert!(close(cell_f64(&df, &k, "movement_point").unwrap(), -0.5));
        assert!(close(cell_f64(&df, &k, "opening_point").unwrap(), -3.0));
        assert!(close(cell_f64(&df, &k, "closing_point").unwrap(), -3.5));
        let p = [1.0 / 1.91, 1.0 / 1.95, 1.0 / 1.80];
        let mean = p.iter().sum::<f64>() / 3.0;
        let sd = (p.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!(close(cell_f64(&df, &k, "volatility").unwrap(), sd));
        assert!(close(
            cell_f64(&df, &k, "biggest_move_prob").unwrap(),
            p[2] - p[1]
        ));
        let t = row(&df, &k)
            .column("biggest_move_time")
            .unwrap()
            .datetime()
            .unwrap()
            .phys
            .get(0);
        assert_eq!(t, Some(at(60).timestamp_micros()));
    }

    #[test]
    fn a_single_snapshot_has_no_volatility_or_move() {
        let df = odds_movement(odds(&[Quote::h2h("bk", 0, "home", 1.5)]).lazy(), "r").unwrap();
        let k = [("outcome", "home")];
        assert_eq!(cell_f64(&df, &k, "volatility"), None);
        assert_eq!(cell_f64(&df, &k, "biggest_move_prob"), None);
        assert!(close(cell_f64(&df, &k, "movement_decimal").unwrap(), 0.0));
    }

    #[test]
    fn clv_is_positive_when_the_opening_beat_the_fair_close() {
        // Two books close at home 1.80 / away 2.10 (fair home p = 0.5384615).
        // a opened home at 2.00: 2.00 · 0.5384615 − 1 = +0.0769 (beat the close);
        // a opened away at 1.80: fair away p = 0.4615385 → 1.80 · 0.4615 − 1 = −0.1692.
        let quotes = [
            Quote::h2h("a", 0, "home", 2.00),
            Quote::h2h("a", 0, "away", 1.80),
            Quote::h2h("a", 90, "home", 1.80),
            Quote::h2h("a", 90, "away", 2.10),
            Quote::h2h("b", 10, "home", 1.80),
            Quote::h2h("b", 10, "away", 2.10),
            // In play: not b's close.
            Quote::h2h("b", 150, "home", 3.00),
            Quote::h2h("b", 150, "away", 1.40),
        ];
        let df = closing_line_value(odds(&quotes).lazy(), &Rules::default(), "r").unwrap();
        assert_schema(&df, &t::CLOSING_LINE_VALUE);
        let fair_home = (1.0 / 1.8) / (1.0 / 1.8 + 1.0 / 2.1);
        let home = [("bookmaker", "a"), ("outcome", "home")];
        let away = [("bookmaker", "a"), ("outcome", "away")];
        assert!(close(
            cell_f64(&df, &home, "close_fair_prob").unwrap(),
            fair_home
        ));
        assert!(close(
            cell_f64(&df, &home, "close_fair_decimal").unwrap(),
            1.0 / fair_home
        ));
        assert_eq!(cell_i64(&df, &home, "consensus_bookmakers"), Some(2));
        let clv_home = cell_f64(&df, &home, "clv").unwrap();
        assert!(close(clv_home, 2.0 * fair_home - 1.0));
        assert!(clv_home > 0.0);
        let clv_away = cell_f64(&df, &away, "clv").unwrap();
        assert!(close(clv_away, 1.8 * (1.0 - fair_home) - 1.0));
        assert!(clv_away < 0.0);
        assert_eq!(
            cell_str(&df, &home, "close_fair_basis").as_deref(),
            Some("median of 2 bookmakers")
        );
        // The fair open: the median of a's opening market (2.00 / 1.80) and
        // b's (1.80 / 2.10); a's opening home price against it.
        let a_open = (1.0 / 2.0) / (1.0 / 2.0 + 1.0 / 1.8);
        let open_home = (a_open + fair_home) / 2.0;
        assert!(close(
            cell_f64(&df, &home, "open_fair_prob").unwrap(),
            open_home
        ));
        assert!(close(
            cell_f64(&df, &home, "opening_ev").unwrap(),
            2.0 * open_home - 1.0
        ));
    }

    #[test]
    fn clv_needs_a_close_at_the_same_point() {
        // Opened −3, everyone closed −3.5: no comparable close.
        let quotes = [
            Quote::spread("a", 0, "home", -3.0, 1.91),
            Quote::spread("a", 0, "away", 3.0, 1.91),
            Quote::spread("a", 90, "home", -3.5, 1.91),
            Quote::spread("a", 90, "away", 3.5, 1.91),
        ];
        let df = closing_line_value(odds(&quotes).lazy(), &Rules::default(), "r").unwrap();
        let k = [("outcome", "home")];
        assert_eq!(cell_f64(&df, &k, "clv"), None);
        assert_eq!(cell_i64(&df, &k, "consensus_bookmakers"), Some(0));
    }
}
