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
use crate::dag::{Dag, DagBag, TaskNode};
use crate::mapping::{self, Expansion};
use crate::schedule::DataInterval;
use crate::state::{evaluate, Decision, TaskState, UpstreamSummary};
use crate::store::write::{notify_queued, notify_wakeup, RunType};
use crate::store::{list_statement, Store, StoreError};

/// What one scheduler pass did, so the loop knows whether to wake executors.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassReport {
    pub runs_created: usize,
    pub runs_started: usize,
    pub tasks_queued: usize,
    pub runs_finished: usize,
    pub zombies: usize,
}

/// The most runs one pass creates, and starts: a catch-up of many DAGs is
/// spread over passes, keeping each pass short.
pub const RUNS_CREATED_PER_PASS: usize = 100;
pub const RUNS_STARTED_PER_PASS: usize = 100;

/// What a pass's creating or starting did, and whether it left work for the next.
#[derive(Debug, Default, Clone, Copy)]
pub struct Step {
    pub runs: usize,
    /// More was due than one pass does: run the next pass at once.
    pub more: bool,
}

/// Create runs whose data interval has ended, for every unpaused DAG,
/// within each DAG's `max_active_runs`. DAGs take turns, earliest due run
/// first, so no DAG waits for another's whole backlog.
pub async fn create_due_runs(
    store: &Store,
    bag: &DagBag,
    now: DateTime<Utc>,
) -> Result<Step, StoreError> {
    // Each DAG's latest scheduled run off the (dag_id, logical_date) index,
    // and the active runs counted off the index of waiting runs: neither
    // reads a DAG's whole history, which grows without end. On statistics
    // from before a catch-up created its runs, the planner fetched every
    // run of each DAG and sorted them instead of reading the index in
    // order (15-20 ms a pass for 500 DAGs): the transaction rules that out
    // (and JIT, see `advance_runs`).
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true),
                set_config('jit', 'off', true)",
    )
    .execute(&mut *tx)
    .await?;
    let rows: Vec<(String, bool, Option<DateTime<Utc>>, i64)> = sqlx::query_as(
        "WITH active AS (
             SELECT dag_id, count(*) AS n FROM dag_runs
             WHERE state IN ('queued', 'running') AND backfill_id IS NULL GROUP BY dag_id)
         SELECT d.dag_id, d.is_paused,
                (SELECT r.data_interval_end FROM dag_runs r
                 WHERE r.dag_id = d.dag_id AND r.run_type = 'scheduled'
                 ORDER BY r.logical_date DESC LIMIT 1),
                COALESCE(a.n, 0)
         FROM dags d LEFT JOIN active a ON a.dag_id = d.dag_id
         WHERE d.schedule IS NOT NULL AND NOT d.is_stale
         ORDER BY d.dag_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut due: Vec<(&Dag, Vec<DataInterval>)> = Vec::new();
    for (dag_id, paused, last_end, active) in rows {
        let Some(dag) = bag.get(&dag_id) else {
            continue;
        };
        let room = (dag.max_active_runs as i64 - active).max(0) as usize;
        if paused || room == 0 {
            continue;
        }
        let intervals = dag.schedule.due_intervals(&dag.bounds, last_end, now, room);
        if !intervals.is_empty() {
            due.push((dag, intervals));
        }
    }
    let wants: Vec<usize> = due.iter().map(|(_, i)| i.len()).collect();
    let shares = take_turns(&wants, RUNS_CREATED_PER_PASS);
    let more = shares.iter().sum::<usize>() < wants.iter().sum::<usize>();
    let picked: Vec<(&Dag, DataInterval)> = due
        .iter()
        .zip(&shares)
        .flat_map(|((dag, intervals), n)| intervals[..*n].iter().map(|i| (*dag, *i)))
        .collect();
    let runs = store.create_runs(RunType::Scheduled, &picked).await?;
    Ok(Step { runs, more })
}

/// Shares `budget` among queues wanting `wants[i]` items, one item to each
/// in turn, so no queue waits for another's whole backlog.
fn take_turns(wants: &[usize], budget: usize) -> Vec<usize> {
    let mut share = vec![0; wants.len()];
    let mut left = budget;
    loop {
        let mut gave = false;
        for (s, w) in share.iter_mut().zip(wants) {
            if left == 0 {
                return share;
            }
            if *s < *w {
                *s += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            return share;
        }
    }
}

/// Move queued runs to running, oldest logical date first, within each DAG's
/// `max_active_runs`, and create their task instances, for all DAGs in one
/// transaction. Runs of a backfill record start under the backfill's own
/// limits ([`backfill::start_runs`]).
pub async fn start_queued_runs(store: &Store, bag: &DagBag) -> Result<Step, StoreError> {
    let backfill = start_backfill_runs(store, bag).await?;
    // Paused DAGs start only backfill runs: a backfill is an explicit request.
    // Counted per DAG off the index of waiting runs (migration 31) before
    // the join, so the join sees one row per DAG, not one per run.
    let waiting: Vec<(String, bool, i64, i64)> = sqlx::query_as(
        "SELECT r.dag_id, d.is_paused,
                CASE WHEN d.is_paused THEN r.queued_backfills ELSE r.queued END,
                r.running
         FROM (SELECT dag_id,
                      count(*) FILTER (WHERE state = 'queued') AS queued,
                      count(*) FILTER (WHERE state = 'queued' AND run_type = 'backfill') AS queued_backfills,
                      count(*) FILTER (WHERE state = 'running') AS running
               FROM dag_runs
               WHERE state IN ('queued', 'running') AND backfill_id IS NULL
               GROUP BY dag_id) r
         JOIN dags d ON d.dag_id = r.dag_id
         ORDER BY r.dag_id",
    )
    .fetch_all(store.pool())
    .await?;
    let startable: Vec<(&Dag, bool, usize)> = waiting
        .iter()
        .filter_map(|(dag_id, paused, queued, running)| {
            let dag: &Dag = bag.get(dag_id)?;
            let room = (dag.max_active_runs as i64 - running).min(*queued);
            (room > 0).then_some((dag, *paused, room as usize))
        })
        .collect();
    if startable.is_empty() {
        return Ok(Step {
            runs: backfill,
            more: false,
        });
    }
    let mut tx = store.pool().begin().await?;
    // Serialize run starts per DAG across processes; skip the DAGs another
    // process is starting runs of.
    let ids: Vec<&str> = startable.iter().map(|(d, _, _)| d.id.as_str()).collect();
    let locked: Vec<String> = sqlx::query_scalar(
        "SELECT dag_id FROM dags WHERE dag_id = ANY($1) ORDER BY dag_id FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    // Counted again under the locks: another process may have started some.
    let running: HashMap<String, i64> = sqlx::query_as(
        "SELECT dag_id, count(*) FROM dag_runs
         WHERE dag_id = ANY($1) AND state = 'running' AND backfill_id IS NULL GROUP BY dag_id",
    )
    .bind(&locked)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mine: Vec<(&Dag, bool, usize)> = startable
        .into_iter()
        .filter(|(d, _, _)| locked.contains(&d.id))
        .map(|(d, paused, queued)| {
            let busy = running.get(&d.id).copied().unwrap_or(0);
            let room = (d.max_active_runs as i64 - busy).max(0) as usize;
            (d, paused, room.min(queued))
        })
        .collect();
    let wants: Vec<usize> = mine.iter().map(|m| m.2).collect();
    let shares = take_turns(&wants, RUNS_STARTED_PER_PASS);
    let more = shares.iter().sum::<usize>() < wants.iter().sum::<usize>();
    // Only the DAGs whose turn it is: each one joined costs a look at its
    // queued runs.
    let (mine, shares): (Vec<_>, Vec<usize>) = mine
        .into_iter()
        .zip(shares)
        .filter(|(_, share)| *share > 0)
        .unzip();
    // Each DAG's oldest queued runs, its share of them, off the index of
    // waiting runs (migration 31).
    // A started run asks for a pass: its first tasks are queued by the
    // advance of this same pass.
    let started: Vec<(String, String)> = sqlx::query_as(
        "WITH started AS (
             UPDATE dag_runs SET state = 'running', start_date = now()
             FROM unnest($1::text[], $2::bool[], $3::int[]) AS c(dag_id, paused, share)
             CROSS JOIN LATERAL (
                 SELECT r.id FROM dag_runs r
                 WHERE r.dag_id = c.dag_id AND r.state = 'queued' AND r.backfill_id IS NULL
                   AND (NOT c.paused OR r.run_type = 'backfill')
                 ORDER BY r.logical_date LIMIT c.share) q
             WHERE dag_runs.id = q.id
             RETURNING dag_runs.dag_id, dag_runs.run_id),
         asked AS (INSERT INTO run_schedule_requests (dag_id, run_id)
                   SELECT dag_id, run_id FROM started)
         SELECT dag_id, run_id FROM started",
    )
    .bind(mine.iter().map(|m| m.0.id.as_str()).collect::<Vec<_>>())
    .bind(mine.iter().map(|m| m.1).collect::<Vec<_>>())
    .bind(shares.iter().map(|n| *n as i32).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let runs: Vec<(&Dag, &str)> = started
        .iter()
        .filter_map(|(dag_id, run_id)| Some((&**bag.get(dag_id)?, run_id.as_str())))
        .collect();
    insert_run_task_instances(&mut tx, &runs, None).await?;
    tx.commit().await?;
    Ok(Step {
        runs: backfill + started.len(),
        more,
    })
}

/// Create the task instances of many runs (all their tasks, or only
/// `only`) in one statement, each in state `none` (a mapped task gets its
/// placeholder, docs/mapping.md).
async fn insert_run_task_instances(
    tx: &mut Transaction<'_, Postgres>,
    runs: &[(&Dag, &str)],
    only: Option<&[&str]>,
) -> Result<(), StoreError> {
    let instances = runs.iter().flat_map(|(dag, run_id)| {
        dag.tasks()
            .iter()
            .filter(move |t| only.is_none_or(|o| o.contains(&t.id.as_str())))
            .map(move |t| (*dag, *run_id, t))
    });
    let (mut dags, mut run_ids, mut ids) = (vec![], vec![], vec![]);
    let (mut tries, mut pools, mut slots, mut weights) = (vec![], vec![], vec![], vec![]);
    for (dag, run_id, t) in instances {
        dags.push(dag.id.as_str());
        run_ids.push(run_id);
        ids.push(t.id.as_str());
        tries.push(t.retry.retries as i32);
        pools.push(t.pool.as_str());
        slots.push(t.pool_slots as i32);
        weights.push(t.priority_weight);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO task_instances (dag_id, run_id, task_id, max_tries, pool, pool_slots, priority_weight)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[], $7::int[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&dags)
    .bind(&run_ids)
    .bind(&ids)
    .bind(&tries)
    .bind(&pools)
    .bind(&slots)
    .bind(&weights)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
    insert_run_task_instances(tx, &[(dag, run_id)], only).await
}

/// The most running runs one scheduler pass examines: a pass stays short
/// however many runs are active. Runs that asked for a pass come first
/// (a try recorded that needs the scheduler, a run just started or
/// cleared, a zombie reaped: `run_schedule_requests`); the others take
/// turns by id ([`Turns`]).
pub const RUNS_PER_PASS: i64 = 128;

/// Where this process's passes are in their round of the running runs:
/// each pass takes those after the last one the previous pass examined,
/// by id, and starts over from the first once past the last. So every
/// running run is examined at least once every `running / RUNS_PER_PASS`
/// passes, and no pass writes to a run to say it examined it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Turns {
    /// The id of the last run examined in turn (0: start from the first).
    after: i64,
}

/// What [`advance_runs`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Advanced {
    pub queued: usize,
    pub finished: usize,
    /// Flagged runs were left for the next pass: run it at once.
    pub more: bool,
}

/// One task instance of a run, as a pass reads it.
type InstanceRow = (String, i32, String, Option<DateTime<Utc>>);

/// A running run a pass examines: id, DAG, run id.
type PassRun = (i64, String, String);

/// A run a request names, as a pass locks it: a [`PassRun`] and its state.
type RequestedRun = (i64, String, String, String);

/// An [`InstanceRow`] led by its DAG and run.
type RunInstanceRow = (String, String, String, i32, String, Option<DateTime<Utc>>);

/// Examine up to [`RUNS_PER_PASS`] running runs this process can lock, in
/// one transaction: their task instances are read in one query, and only
/// runs with something to change write.
pub async fn advance_runs(
    store: &Store,
    bag: &DagBag,
    turns: &mut Turns,
) -> Result<Advanced, StoreError> {
    let mut tx = store.pool().begin().await?;
    // Every statement of a pass finds its rows by key. On statistics from
    // before a catch-up created its runs, the planner expected a few and
    // scanned whole tables instead: an update of 256 runs by id compared
    // each of 8,000 rows with the 256 ids (25-40 ms), and the pass's moves
    // hashed every task instance (25 ms). Local to the pass's transaction. JIT
    // is off with it: a scan with no index to take instead (a temporary
    // table, a table without one) then costs 10^10, far past
    // `jit_above_cost`, and compiling it took 150 ms.
    sqlx::query("SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)")
        .execute(&mut *tx)
        .await?;
    // NO KEY UPDATE: it excludes other schedulers as FOR UPDATE does,
    // but not the KEY SHARE lock an executor's insert of a try, a log
    // line or an output takes on its run (the foreign keys), which
    // deadlocked with this lock while the scheduler waited on a task
    // instance that executor had just updated.
    //
    // First the runs that asked for a pass (migration 29), then the others
    // in turn.
    // Each request looks its run up by key alone: the requests are few,
    // the running runs may be thousands. With the state in the lookup, a
    // plan from statistics taken before a catch-up started its runs
    // scanned the index of active runs instead, 7,000 of them per request
    // (0.3-1.1 s a pass). A request whose run has ended is only dropped.
    let requests: Vec<RequestedRun> = sqlx::query_as(
        "SELECT r.id, r.dag_id, r.run_id, r.state
         FROM (SELECT DISTINCT dag_id, run_id FROM run_schedule_requests LIMIT $1) q
         CROSS JOIN LATERAL (
             SELECT id, dag_id, run_id, state FROM dag_runs
             WHERE dag_runs.dag_id = q.dag_id AND dag_runs.run_id = q.run_id
             LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED
         ) r
         ORDER BY r.id",
    )
    .bind(RUNS_PER_PASS)
    .fetch_all(&mut *tx)
    .await?;
    let mut ended: Vec<(String, String)> = Vec::new();
    let mut runs: Vec<PassRun> = Vec::new();
    for (id, dag_id, run_id, state) in requests {
        if state == "running" {
            runs.push((id, dag_id, run_id));
        } else {
            ended.push((dag_id, run_id));
        }
    }
    // Requests may remain when a pass took as many as it looks at.
    let requests_left = (runs.len() + ended.len()) as i64 == RUNS_PER_PASS;
    let requested = runs.len() as i64;
    if requested < RUNS_PER_PASS {
        // The running runs after the last one examined in turn, then, once
        // past the last, from the first. The partial index of running runs
        // (migration 32) hands them over in id order.
        let mut taken: Vec<i64> = runs.iter().map(|r| r.0).collect();
        let mut want = RUNS_PER_PASS - requested;
        let mut after = turns.after;
        loop {
            let next: Vec<PassRun> = sqlx::query_as(
                "SELECT id, dag_id, run_id FROM dag_runs
                 WHERE state = 'running' AND id > $3 AND id <> ALL($2)
                 ORDER BY id LIMIT $1
                 FOR NO KEY UPDATE SKIP LOCKED",
            )
            .bind(want)
            .bind(&taken)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            let short = (next.len() as i64) < want;
            want -= next.len() as i64;
            turns.after = next.last().map_or(0, |r| r.0);
            taken.extend(next.iter().map(|r| r.0));
            runs.extend(next);
            // Past the last running run: once more from the first, unless
            // this round already started there.
            if !short || after == 0 {
                break;
            }
            after = 0;
        }
    }
    if runs.is_empty() && ended.is_empty() {
        return Ok(Advanced::default());
    }
    // Take the locked runs' requests before reading their task instances:
    // an executor asks only after its tries committed, so the read below
    // sees the tries of every request taken here; a request made later
    // stays for the next pass.
    let taken = runs
        .iter()
        .map(|r| (&r.1, &r.2))
        .chain(ended.iter().map(|r| (&r.0, &r.1)));
    let (dag_ids, run_ids): (Vec<&str>, Vec<&str>) =
        taken.map(|(d, r)| (d.as_str(), r.as_str())).unzip();
    sqlx::query(
        "DELETE FROM run_schedule_requests q
         USING unnest($1::text[], $2::text[]) AS r(dag_id, run_id)
         WHERE q.dag_id = r.dag_id AND q.run_id = r.run_id",
    )
    .bind(&dag_ids)
    .bind(&run_ids)
    .persistent(false)
    .execute(&mut *tx)
    .await?;
    if runs.is_empty() {
        tx.commit().await?;
        return Ok(Advanced::default());
    }
    let ours: Vec<&PassRun> = runs.iter().filter(|r| bag.get(&r.1).is_some()).collect();
    let rows: Vec<RunInstanceRow> = sqlx::query_as(
        "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, ti.next_attempt_at
         FROM task_instances ti
         JOIN unnest($1::text[], $2::text[]) AS r(dag_id, run_id)
           ON ti.dag_id = r.dag_id AND ti.run_id = r.run_id
         ORDER BY ti.dag_id, ti.run_id, ti.task_id, ti.map_index",
    )
    .bind(ours.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
    .bind(ours.iter().map(|r| r.2.as_str()).collect::<Vec<_>>())
    // Planned with its lists, once a pass: see `store::LONG_LIST`.
    .persistent(false)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_run: HashMap<(String, String), Vec<InstanceRow>> = HashMap::new();
    for (dag_id, run_id, task_id, map_index, state, next_attempt) in rows {
        by_run
            .entry((dag_id, run_id))
            .or_default()
            .push((task_id, map_index, state, next_attempt));
    }
    let mut done = Advanced::default();
    let mut writes = PassWrites::default();
    for (_, dag_id, run_id) in &ours {
        let Some(dag) = bag.get(dag_id) else {
            continue;
        };
        let instances = by_run
            .remove(&(dag_id.clone(), run_id.clone()))
            .unwrap_or_default();
        done.queued += advance_run(&mut tx, dag, run_id, instances, &mut writes).await?;
    }
    done.queued += writes.moves.apply(&mut tx).await?;
    done.finished = finish_runs(&mut tx, &writes.finished).await?;
    // Queued tasks are the executors' alone; a run's end may let another
    // scheduler start the DAG's next run, so that wakes everyone as before.
    if done.queued > 0 && done.finished == 0 {
        notify_queued(&mut *tx, None).await?;
    } else if done.queued > 0 {
        notify_wakeup(&mut *tx).await?;
    }
    tx.commit().await?;
    done.more = requests_left;
    Ok(done)
}

/// One run, given its task instances (`rows`, ordered by task and index):
/// queue ready tasks, propagate skips and upstream failures, put retries
/// whose delay has passed back in the queue, and finish the run when every
/// task instance is done. The state changes and the finish go to `writes`,
/// which the pass makes for all its runs at once; the rare writes (a
/// mapped task's expansion, tasks added or removed since the run started)
/// are made here. Returns the tasks queued here (by expansion).
async fn advance_run(
    tx: &mut Transaction<'_, Postgres>,
    dag: &Dag,
    run_id: &str,
    rows: Vec<InstanceRow>,
    writes: &mut PassWrites,
) -> Result<usize, StoreError> {
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

    let mut conf: Option<Value> = None;
    let mut queued = 0;
    for task in dag.tasks() {
        // Twice for a mapped group's task that was just expanded: its new
        // instances are decided in the same pass.
        let mut decide_again = true;
        while std::mem::take(&mut decide_again) {
            // One decision per waiting instance, in the order of `states`.
            let decisions: Vec<(i32, Decision)> = decide(dag, task, &states);
            if task.map.is_some() && decisions == [(-1, Decision::Run)] {
                if conf.is_none() {
                    conf = Some(run_conf(tx, &dag.id, run_id).await?);
                }
                let conf = conf.as_ref().unwrap_or(&Value::Null);
                let instances: Vec<(i32, TaskState)> =
                    match mapping::expand(tx, dag, run_id, task, conf).await? {
                        Expansion::Queued(n) => {
                            queued += n;
                            (0..n as i32).map(|i| (i, TaskState::Queued)).collect()
                        }
                        Expansion::Waiting(n) => {
                            decide_again = n > 0;
                            (0..n as i32).map(|i| (i, TaskState::None)).collect()
                        }
                        Expansion::Skipped => vec![(-1, TaskState::Skipped)],
                        Expansion::Failed(_) => vec![(-1, TaskState::Failed)],
                    };
                states.insert(task.id.clone(), instances);
                continue;
            }
            let Some(instances) = states.get_mut(&task.id) else {
                continue;
            };
            let waiting = instances.iter_mut().filter(|(_, s)| *s == TaskState::None);
            for ((i, s), (_, decision)) in waiting.zip(decisions) {
                let next = match decision {
                    Decision::Wait => continue,
                    Decision::Run => TaskState::Queued,
                    Decision::Skip => TaskState::Skipped,
                    Decision::UpstreamFailed => TaskState::UpstreamFailed,
                };
                *s = next;
                writes
                    .moves
                    .push(&dag.id, run_id, &task.id, *i, TaskState::None, next);
            }
        }
    }
    for ((id, map_index), from) in due_again {
        writes
            .moves
            .push(&dag.id, run_id, &id, map_index, from, TaskState::Queued);
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

    let all_done = states.values().flatten().all(|(_, s)| s.is_finished());
    if !all_done {
        return Ok(queued);
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
    writes
        .finished
        .push((dag.id.clone(), run_id.to_owned(), state));
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
    Ok(queued)
}

/// What to do with each of `task`'s waiting instances (`map_index`,
/// decision), by its trigger rule over its upstream instances: all of
/// them, except that instance `i` of a mapped group's task looks only at
/// instance `i` of the group's tasks upstream of it (docs/mapping.md).
fn decide(
    dag: &Dag,
    task: &TaskNode,
    states: &HashMap<String, Vec<(i32, TaskState)>>,
) -> Vec<(i32, Decision)> {
    let waiting: Vec<i32> = states[&task.id]
        .iter()
        .filter(|(_, s)| *s == TaskState::None)
        .map(|(i, _)| *i)
        .collect();
    if waiting.is_empty() {
        return Vec::new();
    }
    let paired: HashMap<&str, HashMap<i32, TaskState>> = task
        .upstream
        .iter()
        // Only a mapped group's task has any: the others skip the lookups
        // (a 10,000-wide fan-in's waiting task is decided every pass).
        .filter(|u| task.in_mapped_group && dag.task(u).is_some_and(|up| task.follows_index_of(up)))
        .map(|u| (u.as_str(), states[u].iter().copied().collect()))
        .collect();
    if paired.is_empty() {
        let summary = UpstreamSummary::from_states(
            task.upstream
                .iter()
                .flat_map(|u| states[u].iter().map(|(_, s)| *s)),
        );
        let decision = evaluate(task.trigger_rule, summary);
        return waiting.into_iter().map(|i| (i, decision)).collect();
    }
    let unpaired = || {
        task.upstream
            .iter()
            .filter(|u| !paired.contains_key(u.as_str()))
            .flat_map(|u| states[u].iter().map(|(_, s)| *s))
    };
    if waiting == [-1] {
        // Not expanded yet. That waits until the group's tasks upstream of
        // it are expanded, or ended at their placeholder (skipped for an
        // empty list, failed), which then counts as their state.
        let mut ended: Vec<TaskState> = Vec::new();
        for instances in paired.values() {
            match instances.get(&-1) {
                Some(s) if !s.is_finished() => return Vec::new(),
                Some(s) => ended.push(*s),
                None => {}
            }
        }
        let summary = UpstreamSummary::from_states(unpaired().chain(ended));
        return vec![(-1, evaluate(task.trigger_rule, summary))];
    }
    waiting
        .into_iter()
        .map(|i| {
            let mut same: Vec<TaskState> = unpaired().collect();
            for (u, instances) in &paired {
                match instances.get(&i) {
                    Some(s) => same.push(*s),
                    // No instance `i` upstream (its list changed since):
                    // wait for all of it.
                    None => same.extend(states[*u].iter().map(|(_, s)| *s)),
                }
            }
            (
                i,
                evaluate(task.trigger_rule, UpstreamSummary::from_states(same)),
            )
        })
        .collect()
}

/// The writes [`advance_run`] leaves for the end of the pass, so that a
/// pass over hundreds of runs makes two statements, not one or more per
/// run (a catch-up's passes spent most of their time in those round trips).
#[derive(Default)]
struct PassWrites {
    moves: Moves,
    /// Runs whose every task instance is done: (DAG, run, final state).
    finished: Vec<(String, String, &'static str)>,
}

/// Task instances to move from one state to another, as columns.
#[derive(Default)]
struct Moves {
    dag_ids: Vec<String>,
    run_ids: Vec<String>,
    task_ids: Vec<String>,
    map_indexes: Vec<i32>,
    from: Vec<&'static str>,
    to: Vec<&'static str>,
}

impl Moves {
    fn push(
        &mut self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i32,
        from: TaskState,
        to: TaskState,
    ) {
        self.dag_ids.push(dag_id.to_owned());
        self.run_ids.push(run_id.to_owned());
        self.task_ids.push(task_id.to_owned());
        self.map_indexes.push(map_index);
        self.from.push(from.as_str());
        self.to.push(to.as_str());
    }

    /// Makes every move whose instance is still in its `from` state (one a
    /// user cleared or marked meanwhile is left alone); returns how many
    /// instances were queued.
    async fn apply(&self, tx: &mut Transaction<'_, Postgres>) -> Result<usize, StoreError> {
        if self.task_ids.is_empty() {
            return Ok(0);
        }
        let (sql, prepared) = list_statement(
            "WITH moved AS (
                 UPDATE task_instances ti SET state = c.to_state,
                        queued_at = CASE WHEN c.to_state = 'queued' THEN now() ELSE ti.queued_at END,
                        end_date = CASE WHEN c.to_state = 'queued' THEN ti.end_date ELSE now() END
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[])
                      AS c(dag_id, run_id, task_id, map_index, from_state, to_state)
                 WHERE ti.dag_id = c.dag_id AND ti.run_id = c.run_id AND ti.task_id = c.task_id
                   AND ti.map_index = c.map_index AND ti.state = c.from_state
                 RETURNING ti.state)
             SELECT count(*) FILTER (WHERE state = 'queued') FROM moved",
            self.task_ids.len(),
        );
        let queued: i64 = sqlx::query_scalar(&sql)
            .bind(&self.dag_ids)
            .bind(&self.run_ids)
            .bind(&self.task_ids)
            .bind(&self.map_indexes)
            .bind(&self.from)
            .bind(&self.to)
            .persistent(prepared)
            .fetch_one(&mut **tx)
            .await?;
        Ok(queued as usize)
    }
}

/// Ends the runs [`advance_run`] found done, each still running; returns
/// how many it ended.
async fn finish_runs(
    tx: &mut Transaction<'_, Postgres>,
    runs: &[(String, String, &'static str)],
) -> Result<usize, StoreError> {
    if runs.is_empty() {
        return Ok(0);
    }
    let (sql, prepared) = list_statement(
        "UPDATE dag_runs r SET state = c.state, end_date = now()
         FROM unnest($1::text[], $2::text[], $3::text[]) AS c(dag_id, run_id, state)
         WHERE r.dag_id = c.dag_id AND r.run_id = c.run_id AND r.state = 'running'",
        runs.len(),
    );
    sqlx::query(&sql)
        .bind(runs.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.2).collect::<Vec<_>>())
        .persistent(prepared)
        .execute(&mut **tx)
        .await?;
    for (dag_id, run_id, state) in runs {
        tracing::info!(dag_id, run_id, state, "run finished");
    }
    Ok(runs.len())
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
        // Its run is first in line for the next pass (RUNS_PER_PASS).
        sqlx::query("INSERT INTO run_schedule_requests (dag_id, run_id) VALUES ($1, $2)")
            .bind(dag_id)
            .bind(run_id)
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

#[cfg(test)]
mod tests {
    use super::take_turns;

    #[test]
    fn queues_take_turns_within_the_budget() {
        // Every queue gets one before any gets a second.
        assert_eq!(take_turns(&[16, 16, 16], 4), vec![2, 1, 1]);
        // A short queue gives its turns to the others.
        assert_eq!(take_turns(&[1, 5, 0, 3], 8), vec![1, 4, 0, 3]);
        // A budget larger than the wants gives each all it wants.
        assert_eq!(take_turns(&[2, 3], 100), vec![2, 3]);
        assert_eq!(take_turns(&[], 10), Vec::<usize>::new());
        assert_eq!(take_turns(&[7], 0), vec![0]);
    }
}
