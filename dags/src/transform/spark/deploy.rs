//! `betflow glue deploy` and `betflow glue status`: the binary's scripts
//! uploaded to `s3://{lake bucket}/glue/scripts/{version}/`, and one Glue
//! job per transform created or updated to run them (docs/glue.md#deploy).
//! Both are idempotent: a deploy of what is deployed changes nothing.

use std::collections::BTreeMap;

use lakehouse::glue_api::jobs::{
    CreateJobRequest, GetJobRequest, GetJobResponse, JobCommand, JobDefinition, JobNameResponse,
    UpdateJobRequest,
};
use lakehouse::glue_api::{GlueApiError, GlueClient, GlueErrorKind};
use lakehouse::glue_job::GlueConfig;
use lakehouse::lake::LakeError;
use lakehouse::LakeSettings;
use orchestrator::setting::{Lookup, SettingError};

use super::scripts::{self, Job, JOBS};

/// The IAM role Glue runs the jobs as (required to deploy).
pub const ROLE_VAR: &str = "BETFLOW_GLUE_ROLE";
/// Glue version (default `5.0`: Spark 3.5, Python 3.11).
pub const VERSION_VAR: &str = "BETFLOW_GLUE_VERSION";
/// Worker type (default `G.1X`).
pub const WORKER_TYPE_VAR: &str = "BETFLOW_GLUE_WORKER_TYPE";
/// Number of workers (default 2, the smallest Spark job).
pub const WORKERS_VAR: &str = "BETFLOW_GLUE_WORKERS";
/// Minutes before Glue stops a run (default 60).
pub const TIMEOUT_VAR: &str = "BETFLOW_GLUE_TIMEOUT_MINUTES";

/// The argument carrying the scripts' version, read back by `status`.
pub const VERSION_ARG: &str = "--betflow_scripts_version";

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error("the Glue jobs read the lake from S3: set BETFLOW_S3_BUCKET (the scripts go to s3://{{bucket}}/glue/scripts/)")]
    NoBucket,
    #[error("uploading the scripts: {0}")]
    Lake(#[from] LakeError),
    #[error("Glue job `{job}`: {source}")]
    Glue {
        job: String,
        #[source]
        source: GlueApiError,
    },
}

/// How the jobs are sized and who runs them.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    pub role: Option<String>,
    pub glue_version: String,
    pub worker_type: String,
    pub workers: i32,
    pub timeout_minutes: i32,
}

impl JobSettings {
    pub fn resolve(env: &impl Lookup) -> Result<Self, SettingError> {
        let int = |var: &str, default: i32, max: i32| -> Result<i32, SettingError> {
            match env.get(var) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        SettingError::invalid(
                            var,
                            &v,
                            format!("expected a whole number 1 to {max}"),
                        )
                    }),
            }
        };
        Ok(JobSettings {
            role: env.get(ROLE_VAR),
            glue_version: env.get(VERSION_VAR).unwrap_or_else(|| "5.0".into()),
            worker_type: env.get(WORKER_TYPE_VAR).unwrap_or_else(|| "G.1X".into()),
            workers: int(WORKERS_VAR, 2, 299)?,
            timeout_minutes: int(TIMEOUT_VAR, 60, 2880)?,
        })
    }
}

/// The definition of `job`'s Glue job for scripts `version` in `bucket`.
pub fn definition(job: &Job, version: &str, bucket: &str, settings: &JobSettings) -> JobDefinition {
    let prefix = format!("s3://{bucket}/{}", scripts::prefix(version));
    JobDefinition {
        description: Some(format!(
            "BetFlow {} (scripts {version}); deployed by `betflow glue deploy`",
            job.key
        )),
        role: settings.role.clone().unwrap_or_default(),
        command: JobCommand {
            name: "glueetl".into(),
            script_location: format!("{prefix}{}", job.path()),
            python_version: Some("3".into()),
        },
        default_arguments: BTreeMap::from([
            (
                "--extra-py-files".to_owned(),
                scripts::MODULES
                    .iter()
                    .map(|m| format!("{prefix}{m}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("--job-language".to_owned(), "python".to_owned()),
            (VERSION_ARG.to_owned(), version.to_owned()),
        ]),
        glue_version: Some(settings.glue_version.clone()),
        worker_type: Some(settings.worker_type.clone()),
        number_of_workers: Some(settings.workers),
        timeout: Some(settings.timeout_minutes),
    }
}

/// What a deployed job differs in from the wanted one (empty: nothing).
pub fn differences(deployed: &JobDefinition, wanted: &JobDefinition) -> Vec<&'static str> {
    let mut out = Vec::new();
    if deployed.role != wanted.role {
        out.push("role");
    }
    if deployed.command.script_location != wanted.command.script_location
        || deployed.command.name != wanted.command.name
    {
        out.push("script");
    }
    if wanted
        .default_arguments
        .iter()
        .any(|(k, v)| deployed.default_arguments.get(k) != Some(v))
    {
        out.push("arguments");
    }
    if deployed.glue_version != wanted.glue_version {
        out.push("Glue version");
    }
    if deployed.worker_type != wanted.worker_type
        || deployed.number_of_workers != wanted.number_of_workers
    {
        out.push("workers");
    }
    if deployed.timeout != wanted.timeout {
        out.push("timeout");
    }
    out
}

/// One line of a deploy's or a status's report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    /// `s3://…` of a script, or a Glue job's name.
    pub target: String,
    /// `uploaded`, `unchanged`, `created`, `updated (…)`, or with
    /// `--dry-run` what would be done.
    pub action: String,
}

fn bucket(lake: &LakeSettings) -> Result<&str, DeployError> {
    lake.s3
        .as_ref()
        .map(|s| s.bucket.as_str())
        .ok_or(DeployError::NoBucket)
}

/// Uploads the scripts and creates or updates every job.
pub async fn deploy(
    lake: &LakeSettings,
    env: &impl Lookup,
    dry_run: bool,
) -> Result<Vec<Step>, DeployError> {
    let bucket = bucket(lake)?.to_owned();
    let settings = JobSettings::resolve(env)?;
    if settings.role.is_none() {
        return Err(SettingError::missing(
            ROLE_VAR,
            "`glue deploy` creates Glue jobs, which run as an IAM role: set its ARN",
        )
        .into());
    }
    let version = scripts::version();
    let store = lake.open()?;
    let mut steps: Vec<Step> = Vec::new();
    for (path, text) in scripts::files() {
        let key = format!("{}{path}", scripts::prefix(&version));
        let same = store.get(&key).await?.is_some_and(|b| b == text.as_bytes());
        let action = match (same, dry_run) {
            (true, _) => "unchanged",
            (false, true) => "would upload",
            (false, false) => {
                store.put(&key, text.as_bytes().to_vec()).await?;
                "uploaded"
            }
        };
        steps.push(Step {
            target: format!("s3://{bucket}/{key}"),
            action: action.to_owned(),
        });
    }
    for job in JOBS {
        let wanted = definition(job, &version, &bucket, &settings);
        let (name, client, deployed) = deployed_job(job, env).await?;
        let glue_err = |source: GlueApiError| DeployError::Glue {
            job: name.clone(),
            source,
        };
        let action = match deployed {
            None if dry_run => "would create".to_owned(),
            None => {
                let request = CreateJobRequest {
                    name: &name,
                    definition: &wanted,
                };
                let _: JobNameResponse =
                    client.call("CreateJob", &request).await.map_err(glue_err)?;
                "created".to_owned()
            }
            Some(deployed) => {
                let changed = differences(&deployed, &wanted);
                if changed.is_empty() {
                    "unchanged".to_owned()
                } else if dry_run {
                    format!("would update ({})", changed.join(", "))
                } else {
                    let request = UpdateJobRequest {
                        job_name: &name,
                        job_update: &wanted,
                    };
                    let _: JobNameResponse =
                        client.call("UpdateJob", &request).await.map_err(glue_err)?;
                    format!("updated ({})", changed.join(", "))
                }
            }
        };
        steps.push(Step {
            target: format!("Glue job {name} ({})", job.key),
            action,
        });
    }
    Ok(steps)
}

/// What is deployed against what this binary carries, one step per job
/// and one for the scripts.
pub async fn status(lake: &LakeSettings, env: &impl Lookup) -> Result<Vec<Step>, DeployError> {
    let bucket = bucket(lake)?.to_owned();
    let settings = JobSettings::resolve(env)?;
    let version = scripts::version();
    let store = lake.open()?;
    let schemas_key = format!("{}{}", scripts::prefix(&version), scripts::SCHEMAS_NAME);
    let mut steps = vec![Step {
        target: format!("s3://{bucket}/{}", scripts::prefix(&version)),
        action: match store.get(&schemas_key).await? {
            Some(_) => format!("scripts {version} uploaded"),
            None => format!("scripts {version} (this binary's) not uploaded"),
        },
    }];
    for job in JOBS {
        let (name, _client, deployed) = deployed_job(job, env).await?;
        let action = match deployed {
            None => "not deployed".to_owned(),
            Some(deployed) => {
                let deployed_version = deployed
                    .default_arguments
                    .get(VERSION_ARG)
                    .cloned()
                    .unwrap_or_else(|| "none (not deployed by BetFlow)".into());
                let mut wanted = definition(job, &version, &bucket, &settings);
                if settings.role.is_none() {
                    wanted.role = deployed.role.clone();
                }
                let changed = differences(&deployed, &wanted);
                if changed.is_empty() {
                    format!("current (scripts {version})")
                } else {
                    format!(
                        "differs in {} (deployed scripts {deployed_version}, this binary's {version})",
                        changed.join(", ")
                    )
                }
            }
        };
        steps.push(Step {
            target: format!("Glue job {name} ({})", job.key),
            action,
        });
    }
    Ok(steps)
}

/// `job`'s Glue job name, a client for it, and its definition in Glue
/// (`None`: not created yet).
async fn deployed_job(
    job: &Job,
    env: &impl Lookup,
) -> Result<(String, GlueClient, Option<JobDefinition>), DeployError> {
    let config = GlueConfig::resolve(job.key, env)?;
    let name = config.job_name.clone();
    let glue_err = |source: GlueApiError| DeployError::Glue {
        job: name.clone(),
        source,
    };
    let client = config.client().map_err(glue_err)?;
    let deployed = get_job(&client, &name).await.map_err(glue_err)?;
    Ok((name, client, deployed))
}

async fn get_job(client: &GlueClient, name: &str) -> Result<Option<JobDefinition>, GlueApiError> {
    match client
        .call::<_, GetJobResponse>("GetJob", &GetJobRequest { job_name: name })
        .await
    {
        Ok(response) => Ok(response.job),
        Err(e) if e.kind() == Some(GlueErrorKind::EntityNotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JobSettings {
        JobSettings {
            role: Some("arn:aws:iam::123456789012:role/betflow-glue".into()),
            glue_version: "5.0".into(),
            worker_type: "G.1X".into(),
            workers: 2,
            timeout_minutes: 60,
        }
    }

    #[test]
    fn a_job_runs_its_versioned_script_with_the_common_module() {
        let job = scripts::job("silver_weather").unwrap();
        let d = definition(job, "abc123abc123", "lake", &settings());
        assert_eq!(
            d.command.script_location,
            "s3://lake/glue/scripts/abc123abc123/jobs/silver_weather.py"
        );
        assert_eq!(
            d.default_arguments["--extra-py-files"],
            "s3://lake/glue/scripts/abc123abc123/betflow_glue.py,\
             s3://lake/glue/scripts/abc123abc123/betflow_news.py"
        );
        assert_eq!(d.default_arguments[VERSION_ARG], "abc123abc123");
    }

    #[test]
    fn only_what_changed_is_reported() {
        let job = scripts::job("bronze_weather").unwrap();
        let old = definition(job, "000000000000", "lake", &settings());
        let new = definition(job, "111111111111", "lake", &settings());
        assert_eq!(differences(&old, &old), Vec::<&str>::new());
        assert_eq!(differences(&old, &new), vec!["script", "arguments"]);
    }
}
