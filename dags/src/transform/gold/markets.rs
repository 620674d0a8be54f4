//! Market-level marts: `market_efficiency` (each bookmaker's market per
//! game) and `bookmaker_comparison` (each bookmaker per sport and season).
//!
//! Both use pre-game snapshots only: in-play prices carry a different
//! margin and are not what either mart compares.

use polars::prelude::*;
use pricing::Rules;

use super::prices;
use super::{cols_of, finish, left_join_nulls, null_of};
use crate::transform::gold_tables as t;

/// The efficiency bands (docs/formulas.md#market-efficiency) on a vig in
/// percent.
fn rating(avg_vig_pct: Expr) -> Expr {
    when(avg_vig_pct.clone().is_null())
        .then(null_of(DataType::String))
        .when(avg_vig_pct.clone().lt_eq(lit(5.0)))
        .then(lit("highly_efficient"))
        .when(avg_vig_pct.clone().lt_eq(lit(10.0)))
        .then(lit("efficient"))
        .when(avg_vig_pct.lt_eq(lit(15.0)))
        .then(lit("moderately_efficient"))
        .otherwise(lit("inefficient"))
}

/// gold.market_efficiency from silver odds.
pub fn market_efficiency(odds: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    market_efficiency_of(prices::priced(odds)?, run_id)
}

/// One row per pre-game market snapshot: vig, whether any price or point
/// changed since the bookmaker's previous snapshot, and the favourite (the
/// outcome with the highest probability; null on a tie, so a pick'em
/// between two favourites is not counted as two flips).
fn market_snapshots(priced: LazyFrame) -> PolarsResult<LazyFrame> {
    let in_series = prices::previous_in_series;
    let changed = in_series("price_decimal").is_not_null().and(
        col("price_decimal")
            .neq(in_series("price_decimal"))
            .or(col("point").neq_missing(in_series("point"))),
    );
    let top = col("implied_prob").eq(col("implied_prob").max());
    Ok(priced
        .filter(col("pre_game"))
        .with_column(changed.alias("changed"))
        .group_by([col(prices::BOOK_MARKET), col("snapshot_time")])
        .agg([
            col("sport").first(),
            col("game_id").first(),
            col("bookmaker").first(),
            col("market").first(),
            col("vig").first().alias("vig"),
            col("changed").any(true).alias("changed"),
            col("outcome").filter(top.clone()).first().alias("top"),
            col("outcome").filter(top).len().alias("tops"),
        ])
        .with_column(
            when(col("tops").eq(lit(1)))
                .then(col("top"))
                .otherwise(null_of(DataType::String))
                .alias("favourite"),
        ))
}

/// market_efficiency's grain.
pub(super) const EFFICIENCY_KEY: &[&str] = &["sport", "game_id", "bookmaker", "market"];

/// bookmaker_comparison's grain.
pub(super) const COMPARISON_KEY: &[&str] = &["bookmaker", "sport", "season"];

pub(super) fn market_efficiency_of(priced: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let key = EFFICIENCY_KEY;
    let by_time = SortMultipleOptions::default();
    let favourites = col("favourite")
        .sort_by([col("snapshot_time")], by_time.clone())
        .drop_nulls();
    let pct = |e: Expr| e * lit(100.0);
    let mut aggs: Vec<Expr> = key.iter().map(|c| col(*c).first()).collect();
    aggs.extend([
        len().alias("snapshots"),
        pct(col("vig").mean()).alias("avg_vig_pct"),
        pct(col("vig").min()).alias("min_vig_pct"),
        pct(col("vig").max()).alias("max_vig_pct"),
        favourites
            .clone()
            .neq(favourites.shift(lit(1)))
            .sum()
            .alias("favourite_flips"),
        col("changed").sum().alias("updates"),
        col("favourite")
            .sort_by([col("snapshot_time")], by_time)
            .last()
            .alias("closing_favourite"),
        col("snapshot_time").min().alias("first_snapshot"),
        col("snapshot_time").max().alias("last_snapshot"),
    ]);
    let lf = market_snapshots(priced)?
        .group_by([col(prices::BOOK_MARKET)])
        .agg(aggs)
        .with_column(rating(col("avg_vig_pct")).alias("efficiency_rating"));
    finish(lf, &t::MARKET_EFFICIENCY, key, run_id)
}

/// gold.bookmaker_comparison from silver odds and games (for the season).
pub fn bookmaker_comparison(
    odds: LazyFrame,
    games: LazyFrame,
    rules: &Rules,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let priced = prices::priced(odds)?;
    let clv = super::movement::clv_rows(prices::outcome_lines(priced.clone())?, rules)?;
    bookmaker_comparison_from(comparison_partials(priced, clv, games)?, run_id)
}

/// The counts and sums bookmaker_comparison divides, per (bookmaker, sport,
/// season), over the games of `priced` and their [`clv_rows`](super::movement::clv_rows):
/// partials of disjoint sets of games stack into the partials of all of them.
pub(super) fn comparison_partials(
    priced: LazyFrame,
    clv: LazyFrame,
    games: LazyFrame,
) -> PolarsResult<LazyFrame> {
    let key = COMPARISON_KEY;
    let seasons = games
        .select([col("game_id"), col("season")])
        .unique_stable(Some(cols(["game_id"])), UniqueKeepStrategy::First);
    let pre_game = left_join_nulls(
        priced.filter(col("pre_game")),
        seasons.clone(),
        &["game_id"],
    );

    // Vig per quote: one row per (game, bookmaker, market, snapshot).
    let quotes = pre_game
        .clone()
        .unique_stable(
            Some(cols([prices::BOOK_MARKET, "snapshot_time"])),
            UniqueKeepStrategy::First,
        )
        .group_by(cols_of(key))
        .agg([
            col("game_id").n_unique().alias("games"),
            len().alias("market_snapshots"),
            col("vig").sum().alias("vig_sum"),
            col("vig").count().alias("vig_n"),
        ]);

    // Against the other bookmakers quoting the same outcome, point and time.
    let offer = cols_of(&["game_id", "market", "outcome", "point_key", "snapshot_time"]);
    let contested = col("books").gt_eq(lit(2));
    let deviation = (col("fair_prob") - col("consensus"))
        .abs()
        .filter(contested.clone());
    let rivals = pre_game
        .with_columns([
            col("price_decimal")
                .count()
                .over(offer.clone())?
                .alias("books"),
            col("price_decimal")
                .max()
                .over(offer.clone())?
                .alias("best"),
            col("fair_prob").median().over(offer)?.alias("consensus"),
        ])
        .group_by(cols_of(key))
        .agg([
            contested.clone().sum().alias("contested_prices"),
            col("price_decimal")
                .eq(col("best"))
                .and(contested)
                .sum()
                .alias("best_prices"),
            deviation.clone().sum().alias("deviation_sum"),
            deviation.count().alias("deviation_n"),
        ]);

    let clv = left_join_nulls(clv, seasons, &["game_id"])
        .group_by(cols_of(key))
        .agg([
            col("clv").count().alias("opening_clv_n"),
            col("clv").sum().alias("clv_sum"),
            col("clv").gt(lit(0.0)).sum().alias("clv_positive"),
            col("opening_ev").count().alias("opening_ev_n"),
            col("opening_ev").sum().alias("ev_sum"),
            col("opening_ev").gt(lit(0.0)).sum().alias("ev_positive"),
        ]);

    Ok(left_join_nulls(
        left_join_nulls(quotes, rivals, key),
        clv,
        key,
    ))
}

/// gold.bookmaker_comparison from [`comparison_partials`].
pub(super) fn bookmaker_comparison_from(
    partials: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let key = COMPARISON_KEY;
    let summed = [
        "games",
        "market_snapshots",
        "vig_sum",
        "vig_n",
        "contested_prices",
        "best_prices",
        "deviation_sum",
        "deviation_n",
        "opening_clv_n",
        "clv_sum",
        "clv_positive",
        "opening_ev_n",
        "ev_sum",
        "ev_positive",
    ];
    let ratio = |num: &str, den: &str| {
        when(col(den).gt(lit(0)))
            .then(col(num).cast(DataType::Float64) / col(den).cast(DataType::Float64))
            .otherwise(null_of(DataType::Float64))
    };
    let lf = partials
        .group_by(cols_of(key))
        .agg(summed.map(|c| col(c).sum()))
        .with_columns([
            (ratio("vig_sum", "vig_n") * lit(100.0)).alias("avg_vig_pct"),
            ratio("best_prices", "contested_prices").alias("best_price_share"),
            ratio("deviation_sum", "deviation_n").alias("mean_abs_deviation"),
            ratio("clv_sum", "opening_clv_n").alias("opening_clv_avg"),
            ratio("clv_positive", "opening_clv_n").alias("opening_clv_positive_share"),
            ratio("ev_sum", "opening_ev_n").alias("opening_ev_avg"),
            ratio("ev_positive", "opening_ev_n").alias("opening_ev_positive_share"),
        ]);
    finish(lf, &t::BOOKMAKER_COMPARISON, key, run_id)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn me(quotes: &[Quote]) -> DataFrame {
        let df = market_efficiency(odds(quotes).lazy(), "r1").unwrap();
        assert_schema(&df, &t::MARKET_EFFICIENCY);
        df
    }

    #[test]
    fn vig_is_averaged_over_snapshots_and_rated_by_the_bands() {
        // Snapshot 0: 1.91/1.91 → Σp = 1.0471204, vig 4.71204 %.
        // Snapshot 10: 1.80/1.95 → Σp = 0.5555556 + 0.5128205 = 1.0683761, vig 6.83761 %.
        // Snapshot 120 is after commence (minute 100): left out.
        let df = me(&[
            Quote::h2h("bk", 0, "home", 1.91),
            Quote::h2h("bk", 0, "away", 1.91),
            Quote::h2h("bk", 10, "home", 1.80),
            Quote::h2h("bk", 10, "away", 1.95),
            Quote::h2h("bk", 120, "home", 1.10),
            Quote::h2h("bk", 120, "away", 1.10),
        ]);
        let k = [("bookmaker", "bk"), ("market", "h2h")];
        let v0 = (2.0 / 1.91 - 1.0) * 100.0;
        let v1 = (1.0 / 1.80 + 1.0 / 1.95 - 1.0) * 100.0;
        assert!(close(
            cell_f64(&df, &k, "avg_vig_pct").unwrap(),
            (v0 + v1) / 2.0
        ));
        assert!(close(cell_f64(&df, &k, "min_vig_pct").unwrap(), v0));
        assert!(close(cell_f64(&df, &k, "max_vig_pct").unwrap(), v1));
        // (4.712 + 6.838) / 2 = 5.775 → above 5, at most 10.
        assert_eq!(
            cell_str(&df, &k, "efficiency_rating").as_deref(),
            Some("efficient")
        );
        assert_eq!(cell_i64(&df, &k, "snapshots"), Some(2));
        assert_eq!(cell_i64(&df, &k, "updates"), Some(1));
        assert_eq!(cell_str(&df, &k, "run_id").as_deref(), Some("r1"));
    }

    #[test]
    fn rating_bands_are_inclusive_at_their_upper_edge() {
        let df = df!("v" => [Some(-1.0), Some(5.0), Some(5.01), Some(10.0), Some(15.0), Some(15.01), None])
            .unwrap()
            .lazy()
            .select([rating(col("v")).alias("r")])
            .collect()
            .unwrap();
        let got: Vec<Option<&str>> = df.column("r").unwrap().str().unwrap().iter().collect();
        assert_eq!(
            got,
            [
                Some("highly_efficient"),
                Some("highly_efficient"),
                Some("efficient"),
                Some("efficient"),
                Some("moderately_efficient"),
                Some("inefficient"),
                None
            ]
        );
    }

    #[test]
    fn favourite_flips_count_changes_of_the_favourite_and_skip_ties() {
        // Favourites by snapshot: home, home, (tie), away, home → flips home→away, away→home = 2.
        let df = me(&[
            Quote::h2h("bk", 0, "home", 1.80),
            Quote::h2h("bk", 0, "away", 2.05),
            Quote::h2h("bk", 10, "home", 1.85),
            Quote::h2h("bk", 10, "away", 2.00),
            Quote::h2h("bk", 20, "home", 1.91),
            Quote::h2h("bk", 20, "away", 1.91),
            Quote::h2h("bk", 30, "home", 2.00),
            Quote::h2h("bk", 30, "away", 1.85),
            Quote::h2h("bk", 40, "home", 1.85),
            Quote::h2h("bk", 40, "away", 2.00),
            // Unchanged prices: a snapshot, not an update.
            Quote::h2h("bk", 50, "home", 1.85),
            Quote::h2h("bk", 50, "away", 2.00),
        ]);
        let k = [("bookmaker", "bk")];
        assert_eq!(cell_i64(&df, &k, "favourite_flips"), Some(2));
        assert_eq!(cell_i64(&df, &k, "snapshots"), Some(6));
        assert_eq!(cell_i64(&df, &k, "updates"), Some(4));
        assert_eq!(
            cell_str(&df, &k, "closing_favourite").as_deref(),
            Some("home")
        );
    }

    #[test]
    fn unmapped_odds_are_left_out() {
        let df = me(&[
            Quote::h2h("bk", 0, "home", 1.91).game(None),
            Quote::h2h("bk", 0, "away", 1.91).game(None),
        ]);
        assert_eq!(df.height(), 0);
    }

    #[test]
    fn bookmakers_compared_on_best_prices_deviation_and_clv() {
        // Two bookmakers, one snapshot at minute 0 (opening) and one at 90 (closing).
        //   a: 0 → home 2.10 / away 1.80; 90 → home 2.00 / away 1.90
        //   b: 0 → home 2.00 / away 1.90; 90 → home 2.00 / away 1.90
        let quotes = [
            Quote::h2h("a", 0, "home", 2.10),
            Quote::h2h("a", 0, "away", 1.80),
            Quote::h2h("b", 0, "home", 2.00),
            Quote::h2h("b", 0, "away", 1.90),
            Quote::h2h("a", 90, "home", 2.00),
            Quote::h2h("a", 90, "away", 1.90),
            Quote::h2h("b", 90, "home", 2.00),
            Quote::h2h("b", 90, "away", 1.90),
        ];
        let g = games(&[game("nfl:1", 8, "1", "2", 24, 17)]);
        let df =
            bookmaker_comparison(odds(&quotes).lazy(), g.lazy(), &Rules::default(), "r").unwrap();
        assert_schema(&df, &t::BOOKMAKER_COMPARISON);
        let a = [("bookmaker", "a")];
        let b = [("bookmaker", "b")];
        // a is best on home@0 (2.10) and ties at 90 (both sides): 3 of 4;
        // b is best on away@0 (1.90) and ties at 90: 3 of 4.
        assert_eq!(cell_i64(&df, &a, "contested_prices"), Some(4));
        assert!(close(cell_f64(&df, &a, "best_price_share").unwrap(), 0.75));
        assert!(close(cell_f64(&df, &b, "best_price_share").unwrap(), 0.75));
        // Fair p at 0: a home = (1/2.1)/(1/2.1 + 1/1.8) = 0.4615385, b home = 0.4871795;
        // the median of two is their mean, so each deviates by half the gap on
        // both sides at 0 and by 0 at 90: MAD = gap/2 · 2/4 = gap/4.
        let pa = (1.0 / 2.1) / (1.0 / 2.1 + 1.0 / 1.8);
        let pb = (1.0 / 2.0) / (1.0 / 2.0 + 1.0 / 1.9);
        let mad = (pb - pa) / 4.0;
        assert!(close(cell_f64(&df, &a, "mean_abs_deviation").unwrap(), mad));
        // CLV of a's opening home 2.10 against the close's fair p (both books
        // close at pb): 2.10 · pb − 1 > 0; of a's away 1.80: 1.80 · (1 − pb) − 1 < 0.
        let clv_home = 2.1 * pb - 1.0;
        let clv_away = 1.8 * (1.0 - pb) - 1.0;
        assert_eq!(cell_i64(&df, &a, "opening_clv_n"), Some(2));
        assert!(close(
            cell_f64(&df, &a, "opening_clv_avg").unwrap(),
            (clv_home + clv_away) / 2.0
        ));
        assert!(close(
            cell_f64(&df, &a, "opening_clv_positive_share").unwrap(),
            0.5
        ));
        // EV of a's openings against the fair open, the median (mean of
        // two) of a's and b's opening fair home p: home 2.10, away 1.80.
        let open_home = (pa + pb) / 2.0;
        let ev_home = 2.1 * open_home - 1.0;
        let ev_away = 1.8 * (1.0 - open_home) - 1.0;
        assert_eq!(cell_i64(&df, &a, "opening_ev_n"), Some(2));
        assert!(close(
            cell_f64(&df, &a, "opening_ev_avg").unwrap(),
            (ev_home + ev_away) / 2.0
        ));
        // 2.10 × 0.474359 = 0.996: neither opening beat the fair open.
        assert!(close(
            cell_f64(&df, &a, "opening_ev_positive_share").unwrap(),
            0.0
        ));
        assert_eq!(cell_i64(&df, &a, "games"), Some(1));
        assert_eq!(cell_i64(&df, &a, "market_snapshots"), Some(2));
    }
}
