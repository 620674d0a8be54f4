//! `news_sentiment_daily`: per team and sports day, how many articles named
//! the team and how they read (docs/formulas.md#news-sentiment), beside how
//! the market moved on the team afterwards
//! (docs/formulas.md#consensus-move-after-news).
//!
//! The move is the change of the team's consensus probability (median
//! across bookmakers of the h2h no-vig probability at one snapshot) in its
//! next game, from the last snapshot at or before the day's first article
//! to the last snapshot in the [`MOVE_HOURS`] after it (pre-game snapshots
//! only). It is null when the team has no priced game after the news, no
//! snapshot before it, or none in the window after it. Articles naming no
//! team are not in this mart; silver.news keeps them.

use polars::prelude::*;

use super::{finish, left_join_nulls, prices};
use crate::transform::gold_tables as t;

/// Hours after the day's first article over which the move is measured.
pub const MOVE_HOURS: i64 = 24;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// gold.news_sentiment_daily from silver news, odds and games.
pub fn news_sentiment_daily(
    news: LazyFrame,
    odds: LazyFrame,
    games: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let consensus = team_consensus(prices::priced(odds)?, games);
    news_sentiment_daily_of(news, consensus, run_id)
}

/// The mart from silver news and [`team_consensus`] (of every sport).
pub(super) fn news_sentiment_daily_of(
    news: LazyFrame,
    consensus: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let count = |e: Expr| e.sum().cast(DataType::Int64);
    let daily = news
        .filter(col("team_id").is_not_null())
        .group_by([col("sport"), col("team_id"), col("sports_date")])
        .agg([
            col("team_name").drop_nulls().first().alias("team_name"),
            col("item_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("articles"),
            count(col("sentiment").gt(lit(0.0))).alias("positive_articles"),
            count(col("sentiment").lt(lit(0.0))).alias("negative_articles"),
            col("sentiment").mean().alias("mean_sentiment"),
            col("published_at").min().alias("first_published"),
            col("published_at").max().alias("last_published"),
        ]);
    let moves = consensus_moves(daily.clone(), consensus)?;
    let lf = left_join_nulls(daily, moves, &["team_id", "sports_date"])
        .with_column((col("prob_after") - col("prob_before")).alias("consensus_move"));
    finish(
        lf,
        &t::NEWS_SENTIMENT_DAILY,
        &["team_id", "sports_date"],
        run_id,
    )
}

/// Each team's consensus h2h probability per game and pre-game snapshot:
/// (team_id, game_id, commence_time, snapshot_time, consensus).
pub(super) fn team_consensus(priced: LazyFrame, games: LazyFrame) -> LazyFrame {
    let sides = games
        .select([col("game_id"), col("home_team_id"), col("away_team_id")])
        .unique_stable(Some(cols(["game_id"])), UniqueKeepStrategy::First);
    priced
        .filter(
            col("market")
                .eq(lit("h2h"))
                .and(col("pre_game"))
                .and(col("fair_prob").is_not_null())
                .and(
                    col("outcome")
                        .eq(lit("home"))
                        .or(col("outcome").eq(lit("away"))),
                ),
        )
        .group_by([col("game_id"), col("outcome"), col("snapshot_time")])
        .agg([
            col("fair_prob").median().alias("consensus"),
            col("commence_time").first().alias("commence_time"),
        ])
        .join(
            sides,
            [col("game_id")],
            [col("game_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column(
            when(col("outcome").eq(lit("home")))
                .then(col("home_team_id"))
                .otherwise(col("away_team_id"))
                .alias("team_id"),
        )
        .select([
            col("team_id"),
            col("game_id"),
            col("commence_time"),
            col("snapshot_time"),
            col("consensus"),
        ])
}

/// Per (team, day) of `daily`: the next game after the day's first article
/// and the consensus before and after it, from [`team_consensus`] rows.
fn consensus_moves(daily: LazyFrame, series: LazyFrame) -> PolarsResult<LazyFrame> {
    let team_games = series
        .clone()
        .group_by([col("team_id"), col("game_id")])
        .agg([col("commence_time").first()]);
    let by_start = || [col("commence_time"), col("game_id")];
    let next = daily
        .select([col("team_id"), col("sports_date"), col("first_published")])
        .join(
            team_games,
            [col("team_id")],
            [col("team_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col("commence_time").gt(col("first_published")))
        .group_by([col("team_id"), col("sports_date")])
        .agg([
            col("game_id")
                .sort_by(by_start(), SortMultipleOptions::default())
                .first()
                .alias("next_game_id"),
            col("first_published").first(),
        ]);
    let micros = |c: &str| col(c).cast(DataType::Int64);
    let before = micros("snapshot_time").lt_eq(micros("first_published"));
    let after = micros("snapshot_time").gt(micros("first_published")).and(
        micros("snapshot_time")
            .lt_eq(micros("first_published") + lit(MOVE_HOURS * MICROS_PER_HOUR)),
    );
    let last_where = |mask: Expr| {
        col("consensus")
            .filter(mask.clone())
            .sort_by(
                [col("snapshot_time").filter(mask)],
                SortMultipleOptions::default(),
            )
            .last()
    };
    Ok(next
        .join(
            series,
            [col("team_id"), col("next_game_id")],
            [col("team_id"), col("game_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col("team_id"), col("sports_date")])
        .agg([
            col("next_game_id").first(),
            last_where(before).alias("prob_before"),
            last_where(after).alias("prob_after"),
        ]))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn counts_sentiment_and_the_consensus_move_after_the_news() {
        // Game nfl:1 (A at home v B) commences at minute 100; two books.
        let quotes = [
            Quote::h2h("a", 0, "home", 2.00),
            Quote::h2h("a", 0, "away", 2.00),
            Quote::h2h("b", 0, "home", 1.90),
            Quote::h2h("b", 0, "away", 2.10),
            Quote::h2h("a", 60, "home", 1.50),
            Quote::h2h("a", 60, "away", 3.00),
            Quote::h2h("b", 60, "home", 1.50),
            Quote::h2h("b", 60, "away", 3.00),
            // In play: never counted.
            Quote::h2h("a", 120, "home", 1.01),
            Quote::h2h("a", 120, "away", 30.0),
        ];
        let news_rows = news(&[
            ("s1", Some("nfl:A"), 10, 0.5),
            ("s2", Some("nfl:A"), 20, -0.25),
            ("s2", Some("nfl:B"), 20, -0.25),
            ("s3", None, 30, 0.9),
            // After the game: no next game, no move.
            ("s4", Some("nfl:B"), 200, 0.0),
        ]);
        let df = news_sentiment_daily(
            news_rows.lazy(),
            odds(&quotes).lazy(),
            games(&[game("nfl:1", 8, "A", "B", 27, 20)]).lazy(),
            "r",
        )
        .unwrap();
        assert_schema(&df, &t::NEWS_SENTIMENT_DAILY);
        assert_eq!(df.height(), 2, "{df}");
        let a = [("team_id", "nfl:A")];
        assert_eq!(cell_i64(&df, &a, "articles"), Some(2));
        assert_eq!(cell_i64(&df, &a, "positive_articles"), Some(1));
        assert_eq!(cell_i64(&df, &a, "negative_articles"), Some(1));
        assert!(close(cell_f64(&df, &a, "mean_sentiment").unwrap(), 0.125));
        assert_eq!(cell_str(&df, &a, "next_game_id").as_deref(), Some("nfl:1"));
        // Before (minute 0): fair home 0.5 (a) and 0.525 (b) → median 0.5125.
        let b_home = (1.0 / 1.9) / (1.0 / 1.9 + 1.0 / 2.1);
        let before = (0.5 + b_home) / 2.0;
        assert!(close(cell_f64(&df, &a, "prob_before").unwrap(), before));
        // After (minute 60): 1.5/3.0 → 2/3 at both books.
        assert!(close(cell_f64(&df, &a, "prob_after").unwrap(), 2.0 / 3.0));
        assert!(close(
            cell_f64(&df, &a, "consensus_move").unwrap(),
            2.0 / 3.0 - before
        ));
        // B's articles of the day: s2 before the game and s4 after it; the
        // first article dates the move, so B still has one (the mirror).
        let b = [("team_id", "nfl:B")];
        assert_eq!(cell_i64(&df, &b, "articles"), Some(2));
        assert!(close(
            cell_f64(&df, &b, "consensus_move").unwrap(),
            -(2.0 / 3.0 - before)
        ));
    }

    #[test]
    fn no_priced_game_after_the_news_leaves_the_move_null() {
        let df = news_sentiment_daily(
            news(&[("s1", Some("nfl:A"), 500, 0.5)]).lazy(),
            odds(&[
                Quote::h2h("a", 0, "home", 2.0),
                Quote::h2h("a", 0, "away", 2.0),
            ])
            .lazy(),
            games(&[game("nfl:1", 8, "A", "B", 27, 20)]).lazy(),
            "r",
        )
        .unwrap();
        let a = [("team_id", "nfl:A")];
        assert_eq!(cell_str(&df, &a, "next_game_id"), None);
        assert_eq!(cell_f64(&df, &a, "consensus_move"), None);
        assert_eq!(cell_i64(&df, &a, "articles"), Some(1));
    }
}
