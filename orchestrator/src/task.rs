//! What a task is to the orchestrator: an async unit of work that gets a
//! context and returns a JSON output (its XCom), or asks to be skipped.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::schedule::DataInterval;
use crate::store::Store;

/// Why a task did not succeed. `Skip` is not a failure: the instance becomes
/// `skipped` and the skip propagates downstream per trigger rules.
pub enum TaskError {
    Skip(String),
    /// A failure the task's retries may get past (a timeout, a 503).
    Failed(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A failure no retry can fix (a bad setting, an impossible request):
    /// the instance fails at once, its remaining retries unused, like
    /// Airflow's `AirflowFailException`.
    Fatal(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl TaskError {
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::Skip(reason.into())
    }

    pub fn msg(message: impl Into<String>) -> Self {
        Self::Failed(message.into().into())
    }

    /// Fails without retrying: see [`TaskError::Fatal`].
    pub fn fatal(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self::Fatal(error.into())
    }

    /// A failure retried or not as `retry_can_help` says: network errors,
    /// 5xx, 429 and timeouts are worth another try; bad settings, a full
    /// disk and input that will not change are not.
    pub fn classified(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
        retry_can_help: bool,
    ) -> Self {
        if retry_can_help {
            Self::Failed(error.into())
        } else {
            Self::Fatal(error.into())
        }
    }

    /// Whether retrying the task could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(e: E) -> Self {
        Self::Failed(Box::new(e))
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Skip(reason) => write!(f, "skipped: {reason}"),
            Self::Failed(e) | Self::Fatal(e) => {
                write!(f, "{e}")?;
                let mut source = e.source();
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub type TaskResult = Result<Value, TaskError>;

/// A unit of work. The returned JSON is stored as the task's output and is
/// readable by downstream tasks through [`TaskContext::upstream`].
#[async_trait]
pub trait Task: Send + Sync + 'static {
    async fn execute(&self, ctx: TaskContext) -> TaskResult;
}

/// A task that waits for a condition. Between pokes it releases its executor
/// slot (Airflow's reschedule mode), so a waiting sensor costs nothing.
#[async_trait]
pub trait Sensor: Send + Sync + 'static {
    /// `Ok(true)` when the condition holds.
    async fn poke(&self, ctx: TaskContext) -> Result<bool, TaskError>;
}

/// A task built from an async closure.
pub struct FnTask<F>(pub F);

#[async_trait]
impl<F, Fut> Task for FnTask<F>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    async fn execute(&self, ctx: TaskContext) -> TaskResult {
        (self.0)(ctx).await
    }
}

/// Wrap an async closure as a [`Task`].
pub fn task_fn<F, Fut>(f: F) -> Arc<dyn Task>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    Arc::new(FnTask(f))
}

/// Everything a running task may know about its run.
#[derive(Clone)]
pub struct TaskContext {
    pub dag_id: String,
    pub task_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval: DataInterval,
    pub try_number: i32,
    /// Retries allowed, as Airflow counts them: tries
    /// `1..=max_tries + 1` run (see [`TaskContext::is_last_try`]).
    pub max_tries: i32,
    /// DAG params with defaults, overridden by the run's conf.
    pub params: Map<String, Value>,
    pub log: TaskLogger,
    /// Fired on timeout or shutdown: long tasks should check it.
    pub cancel: CancellationToken,
    upstream: Arc<HashMap<String, Value>>,
    /// This instance's index in its mapped task, -1 when not mapped.
    pub map_index: i32,
    /// The item of the list a mapped instance was expanded for.
    map_item: Option<Value>,
    /// The metadata database, when the try is recorded (the executor sets
    /// it; `betflow tasks run` and unit tests do not), so a task can store
    /// what it observed, such as data-quality check results.
    store: Option<Store>,
}

impl TaskContext {
    /// Whether a retryable failure of this try ends the task: no retry
    /// is left after it.
    pub fn is_last_try(&self) -> bool {
        self.try_number > self.max_tries
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dag_id: String,
        task_id: String,
        run_id: String,
        data_interval: DataInterval,
        try_number: i32,
        max_tries: i32,
        params: Map<String, Value>,
        log: TaskLogger,
        cancel: CancellationToken,
        upstream: impl Into<Arc<HashMap<String, Value>>>,
    ) -> Self {
        Self {
            dag_id,
            task_id,
            run_id,
            logical_date: data_interval.start,
            data_interval,
            try_number,
            max_tries,
            params,
            log,
            cancel,
            upstream: upstream.into(),
            map_index: -1,
            map_item: None,
            store: None,
        }
    }

    /// The context of instance `map_index` of a mapped task, expanded for `item`.
    pub fn with_map(mut self, map_index: i32, item: Option<Value>) -> Self {
        self.map_index = map_index;
        self.map_item = item;
        self
    }

    /// The item this instance of a mapped task was expanded for
    /// (docs/mapping.md), deserialized.
    pub fn item<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let value = self.map_item.as_ref().ok_or_else(|| {
            TaskError::msg(format!(
                "task `{}` is not a mapped instance: it has no item",
                self.task_id
            ))
        })?;
        serde_json::from_value(value.clone()).map_err(|e| {
            TaskError::msg(format!(
                "item {} of mapped task `{}` has an unexpected shape: {e}",
                self.map_index, self.task_id
            ))
        })
    }

    /// The context with access to the metadata database.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// The metadata database, if this try is recorded in one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The asset events that triggered this run (Airflow's
    /// `triggering_asset_events`), oldest first; empty for runs not
    /// triggered by assets and for tries not recorded in a database.
    pub async fn triggering_asset_events(
        &self,
    ) -> Result<Vec<crate::store::AssetEventRow>, crate::store::StoreError> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        Ok(store
            .run_asset_events(&self.dag_id, &self.run_id)
            .await?
            .unwrap_or_default())
    }

    /// The deployment's database, for the tables the task's own crate
    /// owns (the `serving` schema, the Iceberg catalog), if this try is
    /// recorded in one. Orchestration tables go through [`Self::store`].
    pub fn database(&self) -> Option<&sqlx::PgPool> {
        self.store.as_ref().map(Store::pool)
    }

    /// The output of an upstream task, deserialized.
    pub fn upstream<T: DeserializeOwned>(&self, task_id: &str) -> Result<T, TaskError> {
        let value = self
            .upstream
            .get(task_id)
            .ok_or_else(|| TaskError::msg(format!("no output from upstream task `{task_id}`")))?;
        serde_json::from_value(value.clone()).map_err(|e| {
            TaskError::msg(format!(
                "output of upstream task `{task_id}` has an unexpected shape: {e}"
            ))
        })
    }

    /// A param (DAG default or run conf), deserialized.
    pub fn param<T: DeserializeOwned>(&self, name: &str) -> Result<T, TaskError> {
        let value = self
            .params
            .get(name)
            .ok_or_else(|| TaskError::msg(format!("missing param `{name}`")))?;
        serde_json::from_value(value.clone())
            .map_err(|e| TaskError::msg(format!("param `{name}` has an unexpected type: {e}")))
    }
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub ts: DateTime<Utc>,
    pub level: &'static str,
    pub message: String,
}

/// The longest log line kept, in bytes: a task that logs a whole response
/// body must not make one line of a log page megabytes long (the log API
/// pages by lines).
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// Cuts `message` to at most `max` bytes on a character boundary, noting
/// how many bytes were cut.
fn cut_to(message: &mut String, max: usize) {
    if message.len() <= max {
        return;
    }
    let mut end: usize = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let cut: usize = message.len() - end;
    message.truncate(end);
    message.push_str(&format!(" … ({cut} more bytes not kept)"));
}

/// Lines a task logs; stored per try and shown by `betflow tasks logs`.
#[derive(Clone)]
pub struct TaskLogger {
    tx: Option<mpsc::UnboundedSender<LogLine>>,
    echo: bool,
}

impl TaskLogger {
    /// A logger whose lines go to `tx` (the store's log writer).
    pub fn channel(tx: mpsc::UnboundedSender<LogLine>) -> Self {
        Self {
            tx: Some(tx),
            echo: false,
        }
    }

    /// A logger that prints to stderr, for `betflow tasks run`.
    pub fn stderr() -> Self {
        Self {
            tx: None,
            echo: true,
        }
    }

    /// Logs `message` at INFO; a NUL becomes U+FFFD and a line past
    /// [`MAX_LOG_LINE_BYTES`] is cut, saying how much.
    pub fn info(&self, message: impl Into<String>) {
        self.line("INFO", message.into());
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.line("WARNING", message.into());
    }

    pub fn error(&self, message: impl Into<String>) {
        self.line("ERROR", message.into());
    }

    fn line(&self, level: &'static str, message: String) {
        let ts = Utc::now();
        // Postgres text cannot hold a NUL; a line with one would make its
        // try's record fail.
        let mut message = if message.contains('\0') {
            message.replace('\0', "\u{FFFD}")
        } else {
            message
        };
        cut_to(&mut message, MAX_LOG_LINE_BYTES);
        if self.echo {
            eprintln!(
                "[{}] {level} - {message}",
                ts.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
        }
        if let Some(tx) = &self.tx {
            // The receiver lives until the try's logs are flushed; a send after
            // that (a task that keeps logging past its end) is dropped on purpose.
            let _ = tx.send(LogLine { ts, level, message });
        }
    }
}

#[cfg(test)]
mod log_line_tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary_saying_how_much() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = TaskLogger::channel(tx);
        log.info(format!("body: {}", "é".repeat(MAX_LOG_LINE_BYTES)));
        log.info("short\0line");
        let long = rx.try_recv().expect("a line").message;
        assert!(long.len() <= MAX_LOG_LINE_BYTES + 64, "{}", long.len());
        assert!(
            long.ends_with("more bytes not kept)"),
            "{}",
            &long[long.len() - 40..]
        );
        assert!(long.starts_with("body: éé"));
        assert_eq!(rx.try_recv().expect("a line").message, "short\u{FFFD}line");
    }
}
