//! The nightly DAGs through the real binary, offline, past the raw lake:
//! bronze and silver land in Iceberg tables registered in the metadata
//! database, the quality gates record their checks per run, a re-run of a
//! day replaces that day, and another engine (pyiceberg) reads the tables.

use crate::common::TestEnv;
use serde_json::Value;

const GAMES: &str = "historical_games_daily";
const ODDS: &str = "historical_odds_daily";
const WEATHER: &str = "weather_daily";
const NEWS: &str = "news_daily";
/// NFL week 1 of 2024: a Sunday slate in the replay captures.
const DAY: &str = "2024-09-08";

fn run_nfl(env: &TestEnv, dag: &str, date: &str) -> String {
    let out = env.ok(&[
        "dags",
        "trigger",
        dag,
        "--logical-date",
        date,
        "--conf",
        r#"{"sports":["nfl"]}"#,
        "--wait",
    ]);
    assert!(out.contains("finished: success"), "{dag}: {out}");
    env.scalar(&format!(
        "SELECT run_id FROM dag_runs WHERE dag_id = '{dag}' AND state = 'success' ORDER BY start_date DESC LIMIT 1"
    ))
}

fn xcom(env: &TestEnv, dag: &str, run_id: &str, task: &str) -> Value {
    let text = env.scalar(&format!(
        "SELECT value::text FROM xcom WHERE dag_id = '{dag}' AND run_id = '{run_id}' AND task_id = '{task}'"
    ));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("xcom of {dag}.{task}: {e}: {text:?}"))
}

/// Row counts (and a few figures) of the warehouse, as pyiceberg sees them.
fn pyiceberg(env: &TestEnv) -> Value {
    let script = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
uri, warehouse = sys.argv[1], sys.argv[2]
cat = SqlCatalog("betflow", uri=uri.replace("postgres://", "postgresql+psycopg2://", 1), warehouse=warehouse)
out = {}
for name in ["bronze.games", "bronze.odds", "bronze.weather", "silver.games", "silver.game_periods", "silver.odds", "silver.weather"]:
    t = cat.load_table(name)
    rows = t.scan().to_arrow()
    out[name] = {"rows": rows.num_rows, "snapshots": len(t.history()),
                 "run_id": t.current_snapshot().summary.get("betflow.run-id")}
odds = cat.load_table("silver.odds").scan().to_arrow().to_pylist()
out["mapped_odds"] = sum(1 for r in odds if r["game_id"] is not None)
out["openers"] = sum(1 for r in odds if r["is_opening"])
out["closers_after_start"] = sum(1 for r in odds if r["is_closing"] and r["snapshot_time"] > r["commence_time"])
print(json.dumps(out))
"#;
    let warehouse = format!(
        "file://{}",
        env.path("lake/warehouse").canonicalize().unwrap().display()
    );
    crate::common::python_json(script, &[&env.url, &warehouse])
}

#[test]
fn nightly_dags_model_the_day_into_iceberg_behind_recorded_quality_gates() {
    let env = TestEnv::start();
    for dag in [GAMES, ODDS, WEATHER] {
        env.ok(&["dags", "unpause", dag]);
    }
    let games_run = run_nfl(&env, GAMES, DAY);
    let odds_run = run_nfl(&env, ODDS, DAY);
    run_nfl(&env, WEATHER, DAY);

    let validate = xcom(&env, GAMES, &games_run, "sport.validate");
    let finals = validate["final_games"].as_u64().unwrap();
    let quotes = xcom(&env, ODDS, &odds_run, "sport.validate")["quotes"]
        .as_u64()
        .unwrap();
    let seen = pyiceberg(&env);
    assert_eq!(seen["bronze.games"]["rows"], validate["games"], "{seen}");
    assert_eq!(seen["silver.games"]["rows"], finals, "{seen}");
    assert!(seen["silver.game_periods"]["rows"].as_u64().unwrap() >= finals * 4);
    assert_eq!(seen["bronze.odds"]["rows"], quotes, "{seen}");
    assert_eq!(
        seen["silver.odds"]["rows"], quotes,
        "no duplicate prices in one day"
    );
    assert_eq!(seen["silver.odds"]["run_id"], odds_run.as_str());
    assert!(seen["mapped_odds"].as_u64().unwrap() > 0, "{seen}");
    assert!(seen["openers"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["closers_after_start"], 0, "closing lines are pre-game");
    assert!(
        seen["silver.weather"]["rows"].as_u64().unwrap() > 0,
        "{seen}"
    );

    // Each gate recorded its checks for its run; none failed at error level.
    for (dag, task) in [
        (GAMES, "quality.silver_games"),
        (ODDS, "quality.silver_odds"),
        (WEATHER, "quality.silver_weather"),
    ] {
        let checks: i64 = env
            .scalar(&format!(
                "SELECT count(*) FROM check_results WHERE dag_id = '{dag}' AND task_id = '{task}'"
            ))
            .parse()
            .unwrap();
        assert!(checks >= 5, "{dag}.{task}: {checks} checks");
        let failed = env.scalar(&format!(
            "SELECT count(*) FROM check_results WHERE dag_id = '{dag}' AND task_id = '{task}' \
             AND severity = 'error' AND NOT passed"
        ));
        assert_eq!(failed, "0", "{dag}.{task}");
    }
    let shown = env.ok(&["runs", "show", ODDS, &odds_run]);
    assert!(shown.contains("silver.odds"), "{shown}");
    assert!(shown.contains("h2h has both sides"), "{shown}");

    // Re-running the day replaces its partitions: same rows, one more snapshot.
    let again = run_nfl(&env, ODDS, &format!("{DAY}T12:00:00-04:00"));
    let after = pyiceberg(&env);
    assert_eq!(after["silver.odds"]["rows"], quotes, "{after}");
    assert_eq!(after["bronze.odds"]["rows"], quotes, "{after}");
    assert_eq!(after["silver.odds"]["run_id"], again.as_str());
    assert_eq!(
        after["silver.odds"]["snapshots"].as_u64().unwrap(),
        seen["silver.odds"]["snapshots"].as_u64().unwrap() + 1
    );
}

#[test]
fn gold_marts_rebuild_from_silver_pass_their_gate_and_reach_serving() {
    const GOLD: &str = "gold_marts_nightly";
    let env = TestEnv::start();
    for dag in [GAMES, ODDS, WEATHER, GOLD] {
        env.ok(&["dags", "unpause", dag]);
    }
    for dag in [GAMES, ODDS, WEATHER] {
        run_nfl(&env, dag, DAY);
    }
    let gold_run = run_nfl(&env, GOLD, DAY);

    let count = |table: &str| -> i64 {
        env.scalar(&format!("SELECT count(*) FROM serving.gold_{table}"))
            .parse()
            .unwrap()
    };
    let games: i64 = count("dim_teams");
    assert!(games >= 2, "teams of the day's games: {games}");
    for table in [
        "market_efficiency",
        "odds_movement",
        "closing_line_value",
        "bookmaker_comparison",
        "team_trends",
        "scoring_patterns",
        "dim_bookmakers",
        "dim_markets",
        "dim_dates",
    ] {
        assert!(count(table) > 0, "serving.gold_{table} is empty");
    }
    // The serving copy is the gold table: same rows as the Iceberg snapshot.
    let published = xcom(&env, GOLD, &gold_run, "publish_serving");
    assert_eq!(
        published["tables"]["market_efficiency"].as_i64().unwrap(),
        count("market_efficiency")
    );
    let failed = env.scalar(&format!(
        "SELECT count(*) FROM check_results WHERE dag_id = '{GOLD}' AND run_id = '{gold_run}' \
         AND severity = 'error' AND NOT passed"
    ));
    assert_eq!(failed, "0");
    let recorded: i64 = env
        .scalar(&format!(
            "SELECT count(DISTINCT asset) FROM check_results WHERE dag_id = '{GOLD}' AND run_id = '{gold_run}'"
        ))
        .parse()
        .unwrap();
    assert_eq!(recorded, 13, "one suite per gold table");
    // Vig of a real bookmaker market is a few percent.
    let vig: f64 = env
        .scalar("SELECT avg(avg_vig_pct) FROM serving.gold_market_efficiency")
        .parse()
        .unwrap();
    assert!((0.0..15.0).contains(&vig), "average vig {vig}%");
    // An odds mart reads the odds one sport at a time, never the whole history.
    let logs = env.ok(&["tasks", "logs", GOLD, &gold_run, "marts.market_efficiency"]);
    assert!(logs.contains("read silver.odds of nfl: "), "{logs}");
    assert!(!logs.contains("read silver.odds: "), "{logs}");

    // A second night rebuilds gold instead of adding to it.
    let before = count("odds_movement");
    run_nfl(&env, GOLD, &format!("{DAY}T12:00:00-04:00"));
    assert_eq!(count("odds_movement"), before);
}

/// bronze.news and silver.news as pyiceberg reads them.
fn pyiceberg_news(env: &TestEnv) -> Value {
    let script = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
uri, warehouse = sys.argv[1], sys.argv[2]
cat = SqlCatalog("betflow", uri=uri.replace("postgres://", "postgresql+psycopg2://", 1), warehouse=warehouse)
out = {}
for name in ["bronze.news", "silver.news"]:
    t = cat.load_table(name)
    out[name] = {"rows": t.scan().to_arrow().num_rows, "snapshots": len(t.history()),
                 "run_id": t.current_snapshot().summary.get("betflow.run-id")}
rows = cat.load_table("silver.news").scan().to_arrow().to_pylist()
out["items"] = len({r["item_id"] for r in rows})
out["unmatched"] = sum(1 for r in rows if r["team_id"] is None)
out["teams"] = sorted({r["team_name"] for r in rows if r["team_id"] is not None})
out["sentiment_in_range"] = all(-1 < r["sentiment"] < 1 for r in rows)
out["scored"] = sum(1 for r in rows if r["sentiment"] != 0)
out["foreign_teams"] = sum(1 for r in rows if r["team_id"] is not None and not r["team_id"].startswith("nfl:"))
print(json.dumps(out))
"#;
    let warehouse = format!(
        "file://{}",
        env.path("lake/warehouse").canonicalize().unwrap().display()
    );
    crate::common::python_json(script, &[&env.url, &warehouse])
}

#[test]
fn news_daily_models_headlines_into_iceberg_and_its_mart_reaches_serving() {
    const GOLD: &str = "gold_marts_nightly";
    let env = TestEnv::start();
    for dag in [GAMES, ODDS, NEWS, GOLD] {
        env.ok(&["dags", "unpause", dag]);
    }
    let news_run = run_nfl(&env, NEWS, DAY);
    let v = xcom(&env, NEWS, &news_run, "sport.validate");
    let items = v["items"].as_u64().unwrap();
    assert!(items > 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");

    let seen = pyiceberg_news(&env);
    assert_eq!(seen["bronze.news"]["rows"], items, "{seen}");
    assert_eq!(
        seen["items"], items,
        "every article of the day is in silver: {seen}"
    );
    assert_eq!(seen["unmatched"], v["unmatched_items"], "{seen}");
    assert_eq!(seen["silver.news"]["run_id"], news_run.as_str());
    assert_eq!(seen["sentiment_in_range"], true, "{seen}");
    assert!(seen["scored"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["foreign_teams"], 0, "{seen}");
    let teams = seen["teams"].as_array().unwrap();
    assert!(
        teams.iter().any(|t| t == "Detroit Lions"),
        "the Combine headline names the Lions: {seen}"
    );

    // The gate recorded its checks; none failed at error level.
    let failed = env.scalar(&format!(
        "SELECT count(*) FROM check_results WHERE dag_id = '{NEWS}' AND task_id = 'quality.silver_news' \
         AND severity = 'error' AND NOT passed"
    ));
    assert_eq!(failed, "0");
    let shown = env.ok(&["runs", "show", NEWS, &news_run]);
    assert!(shown.contains("silver.news"), "{shown}");

    // A re-run of the day replaces its partitions.
    run_nfl(&env, NEWS, &format!("{DAY}T12:00:00-04:00"));
    let after = pyiceberg_news(&env);
    assert_eq!(after["silver.news"]["rows"], seen["silver.news"]["rows"]);
    assert_eq!(
        after["silver.news"]["snapshots"].as_u64().unwrap(),
        seen["silver.news"]["snapshots"].as_u64().unwrap() + 1
    );

    // Gold: one row per team named that day, in serving, with the market's
    // move on the teams playing in the next days.
    run_nfl(&env, GAMES, DAY);
    run_nfl(&env, ODDS, DAY);
    let gold_run = run_nfl(&env, GOLD, DAY);
    let rows: i64 = env
        .scalar("SELECT count(*) FROM serving.gold_news_sentiment_daily")
        .parse()
        .unwrap();
    assert_eq!(rows as usize, teams.len());
    let published = xcom(&env, GOLD, &gold_run, "publish_serving");
    assert_eq!(published["tables"]["news_sentiment_daily"], rows);
    let articles: i64 = env
        .scalar(&format!(
            "SELECT articles FROM serving.gold_news_sentiment_daily \
             WHERE team_name = 'Detroit Lions' AND sports_date = '{DAY}'"
        ))
        .parse()
        .unwrap();
    assert!(articles >= 1);
    let moved: i64 = env
        .scalar(
            "SELECT count(*) FROM serving.gold_news_sentiment_daily \
             WHERE consensus_move IS NOT NULL AND prob_before BETWEEN 0 AND 1",
        )
        .parse()
        .unwrap();
    assert!(
        moved > 0,
        "some named team plays a priced game after the news"
    );
    let failed = env.scalar(&format!(
        "SELECT count(*) FROM check_results WHERE dag_id = '{GOLD}' AND run_id = '{gold_run}' \
         AND severity = 'error' AND NOT passed"
    ));
    assert_eq!(failed, "0");
}
