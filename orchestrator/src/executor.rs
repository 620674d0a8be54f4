//! The executing half of the engine: claim queued task instances within the
//! global, per-DAG and pool limits, run them on tokio with timeouts, record
//! the outcome of each try, and queue the downstream tasks that became ready.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::alert::{self, AlertEvent};
use crate::dag::{Dag, DagBag, TaskKind, TaskNode};
use crate::schedule::DataInterval;
use crate::state::{evaluate, Decision, TaskState, TriggerRule, UpstreamSummary};
use crate::store::write::notify_wakeup;
use crate::store::{Store, StoreError};
use crate::task::{LogLine, TaskContext, TaskError, TaskLogger};

/// Who this process is, as recorded on the task instances it runs.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    pub worker_id: String,
    pub hostname: String,
}

/// A task instance this process now owns for one try.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i32,
    pub try_number: i32,
    pub max_tries: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub conf: Value,
    /// The item a mapped instance was expanded for.
    pub map_item: Option<Value>,
}

/// Serializes claims across processes so pool and per-DAG limits hold globally.
const CLAIM_LOCK: i64 = 7240002;

/// Claim up to `limit` queued task instances for this worker.
pub async fn claim(
    store: &Store,
    bag: &DagBag,
    me: &WorkerIdentity,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut tx = store.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    let candidates: Vec<(String, String, String, i32, String, i32)> = sqlx::query_as(
        "SELECT dag_id, run_id, task_id, map_index, pool, pool_slots FROM task_instances
         WHERE state = 'queued' ORDER BY priority_weight DESC, queued_at, task_id
         LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind((limit * 4) as i64)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let pool_free: HashMap<String, i64> = sqlx::query_as(
        "SELECT p.name, p.slots - COALESCE(sum(ti.pool_slots), 0)::bigint FROM pools p
         LEFT JOIN task_instances ti ON ti.pool = p.name AND ti.state = 'running'
         GROUP BY p.name, p.slots",
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let dag_running: HashMap<String, i64> = sqlx::query_as(
        "SELECT dag_id, count(*) FROM task_instances WHERE state = 'running' GROUP BY dag_id",
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    let mut pool_free = pool_free;
    let mut dag_running = dag_running;
    let mut picked: Vec<(String, String, String, i32)> = Vec::new();
    for (dag_id, run_id, task_id, map_index, pool, slots) in candidates {
        if picked.len() == limit {
            break;
        }
        // A DAG this binary does not define (another version is deployed elsewhere).
        let Some(dag) = bag.get(&dag_id) else {
            continue;
        };
        let running = dag_running.entry(dag_id.clone()).or_insert(0);
        if *running >= dag.max_active_tasks as i64 {
            continue;
        }
        // An undeclared pool has no slots: the task waits until someone creates it.
        let free = pool_free.entry(pool).or_insert(0);
        if *free < slots as i64 {
            continue;
        }
        *free -= slots as i64;
        *running += 1;
        picked.push((dag_id, run_id, task_id, map_index));
    }
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let (dags, runs, tasks, maps) = unzip4(picked);
    let claimed: Vec<Claimed> = sqlx::query_as(
        "UPDATE task_instances ti SET state = 'running', try_number = ti.try_number + 1,
                worker_id = $5, hostname = $6, start_date = now(), end_date = NULL, duration = NULL,
                heartbeat_at = now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS c(dag_id, run_id, task_id, map_index),
              dag_runs r
         WHERE ti.dag_id = c.dag_id AND ti.run_id = c.run_id AND ti.task_id = c.task_id
           AND ti.map_index = c.map_index AND ti.state = 'queued'
           AND r.dag_id = ti.dag_id AND r.run_id = ti.run_id
         RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.max_tries,
                   ti.first_attempt_at, r.data_interval_start, r.data_interval_end, r.conf,
                   ti.map_item",
    )
    .bind(&dags)
    .bind(&runs)
    .bind(&tasks)
    .bind(&maps)
    .bind(&me.worker_id)
    .bind(&me.hostname)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

fn unzip4(
    v: Vec<(String, String, String, i32)>,
) -> (Vec<String>, Vec<String>, Vec<String>, Vec<i32>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (a, b, c, d) in v {
        out.0.push(a);
        out.1.push(b);
        out.2.push(c);
        out.3.push(d);
    }
    out
}

/// How a try ended.
#[derive(Debug, Clone)]
enum Outcome {
    Success(Value),
    Skipped(String),
    Failed { error: String, retryable: bool },
    Reschedule { at: DateTime<Utc> },
}

/// What the caller should wake after a try is recorded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Finished {
    /// Downstream tasks were queued: wake executors.
    pub queued: bool,
    /// The run may need a full scheduler pass (leaf finished, failure, skip).
    pub needs_scheduler: bool,
}

/// Run one claimed try to its end and record it. `abort` is fired when the
/// process shuts down hard; the try is then left for the shutdown path to requeue.
pub async fn run_claimed(
    store: &Store,
    dag: Arc<Dag>,
    me: &WorkerIdentity,
    claimed: Claimed,
    abort: CancellationToken,
) -> Result<Finished, StoreError> {
    let Some(task) = dag.task(&claimed.task_id) else {
        return Ok(Finished::default());
    };
    let started = Instant::now();
    let (log_tx, log_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let writer = tokio::spawn(write_logs(store.clone(), claimed.clone(), log_rx, stop_rx));
    let log = TaskLogger::channel(log_tx);
    log.info(format!(
        "Starting try {} of {} for {}.{}{} ({}) on {}",
        claimed.try_number,
        claimed.max_tries + 1,
        claimed.dag_id,
        claimed.task_id,
        if claimed.map_index >= 0 {
            format!(" [{}]", claimed.map_index)
        } else {
            String::new()
        },
        claimed.run_id,
        me.worker_id
    ));
    let upstream = load_upstream_outputs(store, &dag, &claimed, task).await?;
    let cancel = abort.child_token();
    let ctx = TaskContext::new(
        claimed.dag_id.clone(),
        claimed.task_id.clone(),
        claimed.run_id.clone(),
        DataInterval {
            start: claimed.data_interval_start,
            end: claimed.data_interval_end,
        },
        claimed.try_number,
        claimed.max_tries,
        dag.resolve_params(&claimed.conf),
        log.clone(),
        cancel.clone(),
        upstream,
    )
    .with_map(claimed.map_index, claimed.map_item.clone())
    .with_store(store.clone());
    let outcome = execute(task, ctx, &claimed, cancel).await;
    if abort.is_cancelled() {
        log.warn("process shutting down: try returned to the queue");
        let _ = stop_tx.send(());
        if let Ok(mut rest) = writer.await {
            flush_logs(store, &claimed, &mut rest).await;
        }
        return Ok(Finished::default());
    }
    match &outcome {
        Outcome::Success(_) => log.info(format!(
            "Task succeeded in {:.3}s",
            started.elapsed().as_secs_f64()
        )),
        Outcome::Skipped(reason) => log.info(format!("Task skipped: {reason}")),
        Outcome::Failed { error, .. } => log.error(format!("Task failed: {error}")),
        Outcome::Reschedule { at } => log.info(format!("Condition not met; poking again at {at}")),
    }
    let _ = stop_tx.send(());
    let rest = writer.await.unwrap_or_default();
    record_outcome_retrying(store, &dag, task, me, &claimed, outcome, rest, &abort).await
}

/// How long an outcome is retried through a database outage: a supervised
/// embedded Postgres restarts within seconds; a failover takes longer.
const RECORD_RETRY_FOR: Duration = Duration::from_secs(120);

/// This worker recorded try `c` already (a sensor's reschedule writes no
/// try row: its lost commit is taken as not recorded, and at worst its
/// last log lines are stored twice).
async fn try_recorded(store: &Store, c: &Claimed, me: &WorkerIdentity) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM task_tries WHERE dag_id = $1 AND run_id = $2 AND task_id = $3
                        AND map_index = $4 AND try_number = $5 AND worker_id = $6)",
    )
    .bind(&c.dag_id)
    .bind(&c.run_id)
    .bind(&c.task_id)
    .bind(c.map_index)
    .bind(c.try_number)
    .bind(&me.worker_id)
    .fetch_one(store.pool())
    .await?)
}

/// [`record_outcome`], retried with backoff while the database cannot be
/// reached, so a finished try is not lost to a restart of Postgres (and
/// then run again by the zombie reaper). Recording is idempotent: it is
/// guarded by worker and try, and a retry after a commit whose answer was
/// lost finds the try recorded and stops.
#[expect(
    clippy::too_many_arguments,
    reason = "record_outcome's, plus the abort token"
)]
async fn record_outcome_retrying(
    store: &Store,
    dag: &Dag,
    task: &TaskNode,
    me: &WorkerIdentity,
    c: &Claimed,
    outcome: Outcome,
    log_tail: Vec<LogLine>,
    abort: &CancellationToken,
) -> Result<Finished, StoreError> {
    let deadline = Instant::now() + RECORD_RETRY_FOR;
    let mut delay = Duration::from_millis(200);
    let mut attempt: u32 = 1;
    loop {
        let result = record_outcome(
            store,
            dag,
            task,
            me,
            c,
            outcome.clone(),
            log_tail.clone(),
            attempt > 1,
        )
        .await;
        match result {
            Err(e) if e.is_connection() && Instant::now() < deadline && !abort.is_cancelled() => {
                tracing::warn!(dag_id = %c.dag_id, task_id = %c.task_id, try_number = c.try_number,
                    attempt, "recording the try's outcome failed, retrying in {delay:?}: {e}");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = abort.cancelled() => return Err(e),
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn execute(
    task: &TaskNode,
    ctx: TaskContext,
    claimed: &Claimed,
    cancel: CancellationToken,
) -> Outcome {
    let timeout = task.timeout;
    match &task.kind {
        TaskKind::Operator(op) => {
            let op = op.clone();
            let fut = tokio::spawn(async move { op.execute(ctx).await });
            match with_timeout(timeout, fut, &cancel).await {
                Err(limit) => Outcome::Failed {
                    error: format!("timed out after {limit:?}; cancelled"),
                    retryable: true,
                },
                Ok(Err(join)) => Outcome::Failed {
                    error: format!("task panicked: {join}"),
                    retryable: true,
                },
                Ok(Ok(Ok(value))) => Outcome::Success(value),
                Ok(Ok(Err(TaskError::Skip(reason)))) => Outcome::Skipped(reason),
                Ok(Ok(Err(e))) => Outcome::Failed {
                    retryable: e.is_retryable(),
                    error: e.to_string(),
                },
            }
        }
        TaskKind::Sensor {
            sensor,
            poke_interval,
            timeout: sensor_timeout,
        } => {
            let first = claimed.first_attempt_at.unwrap_or_else(Utc::now);
            let sensor = sensor.clone();
            let fut = tokio::spawn(async move { sensor.poke(ctx).await });
            let res = with_timeout(timeout, fut, &cancel).await;
            let waited = (Utc::now() - first).to_std().unwrap_or_default();
            match res {
                Ok(Ok(Ok(true))) => Outcome::Success(Value::Null),
                Ok(Ok(Ok(false))) if waited >= *sensor_timeout => Outcome::Failed {
                    error: format!("sensor timed out: condition not met after {sensor_timeout:?}"),
                    retryable: false,
                },
                Ok(Ok(Ok(false))) => Outcome::Reschedule {
                    at: Utc::now() + chrono::Duration::from_std(*poke_interval).unwrap_or_default(),
                },
                Ok(Ok(Err(TaskError::Skip(reason)))) => Outcome::Skipped(reason),
                Ok(Ok(Err(e))) => Outcome::Failed {
                    retryable: e.is_retryable(),
                    error: e.to_string(),
                },
                Ok(Err(join)) => Outcome::Failed {
                    error: format!("sensor panicked: {join}"),
                    retryable: true,
                },
                Err(limit) => Outcome::Failed {
                    error: format!("poke timed out after {limit:?}"),
                    retryable: true,
                },
            }
        }
    }
}

/// Await `fut`, cancelling the task's token if it outlives `limit`.
async fn with_timeout<T>(
    limit: Option<Duration>,
    fut: tokio::task::JoinHandle<T>,
    cancel: &CancellationToken,
) -> Result<Result<T, tokio::task::JoinError>, Duration> {
    let Some(limit) = limit else {
        return Ok(fut.await);
    };
    let abort = fut.abort_handle();
    match tokio::time::timeout(limit, fut).await {
        Ok(res) => Ok(res),
        Err(_) => {
            cancel.cancel();
            abort.abort();
            Err(limit)
        }
    }
}

async fn load_upstream_outputs(
    store: &Store,
    dag: &Dag,
    claimed: &Claimed,
    task: &TaskNode,
) -> Result<HashMap<String, Value>, StoreError> {
    if task.upstream.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i32, Value)> = sqlx::query_as(
        "SELECT task_id, map_index, value FROM xcom
         WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3) AND key = 'return_value'
         ORDER BY task_id, map_index",
    )
    .bind(&claimed.dag_id)
    .bind(&claimed.run_id)
    .bind(&task.upstream)
    .fetch_all(store.pool())
    .await?;
    let mut by_task: HashMap<String, Vec<(i32, Value)>> = HashMap::new();
    for (task_id, map_index, value) in rows {
        by_task.entry(task_id).or_default().push((map_index, value));
    }
    // A mapped upstream's outputs reach its readers as one list.
    Ok(task
        .upstream
        .iter()
        .filter_map(|up| {
            let mapped: bool = dag.task(up).is_some_and(|t| t.map.is_some());
            let rows: Vec<(i32, Value)> = by_task.remove(up).unwrap_or_default();
            crate::mapping::collect_outputs(mapped, rows).map(|v| (up.clone(), v))
        })
        .collect())
}

/// Flush log lines every half second, so running tasks can be followed.
/// On stop, returns the lines not yet written: they are stored in the same
/// transaction as the try's outcome, saving a commit per task.
async fn write_logs(
    store: Store,
    claimed: Claimed,
    mut rx: mpsc::UnboundedReceiver<LogLine>,
    mut stop: oneshot::Receiver<()>,
) -> Vec<LogLine> {
    let mut buf: Vec<LogLine> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.tick().await;
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(l) => buf.push(l),
                None => break,
            },
            _ = tick.tick() => flush_logs(&store, &claimed, &mut buf).await,
            _ = &mut stop => break,
        }
    }
    while let Ok(l) = rx.try_recv() {
        buf.push(l);
    }
    buf
}

async fn flush_logs(store: &Store, c: &Claimed, buf: &mut Vec<LogLine>) {
    if buf.is_empty() {
        return;
    }
    match insert_logs(store.pool(), c, buf).await {
        Ok(()) => buf.clear(),
        // Keep the lines and try again at the next flush rather than lose them.
        Err(e) => {
            tracing::warn!(task_id = %c.task_id, "could not store {} log lines: {e}", buf.len())
        }
    }
}

async fn insert_logs<'e, E: sqlx::PgExecutor<'e>>(
    db: E,
    c: &Claimed,
    lines: &[LogLine],
) -> Result<(), sqlx::Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let ts: Vec<DateTime<Utc>> = lines.iter().map(|l| l.ts).collect();
    let levels: Vec<&str> = lines.iter().map(|l| l.level).collect();
    let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    sqlx::query(
        "INSERT INTO task_logs (dag_id, run_id, task_id, map_index, try_number, ts, level, message)
         SELECT $1, $2, $3, $4, $5, * FROM unnest($6::timestamptz[], $7::text[], $8::text[])",
    )
    .bind(&c.dag_id)
    .bind(&c.run_id)
    .bind(&c.task_id)
    .bind(c.map_index)
    .bind(c.try_number)
    .bind(&ts)
    .bind(&levels)
    .bind(&messages)
    .execute(db)
    .await?;
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one try's identity, outcome and log"
)]
async fn record_outcome(
    store: &Store,
    dag: &Dag,
    task: &TaskNode,
    me: &WorkerIdentity,
    c: &Claimed,
    outcome: Outcome,
    log_tail: Vec<LogLine>,
    retrying: bool,
) -> Result<Finished, StoreError> {
    let (state, next_attempt, error, output, reschedule) = match outcome {
        Outcome::Success(v) => (TaskState::Success, None, None, Some(v), false),
        Outcome::Skipped(_) => (TaskState::Skipped, None, None, None, false),
        Outcome::Reschedule { at } => (TaskState::UpForReschedule, Some(at), None, None, true),
        Outcome::Failed { error, retryable } => {
            if retryable && c.try_number <= c.max_tries {
                let delay = task.retry.delay_after(c.try_number.max(1) as u32);
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                (TaskState::UpForRetry, Some(at), Some(error), None, false)
            } else {
                (TaskState::Failed, None, Some(error), None, false)
            }
        }
    };
    let mut tx = store.pool().begin().await?;
    // Guarded by worker and try: a zombie-reaped or requeued try must not overwrite newer state.
    let owned: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "UPDATE task_instances SET state = $7, next_attempt_at = $8, end_date = now(),
                duration = EXTRACT(EPOCH FROM now() - start_date),
                first_attempt_at = CASE WHEN $9 THEN COALESCE(first_attempt_at, start_date) ELSE first_attempt_at END,
                try_number = CASE WHEN $9 THEN try_number - 1 ELSE try_number END
         WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4
           AND state = 'running' AND worker_id = $5 AND try_number = $6
         RETURNING start_date",
    )
    .bind(&c.dag_id)
    .bind(&c.run_id)
    .bind(&c.task_id)
    .bind(c.map_index)
    .bind(&me.worker_id)
    .bind(c.try_number)
    .bind(state.as_str())
    .bind(next_attempt)
    .bind(reschedule)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(start_date) = owned else {
        drop(tx);
        if retrying && try_recorded(store, c, me).await? {
            // An earlier attempt committed; only its answer was lost.
            return Ok(Finished {
                queued: false,
                needs_scheduler: true,
            });
        }
        let mut lines = log_tail;
        flush_logs(store, c, &mut lines).await;
        tracing::warn!(dag_id = %c.dag_id, task_id = %c.task_id, try_number = c.try_number,
            "try no longer owned by this worker (reaped as zombie or cleared); outcome discarded");
        return Ok(Finished::default());
    };
    insert_logs(&mut *tx, c, &log_tail).await?;
    if !reschedule {
        let try_state = if state == TaskState::UpForRetry {
            "failed"
        } else {
            state.as_str()
        };
        sqlx::query(
            "INSERT INTO task_tries (dag_id, run_id, task_id, map_index, try_number, state, hostname, worker_id,
                                     start_date, end_date, duration, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), EXTRACT(EPOCH FROM now() - $9), $10)
             ON CONFLICT DO NOTHING",
        )
        .bind(&c.dag_id)
        .bind(&c.run_id)
        .bind(&c.task_id)
        .bind(c.map_index)
        .bind(c.try_number)
        .bind(try_state)
        .bind(&me.hostname)
        .bind(&me.worker_id)
        .bind(start_date)
        .bind(&error)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(value) = output.filter(|v| !v.is_null()) {
        sqlx::query(
            "INSERT INTO xcom (dag_id, run_id, task_id, map_index, key, value) VALUES ($1, $2, $3, $4, 'return_value', $5)
             ON CONFLICT (dag_id, run_id, task_id, map_index, key) DO UPDATE SET value = EXCLUDED.value, created_at = now()",
        )
        .bind(&c.dag_id)
        .bind(&c.run_id)
        .bind(&c.task_id)
        .bind(c.map_index)
        .bind(&value)
        .execute(&mut *tx)
        .await?;
    }
    if state == TaskState::Success {
        crate::asset::record_outlet_events(
            &mut tx,
            dag,
            task,
            &c.run_id,
            c.map_index,
            c.try_number,
            DataInterval {
                start: c.data_interval_start,
                end: c.data_interval_end,
            },
        )
        .await?;
    }
    if let Some(alerts) = &task.alerts {
        let event = match state {
            TaskState::Failed => Some(AlertEvent::Failure),
            TaskState::UpForRetry => Some(AlertEvent::Retry),
            TaskState::Success => Some(AlertEvent::Success),
            _ => None,
        };
        if let Some(event) = event {
            let what = match event {
                AlertEvent::Failure => "failed",
                AlertEvent::Retry => "failed and will be retried",
                _ => "succeeded",
            };
            let mut message = format!(
                "Task {}.{} {what} (run {}, try {} of {})",
                c.dag_id,
                c.task_id,
                c.run_id,
                c.try_number,
                c.max_tries + 1
            );
            if let Some(e) = &error {
                message.push_str(": ");
                message.push_str(e);
            }
            let detail = serde_json::json!({
                "error": error,
                "next_attempt_at": next_attempt,
                "hostname": me.hostname,
            });
            alert::enqueue(
                &mut tx,
                alerts,
                event,
                &c.dag_id,
                &c.run_id,
                Some(&c.task_id),
                Some(c.try_number),
                &message,
                &detail,
            )
            .await?;
        }
    }
    tx.commit().await?;

    if !state.is_finished() {
        // Retry or reschedule: the scheduler queues it again when due.
        return Ok(Finished {
            queued: false,
            needs_scheduler: true,
        });
    }
    queue_ready_downstream(store, dag, task, &c.run_id, state).await
}

/// After a task finishes, queue its downstream tasks that are now ready,
/// without waiting for a scheduler pass: this keeps task-to-task latency in
/// milliseconds. Anything other than "run now" is left to the scheduler.
async fn queue_ready_downstream(
    store: &Store,
    dag: &Dag,
    task: &TaskNode,
    run_id: &str,
    state: TaskState,
) -> Result<Finished, StoreError> {
    let mut finished = Finished {
        queued: false,
        needs_scheduler: task.downstream.is_empty() || state != TaskState::Success,
    };
    let downstream: Vec<&TaskNode> = task.downstream.iter().filter_map(|d| dag.task(d)).collect();
    let mut ready: Vec<&str> = Vec::new();
    for d in &downstream {
        if waits_for_all(d.trigger_rule)
            && d.upstream.len() > 1
            && any_upstream_pending(store, dag, run_id, d).await?
        {
            continue;
        }
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM task_instances
             WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3) GROUP BY state",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(&d.upstream)
        .fetch_all(store.pool())
        .await?;
        let summary = UpstreamSummary::from_states(counts.iter().flat_map(|(s, n)| {
            std::iter::repeat_n(s.parse().unwrap_or(TaskState::None), *n as usize)
        }));
        match evaluate(d.trigger_rule, summary) {
            // Expanding a mapped task is the scheduler's (crate::mapping).
            Decision::Run if d.map.is_some() => finished.needs_scheduler = true,
            Decision::Run => ready.push(&d.id),
            Decision::Wait => {}
            Decision::Skip | Decision::UpstreamFailed => finished.needs_scheduler = true,
        }
    }
    if !ready.is_empty() {
        let mut tx = store.pool().begin().await?;
        let res = sqlx::query(
            "UPDATE task_instances SET state = 'queued', queued_at = now()
             WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3) AND state = 'none'",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(&ready)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() > 0 {
            notify_wakeup(&mut *tx).await?;
            finished.queued = true;
        }
        tx.commit().await?;
    }
    Ok(finished)
}

/// Rules that cannot fire while any upstream is unfinished.
fn waits_for_all(rule: TriggerRule) -> bool {
    matches!(
        rule,
        TriggerRule::AllSuccess
            | TriggerRule::AllFailed
            | TriggerRule::AllDone
            | TriggerRule::NoneFailed
            | TriggerRule::NoneSkipped
    )
}

/// Cheap early answer for fan-ins: is one of `d`'s upstreams certainly still
/// unfinished? Looks at a few unfinished instances of the run (a partial
/// index keeps this small) instead of all of `d`'s upstreams, so the n
/// upstreams of a fan-in cost O(1) each instead of O(n). `false` means "not
/// sure": the caller then counts properly.
async fn any_upstream_pending(
    store: &Store,
    dag: &Dag,
    run_id: &str,
    d: &TaskNode,
) -> Result<bool, StoreError> {
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT task_id FROM task_instances
         WHERE dag_id = $1 AND run_id = $2
           AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')
         LIMIT 16",
    )
    .bind(&dag.id)
    .bind(run_id)
    .fetch_all(store.pool())
    .await?;
    Ok(pending.iter().any(|p| d.upstream.iter().any(|u| u == p)))
}

/// Put this worker's running tries back in the queue (hard shutdown), as if
/// they had never started.
pub async fn requeue_own(store: &Store, me: &WorkerIdentity) -> Result<u64, StoreError> {
    let res = sqlx::query(
        "UPDATE task_instances SET state = 'queued', try_number = try_number - 1, worker_id = NULL,
                hostname = NULL, start_date = NULL, queued_at = now()
         WHERE worker_id = $1 AND state = 'running'",
    )
    .bind(&me.worker_id)
    .execute(store.pool())
    .await?;
    if res.rows_affected() > 0 {
        store.wake().await?;
    }
    Ok(res.rows_affected())
}

/// Slot counts per pool, for display.
pub async fn pool_usage(store: &Store) -> Result<BTreeMap<String, (i32, i64)>, StoreError> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT p.name, p.slots, COALESCE(sum(ti.pool_slots), 0)::bigint FROM pools p
         LEFT JOIN task_instances ti ON ti.pool = p.name AND ti.state = 'running'
         GROUP BY p.name, p.slots ORDER BY p.name",
    )
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().map(|(n, s, u)| (n, (s, u))).collect())
}
