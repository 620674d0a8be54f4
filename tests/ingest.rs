//! `historical_games_daily` through the real binary, offline: the replay
//! source's scoreboard lands in the local raw lake under `$BETFLOW_HOME/lake`,
//! validate reports its counts as XCom, and re-running a sports day keeps
//! exactly one raw object for that date.

mod common;

use std::path::{Path, PathBuf};

use common::TestEnv;
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
    let bytes = dags::lake::raw::gunzip(&name, &gz).unwrap();
    let payload: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(payload["events"].as_array().unwrap().len(), EVENTS);

    let fetch = xcom(&env, &run_id, "nfl.fetch_scoreboard");
    assert_eq!(fetch["source"], "replay");
    assert_eq!(fetch["date"], DAY);
    assert_eq!(fetch["bytes"], bytes.len());
    assert!(
        objects[0].ends_with(fetch["key"].as_str().unwrap()),
        "{fetch}"
    );
    let validate = xcom(&env, &run_id, "nfl.validate");
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
    // Unselected sports skipped, and wrote nothing.
    assert_eq!(
        env.scalar(&format!(
            "SELECT state FROM task_instances WHERE dag_id = '{DAG}' AND task_id = 'nba.fetch_scoreboard'"
        )),
        "skipped"
    );
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

    // One task, in-process and offline, the way an operator tests it.
    let out = env.ok(&["tasks", "run", DAG, "nfl.fetch_scoreboard", "--date", DAY]);
    let start = out.find('{').expect("JSON output");
    let fetched: Value = serde_json::from_str(&out[start..]).unwrap();
    assert_eq!(fetched["sport"], "nfl");
    assert_eq!(fetched["date"], DAY);
    assert_eq!(fetched["bytes"], bytes.len(), "deterministic replay");
    assert_eq!(raw_objects(&raw_dir(&env)).len(), 1);
}
