//! Recording finished tries: each try's state, its try row, its last log
//! lines, its output, its asset events and alerts in one transaction, then
//! queueing the downstream tasks that became ready.
//!
//! Tries that end together are recorded together by one [`Recorder`] per
//! process: one transaction and one readiness check per batch instead of
//! per try. A batch forms by itself (whatever ended while the last batch
//! was written), so a lone try waits for nothing, and a wide fan-out
//! records its tries hundreds at a time (docs/scheduler.md, "Recording").

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::{self, AlertEvent};
use crate::dag::{Dag, DagBag, TaskNode};
use crate::executor::{self, Claimed, Finished, Lookahead, UnansweredClaims, WorkerIdentity};
use crate::schedule::DataInterval;
use crate::state::{evaluate, Decision, TaskState, TriggerRule, UpstreamSummary};
use crate::store::write::{notify_queued, notify_wakeup};
use crate::store::{list_statement, KeptConnection, Store, StoreError};
use crate::task::LogLine;
use sqlx::{Connection, PgConnection};

/// How a try ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Success(Value),
    Skipped(String),
    Failed { error: String, retryable: bool },
    Reschedule { at: DateTime<Utc> },
}

/// How long a batch is retried through a database outage: a supervised
/// embedded Postgres restarts within seconds; a failover takes longer.
const RECORD_RETRY_FOR: Duration = Duration::from_secs(120);

/// The most tries one transaction records.
const MAX_BATCH: usize = 512;

/// When a try's task ran, by this process's clock: its instance's and try
/// row's start and end dates, so that they tell when the task itself
/// started and ended, not when it was claimed or recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ran {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A finished try waiting for the recorder.
struct Pending {
    dag: Arc<Dag>,
    claimed: Claimed,
    outcome: Outcome,
    ran: Ran,
    log_tail: Vec<LogLine>,
    reply: oneshot::Sender<Result<Finished, StoreError>>,
}

/// The handle tries send their outcome through; the recording task ends
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Pending>,
}

/// A try the recorder claimed for its executor: the claim committed, the
/// slot taken from the executor's.
pub struct Handed {
    pub claimed: Claimed,
    pub permit: OwnedSemaphorePermit,
    /// Its upstream outputs, when every upstream it reads ended in the
    /// batch that handed it over ([`inputs_in_batch`]): a chain's next
    /// task starts without reading them back.
    pub inputs: Option<executor::Inputs>,
}

/// How the recorder claims, for its own executor, the downstream tasks a
/// batch queued: in the batch's transaction, within the free slots it
/// takes from the executor's, and under the same claim lock and limits as
/// any claim (`executor::claim_in`). Each hop of a chain so skips a claim
/// transaction of its own (four round trips and a WAL flush) and the
/// wake-up before it (docs/scheduler.md, "Recording").
pub struct Handoff {
    pub bag: Arc<DagBag>,
    pub slots: Arc<Semaphore>,
    /// To the executor's loop, which starts each try; closed when it stops.
    pub to_executor: mpsc::UnboundedSender<Handed>,
    /// Set while the executor's own claims fill every slot they may: a
    /// backlog is queued, which it claims in bulk as slots free. The
    /// recorder then leaves the claims to it: a catch-up of 500 DAGs ran
    /// about a tenth longer with both claiming (docs/scheduler.md, "Recording").
    pub backlog: Arc<AtomicBool>,
    /// Where the claims of a batch whose commit goes unanswered are left
    /// for the executor to requeue.
    pub unanswered: UnansweredClaims,
}

impl Recorder {
    /// Start this process's recorder. `abort` ends its waits for an
    /// unreachable database (a hard shutdown).
    pub fn spawn(
        store: Store,
        me: WorkerIdentity,
        abort: CancellationToken,
        handoff: Option<Handoff>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(record_batches(store, me, abort, handoff, rx));
        (Self { tx }, task)
    }

    /// Record one try's outcome, in whatever batch it falls into, and
    /// queue its ready downstream tasks.
    pub(crate) async fn record(
        &self,
        dag: Arc<Dag>,
        claimed: Claimed,
        outcome: Outcome,
        ran: Ran,
        log_tail: Vec<LogLine>,
    ) -> Result<Finished, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            dag,
            claimed,
            outcome,
            ran,
            log_tail,
            reply,
        };
        self.tx
            .send(pending)
            .map_err(|_| StoreError::RecorderStopped)?;
        answer.await.map_err(|_| StoreError::RecorderStopped)?
    }
}

async fn record_batches(
    store: Store,
    me: WorkerIdentity,
    abort: CancellationToken,
    handoff: Option<Handoff>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let mut db = KeptConnection::new(store);
    let mut claims = handoff.map(|h| Claims {
        handoff: h,
        lookahead: Lookahead::default(),
    });
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        record_batch(&mut db, &me, &abort, claims.as_mut(), batch).await;
    }
}

/// The recorder's side of a [`Handoff`].
struct Claims {
    handoff: Handoff,
    lookahead: Lookahead,
}

/// Record `batch`, retried with backoff while the database cannot be
/// reached, so finished tries are not lost to a restart of Postgres (and
/// then run again by the zombie reaper). Recording is idempotent: it is
/// guarded by worker and try, and a retry after a commit whose answer was
/// lost finds the tries recorded. When the database refuses the batch, each
/// try is recorded alone, so one bad record cannot lose the others.
async fn record_batch(
    db: &mut KeptConnection,
    me: &WorkerIdentity,
    abort: &CancellationToken,
    mut claims: Option<&mut Claims>,
    batch: Vec<Pending>,
) {
    let deadline = Instant::now() + RECORD_RETRY_FOR;
    let mut delay = Duration::from_millis(200);
    let mut attempt: u32 = 1;
    loop {
        match write_batch(db, me, &batch, attempt > 1, claims.as_deref_mut()).await {
            Ok(finished) => {
                for (p, f) in batch.into_iter().zip(finished) {
                    let _ = p.reply.send(Ok(f));
                }
                return;
            }
            Err(e) if e.is_connection() && Instant::now() < deadline && !abort.is_cancelled() => {
                tracing::warn!(
                    tries = batch.len(),
                    attempt,
                    "recording finished tries failed, retrying in {delay:?}: {e}"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = abort.cancelled() => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(e) if batch.len() > 1 && !e.is_connection() => {
                tracing::warn!(
                    tries = batch.len(),
                    "recording a batch of tries failed, recording each alone: {e}"
                );
                for p in batch {
                    let (one, answer) = oneshot::channel();
                    let (single, reply) = (Pending { reply: one, ..p }, p.reply);
                    let single = vec![single];
                    Box::pin(record_batch(db, me, abort, None, single)).await;
                    let _ = reply.send(answer.await.unwrap_or(Err(StoreError::RecorderStopped)));
                }
                return;
            }
            Err(e) if batch.len() == 1 && !e.is_connection() && !is_refusal_record(&batch[0]) => {
                // The database refused this try's record (an output or a
                // log line it cannot store, such as a NUL character): the
                // try fails with the reason instead of staying `running`.
                let p = batch.into_iter().next().expect("one try");
                tracing::warn!(dag_id = %p.claimed.dag_id, task_id = %p.claimed.task_id,
                    "the try's outcome could not be recorded; recording it as failed: {e}");
                let (one, answer) = oneshot::channel();
                let refused = Pending {
                    outcome: Outcome::Failed {
                        error: format!("{REFUSED}: {e}"),
                        retryable: false,
                    },
                    reply: one,
                    ..p
                };
                Box::pin(record_batch(db, me, abort, None, vec![refused])).await;
                let _ = p
                    .reply
                    .send(answer.await.unwrap_or(Err(StoreError::RecorderStopped)));
                return;
            }
            Err(e) => {
                let e = Arc::new(e);
                for p in batch {
                    let _ = p.reply.send(Err(StoreError::Batch(e.clone())));
                }
                return;
            }
        }
    }
}

/// How a try whose outcome the database refused is failed.
const REFUSED: &str = "the try's outcome could not be recorded";

fn is_refusal_record(p: &Pending) -> bool {
    matches!(&p.outcome, Outcome::Failed { error, .. } if error.starts_with(REFUSED))
}

/// What a try's outcome makes of its task instance.
struct Settled {
    state: TaskState,
    next_attempt: Option<DateTime<Utc>>,
    error: Option<String>,
    output: Option<Value>,
    reschedule: bool,
}

fn settle(task: &TaskNode, c: &Claimed, outcome: &Outcome) -> Settled {
    let settled = |state, next_attempt, error, output, reschedule| Settled {
        state,
        next_attempt,
        error,
        output,
        reschedule,
    };
    match outcome {
        Outcome::Success(v) => settled(TaskState::Success, None, None, Some(v.clone()), false),
        Outcome::Skipped(_) => settled(TaskState::Skipped, None, None, None, false),
        Outcome::Reschedule { at } => {
            settled(TaskState::UpForReschedule, Some(*at), None, None, true)
        }
        Outcome::Failed { error, retryable } => {
            if *retryable && c.try_number <= c.max_tries {
                let delay = task.retry.delay_after(c.try_number.max(1) as u32);
                let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                settled(
                    TaskState::UpForRetry,
                    Some(at),
                    Some(error.clone()),
                    None,
                    false,
                )
            } else {
                settled(TaskState::Failed, None, Some(error.clone()), None, false)
            }
        }
    }
}

/// One try of the batch, with its task.
struct Item<'a> {
    dag: &'a Dag,
    task: &'a TaskNode,
    c: &'a Claimed,
    settled: Settled,
    ran: Ran,
    log_tail: &'a [LogLine],
}

/// One transaction for the whole batch; returns what each try's caller
/// should wake. On the recorder's kept connection: sqlx pings a pooled
/// connection when it is taken and again when it is given back, two round
/// trips a batch on a chain's path from one task to the next.
async fn write_batch(
    db: &mut KeptConnection,
    me: &WorkerIdentity,
    batch: &[Pending],
    retrying: bool,
    claims: Option<&mut Claims>,
) -> Result<Vec<Finished>, StoreError> {
    let store = db.store().clone();
    let written = match db.get().await {
        Ok(conn) => write_batch_on(conn, &store, me, batch, retrying, claims).await,
        Err(e) => Err(e),
    };
    db.checked(written)
}

async fn write_batch_on(
    conn: &mut PgConnection,
    store: &Store,
    me: &WorkerIdentity,
    batch: &[Pending],
    retrying: bool,
    claims: Option<&mut Claims>,
) -> Result<Vec<Finished>, StoreError> {
    // A try of a task its DAG no longer has is not recorded (the task was
    // looked up when the try started; this cannot happen in one process).
    let items: Vec<Option<Item>> = batch
        .iter()
        .map(|p| {
            let task = p.dag.task(&p.claimed.task_id)?;
            Some(Item {
                dag: &p.dag,
                task,
                c: &p.claimed,
                settled: settle(task, &p.claimed, &p.outcome),
                ran: p.ran,
                log_tail: &p.log_tail,
            })
        })
        .collect();
    let live: Vec<&Item> = items.iter().flatten().collect();

    let mut tx = conn.begin().await?;
    let owned = update_instances(&mut tx, me, &live).await?;
    let is_owned = |i: &Item| owned.contains(&key(i.c));
    let recorded: Vec<&Item> = live.iter().copied().filter(|i| is_owned(i)).collect();
    insert_logs_and_tries(&mut tx, me, &recorded).await?;
    insert_outputs(&mut tx, &recorded).await?;
    for i in &recorded {
        if i.settled.state == TaskState::Success {
            crate::asset::record_outlet_events(
                &mut tx,
                i.dag,
                i.task,
                &i.c.run_id,
                i.c.map_index,
                i.c.try_number,
                DataInterval {
                    start: i.c.data_interval_start,
                    end: i.c.data_interval_end,
                },
            )
            .await?;
        }
        enqueue_alert(&mut tx, me, i).await?;
    }
    // In the same transaction: the downstream tasks these tries made ready
    // are queued, and the runs with something for a pass ask for one. On a
    // loaded machine each round trip waits for a core; a chain's every hop
    // made three more after the commit.
    let mut finished: Vec<Option<Finished>> = Vec::with_capacity(items.len());
    let mut ended: Vec<Ended> = Vec::new();
    let mut flagged: Vec<(String, String)> = Vec::new();
    for item in &items {
        let Some(i) = item else {
            finished.push(Some(Finished::default()));
            continue;
        };
        if !is_owned(i) {
            finished.push(None); // after the commit, below
        } else if !i.settled.state.is_finished() {
            // Retry or reschedule: the scheduler queues it again when due.
            flagged.push((i.c.dag_id.clone(), i.c.run_id.clone()));
            finished.push(Some(Finished {
                queued: false,
                needs_scheduler: true,
            }));
        } else {
            finished.push(Some(Finished::default()));
            ended.push(Ended {
                dag: i.dag,
                task: i.task,
                run_id: &i.c.run_id,
                map_index: i.c.map_index,
                state: i.settled.state,
            });
        }
    }
    let (mut woken, queued) = if ended.is_empty() {
        (Finished::default(), Vec::new())
    } else {
        queue_ready_downstream(&mut tx, &ended, &mut flagged).await?
    };
    flagged.sort_unstable();
    flagged.dedup();
    flag_for_scheduler(&mut tx, &flagged).await?;
    // What was queued, this executor claims now, as far as it has slots:
    // last, as the claim lock is held from here to the commit.
    let mut handed: Vec<Handed> = Vec::new();
    let mut to_executor = None;
    let mut unanswered = None;
    let mut claim_xact: Option<String> = None;
    if let Some(claims) = claims.filter(|_| !queued.is_empty()) {
        handed = claim_for_executor(&mut tx, me, claims, queued.len(), &mut claim_xact).await?;
        for h in &mut handed {
            h.inputs = inputs_in_batch(&claims.handoff.bag, &h.claimed, &recorded);
        }
        let taken: HashSet<InstanceKey> = handed.iter().map(|h| key(&h.claimed)).collect();
        woken.queued = queued.iter().any(|k| !taken.contains(k));
        to_executor = Some(claims.handoff.to_executor.clone());
        unanswered = Some(claims.handoff.unanswered.clone());
    }
    // Other processes' executors claim what is left queued; this one's
    // claims again as soon as the try's future ends. Schedulers are woken
    // only when a run waits for one: on a chain's every hop a pass ran for
    // nothing.
    if woken.queued && flagged.is_empty() {
        notify_queued(&mut *tx, Some(&me.worker_id)).await?;
    } else if woken.queued {
        notify_wakeup(&mut *tx).await?;
    }
    if let Err(e) = tx.commit().await {
        // The batch is written again (`record_batch`), and the tries found
        // recorded if this commit went through; the claims are not.
        if let Some(unanswered) = unanswered {
            unanswered.add(claim_xact.as_ref(), handed.iter().map(|h| &h.claimed));
        }
        return Err(e.into());
    }
    // Claimed: they run now. A stopped executor's are requeued with its
    // other unfinished tries (`executor::requeue_own`).
    if let Some(to_executor) = to_executor {
        for h in handed {
            let _ = to_executor.send(h);
        }
    }

    let mut late: Vec<(String, String)> = Vec::new();
    let mut out: Vec<Finished> = Vec::with_capacity(items.len());
    for (item, f) in items.iter().zip(finished) {
        match (item, f) {
            (Some(i), None) => {
                let f = not_owned(store, me, i, retrying).await?;
                if f.needs_scheduler {
                    // Recorded by an earlier attempt: its downstream is the scheduler's now.
                    late.push((i.c.dag_id.clone(), i.c.run_id.clone()));
                }
                out.push(f);
            }
            (_, f) => {
                let mut f = f.unwrap_or_default();
                // Every caller wakes what any of them needs: wake-ups coalesce.
                f.queued |= woken.queued;
                f.needs_scheduler |= woken.needs_scheduler;
                out.push(f);
            }
        }
    }
    if !late.is_empty() {
        flag_for_scheduler(conn, &late).await?;
    }
    Ok(out)
}

type InstanceKey = (String, String, String, i32);

fn key(c: &Claimed) -> InstanceKey {
    (
        c.dag_id.clone(),
        c.run_id.clone(),
        c.task_id.clone(),
        c.map_index,
    )
}

/// Set each try's task instance to its outcome, where this worker still
/// owns that try (a zombie-reaped or cleared try must not overwrite newer
/// state). Returns the owned ones.
async fn update_instances(
    tx: &mut sqlx::PgConnection,
    me: &WorkerIdentity,
    items: &[&Item<'_>],
) -> Result<HashSet<InstanceKey>, StoreError> {
    let rows: Vec<InstanceKey> = sqlx::query_as(
        "UPDATE task_instances ti SET state = c.state, next_attempt_at = c.next_attempt_at,
                start_date = c.start_date, end_date = c.end_date,
                duration = EXTRACT(EPOCH FROM c.end_date - c.start_date),
                first_attempt_at = CASE WHEN c.reschedule THEN COALESCE(ti.first_attempt_at, c.start_date)
                                        ELSE ti.first_attempt_at END,
                try_number = CASE WHEN c.reschedule THEN ti.try_number - 1 ELSE ti.try_number END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[],
                     $7::timestamptz[], $8::bool[], $10::timestamptz[], $11::timestamptz[])
              AS c(dag_id, run_id, task_id, map_index, try_number, state, next_attempt_at, reschedule,
                   start_date, end_date)
         WHERE ti.dag_id = c.dag_id AND ti.run_id = c.run_id AND ti.task_id = c.task_id
           AND ti.map_index = c.map_index AND ti.state = 'running' AND ti.worker_id = $9
           AND ti.try_number = c.try_number
         RETURNING ti.dag_id, ti.run_id, ti.task_id, ti.map_index",
    )
    .bind(items.iter().map(|i| i.c.dag_id.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.c.run_id.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.c.task_id.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.c.map_index).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.c.try_number).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.settled.state.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.settled.next_attempt).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.settled.reschedule).collect::<Vec<_>>())
    .bind(&me.worker_id)
    .bind(items.iter().map(|i| i.ran.start).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.ran.end).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The log lines not yet written when each try ended, and a try row for
/// each try that ended (a sensor's reschedule is not a try): one statement,
/// as every round trip of the recorder is on the path from one task to the
/// next.
async fn insert_logs_and_tries(
    tx: &mut sqlx::PgConnection,
    me: &WorkerIdentity,
    items: &[&Item<'_>],
) -> Result<(), StoreError> {
    let lines = items
        .iter()
        .flat_map(|i| i.log_tail.iter().map(move |l| (i.c, l)));
    let (mut dags, mut runs, mut tasks, mut maps, mut tries) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut ts, mut levels, mut messages) = (vec![], vec![], vec![]);
    for (c, l) in lines {
        dags.push(c.dag_id.as_str());
        runs.push(c.run_id.as_str());
        tasks.push(c.task_id.as_str());
        maps.push(c.map_index);
        tries.push(c.try_number);
        ts.push(l.ts);
        levels.push(l.level);
        messages.push(l.message.as_str());
    }
    let ended: Vec<&&Item> = items.iter().filter(|i| !i.settled.reschedule).collect();
    if ts.is_empty() && ended.is_empty() {
        return Ok(());
    }
    // A failed try that will be retried is a failed try.
    let state = |i: &Item| match i.settled.state {
        TaskState::UpForRetry => "failed",
        s => s.as_str(),
    };
    sqlx::query(
        "WITH logs AS (
             INSERT INTO task_logs (dag_id, run_id, task_id, map_index, try_number, ts, level, message)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[],
                                  $6::timestamptz[], $7::text[], $8::text[])
         )
         INSERT INTO task_tries (dag_id, run_id, task_id, map_index, try_number, state, hostname,
                                 worker_id, start_date, end_date, duration, error)
         SELECT c.dag_id, c.run_id, c.task_id, c.map_index, c.try_number, c.state, $17, $18,
                c.start_date, c.end_date, EXTRACT(EPOCH FROM c.end_date - c.start_date), c.error
         FROM unnest($9::text[], $10::text[], $11::text[], $12::int[], $13::int[], $14::text[],
                     $15::timestamptz[], $16::text[], $19::timestamptz[])
              AS c(dag_id, run_id, task_id, map_index, try_number, state, start_date, error, end_date)
         ON CONFLICT DO NOTHING",
    )
    .bind(&dags)
    .bind(&runs)
    .bind(&tasks)
    .bind(&maps)
    .bind(&tries)
    .bind(&ts)
    .bind(&levels)
    .bind(&messages)
    .bind(ended.iter().map(|i| i.c.dag_id.as_str()).collect::<Vec<_>>())
    .bind(ended.iter().map(|i| i.c.run_id.as_str()).collect::<Vec<_>>())
    .bind(ended.iter().map(|i| i.c.task_id.as_str()).collect::<Vec<_>>())
    .bind(ended.iter().map(|i| i.c.map_index).collect::<Vec<_>>())
    .bind(ended.iter().map(|i| i.c.try_number).collect::<Vec<_>>())
    .bind(ended.iter().map(|i| state(i)).collect::<Vec<_>>())
    .bind(ended.iter().map(|i| i.ran.start).collect::<Vec<_>>())
    .bind(
        ended
            .iter()
            .map(|i| i.settled.error.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(&me.hostname)
    .bind(&me.worker_id)
    .bind(ended.iter().map(|i| i.ran.end).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Each successful try's output (a null output is not stored).
async fn insert_outputs(
    tx: &mut sqlx::PgConnection,
    items: &[&Item<'_>],
) -> Result<(), StoreError> {
    let outputs: Vec<(&Item, &Value)> = items
        .iter()
        .filter_map(|i| Some((*i, i.settled.output.as_ref().filter(|v| !v.is_null())?)))
        .collect();
    if outputs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO xcom (dag_id, run_id, task_id, map_index, key, value)
         SELECT c.dag_id, c.run_id, c.task_id, c.map_index, 'return_value', c.value
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[])
              AS c(dag_id, run_id, task_id, map_index, value)
         ON CONFLICT (dag_id, run_id, task_id, map_index, key)
         DO UPDATE SET value = EXCLUDED.value, created_at = now()",
    )
    .bind(
        outputs
            .iter()
            .map(|(i, _)| i.c.dag_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        outputs
            .iter()
            .map(|(i, _)| i.c.run_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        outputs
            .iter()
            .map(|(i, _)| i.c.task_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        outputs
            .iter()
            .map(|(i, _)| i.c.map_index)
            .collect::<Vec<_>>(),
    )
    .bind(
        outputs
            .iter()
            .map(|(_, v)| (*v).clone())
            .collect::<Vec<Value>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The task's own alert for this try (failure, retry, success), if it has one.
async fn enqueue_alert(
    tx: &mut sqlx::PgConnection,
    me: &WorkerIdentity,
    i: &Item<'_>,
) -> Result<(), StoreError> {
    let Some(alerts) = &i.task.alerts else {
        return Ok(());
    };
    let (event, what) = match i.settled.state {
        TaskState::Failed => (AlertEvent::Failure, "failed"),
        TaskState::UpForRetry => (AlertEvent::Retry, "failed and will be retried"),
        TaskState::Success => (AlertEvent::Success, "succeeded"),
        _ => return Ok(()),
    };
    let c = i.c;
    let mut message = format!(
        "Task {}.{} {what} (run {}, try {} of {})",
        c.dag_id,
        c.task_id,
        c.run_id,
        c.try_number,
        c.max_tries + 1
    );
    if let Some(e) = &i.settled.error {
        message.push_str(": ");
        message.push_str(e);
    }
    let detail = serde_json::json!({
        "error": i.settled.error,
        "next_attempt_at": i.settled.next_attempt,
        "hostname": me.hostname,
    });
    alert::enqueue(
        tx,
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
    Ok(())
}

/// A try this worker no longer owns: recorded already when an earlier
/// attempt's commit answer was lost, else reaped or cleared meanwhile and
/// its outcome discarded (its last log lines are kept).
async fn not_owned(
    store: &Store,
    me: &WorkerIdentity,
    i: &Item<'_>,
    retrying: bool,
) -> Result<Finished, StoreError> {
    if retrying && try_recorded(store, i.c, me).await? {
        return Ok(Finished {
            queued: false,
            needs_scheduler: true,
        });
    }
    let mut lines = i.log_tail.to_vec();
    crate::executor::flush_logs(store, i.c, &mut lines).await;
    tracing::warn!(dag_id = %i.c.dag_id, task_id = %i.c.task_id, try_number = i.c.try_number,
        "try no longer owned by this worker (reaped as zombie or cleared); outcome discarded");
    Ok(Finished::default())
}

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

/// A try that ended (success, skipped, failed), whose downstream tasks may
/// now be ready.
struct Ended<'a> {
    dag: &'a Dag,
    task: &'a TaskNode,
    run_id: &'a str,
    map_index: i32,
    state: TaskState,
}

/// Queue the downstream tasks of `ended` that are now ready, without
/// waiting for a scheduler pass: this keeps task-to-task latency in
/// milliseconds. Anything other than "run now" (skips, upstream failures,
/// expanding a mapped task) is left to the scheduler.
async fn queue_ready_downstream(
    conn: &mut PgConnection,
    ended: &[Ended<'_>],
    flagged: &mut Vec<(String, String)>,
) -> Result<(Finished, Vec<InstanceKey>), StoreError> {
    let mut finished = Finished::default();
    let mut queued: Vec<InstanceKey> = Vec::new();
    let mut runs: BTreeMap<(&str, &str), Vec<&Ended>> = BTreeMap::new();
    for e in ended {
        runs.entry((e.dag.id.as_str(), e.run_id))
            .or_default()
            .push(e);
    }
    for ((dag_id, run_id), ended) in runs {
        let dag = ended[0].dag;
        // The same instance of a mapped group's next tasks is the
        // scheduler's to decide (`scheduler::decide`), instance by instance.
        let mut needs_scheduler = ended.iter().any(|e| {
            e.task.downstream.is_empty()
                || e.state != TaskState::Success
                || e.task.in_mapped_group
                    && e.task
                        .downstream
                        .iter()
                        .any(|d| dag.task(d).is_some_and(|d| d.follows_index_of(e.task)))
        });
        let ready = ready_in_run(conn, dag, run_id, &ended, &mut needs_scheduler).await?;
        if needs_scheduler {
            finished.needs_scheduler = true;
            flagged.push((dag_id.to_owned(), run_id.to_owned()));
        }
        if ready.is_empty() {
            continue;
        }
        let (sql, prepared) = list_statement(
            "UPDATE task_instances ti SET state = 'queued', queued_at = now()
             FROM unnest($3::text[]) AS r(task_id)
             WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = r.task_id AND ti.state = 'none'
             RETURNING ti.task_id, ti.map_index",
            ready.len(),
        );
        let rows: Vec<(String, i32)> = sqlx::query_as(&sql)
            .bind(&dag.id)
            .bind(run_id)
            .bind(&ready)
            .persistent(prepared)
            .fetch_all(&mut *conn)
            .await?;
        finished.queued |= !rows.is_empty();
        queued.extend(rows.into_iter().map(|(task_id, map_index)| {
            (dag_id.to_owned(), run_id.to_owned(), task_id, map_index)
        }));
    }
    Ok((finished, queued))
}

/// The upstream outputs of `claimed`, as [`executor::load_inputs`] would
/// read them, when every upstream it reads is a task of one instance whose
/// try this batch recorded: the batch wrote those outputs (a clear deletes
/// a task's outputs, so a try that returned nothing has none). `None` when
/// some upstream ended elsewhere; the executor then reads them.
fn inputs_in_batch(
    bag: &DagBag,
    claimed: &Claimed,
    recorded: &[&Item<'_>],
) -> Option<executor::Inputs> {
    let dag = bag.get(&claimed.dag_id)?;
    let task = dag.task(&claimed.task_id)?;
    let mut inputs = HashMap::new();
    for up in task.inputs() {
        let up_task = dag.task(up)?;
        if up_task.map.is_some() {
            return None;
        }
        let ended = recorded.iter().find(|i| {
            i.c.task_id == *up
                && i.c.map_index < 0
                && i.c.run_id == claimed.run_id
                && i.c.dag_id == claimed.dag_id
        })?;
        if ended.settled.state != TaskState::Success {
            return None;
        }
        let rows: Vec<(i32, Value)> = match &ended.settled.output {
            Some(v) if !v.is_null() => vec![(-1, v.clone())],
            _ => Vec::new(),
        };
        if let Some(v) = crate::mapping::input_of(task, claimed.map_index, up_task, rows) {
            inputs.insert(up.clone(), v);
        }
    }
    Some(Arc::new(inputs))
}

/// Claims up to `queued` tries for this process's executor, in the
/// recorder's transaction, within the slots free now.
async fn claim_for_executor(
    tx: &mut PgConnection,
    me: &WorkerIdentity,
    claims: &mut Claims,
    queued: usize,
    xact: &mut Option<String>,
) -> Result<Vec<Handed>, StoreError> {
    let Claims { handoff, lookahead } = claims;
    // A stopping executor takes no more tries; a busy one claims its own.
    if handoff.to_executor.is_closed() || handoff.backlog.load(Ordering::Relaxed) {
        return Ok(Vec::new());
    }
    let mut permits: Vec<OwnedSemaphorePermit> =
        std::iter::from_fn(|| handoff.slots.clone().try_acquire_owned().ok())
            .take(queued)
            .collect();
    if permits.is_empty() {
        return Ok(Vec::new());
    }
    let claim = executor::claim_in(tx, &handoff.bag, me, permits.len(), lookahead).await?;
    *xact = claim.xact;
    Ok(claim
        .tries
        .into_iter()
        .map_while(|claimed| {
            Some(Handed {
                claimed,
                permit: permits.pop()?,
                inputs: None,
            })
        })
        .collect())
}

/// Put `runs` first in line for the scheduler's next pass
/// (`scheduler::RUNS_PER_PASS`): they have something only it does. An
/// insert into a table only passes delete from, so it never waits on a
/// pass holding the runs (migration 29).
async fn flag_for_scheduler(
    conn: &mut PgConnection,
    runs: &[(String, String)],
) -> Result<(), StoreError> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO run_schedule_requests (dag_id, run_id)
         SELECT * FROM unnest($1::text[], $2::text[])",
    )
    .bind(runs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The downstream tasks of one run's ended tries that may run now.
async fn ready_in_run<'d>(
    conn: &mut PgConnection,
    dag: &'d Dag,
    run_id: &str,
    ended: &[&Ended<'_>],
    needs_scheduler: &mut bool,
) -> Result<Vec<&'d str>, StoreError> {
    // A task of one instance that ended in this batch: its state is known
    // without asking (a fan-out's many downstreams cost no query).
    let known: HashMap<&str, TaskState> = ended
        .iter()
        .filter(|e| e.map_index < 0)
        .map(|e| (e.task.id.as_str(), e.state))
        .collect();
    let mut candidates: Vec<&TaskNode> = ended
        .iter()
        .flat_map(|e| e.task.downstream.iter())
        .filter_map(|d| dag.task(d))
        .collect();
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    candidates.dedup_by(|a, b| a.id == b.id);

    let mut ready: Vec<&str> = Vec::new();
    let mut pending: Option<Vec<String>> = None;
    let mut to_count: Vec<&TaskNode> = Vec::new();
    for d in candidates {
        let local: Option<Vec<TaskState>> = d
            .upstream
            .iter()
            .map(|u| known.get(u.as_str()).copied())
            .collect();
        if let Some(states) = local {
            decide(
                d,
                UpstreamSummary::from_states(states),
                &mut ready,
                needs_scheduler,
            );
            continue;
        }
        if waits_for_all(d.trigger_rule) {
            if pending.is_none() {
                pending = Some(unfinished_sample(&mut *conn, dag, run_id).await?);
            }
            let sample = pending.as_deref().unwrap_or_default();
            if sample.iter().any(|p| d.upstream.contains(p)) {
                continue;
            }
        }
        to_count.push(d);
    }
    if to_count.is_empty() {
        return Ok(ready);
    }
    let mut upstream: Vec<&str> = to_count
        .iter()
        .flat_map(|d| d.upstream.iter().map(String::as_str))
        .collect();
    upstream.sort_unstable();
    upstream.dedup();
    // A fan-in's 10,000 upstreams, on a plan made for a chain's one (the
    // recorder keeps its connection, and with it its prepared statements),
    // took 0.75 s to count.
    let (sql, prepared) = list_statement(
        "SELECT task_id, state, count(*) FROM task_instances
         WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3) GROUP BY task_id, state",
        upstream.len(),
    );
    let counts: Vec<(String, String, i64)> = sqlx::query_as(&sql)
        .bind(&dag.id)
        .bind(run_id)
        .bind(&upstream)
        .persistent(prepared)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_task: HashMap<String, Vec<(TaskState, usize)>> = HashMap::new();
    for (task_id, state, n) in counts {
        let state = state.parse().unwrap_or(TaskState::None);
        by_task
            .entry(task_id)
            .or_default()
            .push((state, n as usize));
    }
    for d in to_count {
        let states = d
            .upstream
            .iter()
            .filter_map(|u| by_task.get(u))
            .flatten()
            .flat_map(|(s, n)| std::iter::repeat_n(*s, *n));
        decide(
            d,
            UpstreamSummary::from_states(states),
            &mut ready,
            needs_scheduler,
        );
    }
    Ok(ready)
}

fn decide<'d>(
    d: &'d TaskNode,
    upstream: UpstreamSummary,
    ready: &mut Vec<&'d str>,
    needs_scheduler: &mut bool,
) {
    match evaluate(d.trigger_rule, upstream) {
        // Expanding a mapped task is the scheduler's (crate::mapping).
        Decision::Run if d.map.is_some() => *needs_scheduler = true,
        Decision::Run => ready.push(&d.id),
        Decision::Wait => {}
        Decision::Skip | Decision::UpstreamFailed => *needs_scheduler = true,
    }
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

/// A few unfinished task instances of the run (a partial index keeps this
/// small): a fan-in whose upstream is among them certainly waits, so the n
/// upstreams of a fan-in cost O(1) each instead of O(n). Not finding one
/// means "not sure": the caller then counts properly.
async fn unfinished_sample(
    conn: &mut PgConnection,
    dag: &Dag,
    run_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT task_id FROM task_instances
         WHERE dag_id = $1 AND run_id = $2
           AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule')
         LIMIT 16",
    )
    .bind(&dag.id)
    .bind(run_id)
    .fetch_all(conn)
    .await?)
}
