//! Game marts: `team_trends` (results and results against the closing
//! lines by team, season and side) and `scoring_patterns` (points by
//! period).

use polars::prelude::*;

use super::prices;
use super::{cols_of, finish, left_join_nulls, null_of};
use crate::transform::gold_tables as t;

/// gold.team_trends from silver games and odds (for the closing lines).
pub fn team_trends(games: LazyFrame, odds: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let lines = prices::outcome_lines(prices::priced(odds)?)?;
    team_trends_of(games, prices::game_closing_lines(lines), run_id)
}

/// One row per (game, side) of the scored games, from that team's view:
/// its points, the opponent's, its closing spread (the home spread negated
/// for the away side) and the closing total.
fn team_games(games: LazyFrame, game_lines: LazyFrame) -> PolarsResult<LazyFrame> {
    let scored = left_join_nulls(
        games.filter(
            col("home_score")
                .is_not_null()
                .and(col("away_score").is_not_null()),
        ),
        game_lines,
        &["game_id"],
    );
    let side = |side: &str, us: &str, them: &str, spread_sign: f64| {
        scored.clone().select([
            col("sport"),
            col("season"),
            col("start_time"),
            lit(side).alias("side"),
            col(format!("{us}_team_id")).alias("team_id"),
            col(format!("{us}_team_name")).alias("team_name"),
            col(format!("{us}_score"))
                .cast(DataType::Float64)
                .alias("points_for"),
            col(format!("{them}_score"))
                .cast(DataType::Float64)
                .alias("points_against"),
            (col("close_home_spread") * lit(spread_sign)).alias("spread"),
            col("close_total"),
        ])
    };
    concat(
        [
            side("home", "home", "away", 1.0),
            side("away", "away", "home", -1.0),
        ],
        UnionArgs::default(),
    )
}

pub(super) fn team_trends_of(
    games: LazyFrame,
    game_lines: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let key = ["sport", "team_id", "season", "side"];
    let count = |e: Expr| e.sum().cast(DataType::Int64);
    let rate = |num: &str, den: Expr| {
        when(den.clone().gt(lit(0)))
            .then(col(num).cast(DataType::Float64) / den.cast(DataType::Float64))
            .otherwise(null_of(DataType::Float64))
    };
    let newest_first = RankOptions {
        method: RankMethod::Ordinal,
        descending: true,
    };
    let win = col("margin").gt(lit(0.0)).cast(DataType::Float64);
    let lf = team_games(games, game_lines)?
        .with_columns([
            (col("points_for") - col("points_against")).alias("margin"),
            (col("points_for") + col("points_against")).alias("total"),
        ])
        .with_columns([
            (col("margin") + col("spread")).alias("ats"),
            (col("total") - col("close_total")).alias("ou"),
            col("start_time")
                .rank(newest_first, None)
                .over(cols_of(&key))?
                .alias("recency"),
        ])
        .group_by(cols_of(&key))
        .agg([
            col("team_name")
                .sort_by([col("start_time")], SortMultipleOptions::default())
                .drop_nulls()
                .last()
                .alias("team_name"),
            len().cast(DataType::Int64).alias("games"),
            count(col("margin").gt(lit(0.0))).alias("wins"),
            count(col("margin").lt(lit(0.0))).alias("losses"),
            count(col("margin").eq(lit(0.0))).alias("ties"),
            win.clone().mean().alias("win_rate"),
            col("margin").mean().alias("avg_margin"),
            col("points_for").mean().alias("avg_points_for"),
            col("points_against").mean().alias("avg_points_against"),
            win.clone()
                .filter(col("recency").lt_eq(lit(5)))
                .mean()
                .alias("last5_win_rate"),
            win.filter(col("recency").lt_eq(lit(10)))
                .mean()
                .alias("last10_win_rate"),
            col("ats").count().cast(DataType::Int64).alias("ats_games"),
            count(col("ats").gt(lit(0.0))).alias("covers"),
            count(col("ats").eq(lit(0.0))).alias("ats_pushes"),
            col("ou").count().cast(DataType::Int64).alias("ou_games"),
            count(col("ou").gt(lit(0.0))).alias("overs"),
            count(col("ou").eq(lit(0.0))).alias("ou_pushes"),
        ])
        .with_columns([
            rate("covers", col("ats_games") - col("ats_pushes")).alias("cover_rate"),
            rate("overs", col("ou_games") - col("ou_pushes")).alias("over_rate"),
        ]);
    finish(lf, &t::TEAM_TRENDS, &key, run_id)
}

/// gold.scoring_patterns from silver games (for the teams) and periods.
pub fn scoring_patterns(
    games: LazyFrame,
    game_periods: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let key = ["sport", "team_id", "period"];
    let teams = games.select([col("game_id"), col("home_team_id"), col("away_team_id")]);
    let periods = game_periods.join(
        teams,
        [col("game_id")],
        [col("game_id")],
        JoinArgs::new(JoinType::Inner),
    );
    let side = |us: &str| {
        periods.clone().select([
            col("sport"),
            col("game_id"),
            col("period"),
            col("is_overtime"),
            col(format!("{us}_team_id")).alias("team_id"),
            col(format!("{us}_points"))
                .cast(DataType::Int64)
                .alias("points"),
        ])
    };
    let scored = concat([side("home"), side("away")], UnionArgs::default())?
        .filter(col("points").is_not_null());
    let league = scored
        .clone()
        .group_by([col("sport"), col("period")])
        .agg([col("points")
            .cast(DataType::Float64)
            .mean()
            .alias("league_avg_points")]);
    let team_total = col("points").sum().over([col("sport"), col("team_id")])?;
    let lf = scored
        .group_by(cols_of(&key))
        .agg([
            col("is_overtime").any(true).alias("is_overtime"),
            len().cast(DataType::Int64).alias("games"),
            col("points").sum().alias("points"),
            col("points")
                .cast(DataType::Float64)
                .mean()
                .alias("avg_points"),
        ])
        .with_column(
            when(team_total.clone().gt(lit(0)))
                .then(col("points").cast(DataType::Float64) / team_total.cast(DataType::Float64))
                .otherwise(null_of(DataType::Float64))
                .alias("share_of_points"),
        );
    let lf = left_join_nulls(lf, league, &["sport", "period"]);
    finish(lf, &t::SCORING_PATTERNS, &key, run_id)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn trends_split_home_and_away_with_ats_and_totals_against_the_close() {
        // Team A at home twice: beats B 27–20, loses to C 17–21.
        // Game 1 closes A −3.5 (two books: −3.5, −3.5) and total 44.5 / 45.5 → median 45.
        // A's margin 7 + (−3.5) = 3.5 → cover; total 47 > 45 → over.
        // Game 2 has no lines.
        let g = games(&[
            game("nfl:1", 8, "A", "B", 27, 20),
            game("nfl:2", 15, "A", "C", 17, 21),
        ]);
        let quotes = [
            Quote::spread("x", 0, "home", -3.5, 1.91),
            Quote::spread("y", 0, "home", -3.5, 1.91),
            Quote::total("x", 0, "over", 44.5, 1.91),
            Quote::total("y", 0, "over", 45.5, 1.91),
            // In play, not the close.
            Quote::total("y", 150, "over", 60.5, 1.91),
        ];
        let df = team_trends(g.lazy(), odds(&quotes).lazy(), "r").unwrap();
        assert_schema(&df, &t::TEAM_TRENDS);
        let a_home = [("team_id", "nfl:A"), ("side", "home")];
        assert_eq!(cell_i64(&df, &a_home, "games"), Some(2));
        assert_eq!(cell_i64(&df, &a_home, "wins"), Some(1));
        assert_eq!(cell_i64(&df, &a_home, "losses"), Some(1));
        assert!(close(cell_f64(&df, &a_home, "win_rate").unwrap(), 0.5));
        assert!(close(cell_f64(&df, &a_home, "avg_margin").unwrap(), 1.5));
        assert!(close(
            cell_f64(&df, &a_home, "avg_points_for").unwrap(),
            22.0
        ));
        assert!(close(
            cell_f64(&df, &a_home, "avg_points_against").unwrap(),
            20.5
        ));
        // Latest game first: the loss.
        assert!(close(
            cell_f64(&df, &a_home, "last5_win_rate").unwrap(),
            0.5
        ));
        assert_eq!(cell_i64(&df, &a_home, "ats_games"), Some(1));
        assert_eq!(cell_i64(&df, &a_home, "covers"), Some(1));
        assert!(close(cell_f64(&df, &a_home, "cover_rate").unwrap(), 1.0));
        assert_eq!(cell_i64(&df, &a_home, "ou_games"), Some(1));
        assert!(close(cell_f64(&df, &a_home, "over_rate").unwrap(), 1.0));
        // B away: −7 + 3.5 = −3.5, no cover.
        let b_away = [("team_id", "nfl:B"), ("side", "away")];
        assert_eq!(cell_i64(&df, &b_away, "covers"), Some(0));
        assert!(close(cell_f64(&df, &b_away, "cover_rate").unwrap(), 0.0));
        assert_eq!(
            cell_str(&df, &b_away, "team_name").as_deref(),
            Some("Team B")
        );
        // C never had lines.
        let c_away = [("team_id", "nfl:C"), ("side", "away")];
        assert_eq!(cell_i64(&df, &c_away, "ats_games"), Some(0));
        assert_eq!(cell_f64(&df, &c_away, "cover_rate"), None);
        assert!(close(cell_f64(&df, &c_away, "win_rate").unwrap(), 1.0));
    }

    #[test]
    fn period_shares_sum_to_one_per_team() {
        let g = games(&[
            game("nfl:1", 8, "A", "B", 27, 20),
            game("nfl:2", 15, "B", "A", 10, 13),
        ]);
        let p = periods(&[
            ("nfl:1", 1, 7, 3),
            ("nfl:1", 2, 10, 7),
            ("nfl:1", 3, 3, 7),
            ("nfl:1", 4, 7, 3),
            ("nfl:2", 1, 0, 3),
            ("nfl:2", 2, 7, 0),
            ("nfl:2", 3, 0, 7),
            ("nfl:2", 4, 0, 0),
            ("nfl:2", 5, 3, 3),
        ]);
        let df = scoring_patterns(g.lazy(), p.lazy(), "r").unwrap();
        assert_schema(&df, &t::SCORING_PATTERNS);
        for team in ["nfl:A", "nfl:B"] {
            let shares = df
                .clone()
                .lazy()
                .filter(col("team_id").eq(lit(team)))
                .select([col("share_of_points").sum()])
                .collect()
                .unwrap();
            let sum = shares
                .column("share_of_points")
                .unwrap()
                .f64()
                .unwrap()
                .get(0)
                .unwrap();
            assert!(close(sum, 1.0), "{team}: {sum}");
        }
        // A: period 1 → 7 (game 1) + 3 (game 2) = 10 of 27 + 13 = 40 points.
        let a1 = df
            .clone()
            .lazy()
            .filter(
                col("team_id")
                    .eq(lit("nfl:A"))
                    .and(col("period").eq(lit(1))),
            )
            .collect()
            .unwrap();
        let get = |c: &str| a1.column(c).unwrap().f64().unwrap().get(0).unwrap();
        assert!(close(get("share_of_points"), 10.0 / 40.0));
        assert!(close(get("avg_points"), 5.0));
        // League period 1: 7, 3, 0, 3 → 3.25.
        assert!(close(get("league_avg_points"), 3.25));
        let ot = df
            .lazy()
            .filter(col("period").eq(lit(5)))
            .collect()
            .unwrap();
        assert_eq!(ot.height(), 2);
        assert!(ot.column("is_overtime").unwrap().bool().unwrap().all());
    }
}
