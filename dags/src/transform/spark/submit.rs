//! The local Spark engine: a job script run by `spark-submit` on this
//! machine (`BETFLOW_TRANSFORM_ENGINE=spark`), over the local lake. It is
//! how the Glue scripts are proven against the polars engine without AWS,
//! and how `bench batch --engine spark` measures them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use orchestrator::setting::{Lookup, SettingError};
use orchestrator::{TaskContext, TaskError};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::scripts::{self, Job};

/// `spark-submit`'s path (default: found on `PATH`).
pub const SUBMIT_VAR: &str = "BETFLOW_SPARK_SUBMIT";
/// Spark's master (default `local[2]`: this machine, two cores).
pub const MASTER_VAR: &str = "BETFLOW_SPARK_MASTER";
/// The driver's memory (default `2g`).
pub const MEMORY_VAR: &str = "BETFLOW_SPARK_DRIVER_MEMORY";
/// Extra JVM options of the driver (default none). Small jobs start faster
/// with `-XX:TieredStopAtLevel=1 -XX:+UseSerialGC` (the tests use it);
/// large ones want the JIT's full tiers.
pub const JAVA_OPTIONS_VAR: &str = "BETFLOW_SPARK_JAVA_OPTIONS";

/// How to start a local Spark job.
#[derive(Debug, Clone, PartialEq)]
pub struct SparkSubmit {
    pub program: PathBuf,
    pub master: String,
    pub driver_memory: String,
    pub java_options: Option<String>,
}

impl SparkSubmit {
    pub fn resolve(env: &impl Lookup) -> Result<Self, SettingError> {
        let program = PathBuf::from(env.get(SUBMIT_VAR).unwrap_or_else(|| "spark-submit".into()));
        if program.as_os_str().is_empty() {
            return Err(SettingError::invalid(SUBMIT_VAR, "", "is empty"));
        }
        Ok(SparkSubmit {
            program,
            master: env.get(MASTER_VAR).unwrap_or_else(|| "local[2]".into()),
            driver_memory: env.get(MEMORY_VAR).unwrap_or_else(|| "2g".into()),
            java_options: env.get(JAVA_OPTIONS_VAR).filter(|o| !o.trim().is_empty()),
        })
    }

    /// Writes this binary's scripts under `dir` (once per version: the
    /// directory is named by it) and returns it.
    pub fn materialize(lake_dir: &Path) -> Result<PathBuf, TaskError> {
        let dir = lake_dir.join(scripts::prefix(&scripts::version()));
        for (path, text) in scripts::files() {
            let file = dir.join(&path);
            if std::fs::read_to_string(&file).is_ok_and(|t| t == text) {
                continue;
            }
            let parent = file.parent().expect("a file under the scripts directory");
            std::fs::create_dir_all(parent)
                .and_then(|()| std::fs::write(&file, text))
                .map_err(|e| TaskError::msg(format!("cannot write {}: {e}", file.display())))?;
        }
        Ok(dir)
    }

    /// spark-submit's arguments for `job` with `arguments` (`--name value`).
    pub fn args(
        &self,
        scripts_dir: &Path,
        job: &Job,
        arguments: &BTreeMap<String, String>,
    ) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--master".into(),
            self.master.clone().into(),
            "--driver-memory".into(),
            self.driver_memory.clone().into(),
        ];
        for conf in [
            "spark.ui.enabled=false",
            "spark.log.level=WARN",
            "spark.sql.shuffle.partitions=4",
        ] {
            args.extend(["--conf".into(), conf.into()]);
        }
        if let Some(options) = &self.java_options {
            args.extend(["--driver-java-options".into(), options.into()]);
        }
        args.push("--py-files".into());
        args.push(scripts_dir.join(scripts::COMMON_NAME).into());
        args.push(scripts_dir.join(job.path()).into());
        for (name, value) in arguments {
            args.push(name.into());
            args.push(value.into());
        }
        args
    }

    /// The environment spark-submit runs in, beside the process's own.
    pub fn envs(&self) -> Vec<(&'static str, OsString)> {
        // Python times are read in the process's zone when naive; the
        // scripts make them aware, and this keeps Spark's JVM in UTC too.
        let mut envs: Vec<(&'static str, OsString)> = vec![("TZ", "UTC".into())];
        // A pip-installed Spark runs its Python workers with the Python
        // beside it, which has pyspark; `python3` on PATH may not.
        if std::env::var_os("PYSPARK_PYTHON").is_none() {
            if let Some(python) = self
                .program
                .parent()
                .map(|d| d.join("python"))
                .filter(|p| p.exists())
            {
                envs.push(("PYSPARK_PYTHON", python.into()));
            }
        }
        envs
    }

    /// Runs `job` with `arguments` (`--name value`) to its end, its output
    /// in the task's log. Cancelling the try kills the driver.
    pub async fn run(
        &self,
        ctx: &TaskContext,
        scripts_dir: &Path,
        job: &Job,
        arguments: &BTreeMap<String, String>,
    ) -> Result<(), TaskError> {
        let mut command = Command::new(&self.program);
        command
            .args(self.args(scripts_dir, job, arguments))
            .envs(self.envs());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        ctx.log.info(format!(
            "spark-submit --master {} {} (scripts {})",
            self.master,
            job.path(),
            scripts::version()
        ));
        let mut child = command.spawn().map_err(|e| {
            let message = format!(
                "cannot start {} ({e}): install Spark (`pip install pyspark`, with a Java 17 \
                 runtime) or set {SUBMIT_VAR} to its spark-submit",
                self.program.display()
            );
            if e.kind() == std::io::ErrorKind::NotFound {
                TaskError::fatal(message)
            } else {
                TaskError::msg(message)
            }
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = ctx.log.clone();
        let forward_out = tokio::spawn(forward(BufReader::new(stdout), log.clone()));
        let forward_err = tokio::spawn(forward(BufReader::new(stderr), log));
        let status = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => {
                let _ = child.kill().await;
                return Err(TaskError::msg(format!("{} was cancelled; the driver was killed", job.key)));
            }
            status = child.wait() => status?,
        };
        let _ = forward_out.await;
        let tail: Vec<String> = forward_err.await.unwrap_or_default();
        if !status.success() {
            return Err(TaskError::msg(format!(
                "spark-submit {} exited with {status}: {}",
                job.path(),
                tail.join(" | ")
            )));
        }
        Ok(())
    }
}

/// Copies a stream's lines to the task log; returns its last few lines,
/// which name a failure.
async fn forward<R>(reader: BufReader<R>, log: orchestrator::task::TaskLogger) -> Vec<String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    const TAIL: usize = 5;
    let mut tail: Vec<String> = Vec::new();
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        log.info(format!("spark: {line}"));
        if tail.len() == TAIL {
            tail.remove(0);
        }
        tail.push(line);
    }
    tail
}
