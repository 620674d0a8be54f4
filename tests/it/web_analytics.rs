//! The analytics page through the real binary: gold mart rows written into
//! `serving` as the nightly `publish_serving` task writes them, read back
//! as charts, tables and CSV downloads.

use reqwest::StatusCode;

use crate::common::viewer::Viewer;
use crate::common::TestEnv;

fn seed(env: &TestEnv) {
    for (book, vig, day) in [
        ("fanduel", 4.2, "2024-09-08"),
        ("bovada", 5.6, "2024-09-08"),
        ("bovada", 7.0, "2024-10-01"),
    ] {
        env.sql(&format!(
            "INSERT INTO serving.gold_market_efficiency (sport, game_id, bookmaker, market, snapshots,
                avg_vig_pct, min_vig_pct, max_vig_pct, efficiency_rating, favourite_flips, updates,
                first_snapshot, last_snapshot, run_id)
             VALUES ('nfl', 'nfl:{day}', '{book}', 'h2h', 12, {vig}, {vig} - 0.5, {vig} + 0.5,
                'efficient', 0, 3, '{day}T12:00:00Z', '{day}T17:00:00Z', 'r1')"
        ));
    }
    env.sql(
        "INSERT INTO serving.gold_weather_impact (sport, wind_bucket, games, avg_total_points,
            avg_wind_ms, avg_temperature_c, ou_games, overs, unders, over_rate, temp_total_n,
            wind_total_n, precip_total_n, temp_vs_close_n, wind_vs_close_n, precip_vs_close_n, run_id)
         VALUES ('nfl', 'gt_10', 4, 38.5, 11.2, 3.0, 4, 1, 3, 0.25, 0, 0, 0, 0, 0, 0, 'r1')",
    );
}

#[test]
fn marts_show_as_charts_tables_and_csv_filtered_by_sport_and_dates() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    seed(&env);

    let html = viewer.get("/analytics?sport=nfl");
    assert!(html.contains("Market efficiency by bookmaker"), "{html}");
    // fanduel's one market at 4.2%, bovada's two averaging 6.3%.
    assert!(html.contains("<title>fanduel: 4.20%</title>"), "{html}");
    assert!(html.contains("<title>bovada: 6.30%</title>"), "{html}");
    assert!(html.contains("&gt; 10 m/s"), "{html}");
    // A mart without rows says why.
    assert!(html.contains("No rows for nfl"), "{html}");
    assert!(!html.contains("No marts yet"), "{html}");
    // A sport without any mart says so once, with why.
    let nothing = viewer.get("/analytics?sport=nhl");
    assert!(nothing.contains("No marts yet for nhl."), "{nothing}");

    // The date range narrows the dated marts only.
    let september = viewer.get("/analytics?sport=nfl&from=2024-09-01&to=2024-09-30");
    assert!(
        september.contains("<title>bovada: 5.60%</title>"),
        "{september}"
    );
    assert!(september.contains("&gt; 10 m/s"), "{september}");

    let csv = viewer.get("/analytics.csv?section=market_efficiency&sport=nfl");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "Bookmaker,Markets,Avg vig %,Min vig %,Max vig %,Highly efficient,Inefficient"
    );
    assert_eq!(lines[1], "fanduel,1,4.20,3.70,4.70,0,0");
    assert_eq!(lines.len(), 3, "{csv}");

    for (path, name) in [
        ("/analytics?sport=cricket", "sport"),
        ("/analytics?from=2024-10-02&to=2024-10-01", "from"),
        ("/analytics?to=tomorrow", "to"),
    ] {
        let (status, body) = viewer.fetch(path);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body.contains(&format!("Bad parameter `{name}`")),
            "{path}: {body}"
        );
    }
    let (status, body) = viewer.fetch("/analytics.csv?section=nope");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("section"), "{body}");
}
