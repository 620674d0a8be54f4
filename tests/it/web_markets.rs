//! The markets pages through the real binary: `betflow up` against a
//! throwaway Postgres, with serving rows written as the odds and games
//! consumers write them (two bookmakers whose best prices make an
//! arbitrage, docs/formulas.md#arbitrage), read back as a bettor would.

use reqwest::StatusCode;

use crate::common::viewer::Viewer;
use crate::common::TestEnv;

const DAY: &str = "2024-09-08";

/// Kansas City at home to Baltimore, 17:00 UTC on the day, in progress;
/// bookmaker A home 2.10 / away 1.833333, B home 1.80 / away 2.05.
pub(crate) fn seed(env: &TestEnv) {
    env.sql(
        "INSERT INTO serving.odds_events (event_id, sport, home_team, away_team, commence_time, event_time)
         VALUES ('e-kc', 'nfl', 'Kansas City Chiefs', 'Baltimore Ravens', '2024-09-08T17:00:00Z', '2024-09-08T16:00:00Z')",
    );
    let price = |book: &str, outcome: &str, decimal: f64, fair: f64, overround: f64, open: f64| {
        env.sql(&format!(
            "INSERT INTO serving.odds_latest (sport, event_id, market, bookmaker, outcome, point,
                price_decimal, price_american, implied_probability, no_vig_probability, overround,
                open_decimal, open_point, open_time, event_time, ingest_time)
             VALUES ('nfl', 'e-kc', 'h2h', '{book}', '{outcome}', NULL, {decimal}, NULL, {implied},
                {fair}, {overround}, {open}, NULL, '2024-09-07T12:00:00Z', '2024-09-08T16:00:00Z',
                '2024-09-08T16:00:01Z')",
            implied = 1.0 / decimal,
        ));
    };
    price("a", "home", 2.10, 0.466102, 0.021645, 2.20);
    price("a", "away", 1.833333, 0.533898, 0.021645, 1.80);
    price("b", "home", 1.80, 0.532468, 0.043361, 1.80);
    price("b", "away", 2.05, 0.467532, 0.043361, 2.05);
    env.sql(
        "INSERT INTO serving.arbitrage_alerts (sport, event_id, market, line, margin, legs, event_time, ingest_time)
         VALUES ('nfl', 'e-kc', 'h2h', NULL, 0.036005,
           '[{\"side\": \"home\", \"decimal\": 2.10, \"point\": null, \"bookmakers\": [\"a\"], \"stake_share\": 0.493976},
             {\"side\": \"away\", \"decimal\": 2.05, \"point\": null, \"bookmakers\": [\"b\"], \"stake_share\": 0.506024}]',
           '2024-09-08T16:00:00Z', '2024-09-08T16:00:01Z')",
    );
    env.sql(
        "INSERT INTO serving.game_state (game_id, sport, status, period, clock, home_team_id,
            away_team_id, home_score, away_score, leader, lead_changes, status_history,
            home_team, away_team, start_time, event_time, ingest_time)
         VALUES ('g-kc', 'nfl', 'in_progress', 2, '4:12', '12', '33', 14, 10, 'home', 1,
           '[{\"status\": \"scheduled\", \"event_time\": \"2024-09-08T15:00:00Z\"},
             {\"status\": \"in_progress\", \"event_time\": \"2024-09-08T17:02:00Z\"}]',
           'Kansas City Chiefs', 'Baltimore Ravens', '2024-09-08T17:00:00Z',
           '2024-09-08T18:00:00Z', '2024-09-08T18:00:01Z')",
    );
}

#[test]
fn the_board_shows_best_prices_fair_prices_and_flags_for_the_day() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    seed(&env);

    // A later game of the day that no bookmaker prices yet.
    env.sql(
        "INSERT INTO serving.odds_events (event_id, sport, home_team, away_team, commence_time, event_time)
         VALUES ('e-buf', 'nfl', 'Buffalo Bills', 'Arizona Cardinals', '2024-09-08T20:00:00Z', '2024-09-08T16:00:00Z')",
    );

    let html = viewer.get(&format!("/markets?sport=nfl&date={DAY}"));
    assert!(
        html.contains("Baltimore Ravens @ Kansas City Chiefs"),
        "{html}"
    );
    // Shown, without prices, and without taking the other game's.
    let unpriced = html
        .split("Arizona Cardinals @ Buffalo Bills")
        .nth(1)
        .expect("the unpriced game is on the board");
    assert!(unpriced.contains("No prices for this game yet."), "{html}");
    assert!(!unpriced.contains("2.10 (+110)"), "{html}");
    assert!(html.contains(r#"href="/markets/nfl/e-kc""#), "{html}");
    // Live state from the games consumer's row.
    assert!(html.contains("live · P2 4:12"), "{html}");
    assert!(html.contains("10 – 14"), "{html}");
    // Best home price at a, best away at b; together an arbitrage.
    assert!(html.contains("2.10 (+110)"), "{html}");
    assert!(html.contains("2.05 (+105)"), "{html}");
    assert!(html.contains("arb 3.60%"), "{html}");
    // Fair home: median(0.466102, 0.532468) = 0.499285 → 2.00 · 49.9%;
    // 2.10 × 0.499285 − 1 = 4.8% edge.
    assert!(html.contains("2.00 · 49.9%"), "{html}");
    assert!(html.contains("value +4.8%"), "{html}");
    // Hold: median of a's 2.12% and b's 4.16%.
    assert!(html.contains("3.1%"), "{html}");
    // Home opened at 2.20 at a and 1.80 at b: the median implied
    // probability rose from 0.5051 to 0.5159.
    assert!(html.contains("+1.1 pts"), "{html}");
    // The board refreshes itself.
    assert!(
        html.contains(r#"hx-get="/markets/live?sport=nfl&#38;date=2024-09-08""#),
        "{html}"
    );

    let fragment = viewer.get(&format!("/markets/live?sport=nfl&date={DAY}"));
    assert!(fragment.starts_with("<div id=\"board\"") || fragment.contains("id=\"board\""));
    assert!(!fragment.contains("<html"), "a fragment, not a page");

    let csv = viewer.get(&format!("/markets.csv?sport=nfl&date={DAY}"));
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("sport,event_id,start_utc,"));
    let rows: Vec<&str> = lines.collect();
    // Two sides of e-kc's h2h, and the unpriced game's row with no market.
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows.iter().any(|r| r.starts_with(
            "nfl,e-buf,2024-09-08T20:00:00+00:00,Arizona Cardinals,Buffalo Bills,not_started,,,,"
        )),
        "{csv}"
    );
    assert!(rows.iter().any(|r| r.starts_with("nfl,e-kc,2024-09-08T17:00:00+00:00,Baltimore Ravens,Kansas City Chiefs,in_progress,10,14,h2h,,home,,2.1,")), "{csv}");

    let empty = viewer.get("/markets?sport=nfl&date=2024-01-01");
    assert!(
        empty.contains("No games or prices for nfl on 2024-01-01."),
        "{empty}"
    );
}

#[test]
fn bad_parameters_get_a_400_page_naming_them() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    for (path, name) in [
        ("/markets?sport=cricket", "sport"),
        ("/markets?date=yesterday", "date"),
        ("/markets/cricket/e-kc", "sport"),
    ] {
        let (status, body) = viewer.fetch(path);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body.contains(&format!("Bad parameter `{name}`")),
            "{path}: {body}"
        );
    }
    let (status, body) = viewer.fetch("/markets/live?date=2024-13-01");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("date"), "{body}");
    let (status, body) = viewer.fetch("/markets/nfl/no-such-event");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[test]
fn the_game_page_shows_arbitrage_history_and_the_status_timeline() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    seed(&env);
    let html = viewer.get("/markets/nfl/e-kc");
    assert!(
        html.contains("<h1>Baltimore Ravens @ Kansas City Chiefs</h1>"),
        "{html}"
    );
    assert!(html.contains("3.60%"), "{html}");
    assert!(
        html.contains("home 2.10 (+110) at a — stake 49.4%"),
        "{html}"
    );
    assert!(
        html.contains("away 2.05 (+105) at b — stake 50.6%"),
        "{html}"
    );
    assert!(html.contains("in progress"), "{html}");
    // No closed windows, weather or news yet: each section says why.
    assert!(
        html.contains("No closed price windows for this game yet"),
        "{html}"
    );
    assert!(html.contains("No weather for this game"), "{html}");
    assert!(html.contains("No box score for this game yet"), "{html}");
    assert!(
        html.contains(r#"href="/markets?sport=nfl&#38;date=2024-09-08""#),
        "{html}"
    );

    // Once a poll carries the box score: both records and the leaders.
    env.sql(
        "UPDATE serving.game_state SET home_record = '1-0', away_record = '0-1' WHERE game_id = 'g-kc'",
    );
    env.sql(
        "INSERT INTO serving.game_leaders (game_id, sport, category, team_id, athlete,
            display_value, value, event_time)
         VALUES ('g-kc', 'nfl', 'passingYards', '12', 'Patrick Mahomes', '20-28, 291 YDS, 1 TD', 291,
                 '2024-09-08T18:00:00Z')",
    );
    let html = viewer.get("/markets/nfl/e-kc");
    assert!(
        html.contains("<td>Kansas City Chiefs</td><td>1-0</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td>Passing yards</td><td>Kansas City Chiefs</td><td>Patrick Mahomes</td><td>20-28, 291 YDS, 1 TD</td>"),
        "{html}"
    );
}

#[test]
fn the_alerts_feed_lists_signals_of_the_day_by_kind() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    seed(&env);
    env.sql(
        "INSERT INTO serving.market_alerts (kind, sport, event_id, market, outcome, line, magnitude,
            bookmakers, detail, first_seen, last_seen, times_seen)
         VALUES ('value', 'nfl', 'e-kc', 'h2h', 'away', NULL, 0.0265, ARRAY['b'], '{}',
                 '2024-09-08T16:00:00Z', '2024-09-08T16:10:00Z', 3),
                ('arbitrage', 'nfl', 'e-kc', 'h2h', NULL, NULL, 0.036005, ARRAY['a','b'], '{}',
                 '2024-09-08T16:00:00Z', '2024-09-08T16:00:00Z', 1)",
    );
    let html = viewer.get(&format!("/alerts?date={DAY}"));
    assert!(html.contains("edge +2.6%"), "{html}");
    assert!(html.contains("h2h · Baltimore Ravens"), "{html}");
    assert!(html.contains("margin 3.60%"), "{html}");
    assert!(html.contains("h2h · every side"), "{html}");
    assert!(
        html.contains(r#"hx-get="/alerts/live?date=2024-09-08""#),
        "{html}"
    );

    let values = viewer.get(&format!("/alerts/live?date={DAY}&kind=value"));
    assert!(
        values.contains("edge +2.6%") && !values.contains("margin 3.60%"),
        "{values}"
    );

    let csv = viewer.get(&format!("/alerts.csv?date={DAY}&kind=arbitrage"));
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with(
            "arbitrage,nfl,e-kc,Baltimore Ravens,Kansas City Chiefs,h2h,,,0.036005,a b,"
        ),
        "{csv}"
    );

    let (status, body) = viewer.fetch("/alerts?kind=rumour");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Bad parameter `kind`"), "{body}");
    let empty = viewer.get("/alerts?date=2024-01-01");
    assert!(empty.contains("No alerts on 2024-01-01"), "{empty}");
}
