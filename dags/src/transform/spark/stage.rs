//! What a Spark job and BetFlow hand each other through the lake: the
//! input manifest BetFlow writes before the run, and the Parquet files and
//! output manifest the job writes (docs/glue.md#staging).
//!
//! Everything of one try lives under
//! `staging/{task}/{sports day}/{run id}/try-{n}/`: `input.json`, and per
//! table `output/{table}/_betflow_manifest.json` beside `data/*.parquet`.
//! A try starts by clearing its prefix and the task removes it once the
//! tables are committed, so readers of the tables never see staged files.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use lakehouse::iceberg::arrow::parquet_to_data_frame;
use lakehouse::iceberg::{IcebergError, TableDef};
use lakehouse::lake::ObjectStore;
use lakehouse::LakeSettings;
use orchestrator::{TaskContext, TaskError};
use polars::prelude::{DataFrame, PolarsResult};
use serde::{Deserialize, Serialize};

use crate::lake::layout::encode_run_id;

/// The manifest a job writes beside its Parquet files.
pub const OUTPUT_MANIFEST: &str = "_betflow_manifest.json";

/// One try's staging prefix in the lake.
#[derive(Debug, Clone)]
pub struct Staging {
    prefix: String,
}

impl Staging {
    pub fn of(ctx: &TaskContext, task: &str, day: NaiveDate) -> Staging {
        Staging {
            prefix: format!(
                "staging/{task}/{day}/{}/try-{}/",
                encode_run_id(&ctx.run_id),
                ctx.try_number
            ),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn input_key(&self) -> String {
        format!("{}input.json", self.prefix)
    }

    /// The `--output` of the job: tables go under it by full name.
    pub fn output_key(&self) -> String {
        format!("{}output", self.prefix)
    }

    fn table_key(&self, table: &str) -> String {
        format!("{}output/{table}/", self.prefix)
    }

    /// Removes every object under the prefix (an earlier try's leftovers,
    /// or this try's files once committed).
    pub async fn clear(&self, store: &dyn ObjectStore) -> Result<usize, TaskError> {
        let objects = store.list(&self.prefix).await?;
        for object in &objects {
            store.delete(&object.key).await?;
        }
        Ok(objects.len())
    }
}

/// A raw-lake object a bronze job reads.
#[derive(Debug, Clone, Serialize)]
pub struct RawObject {
    /// Where Spark reads it (`s3://bucket/raw/…` or a local path).
    pub uri: String,
    /// Its lake key: the row's `raw_key`.
    pub key: String,
    pub sport: String,
    /// The row's `source` (`replay`, `espn`, …).
    pub source: String,
}

/// `input.json` of a job: the try's identity and what to read.
#[derive(Debug, Clone, Serialize)]
pub struct InputManifest {
    pub task: String,
    pub run_id: String,
    pub sports_day: NaiveDate,
    pub sports: Vec<String>,
    /// The `ingested_at` of every bronze row the job writes, RFC 3339 in
    /// microseconds.
    pub ingested_at: String,
    /// Bronze: the newest raw object of each sport that has one.
    pub objects: Vec<RawObject>,
    /// Silver: the data files of each table read (`bronze.weather` → files).
    pub inputs: BTreeMap<String, Vec<String>>,
}

impl InputManifest {
    pub fn new(ctx: &TaskContext, task: &str, day: NaiveDate, sports: &[String]) -> Self {
        InputManifest {
            task: task.to_owned(),
            run_id: ctx.run_id.clone(),
            sports_day: day,
            sports: sports.to_vec(),
            ingested_at: rfc3339_micros(Utc::now()),
            objects: Vec::new(),
            inputs: BTreeMap::new(),
        }
    }
}

fn rfc3339_micros(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A job's `_betflow_manifest.json` for one table.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputManifest {
    pub table: String,
    pub rows: u64,
    /// Relative to the table's output prefix.
    pub files: Vec<String>,
    pub run_id: String,
    pub sports_day: String,
}

/// Where Spark finds lake key `key`: `s3://{bucket}/{key}`, or the absolute
/// path under the local lake.
pub fn lake_uri(lake: &LakeSettings, key: &str) -> String {
    match &lake.s3 {
        Some(s3) => format!("s3://{}/{key}", s3.bucket),
        None => {
            let dir = std::path::absolute(&lake.local_dir).unwrap_or(lake.local_dir.clone());
            dir.join(key).display().to_string()
        }
    }
}

/// The rows a job staged for `def`, checked: the manifest must be this
/// try's and this table's, every file it names must hold exactly the
/// table's columns in their types, the row count must be the manifest's,
/// and every row must fall in the (sport, day) partitions the run owns
/// (the commit replaces exactly those).
pub async fn read_output(
    store: &dyn ObjectStore,
    staging: &Staging,
    def: &'static TableDef,
    manifest: &InputManifest,
) -> Result<DataFrame, TaskError> {
    let table = def.full_name();
    let dir = staging.table_key(&table);
    let manifest_key = format!("{dir}{OUTPUT_MANIFEST}");
    let staged_err = |message: String| {
        IcebergError::Staged {
            table: table.clone(),
            message,
        }
        .into_task_error()
    };
    let bytes = store.get(&manifest_key).await?.ok_or_else(|| {
        staged_err(format!(
            "the job succeeded but wrote no {manifest_key} in {}",
            store.location()
        ))
    })?;
    let output: OutputManifest = serde_json::from_slice(&bytes).map_err(|e| {
        staged_err(format!(
            "{manifest_key} is not a BetFlow output manifest: {e}"
        ))
    })?;
    if output.table != table
        || output.run_id != manifest.run_id
        || output.sports_day != manifest.sports_day.to_string()
    {
        return Err(staged_err(format!(
            "{manifest_key} is for {} of run {} on {}, not this try's",
            output.table, output.run_id, output.sports_day
        )));
    }
    let mut frames: Vec<DataFrame> = Vec::with_capacity(output.files.len());
    for file in &output.files {
        if file.contains("..") || file.starts_with('/') {
            return Err(staged_err(format!(
                "{manifest_key} names {file:?}, outside its prefix"
            )));
        }
        let key = format!("{dir}{file}");
        let bytes = store
            .get(&key)
            .await?
            .ok_or_else(|| staged_err(format!("{manifest_key} names {key}, which is not there")))?;
        let frame = tokio::task::spawn_blocking(move || parquet_to_data_frame(def, bytes))
            .await?
            .map_err(|e| staged_err(format!("{key}: {e}")))?;
        frames.push(frame);
    }
    let frame = match frames.len() {
        0 => lakehouse::iceberg::arrow::to_data_frame(def, &def.column_names(), &[])
            .map_err(IcebergError::into_task_error)?,
        _ => concat(frames).map_err(|e| staged_err(e.to_string()))?,
    };
    if frame.height() as u64 != output.rows {
        return Err(staged_err(format!(
            "{manifest_key} counts {} rows, its files hold {}",
            output.rows,
            frame.height()
        )));
    }
    check_partitions(&frame, manifest).map_err(staged_err)?;
    Ok(frame)
}

fn concat(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut frames = frames.into_iter();
    let mut out = frames.next().expect("at least one frame");
    for f in frames {
        out.vstack_mut(&f)?;
    }
    out.rechunk_mut();
    Ok(out)
}

/// Every row's (sport, sports_date) is one the run owns.
fn check_partitions(frame: &DataFrame, manifest: &InputManifest) -> Result<(), String> {
    let sports = frame
        .column("sport")
        .and_then(|c| c.str().cloned())
        .map_err(|e| e.to_string())?;
    if let Some(stray) = sports
        .iter()
        .flatten()
        .find(|s| !manifest.sports.iter().any(|m| m == s))
    {
        return Err(format!(
            "a row of sport {stray:?}, which the run did not select ({:?})",
            manifest.sports
        ));
    }
    let day = crate::transform::frame::days_since_epoch(manifest.sports_day);
    let dates = frame
        .column("sports_date")
        .and_then(|c| c.date().map(|d| d.physical().clone()))
        .map_err(|e| e.to_string())?;
    if dates.iter().any(|d| d != Some(day)) {
        return Err(format!(
            "a row outside the run's sports day {}",
            manifest.sports_day
        ));
    }
    Ok(())
}
