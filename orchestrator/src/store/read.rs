//! Read-side queries for the CLI and the web server.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};

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
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_type: String,
    pub state: String,
    pub conf: Value,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TaskInstanceRow {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i32,
    pub state: String,
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
    pub try_number: i32,
    pub state: String,
    pub worker_id: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogRow {
    pub try_number: i32,
    pub ts: DateTime<Utc>,
    pub level: String,
    pub message: String,
}

/// Which runs `runs list` shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<String>,
    pub state: Option<String>,
    pub run_type: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

const DAG_COLUMNS: &str =
    "dag_id, description, schedule, timezone, is_paused, is_stale, tags, fileloc,
    max_active_runs, max_active_tasks, catchup, last_parsed_at";
const RUN_COLUMNS: &str =
    "dag_id, run_id, logical_date, data_interval_start, data_interval_end, run_type,
    state, conf, queued_at, start_date, end_date";

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
    pub async fn list_runs(&self, f: &RunFilter) -> Result<(Vec<RunRow>, i64), StoreError> {
        let where_ = "($1::text IS NULL OR dag_id = $1) AND ($2::text IS NULL OR state = $2)
            AND ($3::text IS NULL OR run_type = $3)";
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE {where_} ORDER BY logical_date DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let rows = sqlx::query_as(&sql)
            .bind(&f.dag_id)
            .bind(&f.state)
            .bind(&f.run_type)
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(self.pool())
            .await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM dag_runs WHERE {where_}"))
                .bind(&f.dag_id)
                .bind(&f.state)
                .bind(&f.run_type)
                .fetch_one(self.pool())
                .await?;
        Ok((rows, total))
    }

    pub async fn run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND run_id = $2");
        Ok(sqlx::query_as(&sql)
            .bind(dag_id)
            .bind(run_id)
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
             FROM task_instances WHERE dag_id = $1 AND run_id = $2 ORDER BY start_date NULLS LAST, task_id",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Every finished try of a run's tasks, oldest first.
    pub async fn task_tries(&self, dag_id: &str, run_id: &str) -> Result<Vec<TryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT task_id, try_number, state, worker_id, start_date, end_date, duration, error
             FROM task_tries WHERE dag_id = $1 AND run_id = $2 ORDER BY start_date, task_id, try_number",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Log lines of one task instance, one try or all, after line id `after` (for following).
    pub async fn task_logs(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        try_number: Option<i32>,
    ) -> Result<Vec<LogRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT try_number, ts, level, message FROM task_logs
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND ($4::int IS NULL OR try_number = $4)
             ORDER BY try_number, id",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(try_number)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn xcom(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Option<Value>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM xcom WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND key = 'return_value'",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Runs per state for one DAG (or all), for summaries and metrics.
    pub async fn run_counts(&self, dag_id: Option<&str>) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT state, count(*) FROM dag_runs WHERE ($1::text IS NULL OR dag_id = $1) GROUP BY state ORDER BY state",
        )
        .bind(dag_id)
        .fetch_all(self.pool())
        .await?)
    }
}
