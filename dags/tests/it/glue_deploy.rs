//! `betflow glue deploy` / `status` against a real S3 and Glue API server
//! (moto): the scripts land under their version, one job per transform is
//! created, a second deploy changes nothing, a changed setting updates only
//! what changed, and a Glue run that stages nothing fails its task.
//! moto has no UpdateJob: [`GlueProxy`] stands in for it (see `glue.rs`).

use crate::glue::GlueProxy;
use crate::support::{moto_lake, MotoServer};
use dags::transform::spark::deploy::{self, DeployError, Step};
use dags::transform::spark::scripts;
use lakehouse::{CatalogSetting, LakeSettings};
use orchestrator::setting::Vars;

async fn lake(moto: &MotoServer) -> LakeSettings {
    LakeSettings {
        local_dir: std::env::temp_dir(),
        s3: Some(moto_lake(moto).await),
        catalog: CatalogSetting::Sql,
    }
}

fn env(glue: &GlueProxy, extra: &[(&str, &str)]) -> Vars {
    let mut pairs: Vec<(String, String)> = vec![
        ("BETFLOW_GLUE_ENDPOINT".into(), glue.endpoint.clone()),
        ("BETFLOW_GLUE_JOB_PREFIX".into(), "betflow-".into()),
        (
            "BETFLOW_GLUE_ROLE".into(),
            "arn:aws:iam::123456789012:role/betflow-glue".into(),
        ),
        ("AWS_ACCESS_KEY_ID".into(), "betflow-test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "betflow-test-secret".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Vars::new(pairs)
}

fn actions(steps: &[Step]) -> Vec<String> {
    steps.iter().map(|s| s.action.clone()).collect()
}

fn job_step<'a>(steps: &'a [Step], key: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.target.ends_with(&format!("({key})")))
        .unwrap_or_else(|| panic!("no step for {key}: {steps:#?}"))
}

#[tokio::test]
async fn deploy_uploads_the_versioned_scripts_and_creates_one_job_per_transform() {
    let moto = MotoServer::start();
    let glue = GlueProxy::start(&moto).await;
    let lake = lake(&moto).await;
    let vars = env(&glue, &[]);
    let version = scripts::version();

    let dry = deploy::deploy(&lake, &vars, true).await.expect("dry run");
    assert!(
        actions(&dry)
            .iter()
            .all(|a| a == "would upload" || a == "would create"),
        "{dry:#?}"
    );
    let store = lake.open().unwrap();
    assert!(
        store.list("glue/").await.unwrap().is_empty(),
        "a dry run uploads nothing"
    );
    let status = deploy::status(&lake, &vars).await.unwrap();
    assert_eq!(job_step(&status, "bronze_weather").action, "not deployed");

    let first = deploy::deploy(&lake, &vars, false).await.expect("deploy");
    let uploaded: Vec<&Step> = first.iter().filter(|s| s.action == "uploaded").collect();
    assert_eq!(uploaded.len(), scripts::files().len(), "{first:#?}");
    assert!(uploaded
        .iter()
        .any(|s| s.target
            == format!("s3://betflow-lake/glue/scripts/{version}/jobs/silver_weather.py")));
    let schemas = store
        .get(&format!("glue/scripts/{version}/schemas.json"))
        .await
        .unwrap()
        .expect("schemas uploaded");
    assert_eq!(schemas, scripts::SCHEMAS.as_bytes());
    for job in scripts::JOBS {
        assert_eq!(job_step(&first, job.key).action, "created");
    }

    let status = deploy::status(&lake, &vars).await.unwrap();
    assert_eq!(status[0].action, format!("scripts {version} uploaded"));
    assert_eq!(
        job_step(&status, "silver_weather").action,
        format!("current (scripts {version})")
    );

    let again = deploy::deploy(&lake, &vars, false).await.unwrap();
    assert!(
        actions(&again).iter().all(|a| a == "unchanged"),
        "{again:#?}"
    );

    // Bigger workers: the jobs are updated, and only in that.
    let bigger = env(&glue, &[("BETFLOW_GLUE_WORKERS", "10")]);
    let status = deploy::status(&lake, &bigger).await.unwrap();
    assert!(
        job_step(&status, "bronze_weather")
            .action
            .starts_with("differs in workers"),
        "{status:#?}"
    );
    let updated = deploy::deploy(&lake, &bigger, false).await.unwrap();
    assert_eq!(
        job_step(&updated, "bronze_weather").action,
        "updated (workers)"
    );
    let updates = glue.updates();
    assert_eq!(updates.len(), scripts::JOBS.len());
    assert_eq!(updates[0]["JobUpdate"]["NumberOfWorkers"], 10);
    let status = deploy::status(&lake, &bigger).await.unwrap();
    assert!(job_step(&status, "bronze_weather")
        .action
        .starts_with("current"));
}

#[tokio::test]
async fn deploy_says_what_is_missing() {
    let moto = MotoServer::start();
    let glue = GlueProxy::start(&moto).await;
    let lake = lake(&moto).await;
    let no_role = Vars::new([
        ("BETFLOW_GLUE_JOB_PREFIX", "betflow-"),
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ]);
    let err = deploy::deploy(&lake, &no_role, false).await.unwrap_err();
    assert!(
        matches!(err, DeployError::Setting(_)) && err.to_string().contains("BETFLOW_GLUE_ROLE"),
        "{err}"
    );
    let local = LakeSettings::local(&std::env::temp_dir());
    let err = deploy::deploy(&local, &env(&glue, &[]), false)
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::NoBucket), "{err}");
    let err = deploy::status(&lake, &env(&glue, &[("BETFLOW_GLUE_WORKERS", "0")]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("BETFLOW_GLUE_WORKERS"), "{err}");
}
