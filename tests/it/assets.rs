//! Data-aware scheduling through a real `betflow up`: producers' successful
//! runs record asset updates per day, the consumer runs once both of its
//! assets are updated for the same day, paused consumers keep their queue,
//! an update posted through the API counts like a task's, and the assets,
//! events and a run's triggering events read back in Airflow's shapes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{assert_problem, start, Api};
use crate::common::TestEnv;

const NUMBERS: &str = "example_asset_numbers";
const LETTERS: &str = "example_asset_letters";
const CONSUMER: &str = "example_asset_consumer";

/// Trigger `dag` for `day` and wait for its success.
fn produce(op: &Api, dag: &str, day: &str) -> String {
    let trig = op.post(
        &format!("/dags/{dag}/dagRuns"),
        json!({"logical_date": format!("{day}T00:00:00Z")}),
    );
    assert_eq!(trig.status, 200, "{}", trig.body);
    let run_id = trig.body["dag_run_id"].as_str().unwrap().to_owned();
    op.wait_run(dag, &run_id, "success", 30);
    run_id
}

/// The consumer's asset-triggered runs, oldest first, once there are `n`
/// and all succeeded.
fn consumer_runs(op: &Api, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = op.ok(&format!(
            "/dags/{CONSUMER}/dagRuns?run_type=asset_triggered&order_by=id"
        ));
        let runs = runs["dag_runs"].as_array().unwrap().clone();
        if runs.len() == n && runs.iter().all(|r| r["state"] == "success") {
            return runs;
        }
        assert!(
            runs.len() <= n,
            "more consumer runs than updates allow: {runs:?}"
        );
        assert!(
            Instant::now() < deadline,
            "wanted {n} successful consumer runs, have {runs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn queued(env: &TestEnv) -> String {
    env.scalar(&format!(
        "SELECT count(*) FROM asset_queue WHERE target_dag_id = '{CONSUMER}'"
    ))
}

#[test]
fn a_dag_scheduled_on_two_assets_runs_once_both_are_updated_for_the_same_day() {
    let (env, op, viewer, _base) = start();
    for dag in [NUMBERS, LETTERS, CONSUMER] {
        let r = op.patch(&format!("/dags/{dag}"), json!({"is_paused": false}));
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // Numbers for 1 May, letters for 2 May: no day has both.
    let numbers_may1 = produce(&op, NUMBERS, "2024-05-01");
    produce(&op, LETTERS, "2024-05-02");
    assert_eq!(queued(&env), "2");
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM dag_runs WHERE dag_id = '{CONSUMER}'"
        )),
        "0"
    );

    // Letters for 1 May completes that day: one run, from those two updates.
    let letters_may1 = produce(&op, LETTERS, "2024-05-01");
    let runs = consumer_runs(&op, 1);
    let run = &runs[0];
    let run_id = run["dag_run_id"].as_str().unwrap();
    assert!(run_id.starts_with("asset_triggered__"), "{run}");
    assert_eq!(run["run_type"], "asset_triggered");
    assert_eq!(run["triggered_by"], "asset");
    assert_eq!(run["partition_key"], "2024-05-01");
    assert_eq!(
        queued(&env),
        "1",
        "2 May's letters still wait for its numbers"
    );

    // The run's triggering events, from the API and from the task's context.
    let upstream = viewer.ok(&format!(
        "/dags/{CONSUMER}/dagRuns/{run_id}/upstreamAssetEvents"
    ));
    assert_eq!(upstream["total_entries"], 2, "{upstream}");
    let mut sources: Vec<(String, String, String)> = upstream["asset_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["uri"].as_str().unwrap().to_owned(),
                e["source_run_id"].as_str().unwrap().to_owned(),
                e["partition_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            (
                "example://letters".into(),
                letters_may1.clone(),
                "2024-05-01".into()
            ),
            (
                "example://numbers".into(),
                numbers_may1.clone(),
                "2024-05-01".into()
            ),
        ]
    );
    let seen = env.scalar(&format!(
        "SELECT value::text FROM xcom WHERE dag_id = '{CONSUMER}' AND run_id = '{run_id}' AND task_id = 'combine'"
    ));
    let seen: Value = serde_json::from_str(&seen).unwrap();
    assert_eq!(seen["triggered_by"].as_array().unwrap().len(), 2, "{seen}");
    // The run covers its sources' data: 1 May, start to end.
    assert_eq!(run["data_interval_start"], "2024-05-01T00:00:00Z", "{run}");

    // Assets list who writes, reads and is scheduled on each.
    let assets = viewer.ok("/assets?uri_pattern=example://&order_by=uri");
    assert_eq!(assets["total_entries"], 2, "{assets}");
    let numbers = &assets["assets"][1];
    assert_eq!(numbers["uri"], "example://numbers");
    assert_eq!(numbers["name"], "example.numbers");
    assert_eq!(numbers["group"], "example");
    assert_eq!(numbers["producing_tasks"][0]["dag_id"], NUMBERS);
    assert_eq!(numbers["producing_tasks"][0]["task_id"], "write");
    assert_eq!(numbers["consuming_tasks"][0]["dag_id"], CONSUMER);
    assert_eq!(numbers["scheduled_dags"][0]["dag_id"], CONSUMER);
    assert!(numbers["last_asset_event"]["id"].is_i64(), "{numbers}");
    let numbers_id = numbers["id"].as_i64().unwrap();
    let one = viewer.ok(&format!("/assets/{numbers_id}"));
    assert_eq!(one["uri"], "example://numbers");
    assert_problem(&viewer.get("/assets/999999"), 404, "unknown asset");
    assert_problem(&viewer.get("/assets?order_by=weight"), 400, "bad order");

    // Its events, each with the runs it started.
    let events = viewer.ok(&format!("/assets/events?asset_id={numbers_id}"));
    assert_eq!(events["total_entries"], 1, "{events}");
    let event = &events["asset_events"][0];
    assert_eq!(event["source_dag_id"], NUMBERS);
    assert_eq!(event["source_task_id"], "write");
    assert_eq!(event["source_map_index"], -1);
    assert_eq!(event["created_dagruns"][0]["run_id"], run_id);
    assert_eq!(event["created_dagruns"][0]["partition_key"], "2024-05-01");
    // Numbers came first: letters' update completed the condition.
    assert_eq!(event["created_dagruns"][0]["triggering"], false);

    // An update posted by an operator counts like a task's: numbers for
    // 2 May completes that day.
    assert_problem(
        &viewer.post(
            "/assets/events",
            json!({"asset_id": numbers_id, "partition_key": "2024-05-02"}),
        ),
        403,
        "viewers cannot post updates",
    );
    assert_problem(
        &op.post("/assets/events", json!({"asset_id": 999999})),
        404,
        "unknown asset",
    );
    let posted = op.post(
        "/assets/events",
        json!({"asset_id": numbers_id, "partition_key": "2024-05-02", "extra": {"note": "loaded by hand"}}),
    );
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.body["extra"]["note"], "loaded by hand");
    assert_eq!(posted.body["partition_key"], "2024-05-02");
    let runs = consumer_runs(&op, 2);
    let second = runs[1]["dag_run_id"].as_str().unwrap();
    let upstream = viewer.ok(&format!(
        "/dags/{CONSUMER}/dagRuns/{second}/upstreamAssetEvents"
    ));
    assert_eq!(upstream["total_entries"], 2, "{upstream}");
    assert_eq!(queued(&env), "0");

    // A paused consumer keeps its updates and runs on them once unpaused.
    let r = op.patch(&format!("/dags/{CONSUMER}"), json!({"is_paused": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    produce(&op, NUMBERS, "2024-05-03");
    produce(&op, LETTERS, "2024-05-03");
    let waiting = viewer.ok(&format!("/dags/{CONSUMER}/assets/queuedEvents"));
    assert_eq!(waiting["total_entries"], 2, "{waiting}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM dag_runs WHERE dag_id = '{CONSUMER}'"
        )),
        "2",
        "no run while paused"
    );
    let r = op.patch(&format!("/dags/{CONSUMER}"), json!({"is_paused": false}));
    assert_eq!(r.status, 200, "{}", r.body);
    consumer_runs(&op, 3);
    assert_eq!(queued(&env), "0");

    // A run not triggered by assets has no upstream events; an unknown run is a 404.
    let none = viewer.ok(&format!(
        "/dags/{NUMBERS}/dagRuns/{numbers_may1}/upstreamAssetEvents"
    ));
    assert_eq!(none["total_entries"], 0);
    assert_problem(
        &viewer.get(&format!(
            "/dags/{CONSUMER}/dagRuns/nope/upstreamAssetEvents"
        )),
        404,
        "unknown run",
    );
    let aliases = viewer.ok("/assets/aliases");
    assert_eq!(aliases["total_entries"], 0);
}

#[test]
fn the_assets_pages_show_lineage_waiting_updates_and_the_runs_they_started() {
    let mut env = TestEnv::start();
    let viewer = crate::common::viewer::Viewer::log_in(&mut env);
    let empty = viewer.get("/assets?q=no-such-asset");
    assert!(empty.contains("No asset's URI contains"), "{empty}");
    for dag in [NUMBERS, LETTERS, CONSUMER] {
        env.ok(&["dags", "unpause", dag]);
    }
    env.ok(&["dags", "trigger", NUMBERS, "--logical-date", "2024-05-01"]);
    env.ok(&["dags", "trigger", LETTERS, "--logical-date", "2024-05-01"]);
    env.ok(&["dags", "trigger", LETTERS, "--logical-date", "2024-05-02"]);
    env.wait_for(
        &format!("SELECT count(*) FROM dag_runs WHERE dag_id = '{CONSUMER}' AND state = 'success'"),
        "1",
        30,
    );
    env.wait_for(
        &format!("SELECT count(*) FROM asset_queue WHERE target_dag_id = '{CONSUMER}'"),
        "1",
        30,
    );

    let list = viewer.get("/assets");
    assert!(
        list.contains("example.numbers") && list.contains("example://letters"),
        "{list}"
    );
    let letters = env.scalar("SELECT id FROM assets WHERE uri = 'example://letters'");
    let page = viewer.get(&format!("/assets/{letters}"));
    assert!(page.contains("id=\"lineage\""), "{page}");
    assert!(
        page.contains("example_asset_letters › write"),
        "lineage names the producer"
    );
    assert!(
        page.contains("2024-05-02"),
        "the update waiting for the consumer: {page}"
    );
    assert!(
        page.contains("asset_triggered__"),
        "the run the 1 May update started"
    );

    let dag = viewer.get(&format!("/dags/{CONSUMER}"));
    assert!(dag.contains("id=\"asset-schedule\""), "{dag}");
    assert!(
        dag.contains("example.numbers &#38; example.letters"),
        "{dag}"
    );
    let run = env.scalar(&format!(
        "SELECT run_id FROM dag_runs WHERE dag_id = '{CONSUMER}'"
    ));
    let run_page = viewer.get(&format!(
        "/dags/{CONSUMER}/runs/{}",
        run.replace(':', "%3A").replace('+', "%2B")
    ));
    assert!(run_page.contains("Triggered by"), "{run_page}");
    assert!(
        run_page.contains("manual__2024-05-01T00:00:00+00:00"),
        "{run_page}"
    );
}
