//! The Grafana dashboards (deploy/grafana/dashboards) against a real
//! database: every panel's SQL, with Grafana's time macro expanded, run as
//! the read-only `betflow_reader` role the serving migrations create, on
//! serving rows written as the consumers and the nightly marts write them.

use serde_json::Value;

use crate::common::TestEnv;

/// Every panel's (title, SQL) of a dashboard file.
fn panels(file: &str) -> Vec<(String, String)> {
    let path = format!(
        "{}/deploy/grafana/dashboards/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| {
            let sql = p["targets"][0]["rawSql"]
                .as_str()
                .expect("rawSql")
                .to_owned();
            assert_eq!(
                p["datasource"]["uid"], "betflow",
                "{} reads BetFlow",
                p["title"]
            );
            (p["title"].as_str().expect("title").to_owned(), sql)
        })
        .collect()
}

/// Grafana's `$__timeFilter(col)` over the dashboard's default range.
fn expand(sql: &str, range: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "$__timeFilter(".len()..];
        let end = after.find(')').expect("closing parenthesis");
        out.push_str(&format!("{} >= now() - interval '{range}'", &after[..end]));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_panel_query_runs_as_the_reader_and_names_its_columns() {
    let mut env = TestEnv::start();
    let _up = env.spawn_up();
    crate::web_markets::seed(&env);
    // The seed's game and prices are of 2024; bring them into the live range.
    env.sql("UPDATE serving.game_state SET event_time = now()");
    env.sql("UPDATE serving.odds_latest SET event_time = now()");
    env.sql(
        "INSERT INTO serving.gold_market_efficiency (sport, game_id, bookmaker, market, snapshots,
            avg_vig_pct, min_vig_pct, max_vig_pct, efficiency_rating, favourite_flips, updates,
            first_snapshot, last_snapshot, run_id)
         VALUES ('nfl', 'nfl:1', 'fanduel', 'h2h', 12, 4.2, 3.9, 4.6, 'efficient', 0, 3,
                 '2024-09-08T12:00:00Z', '2024-09-08T17:00:00Z', 'r1')",
    );
    for (sport, day) in [
        ("nba", (2025, 1, 15)),
        ("nhl", (2025, 1, 15)),
        ("ncaaf", (2024, 9, 7)),
    ] {
        seed_final_game(&env, sport, day);
    }
    let with_rows = [
        "Games in the last 60 minutes",
        "Scores by league",
        "Best prices now",
        "Average vig by bookmaker",
        "NBA shooting, rebounds and assists",
        "NHL saves, save % and scoring",
        "Leaders",
        "College football records",
    ];
    for (file, range) in [("live.json", "60 minutes"), ("batch.json", "30 days")] {
        for (title, sql) in panels(file) {
            let sql = expand(&sql, range);
            // Column names and row count, as the reader sees them.
            // The last line is the last statement's row: `columns;rows`.
            let probe = format!(
                "SET ROLE betflow_reader; \
                 CREATE TEMP VIEW panel AS {sql}; \
                 SELECT (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute \
                   WHERE attrelid = 'panel'::regclass AND attnum > 0) || ';' || \
                   (SELECT count(*) FROM panel);"
            );
            let out = env
                .try_sql(&probe)
                .unwrap_or_else(|e| panic!("{file} · {title}: {e}\n{sql}"));
            let line = out.last().cloned().unwrap_or_default();
            let (columns, rows) = line.split_once(';').unwrap_or((&line, ""));
            assert!(
                !columns.is_empty() && !columns.contains("?column?"),
                "{file} · {title}: every column is named: {columns}"
            );
            let rows: i64 = rows.parse().unwrap_or(-1);
            if with_rows.contains(&title.as_str()) {
                assert!(
                    rows > 0,
                    "{file} · {title}: rows from the seeded day, got {rows}"
                );
            }
        }
    }
    // The reader reads serving only.
    let err = env
        .try_sql("SET ROLE betflow_reader; SELECT count(*) FROM dag_runs;")
        .expect_err("no access to the orchestration tables");
    assert!(err.contains("permission denied"), "{err}");
}

/// The first game of a generated day, final, with its box score, as the
/// games consumer leaves it after the replay's last poll.
fn seed_final_game(env: &TestEnv, sport: &str, (y, m, d): (i32, u32, u32)) {
    let day = chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date");
    let replay =
        dags::live::replay::games::replay(dags::sport(sport).expect("sport"), day).expect("replay");
    let g = replay.records.first().expect("a game that day");
    let b = &g.box_score;
    let text = |s: &str| s.replace('\'', "''");
    let stats = |t: &sources::espn::TeamBox| {
        if t.stats.is_empty() {
            "NULL".to_string()
        } else {
            format!("'{}'", serde_json::to_string(&t.stats).expect("json"))
        }
    };
    let record = |r: &Option<String>| r.as_deref().map_or("NULL".into(), |r| format!("'{r}'"));
    env.sql(&format!(
        "INSERT INTO serving.game_state (game_id, sport, status, period, home_team_id, away_team_id,
            home_score, away_score, leader, lead_changes, home_team, away_team, start_time,
            home_record, away_record, home_stats, away_stats, event_time, ingest_time)
         VALUES ('{id}', '{sport}', 'final', {period}, '{h}', '{a}', {hs}, {as_}, 'tied', 0,
            '{hn}', '{an}', now(), {hr}, {ar}, {hst}, {ast}, now(), now())",
        id = g.game_id,
        period = g.period,
        h = g.home.team_id,
        a = g.away.team_id,
        hs = g.home.score.unwrap_or(0),
        as_ = g.away.score.unwrap_or(0),
        hn = text(&g.home.name),
        an = text(&g.away.name),
        hr = record(&b.home.record),
        ar = record(&b.away.record),
        hst = stats(&b.home),
        ast = stats(&b.away),
    ));
    assert!(!b.leaders.is_empty(), "{sport} leaders");
    for l in &b.leaders {
        env.sql(&format!(
            "INSERT INTO serving.game_leaders (game_id, sport, category, team_id, athlete,
                display_value, value, event_time)
             VALUES ('{}', '{sport}', '{}', '{}', '{}', '{}', {}, now())",
            g.game_id,
            l.category,
            l.team_id,
            text(&l.athlete),
            text(&l.display_value),
            l.value
        ));
    }
}
