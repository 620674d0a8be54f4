//! The executing half of the engine: claim queued task instances within the
//! global, per-DAG and pool limits, run them on tokio with timeouts, record
//! the outcome of each try, and queue the downstream tasks that became ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::dag::{Dag, DagBag, TaskKind, TaskNode};
use crate::record::{Outcome, Ran, Recorder};
use crate::schedule::DataInterval;
use crate::store::{KeptConnection, Store, StoreError};
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

/// How many queued rows a claim locks and looks at per free slot. Rows
/// whose DAG is at `max_active_tasks` or whose pool is full are stepped
/// over, so a claim looks further than it takes; but each row it looks at
/// is locked, and locking four rows per slot was most of a claim's time in
/// a 10,000-wide fan-out where nothing is ever stepped over. So a claim
/// looks at one row per slot until it has to step over rows (it then
/// looks again, further), and at four per slot until a claim steps over
/// none.
#[derive(Debug, Default)]
pub struct Lookahead {
    crowded: bool,
}

impl Lookahead {
    /// The last claim stepped over queued tries (their DAG or pool full),
    /// which may fit once a running try ends.
    pub fn is_crowded(&self) -> bool {
        self.crowded
    }
}

/// Claim up to `limit` queued task instances for this worker, on the
/// executor's kept connection. A claim whose commit goes unanswered is
/// added to `unanswered`.
pub async fn claim(
    db: &mut KeptConnection,
    bag: &DagBag,
    me: &WorkerIdentity,
    limit: usize,
    lookahead: &mut Lookahead,
    unanswered: &UnansweredClaims,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let claimed = match db.get().await {
        Ok(conn) => claim_on(conn, bag, me, limit, lookahead, unanswered).await,
        Err(e) => Err(e),
    };
    db.checked(claimed)
}

async fn claim_on(
    conn: &mut PgConnection,
    bag: &DagBag,
    me: &WorkerIdentity,
    limit: usize,
    lookahead: &mut Lookahead,
    unanswered: &UnansweredClaims,
) -> Result<Vec<Claimed>, StoreError> {
    let mut tx = conn.begin().await?;
    let claim = claim_in(&mut tx, bag, me, limit, lookahead).await?;
    // Ended now, even when empty: a transaction dropped unfinished is
    // rolled back only at the connection's next use, and the executor
    // keeps its connection, claim lock held, until its next claim.
    if let Err(e) = tx.commit().await {
        unanswered.add(claim.xact.as_ref(), claim.tries.iter());
        return Err(e.into());
    }
    Ok(claim.tries)
}

/// A try as claimed: its instance and the try number the claim gave it.
type ClaimedTry = (String, String, String, i32, i32);

/// Claims whose COMMIT went out and whose answer never came back (the
/// connection broke): they may have committed, leaving rows `running`
/// under this worker that no one runs, and that this worker's heartbeat
/// would keep from the zombie reaper for as long as the process lives.
/// The executor's claims and the recorder's claims for it add theirs; the
/// executor's loop returns them to the queue ([`UnansweredClaims::requeue`]).
#[derive(Clone, Default)]
pub struct UnansweredClaims(Arc<std::sync::Mutex<Vec<Unanswered>>>);

/// One claim's transaction id and its tries.
type Unanswered = (String, Vec<ClaimedTry>);

impl UnansweredClaims {
    /// The tries claimed in transaction `xact`, whose commit went unanswered.
    pub(crate) fn add<'c>(&self, xact: Option<&String>, tries: impl Iterator<Item = &'c Claimed>) {
        let Some(xact) = xact else {
            return;
        };
        let tries = tries
            .map(|c| {
                (
                    c.dag_id.clone(),
                    c.run_id.clone(),
                    c.task_id.clone(),
                    c.map_index,
                    c.try_number,
                )
            })
            .collect();
        self.lock().push((xact.clone(), tries));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Unanswered>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Asks Postgres whether each claim's transaction committed
    /// (`pg_xact_status`), and puts the tries of those that did back in
    /// the queue as if never claimed. A claim that was rolled back is
    /// forgotten: its rows were never this claim's, and this worker may
    /// hold them under a later claim of the same try number (the
    /// recorder's retry of its batch claims them again). One still in
    /// progress (its commit not yet done) is asked about again next time.
    /// Returns how many tries were requeued; on an error every claim stays.
    pub async fn requeue(
        &self,
        db: &mut KeptConnection,
        me: &WorkerIdentity,
    ) -> Result<u64, StoreError> {
        let claims = std::mem::take(&mut *self.lock());
        if claims.is_empty() {
            return Ok(0);
        }
        let done = match db.get().await {
            Ok(conn) => requeue_committed(conn, me, &claims).await,
            Err(e) => Err(e),
        };
        match db.checked(done) {
            Ok((requeued, pending)) => {
                self.lock()
                    .extend(claims.into_iter().filter(|(x, _)| pending.contains(x)));
                Ok(requeued)
            }
            Err(e) => {
                self.lock().extend(claims);
                Err(e)
            }
        }
    }
}

/// The requeue of [`UnansweredClaims::requeue`], in one statement: how many
/// tries it requeued, and the transactions still in progress.
async fn requeue_committed(
    conn: &mut PgConnection,
    me: &WorkerIdentity,
    claims: &[Unanswered],
) -> Result<(u64, Vec<String>), StoreError> {
    let tries = claims
        .iter()
        .flat_map(|(x, tries)| tries.iter().map(move |t| (x.as_str(), t)));
    let (mut xacts, mut dags, mut runs, mut tasks, mut maps, mut numbers) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (x, (dag, run, task, map, number)) in tries {
        xacts.push(x);
        dags.push(dag.as_str());
        runs.push(run.as_str());
        tasks.push(task.as_str());
        maps.push(*map);
        numbers.push(*number);
    }
    let (requeued, pending): (i64, Vec<String>) = sqlx::query_as(
        "WITH status AS (
             SELECT x, pg_xact_status(x::xid8) AS status FROM unnest($1::text[]) AS x),
         requeued AS (
             UPDATE task_instances ti SET state = 'queued', try_number = ti.try_number - 1,
                    worker_id = NULL, hostname = NULL, start_date = NULL, queued_at = now()
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[])
                  AS k(xact, dag_id, run_id, task_id, map_index, try_number)
             JOIN status s ON s.x = k.xact
             WHERE s.status = 'committed'
               AND ti.dag_id = k.dag_id AND ti.run_id = k.run_id AND ti.task_id = k.task_id
               AND ti.map_index = k.map_index AND ti.try_number = k.try_number
               AND ti.worker_id = $8 AND ti.state = 'running'
             RETURNING 1)
         SELECT (SELECT count(*) FROM requeued),
                coalesce(array_agg(x) FILTER (WHERE status = 'in progress'), '{}')
         FROM status",
    )
    .bind(claims.iter().map(|(x, _)| x.as_str()).collect::<Vec<_>>())
    .bind(&xacts)
    .bind(&dags)
    .bind(&runs)
    .bind(&tasks)
    .bind(&maps)
    .bind(&numbers)
    .bind(&me.worker_id)
    .fetch_one(&mut *conn)
    .await?;
    if requeued > 0 {
        crate::store::write::notify_queued(&mut *conn, Some(&me.worker_id)).await?;
    }
    Ok((requeued as u64, pending))
}

/// Claim up to `limit` queued task instances in the caller's transaction,
/// which must end soon after: it holds the claim lock until it does. The
/// recorder claims this way the downstream tasks it has just queued
/// (`record::Handoff`), in the transaction that queued them.
pub(crate) async fn claim_in(
    tx: &mut PgConnection,
    bag: &DagBag,
    me: &WorkerIdentity,
    limit: usize,
    lookahead: &mut Lookahead,
) -> Result<Claim, StoreError> {
    let mut wide = lookahead.crowded;
    let picked = loop {
        let reads = claim_reads(&mut *tx, if wide { limit * 4 } else { limit }).await?;
        let (picked, stepped_over) = pick(bag, reads, limit);
        lookahead.crowded = stepped_over;
        // Looked at one row per slot and stepped over some: look further
        // now, in the same transaction (the rows stay ours), rather than
        // leave the free slots idle until the next wakeup.
        if stepped_over && !wide && picked.len() < limit {
            wide = true;
            continue;
        }
        break picked;
    };
    if picked.is_empty() {
        return Ok(Claim::default());
    }
    // Found by ctid alone (a TID scan), and joined to their runs only
    // after: matched on their keys, or updated in a join with their runs,
    // a plan from statistics behind a fan-out's burst read all of a run's
    // 10,000 instances per claim (40-200 ms a claim of 32). Nothing else
    // may stand beside the ctid: with `state = 'queued'` too, a plan from
    // those statistics scanned the queue's partial index for the 32 rows.
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "WITH claimed AS (
             UPDATE task_instances ti SET state = 'running', try_number = ti.try_number + 1,
                    worker_id = $2, hostname = $3, start_date = now(), end_date = NULL,
                    duration = NULL, heartbeat_at = now()
             WHERE ti.ctid = ANY($1::text[]::tid[])
             RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number,
                       ti.max_tries, ti.first_attempt_at, ti.map_item
         )
         SELECT c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number, c.max_tries,
                c.first_attempt_at, r.data_interval_start, r.data_interval_end, r.conf, c.map_item,
                pg_current_xact_id()::text AS xact
         FROM claimed c JOIN dag_runs r ON r.dag_id = c.dag_id AND r.run_id = c.run_id",
    )
    // Planned each time: a plan prepared while the table was small (a new
    // database, statistics not yet gathered) seq-scanned it for the ctids,
    // 25-40 ms a claim once a fan-out had added 10,000 rows.
    .persistent(false)
    .bind(&picked)
    .bind(&me.worker_id)
    .bind(&me.hostname)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Claim {
        xact: rows.first().map(|r| r.xact.clone()),
        tries: rows.into_iter().map(|r| r.claimed).collect(),
    })
}

/// What a claim took, and the id of the transaction it took it in.
#[derive(Default)]
pub(crate) struct Claim {
    pub tries: Vec<Claimed>,
    /// `pg_current_xact_id()`: whether the claim committed can be asked
    /// later (`pg_xact_status`), when its commit goes unanswered.
    pub xact: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    claimed: Claimed,
    xact: String,
}

/// The ctids of the candidates to claim, best first, within each DAG's
/// `max_active_tasks` and each pool's slots; and whether any candidate was
/// stepped over for them (or for a DAG this binary does not define).
fn pick(bag: &DagBag, reads: ClaimReads, limit: usize) -> (Vec<String>, bool) {
    let ClaimReads {
        candidates,
        running,
        pools,
    } = reads;
    let mut pool_free: HashMap<String, i64> = pools.into_iter().collect();
    let mut dag_running: HashMap<String, i64> = HashMap::new();
    for (dag_id, pool, instances, slots) in running {
        *dag_running.entry(dag_id).or_insert(0) += instances;
        if let Some(free) = pool_free.get_mut(&pool) {
            *free -= slots;
        }
    }
    let mut picked: Vec<String> = Vec::new();
    let mut stepped_over = false;
    for (ctid, dag_id, pool, slots) in candidates {
        if picked.len() == limit {
            break;
        }
        // A DAG this binary does not define (another version is deployed elsewhere).
        let Some(dag) = bag.get(&dag_id) else {
            stepped_over = true;
            continue;
        };
        let running = dag_running.entry(dag_id.clone()).or_insert(0);
        if *running >= dag.max_active_tasks as i64 {
            stepped_over = true;
            continue;
        }
        // An undeclared pool has no slots: the task waits until someone creates it.
        let free = pool_free.entry(pool).or_insert(0);
        if *free < slots as i64 {
            stepped_over = true;
            continue;
        }
        *free -= slots as i64;
        *running += 1;
        picked.push(ctid);
    }
    (picked, stepped_over)
}

/// What a claim decides on, read under the claim lock.
struct ClaimReads {
    /// Queued instances, best first, locked: (ctid, dag, pool, slots).
    candidates: Vec<(String, String, String, i32)>,
    /// Running instances and pool slots in use: (dag, pool, count, slots).
    running: Vec<(String, String, i64, i64)>,
    /// Every pool and its slots.
    pools: Vec<(String, i64)>,
}

/// Takes the claim lock, then reads up to `candidates` queued instances,
/// what runs now per DAG and pool (one pass over the running instances)
/// and the pools; in one round trip, as a claim of a wide fan-out is
/// bound by round trips. The lock and each read are statements of their
/// own so that each read sees every claim committed before the lock was
/// granted (a read in the lock's statement would use a snapshot taken
/// before it). A queued row's ctid comes too: the rows stay locked until
/// the claim commits, so the update finds them by it.
async fn claim_reads(
    tx: &mut sqlx::PgConnection,
    candidates: usize,
) -> Result<ClaimReads, StoreError> {
    use futures_util::TryStreamExt;
    use sqlx::{Either, Row};

    // No sorts: the candidates come in the order of their partial index.
    // On statistics from before a fan-out queued its instances (a new
    // database, or before autovacuum's next analyze) the planner expected
    // a few dozen queued rows and sorted all 10,000 instead, 10-15 ms a
    // claim. Local to the claim's transaction, as is JIT's being off: a
    // sort that cannot be avoided then costs 10^10, far past
    // `jit_above_cost` (compiling a plan of a scheduler pass so took
    // 150 ms, see `scheduler::advance_runs`).
    let sql = format!(
        "SET LOCAL enable_sort = off;
         SET LOCAL jit = off;
         SELECT pg_advisory_xact_lock({CLAIM_LOCK});
         SELECT ctid::text, dag_id, pool, pool_slots FROM task_instances
         WHERE state = 'queued' ORDER BY priority_weight DESC, queued_at, task_id, map_index
         LIMIT {candidates} FOR UPDATE SKIP LOCKED;
         SELECT dag_id, pool, count(*), sum(pool_slots)::bigint FROM task_instances
         WHERE state = 'running' GROUP BY dag_id, pool;
         SELECT name, slots::bigint FROM pools"
    );
    // Rows of statement n (from 0) come before its completion: the
    // candidates are set 3, the running counts 4, the pools 5.
    let mut sets: Vec<Vec<sqlx::postgres::PgRow>> = vec![Vec::new()];
    let mut stream = sqlx::raw_sql(&sql).fetch_many(&mut *tx);
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Left(_) => sets.push(Vec::new()),
            Either::Right(row) => sets.last_mut().expect("a set").push(row),
        }
    }
    drop(stream);
    let set = |n: usize| sets.get(n).map(Vec::as_slice).unwrap_or_default();
    let candidates = set(3)
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let running = set(4)
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let pools = set(5)
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(ClaimReads {
        candidates,
        running,
        pools,
    })
}

/// Marks the tries `me` runs as alive (the zombie reaper requeues those
/// whose heartbeat stops); returns how many it marked. Rows another
/// transaction holds are skipped: the recorder holds the ones it is
/// finishing, and waiting for them while holding others deadlocked with it
/// (the two lock a worker's running rows in different orders), stalling
/// both for the deadlock timeout.
pub async fn heartbeat_tries(store: &Store, me: &WorkerIdentity) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE task_instances SET heartbeat_at = now()
         WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM task_instances WHERE worker_id = $1 AND state = 'running'
             FOR UPDATE SKIP LOCKED))",
    )
    .bind(&me.worker_id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected())
}

/// What the caller should wake after a try is recorded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Finished {
    /// Downstream tasks were queued and not all of them handed to this
    /// executor (`record::Handoff`): an executor should claim (other
    /// processes' were woken).
    pub queued: bool,
    /// The run may need a full scheduler pass (leaf finished, failure, skip).
    pub needs_scheduler: bool,
}

/// One of the executor's `parallelism` slots, held by a try while it
/// executes. It is given back when the try has run, before its outcome is
/// recorded, so the executor claims the next tries while the last ones
/// are written: the two overlap instead of taking turns.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Slot {
    pub fn new(permit: OwnedSemaphorePermit, freed: Arc<Notify>) -> Self {
        Slot {
            permit: Some(permit),
            freed,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permit first: whoever the notice wakes finds the slot free.
        drop(self.permit.take());
        self.freed.notify_one();
    }
}

/// Run one claimed try to its end, give its slot back, and have `recorder`
/// record it. `inputs` are its upstream outputs when [`load_inputs`] read
/// them with its claim (else they are read here). `abort` is fired when
/// the process shuts down hard; the try is then left for the shutdown path
/// to requeue.
#[allow(clippy::too_many_arguments)]
pub async fn run_claimed(
    store: &Store,
    dag: Arc<Dag>,
    me: &WorkerIdentity,
    claimed: Claimed,
    inputs: Option<Inputs>,
    recorder: &Recorder,
    abort: CancellationToken,
    slot: Slot,
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
    let upstream = match inputs {
        Some(inputs) => inputs,
        None => Arc::new(load_upstream_outputs(store, &dag, &claimed, task).await?),
    };
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
    let start = Utc::now();
    let outcome = execute(task, ctx, &claimed, cancel).await;
    let ran = Ran {
        start,
        end: Utc::now(),
    };
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
    drop(slot);
    recorder.record(dag, claimed, outcome, ran, rest).await
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
    let inputs: Vec<&str> = task.inputs().map(String::as_str).collect();
    if inputs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i32, Value)> = sqlx::query_as(
        "SELECT task_id, map_index, value FROM xcom
         WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3) AND key = 'return_value'
         ORDER BY task_id, map_index",
    )
    .bind(&claimed.dag_id)
    .bind(&claimed.run_id)
    .bind(&inputs)
    .fetch_all(store.pool())
    .await?;
    let mut by_task: HashMap<String, Vec<(i32, Value)>> = HashMap::new();
    for (task_id, map_index, value) in rows {
        by_task.entry(task_id).or_default().push((map_index, value));
    }
    // A mapped upstream's outputs reach its readers as one list, unless
    // they are in one mapped group (docs/mapping.md).
    Ok(inputs
        .into_iter()
        .filter_map(|up| {
            let up_task = dag.task(up)?;
            let rows: Vec<(i32, Value)> = by_task.remove(up).unwrap_or_default();
            crate::mapping::input_of(task, claimed.map_index, up_task, rows)
                .map(|v| (up.to_owned(), v))
        })
        .collect())
}

/// A try's upstream outputs, by upstream task id; shared by the instances
/// of a mapped task claimed together.
pub type Inputs = Arc<HashMap<String, Value>>;

/// The upstream outputs of every claimed try, read in one query: a claim
/// of many instances of a fan-out reads the output they share once, not
/// once per try.
pub async fn load_inputs(
    db: &mut KeptConnection,
    bag: &DagBag,
    claimed: &[Claimed],
) -> Result<Vec<Inputs>, StoreError> {
    let inputs = match db.get().await {
        Ok(conn) => load_inputs_on(conn, bag, claimed).await,
        Err(e) => Err(e),
    };
    db.checked(inputs)
}

async fn load_inputs_on(
    conn: &mut PgConnection,
    bag: &DagBag,
    claimed: &[Claimed],
) -> Result<Vec<Inputs>, StoreError> {
    type TaskKey<'a> = (&'a str, &'a str, &'a str);
    let mut wanted: Vec<TaskKey> = Vec::new();
    for c in claimed {
        if let Some(task) = bag.get(&c.dag_id).and_then(|d| d.task(&c.task_id)) {
            wanted.extend(
                task.inputs()
                    .map(|u| (c.dag_id.as_str(), c.run_id.as_str(), u.as_str())),
            );
        }
    }
    wanted.sort_unstable();
    wanted.dedup();
    let mut rows_of: HashMap<TaskKey, Vec<(i32, Value)>> = HashMap::new();
    let rows: Vec<(String, String, String, i32, Value)> = if wanted.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "SELECT x.dag_id, x.run_id, x.task_id, x.map_index, x.value
             FROM xcom x
             JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(dag_id, run_id, task_id)
               ON x.dag_id = w.dag_id AND x.run_id = w.run_id AND x.task_id = w.task_id
             WHERE x.key = 'return_value'
             ORDER BY x.dag_id, x.run_id, x.task_id, x.map_index",
        )
        .bind(wanted.iter().map(|w| w.0).collect::<Vec<_>>())
        .bind(wanted.iter().map(|w| w.1).collect::<Vec<_>>())
        .bind(wanted.iter().map(|w| w.2).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?
    };
    for (dag_id, run_id, task_id, map_index, value) in &rows {
        let k = wanted
            .binary_search(&(dag_id.as_str(), run_id.as_str(), task_id.as_str()))
            .map(|i| wanted[i]);
        if let Ok(k) = k {
            rows_of
                .entry(k)
                .or_default()
                .push((*map_index, value.clone()));
        }
    }
    // A mapped upstream's outputs reach its readers as one list, computed
    // once for all of them; a reader in the same mapped group gets its own
    // instance's (docs/mapping.md).
    let paired = |c: &Claimed, up: &str| -> Option<bool> {
        let dag = bag.get(&c.dag_id)?;
        Some(dag.task(&c.task_id)?.follows_index_of(dag.task(up)?))
    };
    let mut read_paired: HashSet<TaskKey> = HashSet::new();
    for c in claimed {
        if let Some(task) = bag.get(&c.dag_id).and_then(|d| d.task(&c.task_id)) {
            for u in task.inputs() {
                if paired(c, u) == Some(true) {
                    read_paired.insert((c.dag_id.as_str(), c.run_id.as_str(), u.as_str()));
                }
            }
        }
    }
    let mut outputs: HashMap<TaskKey, Value> = HashMap::new();
    for k in &wanted {
        if read_paired.contains(k) {
            continue;
        }
        let mapped = bag
            .get(k.0)
            .and_then(|d| d.task(k.2))
            .is_some_and(|t| t.map.is_some());
        let rows = rows_of.remove(k).unwrap_or_default();
        if let Some(v) = crate::mapping::collect_outputs(mapped, rows) {
            outputs.insert(*k, v);
        }
    }
    // Shared by the tries of one task, or of one instance when it reads
    // its mapped group's instances.
    let mut shared: HashMap<(TaskKey, i32), Inputs> = HashMap::new();
    Ok(claimed
        .iter()
        .map(|c| {
            let me = (c.dag_id.as_str(), c.run_id.as_str(), c.task_id.as_str());
            let Some(task) = bag.get(&c.dag_id).and_then(|d| d.task(&c.task_id)) else {
                return Arc::default();
            };
            let per_instance =
                task.in_mapped_group && task.inputs().any(|u| paired(c, u) == Some(true));
            let index = if per_instance { c.map_index } else { i32::MIN };
            shared
                .entry((me, index))
                .or_insert_with(|| {
                    Arc::new(
                        task.inputs()
                            .filter_map(|u| {
                                let key = (me.0, me.1, u.as_str());
                                if paired(c, u) == Some(true) {
                                    let (_, v) = rows_of
                                        .get(&key)?
                                        .iter()
                                        .find(|(i, _)| *i == c.map_index)?;
                                    return Some((u.clone(), v.clone()));
                                }
                                Some((u.clone(), outputs.get(&key)?.clone()))
                            })
                            .collect(),
                    )
                })
                .clone()
        })
        .collect())
}

/// How often a running try's log lines are stored, for readers following it.
const LOG_FLUSH: Duration = Duration::from_millis(500);

/// Flush log lines every [`LOG_FLUSH`], so running tasks can be followed.
/// On stop, returns the lines not yet written: they are stored in the same
/// transaction as the try's outcome, saving a commit per task.
async fn write_logs(
    store: Store,
    claimed: Claimed,
    mut rx: mpsc::UnboundedReceiver<LogLine>,
    mut stop: oneshot::Receiver<()>,
) -> Vec<LogLine> {
    let mut buf: Vec<LogLine> = Vec::new();
    // First due one period from now. `interval`'s first tick is immediate
    // in name only: awaited, it waits for the timer's next millisecond,
    // and every try (each hop of a chain) waited that long before its
    // outcome could be recorded.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + LOG_FLUSH, LOG_FLUSH);
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

pub(crate) async fn flush_logs(store: &Store, c: &Claimed, buf: &mut Vec<LogLine>) {
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
