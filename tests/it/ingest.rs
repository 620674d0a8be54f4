//! The ingestion DAGs (`historical_games_daily`, `historical_odds_daily`,
//! `weather_daily`) through the real binary, offline: the replay source's
//! payloads land in the local raw lake under `$BETFLOW_HOME/lake`, validate
//! reports its counts as XCom, and re-running a sports day keeps exactly one
//! raw object for that date.

use std::path::{Path, PathBuf};

use crate::common::TestEnv;
use serde_json::Value;

const DAG: &str = "historical_games_daily";
/// A sports day with a real NFL capture (week 1 of 2025): 13 games on the
/// New York date.
const DAY: &str = "2025-09-07";
const EVENTS: usize = 13;

fn raw_dir(env: &TestEnv) -> PathBuf {
    env.path("lake")
        .join(format!("raw/historical/nfl/games/date={DAY}"))
}

fn raw_objects(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn xcom(env: &TestEnv, run_id: &str, task: &str) -> Value {
    let text = env.scalar(&format!(
        "SELECT value::text FROM xcom WHERE dag_id = '{DAG}' AND run_id = '{run_id}' AND task_id = '{task}'"
    ));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("xcom of {task}: {e}: {text:?}"))
}

#[test]
fn a_games_run_lands_the_replayed_scoreboard_in_the_lake_once_per_date() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", DAG]);
    let out = env.ok(&[
        "dags",
        "trigger",
        DAG,
        "--logical-date",
        DAY,
        "--conf",
        r#"{"sports":["nfl"]}"#,
        "--wait",
    ]);
    assert!(out.contains("finished: success"), "{out}");
    let run_id = env.scalar(&format!(
        "SELECT run_id FROM dag_runs WHERE dag_id = '{DAG}' AND state = 'success'"
    ));

    // The untouched payload, gzipped, under the date's partition.
    let objects = raw_objects(&raw_dir(&env));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let name = objects[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("replay-") && name.ends_with(".json.gz"),
        "{name}"
    );
    let gz = std::fs::read(&objects[0]).unwrap();
    let bytes = dags::lake::gunzip(&name, &gz).unwrap();
    let payload: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(payload["events"].as_array().unwrap().len(), EVENTS);

    let fetch = xcom(&env, &run_id, "sport.fetch_scoreboard");
    assert_eq!(fetch["source"], "replay");
    assert_eq!(fetch["date"], DAY);
    assert_eq!(fetch["bytes"], bytes.len());
    assert!(
        objects[0].ends_with(fetch["key"].as_str().unwrap()),
        "{fetch}"
    );
    let validate = xcom(&env, &run_id, "sport.validate");
    assert_eq!(validate["sport"], "nfl");
    let games = validate["games"].as_u64().unwrap();
    let rejected = validate["rejected"].as_u64().unwrap();
    assert_eq!(games + rejected, EVENTS as u64, "{validate}");
    assert!(games > 0, "{validate}");
    assert!(validate["final_games"].as_u64().unwrap() <= games);
    assert_eq!(
        xcom(&env, &run_id, "transform.bronze_games")["records"],
        games
    );
    // The fetch and validate have one instance each: the run's one sport.
    // The others have none, and wrote nothing.
    for task in ["sport.fetch_scoreboard", "sport.validate"] {
        assert_eq!(
            env.sql(&format!(
                "SELECT map_index || ' ' || state FROM task_instances
                 WHERE dag_id = '{DAG}' AND run_id = '{run_id}' AND task_id = '{task}'"
            )),
            ["0 success"],
            "{task}"
        );
    }
    assert!(!env.path("lake/raw/historical/nba").exists());

    // A second run of the same New York date replaces the object.
    let out = env.ok(&[
        "dags",
        "trigger",
        DAG,
        "--logical-date",
        &format!("{DAY}T12:00:00-04:00"),
        "--conf",
        r#"{"sports":["nfl"]}"#,
        "--wait",
    ]);
    assert!(out.contains("finished: success"), "{out}");
    let again = raw_objects(&raw_dir(&env));
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again, objects, "the newer run's object replaced the older");

    // One task, in-process and offline, the way an operator tests it: an
    // instance of a mapped task is picked by its index in the param.
    let err = env.fails(&["tasks", "run", DAG, "sport.fetch_scoreboard", "--date", DAY]);
    assert!(
        err.contains("--map-index") && err.contains(r#"0: "nfl""#),
        "{err}"
    );
    let err = env.fails(&[
        "tasks",
        "run",
        DAG,
        "sport.validate",
        "--date",
        DAY,
        "--map-index",
        "0",
    ]);
    assert!(
        err.contains("output of `sport.fetch_scoreboard`'s instance"),
        "{err}"
    );
    let out = env.ok(&[
        "tasks",
        "run",
        DAG,
        "sport.fetch_scoreboard",
        "--date",
        DAY,
        "--map-index",
        "0",
    ]);
    let start = out.find('{').expect("JSON output");
    let fetched: Value = serde_json::from_str(&out[start..]).unwrap();
    assert_eq!(fetched["sport"], "nfl");
    assert_eq!(fetched["date"], DAY);
    assert_eq!(fetched["bytes"], bytes.len(), "deterministic replay");
    assert_eq!(raw_objects(&raw_dir(&env)).len(), 1);
}

/// NFL week 1 of 2024: a generated Sunday (no capture), 13 games.
const WEEK1: &str = "2024-09-08";

fn xcom_of(env: &TestEnv, dag: &str, run_id: &str, task: &str) -> Value {
    let text = env.scalar(&format!(
        "SELECT value::text FROM xcom WHERE dag_id = '{dag}' AND run_id = '{run_id}' AND task_id = '{task}'"
    ));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("xcom of {dag}.{task}: {e}: {text:?}"))
}

/// Triggers `dag` for `date` (NFL only), waits, returns the run id.
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

fn stored_json(path: &Path) -> Value {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("replay-") && name.ends_with(".json.gz"),
        "{name}"
    );
    let bytes = dags::lake::gunzip(&name, &std::fs::read(path).unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn odds_and_weather_runs_land_their_day_in_the_lake_once_per_date() {
    const ODDS: &str = "historical_odds_daily";
    const WEATHER: &str = "weather_daily";
    let env = TestEnv::start();
    for dag in [DAG, ODDS, WEATHER] {
        env.ok(&["dags", "unpause", dag]);
    }
    let dir = |kind: &str| {
        env.path("lake")
            .join(format!("raw/historical/nfl/{kind}/date={WEEK1}"))
    };
    run_nfl(&env, DAG, WEEK1);

    // Odds: the day's 24 hourly snapshots in one object, all valid.
    let run_id = run_nfl(&env, ODDS, WEEK1);
    let objects = raw_objects(&dir("odds"));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let snapshots = stored_json(&objects[0]);
    let snapshots = snapshots.as_array().unwrap();
    assert_eq!(snapshots.len(), 24);
    let events: usize = snapshots
        .iter()
        .map(|s| s["data"].as_array().unwrap().len())
        .sum();
    assert!(events > 0);
    let fetch = xcom_of(&env, ODDS, &run_id, "sport.fetch_odds_snapshots");
    assert_eq!(fetch["source"], "replay");
    assert_eq!(fetch["date"], WEEK1);
    assert!(
        objects[0].ends_with(fetch["key"].as_str().unwrap()),
        "{fetch}"
    );
    let validate = xcom_of(&env, ODDS, &run_id, "sport.validate");
    assert_eq!(validate["snapshots"], 24, "{validate}");
    assert_eq!(validate["events"], events, "{validate}");
    assert_eq!(validate["rejected"], 0, "{validate}");
    assert_eq!(validate["bookmakers"], 6, "{validate}");
    assert_eq!(
        xcom_of(&env, ODDS, &run_id, "transform.bronze_odds")["records"],
        validate["quotes"]
    );

    // Weather: one archive response per outdoor venue of the day's games.
    let run_id = run_nfl(&env, WEATHER, WEEK1);
    let venues = xcom_of(&env, WEATHER, &run_id, "select_outdoor_venues");
    let chosen = venues["sports"]["nfl"]["venues"].as_array().unwrap().len();
    assert!(chosen > 0, "{venues}");
    let objects = raw_objects(&dir("weather"));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let stored = stored_json(&objects[0]);
    assert_eq!(stored.as_array().unwrap().len(), chosen);
    let validate = xcom_of(&env, WEATHER, &run_id, "sport.validate");
    assert_eq!(validate["venues"], chosen, "{validate}");
    assert_eq!(validate["observations"], chosen * 48, "{validate}");
    assert_eq!(validate["rejected"], 0, "{validate}");
    assert!(!env.path("lake/raw/dead_letter").exists());

    // Re-runs of the same New York date replace each day's object.
    let later = format!("{WEEK1}T12:00:00-04:00");
    for (dag, kind) in [(ODDS, "odds"), (WEATHER, "weather")] {
        let before = raw_objects(&dir(kind));
        let content = stored_json(&before[0]);
        run_nfl(&env, dag, &later);
        let after = raw_objects(&dir(kind));
        assert_eq!(after.len(), 1, "{dag}: {after:?}");
        assert_ne!(
            after, before,
            "{dag}: the newer run's object replaced the older"
        );
        assert_eq!(
            stored_json(&after[0]),
            content,
            "{dag}: deterministic replay"
        );
    }
}
