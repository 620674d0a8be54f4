//! The CLI as a user meets it: listings, DAG shapes, and clear one-line
//! errors (exit code 2) that write nothing.

mod common;

use common::{stderr, TestEnv};

#[test]
fn dags_list_shows_betflows_dags_as_json() {
    let env = TestEnv::start();
    let out = env.ok(&["dags", "list", "--json"]);
    let dags: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let ids: Vec<&str> = dags
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dag_id"].as_str().unwrap())
        .collect();
    for id in [
        "historical_games_daily",
        "historical_odds_daily",
        "weather_daily",
        "gold_marts_nightly",
        "live_streams",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let table = env.ok(&["dags", "list"]);
    assert!(table.contains("historical_games_daily"));
}

#[test]
fn dags_show_prints_tasks_and_edges() {
    let env = TestEnv::start();
    let out = env.ok(&["dags", "show", "example_etl"]);
    assert!(out.contains("extract -> process.transform"), "{out}");
    assert!(out.contains("process.transform -> load"), "{out}");
    let odds = env.ok(&["dags", "show", "historical_odds_daily"]);
    assert!(odds.contains("sensor"), "{odds}");
    let streams = env.ok(&["dags", "show", "live_streams"]);
    assert!(streams.contains("Stream tasks"), "{streams}");
}

#[test]
fn bad_input_fails_with_one_line_and_exit_code_2_writing_nothing() {
    let env = TestEnv::start();
    env.ok(&["db", "migrate"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["dags", "trigger", "no_such_dag"],
            "unknown DAG `no_such_dag`",
        ),
        (&["dags", "show", "no_such_dag"], "unknown DAG"),
        (
            &[
                "dags",
                "trigger",
                "example_etl",
                "--logical-date",
                "2024-13-45",
            ],
            "bad date `2024-13-45`",
        ),
        (
            &["dags", "trigger", "example_etl", "--conf", "{not json"],
            "--conf is not valid JSON",
        ),
        (
            &["dags", "trigger", "example_etl", "--conf", "[1,2]"],
            "--conf must be a JSON object",
        ),
        (
            &[
                "backfill",
                "example_daily",
                "--from",
                "2024-01-07",
                "--to",
                "2024-01-01",
            ],
            "is after --to",
        ),
        (
            &[
                "backfill",
                "example_daily",
                "--from",
                "yesterday",
                "--to",
                "2024-01-01",
            ],
            "--from: bad date",
        ),
        (
            &[
                "backfill",
                "example_etl",
                "--from",
                "2024-01-01",
                "--to",
                "2024-01-02",
            ],
            "has no schedule",
        ),
        (
            &[
                "tasks",
                "run",
                "example_etl",
                "nope",
                "--date",
                "2024-01-01",
            ],
            "has no task `nope`",
        ),
        (
            &["runs", "list", "--state", "sideways"],
            "unknown state `sideways`",
        ),
        (
            &["tasks", "clear", "example_etl", "manual__nope"],
            "has no run `manual__nope`",
        ),
    ];
    for (args, expected) in cases {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "betflow {args:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "betflow {args:?}: expected {expected:?} in {err:?}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "one line for {args:?}: {err:?}"
        );
    }
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), "0");
}

#[test]
fn db_url_masks_the_password_unless_asked() {
    let env = TestEnv::start();
    let masked = env.ok(&["db", "url"]);
    assert!(masked.contains(":***@"), "{masked}");
    let shown = env.ok(&["db", "url", "--show-password"]);
    assert_eq!(shown.trim(), env.url);
    let status = env.ok(&["db", "status"]);
    assert!(status.contains("metadata"), "{status}");
}

#[test]
fn tasks_run_executes_one_task_without_recording_it() {
    let env = TestEnv::start();
    env.ok(&["db", "migrate"]);
    let out = env.ok(&[
        "tasks",
        "run",
        "example_etl",
        "extract",
        "--date",
        "2024-01-01",
    ]);
    assert!(out.contains("\"values\""), "{out}");
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), "0");
    assert_eq!(env.scalar("SELECT count(*) FROM task_instances"), "0");
}
