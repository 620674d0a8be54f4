//! `.../taskInstances/{task_id}/tries`: every try of a task instance in
//! Airflow 3's `TaskInstanceHistoryResponse` shape: the ended ones from
//! `task_tries`, then the current one while it has not ended.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::{TaskInstanceDetailRow, TryHistoryRow};
use orchestrator::TaskState;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::ApiPath;
use super::openapi::ProblemDetails;
use super::task_instances::detail_row;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TaskInstanceHistoryResponse)]
pub struct TaskInstanceHistoryResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub dag_run_id: String,
    pub map_index: i32,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub state: Option<String>,
    pub try_number: i32,
    pub max_tries: i32,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: i32,
    pub queue: Option<String>,
    pub priority_weight: Option<i32>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i32>,
    pub executor: Option<String>,
    /// Always `{}`: BetFlow has no per-task executor config.
    pub executor_config: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TaskInstanceHistoryCollectionResponse)]
pub struct TaskInstanceHistoryCollectionResponse {
    pub task_instances: Vec<TaskInstanceHistoryResponse>,
    pub total_entries: i64,
}

fn history(row: &TaskInstanceDetailRow, t: &TryHistoryRow) -> TaskInstanceHistoryResponse {
    let ti = &row.ti;
    TaskInstanceHistoryResponse {
        task_id: ti.task_id.clone(),
        task_display_name: ti.task_id.clone(),
        dag_id: ti.dag_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        dag_run_id: ti.run_id.clone(),
        map_index: ti.map_index,
        start_date: t.start_date,
        end_date: t.end_date,
        duration: t.duration,
        state: Some(t.state)
            .filter(|s| *s != TaskState::None)
            .map(|s| s.as_str().to_owned()),
        try_number: t.try_number,
        max_tries: ti.max_tries,
        hostname: t.hostname.clone(),
        unixname: None,
        pool: ti.pool.clone(),
        pool_slots: row.pool_slots,
        queue: None,
        priority_weight: Some(row.priority_weight),
        operator: None,
        operator_name: None,
        queued_when: None,
        scheduled_when: None,
        pid: None,
        executor: None,
        executor_config: "{}".to_owned(),
    }
}

/// The tries: the ended ones, then the current one when it has not ended.
async fn tries(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
) -> Result<Vec<TaskInstanceHistoryResponse>, Problem> {
    let row = detail_row(state, dag_id, run_id, task_id).await?;
    let ended = state
        .store
        .instance_tries(dag_id, run_id, task_id)
        .await
        .map_err(Problem::from)?;
    let mut out: Vec<TaskInstanceHistoryResponse> =
        ended.iter().map(|t| history(&row, t)).collect();
    let current = row.ti.try_number;
    if current > 0 && !ended.iter().any(|t| t.try_number == current) {
        let now = TryHistoryRow {
            try_number: current,
            state: row.ti.state,
            hostname: row.ti.hostname.clone(),
            start_date: row.ti.start_date,
            end_date: row.ti.end_date,
            duration: row.ti.duration,
        };
        out.push(history(&row, &now));
    }
    Ok(out)
}

/// Every try of a task instance, oldest first.
#[utoipa::path(
    operation_id = "get_task_instance_tries",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries",
    tag = "TaskInstance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path)),
    responses(
        (status = 200, description = "The tries", body = TaskInstanceHistoryCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such task instance", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
) -> Result<Json<TaskInstanceHistoryCollectionResponse>, Problem> {
    let task_instances = tries(&state, &dag_id, &run_id, &task_id).await?;
    Ok(Json(TaskInstanceHistoryCollectionResponse {
        total_entries: task_instances.len() as i64,
        task_instances,
    }))
}

/// One try of a task instance.
#[utoipa::path(
    operation_id = "get_task_instance_try_details",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries/{task_try_number}",
    tag = "TaskInstance",
    params(
        ("dag_id" = String, Path),
        ("dag_run_id" = String, Path),
        ("task_id" = String, Path),
        ("task_try_number" = i32, Path),
    ),
    responses(
        (status = 200, description = "The try", body = TaskInstanceHistoryResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such task instance or try", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id, try_number)): ApiPath<(String, String, String, i32)>,
) -> Result<Json<TaskInstanceHistoryResponse>, Problem> {
    tries(&state, &dag_id, &run_id, &task_id)
        .await?
        .into_iter()
        .find(|t| t.try_number == try_number)
        .map(Json)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "task instance `{task_id}` of run `{run_id}` has no try {try_number}"
            ))
        })
}
