//! A deployment on AWS, through the real binary: the raw lake in S3 and the
//! Iceberg tables in the Glue Data Catalog (`BETFLOW_ICEBERG_CATALOG=glue`),
//! both served by moto on loopback; another engine (pyiceberg's
//! `GlueCatalog`) finds the tables the nightly DAG registered.

use std::process::Output;

use crate::common::TestEnv;
use crate::support::MotoServer;
use dags::lake::{S3Config, S3Store};
use serde_json::Value;

const BUCKET: &str = "betflow-glue-lake";

/// `betflow dags trigger historical_games_daily` for the NFL games of
/// `date` with `extra` in the environment.
fn trigger_games(env: &TestEnv, date: &str, extra: &[(&str, &str)]) -> Output {
    let mut cmd = env.cmd(&[
        "dags",
        "trigger",
        "historical_games_daily",
        "--logical-date",
        date,
        "--conf",
        r#"{"sports":["nfl"]}"#,
        "--wait",
    ]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("run betflow")
}

fn aws_env(moto: &MotoServer) -> Vec<(&'static str, String)> {
    vec![
        ("BETFLOW_S3_BUCKET", BUCKET.to_owned()),
        ("BETFLOW_S3_ENDPOINT", moto.endpoint.clone()),
        ("BETFLOW_S3_PATH_STYLE", "true".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "betflow-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "betflow-test-secret".to_owned()),
        ("BETFLOW_GLUE_ENDPOINT", moto.endpoint.clone()),
        ("BETFLOW_ICEBERG_CATALOG", "glue".to_owned()),
    ]
}

fn create_bucket(moto: &MotoServer) {
    let s3 = S3Config {
        endpoint: Some(moto.endpoint.clone()),
        region: "us-east-1".to_owned(),
        bucket: BUCKET.to_owned(),
        path_style: true,
        access_key_id: "betflow-test".to_owned(),
        secret_access_key: "betflow-test-secret".to_owned(),
        session_token: None,
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(S3Store::new(&s3).expect("S3 client").ensure_bucket())
        .expect("bucket");
}

/// Rows and run id of the current snapshot of each table, as pyiceberg's
/// Glue catalog sees them.
fn pyiceberg_glue(endpoint: &str, tables: &[&str]) -> Value {
    let script = r#"
import json, sys
from pyiceberg.catalog.glue import GlueCatalog
endpoint = sys.argv[1]
cat = GlueCatalog("betflow", **{
    "glue.endpoint": endpoint, "glue.region": "us-east-1",
    "glue.access-key-id": "betflow-test", "glue.secret-access-key": "betflow-test-secret",
    "s3.endpoint": endpoint, "s3.region": "us-east-1", "s3.access-key-id": "betflow-test",
    "s3.secret-access-key": "betflow-test-secret", "s3.force-virtual-addressing": "false"})
out = {}
for name in sys.argv[2:]:
    t = cat.load_table(name)
    out[name] = {"rows": t.scan().to_arrow().num_rows, "location": t.location(),
                 "run_id": t.current_snapshot().summary.get("betflow.run-id")}
print(json.dumps(out))
"#;
    let mut args: Vec<&str> = vec![endpoint];
    args.extend_from_slice(tables);
    crate::common::python_json(script, &args)
}

#[test]
fn with_the_glue_catalog_the_nightly_dag_registers_its_tables_in_glue() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", "historical_games_daily"]);
    let moto = MotoServer::start();
    create_bucket(&moto);
    let aws = aws_env(&moto);
    let vars: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // NFL week 1 of 2024, a Sunday slate in the replay captures.
    let out = trigger_games(&env, "2024-09-08", &vars);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("finished: success"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id: String = env.scalar(
        "SELECT run_id FROM dag_runs WHERE dag_id = 'historical_games_daily' AND state = 'success'",
    );
    let seen = pyiceberg_glue(&moto.endpoint, &["bronze.games", "silver.games"]);
    for table in ["bronze.games", "silver.games"] {
        let t = &seen[table];
        assert!(t["rows"].as_u64().unwrap_or(0) > 0, "{table}: {t}");
        assert_eq!(t["run_id"], run_id.as_str(), "{table}: {t}");
        assert!(
            t["location"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("s3://{BUCKET}/warehouse/")),
            "{table}: {t}"
        );
    }
    // Nothing went to the SQL catalog.
    let sql_tables: String = env.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'iceberg_tables'",
    );
    if sql_tables == "1" {
        assert_eq!(env.scalar("SELECT count(*) FROM iceberg_tables"), "0");
    }

    // The same deployment with the lake left local: the catalog cannot
    // point at it, so the command stops at start naming the setting,
    // before any run exists to write anywhere.
    let local: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .filter(|(k, _)| *k != "BETFLOW_S3_BUCKET")
        .collect();
    let runs_before: String = env.scalar("SELECT count(*) FROM dag_runs");
    let out = trigger_games(&env, "2024-09-15", &local);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("BETFLOW_ICEBERG_CATALOG") && stderr.contains("needs the lake in S3"),
        "{stderr}"
    );
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), runs_before);
}
