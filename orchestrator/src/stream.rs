//! Stream task groups: long-running tasks (Kafka consumers, tickers) that
//! start with the process, are restarted with backoff when they exit or fail,
//! and report their health into `stream_tasks`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::dag::{DagBag, StreamSpec};
use crate::store::Store;
use crate::task::TaskError;

/// A task meant to run until cancelled. Returning (Ok or Err) before the
/// token fires counts as an exit and the supervisor restarts it.
#[async_trait]
pub trait StreamTask: Send + Sync + 'static {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError>;
}

/// Given to a stream task: its identity, a cancellation token and a place to
/// publish health figures (lag, throughput …) as JSON.
#[derive(Clone)]
pub struct StreamContext {
    pub dag_id: String,
    pub task_id: String,
    pub cancel: CancellationToken,
    health: Arc<Mutex<Value>>,
    store: Store,
}

impl StreamContext {
    /// The metadata database, whose `serving` schema stream sinks write to:
    /// the same one, embedded or `DATABASE_URL`, that the process uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The deployment's database, for the tables the task's own crate
    /// owns (the `serving` schema). Orchestration tables go through
    /// [`Self::store`].
    pub fn database(&self) -> &sqlx::PgPool {
        self.store.pool()
    }

    /// Replace the health document shown for this task.
    pub fn report(&self, health: Value) {
        if let Ok(mut h) = self.health.lock() {
            *h = health;
        }
    }

    fn snapshot(&self) -> Value {
        self.health.lock().map(|h| h.clone()).unwrap_or(Value::Null)
    }
}

/// Runs every stream task of every DAG in the bag until `shutdown` fires.
pub async fn supervise_all(
    store: Store,
    bag: DagBag,
    worker_id: String,
    shutdown: CancellationToken,
    grace: Duration,
) {
    // A task still running this long after shutdown is abandoned.
    let stop_grace: Duration = grace.min(STOP_GRACE);
    let mut handles = Vec::new();
    for dag in bag.dags() {
        for spec in &dag.streams {
            let store = store.clone();
            let worker_id = worker_id.clone();
            let shutdown = shutdown.clone();
            let spec = spec.clone();
            let dag_id = dag.id.clone();
            handles.push(tokio::spawn(async move {
                supervise(store, dag_id, spec, worker_id, shutdown, stop_grace).await;
            }));
        }
    }
    for h in handles {
        let _ = h.await;
    }
}

const UPSERT_STREAM: &str = "
    INSERT INTO stream_tasks (dag_id, task_id, worker_id, state, restarts, last_error, health, started_at, heartbeat_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now())
    ON CONFLICT (dag_id, task_id, worker_id) DO UPDATE SET
        state = EXCLUDED.state, restarts = EXCLUDED.restarts,
        last_error = COALESCE(EXCLUDED.last_error, stream_tasks.last_error),
        health = EXCLUDED.health, heartbeat_at = now(),
        started_at = CASE WHEN EXCLUDED.state = 'starting' THEN now() ELSE stream_tasks.started_at END";

/// Where one supervised stream task records its state.
struct Slot<'a> {
    store: &'a Store,
    dag_id: &'a str,
    task_id: &'a str,
    worker_id: &'a str,
}

impl Slot<'_> {
    async fn record(&self, state: &str, restarts: i32, error: Option<&str>, health: &Value) {
        let res = sqlx::query(UPSERT_STREAM)
            .bind(self.dag_id)
            .bind(self.task_id)
            .bind(self.worker_id)
            .bind(state)
            .bind(restarts)
            .bind(error)
            .bind(health)
            .execute(self.store.pool())
            .await;
        if let Err(e) = res {
            tracing::warn!(
                dag_id = self.dag_id,
                task_id = self.task_id,
                "could not record stream task health: {e}"
            );
        }
    }
}

/// How long a stream task may take to stop once the process shuts down,
/// at most (less when the process's shutdown grace is shorter).
const STOP_GRACE: Duration = Duration::from_secs(10);

async fn supervise(
    store: Store,
    dag_id: String,
    spec: StreamSpec,
    worker_id: String,
    shutdown: CancellationToken,
    stop_grace: Duration,
) {
    let slot = Slot {
        store: &store,
        dag_id: &dag_id,
        task_id: &spec.id,
        worker_id: &worker_id,
    };
    let mut restarts: i32 = 0;
    loop {
        let ctx = StreamContext {
            dag_id: dag_id.clone(),
            task_id: spec.id.clone(),
            cancel: shutdown.child_token(),
            health: Arc::new(Mutex::new(Value::Object(Default::default()))),
            store: store.clone(),
        };
        slot.record("starting", restarts, None, &ctx.snapshot())
            .await;
        let task = spec.task.clone();
        let run_ctx = ctx.clone();
        let mut run = tokio::spawn(async move { task.run(run_ctx).await });
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        // A task that has not stopped this long after shutdown (a client
        // waiting on a broker that is gone) is abandoned, so the process
        // stops within its grace.
        let stop_by = async {
            shutdown.cancelled().await;
            tokio::time::sleep(stop_grace).await;
        };
        tokio::pin!(stop_by);
        let outcome = loop {
            tokio::select! {
                res = &mut run => break res,
                _ = &mut stop_by => {
                    run.abort();
                    tracing::warn!(dag_id, task_id = %spec.id,
                        "stream task did not stop within {stop_grace:?} of shutdown; abandoned");
                    break Ok(Ok(()));
                }
                _ = beat.tick() => {
                    slot.record("running", restarts, None, &ctx.snapshot()).await;
                }
            }
        };
        if shutdown.is_cancelled() {
            slot.record("stopped", restarts, None, &ctx.snapshot())
                .await;
            return;
        }
        let error = match outcome {
            Ok(Ok(())) => "exited".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(join) => format!("panicked: {join}"),
        };
        restarts += 1;
        let delay = spec.restart.delay_after(restarts.max(1) as u32);
        tracing::warn!(dag_id, task_id = %spec.id, restarts, "stream task stopped ({error}); restarting in {delay:?}");
        slot.record("restarting", restarts, Some(&error), &ctx.snapshot())
            .await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => {
                slot.record("stopped", restarts, None, &ctx.snapshot()).await;
                return;
            }
        }
    }
}
