//! DAG versions through the binary: a DAG whose definition changes gets a
//! new version (a deployment switching the transform engine changes the
//! ingest DAGs' transform tasks), one that does not keeps its version, a
//! change back is a new version too (as in Airflow), and runs record the
//! version they were created under.

use crate::common::TestEnv;

fn latest(env: &TestEnv, dag: &str) -> String {
    env.scalar(&format!(
        "SELECT coalesce(max(version_number), 0) FROM dag_versions WHERE dag_id = '{dag}'"
    ))
}

#[test]
fn a_changed_definition_is_a_new_dag_version_and_runs_record_theirs() {
    let env = TestEnv::start();
    env.ok(&["dags", "list"]);
    assert_eq!(latest(&env, "weather_daily"), "1");
    assert_eq!(latest(&env, "example_etl"), "1");

    // The same binary and settings again: nothing changed.
    env.ok(&["dags", "list"]);
    assert_eq!(latest(&env, "weather_daily"), "1");

    // The Spark engine runs weather's transforms as other tasks.
    let out = env
        .cmd(&["dags", "list"])
        .env("BETFLOW_TRANSFORM_ENGINE", "spark")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(latest(&env, "weather_daily"), "2");
    assert_eq!(
        latest(&env, "example_etl"),
        "1",
        "an unchanged DAG keeps its version"
    );

    // Back to polars: the structure of version 1, recorded as version 3.
    env.ok(&["dags", "list"]);
    assert_eq!(latest(&env, "weather_daily"), "3");
    let same = env.scalar(
        "SELECT count(DISTINCT structure_hash) FROM dag_versions WHERE dag_id = 'weather_daily'",
    );
    assert_eq!(same, "2");

    env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--logical-date",
        "2024-04-01",
    ]);
    let version = env.scalar("SELECT dag_version FROM dag_runs WHERE dag_id = 'example_etl'");
    assert_eq!(version, "1");
}
