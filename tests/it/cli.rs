//! The CLI as a user meets it: listings, DAG shapes, and clear one-line
//! errors (exit code 2) that write nothing.

use crate::common::{stderr, TestEnv};

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
            "is after its end",
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
fn a_bad_setting_stops_every_command_naming_it() {
    let env = TestEnv::start();
    for (var, value) in [
        ("BETFLOW_SOURCES", "bogus"),
        ("BETFLOW_ODDS_SNAPSHOT_MINUTES", "3"),
        ("BETFLOW_PARALLELISM", "0"),
        ("BETFLOW_POLL_MS", "soon"),
        ("BETFLOW_LOAD_EXAMPLES", "maybe"),
        ("BETFLOW_ICEBERG_CATALOG", "hive"),
        ("BETFLOW_TRANSFORM_ENGINE", "emr"),
        ("BETFLOW_ODDS_WINDOW", "5 minutes"),
        ("BETFLOW_LIVE_PUBLISH", "sometimes"),
        ("BETFLOW_REPLAY_FROM", "yesterday"),
        ("BETFLOW_LIVE_GAMES_SECS", "1"),
        ("BETFLOW_FAIR_ANCHOR", "pinnacle=0"),
        ("BETFLOW_LOW_HOLD", "2"),
    ] {
        let out = env.cmd(&["dags", "list"]).env(var, value).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{var}={value}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains(var) && err.contains(value), "{err}");
    }
    // Kafka's settings count once there is a broker to use them with.
    let out = env
        .cmd(&["dags", "list"])
        .env("KAFKA_BROKERS", "127.0.0.1:9")
        .env("KAFKA_PARTITIONS", "zero")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KAFKA_PARTITIONS=\"zero\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn db_status_lists_each_owners_migrations_in_the_order_they_apply() {
    let env = TestEnv::start();
    env.ok(&["db", "migrate"]);
    let status = env.ok(&["db", "status"]);
    let owners: Vec<&str> = status
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let first = |owner: &str| owners.iter().position(|o| *o == owner);
    let last = |owner: &str| owners.iter().rposition(|o| *o == owner);
    assert!(last("orchestrator") < first("web"), "{status}");
    assert!(last("web") < first("serving"), "{status}");
    assert!(status.contains("20260101000002  applied  auth"), "{status}");
    assert!(
        status.contains("20260101000012  applied  game status history"),
        "{status}"
    );
    assert!(!status.contains("pending"), "{status}");
    // Every table of the three owners is there.
    for table in ["dag_runs", "users", "serving.odds_latest"] {
        assert_eq!(
            env.scalar(&format!("SELECT to_regclass('{table}') IS NOT NULL")),
            "t",
            "{table}"
        );
    }
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

/// Check results of a run, as a gate task would store them: try 1 of
/// `load` (superseded) and try 2 (shown), passed, failed and warned.
const CHECK_ROWS: &str = "INSERT INTO check_results (dag_id, run_id, task_id, try_number,
        logical_date, asset, check_name, severity, passed, observed_value, observed, detail)
    SELECT r.dag_id, r.run_id, v.task_id, v.try_number, r.logical_date, v.asset, v.check_name,
        v.severity, v.passed, v.observed_value, v.observed::jsonb, v.detail
    FROM dag_runs r, (VALUES
        ('load', 1, 'gold.totals', 'unique(id)', 'error', false, 2.0, '{}', 'superseded by try 2'),
        ('load', 2, 'gold.totals', 'unique(id)', 'error', true, 0.0, '{\"sample\": []}',
            'all 3 rows have distinct (id)'),
        ('load', 2, 'gold.totals', 'range(total >= 0)', 'error', false, 1.0,
            '{\"sample\": [\"id=3\"]}', '1 of 3 rows with total not >= 0; e.g. id=3'),
        ('load', 2, 'gold.totals', 'row_count_vs_previous', 'warn', false, 3.0, '{}',
            '3 rows vs 30 in the previous observation (x0.10; allowed x0.5 to x2)')
    ) AS v(task_id, try_number, asset, check_name, severity, passed, observed_value, observed, detail)
    WHERE r.dag_id = 'example_etl'";

#[test]
fn runs_show_lists_the_quality_checks_of_the_latest_try() {
    let env = TestEnv::start();
    env.ok(&["db", "migrate"]);
    let run_id = "manual__2024-03-01T00:00:00+00:00";
    env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--logical-date",
        "2024-03-01",
    ]);
    let bare = env.ok(&["runs", "show", "example_etl", run_id]);
    assert!(!bare.contains("Quality checks"), "{bare}");
    env.sql(CHECK_ROWS);

    let out = env.ok(&["runs", "show", "example_etl", run_id]);
    let section = out
        .split("Quality checks (1 passed, 1 failed, 1 warn):")
        .nth(1)
        .unwrap_or_else(|| panic!("no quality section in {out}"));
    let header = section.lines().nth(1).unwrap_or_default();
    for column in ["table", "check", "severity", "result", "observed", "detail"] {
        assert!(header.contains(column), "{header}");
    }
    let line = |check: &str| {
        section
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("{check} missing from {section}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        line("range(total").starts_with("gold.totals range(total >= 0) error failed 1 1 of 3 rows"),
        "{section}"
    );
    assert!(
        line("unique(id)").contains("error passed 0 all 3 rows"),
        "{section}"
    );
    assert!(
        line("row_count_vs_previous").contains("warn warn 3 3 rows vs 30"),
        "{section}"
    );
    assert!(!out.contains("superseded"), "{out}");

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["runs", "show", "example_etl", run_id, "--json"]))
            .expect("valid JSON");
    let checks = json["quality_checks"].as_array().expect("quality_checks");
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(checks
        .iter()
        .all(|c| c["try_number"] == 2 && c["task_id"] == "load"));
    let range = checks
        .iter()
        .find(|c| c["check_name"] == "range(total >= 0)")
        .unwrap();
    assert_eq!(range["passed"], false);
    assert_eq!(range["severity"], "error");
    assert_eq!(range["asset"], "gold.totals");
    assert_eq!(range["observed_value"], 1.0);
    assert_eq!(range["observed"]["sample"][0], "id=3");
}

#[test]
fn the_clis_dag_actions_are_in_the_audit_trail() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_etl"]);
    env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--logical-date",
        "2024-04-01",
    ]);
    env.ok(&["dags", "pause", "example_etl"]);
    let run = env.scalar("SELECT run_id FROM dag_runs WHERE dag_id = 'example_etl'");
    env.ok(&["tasks", "clear", "example_etl", &run, "--task", "extract"]);
    env.ok(&[
        "backfill",
        "example_daily",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-03",
    ]);
    // A dry run changes nothing and is not recorded.
    env.ok(&[
        "backfill",
        "example_daily",
        "--from",
        "2024-02-01",
        "--to",
        "2024-02-02",
        "--dry-run",
    ]);
    // As the binary finds it: $USER, $LOGNAME, else the user database.
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            let out = std::process::Command::new("id")
                .arg("-un")
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        });
    assert_eq!(
        env.sql(
            "SELECT event || ' ' || dag_id || ' ' || coalesce(run_id, '-') || ' ' || coalesce(task_id, '-')
             || ' ' || owner FROM event_logs ORDER BY id"
        ),
        [
            format!("unpause example_etl - - cli:{login}"),
            format!("trigger example_etl {run} - cli:{login}"),
            format!("pause example_etl - - cli:{login}"),
            format!("clear example_etl {run} extract cli:{login}"),
            format!("backfill example_daily - - cli:{login}"),
        ]
    );
}
