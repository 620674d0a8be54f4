//! AWS Glue job runs as tasks.
//!
//! With `transform.engine = glue` the batch transforms run as Glue job runs
//! instead of in-process polars. [`GlueJob`] starts a run of a named job
//! with the try's identity as arguments and follows it to the end: the
//! orchestrator keeps owning scheduling, retries, timeouts and logs, Glue
//! only supplies the compute.
//!
//! A Glue run outlives the request that started it, so a task that stops
//! watching its run (cancelled, timed out, aborted, gave up polling) stops
//! the run as well. Otherwise the retry would start a second run next to an
//! orphan that writes the same tables.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use orchestrator::task::TaskLogger;
use orchestrator::{Task, TaskContext, TaskResult, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::aws::{self, AwsCredentials};
use crate::glue_api::jobs::{
    epoch_seconds, is_terminal, BatchStopJobRunRequest, BatchStopJobRunResponse, GetJobRunRequest,
    GetJobRunResponse, JobRun, StartJobRunRequest, StartJobRunResponse, SUCCEEDED,
};
use crate::glue_api::{GlueApiError, GlueClient};
use orchestrator::setting::{Lookup, SettingError};

/// First wait between two polls of a run when `BETFLOW_GLUE_POLL_INITIAL_SECS`
/// is unset. Glue needs tens of seconds just to provision workers, so polling
/// faster only spends the GetJobRun rate limit.
pub const DEFAULT_POLL_INITIAL: Duration = Duration::from_secs(5);

/// Longest wait between two polls when `BETFLOW_GLUE_POLL_MAX_SECS` is
/// unset: bounds how late a finished hour-long run is noticed.
pub const DEFAULT_POLL_MAX: Duration = Duration::from_secs(60);

/// Consecutive transient GetJobRun failures (each already retried by
/// [`GlueClient::call`]) tolerated before the task gives up on its run: a
/// Glue or network outage this long is not worth a task slot, and the
/// retry starts afresh.
pub const MAX_POLL_ERRORS: u32 = 10;

/// How long a cancelled task waits for Glue to accept the stop before it
/// returns anyway; the engine only grants a few seconds on shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// One Glue API call is small; a minute without an answer is a hung
/// connection, better retried than waited on.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a Glue task failed. Every message names the job and, once started,
/// the run id, which is what the Glue console and CloudWatch logs are
/// searched by.
#[derive(Debug, thiserror::Error)]
pub enum GlueError {
    /// StartJobRun was refused: no such job, too many concurrent runs, no
    /// permission, or Glue unreachable.
    #[error("could not start Glue job `{job_name}`: {message}")]
    Start { job_name: String, message: String },
    /// Following the run failed for good (a non-transient API error, or
    /// [`MAX_POLL_ERRORS`] transient ones in a row).
    #[error("could not follow Glue job `{job_name}` run {run_id}: {message}")]
    Poll {
        job_name: String,
        run_id: String,
        message: String,
    },
    /// The run ended in a state other than SUCCEEDED; `message` is Glue's
    /// own ErrorMessage.
    #[error("Glue job `{job_name}` run {run_id} ended {state}: {message}")]
    Run {
        job_name: String,
        run_id: String,
        state: String,
        message: String,
    },
    /// The task was cancelled (timeout or shutdown) while its run was live;
    /// `stop` says whether Glue accepted the stop.
    #[error("Glue job `{job_name}` run {run_id} cancelled (task timed out or process shutting down): {stop}")]
    Cancelled {
        job_name: String,
        run_id: String,
        stop: String,
    },
    /// The task was cancelled before it started a run, so nothing runs.
    #[error("Glue job `{job_name}` not started: the task was cancelled")]
    CancelledBeforeStart { job_name: String },
    /// BatchStopJobRun was refused or did not answer.
    #[error("could not stop Glue job `{job_name}` run {run_id}: {message}")]
    Stop {
        job_name: String,
        run_id: String,
        message: String,
    },
}

/// Which Glue job to run, how to reach Glue, and how often to look.
#[derive(Debug, Clone, PartialEq)]
pub struct GlueConfig {
    /// The Glue job's name in the account (not BetFlow's task id).
    pub job_name: String,
    /// Passed to every run of this job, over the job's DefaultArguments;
    /// the task's own arguments and the run identity are added on top.
    pub arguments: BTreeMap<String, String>,
    /// Custom endpoint (moto, a VPC endpoint); `None` for AWS's own.
    pub endpoint: Option<String>,
    pub region: String,
    pub credentials: AwsCredentials,
    /// First wait between polls; it doubles after each poll...
    pub poll_initial: Duration,
    /// ...up to this.
    pub poll_max: Duration,
}

impl GlueConfig {
    /// AWS's endpoint and the default poll intervals, no extra arguments.
    pub fn new(
        job_name: impl Into<String>,
        region: impl Into<String>,
        credentials: AwsCredentials,
    ) -> Self {
        GlueConfig {
            job_name: job_name.into(),
            arguments: BTreeMap::new(),
            endpoint: None,
            region: region.into(),
            credentials,
            poll_initial: DEFAULT_POLL_INITIAL,
            poll_max: DEFAULT_POLL_MAX,
        }
    }

    /// The config of BetFlow's job `key` (`silver_games`, …), resolved when
    /// the binary starts. The Glue job's name is
    /// `BETFLOW_GLUE_JOB_NAME_{KEY}` (key upper-cased, `-` and `.` as `_`)
    /// when set, else `BETFLOW_GLUE_JOB_PREFIX` followed by the key, so one
    /// variable covers a deployment that names its jobs uniformly and the
    /// per-job one covers the exceptions. Also reads `BETFLOW_GLUE_ENDPOINT`,
    /// `BETFLOW_GLUE_POLL_INITIAL_SECS` and `BETFLOW_GLUE_POLL_MAX_SECS`
    /// (seconds, fractions allowed), the region and the AWS keys, as the S3
    /// lake does.
    pub fn resolve(key: &str, env: &impl Lookup) -> Result<Self, SettingError> {
        let name_var = job_name_var(key);
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(SettingError::invalid(
                &name_var,
                key,
                "a Glue job key is letters, digits, `_`, `-` or `.`",
            ));
        }
        let job_name = match (env.get(&name_var), env.get(PREFIX_VAR)) {
            (Some(name), _) => name,
            (None, Some(prefix)) => format!("{prefix}{key}"),
            (None, None) => {
                return Err(SettingError::missing(
                    &name_var,
                    format!(
                        "the Glue engine needs a job name for `{key}`: set it, or \
                         {PREFIX_VAR} (every job is then named {{prefix}}{key})"
                    ),
                ))
            }
        };
        let why = format!("Glue job `{job_name}` needs AWS credentials");
        let credentials = AwsCredentials::resolve(env, &why)?;
        let poll_initial =
            seconds(env, "BETFLOW_GLUE_POLL_INITIAL_SECS")?.unwrap_or(DEFAULT_POLL_INITIAL);
        let poll_max = seconds(env, "BETFLOW_GLUE_POLL_MAX_SECS")?.unwrap_or(DEFAULT_POLL_MAX);
        if poll_max < poll_initial {
            return Err(SettingError::invalid(
                "BETFLOW_GLUE_POLL_MAX_SECS",
                &poll_max.as_secs_f64().to_string(),
                format!(
                    "is below BETFLOW_GLUE_POLL_INITIAL_SECS or its default ({poll_initial:?})"
                ),
            ));
        }
        Ok(GlueConfig {
            job_name,
            arguments: BTreeMap::new(),
            endpoint: env.get("BETFLOW_GLUE_ENDPOINT"),
            region: aws::region(env),
            credentials,
            poll_initial,
            poll_max,
        })
    }

    /// A Glue client for this config; no request is made until the first
    /// call. Public so deploy scripts and tests reach the same endpoint
    /// with the same credentials as the task. Fails on an endpoint that is
    /// not an http(s) URL.
    pub fn client(&self) -> Result<GlueClient, GlueApiError> {
        GlueClient::new(
            self.endpoint.as_deref(),
            &self.region,
            &self.credentials,
            ATTEMPT_TIMEOUT,
        )
    }
}

/// Gives every job the same naming scheme with one variable.
pub const PREFIX_VAR: &str = "BETFLOW_GLUE_JOB_PREFIX";

/// `BETFLOW_GLUE_JOB_NAME_{KEY}`. `NAME_` keeps a job keyed `prefix` from
/// colliding with [`PREFIX_VAR`].
pub fn job_name_var(key: &str) -> String {
    let upper: String = key
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("BETFLOW_GLUE_JOB_NAME_{upper}")
}

fn seconds(env: &impl Lookup, name: &str) -> Result<Option<Duration>, SettingError> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(|s| Some(Duration::from_secs_f64(s)))
        .ok_or_else(|| {
            SettingError::invalid(
                name,
                &value,
                "must be a number of seconds above 0 and at most 86400",
            )
        })
}

/// XCom of a [`GlueJob`]: what downstream tasks and operators need to find
/// the run in Glue and judge its cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlueRunOutput {
    pub job_name: String,
    pub job_run_id: String,
    /// Always `SUCCEEDED` (any other end fails the task).
    pub state: String,
    /// Glue's ExecutionTime: seconds the run consumed resources.
    pub execution_time_secs: i64,
    /// Glue's own retry count of this run (the job's MaxRetries).
    pub attempt: i32,
    pub started_on: Option<DateTime<Utc>>,
    pub completed_on: Option<DateTime<Utc>>,
    /// Billed DPU-seconds, reported for flexible and auto-scaled runs only.
    pub dpu_seconds: Option<f64>,
}

/// A task that runs one Glue job run to its end: start it with the try's
/// identity as arguments (`--run_id`, `--logical_date`, and those a DAG
/// derives from the run with [`GlueJob::run_arg`]),
/// follow it with exponential backoff, log each state change, succeed with
/// a [`GlueRunOutput`] when it SUCCEEDED and fail with Glue's ErrorMessage
/// otherwise. Cancelled or aborted, it stops the run.
#[derive(Debug, Clone)]
pub struct GlueJob {
    config: Arc<GlueConfig>,
    arguments: BTreeMap<String, String>,
    derived: Vec<(String, RunArgument)>,
}

/// An argument computed from the try's context when the job run starts.
pub type RunArgument = fn(&TaskContext) -> String;

impl GlueJob {
    /// Runs the job of a fixed config.
    pub fn new(config: GlueConfig) -> Self {
        GlueJob {
            config: Arc::new(config),
            arguments: BTreeMap::new(),
            derived: Vec::new(),
        }
    }

    /// An argument of this task's runs (`arg("--sport", "nfl")`), spelled as
    /// the Glue script reads it (`getResolvedOptions` wants the `--`). It
    /// overrides the config's arguments of the same name; the run identity
    /// arguments override it, so a run cannot claim another run's id.
    pub fn arg(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.arguments.insert(name.into(), value.into());
        self
    }

    /// An argument derived from each try's context (e.g. the day a run
    /// covers), with the precedence of the run identity arguments.
    pub fn run_arg(mut self, name: impl Into<String>, value: RunArgument) -> Self {
        self.derived.push((name.into(), value));
        self
    }

    pub fn spec(self, id: &str, doc: String) -> TaskSpec {
        TaskSpec::new(id, Arc::new(self)).doc(doc)
    }

    /// The arguments of one run, in increasing precedence: the config's,
    /// the task's, the try's identity.
    fn run_arguments(&self, config: &GlueConfig, ctx: &TaskContext) -> BTreeMap<String, String> {
        let mut args = config.arguments.clone();
        args.extend(self.arguments.clone());
        args.insert("--run_id".to_owned(), ctx.run_id.clone());
        args.insert(
            "--logical_date".to_owned(),
            ctx.logical_date.to_rfc3339_opts(SecondsFormat::Secs, false),
        );
        for (name, value) in &self.derived {
            args.insert(name.clone(), value(ctx));
        }
        args
    }

    /// Runs the job once for `ctx`'s try, with `extra` arguments on top of
    /// the task's (below the run identity): for a task that wraps the run
    /// in its own work, such as staging its inputs and committing its
    /// output.
    pub async fn run(
        &self,
        ctx: &TaskContext,
        extra: BTreeMap<String, String>,
    ) -> Result<GlueRunOutput, GlueError> {
        let config = Arc::clone(&self.config);
        let job_name = config.job_name.clone();
        if ctx.cancel.is_cancelled() {
            return Err(GlueError::CancelledBeforeStart { job_name });
        }
        let client: GlueClient = config.client().map_err(|e| GlueError::Start {
            job_name: job_name.clone(),
            message: e.to_string(),
        })?;
        let mut arguments = self.run_arguments(&config, ctx);
        for (name, value) in extra {
            arguments.entry(name).or_insert(value);
        }
        let names: Vec<&str> = arguments.keys().map(String::as_str).collect();
        // Argument values are not logged: a job's arguments may carry secrets.
        ctx.log.info(format!(
            "starting Glue job `{job_name}` with arguments {}",
            names.join(", ")
        ));
        // Not raced against cancellation: a start abandoned mid-flight may
        // still create a run, whose id we would then never learn and could
        // not stop. (An abort by the executor here still has that gap.)
        let request = StartJobRunRequest {
            job_name: &job_name,
            arguments,
        };
        let started: StartJobRunResponse =
            client
                .call("StartJobRun", &request)
                .await
                .map_err(|e| GlueError::Start {
                    job_name: job_name.clone(),
                    message: e.to_string(),
                })?;
        let run_id: String = started.job_run_id.ok_or_else(|| GlueError::Start {
            job_name: job_name.clone(),
            message: "StartJobRun answered without a JobRunId".to_owned(),
        })?;
        ctx.log
            .info(format!("Glue job `{job_name}` run {run_id} started"));
        let mut guard = StopOnDrop {
            client: client.clone(),
            job_name: job_name.clone(),
            run_id: run_id.clone(),
            log: ctx.log.clone(),
            armed: true,
        };
        let watched = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => None,
            watched = watch(&client, &config, &run_id, &ctx.log) => Some(watched),
        };
        let run = match watched {
            Some(Ok(run)) => {
                guard.armed = false;
                run
            }
            Some(Err(e)) => {
                ctx.log.error(format!("{e}; stopping the run"));
                let _ = guard.stop_now().await;
                return Err(e);
            }
            None => {
                let stop = match guard.stop_now().await {
                    Ok(()) => "stop requested".to_owned(),
                    Err(e) => format!("{e}; the run may still be going"),
                };
                return Err(GlueError::Cancelled {
                    job_name,
                    run_id,
                    stop,
                });
            }
        };
        let state: String = run
            .job_run_state
            .clone()
            .unwrap_or_else(|| "UNKNOWN".to_owned());
        if state != SUCCEEDED {
            let message: String = run
                .error_message
                .unwrap_or_else(|| "Glue gave no error message".to_owned());
            return Err(GlueError::Run {
                job_name,
                run_id,
                state,
                message,
            });
        }
        ctx.log.info(format!(
            "Glue job `{job_name}` run {run_id} succeeded in {}s",
            run.execution_time
        ));
        Ok(GlueRunOutput {
            job_name,
            job_run_id: run_id,
            state,
            execution_time_secs: i64::from(run.execution_time),
            attempt: run.attempt,
            started_on: run.started_on.and_then(epoch_seconds),
            completed_on: run.completed_on.and_then(epoch_seconds),
            dpu_seconds: run.dpu_seconds,
        })
    }
}

#[async_trait]
impl Task for GlueJob {
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        let output = self.run(&ctx, BTreeMap::new()).await?;
        Ok(serde_json::to_value(output)?)
    }
}

/// Polls the run until it reaches a terminal state, which is returned
/// whatever it is; only failing to learn the state is an error.
async fn watch(
    client: &GlueClient,
    config: &GlueConfig,
    run_id: &str,
    log: &TaskLogger,
) -> Result<JobRun, GlueError> {
    let job_name = config.job_name.as_str();
    let poll_error = |message: String| GlueError::Poll {
        job_name: job_name.to_owned(),
        run_id: run_id.to_owned(),
        message,
    };
    // A zero interval would spin on the API.
    let mut delay = config.poll_initial.max(Duration::from_millis(1));
    let mut last: Option<String> = None;
    let mut errors: u32 = 0;
    loop {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(config.poll_max.max(delay));
        let request = GetJobRunRequest { job_name, run_id };
        let response: Result<GetJobRunResponse, GlueApiError> =
            client.call("GetJobRun", &request).await;
        // A transient failure (throttling, Glue's own errors, a broken
        // connection) says nothing about the run, which goes on in Glue
        // meanwhile: giving up on it at the first would waste the work done.
        let output: GetJobRunResponse = match response {
            Ok(output) => output,
            Err(e) if e.is_transient() && errors < MAX_POLL_ERRORS => {
                errors += 1;
                log.warn(format!(
                    "polling Glue job `{job_name}` run {run_id} failed ({errors} of at most \
                     {MAX_POLL_ERRORS} in a row), retrying: {e}"
                ));
                continue;
            }
            Err(e) if e.is_transient() => {
                return Err(poll_error(format!(
                    "{} failures in a row, the last: {e}",
                    errors + 1
                )))
            }
            Err(e) => return Err(poll_error(e.to_string())),
        };
        errors = 0;
        let run: JobRun = output
            .job_run
            .ok_or_else(|| poll_error("GetJobRun answered without a JobRun".to_owned()))?;
        let state: String = run
            .job_run_state
            .clone()
            .ok_or_else(|| poll_error("GetJobRun answered without a JobRunState".to_owned()))?;
        if last.as_ref() != Some(&state) {
            let line = match &last {
                None => format!("Glue job `{job_name}` run {run_id} is {state}"),
                Some(before) => format!("Glue job `{job_name}` run {run_id}: {before} → {state}"),
            };
            match (state.as_str(), run.error_message.as_deref()) {
                (SUCCEEDED, _) => log.info(line),
                (s, Some(message)) if is_terminal(s) => log.error(format!("{line}: {message}")),
                (s, None) if is_terminal(s) => log.error(line),
                _ => log.info(line),
            }
            last = Some(state.clone());
        }
        if is_terminal(&state) {
            return Ok(run);
        }
    }
}

/// Asks Glue to stop the run. BatchStopJobRun answers 200 even when it
/// refuses a run, listing the refusal in `Errors`, so that list is checked.
async fn stop_run(client: &GlueClient, job_name: &str, run_id: &str) -> Result<(), GlueError> {
    let stop_error = |message: String| GlueError::Stop {
        job_name: job_name.to_owned(),
        run_id: run_id.to_owned(),
        message,
    };
    let request = BatchStopJobRunRequest {
        job_name,
        job_run_ids: vec![run_id],
    };
    let output: BatchStopJobRunResponse = client
        .call("BatchStopJobRun", &request)
        .await
        .map_err(|e| stop_error(e.to_string()))?;
    if let Some(refused) = output
        .errors
        .iter()
        .find(|e| e.job_run_id.as_deref().is_none_or(|id| id == run_id))
    {
        let detail = refused.error_detail.as_ref();
        return Err(stop_error(format!(
            "{}: {}",
            detail
                .and_then(|d| d.error_code.as_deref())
                .unwrap_or("refused"),
            detail
                .and_then(|d| d.error_message.as_deref())
                .unwrap_or("no message")
        )));
    }
    Ok(())
}

/// Stops the run unless disarmed. The executor aborts a timed-out task's
/// future right after firing its cancel token, so the `select!` on
/// cancellation may never get to run; dropping the future still drops this.
struct StopOnDrop {
    client: GlueClient,
    job_name: String,
    run_id: String,
    log: TaskLogger,
    armed: bool,
}

impl StopOnDrop {
    /// Stops the run now, within [`STOP_TIMEOUT`], and logs how it went.
    /// Disarms only once the request is done, so an abort during the
    /// request still leaves the stop to [`Drop`].
    async fn stop_now(&mut self) -> Result<(), GlueError> {
        let result = tokio::time::timeout(
            STOP_TIMEOUT,
            stop_run(&self.client, &self.job_name, &self.run_id),
        )
        .await
        .unwrap_or_else(|_| {
            Err(GlueError::Stop {
                job_name: self.job_name.clone(),
                run_id: self.run_id.clone(),
                message: format!("no answer within {STOP_TIMEOUT:?}"),
            })
        });
        self.armed = false;
        match &result {
            Ok(()) => self.log.warn(format!(
                "asked Glue to stop job `{}` run {}",
                self.job_name, self.run_id
            )),
            Err(e) => self.log.error(e.to_string()),
        }
        result
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (job_name, run_id) = (self.job_name.clone(), self.run_id.clone());
        // Drop cannot await, so the stop runs detached. The try's log may
        // already be flushed by then, hence tracing as well.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("Glue job `{job_name}` run {run_id} abandoned outside a tokio runtime; it was not stopped");
            return;
        };
        let (client, log) = (self.client.clone(), self.log.clone());
        runtime.spawn(async move {
            match stop_run(&client, &job_name, &run_id).await {
                Ok(()) => {
                    tracing::warn!(
                        "task aborted: asked Glue to stop job `{job_name}` run {run_id}"
                    );
                    log.warn(format!(
                        "task aborted: asked Glue to stop job `{job_name}` run {run_id}"
                    ));
                }
                Err(e) => {
                    tracing::error!("task aborted: {e}");
                    log.error(format!("task aborted: {e}"));
                }
            }
        });
    }
}
