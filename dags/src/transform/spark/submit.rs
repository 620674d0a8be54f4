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

use sha2::{Digest, Sha256};

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
/// Where the driver's class-data archive is kept (default
/// `$XDG_CACHE_HOME/betflow/spark`, else `~/.cache/betflow/spark`; `off`
/// for none). See [`ClassArchive`].
pub const CLASS_CACHE_VAR: &str = "BETFLOW_SPARK_CLASS_CACHE";

/// How to start a local Spark job.
#[derive(Debug, Clone, PartialEq)]
pub struct SparkSubmit {
    pub program: PathBuf,
    pub master: String,
    pub driver_memory: String,
    pub java_options: Option<String>,
    /// The directory of [`ClassArchive`]s, `None` when turned off.
    pub class_cache: Option<PathBuf>,
}

/// A JVM class-data sharing archive of the Spark driver. A local job is
/// short and most of its start is the JVM loading and verifying Spark's
/// classes (about 8 s of CPU for an empty job on this project's 2-core
/// reference machine, 4.5 s with the archive). The first run writes the
/// archive at its exit (`-XX:ArchiveClassesAtExit`); later runs map it
/// (`-XX:SharedArchiveFile`). It is named after the `spark-submit` and
/// `java` it was made with, so a reinstall or a JDK upgrade starts a new
/// one; a JVM that cannot use an archive ignores it and runs as without.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassArchive {
    pub path: PathBuf,
    /// Where this run writes a new archive (renamed to `path` when the run
    /// succeeds), when there is none yet.
    pub writing: Option<PathBuf>,
}

impl ClassArchive {
    /// The driver's JVM options for it.
    pub fn java_flags(&self) -> String {
        // Older JVMs lack the dump flag; ignore rather than fail the job.
        match &self.writing {
            Some(tmp) => format!(
                "-XX:+IgnoreUnrecognizedVMOptions -XX:ArchiveClassesAtExit={}",
                tmp.display()
            ),
            None => format!(
                "-XX:+IgnoreUnrecognizedVMOptions -XX:SharedArchiveFile={}",
                self.path.display()
            ),
        }
    }

    /// Keeps a newly written archive when the run succeeded, else drops it.
    pub fn finish(&self, success: bool) {
        if let Some(tmp) = &self.writing {
            if success && tmp.exists() {
                let _ = std::fs::rename(tmp, &self.path);
            } else {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
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
            class_cache: match env.get(CLASS_CACHE_VAR) {
                Some(dir) if dir.trim() == "off" => None,
                Some(dir) => Some(PathBuf::from(dir)),
                None => env
                    .get("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .map(|d| d.join("betflow").join("spark")),
            },
        })
    }

    /// This run's class-data archive: the one to map, or where to write it.
    /// `None` without a cache directory, or when it cannot be created.
    pub fn class_archive(&self) -> Option<ClassArchive> {
        let dir = self.class_cache.as_ref()?;
        std::fs::create_dir_all(dir).ok()?;
        let mut key = Sha256::new();
        for program in [Some(self.program.clone()), java()].into_iter().flatten() {
            let program = which(&program).unwrap_or(program);
            key.update(program.display().to_string().as_bytes());
            let modified = std::fs::metadata(&program).and_then(|m| m.modified()).ok();
            key.update(format!("{modified:?}").as_bytes());
        }
        let key: String = key.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = dir.join(format!("driver-{key}.jsa"));
        let writing = (!path.exists()).then(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            dir.join(format!("driver-{key}.{}-{nanos}.tmp", std::process::id()))
        });
        Some(ClassArchive { path, writing })
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
        archive: Option<&ClassArchive>,
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
        let options: Vec<String> = self
            .java_options
            .iter()
            .cloned()
            .chain(archive.map(ClassArchive::java_flags))
            .collect();
        if !options.is_empty() {
            args.extend(["--driver-java-options".into(), options.join(" ").into()]);
        }
        let modules: Vec<String> = scripts::MODULES
            .iter()
            .map(|m| scripts_dir.join(m).display().to_string())
            .collect();
        args.push("--py-files".into());
        args.push(modules.join(",").into());
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
        let archive: Option<ClassArchive> = self.class_archive();
        let mut command = Command::new(&self.program);
        command
            .args(self.args(scripts_dir, job, arguments, archive.as_ref()))
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
                if let Some(a) = &archive {
                    a.finish(false);
                }
                return Err(TaskError::msg(format!("{} was cancelled; the driver was killed", job.key)));
            }
            status = child.wait() => status?,
        };
        let _ = forward_out.await;
        let tail: Vec<String> = forward_err.await.unwrap_or_default();
        if let Some(a) = &archive {
            a.finish(status.success());
            if a.writing.is_some() && status.success() {
                ctx.log.info(format!(
                    "wrote the driver's class-data archive {} (later runs start faster)",
                    a.path.display()
                ));
            }
        }
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

/// `java` as Spark's launcher finds it: `$JAVA_HOME/bin/java`, else on `PATH`.
fn java() -> Option<PathBuf> {
    match std::env::var_os("JAVA_HOME") {
        Some(home) => Some(PathBuf::from(home).join("bin").join("java")),
        None => which(Path::new("java")),
    }
}

/// `program` resolved on `PATH` (when it is a bare name) and through links.
fn which(program: &Path) -> Option<PathBuf> {
    let found = if program.components().count() > 1 {
        Some(program.to_path_buf())
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    };
    found.and_then(|p| std::fs::canonicalize(p).ok())
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

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator::setting::Vars;

    #[test]
    fn the_class_cache_defaults_under_the_users_cache_and_can_be_turned_off() {
        let s = SparkSubmit::resolve(&Vars::new([("HOME", "/home/ann")])).unwrap();
        assert_eq!(
            s.class_cache.as_deref(),
            Some(Path::new("/home/ann/.cache/betflow/spark"))
        );
        let s = SparkSubmit::resolve(&Vars::new([
            ("HOME", "/home/ann"),
            ("XDG_CACHE_HOME", "/var/cache/ann"),
        ]))
        .unwrap();
        assert_eq!(
            s.class_cache.as_deref(),
            Some(Path::new("/var/cache/ann/betflow/spark"))
        );
        let s =
            SparkSubmit::resolve(&Vars::new([("HOME", "/h"), (CLASS_CACHE_VAR, "off")])).unwrap();
        assert_eq!(s.class_cache, None);
        assert_eq!(s.class_archive(), None);
    }

    #[test]
    fn the_first_run_writes_the_class_archive_and_later_runs_map_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("spark");
        let s = SparkSubmit::resolve(&Vars::new([(CLASS_CACHE_VAR, cache.display().to_string())]))
            .unwrap();
        let first = s.class_archive().expect("an archive");
        let tmp = first.writing.clone().expect("none yet: this run writes it");
        assert!(first.java_flags().contains("-XX:ArchiveClassesAtExit="));
        // A failed run's archive is not kept.
        std::fs::write(&tmp, b"half").unwrap();
        first.finish(false);
        assert!(!tmp.exists() && !first.path.exists());
        // A successful one's is, and the next run maps it.
        let second = s.class_archive().unwrap();
        std::fs::write(second.writing.as_ref().unwrap(), b"archive").unwrap();
        second.finish(true);
        assert!(second.path.exists());
        let third = s.class_archive().unwrap();
        assert_eq!(third.writing, None);
        assert_eq!(third.path, second.path);
        assert!(third
            .java_flags()
            .ends_with(&format!("-XX:SharedArchiveFile={}", third.path.display())));
        let job = scripts::job("bronze_news").unwrap();
        let args = s.args(dir.path(), job, &BTreeMap::new(), Some(&third));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = args
            .iter()
            .position(|a| a == "--driver-java-options")
            .unwrap();
        assert!(args[at + 1].contains("SharedArchiveFile"), "{args:?}");
        let at = args.iter().position(|a| a == "--py-files").unwrap();
        let modules = format!(
            "{},{}",
            dir.path().join("betflow_glue.py").display(),
            dir.path().join("betflow_news.py").display()
        );
        assert_eq!(args[at + 1], modules);
    }
}
