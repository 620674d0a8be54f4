//! `weather_impact`: totals of outdoor games by wind at kickoff, with
//! Pearson correlations of kickoff weather against total points and
//! against total points − closing total.
//!
//! Shape: one row per (sport, wind bucket) plus an `all` row per sport.
//! The correlation columns of a bucket row are computed within that bucket
//! and those of the `all` row over every game, so each row is
//! self-contained (its n says how much to trust it) and the long table
//! stays one table instead of a second correlation mart.
//!
//! Outdoor means `venue_indoor = false`: a venue of unknown roof is left
//! out rather than guessed. Weather "at kickoff" is the venue's hourly
//! observation of the hour the game starts in (UTC, truncated); a game
//! without one is left out of every row, so buckets add up to `all` except
//! for games without a wind reading.

use polars::prelude::*;

use super::prices;
use super::{finish, left_join_nulls, null_of};
use crate::transform::gold_tables as t;

/// Wind buckets in m/s: below 5, 5 to 10 inclusive, above 10.
fn wind_bucket(wind: Expr) -> Expr {
    when(wind.clone().lt(lit(5.0)))
        .then(lit("lt_5"))
        .when(wind.clone().lt_eq(lit(10.0)))
        .then(lit("5_to_10"))
        .when(wind.gt(lit(10.0)))
        .then(lit("gt_10"))
        .otherwise(null_of(DataType::String))
}

/// Pearson r of two columns over the rows where both are present, and that
/// n; r is null under three pairs (two points always correlate ±1) or when
/// either side is constant.
fn pearson(x: &str, y: &str, name: &str) -> [Expr; 2] {
    let both = col(x).is_not_null().and(col(y).is_not_null());
    let xs = col(x).filter(both.clone());
    let ys = col(y).filter(both.clone());
    let dx = xs.clone() - xs.mean();
    let dy = ys.clone() - ys.mean();
    let sxy = (dx.clone() * dy.clone()).sum();
    let sxx = (dx.clone() * dx).sum();
    let syy = (dy.clone() * dy).sum();
    let n = both.sum().cast(DataType::Int64);
    let defined = n
        .clone()
        .gt_eq(lit(3))
        .and(sxx.clone().gt(lit(0.0)))
        .and(syy.clone().gt(lit(0.0)));
    [
        when(defined)
            .then(sxy / (sxx * syy).sqrt())
            .otherwise(null_of(DataType::Float64))
            .alias(format!("{name}_r")),
        n.alias(format!("{name}_n")),
    ]
}

fn aggregates() -> Vec<Expr> {
    let count = |e: Expr| e.sum().cast(DataType::Int64);
    let mut aggs = vec![
        len().cast(DataType::Int64).alias("games"),
        col("total").mean().alias("avg_total_points"),
        col("wind").mean().alias("avg_wind_ms"),
        col("temp").mean().alias("avg_temperature_c"),
        col("vs_close")
            .count()
            .cast(DataType::Int64)
            .alias("ou_games"),
        count(col("vs_close").gt(lit(0.0))).alias("overs"),
        count(col("vs_close").lt(lit(0.0))).alias("unders"),
        col("vs_close").mean().alias("avg_total_vs_close"),
    ];
    for (x, name) in [("temp", "temp"), ("wind", "wind"), ("precip", "precip")] {
        aggs.extend(pearson(x, "total", &format!("{name}_total")));
        aggs.extend(pearson(x, "vs_close", &format!("{name}_vs_close")));
    }
    aggs
}

/// gold.weather_impact from silver games, odds (for the closing total) and
/// weather.
pub fn weather_impact(
    games: LazyFrame,
    odds: LazyFrame,
    weather: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    let lines = prices::outcome_lines(prices::priced(odds)?)?;
    weather_impact_of(games, prices::game_closing_lines(lines), weather, run_id)
}

pub(super) fn weather_impact_of(
    games: LazyFrame,
    game_lines: LazyFrame,
    weather: LazyFrame,
    run_id: &str,
) -> PolarsResult<DataFrame> {
    // A venue listed under two sports has the same hour twice.
    let hourly = weather
        .group_by([col("venue_id"), col("observed_at").alias("kickoff_hour")])
        .agg([
            col("temperature_c").mean().alias("temp"),
            col("wind_speed_ms").mean().alias("wind"),
            col("precipitation_mm").mean().alias("precip"),
        ]);
    let outdoor = games
        .filter(
            col("venue_indoor")
                .eq(lit(false))
                .and(col("total_points").is_not_null())
                .and(col("venue_id").is_not_null()),
        )
        .with_column(
            col("start_time")
                .dt()
                .truncate(lit("1h"))
                .alias("kickoff_hour"),
        )
        .join(
            hourly,
            [col("venue_id"), col("kickoff_hour")],
            [col("venue_id"), col("kickoff_hour")],
            JoinArgs::new(JoinType::Inner),
        );
    let rows = left_join_nulls(outdoor, game_lines, &["game_id"]).with_columns([
        col("total_points").cast(DataType::Float64).alias("total"),
        (col("total_points").cast(DataType::Float64) - col("close_total")).alias("vs_close"),
        wind_bucket(col("wind")).alias("wind_bucket"),
    ]);
    let buckets = rows
        .clone()
        .filter(col("wind_bucket").is_not_null())
        .group_by([col("sport"), col("wind_bucket")])
        .agg(aggregates());
    let all = rows
        .group_by([col("sport"), lit("all").alias("wind_bucket")])
        .agg(aggregates());
    let lf = concat([buckets, all], UnionArgs::default())?.with_column(
        when((col("overs") + col("unders")).gt(lit(0)))
            .then(
                col("overs").cast(DataType::Float64)
                    / (col("overs") + col("unders")).cast(DataType::Float64),
            )
            .otherwise(null_of(DataType::Float64))
            .alias("over_rate"),
    );
    finish(lf, &t::WEATHER_IMPACT, &["sport", "wind_bucket"], run_id)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use chrono::Duration;

    #[test]
    fn outdoor_games_bucketed_by_kickoff_wind_with_correlations() {
        // Five outdoor games at 17:00 on Sept 1..5, one indoor, one without weather.
        let mut rows = vec![
            game("nfl:1", 1, "A", "B", 30, 20),
            game("nfl:2", 2, "A", "B", 24, 20),
            game("nfl:3", 3, "A", "B", 20, 17),
            game("nfl:4", 4, "A", "B", 14, 10),
            game("nfl:5", 5, "A", "B", 10, 6),
        ];
        let mut indoor = game("nfl:6", 6, "A", "B", 50, 50);
        indoor.indoor = Some(true);
        rows.push(indoor);
        let mut no_weather = game("nfl:7", 7, "A", "B", 50, 50);
        no_weather.venue_id = Some("espn:nowhere");
        rows.push(no_weather);
        // Totals 50, 44, 37, 24, 16; winds 2, 4, 7, 12, 15; temps 20, 18, 15, 10, 5.
        let wx_at = |d: u32, temp: f64, wind: f64| ("espn:3738", kickoff(d), temp, wind, 0.0);
        let wx = weather(&[
            wx_at(1, 20.0, 2.0),
            wx_at(2, 18.0, 4.0),
            wx_at(3, 15.0, 7.0),
            wx_at(4, 10.0, 12.0),
            wx_at(5, 5.0, 15.0),
            // Another hour: not kickoff.
            ("espn:3738", kickoff(1) + Duration::hours(1), 0.0, 40.0, 9.0),
            wx_at(6, 20.0, 2.0),
        ]);
        // Closing total 40 on game 1 (over: 50) and game 4 (under: 24).
        let quotes = [
            Quote::total("x", 0, "over", 40.0, 1.91).game(Some("nfl:1")),
            Quote::total("x", 0, "over", 40.0, 1.91).game(Some("nfl:4")),
        ];
        let df = weather_impact(games(&rows).lazy(), odds(&quotes).lazy(), wx.lazy(), "r").unwrap();
        assert_schema(&df, &t::WEATHER_IMPACT);

        let all = [("wind_bucket", "all")];
        assert_eq!(cell_i64(&df, &all, "games"), Some(5));
        assert!(close(
            cell_f64(&df, &all, "avg_total_points").unwrap(),
            171.0 / 5.0
        ));
        assert_eq!(cell_i64(&df, &all, "ou_games"), Some(2));
        assert_eq!(cell_i64(&df, &all, "overs"), Some(1));
        assert!(close(cell_f64(&df, &all, "over_rate").unwrap(), 0.5));
        assert!(close(
            cell_f64(&df, &all, "avg_total_vs_close").unwrap(),
            (10.0 - 16.0) / 2.0
        ));

        let lt5 = [("wind_bucket", "lt_5")];
        assert_eq!(cell_i64(&df, &lt5, "games"), Some(2));
        assert!(close(
            cell_f64(&df, &lt5, "avg_total_points").unwrap(),
            47.0
        ));
        assert_eq!(
            cell_i64(&df, &[("wind_bucket", "5_to_10")], "games"),
            Some(1)
        );
        assert_eq!(cell_i64(&df, &[("wind_bucket", "gt_10")], "games"), Some(2));

        // Pearson r by hand over all five.
        let total = [50.0, 44.0, 37.0, 24.0, 16.0];
        let wind = [2.0, 4.0, 7.0, 12.0, 15.0];
        let r = {
            let mx = wind.iter().sum::<f64>() / 5.0;
            let my = total.iter().sum::<f64>() / 5.0;
            let sxy: f64 = wind
                .iter()
                .zip(total)
                .map(|(x, y)| (x - mx) * (y - my))
                .sum();
            let sxx: f64 = wind.iter().map(|x| (x - mx).powi(2)).sum();
            let syy: f64 = total.iter().map(|y| (y - my).powi(2)).sum();
            sxy / (sxx * syy).sqrt()
        };
        assert!(close(cell_f64(&df, &all, "wind_total_r").unwrap(), r));
        assert!(r < -0.9);
        assert_eq!(cell_i64(&df, &all, "wind_total_n"), Some(5));
        // Precipitation is constant: no correlation, still n.
        assert_eq!(cell_f64(&df, &all, "precip_total_r"), None);
        assert_eq!(cell_i64(&df, &all, "precip_total_n"), Some(5));
        // Two games against the close: too few pairs.
        assert_eq!(cell_f64(&df, &all, "wind_vs_close_r"), None);
        assert_eq!(cell_i64(&df, &all, "wind_vs_close_n"), Some(2));
    }

    #[test]
    fn bucket_edges() {
        let df = df!("w" => [Some(4.99), Some(5.0), Some(10.0), Some(10.01), None])
            .unwrap()
            .lazy()
            .select([wind_bucket(col("w")).alias("b")])
            .collect()
            .unwrap();
        let got: Vec<Option<&str>> = df.column("b").unwrap().str().unwrap().iter().collect();
        assert_eq!(
            got,
            [
                Some("lt_5"),
                Some("5_to_10"),
                Some("5_to_10"),
                Some("gt_10"),
                None
            ]
        );
    }
}
