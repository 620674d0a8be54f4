//! The audit trail: one `event_logs` row per action a user or token takes
//! (docs: README, "Web UI and REST API"). Written after the action
//! succeeded; a failure to write it is logged and never undoes or fails
//! the action.

use std::net::IpAddr;

use serde_json::Value;
use sqlx::PgPool;

/// One action.
#[derive(Debug, Default)]
pub struct Action<'a> {
    /// e.g. `trigger`, `clear`, `mark_task`, `pause`, `login`.
    pub event: &'a str,
    pub dag_id: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub extra: Value,
}

/// Records `action` by `owner` (a username; `None` when unknown) from `client`.
pub async fn record(db: &PgPool, owner: Option<&str>, client: Option<IpAddr>, action: Action<'_>) {
    let extra = if action.extra.is_null() {
        Value::Object(Default::default())
    } else {
        action.extra
    };
    let res = sqlx::query(
        "INSERT INTO event_logs (event, owner, client, dag_id, run_id, task_id, extra)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(action.event)
    .bind(owner)
    .bind(client.map(|c| c.to_string()))
    .bind(action.dag_id)
    .bind(action.run_id)
    .bind(action.task_id)
    .bind(&extra)
    .execute(db)
    .await;
    if let Err(e) = res {
        tracing::warn!(
            event = action.event,
            "could not record the action in event_logs: {e}"
        );
    }
}

/// One row of the audit trail.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub when: chrono::DateTime<chrono::Utc>,
    pub event: String,
    pub owner: Option<String>,
    pub client: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub extra: Value,
}

/// Which rows to list: each filter is exact when given.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub owner: Option<String>,
    pub event: Option<String>,
    pub before: Option<chrono::DateTime<chrono::Utc>>,
    pub after: Option<chrono::DateTime<chrono::Utc>>,
    /// Newest first unless false.
    pub newest_first: bool,
    pub limit: i64,
    pub offset: i64,
}

const EVENTS_WHERE: &str = "($1::text IS NULL OR dag_id = $1) AND ($2::text IS NULL OR run_id = $2)
    AND ($3::text IS NULL OR task_id = $3) AND ($4::text IS NULL OR owner = $4)
    AND ($5::text IS NULL OR event = $5) AND ($6::timestamptz IS NULL OR \"when\" < $6)
    AND ($7::timestamptz IS NULL OR \"when\" > $7)";

/// A page of the audit trail and the number of rows matching in all.
pub async fn list(db: &PgPool, f: &EventFilter) -> Result<(Vec<EventRow>, i64), sqlx::Error> {
    let order = if f.newest_first { "DESC" } else { "ASC" };
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT id, \"when\", event, owner, client, dag_id, run_id, task_id, extra
         FROM event_logs WHERE {EVENTS_WHERE} ORDER BY id {order} LIMIT $8 OFFSET $9"
    ))
    .bind(&f.dag_id)
    .bind(&f.run_id)
    .bind(&f.task_id)
    .bind(&f.owner)
    .bind(&f.event)
    .bind(f.before)
    .bind(f.after)
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM event_logs WHERE {EVENTS_WHERE}"
    ))
    .bind(&f.dag_id)
    .bind(&f.run_id)
    .bind(&f.task_id)
    .bind(&f.owner)
    .bind(&f.event)
    .bind(f.before)
    .bind(f.after)
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

pub async fn get(db: &PgPool, id: i64) -> Result<Option<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, \"when\", event, owner, client, dag_id, run_id, task_id, extra
         FROM event_logs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}
