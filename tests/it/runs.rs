//! DAG runs end to end through the real binary: outputs passed between
//! tasks, retries with backoff, timeouts, skips, sensors, pools, clearing and
//! backfills.

use crate::common::{stdout, TestEnv};

fn states(env: &TestEnv, dag: &str) -> Vec<String> {
    env.sql(&format!(
        "SELECT task_id || '=' || state FROM task_instances WHERE dag_id = '{dag}' ORDER BY task_id"
    ))
}

#[test]
fn a_run_passes_outputs_downstream_and_stores_logs_per_try() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_etl"]);
    let out = env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--logical-date",
        "2024-03-01",
        "--wait",
    ]);
    assert!(out.contains("finished: success"), "{out}");
    assert_eq!(
        states(&env, "example_etl"),
        [
            "extract=success",
            "load=success",
            "process.transform=success"
        ]
    );
    let total = env.scalar(
        "SELECT value->>'total' FROM xcom WHERE dag_id = 'example_etl' AND task_id = 'load'",
    );
    assert_eq!(total, "12", "1+2+3 doubled by the multiplier param");
    let run_id = "manual__2024-03-01T00:00:00+00:00";
    let logs = env.ok(&["tasks", "logs", "example_etl", run_id, "load"]);
    assert!(
        logs.contains("--- try 1 ---") && logs.contains("loaded total 12"),
        "{logs}"
    );
    let show = env.ok(&["runs", "show", "example_etl", run_id]);
    assert!(
        show.contains("success") && show.contains("process.transform"),
        "{show}"
    );
    let list = env.ok(&["runs", "list", "--dag", "example_etl", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v["total_entries"], 1);
    assert_eq!(v["dag_runs"][0]["state"], "success");
}

#[test]
fn run_conf_overrides_params() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_etl"]);
    env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--conf",
        r#"{"multiplier": 10}"#,
        "--wait",
    ]);
    let total = env.scalar(
        "SELECT value->>'total' FROM xcom WHERE dag_id = 'example_etl' AND task_id = 'load'",
    );
    assert_eq!(total, "60");
}

#[test]
fn failed_tries_are_retried_with_exponential_backoff_then_succeed() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_retries"]);
    let out = env.ok(&["dags", "trigger", "example_retries", "--wait"]);
    assert!(out.contains("finished: success"), "{out}");
    let tries = env.sql(
        "SELECT try_number || ':' || state FROM task_tries WHERE dag_id = 'example_retries' AND task_id = 'flaky'
         ORDER BY try_number",
    );
    assert_eq!(tries, ["1:failed", "2:failed", "3:success"]);
    // Backoff: 1 s after try 1, 2 s after try 2 (capped at 2 s).
    let gaps = env.sql(
        "SELECT EXTRACT(EPOCH FROM (lead(start_date) OVER w - end_date))::numeric(6,2)
         FROM task_tries WHERE dag_id = 'example_retries' AND task_id = 'flaky'
         WINDOW w AS (ORDER BY try_number) ORDER BY try_number LIMIT 2",
    );
    let gaps: Vec<f64> = gaps.iter().map(|g| g.parse().unwrap()).collect();
    assert!(gaps[0] >= 1.0 && gaps[0] < 5.0, "first backoff {gaps:?}");
    assert!(gaps[1] >= 2.0 && gaps[1] < 6.0, "second backoff {gaps:?}");
    let error =
        env.scalar("SELECT error FROM task_tries WHERE task_id = 'flaky' AND try_number = 1");
    assert!(error.contains("try 1 fails on purpose"), "{error}");
}

#[test]
fn a_task_that_fails_fatally_is_not_retried() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_retries"]);
    let out = env.run(&[
        "dags",
        "trigger",
        "example_retries",
        "--conf",
        r#"{"give_up": true}"#,
        "--wait",
    ]);
    assert!(
        stdout(&out).contains("finished: failed"),
        "{}",
        stdout(&out)
    );
    let tries = env.sql(
        "SELECT try_number || ':' || state FROM task_tries WHERE dag_id = 'example_retries' AND task_id = 'flaky'
         ORDER BY try_number",
    );
    assert_eq!(tries, ["1:failed"], "three retries left, none used");
    assert_eq!(
        states(&env, "example_retries"),
        ["after=upstream_failed", "flaky=failed"]
    );
}

#[test]
fn a_task_past_its_timeout_is_cancelled_and_fails_its_downstream() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_timeout"]);
    let out = env.run(&["dags", "trigger", "example_timeout", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed run exits 1: {}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("finished: failed"));
    assert_eq!(
        states(&env, "example_timeout"),
        ["after=upstream_failed", "on_failure=success", "slow=failed"]
    );
    let error = env.scalar("SELECT error FROM task_tries WHERE task_id = 'slow'");
    assert!(error.contains("timed out after 1s"), "{error}");
    let took: f64 = env
        .scalar("SELECT duration FROM task_tries WHERE task_id = 'slow'")
        .parse()
        .unwrap();
    assert!(
        took < 10.0,
        "cancelled near its 1 s timeout, not after 60 s: {took}"
    );
}

#[test]
fn skips_propagate_and_none_failed_still_runs() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_skip"]);
    let out = env.ok(&["dags", "trigger", "example_skip", "--wait"]);
    assert!(out.contains("finished: success"), "{out}");
    assert_eq!(
        states(&env, "example_skip"),
        [
            "branch=skipped",
            "child=skipped",
            "join=success",
            "other=success"
        ]
    );
}

#[test]
fn a_sensor_waits_without_holding_a_slot_until_its_condition_holds() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_sensor"]);
    let flag = env.path("ready");
    let conf = format!(r#"{{"path": "{}"}}"#, flag.display());
    let flag2 = flag.clone();
    let url = env.url.clone();
    // The file appears once the sensor has poked and found nothing, however
    // slow the machine: not after a fixed delay.
    let creator = std::thread::spawn(move || {
        let poked = || {
            let out = std::process::Command::new("psql")
                .args(["-X", "-At", &url, "-c"])
                .arg("SELECT count(*) FROM task_logs WHERE task_id = 'wait_for_file' AND message LIKE 'poking%'")
                .output()
                .expect("run psql");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<i64>()
                .unwrap_or(0)
                >= 1
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !poked() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        std::fs::write(flag2, b"go").unwrap();
    });
    let out = env.ok(&[
        "dags",
        "trigger",
        "example_sensor",
        "--conf",
        &conf,
        "--wait",
    ]);
    creator.join().unwrap();
    assert!(out.contains("finished: success"), "{out}");
    // Rescheduled pokes do not use up tries: the sensor succeeded on try 1.
    assert_eq!(
        env.scalar("SELECT try_number FROM task_instances WHERE task_id = 'wait_for_file'"),
        "1"
    );
    let pokes: i64 = env
        .scalar("SELECT count(*) FROM task_logs WHERE task_id = 'wait_for_file' AND message LIKE 'poking%'")
        .parse()
        .unwrap();
    assert!(pokes >= 2, "poked more than once: {pokes}");
}

#[test]
fn a_pool_with_one_slot_runs_its_tasks_one_at_a_time() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_pool"]);
    env.ok(&["dags", "trigger", "example_pool", "--wait"]);
    let overlaps = env.scalar(
        "SELECT count(*) FROM task_tries a JOIN task_tries b ON a.task_id < b.task_id
         WHERE a.dag_id = 'example_pool' AND b.dag_id = 'example_pool'
           AND a.start_date < b.end_date AND b.start_date < a.end_date",
    );
    assert_eq!(overlaps, "0");
}

#[test]
fn clearing_a_task_and_its_downstream_reruns_them() {
    let mut env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_etl"]);
    env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--logical-date",
        "2024-03-01",
        "--wait",
    ]);
    let run_id = "manual__2024-03-01T00:00:00+00:00";
    let out = env.ok(&[
        "tasks",
        "clear",
        "example_etl",
        run_id,
        "--task",
        "process.transform",
        "--downstream",
    ]);
    assert!(out.contains("cleared 2"), "{out}");
    assert_eq!(
        states(&env, "example_etl"),
        ["extract=success", "load=none", "process.transform=none"]
    );
    assert_eq!(env.scalar("SELECT state FROM dag_runs"), "running");
    let pid = env.spawn(&["scheduler"], &[]);
    env.wait_for("SELECT state FROM dag_runs", "success", 30);
    assert_eq!(
        env.scalar("SELECT try_number FROM task_instances WHERE task_id = 'load'"),
        "2",
        "load ran a second time"
    );
    assert_eq!(
        env.scalar("SELECT try_number FROM task_instances WHERE task_id = 'extract'"),
        "1"
    );
    let status = env.signal(pid, nix::sys::signal::Signal::SIGTERM);
    assert!(
        status.success(),
        "scheduler exits cleanly on SIGTERM: {status:?}"
    );
}

#[test]
fn backfill_creates_a_run_per_day_and_keeps_existing_ones() {
    let env = TestEnv::start();
    // An existing run on the 3rd: the DAG is paused, so it stays queued.
    env.ok(&[
        "dags",
        "trigger",
        "example_daily",
        "--logical-date",
        "2024-01-03",
    ]);
    let dry = env.ok(&[
        "backfill",
        "example_daily",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-07",
        "--dry-run",
    ]);
    assert!(dry.contains("would create 6 run(s)"), "{dry}");
    assert_eq!(
        env.scalar("SELECT count(*) FROM dag_runs"),
        "1",
        "dry run writes nothing"
    );

    let out = env.ok(&[
        "backfill",
        "example_daily",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-07",
        "--max-active-runs",
        "2",
        "--wait",
    ]);
    assert!(out.contains("6 run(s) created"), "{out}");
    // The run of the 3rd is queued (the DAG is paused): in flight, so
    // the backfill leaves it alone.
    assert!(out.contains("1 in flight left alone"), "{out}");
    assert!(out.contains("summary: 6 succeeded, 0 failed"), "{out}");
    assert_eq!(
        env.scalar("SELECT count(*) FROM dag_runs WHERE dag_id = 'example_daily'"),
        "7"
    );
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM dag_runs WHERE run_type = 'backfill' AND state = 'success'"
        ),
        "6"
    );
    assert_eq!(
        env.scalar(
            "SELECT min(logical_date)::date || '..' || max(logical_date)::date FROM dag_runs"
        ),
        "2024-01-01..2024-01-07"
    );
    // The backfill's max_active_runs = 2: never three of its runs at once.
    let most_at_once = env.scalar(
        "SELECT max(n) FROM (
            SELECT (SELECT count(*) FROM dag_runs b
                    WHERE b.run_type = 'backfill' AND b.start_date <= a.start_date AND b.end_date > a.start_date) AS n
            FROM dag_runs a WHERE a.run_type = 'backfill') t",
    );
    assert!(
        most_at_once.parse::<i64>().unwrap() <= 2,
        "{most_at_once} runs at once"
    );
    // The backfill is one record, completed once its runs finished.
    assert_eq!(
        env.scalar(
            "SELECT count(*) || ' ' || (completed_at IS NOT NULL) || ' ' || max_active_runs \
             FROM backfills GROUP BY completed_at, max_active_runs"
        ),
        "1 true 2"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM dag_runs WHERE backfill_id IS NOT NULL"),
        "6"
    );
    // Running it again has nothing to do, and says so.
    let again = env.fails(&[
        "backfill",
        "example_daily",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-07",
    ]);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn backfill_rerun_failed_clears_the_failed_tasks_of_failed_runs() {
    let env = TestEnv::start();
    env.ok(&[
        "dags",
        "trigger",
        "example_daily",
        "--logical-date",
        "2024-02-01",
    ]);
    env.sql("UPDATE dag_runs SET state = 'failed'");
    env.sql(
        "INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number)
         SELECT dag_id, run_id, t.id, t.state, 1 FROM dag_runs,
                (VALUES ('a', 'success'), ('b', 'failed')) AS t(id, state)",
    );
    let out = env.ok(&[
        "backfill",
        "example_daily",
        "--from",
        "2024-02-01",
        "--to",
        "2024-02-01",
        "--rerun-failed",
        "--wait",
    ]);
    assert!(out.contains("1 re-run"), "{out}");
    assert!(out.contains("summary: 1 succeeded"), "{out}");
    assert_eq!(
        env.scalar("SELECT try_number FROM task_instances WHERE task_id = 'b'"),
        "2"
    );
    assert_eq!(
        env.scalar("SELECT try_number FROM task_instances WHERE task_id = 'a'"),
        "1"
    );
}

#[test]
fn a_quality_gate_records_its_checks_and_an_error_stops_downstream() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_quality"]);
    let out = env.ok(&[
        "dags",
        "trigger",
        "example_quality",
        "--logical-date",
        "2024-03-01",
        "--wait",
    ]);
    assert!(out.contains("finished: success"), "{out}");
    let checks = |day: &str| {
        env.sql(&format!(
            "SELECT check_name || '=' || passed || '/' || coalesce(observed_value::text, '-')
             FROM check_results WHERE run_id = 'manual__{day}T00:00:00+00:00' ORDER BY id"
        ))
    };
    assert_eq!(
        checks("2024-03-01"),
        [
            "unique(id)=true/0",
            "range(score >= 0)=true/0",
            "not_null(note)=false/2",
            "row_count_vs_previous=true/4"
        ]
    );
    let show = env.ok(&[
        "runs",
        "show",
        "example_quality",
        "manual__2024-03-01T00:00:00+00:00",
    ]);
    assert!(
        show.contains("Quality checks (3 passed, 0 failed, 1 warn):"),
        "{show}"
    );

    // Five times the rows, one with a negative score: the range check fails
    // the gate, publish never runs, and the row count is compared with the
    // previous day's 4.
    let out = env.run(&[
        "dags",
        "trigger",
        "example_quality",
        "--logical-date",
        "2024-03-02",
        "--conf",
        r#"{"rows": 20, "bad_rows": 1}"#,
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        checks("2024-03-02"),
        [
            "unique(id)=true/0",
            "range(score >= 0)=false/1",
            "not_null(note)=false/10",
            "row_count_vs_previous=false/20"
        ]
    );
    assert_eq!(
        env.sql(
            "SELECT task_id || '=' || state FROM task_instances
             WHERE run_id = 'manual__2024-03-02T00:00:00+00:00' ORDER BY task_id"
        ),
        ["publish=upstream_failed", "quality_gate=failed"]
    );
    let error = env
        .scalar("SELECT error FROM task_tries WHERE run_id = 'manual__2024-03-02T00:00:00+00:00'");
    assert!(
        error.contains("quality gate failed: 1 error-level check(s) failed")
            && error.contains("range(score >= 0)")
            && error.contains("id=20"),
        "{error}"
    );
    let sample = env.scalar(
        "SELECT observed->'sample'->>0 FROM check_results
         WHERE run_id = 'manual__2024-03-02T00:00:00+00:00' AND check_name = 'range(score >= 0)'",
    );
    assert_eq!(sample, "id=20");
    let logs = env.ok(&[
        "tasks",
        "logs",
        "example_quality",
        "manual__2024-03-02T00:00:00+00:00",
        "quality_gate",
    ]);
    assert!(
        logs.contains(
            "quality check WARN: example.scores row_count_vs_previous [warn]: 20 rows vs 4"
        ),
        "{logs}"
    );
}
