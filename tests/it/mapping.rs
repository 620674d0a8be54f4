//! Dynamic task mapping through a real `betflow up`: a task mapped over an
//! upstream's list or a param runs once per item, its readers get the
//! instances' outputs as one list, an empty list skips it, a value that is
//! not a list or is longer than the cap fails it with the reason in its
//! log, and the API and the pages show each instance.

use serde_json::{json, Value};

use crate::api::{assert_problem, Api};
use crate::common::viewer::Viewer;
use crate::common::TestEnv;

const DAG: &str = "example_dynamic_mapping";

fn trigger(op: &Api, conf: Value) -> String {
    let r = op.post(&format!("/dags/{DAG}/dagRuns"), json!({ "conf": conf }));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["dag_run_id"].as_str().unwrap().to_owned()
}

fn output(env: &TestEnv, run_id: &str, task: &str) -> String {
    env.scalar(&format!(
        "SELECT value::text FROM xcom WHERE dag_id = '{DAG}' AND run_id = '{run_id}' AND task_id = '{task}'"
    ))
}

/// `task`'s instances in `run_id` as `map_index:state`, by map index.
fn instances(env: &TestEnv, run_id: &str, task: &str) -> String {
    env.scalar(&format!(
        "SELECT string_agg(map_index || ':' || state, ',' ORDER BY map_index) FROM task_instances
         WHERE dag_id = '{DAG}' AND run_id = '{run_id}' AND task_id = '{task}'"
    ))
}

#[test]
fn a_mapped_task_runs_once_per_item_and_its_reader_gets_every_output() {
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    env.create_user("olga", "operator", "operator-pass");
    let op = Api::new(viewer.base(), Some(env.token("olga")));
    let r = op.patch(&format!("/dags/{DAG}"), json!({"is_paused": false}));
    assert_eq!(r.status, 200, "{}", r.body);

    // Defaults: three numbers, and every sport (nfl, ncaaf, nba, nhl).
    let run = trigger(&op, json!({}));
    op.wait_run(DAG, &run, "success", 60);
    assert_eq!(
        instances(&env, &run, "double"),
        "0:success,1:success,2:success"
    );
    assert_eq!(output(&env, &run, "total"), r#"{"total": 12}"#);
    assert_eq!(
        instances(&env, &run, "fetch_sport"),
        "0:success,1:success,2:success,3:success"
    );
    // Each instance finds as many games as its sport's key has letters.
    assert_eq!(output(&env, &run, "summary"), r#"{"total": 14}"#);

    // The API lists the instances and serves each, with its log.
    let base = format!("/dags/{DAG}/dagRuns/{run}/taskInstances");
    let listed = op.ok(&format!("{base}/fetch_sport/listMapped?limit=2&offset=1"));
    assert_eq!(listed["total_entries"], 4, "{listed}");
    let indexes: Vec<i64> = listed["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["map_index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2]);
    let one = op.ok(&format!("{base}/double/1"));
    assert_eq!(one["map_index"], 1, "{one}");
    assert_eq!(one["state"], "success", "{one}");
    let log = op.ok(&format!("{base}/double/logs/1?map_index=1"));
    assert!(
        log.to_string().contains("instance 1 doubles 2"),
        "the log of [1]: {log}"
    );
    assert_problem(&op.get(&format!("{base}/double/7")), 404, "no instance 7");
    // Setting a mapped task's state by hand reaches every instance.
    let dry = op.patch(
        &format!("{base}/double/dry_run"),
        json!({"new_state": "failed"}),
    );
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["total_entries"], 3, "{}", dry.body);
    assert_problem(
        &op.get(&format!("{base}/total/listMapped")),
        404,
        "total is not mapped",
    );

    // The CLI names instances and prints one instance's log.
    let shown = env.ok(&["runs", "show", DAG, &run]);
    assert!(shown.contains("double [2]"), "{shown}");
    let logs = env.ok(&["tasks", "logs", DAG, &run, "double", "--map-index", "1"]);
    assert!(logs.contains("--- [1] try 1 ---"), "{logs}");
    assert!(logs.contains("instance 1 doubles 2"), "{logs}");
    assert!(!logs.contains("instance 0"), "{logs}");

    // Cleared, a mapped task is expanded again over its list as it is
    // then (here its upstream's output, rewritten), each index going on
    // from the tries it had.
    env.sql(&format!(
        "UPDATE xcom SET value = '[10, 20, 30, 40, 50]'
         WHERE dag_id = '{DAG}' AND run_id = '{run}' AND task_id = 'make_numbers'"
    ));
    let cleared = op.post(
        &format!("/dags/{DAG}/clearTaskInstances"),
        json!({"dry_run": false, "dag_run_id": run, "task_ids": ["double"],
               "include_downstream": true, "only_failed": false}),
    );
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    op.wait_run(DAG, &run, "success", 60);
    assert_eq!(
        env.scalar(&format!(
            "SELECT string_agg(map_index || ':' || try_number || ':' || state, ',' ORDER BY map_index)
             FROM task_instances WHERE dag_id = '{DAG}' AND run_id = '{run}' AND task_id = 'double'"
        )),
        "0:2:success,1:2:success,2:2:success,3:1:success,4:1:success"
    );
    assert_eq!(output(&env, &run, "total"), r#"{"total": 300}"#);

    // The pages: the run lists each instance, the task page shows one
    // instance with its item and links to the others.
    let run_page = viewer.get(&format!("/dags/{DAG}/runs/{run}"));
    assert!(run_page.contains("[2]"), "the run page lists double [2]");
    let task_page = viewer.get(&format!(
        "/dags/{DAG}/runs/{run}/tasks/fetch_sport?map_index=3"
    ));
    assert!(task_page.contains(r#"id="mapped""#), "the instances table");
    assert!(task_page.contains("param sports"), "what it maps over");
    assert!(task_page.contains("&#34;nhl&#34;") || task_page.contains("\"nhl\""));
    assert!(task_page.contains("fetching nhl"), "the log of [3]");
    assert!(!task_page.contains("fetching nba"), "not the log of [0]");
    let grid = viewer.get(&format!("/dags/{DAG}"));
    assert!(grid.contains("double [ ]"), "the grid marks mapped tasks");
}

#[test]
fn an_empty_list_skips_and_a_bad_one_fails_with_its_reason() {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("olga", "operator", "operator-pass");
    let op = Api::new(&base, Some(env.token("olga")));
    let r = op.patch(&format!("/dags/{DAG}"), json!({"is_paused": false}));
    assert_eq!(r.status, 200, "{}", r.body);

    // No numbers: `double` is skipped, and so is `total` after it.
    let empty = trigger(&op, json!({"count": 0, "sports": ["nba"]}));
    op.wait_run(DAG, &empty, "success", 60);
    assert_eq!(instances(&env, &empty, "double"), "-1:skipped");
    assert_eq!(instances(&env, &empty, "total"), "-1:skipped");
    assert_eq!(instances(&env, &empty, "fetch_sport"), "0:success");

    // A string where a list belongs, and a list over the cap of 8: the
    // task fails without running, its log says why, the run fails.
    for (conf, reason) in [
        (json!({"sports": "nba"}), "is not a list but a string"),
        (
            json!({"sports": ["nba", "nba", "nba", "nba", "nba", "nba", "nba", "nba", "nba"]}),
            "has 9 items to map over, more than the task's max_map_length of 8",
        ),
    ] {
        let run = trigger(&op, conf);
        op.wait_run(DAG, &run, "failed", 60);
        assert_eq!(instances(&env, &run, "fetch_sport"), "-1:failed");
        assert_eq!(instances(&env, &run, "summary"), "-1:upstream_failed");
        let logged = env.scalar(&format!(
            "SELECT message FROM task_logs WHERE dag_id = '{DAG}' AND run_id = '{run}'
               AND task_id = 'fetch_sport'"
        ));
        assert!(logged.contains(reason), "{logged}");
        // The numbers side of the DAG is not held up by it.
        assert_eq!(output(&env, &run, "total"), r#"{"total": 12}"#);
    }
}

#[test]
fn a_mapped_task_group_runs_each_items_chain_on_its_own() {
    const GROUP_DAG: &str = "example_mapped_task_group";
    let mut env = TestEnv::start();
    let viewer = Viewer::log_in(&mut env);
    env.create_user("olga", "operator", "operator-pass");
    let op = Api::new(viewer.base(), Some(env.token("olga")));
    let r = op.patch(&format!("/dags/{GROUP_DAG}"), json!({"is_paused": false}));
    assert_eq!(r.status, 200, "{}", r.body);

    // mlb is no sport of ours: its fetch fails, and only its score waits
    // in vain; nfl's and nba's chains finish, and `report` (all_done) reads
    // the scores there are.
    let r = op.post(
        &format!("/dags/{GROUP_DAG}/dagRuns"),
        json!({"conf": {"sports": ["nfl", "mlb", "nba"]}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let run = r.body["dag_run_id"].as_str().unwrap().to_owned();
    op.wait_run(GROUP_DAG, &run, "success", 60);
    let states = |task: &str| -> String {
        env.scalar(&format!(
            "SELECT string_agg(map_index || ':' || state, ',' ORDER BY map_index) FROM task_instances
             WHERE dag_id = '{GROUP_DAG}' AND run_id = '{run}' AND task_id = '{task}'"
        ))
    };
    assert_eq!(states("per_sport.fetch"), "0:success,1:failed,2:success");
    assert_eq!(
        states("per_sport.score"),
        "0:success,1:upstream_failed,2:success"
    );
    assert_eq!(
        env.scalar(&format!(
            "SELECT value #>> '{{}}' FROM xcom
             WHERE dag_id = '{GROUP_DAG}' AND run_id = '{run}' AND task_id = 'report'"
        )),
        "nfl: 3 games; nba: 3 games"
    );

    // The API lists each instance of the group's tasks.
    let base = format!("/dags/{GROUP_DAG}/dagRuns/{run}/taskInstances");
    let listed = op.ok(&format!("{base}/per_sport.score/listMapped"));
    assert_eq!(listed["total_entries"], 3, "{listed}");
    let score = op.ok(&format!("{base}/per_sport.score/2"));
    assert_eq!(score["state"], "success", "{score}");
    let log = op.ok(&format!("{base}/per_sport.score/logs/1?map_index=2"));
    assert!(
        log.to_string()
            .contains("scoring nba (3 games) as instance 2"),
        "the log of [2]: {log}"
    );

    // The task page says the instances follow the group's.
    let page = viewer.get(&format!(
        "/dags/{GROUP_DAG}/runs/{run}/tasks/per_sport.score?map_index=1"
    ));
    assert!(page.contains("mapped group per_sport"), "what it maps over");
    assert!(page.contains("upstream_failed"), "the state of [1]");

    // A task that reads its group's instance cannot run alone.
    let err = env.fails(&[
        "tasks",
        "run",
        GROUP_DAG,
        "per_sport.score",
        "--date",
        "2025-01-01",
        "--map-index",
        "0",
    ]);
    assert!(err.contains("instance of the same index"), "{err}");
}
