//! `transform.bronze_{family}` / `transform.silver_{family}` on Spark:
//! stage the inputs, run the family's script (a Glue job run or a local
//! `spark-submit`), check and commit what it staged, clear the staging.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lakehouse::glue_job::GlueJob;
use lakehouse::iceberg::read::data_files;
use lakehouse::iceberg::{IcebergError, TableDef, WriteSummary};
use orchestrator::{Task, TaskContext, TaskError, TaskResult, TaskSpec};
use serde_json::json;

use super::schemas;
use super::scripts::{self, Job};
use super::stage::{lake_uri, read_output, InputManifest, RawObject, Staging};
use super::submit::SparkSubmit;
use crate::ingest::{lake_failed, SharedSettings};
use crate::transform::silver_tables;
use crate::transform::tasks::{bronze_table, newest_raw, Scope};
use crate::DataKind;

/// Where the script runs.
#[derive(Debug, Clone)]
pub enum Runner {
    /// A run of the transform's Glue job (deployed by `betflow glue deploy`).
    Glue(GlueJob),
    /// `spark-submit` on this machine.
    Local(SparkSubmit),
}

/// Bronze (raw objects in) or silver (bronze tables in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Bronze,
    Silver,
}

#[derive(Debug, Clone)]
pub struct SparkTransform {
    family: DataKind,
    layer: Layer,
    job: &'static Job,
    settings: SharedSettings,
    runner: Runner,
}

impl SparkTransform {
    /// `None` when BetFlow ships no script for this transform.
    pub fn new(
        family: DataKind,
        layer: Layer,
        settings: SharedSettings,
        runner: Runner,
    ) -> Option<Self> {
        let key = format!("{}_{}", layer.name(), family.as_str());
        Some(SparkTransform {
            family,
            layer,
            job: scripts::job(&key)?,
            settings,
            runner,
        })
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc.into())
    }

    /// What the job reads, into the manifest.
    async fn plan(&self, scope: &Scope, manifest: &mut InputManifest) -> Result<(), TaskError> {
        match self.layer {
            Layer::Bronze => {
                let lake = scope.settings.lake.open().map_err(lake_failed)?;
                for sport in &scope.sports {
                    if let Some((key, source)) =
                        newest_raw(lake.as_ref(), sport, self.family, scope.date).await?
                    {
                        manifest.objects.push(RawObject {
                            uri: lake_uri(&scope.settings.lake, &key),
                            key,
                            sport: sport.clone(),
                            source,
                        });
                    }
                }
            }
            Layer::Silver => {
                let def = bronze_table(self.family);
                let files = data_files(&scope.warehouse, def, &scope.filter())
                    .await
                    .map_err(IcebergError::into_task_error)?;
                manifest.inputs.insert(def.full_name(), files);
                if self.family == DataKind::Odds {
                    // The games the day's events can map to, as polars reads
                    // them (`event_games::silver_window`).
                    let def = &silver_tables::GAMES;
                    let files = data_files(&scope.warehouse, def, &scope.games_window())
                        .await
                        .map_err(IcebergError::into_task_error)?;
                    manifest.inputs.insert(def.full_name(), files);
                }
            }
        }
        Ok(())
    }

    /// Where the scripts are for this run, as `--schemas` names them:
    /// the local runner writes the binary's own; a Glue job runs what was
    /// deployed, which must be this binary's version.
    async fn scripts_location(&self, scope: &Scope) -> Result<String, TaskError> {
        let version = scripts::version();
        let key = format!("{}{}", scripts::prefix(&version), scripts::SCHEMAS_NAME);
        match &self.runner {
            Runner::Local(_) => {
                if scope.settings.lake.s3.is_some() {
                    return Err(TaskError::fatal(
                        "the local Spark engine reads the lake from this machine's disk; \
                         with the lake in S3 use BETFLOW_TRANSFORM_ENGINE=glue",
                    ));
                }
                SparkSubmit::materialize(&scope.settings.lake.local_dir)?;
            }
            Runner::Glue(_) => {
                let lake = scope.settings.lake.open().map_err(lake_failed)?;
                if lake.get(&key).await?.is_none() {
                    return Err(TaskError::fatal(format!(
                        "the Glue scripts of this binary (version {version}) are not deployed \
                         in {}: run `betflow glue deploy`",
                        lake.location()
                    )));
                }
            }
        }
        Ok(lake_uri(&scope.settings.lake, &key))
    }
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
        }
    }
}

/// The tables a job stages, as definitions.
fn table_defs(job: &Job) -> Result<Vec<&'static TableDef>, TaskError> {
    job.tables
        .iter()
        .map(|name| {
            schemas::tables()
                .into_iter()
                .find(|d| d.full_name() == *name)
                .ok_or_else(|| TaskError::fatal(format!("{}: no table {name}", job.key)))
        })
        .collect()
}

#[async_trait]
impl Task for SparkTransform {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let scope = Scope::of(&ctx, &self.settings).await?;
        let lake = scope.settings.lake.open().map_err(lake_failed)?;
        let staging = Staging::of(&ctx, self.job.key, scope.date);
        let stale = staging.clear(lake.as_ref()).await?;
        if stale > 0 {
            ctx.log.info(format!(
                "removed {stale} staged objects of an earlier attempt"
            ));
        }
        let schemas_uri = self.scripts_location(&scope).await?;
        let mut manifest = InputManifest::new(&ctx, self.job.key, scope.date, &scope.sports);
        self.plan(&scope, &mut manifest).await?;
        let input = serde_json::to_vec_pretty(&manifest)?;
        // A full disk or a refused bucket fails the try at once.
        lake.put(&staging.input_key(), input)
            .await
            .map_err(lake_failed)?;
        let arguments = BTreeMap::from([
            (
                "--input_manifest".to_owned(),
                lake_uri(&scope.settings.lake, &staging.input_key()),
            ),
            (
                "--output".to_owned(),
                lake_uri(&scope.settings.lake, &staging.output_key()),
            ),
            ("--schemas".to_owned(), schemas_uri),
            ("--sports_day".to_owned(), scope.date.to_string()),
        ]);
        let run = match &self.runner {
            Runner::Glue(job) => {
                let output = job.run(&ctx, arguments).await?;
                serde_json::to_value(output)?
            }
            Runner::Local(submit) => {
                let mut arguments = arguments;
                arguments.insert("--run_id".to_owned(), ctx.run_id.clone());
                arguments.insert(
                    "--logical_date".to_owned(),
                    ctx.logical_date
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                );
                let dir = lake_dir_scripts(&scope);
                submit.run(&ctx, &dir, self.job, &arguments).await?;
                json!({"engine": "spark", "master": submit.master})
            }
        };
        let mut written: Vec<WriteSummary> = Vec::new();
        for def in table_defs(self.job)? {
            let frame = read_output(lake.as_ref(), &staging, def, &manifest).await?;
            written.push(scope.write(&ctx, def, &frame).await?);
        }
        match staging.clear(lake.as_ref()).await {
            Ok(n) => {
                if scope.settings.lake.s3.is_none() {
                    // A local disk keeps the emptied directories.
                    let dir = scope.settings.lake.local_dir.join(staging.prefix());
                    let _ = std::fs::remove_dir_all(dir);
                }
                ctx.log.info(format!("removed {n} staged objects"))
            }
            // The tables are committed: a leftover staging prefix costs
            // space, not correctness, and the next try clears its own.
            Err(e) => ctx.log.warn(format!(
                "the tables are committed, but the staging prefix {} was not removed: {e}",
                staging.prefix()
            )),
        }
        Ok(json!({
            "date": scope.date,
            "sports": scope.sports,
            "records": written.first().map(|w| w.added_rows).unwrap_or(0),
            "tables": written,
            "scripts_version": scripts::version(),
            "run": run,
        }))
    }
}

fn lake_dir_scripts(scope: &Scope) -> std::path::PathBuf {
    scope
        .settings
        .lake
        .local_dir
        .join(scripts::prefix(&scripts::version()))
}
