//! A transform on the Glue engine against a real S3 and Glue API server
//! (moto) and a real Postgres: it refuses to start before `betflow glue
//! deploy`, then stages its input manifest in the lake bucket, starts the
//! deployed job with the staging arguments, and fails — without retrying
//! and without committing — when the run staged nothing (moto's job runs
//! succeed without running a script).

use std::collections::HashMap;
use std::sync::Arc;

use crate::glue::GlueProxy;
use crate::serving_db::ServingDb;
use crate::support::MotoServer;
use chrono::{TimeZone, Utc};
use dags::lake::{S3Config, S3Store};
use dags::settings::Settings;
use dags::transform::spark::deploy;
use dags::transform::spark::task::{Layer, Runner, SparkTransform};
use dags::DataKind;
use lakehouse::glue_job::{GlueConfig, GlueJob};
use orchestrator::setting::Vars;
use orchestrator::task::TaskLogger;
use orchestrator::{DataInterval, Store, Task, TaskContext, TaskError};
use serde_json::{json, Map};
use tokio_util::sync::CancellationToken;

const RUN_ID: &str = "scheduled__2024-09-08T10:15:00+00:00";

fn env(moto: &MotoServer, glue: &GlueProxy) -> Vars {
    Vars::new([
        ("BETFLOW_S3_BUCKET", "betflow-lake".to_owned()),
        ("BETFLOW_S3_ENDPOINT", moto.endpoint.clone()),
        ("BETFLOW_TRANSFORM_ENGINE", "glue".to_owned()),
        ("BETFLOW_GLUE_ENDPOINT", glue.endpoint.clone()),
        ("BETFLOW_GLUE_JOB_PREFIX", "betflow-".to_owned()),
        ("BETFLOW_GLUE_POLL_INITIAL_SECS", "0.01".to_owned()),
        ("BETFLOW_GLUE_POLL_MAX_SECS", "0.05".to_owned()),
        (
            "BETFLOW_GLUE_ROLE",
            "arn:aws:iam::123456789012:role/betflow-glue".to_owned(),
        ),
        ("AWS_ACCESS_KEY_ID", "betflow-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "betflow-test-secret".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ])
}

fn context(store: Store) -> TaskContext {
    let start = Utc.with_ymd_and_hms(2024, 9, 8, 10, 15, 0).unwrap();
    let mut params = Map::new();
    params.insert("sports".to_owned(), json!(["nfl"]));
    TaskContext::new(
        "weather_daily".to_owned(),
        "transform.bronze_weather".to_owned(),
        RUN_ID.to_owned(),
        DataInterval {
            start,
            end: start + chrono::Duration::days(1),
        },
        1,
        2,
        params,
        TaskLogger::stderr(),
        CancellationToken::new(),
        HashMap::new(),
    )
    .with_store(store)
}

fn failure(result: Result<serde_json::Value, TaskError>) -> (String, bool) {
    match result {
        Ok(v) => panic!("the task succeeded: {v}"),
        Err(e) => {
            let fatal = matches!(e, TaskError::Fatal(_));
            (e.to_string(), fatal)
        }
    }
}

#[tokio::test]
async fn a_glue_transform_stages_its_inputs_and_refuses_a_run_that_staged_nothing() {
    let moto = MotoServer::start();
    let glue = GlueProxy::start(&moto).await;
    let db = ServingDb::start(4).await;
    let vars = env(&moto, &glue);
    let home = tempfile::tempdir().unwrap();
    let settings = Settings::resolve(home.path().to_owned(), &vars).expect("settings");
    let s3: &S3Config = settings.lake.s3.as_ref().expect("an S3 lake");
    S3Store::new(s3).unwrap().ensure_bucket().await.unwrap();
    let config = GlueConfig::resolve("bronze_weather", &vars).unwrap();
    let task = SparkTransform::new(
        DataKind::Weather,
        Layer::Bronze,
        Arc::new(settings.clone()),
        Runner::Glue(GlueJob::new(config)),
    )
    .expect("bronze_weather has a script");
    let store = Store::new(db.pool.clone());

    // Nothing deployed: the task says so, and no retry can help.
    let (message, fatal) = failure(task.execute(context(store.clone())).await);
    assert!(message.contains("betflow glue deploy"), "{message}");
    assert!(fatal, "{message}");

    deploy::deploy(&settings.lake, &vars, false)
        .await
        .expect("deploy");
    let (message, fatal) = failure(task.execute(context(store.clone())).await);
    assert!(
        message.contains("wrote no")
            && message.contains("output/bronze.weather/_betflow_manifest.json"),
        "{message}"
    );
    assert!(fatal, "{message}");

    // The run was started with the staging arguments, and the input
    // manifest it names is in the bucket.
    let lake = settings.lake.open().unwrap();
    let staged = lake
        .list("staging/bronze_weather/2024-09-08/")
        .await
        .unwrap();
    let input = staged
        .iter()
        .find(|o| o.key.ends_with("/try-1/input.json"))
        .unwrap_or_else(|| panic!("no input manifest: {staged:?}"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&lake.get(&input.key).await.unwrap().unwrap()).unwrap();
    assert_eq!(manifest["run_id"], RUN_ID);
    assert_eq!(manifest["sports"], json!(["nfl"]));
    assert_eq!(manifest["sports_day"], "2024-09-08");

    // Nothing was committed.
    let warehouse = settings.lake.warehouse(&db.pool).await.unwrap();
    let rows = lakehouse::iceberg::read_table(
        &warehouse,
        &dags::transform::bronze::WEATHER,
        &lakehouse::iceberg::Filter::All,
    )
    .await
    .unwrap();
    assert_eq!(rows.height(), 0);
}
