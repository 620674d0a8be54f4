//! `bench batch --compare spark`: the season's games and odds through
//! BetFlow's Spark scripts (a local `spark-submit`, one run per transform
//! over every day at once), beside the polars figures, and what the same
//! work would cost as nightly AWS Glue runs.
//!
//! The polars side runs day by day as the nightly DAGs do; the Spark side
//! reads every day's raw objects in one run per transform (a manifest may
//! name each object's day), so its figures are the scripts' throughput
//! rather than eight JVM starts per day. Silver odds on Spark map events
//! against every game of the season, not the games of each night, so the
//! rows are compared by count and price sums, not by game.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use chrono::NaiveDate;
use dags::transform::spark::scripts;
use dags::transform::spark::submit::SparkSubmit;
use serde::Serialize;
use serde_json::{json, Value};

/// AWS Glue's price per DPU-hour (us-east-1, Glue 5.0, Spark jobs).
pub const USD_PER_DPU_HOUR: f64 = 0.44;
/// Glue bills a Spark job run for at least one minute.
const MIN_BILLED_SECS: f64 = 60.0;
/// The smallest Spark job: two G.1X workers (one DPU each: 4 vCPU, 16 GB).
const WORKERS: f64 = 2.0;
/// Transform runs per nightly sports day with scripts (games, odds,
/// weather: bronze and silver each).
const NIGHTLY_RUNS: f64 = 6.0;

/// The raw objects written for the Spark side, outside every timed section.
pub struct SparkLake {
    dir: PathBuf,
    games: Vec<Value>,
    odds: Vec<Value>,
    days: Vec<NaiveDate>,
}

impl SparkLake {
    pub fn create(dir: &Path) -> Result<SparkLake> {
        let dir = dir.join("spark");
        std::fs::create_dir_all(dir.join("raw"))
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(SparkLake {
            dir,
            games: Vec::new(),
            odds: Vec::new(),
            days: Vec::new(),
        })
    }

    /// Writes one raw object (JSON as generated) and lists it.
    pub fn add(&mut self, kind: &str, sport: &str, day: NaiveDate, body: &[u8]) -> Result<()> {
        let key = format!("raw/{sport}/{kind}/date={day}/generator.json");
        let path = self.dir.join(&key);
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        let entry = json!({
            "uri": path.display().to_string(),
            "key": key,
            "sport": sport,
            "source": "generator",
            "sports_date": day,
        });
        match kind {
            "games" => self.games.push(entry),
            _ => self.odds.push(entry),
        }
        if !self.days.contains(&day) {
            self.days.push(day);
        }
        Ok(())
    }
}

/// One Spark run's figures.
#[derive(Debug, Serialize)]
struct Run {
    job: &'static str,
    seconds: f64,
    rows: BTreeMap<String, u64>,
}

/// Runs the four transforms; the figures and the Glue cost model as JSON.
pub fn run(lake: SparkLake, sports: &[&str], odds_rows_polars: usize) -> Result<Value> {
    let submit =
        SparkSubmit::resolve(&orchestrator::setting::ProcessEnv).map_err(|e| anyhow!("{e}"))?;
    let scripts_dir =
        SparkSubmit::materialize(&lake.dir).map_err(|e| anyhow!("writing the scripts: {e}"))?;
    let schemas = format!("{}", scripts_dir.join(scripts::SCHEMAS_NAME).display());
    let first = lake.days.first().context("no days")?.to_string();
    let base = json!({
        "task": "bench",
        "run_id": "bench",
        "sports_day": first,
        "sports_days": lake.days,
        "sports": sports,
        "ingested_at": "2025-06-01T00:00:00.000000Z",
        "objects": [],
        "inputs": {},
    });
    let out = lake.dir.join("out");
    let mut runs: Vec<Run> = Vec::new();
    let mut outputs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (job, objects, inputs) in [
        ("bronze_games", Some(&lake.games), vec![]),
        ("bronze_odds", Some(&lake.odds), vec![]),
        ("silver_games", None, vec!["bronze.games"]),
        ("silver_odds", None, vec!["bronze.odds", "silver.games"]),
    ] {
        let mut manifest = base.clone();
        if let Some(objects) = objects {
            manifest["objects"] = json!(objects);
        }
        for table in inputs {
            manifest["inputs"][table] = json!(outputs.get(table).cloned().unwrap_or_default());
        }
        let manifest_path = lake.dir.join(format!("{job}.input.json"));
        std::fs::write(&manifest_path, serde_json::to_vec(&manifest)?)?;
        let job_def = scripts::job(job).context("a shipped job")?;
        let arguments = BTreeMap::from([
            (
                "--input_manifest".to_owned(),
                manifest_path.display().to_string(),
            ),
            ("--output".to_owned(), out.display().to_string()),
            ("--schemas".to_owned(), schemas.clone()),
            ("--sports_day".to_owned(), first.clone()),
            ("--run_id".to_owned(), "bench".to_owned()),
            (
                "--logical_date".to_owned(),
                format!("{first}T00:00:00+00:00"),
            ),
        ]);
        let log_path = lake.dir.join(format!("{job}.log"));
        let log = File::create(&log_path)?;
        let t = Instant::now();
        let archive = submit.class_archive();
        let status = Command::new(&submit.program)
            .args(submit.args(&scripts_dir, job_def, &arguments, archive.as_ref()))
            .envs(submit.envs())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .with_context(|| {
                format!(
                    "starting {} (install pyspark with a Java 17 runtime, or set {})",
                    submit.program.display(),
                    dags::transform::spark::submit::SUBMIT_VAR
                )
            })?;
        let seconds = t.elapsed().as_secs_f64();
        if let Some(a) = &archive {
            a.finish(status.success());
        }
        if !status.success() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            bail!("spark-submit {job} failed ({status}): {}", tail.join(" | "));
        }
        let mut rows = BTreeMap::new();
        for table in job_def.tables {
            let dir = out.join(table);
            let manifest: Value =
                serde_json::from_slice(&std::fs::read(dir.join("_betflow_manifest.json"))?)?;
            rows.insert((*table).to_owned(), manifest["rows"].as_u64().unwrap_or(0));
            let files = manifest["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|f| dir.join(f).display().to_string())
                .collect();
            outputs.insert((*table).to_owned(), files);
        }
        runs.push(Run { job, seconds, rows });
    }
    let seconds = |prefix: &str| -> f64 {
        runs.iter()
            .filter(|r| r.job.starts_with(prefix))
            .map(|r| r.seconds)
            .sum()
    };
    let (bronze, silver) = (seconds("bronze"), seconds("silver"));
    let days = lake.days.len().max(1) as f64;
    let odds_rows = runs
        .iter()
        .find_map(|r| r.rows.get("bronze.odds"))
        .copied()
        .unwrap_or(0);
    // The cost model (README, "Glue cost"): each nightly run models one
    // day. The time measured here beyond a run's fixed start (a JVM and a
    // Spark session: FIXED_SECS, the floor of a tiny run on this machine)
    // is work that grows with the day's rows; it is split evenly over the
    // four games and odds runs of a night, and two G.1X workers (one
    // executor of four cores) do it at twice this machine's two cores.
    // Weather's two runs are taken as fixed cost only.
    const FIXED_SECS: f64 = 11.0;
    let work_per_night = ((bronze + silver) - 4.0 * FIXED_SECS).max(0.0) / days;
    let cost = |scale: f64| -> Value {
        let work_per_run = work_per_night * scale / 4.0 / 2.0;
        let billed = |secs: f64| secs.max(MIN_BILLED_SECS);
        let secs =
            4.0 * billed(FIXED_SECS + work_per_run) + (NIGHTLY_RUNS - 4.0) * billed(FIXED_SECS);
        let dpu_hours = WORKERS * secs / 3600.0;
        json!({
            "scale": scale,
            "odds_rows_per_night": (odds_rows as f64 / days * scale).round(),
            "games_odds_run_secs": FIXED_SECS + work_per_run,
            "dpu_hours_per_night": dpu_hours,
            "usd_per_night": dpu_hours * USD_PER_DPU_HOUR,
            "usd_per_season": dpu_hours * USD_PER_DPU_HOUR * days,
        })
    };
    Ok(json!({
        "master": submit.master,
        "runs": runs,
        "bronze_secs": bronze,
        "silver_secs": silver,
        "odds_rows": odds_rows,
        "odds_rows_agree": odds_rows as usize == odds_rows_polars,
        "glue_cost": [cost(1.0), cost(10.0), cost(100.0)],
        "usd_per_dpu_hour": USD_PER_DPU_HOUR,
    }))
}
