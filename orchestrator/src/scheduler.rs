//! The scheduling half of the engine: create due runs, start queued runs
//! within `max_active_runs`, decide which task instances are ready by trigger
//! rules, finish runs, and reap zombies. Every step is safe to run in several
//! processes at once: rows are claimed with `FOR UPDATE SKIP LOCKED` and every
//! state change is conditional on the state it expects.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::alert::{self, AlertEvent};
use crate::backfill;
use crate::dag::{Dag, DagBag};
use crate::mapping::{self, Expansion};
use crate::state::{evaluate, Decision, TaskState, UpstreamSummary};
use crate::store::write::{notify_wakeup, RunType};
use crate::store::{Store, StoreError};

/// What one scheduler pass did, so the loop knows whether to wake executors.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassReport {
    pub runs_created: usize,
    pub runs_started: usize,
    pub tasks_queued: usize,
    pub runs_finished: usize,
    pub zombies: usize,
}

/// Create runs whose data interval has ended, for every unpaused DAG.
pub async fn create_due_runs(
    store: &Store,
    bag: &DagBag,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let rows: Vec<(String, bool, Option<DateTime<Utc>>, i64)> = sqlx::query_as(
        "SELECT d.dag_id, d.is_paused,
                max(r.data_interval_end) FILTER (WHERE r.run_type = 'scheduled'),
                count(r.id) FILTER (WHERE r.state IN ('queued', 'running') AND r.backfill_id IS NULL)
         FROM dags d LEFT JOIN dag_runs r ON r.dag_id = d.dag_id
         WHERE d.schedule IS NOT NULL AND NOT d.is_stale
         GROUP BY d.dag_id, d.is_paused",
    )
    .fetch_all(store.pool())
    .await?;
    let mut created = 0;
    for (dag_id, paused, last_end, active) in rows {
        let Some(dag) = bag.get(&dag_id) else {
            continue;
        };
        let room = (dag.max_active_runs as i64 - active).max(0) as usize;
        if paused || room == 0 {
            continue;
        }
        for interval in dag.schedule.due_intervals(&dag.bounds, last_end, now, room) {
            if store
                .create_run(
                    dag,
                    RunType::Scheduled,
                    interval,
                    &Value::Object(Default::default()),
                )
                .await?
                .is_some()
            {
                created += 1;
            }
        }
    }
    Ok(created)
}

/// Move queued runs to running, oldest logical date first, within each DAG's
/// `max_active_runs`, and create their task instances. Runs of a backfill
/// record start under the backfill's own limits ([`backfill::start_runs`]).
pub async fn start_queued_runs(store: &Store, bag: &DagBag) -> Result<usize, StoreError> {
    let mut started = start_backfill_runs(store, bag).await?;
    // Paused DAGs start only backfill runs: a backfill is an explicit request.
    let dag_ids: Vec<(String, bool)> = sqlx::query_as(
        "SELECT DISTINCT r.dag_id, d.is_paused FROM dag_runs r JOIN dags d ON d.dag_id = r.dag_id
         WHERE r.state = 'queued' AND r.backfill_id IS NULL
           AND (NOT d.is_paused OR r.run_type = 'backfill')",
    )
    .fetch_all(store.pool())
    .await?;
    for (dag_id, paused) in dag_ids {
        let Some(dag) = bag.get(&dag_id) else {
            continue;
        };
        let mut tx = store.pool().begin().await?;
        // Serialize run starts per DAG across processes; skip if another process is at it.
        let locked: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM dags WHERE dag_id = $1 FOR NO KEY UPDATE SKIP LOCKED",
        )
        .bind(&dag_id)
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            continue;
        }
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dag_runs WHERE dag_id = $1 AND state = 'running' AND backfill_id IS NULL",
        )
        .bind(&dag_id)
        .fetch_one(&mut *tx)
        .await?;
        let room = dag.max_active_runs as i64 - running;
        if room <= 0 {
            continue;
        }
        let run_ids: Vec<String> = sqlx::query_scalar(
            "UPDATE dag_runs SET state = 'running', start_date = now()
             WHERE id IN (SELECT id FROM dag_runs WHERE dag_id = $1 AND state = 'queued'
                            AND backfill_id IS NULL AND (NOT $3 OR run_type = 'backfill')
                          ORDER BY logical_date LIMIT $2)
             RETURNING run_id",
        )
        .bind(&dag_id)
        .bind(room)
        .bind(paused)
        .fetch_all(&mut *tx)
        .await?;
        for run_id in &run_ids {
            insert_task_instances(&mut tx, dag, run_id, None).await?;
        }
        tx.commit().await?;
        started += run_ids.len();
    }
    Ok(started)
}

/// Starts what each open, unpaused backfill may start now.
async fn start_backfill_runs(store: &Store, bag: &DagBag) -> Result<usize, StoreError> {
    let mut started = 0;
    for (id, dag_id) in backfill::startable(store).await? {
        // Another process (the CLI's `--wait` loads one DAG) starts the
        // backfills of DAGs this one does not have.
        if bag.get(&dag_id).is_none() {
            continue;
        }
        let mut tx = store.pool().begin().await?;
        let runs = backfill::start_runs(&mut tx, id).await?;
        for (dag_id, run_id) in &runs {
            if let Some(dag) = bag.get(dag_id) {
                insert_task_instances(&mut tx, dag, run_id, None).await?;
            }
        }
        tx.commit().await?;
        started += runs.len();
    }
    Ok(started)
}

/// Create the task instances of a run (all, or only `only`) in state
/// `none`; a mapped task gets its placeholder (docs/mapping.md).
pub(crate) async fn insert_task_instances(
    tx: &mut Transaction<'_, Postgres>,
    dag: &Dag,
    run_id: &str,
    only: Option<&[&str]>,
) -> Result<(), StoreError> {
    let tasks: Vec<_> = dag
        .tasks()
        .iter()
        .filter(|t| only.is_none_or(|o| o.contains(&t.id.as_str())))
        .collect();
    if tasks.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    let tries: Vec<i32> = tasks.iter().map(|t| t.retry.retries as i32).collect();
    let pools: Vec<&str> = tasks.iter().map(|t| t.pool.as_str()).collect();
    let slots: Vec<i32> = tasks.iter().map(|t| t.pool_slots as i32).collect();
    let weights: Vec<i32> = tasks.iter().map(|t| t.priority_weight).collect();
    sqlx::query(
        "INSERT INTO task_instances (dag_id, run_id, task_id, max_tries, pool, pool_slots, priority_weight)
         SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::text[], $6::int[], $7::int[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(&ids)
    .bind(&tries)
    .bind(&pools)
    .bind(&slots)
    .bind(&weights)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Evaluate every running run this process can lock. Returns (tasks queued, runs finished).
pub async fn advance_runs(store: &Store, bag: &DagBag) -> Result<(usize, usize), StoreError> {
    let runs: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, dag_id, run_id FROM dag_runs WHERE state = 'running' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await?;
    let (mut queued, mut finished) = (0, 0);
    for (id, dag_id, run_id) in runs {
        let Some(dag) = bag.get(&dag_id) else {
            continue;
        };
        let mut tx = store.pool().begin().await?;
        let locked: Option<i64> = sqlx::query_scalar(
            // NO KEY UPDATE: it excludes other schedulers as FOR UPDATE does,
            // but not the KEY SHARE lock an executor's insert of a try, a log
            // line or an output takes on its run (the foreign keys), which
            // deadlocked with this lock while the scheduler waited on a task
            // instance that executor had just updated.
            "SELECT id FROM dag_runs WHERE id = $1 AND state = 'running' FOR NO KEY UPDATE SKIP LOCKED",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            continue;
        }
        let (q, done) = advance_run(&mut tx, dag, &run_id).await?;
        if q > 0 {
            notify_wakeup(&mut *tx).await?;
        }
        tx.commit().await?;
        queued += q;
        finished += usize::from(done);
    }
    Ok((queued, finished))
}

/// One run: queue ready tasks, propagate skips and upstream failures, put
/// retries whose delay has passed back in the queue, and finish the run when
/// every task instance is done. Returns (tasks queued, run finished).
async fn advance_run(
    tx: &mut Transaction<'_, Postgres>,
    dag: &Dag,
    run_id: &str,
) -> Result<(usize, bool), StoreError> {
    let rows: Vec<(String, i32, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT task_id, map_index, state, next_attempt_at FROM task_instances
         WHERE dag_id = $1 AND run_id = $2 ORDER BY task_id, map_index",
    )
    .bind(&dag.id)
    .bind(run_id)
    .fetch_all(&mut **tx)
    .await?;
    let now = Utc::now();
    // Each task's instances: its one instance (map_index -1), or a mapped
    // task's expanded ones (docs/mapping.md).
    let mut states: HashMap<String, Vec<(i32, TaskState)>> = HashMap::with_capacity(rows.len());
    let mut due_again: Vec<((String, i32), TaskState)> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for (task_id, map_index, state, next_attempt) in rows {
        let state = state.parse::<TaskState>().unwrap_or(TaskState::None);
        if dag.task(&task_id).is_none() {
            if !state.is_finished() && state != TaskState::Running && !removed.contains(&task_id) {
                removed.push(task_id.clone());
            }
            continue;
        }
        if matches!(state, TaskState::UpForRetry | TaskState::UpForReschedule)
            && next_attempt.is_none_or(|t| t <= now)
        {
            due_again.push(((task_id.clone(), map_index), state));
        }
        states.entry(task_id).or_default().push((map_index, state));
    }
    // Tasks added to the DAG after the run started.
    let missing: Vec<&str> = dag
        .tasks()
        .iter()
        .filter(|t| !states.contains_key(&t.id))
        .map(|t| t.id.as_str())
        .collect();
    if !missing.is_empty() {
        insert_task_instances(tx, dag, run_id, Some(&missing)).await?;
        for id in missing {
            states.insert(id.to_owned(), vec![(-1, TaskState::None)]);
        }
    }

    let mut changes: HashMap<(TaskState, TaskState), Vec<(String, i32)>> = HashMap::new();
    let mut conf: Option<Value> = None;
    let mut queued = 0;
    for task in dag.tasks() {
        let waiting: Vec<i32> = states[&task.id]
            .iter()
            .filter(|(_, s)| *s == TaskState::None)
            .map(|(i, _)| *i)
            .collect();
        if waiting.is_empty() {
            continue;
        }
        let summary = UpstreamSummary::from_states(
            task.upstream
                .iter()
                .flat_map(|u| states[u].iter().map(|(_, s)| *s)),
        );
        let next = match evaluate(task.trigger_rule, summary) {
            Decision::Wait => continue,
            Decision::Run => TaskState::Queued,
            Decision::Skip => TaskState::Skipped,
            Decision::UpstreamFailed => TaskState::UpstreamFailed,
        };
        if next == TaskState::Queued && task.map.is_some() && waiting == [-1] {
            if conf.is_none() {
                conf = Some(run_conf(tx, &dag.id, run_id).await?);
            }
            let expanded =
                mapping::expand(tx, dag, run_id, task, conf.as_ref().unwrap_or(&Value::Null))
                    .await?;
            let instances: Vec<(i32, TaskState)> = match expanded {
                Expansion::Queued(n) => {
                    queued += n;
                    (0..n as i32).map(|i| (i, TaskState::Queued)).collect()
                }
                Expansion::Skipped => vec![(-1, TaskState::Skipped)],
                Expansion::Failed(_) => vec![(-1, TaskState::Failed)],
            };
            states.insert(task.id.clone(), instances);
            continue;
        }
        if let Some(instances) = states.get_mut(&task.id) {
            for (i, s) in instances.iter_mut() {
                if *s == TaskState::None {
                    *s = next;
                    changes
                        .entry((TaskState::None, next))
                        .or_default()
                        .push((task.id.clone(), *i));
                }
            }
        }
    }
    for ((id, map_index), from) in due_again {
        changes
            .entry((from, TaskState::Queued))
            .or_default()
            .push((id.clone(), map_index));
        if let Some(instances) = states.get_mut(&id) {
            for (i, s) in instances.iter_mut() {
                if *i == map_index {
                    *s = TaskState::Queued;
                }
            }
        }
    }
    if !removed.is_empty() {
        sqlx::query(
            "UPDATE task_instances SET state = 'removed' WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3)
               AND state NOT IN ('running', 'success', 'failed', 'skipped', 'upstream_failed', 'removed')",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(&removed)
        .execute(&mut **tx)
        .await?;
    }
    for ((from, to), instances) in changes {
        let (ids, indexes): (Vec<String>, Vec<i32>) = instances.into_iter().unzip();
        let res = sqlx::query(
            "UPDATE task_instances ti SET state = $3,
                    queued_at = CASE WHEN $3 = 'queued' THEN now() ELSE ti.queued_at END,
                    end_date = CASE WHEN $3 = 'queued' THEN ti.end_date ELSE now() END
             FROM unnest($4::text[], $5::int[]) AS c(task_id, map_index)
             WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = c.task_id
               AND ti.map_index = c.map_index AND ti.state = $6",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(to.as_str())
        .bind(&ids)
        .bind(&indexes)
        .bind(from.as_str())
        .execute(&mut **tx)
        .await?;
        if to == TaskState::Queued {
            queued += res.rows_affected() as usize;
        }
    }

    let all_done = states.values().flatten().all(|(_, s)| s.is_finished());
    if !all_done {
        return Ok((queued, false));
    }
    // As in Airflow: the run fails when a leaf task failed or never ran
    // because of a failure (for a mapped leaf: any of its instances).
    let failed = dag
        .tasks()
        .iter()
        .filter(|t| t.downstream.is_empty())
        .any(|t| {
            states[&t.id]
                .iter()
                .any(|(_, s)| matches!(s, TaskState::Failed | TaskState::UpstreamFailed))
        });
    let state = if failed { "failed" } else { "success" };
    sqlx::query(
        "UPDATE dag_runs SET state = $3, end_date = now() WHERE dag_id = $1 AND run_id = $2 AND state = 'running'",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(state)
    .execute(&mut **tx)
    .await?;
    tracing::info!(dag_id = %dag.id, run_id, state, "run finished");
    let (event, message) = if failed {
        let mut culprits: Vec<&str> = states
            .iter()
            .filter(|(_, s)| s.iter().any(|(_, s)| *s == TaskState::Failed))
            .map(|(t, _)| t.as_str())
            .collect();
        culprits.sort_unstable();
        (
            AlertEvent::Failure,
            format!(
                "DAG {} run {run_id} failed; failed tasks: {}",
                dag.id,
                culprits.join(", ")
            ),
        )
    } else {
        (
            AlertEvent::Success,
            format!("DAG {} run {run_id} succeeded", dag.id),
        )
    };
    alert::enqueue(
        tx,
        &dag.alerts,
        event,
        &dag.id,
        run_id,
        None,
        None,
        &message,
        &serde_json::json!({"state": state}),
    )
    .await?;
    Ok((queued, true))
}

/// The conf a run was triggered with (`{}` when none).
async fn run_conf(
    tx: &mut Transaction<'_, Postgres>,
    dag_id: &str,
    run_id: &str,
) -> Result<Value, StoreError> {
    let conf: Option<Value> =
        sqlx::query_scalar("SELECT conf FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(conf.unwrap_or(Value::Null))
}

#[derive(sqlx::FromRow)]
struct Zombie {
    dag_id: String,
    run_id: String,
    task_id: String,
    map_index: i32,
    try_number: i32,
    max_tries: i32,
    worker_id: Option<String>,
    start_date: Option<DateTime<Utc>>,
}

/// Fail or retry the running task instances whose heartbeat has gone stale:
/// their process died. Returns how many were reaped.
pub async fn reap_zombies(
    store: &Store,
    bag: &DagBag,
    threshold: Duration,
) -> Result<usize, StoreError> {
    let mut tx = store.pool().begin().await?;
    let zombies: Vec<Zombie> = sqlx::query_as(
        "SELECT dag_id, run_id, task_id, map_index, try_number, max_tries, worker_id, start_date FROM task_instances
         WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
         FOR UPDATE SKIP LOCKED",
    )
    .bind(threshold.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    for Zombie {
        dag_id,
        run_id,
        task_id,
        map_index,
        try_number,
        max_tries,
        worker_id,
        start_date: start,
    } in &zombies
    {
        let retry = bag
            .get(dag_id)
            .and_then(|d| d.task(task_id))
            .map(|t| t.retry)
            .unwrap_or_default();
        let (state, next) = if try_number <= max_tries {
            let delay = retry.delay_after((*try_number).max(1) as u32);
            (
                "up_for_retry",
                Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()),
            )
        } else {
            ("failed", None)
        };
        let error = format!(
            "zombie: worker {} stopped heartbeating for more than {}s",
            worker_id.as_deref().unwrap_or("?"),
            threshold.as_secs()
        );
        tracing::warn!(
            dag_id,
            run_id,
            task_id,
            try_number,
            "{error}; marking {state}"
        );
        sqlx::query(
            "UPDATE task_instances SET state = $5, next_attempt_at = $6, end_date = now(),
                    duration = EXTRACT(EPOCH FROM now() - start_date)
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4 AND state = 'running'
               AND map_index = $7",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(state)
        .bind(next)
        .bind(map_index)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO task_tries (dag_id, run_id, task_id, try_number, state, worker_id, start_date, end_date,
                                     duration, error, map_index)
             VALUES ($1, $2, $3, $4, 'failed', $5, $6, now(), EXTRACT(EPOCH FROM now() - $6), $7, $8)
             ON CONFLICT DO NOTHING",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(worker_id)
        .bind(start)
        .bind(&error)
        .bind(map_index)
        .execute(&mut *tx)
        .await?;
    }
    if !zombies.is_empty() {
        sqlx::query(
            "UPDATE workers SET stopped_at = now()
             WHERE stopped_at IS NULL AND heartbeat_at < now() - make_interval(secs => $1)",
        )
        .bind(threshold.as_secs_f64())
        .execute(&mut *tx)
        .await?;
        notify_wakeup(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(zombies.len())
}
