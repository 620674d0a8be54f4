//! Backfills as records (Airflow 3's AIP-78): one implementation behind the
//! CLI's `betflow backfill`, the DAG page's form and `/api/v2/backfills`.
//!
//! A backfill runs a DAG over the schedule intervals whose logical date is
//! in `[from, to]`. Intervals without a run get a new `backfill` run; an
//! existing run is left alone, or re-run when `reprocess_behavior` says so
//! (`failed`: a failed run's failed tasks; `completed`: every task of a
//! finished run). Runs in flight are never touched. The backfill's runs
//! start under its own `max_active_runs`, oldest first or, with
//! `run_backwards`, newest first, and not while it is paused; the DAG's own
//! pause and `max_active_runs` do not hold them back (a backfill is an
//! explicit request). Cancelling pauses it for good and fails its runs not
//! yet started. docs/backfills.md.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::dag::Dag;
use crate::schedule::DataInterval;
use crate::state::RunState;
use crate::store::write::{notify_wakeup, run_id_for, RunType};
use crate::store::{RunStateRow, Store, StoreError};

/// Most runs one backfill creates or re-runs, against typos such as
/// `--to 2204-01-01`; a larger range is split into several backfills.
pub const MAX_RUNS: usize = 10_000;

/// Airflow's default `max_active_runs` of a backfill.
pub const DEFAULT_MAX_ACTIVE_RUNS: i32 = 10;

/// What a backfill does with runs that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReprocessBehavior {
    /// Leave them as they are.
    #[default]
    None,
    /// Re-run the failed tasks of failed runs.
    Failed,
    /// Re-run every task of finished runs, failed or successful.
    Completed,
}

impl ReprocessBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Failed => "failed",
            Self::Completed => "completed",
        }
    }

    /// Whether an existing run in `state` is re-run.
    pub fn reprocesses(self, state: RunState) -> bool {
        match self {
            Self::None => false,
            Self::Failed => state == RunState::Failed,
            Self::Completed => state.is_finished(),
        }
    }
}

impl fmt::Display for ReprocessBehavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReprocessBehavior {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "failed" => Ok(Self::Failed),
            "completed" => Ok(Self::Completed),
            other => Err(format!(
                "reprocess behavior {other:?} is not one of none, failed, completed"
            )),
        }
    }
}

/// What a user asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub run_backwards: bool,
    /// Every run's conf (a JSON object).
    pub conf: Value,
    pub reprocess: ReprocessBehavior,
    pub max_active_runs: i32,
    /// Who asked: `cli:{login}`, a web login, a token's owner.
    pub created_by: Option<String>,
}

/// Why a backfill cannot be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("DAG `{0}` has no schedule, so it has no intervals to backfill")]
    NoSchedule(String),
    #[error("the range's start {from} is after its end {to}")]
    Reversed {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("the range holds more than {MAX_RUNS} intervals; split it into several backfills")]
    TooManyRuns,
    #[error("max_active_runs must be at least 1 (got {0})")]
    MaxActiveRuns(i32),
    #[error("the run conf must be a JSON object")]
    Conf,
    #[error("no schedule interval of `{0}` starts in that range")]
    NoIntervals(String),
    #[error(
        "no schedule interval of `{0}` in that range has ended yet: backfills run past intervals"
    )]
    NotEnded(String),
    #[error(
        "nothing to do: every interval of the range already has a run \
         ({kept} kept, {in_flight} in flight); ask to re-run failed or completed runs"
    )]
    NothingToDo { kept: usize, in_flight: usize },
    #[error(
        "DAG `{dag_id}` already has an active backfill (#{id}): cancel it or wait for it to end"
    )]
    AlreadyActive { dag_id: String, id: i64 },
    #[error("backfill {0} does not exist")]
    NotFound(i64),
    #[error("backfill {0} has already completed")]
    Completed(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackfillError {
    fn from(e: sqlx::Error) -> Self {
        BackfillError::Store(e.into())
    }
}

/// One interval of a backfill, and what it does there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRun {
    pub logical_date: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_id: String,
    pub action: PlannedAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedAction {
    /// A new backfill run.
    Create,
    /// An existing finished run, re-run.
    Rerun,
    /// An existing run left as it is.
    Keep,
    /// A run queued or running: never touched.
    InFlight,
}

/// What a backfill would do over each interval, in the order it runs them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Plan {
    pub runs: Vec<PlannedRun>,
}

impl Plan {
    pub fn count(&self, action: PlannedAction) -> usize {
        self.runs.iter().filter(|r| r.action == action).count()
    }

    /// The runs it creates or re-runs: Airflow's dry-run answer.
    pub fn effective(&self) -> impl Iterator<Item = &PlannedRun> {
        self.runs
            .iter()
            .filter(|r| matches!(r.action, PlannedAction::Create | PlannedAction::Rerun))
    }
}

/// A stored backfill and its progress.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct Backfill {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub run_backwards: bool,
    pub dag_run_conf: Value,
    pub reprocess_behavior: String,
    pub max_active_runs: i32,
    pub is_paused: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Its runs by state.
    pub queued: i64,
    pub running: i64,
    pub success: i64,
    pub failed: i64,
}

impl Backfill {
    pub fn total_runs(&self) -> i64 {
        self.queued + self.running + self.success + self.failed
    }

    /// `running`, `paused`, `completed` or `cancelled`: what the UI shows.
    pub fn status(&self) -> &'static str {
        match (self.completed_at.is_some(), self.is_paused) {
            (true, true) => "cancelled",
            (true, false) => "completed",
            (false, true) => "paused",
            (false, false) => "running",
        }
    }
}

const SELECT_BACKFILL: &str = "
    SELECT b.id, b.dag_id, b.from_date, b.to_date, b.run_backwards, b.dag_run_conf,
           b.reprocess_behavior, b.max_active_runs, b.is_paused, b.created_by,
           b.created_at, b.updated_at, b.completed_at,
           count(r.id) FILTER (WHERE r.state = 'queued')  AS queued,
           count(r.id) FILTER (WHERE r.state = 'running') AS running,
           count(r.id) FILTER (WHERE r.state = 'success') AS success,
           count(r.id) FILTER (WHERE r.state = 'failed')  AS failed
      FROM backfills b LEFT JOIN dag_runs r ON r.backfill_id = b.id";

/// The intervals of `request` on `dag`'s schedule, checked.
fn intervals(dag: &Dag, request: &BackfillRequest) -> Result<Vec<DataInterval>, BackfillError> {
    if dag.schedule.expression().is_none() {
        return Err(BackfillError::NoSchedule(dag.id.clone()));
    }
    if request.from > request.to {
        return Err(BackfillError::Reversed {
            from: request.from,
            to: request.to,
        });
    }
    if request.max_active_runs < 1 {
        return Err(BackfillError::MaxActiveRuns(request.max_active_runs));
    }
    if !request.conf.is_object() {
        return Err(BackfillError::Conf);
    }
    let mut intervals = dag
        .schedule
        .intervals_between(request.from, request.to, MAX_RUNS + 1);
    if intervals.len() > MAX_RUNS {
        return Err(BackfillError::TooManyRuns);
    }
    // As scheduled runs, a backfill runs only intervals that have ended:
    // a future one would take the date its scheduled run will need.
    let now = Utc::now();
    let before = intervals.len();
    intervals.retain(|i| i.end <= now);
    if intervals.is_empty() {
        return Err(if before > 0 {
            BackfillError::NotEnded(dag.id.clone())
        } else {
            BackfillError::NoIntervals(dag.id.clone())
        });
    }
    Ok(intervals)
}

/// What `request` would do on `dag` given the runs that exist.
pub async fn plan(
    store: &Store,
    dag: &Dag,
    request: &BackfillRequest,
) -> Result<Plan, BackfillError> {
    let intervals = ordered_intervals(dag, request)?;
    let (first, last) = span(&intervals);
    let existing = store.run_states_between(&dag.id, first, last).await?;
    Ok(plan_over(intervals, &existing, request.reprocess))
}

/// The request's intervals in the order the backfill runs them.
fn ordered_intervals(
    dag: &Dag,
    request: &BackfillRequest,
) -> Result<Vec<DataInterval>, BackfillError> {
    let mut intervals = intervals(dag, request)?;
    if request.run_backwards {
        intervals.reverse();
    }
    Ok(intervals)
}

/// The first and last logical dates of (non-empty) `intervals`.
fn span(intervals: &[DataInterval]) -> (DateTime<Utc>, DateTime<Utc>) {
    let starts = intervals.iter().map(|i| i.start);
    (
        starts.clone().min().unwrap_or_default(),
        starts.max().unwrap_or_default(),
    )
}

/// Each interval's action given the runs that exist.
fn plan_over(
    intervals: Vec<DataInterval>,
    existing: &[RunStateRow],
    reprocess: ReprocessBehavior,
) -> Plan {
    let runs = intervals
        .iter()
        .map(
            |i| match existing.iter().find(|r| r.logical_date == i.start) {
                None => PlannedRun {
                    logical_date: i.start,
                    data_interval_end: i.end,
                    run_id: run_id_for(RunType::Backfill, i.start),
                    action: PlannedAction::Create,
                },
                Some(r) => PlannedRun {
                    logical_date: i.start,
                    data_interval_end: i.end,
                    run_id: r.run_id.clone(),
                    action: if !r.state.is_finished() {
                        PlannedAction::InFlight
                    } else if reprocess.reprocesses(r.state) {
                        PlannedAction::Rerun
                    } else {
                        PlannedAction::Keep
                    },
                },
            },
        )
        .collect();
    Plan { runs }
}

/// Creates the backfill: its record, its new runs (queued) and its re-runs
/// (cleared and queued again), in one transaction. Airflow allows one
/// active backfill per DAG, and so does this.
pub async fn create(
    store: &Store,
    dag: &Dag,
    request: &BackfillRequest,
) -> Result<(Backfill, Plan), BackfillError> {
    let intervals = ordered_intervals(dag, request)?;
    let (first, last) = span(&intervals);
    let mut tx = store.pool().begin().await?;
    // One creator at a time per DAG, so two requests cannot both pass the
    // check below. NO KEY: other runs of the DAG may still be inserted.
    sqlx::query("SELECT 1 FROM dags WHERE dag_id = $1 FOR NO KEY UPDATE")
        .bind(&dag.id)
        .execute(&mut *tx)
        .await?;
    if let Some(id) = active(&mut *tx, &dag.id).await? {
        return Err(BackfillError::AlreadyActive {
            dag_id: dag.id.clone(),
            id,
        });
    }
    let existing: Vec<RunStateRow> = sqlx::query_as(
        "SELECT logical_date, run_id, state FROM dag_runs
         WHERE dag_id = $1 AND logical_date BETWEEN $2 AND $3",
    )
    .bind(&dag.id)
    .bind(first)
    .bind(last)
    .fetch_all(&mut *tx)
    .await?;
    let mut plan = plan_over(intervals, &existing, request.reprocess);
    if plan.effective().next().is_none() {
        return Err(BackfillError::NothingToDo {
            kept: plan.count(PlannedAction::Keep),
            in_flight: plan.count(PlannedAction::InFlight),
        });
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO backfills (dag_id, from_date, to_date, run_backwards, dag_run_conf,
                                reprocess_behavior, max_active_runs, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(&dag.id)
    .bind(request.from)
    .bind(request.to)
    .bind(request.run_backwards)
    .bind(&request.conf)
    .bind(request.reprocess.as_str())
    .bind(request.max_active_runs)
    .bind(&request.created_by)
    .fetch_one(&mut *tx)
    .await?;
    let created = insert_runs(&mut tx, id, dag, request, &plan).await?;
    let requeued = requeue(&mut tx, id, dag, request.reprocess, &plan).await?;
    // A date another writer took meanwhile is in flight, not created; a
    // run that started meanwhile is not re-run.
    for run in &mut plan.runs {
        let done = match run.action {
            PlannedAction::Create => created.contains(&run.run_id),
            PlannedAction::Rerun => requeued.contains(&run.run_id),
            _ => true,
        };
        if !done {
            run.action = PlannedAction::InFlight;
        }
    }
    if plan.effective().next().is_none() {
        return Err(BackfillError::NothingToDo {
            kept: plan.count(PlannedAction::Keep),
            in_flight: plan.count(PlannedAction::InFlight),
        });
    }
    notify_wakeup(&mut *tx).await?;
    tx.commit().await?;
    Ok((get(store, id).await?, plan))
}

/// The DAG's backfill that has not completed, if any.
async fn active<'e, E: sqlx::PgExecutor<'e>>(
    db: E,
    dag_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM backfills WHERE dag_id = $1 AND completed_at IS NULL LIMIT 1",
    )
    .bind(dag_id)
    .fetch_optional(db)
    .await
}

/// The new runs, in one statement (a backfill may create thousands).
/// Returns the run ids created: a date another writer took is not.
async fn insert_runs(
    tx: &mut Transaction<'_, Postgres>,
    backfill_id: i64,
    dag: &Dag,
    request: &BackfillRequest,
    plan: &Plan,
) -> Result<Vec<String>, BackfillError> {
    let new: Vec<&PlannedRun> = plan
        .runs
        .iter()
        .filter(|r| r.action == PlannedAction::Create)
        .collect();
    let run_ids: Vec<&str> = new.iter().map(|r| r.run_id.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = new.iter().map(|r| r.logical_date).collect();
    let ends: Vec<DateTime<Utc>> = new.iter().map(|r| r.data_interval_end).collect();
    Ok(sqlx::query_scalar(
        "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end,
                               run_type, state, conf, dag_version, backfill_id)
         SELECT $1, n.run_id, n.start_at, n.start_at, n.end_at, 'backfill', 'queued', $5,
                (SELECT max(version_number) FROM dag_versions WHERE dag_id = $1), $6
           FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS n(run_id, start_at, end_at)
         ON CONFLICT DO NOTHING
         RETURNING run_id",
    )
    .bind(&dag.id)
    .bind(&run_ids)
    .bind(&starts)
    .bind(&ends)
    .bind(&request.conf)
    .bind(backfill_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Queues the finished runs the plan re-runs under the backfill, then
/// clears their tasks (only the failed ones for
/// [`ReprocessBehavior::Failed`]), each with its full retry budget again.
/// A run that is no longer finished is left alone. Returns the runs queued.
async fn requeue(
    tx: &mut Transaction<'_, Postgres>,
    backfill_id: i64,
    dag: &Dag,
    reprocess: ReprocessBehavior,
    plan: &Plan,
) -> Result<Vec<String>, BackfillError> {
    let run_ids: Vec<&str> = plan
        .runs
        .iter()
        .filter(|r| r.action == PlannedAction::Rerun)
        .map(|r| r.run_id.as_str())
        .collect();
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let queued: Vec<String> = sqlx::query_scalar(
        "UPDATE dag_runs SET state = 'queued', start_date = NULL, end_date = NULL, backfill_id = $3
         WHERE dag_id = $1 AND run_id = ANY($2) AND state IN ('success', 'failed')
         RETURNING run_id",
    )
    .bind(&dag.id)
    .bind(&run_ids)
    .bind(backfill_id)
    .fetch_all(&mut **tx)
    .await?;
    let (ids, retries): (Vec<&str>, Vec<i32>) = dag
        .tasks()
        .iter()
        .map(|t| (t.id.as_str(), t.retry.retries as i32))
        .unzip();
    // The cleared instances' outputs go with them (`Store::clear_tasks`).
    sqlx::query(
        "WITH cleared AS (
             UPDATE task_instances ti SET state = 'none', next_attempt_at = NULL, first_attempt_at = NULL,
                    queued_at = NULL, end_date = NULL, duration = NULL, max_tries = ti.try_number + c.retries
             FROM unnest($3::text[], $4::int[]) AS c(task_id, retries)
             WHERE ti.dag_id = $1 AND ti.run_id = ANY($2) AND ti.task_id = c.task_id
               AND ti.state <> 'running'
               AND (NOT $5 OR ti.state IN ('failed', 'upstream_failed'))
             RETURNING ti.run_id, ti.task_id, ti.map_index)
         DELETE FROM xcom x USING cleared c
         WHERE x.dag_id = $1 AND x.run_id = c.run_id AND x.task_id = c.task_id
           AND x.map_index = c.map_index",
    )
    .bind(&dag.id)
    .bind(&queued)
    .bind(&ids)
    .bind(&retries)
    .bind(reprocess == ReprocessBehavior::Failed)
    .execute(&mut **tx)
    .await?;
    Ok(queued)
}

/// One backfill with its progress.
pub async fn get(store: &Store, id: i64) -> Result<Backfill, BackfillError> {
    sqlx::query_as(&format!("{SELECT_BACKFILL} WHERE b.id = $1 GROUP BY b.id"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(BackfillError::NotFound(id))
}

/// A page of `dag_id`'s backfills (all DAGs' when `None`), newest first
/// unless `ascending`, and how many there are.
pub async fn list(
    store: &Store,
    dag_id: Option<&str>,
    ascending: bool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Backfill>, i64), BackfillError> {
    let order = if ascending { "ASC" } else { "DESC" };
    let rows: Vec<Backfill> = sqlx::query_as(&format!(
        "{SELECT_BACKFILL} WHERE ($1::text IS NULL OR b.dag_id = $1)
         GROUP BY b.id ORDER BY b.id {order} LIMIT $2 OFFSET $3"
    ))
    .bind(dag_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(store.pool())
    .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backfills WHERE ($1::text IS NULL OR dag_id = $1)",
    )
    .bind(dag_id)
    .fetch_one(store.pool())
    .await?;
    Ok((rows, total))
}

/// Pauses (`true`) or resumes a backfill that has not completed.
pub async fn set_paused(store: &Store, id: i64, paused: bool) -> Result<Backfill, BackfillError> {
    let changed = sqlx::query(
        "UPDATE backfills SET is_paused = $2, updated_at = now()
         WHERE id = $1 AND completed_at IS NULL",
    )
    .bind(id)
    .bind(paused)
    .execute(store.pool())
    .await?
    .rows_affected();
    let b = get(store, id).await?;
    if changed == 0 {
        return Err(BackfillError::Completed(id));
    }
    store.wake().await?;
    Ok(b)
}

/// Cancels a backfill: paused for good, completed now, and its runs not
/// yet started failed. Runs already running finish.
pub async fn cancel(store: &Store, id: i64) -> Result<Backfill, BackfillError> {
    let mut tx = store.pool().begin().await?;
    let done: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT completed_at FROM backfills WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    match done {
        None => return Err(BackfillError::NotFound(id)),
        Some(Some(_)) => return Err(BackfillError::Completed(id)),
        Some(None) => {}
    }
    sqlx::query(
        "UPDATE backfills SET is_paused = true, completed_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE dag_runs SET state = 'failed', end_date = now()
         WHERE backfill_id = $1 AND state = 'queued'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    get(store, id).await
}

/// The scheduler's share: starts queued runs of open, unpaused backfills
/// within each one's `max_active_runs`, in its order; marks completed
/// those with no run left to start or finish. Returns the runs started, as
/// (dag id, run id), for the caller to create their task instances in the
/// same transaction.
pub async fn start_runs(
    tx: &mut Transaction<'_, Postgres>,
    backfill_id: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    // Serialise per backfill across schedulers; skip if another has it.
    let row: Option<(i32, bool)> = sqlx::query_as(
        "SELECT max_active_runs, run_backwards FROM backfills
         WHERE id = $1 AND completed_at IS NULL AND NOT is_paused
         FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(backfill_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((max_active, backwards)) = row else {
        return Ok(Vec::new());
    };
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dag_runs WHERE backfill_id = $1 AND state = 'running'",
    )
    .bind(backfill_id)
    .fetch_one(&mut **tx)
    .await?;
    let room = i64::from(max_active) - running;
    if room <= 0 {
        return Ok(Vec::new());
    }
    let order = if backwards { "DESC" } else { "ASC" };
    Ok(sqlx::query_as(&format!(
        "WITH started AS (
             UPDATE dag_runs SET state = 'running', start_date = now()
             WHERE id IN (SELECT id FROM dag_runs WHERE backfill_id = $1 AND state = 'queued'
                          ORDER BY logical_date {order} LIMIT $2)
             RETURNING dag_id, run_id),
         asked AS (INSERT INTO run_schedule_requests (dag_id, run_id)
                   SELECT dag_id, run_id FROM started)
         SELECT dag_id, run_id FROM started"
    ))
    .bind(backfill_id)
    .bind(room)
    .fetch_all(&mut **tx)
    .await?)
}

/// Backfills with a queued run that may start now, with their DAGs.
pub async fn startable(store: &Store) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.dag_id FROM backfills b
         WHERE b.completed_at IS NULL AND NOT b.is_paused
           AND EXISTS (SELECT 1 FROM dag_runs r WHERE r.backfill_id = b.id AND r.state = 'queued')
         ORDER BY b.id",
    )
    .fetch_all(store.pool())
    .await?)
}

/// Sets `completed_at` on open backfills none of whose runs is queued or
/// running. Returns how many completed.
pub async fn complete_finished(store: &Store) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE backfills b SET completed_at = now(), updated_at = now(), is_paused = false
         WHERE b.completed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM dag_runs r
                           WHERE r.backfill_id = b.id AND r.state IN ('queued', 'running'))",
    )
    .execute(store.pool())
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: &str, to: &str) -> BackfillRequest {
        BackfillRequest {
            from: format!("{from}T00:00:00Z").parse().unwrap(),
            to: format!("{to}T00:00:00Z").parse().unwrap(),
            run_backwards: false,
            conf: serde_json::json!({}),
            reprocess: ReprocessBehavior::None,
            max_active_runs: 2,
            created_by: None,
        }
    }

    #[test]
    fn ranges_are_checked_before_anything_is_written() {
        let dag = Dag::builder("d").schedule("@daily", "UTC").build().unwrap();
        assert_eq!(
            intervals(&dag, &request("2024-01-01", "2024-01-03"))
                .unwrap()
                .len(),
            3
        );
        let err = |r: BackfillRequest| intervals(&dag, &r).unwrap_err().to_string();
        assert!(err(request("2024-01-03", "2024-01-01")).contains("is after its end"));
        assert!(err(request("1990-01-01", "2024-01-01")).contains("more than 10000"));
        let mut r = request("2024-01-01", "2024-01-03");
        r.max_active_runs = 0;
        assert!(err(r).contains("at least 1"));
        let mut r = request("2024-01-01", "2024-01-03");
        r.conf = serde_json::json!([1]);
        assert!(err(r).contains("JSON object"));
        // Intervals that have not ended are left out; a range of only
        // those is refused.
        let today = Utc::now().date_naive();
        let day = |d: i64| (today + chrono::Duration::days(d)).to_string();
        let past_and_future = intervals(&dag, &request(&day(-3), &day(3))).unwrap();
        assert!(past_and_future.iter().all(|i| i.end <= Utc::now()));
        assert_eq!(past_and_future.len(), 3, "{past_and_future:?}");
        assert!(err(request(&day(1), &day(3))).contains("has ended yet"));
        let manual = Dag::builder("m").build().unwrap();
        assert!(intervals(&manual, &request("2024-01-01", "2024-01-02"))
            .unwrap_err()
            .to_string()
            .contains("no schedule"));
    }

    #[test]
    fn reprocess_behaviors_pick_the_runs_airflow_does() {
        use RunState::*;
        let picks = |b: ReprocessBehavior| {
            [Queued, Running, Success, Failed]
                .into_iter()
                .filter(|s| b.reprocesses(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(ReprocessBehavior::None), []);
        assert_eq!(picks(ReprocessBehavior::Failed), [Failed]);
        assert_eq!(picks(ReprocessBehavior::Completed), [Success, Failed]);
        assert_eq!("completed".parse(), Ok(ReprocessBehavior::Completed));
        assert!("all".parse::<ReprocessBehavior>().is_err());
    }

    /// The record, its runs and the scheduler's share against a real
    /// Postgres: creation with existing runs, limits, order, pause, cancel
    /// and completion.
    #[tokio::test]
    async fn a_backfill_starts_its_runs_under_its_own_limits_and_ends() {
        use crate::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
        let home = tempfile::tempdir().expect("tempdir");
        let pg = EmbeddedPostgres::start(&EmbeddedOptions {
            home: home.path().to_path_buf(),
            durable: false,
        })
        .expect("start a throwaway Postgres cluster");
        let store = Store::connect(pg.url(), 2).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut b = Dag::builder("d")
            .schedule("@daily", "UTC")
            .max_active_runs(1);
        let noop = || crate::task::task_fn(|_| async { Ok(Value::Null) });
        let a = b.task(crate::TaskSpec::new("a", noop()));
        let c = b.task(crate::TaskSpec::new("b", noop()));
        b.edge(&a, &c);
        let dag = b.build().unwrap();
        sqlx::query("INSERT INTO dags (dag_id) VALUES ('d')")
            .execute(store.pool())
            .await
            .unwrap();
        let pool = store.pool().clone();
        let sql = |q: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, String>(q)
                    .fetch_all(&pool)
                    .await
                    .expect(q)
            }
        };
        // Existing runs on the 2nd (failed: a ok, b failed), 3rd (success)
        // and 4th (running).
        for (day, state) in [(2, "failed"), (3, "success"), (4, "running")] {
            let at: DateTime<Utc> = format!("2024-01-0{day}T00:00:00Z").parse().unwrap();
            sqlx::query(
                "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start,
                                       data_interval_end, run_type, state)
                 VALUES ('d', $1, $2, $2, $2 + interval '1 day', 'scheduled', $3)",
            )
            .bind(format!("scheduled__{day}"))
            .bind(at)
            .bind(state)
            .execute(store.pool())
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number, max_tries)
             VALUES ('d', 'scheduled__2', 'a', 'success', 1, 1), ('d', 'scheduled__2', 'b', 'failed', 1, 1)",
        )
        .execute(store.pool())
        .await
        .unwrap();

        let mut first = request("2024-01-01", "2024-01-05");
        first.reprocess = ReprocessBehavior::Failed;
        first.run_backwards = true;
        let (created, plan) = create(&store, &dag, &first).await.unwrap();
        let actions: Vec<(String, PlannedAction)> = plan
            .runs
            .iter()
            .map(|r| (r.logical_date.format("%d").to_string(), r.action))
            .collect();
        use PlannedAction::*;
        assert_eq!(
            actions,
            [
                ("05".into(), Create),
                ("04".into(), InFlight),
                ("03".into(), Keep),
                ("02".into(), Rerun),
                ("01".into(), Create),
            ]
        );
        assert_eq!(
            (created.queued, created.total_runs(), created.status()),
            (3, 3, "running")
        );
        // The failed run's failed task only is cleared.
        assert_eq!(
            sql("SELECT task_id || '=' || state FROM task_instances ORDER BY task_id").await,
            ["a=success", "b=none"]
        );
        // One active backfill per DAG.
        assert!(matches!(
            create(&store, &dag, &first).await,
            Err(BackfillError::AlreadyActive { .. })
        ));

        // Its own limit (2), newest first; the DAG's limit (1, already
        // taken by the running scheduled run) does not apply.
        let mut tx = store.pool().begin().await.unwrap();
        let started = start_runs(&mut tx, created.id).await.unwrap();
        tx.commit().await.unwrap();
        let mut started: Vec<&str> = started.iter().map(|(_, r)| r.as_str()).collect();
        started.sort();
        // The 5th and the 2nd: the two newest of the 5th, 2nd and 1st.
        assert_eq!(
            started,
            ["backfill__2024-01-05T00:00:00+00:00", "scheduled__2"]
        );
        // Paused: nothing more starts.
        set_paused(&store, created.id, true).await.unwrap();
        sqlx::query("UPDATE dag_runs SET state = 'success' WHERE backfill_id IS NOT NULL AND state = 'running'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(startable(&store).await.unwrap().is_empty());
        set_paused(&store, created.id, false).await.unwrap();
        assert_eq!(
            startable(&store).await.unwrap(),
            [(created.id, "d".to_owned())]
        );
        assert_eq!(
            complete_finished(&store).await.unwrap(),
            0,
            "a run is queued"
        );

        // Cancelled: the queued run fails, and the backfill is over.
        let cancelled = cancel(&store, created.id).await.unwrap();
        assert_eq!(cancelled.status(), "cancelled");
        assert_eq!(
            (cancelled.queued, cancelled.failed, cancelled.success),
            (0, 1, 2)
        );
        assert!(matches!(
            cancel(&store, created.id).await,
            Err(BackfillError::Completed(_))
        ));
        assert!(matches!(
            set_paused(&store, created.id, false).await,
            Err(BackfillError::Completed(_))
        ));

        // A second backfill over the same days has nothing left to do
        // without re-runs, and re-runs every finished run with them.
        assert!(matches!(
            create(&store, &dag, &request("2024-01-01", "2024-01-03")).await,
            Err(BackfillError::NothingToDo {
                kept: 3,
                in_flight: 0
            })
        ));
        let mut again = request("2024-01-01", "2024-01-03");
        again.reprocess = ReprocessBehavior::Completed;
        let (second, plan) = create(&store, &dag, &again).await.unwrap();
        assert_eq!(plan.count(Rerun), 3);
        assert_eq!(second.queued, 3);
        sqlx::query("UPDATE dag_runs SET state = 'success' WHERE backfill_id = $1")
            .bind(second.id)
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(complete_finished(&store).await.unwrap(), 1);
        assert_eq!(get(&store, second.id).await.unwrap().status(), "completed");
        let (all, total) = list(&store, Some("d"), false, 10, 0).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(all[0].id, second.id, "newest first");
    }
}
