//! Read-side queries for the CLI, the web server and tasks that look at
//! other DAGs' runs (sensors). States come back as [`RunState`],
//! [`TaskState`] and [`StreamState`], never as strings to compare.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};
use crate::state::{RunState, StreamState, TaskState};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DagRow {
    pub dag_id: String,
    pub description: String,
    pub schedule: Option<String>,
    pub timezone: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub tags: Vec<String>,
    pub fileloc: String,
    pub max_active_runs: i32,
    pub max_active_tasks: i32,
    pub catchup: bool,
    pub last_parsed_at: DateTime<Utc>,
    /// The asset condition of a DAG scheduled on assets (docs/assets.md).
    pub asset_expression: Option<Value>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_type: String,
    pub state: RunState,
    pub conf: Value,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// When the run was found past its DAG's deadline (docs/alerts.md).
    pub deadline_missed_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// The DAG version current when the run was created (none for runs
    /// older than DAG versions).
    pub dag_version: Option<i32>,
    /// The partition an asset-triggered run was made for.
    pub partition_key: Option<String>,
}

/// One version of a DAG's structure ([`crate::Dag::structure`]).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DagVersionRow {
    pub dag_id: String,
    pub version_number: i32,
    /// A UUID, as text.
    pub id: String,
    pub structure_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A pool and the slots its task instances take.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PoolRow {
    pub name: String,
    pub slots: i32,
    pub description: String,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
}

/// A process that ran an engine, stopped or not.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProcessRow {
    /// A stable number for Airflow's integer job id: the order of start.
    pub id: i64,
    pub worker_id: String,
    pub hostname: String,
    pub pid: i32,
    pub kind: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// One notification of a DAG's runs or tasks and what became of it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AlertDeliveryRow {
    pub created_at: DateTime<Utc>,
    pub event: String,
    pub run_id: String,
    pub task_id: Option<String>,
    pub try_number: Option<i32>,
    pub channel: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskInstanceRow {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i32,
    pub state: TaskState,
    pub try_number: i32,
    pub max_tries: i32,
    pub pool: String,
    pub hostname: Option<String>,
    pub worker_id: Option<String>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TryRow {
    pub task_id: String,
    pub map_index: i32,
    pub try_number: i32,
    /// How the try ended: `success`, `skipped` or `failed` (a try that is retried ended `failed`).
    pub state: TaskState,
    pub worker_id: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub error: Option<String>,
}

/// One ended try of a task instance, where it ran.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TryHistoryRow {
    pub try_number: i32,
    pub state: TaskState,
    pub hostname: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
}

/// One XCom entry (BetFlow writes a task's output as `return_value`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct XcomRow {
    pub task_id: String,
    pub map_index: i32,
    pub key: String,
    pub value: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogRow {
    /// The instance of a mapped task the line is from; -1 when not mapped.
    pub map_index: i32,
    pub try_number: i32,
    pub ts: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// One of a DAG's most recent runs, for the DAGs page's coloured squares.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RecentRunRow {
    pub dag_id: String,
    pub run_id: String,
    pub state: RunState,
    pub logical_date: DateTime<Utc>,
}

/// A run's key and state, for deciding what a backfill creates, keeps or re-runs.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunStateRow {
    pub logical_date: DateTime<Utc>,
    pub run_id: String,
    pub state: RunState,
}

/// A run's state beside one of its task instances' (`None`: not created yet).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunTaskStateRow {
    pub run_id: String,
    pub run_state: RunState,
    pub task_state: Option<TaskState>,
}

/// How many runs of a DAG are in one state, and the end of the DAG's
/// newest scheduled run's data interval (the same on each of the DAG's
/// rows; the DAGs page derives the next run from it).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DagStateCountRow {
    pub dag_id: String,
    pub state: RunState,
    pub count: i64,
    pub last_scheduled_end: Option<DateTime<Utc>>,
}

/// A task instance's state in one run, for the grid and the graph.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskStateRow {
    pub run_id: String,
    pub task_id: String,
    /// For a mapped task, the state of its instances that most needs
    /// attention (failed before running before success), as Airflow's
    /// grid shows it.
    pub state: TaskState,
    pub try_number: i32,
    pub duration: Option<f64>,
    /// Instances of a mapped task (0 when the task is not mapped).
    pub mapped: i64,
}

/// One instance of a mapped task.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MappedInstanceRow {
    pub map_index: i32,
    pub state: TaskState,
    pub try_number: i32,
    pub duration: Option<f64>,
    /// The item of the list it was expanded for.
    pub map_item: Option<Value>,
}

/// A log line with its id, so a follower can ask for what came after it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogLineRow {
    pub id: i64,
    pub try_number: i32,
    pub ts: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StreamTaskRow {
    pub dag_id: String,
    pub task_id: String,
    pub worker_id: String,
    pub hostname: Option<String>,
    pub state: StreamState,
    pub restarts: i32,
    pub last_error: Option<String>,
    pub health: Value,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub heartbeat_age_secs: f64,
}

/// Finished tries of one task over a window: count and summed duration.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskDurationRow {
    pub dag_id: String,
    pub task_id: String,
    pub count: i64,
    pub sum_secs: f64,
}

/// A live (not stopped) betflow process and how long ago it heartbeated.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkerRow {
    pub worker_id: String,
    pub hostname: String,
    pub kind: String,
    pub heartbeat_age_secs: f64,
    /// Duration of the process's latest scheduler pass; None before its first.
    pub scheduler_loop_seconds: Option<f64>,
}

/// Which runs `runs list` shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<String>,
    pub state: Option<RunState>,
    pub run_type: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Which DAGs a page of the REST API's DAG list shows.
#[derive(Debug, Clone, Default)]
pub struct DagPageFilter {
    /// Keep DAGs carrying any of these tags (all of them with `tags_match_all`).
    pub tags: Vec<String>,
    pub tags_match_all: bool,
    /// Case-insensitive `ILIKE` patterns on the DAG id; a DAG matching any is kept.
    pub dag_id_patterns: Vec<String>,
    pub paused: Option<bool>,
    pub exclude_stale: bool,
    pub order: Vec<(DagSort, bool)>,
    pub limit: i64,
    pub offset: i64,
}

/// Columns a DAG list may be sorted by; the `bool` beside it in filters means descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagSort {
    DagId,
    IsPaused,
    LastParsedAt,
}

impl DagSort {
    fn column(self) -> &'static str {
        match self {
            Self::DagId => "dag_id",
            Self::IsPaused => "is_paused",
            Self::LastParsedAt => "last_parsed_at",
        }
    }
}

/// Which runs a page of the REST API's run list shows.
#[derive(Debug, Clone, Default)]
pub struct RunPageFilter {
    pub dag_id: Option<String>,
    /// Any of these DAGs; empty means every DAG (with `dag_id` unset).
    pub dag_ids: Vec<String>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    /// Any of these states; empty means every state.
    pub states: Vec<RunState>,
    pub run_types: Vec<String>,
    pub logical_date_gte: Option<DateTime<Utc>>,
    pub logical_date_lte: Option<DateTime<Utc>>,
    pub order: Vec<(RunSort, bool)>,
    pub limit: i64,
    pub offset: i64,
}

/// Columns a run list may be sorted by; `Id` is creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSort {
    Id,
    DagId,
    RunId,
    State,
    RunType,
    LogicalDate,
    DataIntervalStart,
    DataIntervalEnd,
    QueuedAt,
    StartDate,
    EndDate,
    /// When the run became due: the trigger time of manual runs, else the end of the data interval.
    RunAfter,
    Duration,
}

impl RunPageFilter {
    /// Whether the filter narrows by DAG and state only, so the total is
    /// the trigger-kept count rather than a count of matching rows.
    fn counted_by_dag_and_state(&self) -> bool {
        self.run_types.is_empty()
            && self.logical_date_gte.is_none()
            && self.logical_date_lte.is_none()
            && self.start_date_gte.is_none()
            && self.start_date_lte.is_none()
            && self.end_date_gte.is_none()
            && self.end_date_lte.is_none()
    }
}

impl RunSort {
    fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::DagId => "dag_id",
            Self::RunId => "run_id",
            Self::State => "state",
            Self::RunType => "run_type",
            Self::LogicalDate => "logical_date",
            Self::DataIntervalStart => "data_interval_start",
            Self::DataIntervalEnd => "data_interval_end",
            Self::QueuedAt => "queued_at",
            Self::StartDate => "start_date",
            Self::EndDate => "end_date",
            Self::RunAfter => {
                "(CASE WHEN run_type IN ('manual', 'asset_triggered') THEN queued_at ELSE data_interval_end END)"
            }
            Self::Duration => "(end_date - start_date)",
        }
    }
}

/// A task instance with the run facts and scheduling settings the REST API shows beside it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskInstanceDetailRow {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub ti: TaskInstanceRow,
    pub pool_slots: i32,
    pub priority_weight: i32,
    pub logical_date: DateTime<Utc>,
    pub run_type: String,
    pub run_queued_at: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub note: Option<String>,
}

/// Which task instances a page of the REST API's task-instance list shows.
#[derive(Debug, Clone, Default)]
pub struct TaskInstancePageFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    /// Any of these DAGs, runs, tasks and pools; empty lists mean any.
    pub dag_ids: Vec<String>,
    pub run_ids: Vec<String>,
    pub task_ids: Vec<String>,
    pub pools: Vec<String>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    /// Any of these states (`none` included); empty means every state.
    pub states: Vec<TaskState>,
    pub order: Vec<(TaskInstanceSort, bool)>,
    pub limit: i64,
    pub offset: i64,
}

impl TaskInstancePageFilter {
    /// The DAGs the filter narrows to when it narrows by DAG only (`None`
    /// otherwise; an empty list: every DAG), so the total is the
    /// trigger-kept count rather than a count of matching rows.
    fn counted_by_dag(&self) -> Option<Vec<String>> {
        let by_dag_only = self.run_id.is_none()
            && self.task_id.is_none()
            && self.run_ids.is_empty()
            && self.task_ids.is_empty()
            && self.pools.is_empty()
            && self.states.is_empty()
            && self.start_date_gte.is_none()
            && self.start_date_lte.is_none()
            && self.end_date_gte.is_none()
            && self.end_date_lte.is_none();
        if !by_dag_only {
            return None;
        }
        Some(match &self.dag_id {
            Some(id) if self.dag_ids.is_empty() || self.dag_ids.contains(id) => vec![id.clone()],
            // A DAG outside the listed ones: nothing matches.
            Some(_) => vec![String::new()],
            None => self.dag_ids.clone(),
        })
    }
}

/// Columns a task-instance list may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskInstanceSort {
    DagId,
    RunId,
    TaskId,
    State,
    TryNumber,
    StartDate,
    EndDate,
    Duration,
    LogicalDate,
}

impl TaskInstanceSort {
    fn column(self) -> &'static str {
        match self {
            Self::DagId => "ti.dag_id",
            Self::RunId => "ti.run_id",
            Self::TaskId => "ti.task_id",
            Self::State => "ti.state",
            Self::TryNumber => "ti.try_number",
            Self::StartDate => "ti.start_date",
            Self::EndDate => "ti.end_date",
            Self::Duration => "ti.duration",
            Self::LogicalDate => "r.logical_date",
        }
    }
}

/// Sort columns that are `NOT NULL`: they sort without `NULLS LAST`, which
/// would keep the planner from reading them off a `DESC` index.
const NOT_NULL_SORTS: &[&str] = &[
    "id",
    "dag_id",
    "run_id",
    "state",
    "run_type",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "queued_at",
    "is_paused",
    "ti.dag_id",
    "ti.run_id",
    "ti.task_id",
    "ti.state",
    "ti.try_number",
    "r.logical_date",
];

/// `ORDER BY` from whitelisted column expressions, then `tiebreak` so pages never overlap.
fn order_clause(order: impl Iterator<Item = (&'static str, bool)>, tiebreak: &str) -> String {
    let mut parts: Vec<String> = order
        .map(|(col, desc)| {
            let dir = if desc { "DESC" } else { "ASC" };
            if NOT_NULL_SORTS.contains(&col) {
                format!("{col} {dir}")
            } else {
                format!("{col} {dir} NULLS LAST")
            }
        })
        .collect();
    parts.push(tiebreak.to_owned());
    format!("ORDER BY {}", parts.join(", "))
}

const DAG_COLUMNS: &str =
    "dag_id, description, schedule, timezone, is_paused, is_stale, tags, fileloc,
    max_active_runs, max_active_tasks, catchup, last_parsed_at, asset_expression";
const RUN_COLUMNS: &str =
    "dag_id, run_id, logical_date, data_interval_start, data_interval_end, run_type,
    state, conf, queued_at, start_date, end_date, deadline_missed_at, note, dag_version, partition_key";
const DAG_PAGE_WHERE: &str = "(cardinality($1::text[]) = 0
        OR (NOT $2 AND tags && $1) OR ($2 AND tags @> $1))
    AND (cardinality($3::text[]) = 0 OR dag_id ILIKE ANY($3))
    AND ($4::bool IS NULL OR is_paused = $4)
    AND (NOT $5 OR NOT is_stale)";
const RUN_PAGE_WHERE: &str = "($1::text IS NULL OR dag_id = $1)
    AND (cardinality($2::text[]) = 0 OR state = ANY($2))
    AND (cardinality($3::text[]) = 0 OR run_type = ANY($3))
    AND ($4::timestamptz IS NULL OR logical_date >= $4)
    AND ($5::timestamptz IS NULL OR logical_date <= $5)
    AND (cardinality($6::text[]) = 0 OR dag_id = ANY($6))
    AND ($7::timestamptz IS NULL OR start_date >= $7)
    AND ($8::timestamptz IS NULL OR start_date <= $8)
    AND ($9::timestamptz IS NULL OR end_date >= $9)
    AND ($10::timestamptz IS NULL OR end_date <= $10)";
const TI_DETAIL_SELECT: &str = "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state,
        ti.try_number, ti.max_tries, ti.pool, ti.hostname, ti.worker_id, ti.queued_at, ti.start_date,
        ti.end_date, ti.duration, ti.pool_slots, ti.priority_weight, r.logical_date, r.run_type,
        r.queued_at AS run_queued_at, r.data_interval_end, ti.note
    FROM task_instances ti JOIN dag_runs r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id";
const TI_PAGE_WHERE: &str = "($1::text IS NULL OR ti.dag_id = $1)
    AND ($2::text IS NULL OR ti.run_id = $2)
    AND ($3::text IS NULL OR ti.task_id = $3)
    AND (cardinality($4::text[]) = 0 OR ti.state = ANY($4))
    AND (cardinality($5::text[]) = 0 OR ti.dag_id = ANY($5))
    AND (cardinality($6::text[]) = 0 OR ti.run_id = ANY($6))
    AND (cardinality($7::text[]) = 0 OR ti.task_id = ANY($7))
    AND (cardinality($8::text[]) = 0 OR ti.pool = ANY($8))
    AND ($9::timestamptz IS NULL OR ti.start_date >= $9)
    AND ($10::timestamptz IS NULL OR ti.start_date <= $10)
    AND ($11::timestamptz IS NULL OR ti.end_date >= $11)
    AND ($12::timestamptz IS NULL OR ti.end_date <= $12)";

impl Store {
    pub async fn list_dags(&self) -> Result<Vec<DagRow>, StoreError> {
        let sql = format!("SELECT {DAG_COLUMNS} FROM dags WHERE NOT is_stale ORDER BY dag_id");
        Ok(sqlx::query_as(&sql).fetch_all(self.pool()).await?)
    }

    pub async fn dag(&self, dag_id: &str) -> Result<Option<DagRow>, StoreError> {
        let sql = format!("SELECT {DAG_COLUMNS} FROM dags WHERE dag_id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(dag_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Runs, newest logical date first, and how many match in all.
    /// Every pool with its slots taken by running, queued and scheduled
    /// task instances (Airflow's pool figures), by name.
    pub async fn pools(&self) -> Result<Vec<PoolRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p.name, p.slots, p.description,
                    COALESCE(sum(ti.pool_slots) FILTER (WHERE ti.state = 'running'), 0)::bigint AS running_slots,
                    COALESCE(sum(ti.pool_slots) FILTER (WHERE ti.state = 'queued'), 0)::bigint AS queued_slots,
                    COALESCE(sum(ti.pool_slots) FILTER (WHERE ti.state = 'scheduled'), 0)::bigint AS scheduled_slots
             FROM pools p
             LEFT JOIN task_instances ti ON ti.pool = p.name
                  AND ti.state IN ('running', 'queued', 'scheduled')
             GROUP BY p.name, p.slots, p.description ORDER BY p.name",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The processes that ran an engine here (Airflow's jobs), newest first.
    pub async fn processes(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ProcessRow>, i64), StoreError> {
        let rows = sqlx::query_as(
            "SELECT row_number() OVER (ORDER BY started_at, worker_id)::bigint AS id, worker_id,
                    hostname, pid, kind, started_at, heartbeat_at, stopped_at
             FROM workers ORDER BY started_at DESC, worker_id LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM workers")
            .fetch_one(self.pool())
            .await?;
        Ok((rows, total))
    }

    /// The newest notifications of `dag_id`'s runs and tasks.
    pub async fn recent_alerts(
        &self,
        dag_id: &str,
        limit: i64,
    ) -> Result<Vec<AlertDeliveryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT created_at, event, run_id, task_id, try_number, channel, state, attempts,
                    last_error, delivered_at
             FROM alert_deliveries WHERE dag_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(dag_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn list_runs(&self, f: &RunFilter) -> Result<(Vec<RunRow>, i64), StoreError> {
        let where_ = "($1::text IS NULL OR dag_id = $1) AND ($2::text IS NULL OR state = $2)
            AND ($3::text IS NULL OR run_type = $3)";
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE {where_} ORDER BY logical_date DESC, id DESC LIMIT $4 OFFSET $5"
        );
        // Planned with its values, so a DAG's runs are read off its index.
        let rows = sqlx::query_as(&sql)
            .bind(&f.dag_id)
            .bind(f.state)
            .bind(&f.run_type)
            .bind(f.limit)
            .bind(f.offset)
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        let total: i64 = if f.run_type.is_none() {
            let dag_ids: Vec<String> = f.dag_id.iter().cloned().collect();
            let states: Vec<RunState> = f.state.into_iter().collect();
            self.count_runs(&dag_ids, &states).await?
        } else {
            sqlx::query_scalar(&format!("SELECT count(*) FROM dag_runs WHERE {where_}"))
                .bind(&f.dag_id)
                .bind(f.state)
                .bind(&f.run_type)
                .persistent(false)
                .fetch_one(self.pool())
                .await?
        };
        Ok((rows, total))
    }

    /// One page of DAGs for the REST API, and how many match in all.
    pub async fn list_dags_page(
        &self,
        f: &DagPageFilter,
    ) -> Result<(Vec<DagRow>, i64), StoreError> {
        let order = order_clause(f.order.iter().map(|(k, d)| (k.column(), *d)), "dag_id");
        let sql = format!(
            "SELECT {DAG_COLUMNS} FROM dags WHERE {DAG_PAGE_WHERE} {order} LIMIT $6 OFFSET $7"
        );
        let rows = sqlx::query_as(&sql)
            .bind(&f.tags)
            .bind(f.tags_match_all)
            .bind(&f.dag_id_patterns)
            .bind(f.paused)
            .bind(f.exclude_stale)
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(self.pool())
            .await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM dags WHERE {DAG_PAGE_WHERE}"))
                .bind(&f.tags)
                .bind(f.tags_match_all)
                .bind(&f.dag_id_patterns)
                .bind(f.paused)
                .bind(f.exclude_stale)
                .fetch_one(self.pool())
                .await?;
        Ok((rows, total))
    }

    /// One page of runs for the REST API, and how many match in all.
    pub async fn list_runs_page(
        &self,
        f: &RunPageFilter,
    ) -> Result<(Vec<RunRow>, i64), StoreError> {
        let order = order_clause(f.order.iter().map(|(k, d)| (k.column(), *d)), "id");
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE {RUN_PAGE_WHERE} {order} LIMIT $11 OFFSET $12"
        );
        let rows = sqlx::query_as(&sql)
            .bind(&f.dag_id)
            .bind(&f.states)
            .bind(&f.run_types)
            .bind(f.logical_date_gte)
            .bind(f.logical_date_lte)
            .bind(&f.dag_ids)
            .bind(f.start_date_gte)
            .bind(f.start_date_lte)
            .bind(f.end_date_gte)
            .bind(f.end_date_lte)
            .bind(f.limit)
            .bind(f.offset)
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        if f.counted_by_dag_and_state() {
            let dag_ids: Vec<String> = match &f.dag_id {
                Some(id) if f.dag_ids.is_empty() => vec![id.clone()],
                Some(id) if !f.dag_ids.contains(id) => return Ok((rows, 0)),
                Some(id) => vec![id.clone()],
                None => f.dag_ids.clone(),
            };
            let total = self.count_runs(&dag_ids, &f.states).await?;
            return Ok((rows, total));
        }
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM dag_runs WHERE {RUN_PAGE_WHERE}"
        ))
        .bind(&f.dag_id)
        .bind(&f.states)
        .bind(&f.run_types)
        .bind(f.logical_date_gte)
        .bind(f.logical_date_lte)
        .bind(&f.dag_ids)
        .bind(f.start_date_gte)
        .bind(f.start_date_lte)
        .bind(f.end_date_gte)
        .bind(f.end_date_lte)
        .persistent(false)
        .fetch_one(self.pool())
        .await?;
        Ok((rows, total))
    }

    /// A page of DAG versions (of one DAG, or of all with `None`), by DAG
    /// and version number, and how many there are in all.
    pub async fn dag_versions(
        &self,
        dag_id: Option<&str>,
        newest_first: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DagVersionRow>, i64), StoreError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT dag_id, version_number, id::text AS id, structure_hash, created_at
             FROM dag_versions WHERE ($1::text IS NULL OR dag_id = $1)
             ORDER BY dag_id, version_number {order} LIMIT $2 OFFSET $3"
        );
        let rows: Vec<DagVersionRow> = sqlx::query_as(&sql)
            .bind(dag_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dag_versions WHERE ($1::text IS NULL OR dag_id = $1)",
        )
        .bind(dag_id)
        .fetch_one(self.pool())
        .await?;
        Ok((rows, total))
    }

    /// Runs of a DAG queued or running now.
    pub async fn active_run_count(&self, dag_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM dag_runs WHERE dag_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(dag_id)
        .fetch_one(self.pool())
        .await?)
    }

    /// One version of a DAG.
    pub async fn dag_version(
        &self,
        dag_id: &str,
        version_number: i32,
    ) -> Result<Option<DagVersionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT dag_id, version_number, id::text AS id, structure_hash, created_at
             FROM dag_versions WHERE dag_id = $1 AND version_number = $2",
        )
        .bind(dag_id)
        .bind(version_number)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The versions `runs` were created under, by (DAG, version number).
    pub async fn versions_of_runs(
        &self,
        runs: &[RunRow],
    ) -> Result<Vec<DagVersionRow>, StoreError> {
        let (dags, numbers): (Vec<String>, Vec<i32>) = runs
            .iter()
            .filter_map(|r| r.dag_version.map(|v| (r.dag_id.clone(), v)))
            .unzip();
        if dags.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "SELECT v.dag_id, v.version_number, v.id::text AS id, v.structure_hash, v.created_at
             FROM dag_versions v
             JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::int[])) AS k(dag_id, version_number)
               USING (dag_id, version_number)",
        )
        .bind(&dags)
        .bind(&numbers)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND run_id = $2");
        Ok(sqlx::query_as(&sql)
            .bind(dag_id)
            .bind(run_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The state of each of `run_ids` that exists, in no particular order:
    /// what `--wait` polls (every 100 ms) until all of them have finished,
    /// so it reads two columns by key and nothing else.
    pub async fn run_states(
        &self,
        dag_id: &str,
        run_ids: &[String],
    ) -> Result<Vec<(String, RunState)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT run_id, state FROM dag_runs WHERE dag_id = $1 AND run_id = ANY($2)",
        )
        .bind(dag_id)
        .bind(run_ids)
        .fetch_all(self.pool())
        .await?)
    }

    /// A DAG's runs with logical dates in `[from, to]`, so a backfill keeps
    /// them (one run per logical date) or, with `--rerun-failed`, clears
    /// the failed ones instead of creating runs.
    pub async fn run_states_between(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RunStateRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT logical_date, run_id, state FROM dag_runs WHERE dag_id = $1 AND logical_date BETWEEN $2 AND $3",
        )
        .bind(dag_id)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?)
    }

    /// The newest run of `dag_id` whose data interval starts on `date` in
    /// `timezone`, with the state of its unmapped `task_id` (`None` before
    /// the run has that instance). Cross-DAG sensors wait on it, like
    /// Airflow's `ExternalTaskSensor`, matching runs by local day because
    /// the DAGs of one day run at different hours.
    pub async fn latest_run_on_local_date(
        &self,
        dag_id: &str,
        task_id: &str,
        date: NaiveDate,
        timezone: &str,
    ) -> Result<Option<RunTaskStateRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT r.run_id, r.state AS run_state, ti.state AS task_state
             FROM dag_runs r
             LEFT JOIN task_instances ti
               ON ti.dag_id = r.dag_id AND ti.run_id = r.run_id AND ti.task_id = $2 AND ti.map_index = -1
             WHERE r.dag_id = $1 AND (r.data_interval_start AT TIME ZONE $4)::date = $3
             ORDER BY r.logical_date DESC
             LIMIT 1",
        )
        .bind(dag_id)
        .bind(task_id)
        .bind(date)
        .bind(timezone)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn task_instances(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<TaskInstanceRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries, pool, hostname,
                    worker_id, queued_at, start_date, end_date, duration
             FROM task_instances WHERE dag_id = $1 AND run_id = $2
             ORDER BY start_date NULLS LAST, task_id, map_index",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// One page of task instances, with their runs' facts, for the REST API,
    /// and how many match in all.
    pub async fn list_task_instances_page(
        &self,
        f: &TaskInstancePageFilter,
    ) -> Result<(Vec<TaskInstanceDetailRow>, i64), StoreError> {
        let order = order_clause(
            f.order.iter().map(|(k, d)| (k.column(), *d)),
            "r.id, ti.task_id, ti.map_index",
        );
        let sql = format!("{TI_DETAIL_SELECT} WHERE {TI_PAGE_WHERE} {order} LIMIT $13 OFFSET $14");
        let rows = sqlx::query_as(&sql)
            .bind(&f.dag_id)
            .bind(&f.run_id)
            .bind(&f.task_id)
            .bind(&f.states)
            .bind(&f.dag_ids)
            .bind(&f.run_ids)
            .bind(&f.task_ids)
            .bind(&f.pools)
            .bind(f.start_date_gte)
            .bind(f.start_date_lte)
            .bind(f.end_date_gte)
            .bind(f.end_date_lte)
            .bind(f.limit)
            .bind(f.offset)
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        if let Some(dag_ids) = f.counted_by_dag() {
            let total: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(instances), 0)::bigint FROM task_instance_counts
                 WHERE cardinality($1::text[]) = 0 OR dag_id = ANY($1)",
            )
            .bind(&dag_ids)
            .fetch_one(self.pool())
            .await?;
            return Ok((rows, total));
        }
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM task_instances ti WHERE {TI_PAGE_WHERE}"
        ))
        .bind(&f.dag_id)
        .bind(&f.run_id)
        .bind(&f.task_id)
        .bind(&f.states)
        .bind(&f.dag_ids)
        .bind(&f.run_ids)
        .bind(&f.task_ids)
        .bind(&f.pools)
        .bind(f.start_date_gte)
        .bind(f.start_date_lte)
        .bind(f.end_date_gte)
        .bind(f.end_date_lte)
        .persistent(false)
        .fetch_one(self.pool())
        .await?;
        Ok((rows, total))
    }

    /// One task instance (`map_index` -1 unless mapped) with its run's facts.
    pub async fn task_instance_detail(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i32,
    ) -> Result<Option<TaskInstanceDetailRow>, StoreError> {
        let sql = format!(
            "{TI_DETAIL_SELECT} WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = $3 AND ti.map_index = $4"
        );
        Ok(sqlx::query_as(&sql)
            .bind(dag_id)
            .bind(run_id)
            .bind(task_id)
            .bind(map_index)
            .fetch_optional(self.pool())
            .await?)
    }

    /// A page of a mapped task's instances in a run, by `map_index`, and
    /// how many it has.
    pub async fn mapped_instance_details(
        &self,
        (dag_id, run_id, task_id): (&str, &str, &str),
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<TaskInstanceDetailRow>, i64), StoreError> {
        const WHERE: &str =
            "ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = $3 AND ti.map_index >= 0";
        let rows = sqlx::query_as(&format!(
            "{TI_DETAIL_SELECT} WHERE {WHERE} ORDER BY ti.map_index LIMIT $4 OFFSET $5"
        ))
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM task_instances ti WHERE {WHERE}"
        ))
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .fetch_one(self.pool())
        .await?;
        Ok((rows, total))
    }

    /// Every finished try of a run's tasks, oldest first.
    pub async fn task_tries(&self, dag_id: &str, run_id: &str) -> Result<Vec<TryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT task_id, map_index, try_number, state, worker_id, start_date, end_date, duration, error
             FROM task_tries WHERE dag_id = $1 AND run_id = $2
             ORDER BY start_date, task_id, map_index, try_number",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The ended tries of one task instance, oldest first.
    pub async fn instance_tries(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Vec<TryHistoryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT try_number, state, hostname, start_date, end_date, duration FROM task_tries
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = -1
             ORDER BY try_number",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The XCom entries of a run's task (every task with `None`), a page of
    /// them by task and key, and how many there are.
    pub async fn xcom_entries(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: Option<&str>,
        key: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<XcomRow>, i64), StoreError> {
        const WHERE: &str = "dag_id = $1 AND run_id = $2 AND ($3::text IS NULL OR task_id = $3)
             AND ($4::text IS NULL OR key = $4)";
        let rows: Vec<XcomRow> = sqlx::query_as(&format!(
            "SELECT task_id, map_index, key, value, created_at FROM xcom WHERE {WHERE}
             ORDER BY task_id, map_index, key LIMIT $5 OFFSET $6"
        ))
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(key)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM xcom WHERE {WHERE}"))
            .bind(dag_id)
            .bind(run_id)
            .bind(task_id)
            .bind(key)
            .fetch_one(self.pool())
            .await?;
        Ok((rows, total))
    }

    /// Log lines of one task instance, one try or all, after line id `after` (for following).
    pub async fn task_logs(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        try_number: Option<i32>,
        map_index: Option<i32>,
    ) -> Result<Vec<LogRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT map_index, try_number, ts, level, message FROM task_logs
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND ($4::int IS NULL OR try_number = $4)
               AND ($5::int IS NULL OR map_index = $5)
             ORDER BY map_index, try_number, id",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(map_index)
        .fetch_all(self.pool())
        .await?)
    }

    /// The newest `per_dag` runs of each DAG in `dag_ids`: one index scan of
    /// `dag_runs_by_dag` per DAG, so the cost does not grow with history.
    pub async fn recent_runs_per_dag(
        &self,
        dag_ids: &[String],
        per_dag: i64,
    ) -> Result<Vec<RecentRunRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.dag_id, r.run_id, r.state, r.logical_date
             FROM unnest($1::text[]) AS d(dag_id)
             CROSS JOIN LATERAL (
                 SELECT run_id, state, logical_date FROM dag_runs
                 WHERE dag_runs.dag_id = d.dag_id ORDER BY logical_date DESC LIMIT $2
             ) r
             ORDER BY d.dag_id, r.logical_date DESC",
        )
        .bind(dag_ids)
        .bind(per_dag)
        .fetch_all(self.pool())
        .await?)
    }

    /// Runs per DAG and state (of `dag_ids`, or of every DAG with `None`),
    /// read from the counts the triggers keep (migration 28), with the
    /// DAG's newest scheduled data-interval end on each of its rows (the
    /// DAGs page derives the next run from it): one index probe per DAG,
    /// whatever the DAG's history.
    pub async fn run_counts_per_dag(
        &self,
        dag_ids: Option<&[String]>,
    ) -> Result<Vec<DagStateCountRow>, StoreError> {
        Ok(sqlx::query_as(
            "WITH counted AS (
                 SELECT dag_id, state, sum(runs)::bigint AS count FROM dag_run_counts
                 WHERE $1::text[] IS NULL OR dag_id = ANY($1)
                 GROUP BY dag_id, state HAVING sum(runs) > 0
             ),
             last_scheduled AS (
                 SELECT d.dag_id, l.data_interval_end
                 FROM (SELECT DISTINCT dag_id FROM counted) d
                 CROSS JOIN LATERAL (
                     SELECT data_interval_end FROM dag_runs r
                     WHERE r.dag_id = d.dag_id AND r.run_type = 'scheduled'
                     ORDER BY r.logical_date DESC LIMIT 1
                 ) l
             )
             SELECT c.dag_id, c.state, c.count, l.data_interval_end AS last_scheduled_end
             FROM counted c LEFT JOIN last_scheduled l USING (dag_id)
             ORDER BY c.dag_id, c.state",
        )
        .bind(dag_ids)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many runs of `dag_ids` (every DAG when empty) are in `states`
    /// (any state when empty), from the trigger-kept counts.
    pub async fn count_runs(
        &self,
        dag_ids: &[String],
        states: &[RunState],
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(runs), 0)::bigint FROM dag_run_counts
             WHERE (cardinality($1::text[]) = 0 OR dag_id = ANY($1))
               AND (cardinality($2::text[]) = 0 OR state = ANY($2))",
        )
        .bind(dag_ids)
        .bind(states)
        .fetch_one(self.pool())
        .await?)
    }

    /// Task instance states of several runs of one DAG, for the grid.
    pub async fn task_states_for_runs(
        &self,
        dag_id: &str,
        run_ids: &[String],
    ) -> Result<Vec<TaskStateRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT run_id, task_id,
                    (array_agg(state ORDER BY array_position(ARRAY[
                        'failed', 'upstream_failed', 'up_for_retry', 'up_for_reschedule',
                        'running', 'queued', 'scheduled', 'none', 'success', 'skipped', 'removed'
                    ], state)))[1] AS state,
                    max(try_number) AS try_number, max(duration) AS duration,
                    count(*) FILTER (WHERE map_index >= 0) AS mapped
             FROM task_instances
             WHERE dag_id = $1 AND run_id = ANY($2)
             GROUP BY run_id, task_id",
        )
        .bind(dag_id)
        .bind(run_ids)
        .fetch_all(self.pool())
        .await?)
    }

    /// A task instance: instance `map_index` of a mapped task, or with
    /// `None` the task's first (its only one when it is not mapped).
    pub async fn task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: Option<i32>,
    ) -> Result<Option<TaskInstanceRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT dag_id, run_id, task_id, map_index, state, try_number, max_tries, pool, hostname,
                    worker_id, queued_at, start_date, end_date, duration
             FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND task_id = $3
               AND ($4::int IS NULL OR map_index = $4)
             ORDER BY map_index LIMIT 1",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(map_index)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The instances of a mapped task in a run, by `map_index`, with the
    /// item each was expanded for.
    pub async fn mapped_instances(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Vec<MappedInstanceRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT map_index, state, try_number, duration, map_item FROM task_instances
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index >= 0
             ORDER BY map_index",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Try numbers that have log lines (a rescheduled sensor's pokes keep theirs).
    pub async fn log_try_numbers(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i32,
    ) -> Result<Vec<i32>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT try_number FROM task_logs
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4
             ORDER BY try_number",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(map_index)
        .fetch_all(self.pool())
        .await?)
    }

    /// The last `limit` log lines of one try, oldest first, with their ids.
    /// Up to `limit` lines of one try after line id `after_id`, oldest
    /// first: a page of a log too long to send at once.
    pub async fn task_log_page(
        &self,
        dag_id: &str,
        run_id: &str,
        (task_id, map_index): (&str, i32),
        try_number: i32,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LogLineRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, try_number, ts, level, message FROM task_logs
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $7
               AND try_number = $4 AND id > $5
             ORDER BY id LIMIT $6",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(after_id)
        .bind(limit)
        .bind(map_index)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn task_log_tail(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i32,
        try_number: i32,
        limit: i64,
    ) -> Result<Vec<LogLineRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT * FROM (
                 SELECT id, try_number, ts, level, message FROM task_logs
                 WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4
                   AND map_index = $6
                 ORDER BY id DESC LIMIT $5
             ) t ORDER BY id",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(limit)
        .bind(map_index)
        .fetch_all(self.pool())
        .await?)
    }

    /// Log lines of one try with ids above `after_id`, oldest first (for following).
    pub async fn task_logs_after(
        &self,
        dag_id: &str,
        run_id: &str,
        (task_id, map_index): (&str, i32),
        try_number: i32,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LogLineRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, try_number, ts, level, message FROM task_logs
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4 AND id > $5
               AND map_index = $7
             ORDER BY id LIMIT $6",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .bind(after_id)
        .bind(limit)
        .bind(map_index)
        .fetch_all(self.pool())
        .await?)
    }

    /// The output (XCom `return_value`) of one task instance.
    pub async fn xcom(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        map_index: i32,
    ) -> Result<Option<Value>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM xcom WHERE dag_id = $1 AND run_id = $2 AND task_id = $3
               AND map_index = $4 AND key = 'return_value'",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(map_index)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Runs per state for one DAG (or all), for summaries and metrics.
    pub async fn run_counts(
        &self,
        dag_id: Option<&str>,
    ) -> Result<Vec<(RunState, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT state, sum(runs)::bigint FROM dag_run_counts
             WHERE $1::text IS NULL OR dag_id = $1
             GROUP BY state HAVING sum(runs) > 0 ORDER BY state",
        )
        .bind(dag_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every supervised stream task, with its process's hostname and heartbeat age.
    pub async fn stream_tasks(&self) -> Result<Vec<StreamTaskRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT s.dag_id, s.task_id, s.worker_id, w.hostname, s.state, s.restarts, s.last_error,
                    s.health, s.started_at, s.heartbeat_at,
                    EXTRACT(EPOCH FROM now() - s.heartbeat_at)::float8 AS heartbeat_age_secs
             FROM stream_tasks s LEFT JOIN workers w ON w.worker_id = s.worker_id
             ORDER BY s.dag_id, s.task_id, s.heartbeat_at DESC",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Runs per DAG and state over all DAGs, for metrics.
    pub async fn run_counts_by_dag(&self) -> Result<Vec<(String, RunState, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT dag_id, state, sum(runs)::bigint FROM dag_run_counts
             GROUP BY dag_id, state HAVING sum(runs) > 0 ORDER BY dag_id, state",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Count and total seconds of tries that finished in the last `window_secs`, per task.
    pub async fn task_duration_summary(
        &self,
        window_secs: i64,
    ) -> Result<Vec<TaskDurationRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT dag_id, task_id, count(*) AS count, sum(duration)::float8 AS sum_secs
             FROM task_tries
             WHERE duration IS NOT NULL AND end_date > now() - make_interval(secs => $1)
             GROUP BY dag_id, task_id ORDER BY dag_id, task_id",
        )
        .bind(window_secs as f64)
        .fetch_all(self.pool())
        .await?)
    }

    /// Task instances in `state` per pool (queued and running use partial indexes).
    pub async fn task_instance_counts_by_pool(
        &self,
        state: TaskState,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT pool, count(*) FROM task_instances WHERE state = $1 GROUP BY pool ORDER BY pool",
        )
        .bind(state)
        .fetch_all(self.pool())
        .await?)
    }

    /// Processes that have not stopped, with their heartbeat age.
    pub async fn live_workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT worker_id, hostname, kind,
                    EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 AS heartbeat_age_secs,
                    scheduler_loop_seconds
             FROM workers WHERE stopped_at IS NULL ORDER BY worker_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Has any process (scheduler and executor) heartbeated in the last 10
    /// seconds? Engines heartbeat every 2 s by default, so none means
    /// nothing will pick up new runs: `--wait` then executes them
    /// in-process, and `dags trigger` says so.
    pub async fn has_live_worker(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workers WHERE stopped_at IS NULL AND heartbeat_at > now() - interval '10 seconds'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::store::embedded::{EmbeddedOptions, EmbeddedPostgres};

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, d, 0, 0, 0).unwrap()
    }

    async fn exec(store: &Store, sql: &str) {
        sqlx::query(sql).execute(store.pool()).await.expect(sql);
    }

    /// Every state name the migrations allow decodes into the enums, the
    /// enums bind as text in filters, and the queries the sensors, `--wait`
    /// and `backfill` moved here read what they read before.
    #[tokio::test]
    async fn states_read_and_bind_as_enums() {
        let home = tempfile::tempdir().expect("tempdir");
        let pg = EmbeddedPostgres::start(&EmbeddedOptions {
            home: home.path().to_path_buf(),
            durable: false,
        })
        .expect("start a throwaway Postgres cluster");
        let store = Store::connect(pg.url(), 2).await.expect("connect");
        store.migrate().await.expect("migrate");

        exec(&store, "INSERT INTO dags (dag_id) VALUES ('d')").await;
        for (run_id, d, state) in [
            ("r1", 1, "failed"),
            ("r2", 2, "success"),
            ("r3", 3, "running"),
        ] {
            sqlx::query(
                "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end,
                                       run_type, state)
                 VALUES ('d', $1, $2, $2, $3, 'backfill', $4)",
            )
            .bind(run_id)
            .bind(day(d))
            .bind(day(d + 1))
            .bind(state)
            .execute(store.pool())
            .await
            .unwrap();
        }
        // One instance per task state, all in r1.
        for st in TaskState::ALL {
            sqlx::query("INSERT INTO task_instances (dag_id, run_id, task_id, state) VALUES ('d', 'r1', $1, $1)")
                .bind(st.as_str())
                .execute(store.pool())
                .await
                .unwrap();
        }
        exec(
            &store,
            "INSERT INTO task_instances (dag_id, run_id, task_id, state) VALUES ('d', 'r2', 'success', 'success')",
        )
        .await;

        let run = store.run("d", "r1").await.unwrap().unwrap();
        assert_eq!(run.state, RunState::Failed);
        assert_eq!(serde_json::to_value(&run).unwrap()["state"], "failed");
        let mut tis: Vec<TaskState> = store
            .task_instances("d", "r1")
            .await
            .unwrap()
            .into_iter()
            .map(|t| {
                assert_eq!(t.state.as_str(), t.task_id, "decoded as stored");
                t.state
            })
            .collect();
        tis.sort_by_key(|s| s.as_str());
        let mut all = TaskState::ALL.to_vec();
        all.sort_by_key(|s| s.as_str());
        assert_eq!(tis, all);

        // `--wait`: only the runs asked for that exist.
        let mut states = store
            .run_states("d", &["r1".into(), "r3".into(), "nope".into()])
            .await
            .unwrap();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            states,
            [
                ("r1".to_owned(), RunState::Failed),
                ("r3".to_owned(), RunState::Running)
            ]
        );

        // `backfill`: runs in the range, and what `--rerun-failed` clears.
        let mut between = store.run_states_between("d", day(1), day(2)).await.unwrap();
        between.sort_by_key(|r| r.logical_date);
        let between: Vec<(&str, RunState)> = between
            .iter()
            .map(|r| (r.run_id.as_str(), r.state))
            .collect();
        assert_eq!(
            between,
            [("r1", RunState::Failed), ("r2", RunState::Success)]
        );

        // The sensor: the run on a local day, with one task's state or none.
        let up = store
            .latest_run_on_local_date("d", "success", day(2).date_naive(), "UTC")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (up.run_id.as_str(), up.run_state, up.task_state),
            ("r2", RunState::Success, Some(TaskState::Success))
        );
        let up = store
            .latest_run_on_local_date("d", "success", day(3).date_naive(), "UTC")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((up.run_state, up.task_state), (RunState::Running, None));
        // In New York r2 starts on the 1st (19:00) and r1 on December 31st.
        let up = store
            .latest_run_on_local_date("d", "failed", day(1).date_naive(), "America/New_York")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (up.run_id.as_str(), up.task_state),
            ("r2", None),
            "matched by the local date"
        );
        assert!(store
            .latest_run_on_local_date("d", "success", day(9).date_naive(), "UTC")
            .await
            .unwrap()
            .is_none());

        // Enum filters bind as text, `none` included.
        let (runs, total) = store
            .list_runs(&RunFilter {
                dag_id: Some("d".into()),
                state: Some(RunState::Failed),
                limit: 10,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!((runs.len(), total), (1, 1));
        let (_, total) = store
            .list_runs_page(&RunPageFilter {
                states: vec![RunState::Success, RunState::Running],
                limit: 10,
                ..RunPageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(total, 2);
        let (tis, _) = store
            .list_task_instances_page(&TaskInstancePageFilter {
                states: vec![TaskState::None, TaskState::UpForRetry],
                limit: 10,
                ..TaskInstancePageFilter::default()
            })
            .await
            .unwrap();
        let mut got: Vec<TaskState> = tis.iter().map(|t| t.ti.state).collect();
        got.sort_by_key(|s| s.as_str());
        assert_eq!(got, [TaskState::None, TaskState::UpForRetry]);
        assert_eq!(
            store
                .task_instance_counts_by_pool(TaskState::Queued)
                .await
                .unwrap(),
            [("default_pool".to_owned(), 1)]
        );

        // Marking binds the enum; a running instance is left alone.
        assert!(store
            .mark_task("d", "r1", "failed", TaskState::Success)
            .await
            .unwrap());
        assert!(!store
            .mark_task("d", "r1", "running", TaskState::Failed)
            .await
            .unwrap());
        let marked = store
            .task_instance("d", "r1", "failed", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(marked.state, TaskState::Success);

        // Live processes and their stream tasks.
        assert!(!store.has_live_worker().await.unwrap());
        exec(
            &store,
            "INSERT INTO workers (worker_id, hostname, pid, kind, heartbeat_at)
             VALUES ('old', 'h', 1, 'all', now() - interval '1 minute'), ('w', 'h', 2, 'all', now())",
        )
        .await;
        assert!(store.has_live_worker().await.unwrap());
        for st in StreamState::ALL {
            sqlx::query(
                "INSERT INTO stream_tasks (dag_id, task_id, worker_id, state) VALUES ('d', $1, 'w', $1)",
            )
            .bind(st.as_str())
            .execute(store.pool())
            .await
            .unwrap();
        }
        for s in store.stream_tasks().await.unwrap() {
            assert_eq!(s.state.as_str(), s.task_id);
        }
    }
}
