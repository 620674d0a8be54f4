//! `/dags/{dag_id}/tasks`: a DAG's tasks as Airflow 3's `TaskResponse`,
//! from the definition in this binary (a stale DAG has none to list).

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::dag::{TaskKind, TaskNode};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::dags::dag_def;
use super::extract::ApiPath;
use super::openapi::ProblemDetails;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

/// A duration as Airflow serialises `timedelta`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TimeDelta)]
pub struct TimeDeltaResponse {
    #[serde(rename = "__type")]
    pub kind: &'static str,
    pub days: i64,
    pub seconds: i64,
    pub microseconds: i64,
}

impl From<Duration> for TimeDeltaResponse {
    fn from(d: Duration) -> Self {
        let secs = d.as_secs() as i64;
        Self {
            kind: "TimeDelta",
            days: secs / 86_400,
            seconds: secs % 86_400,
            microseconds: i64::from(d.subsec_micros()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub owner: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub trigger_rule: String,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub retries: f64,
    pub queue: Option<String>,
    pub pool: String,
    pub pool_slots: f64,
    pub execution_timeout: Option<TimeDeltaResponse>,
    pub retry_delay: Option<TimeDeltaResponse>,
    /// 2.0 when the delay doubles after each try, else 0 (Airflow's multiplier).
    pub retry_exponential_backoff: f64,
    pub priority_weight: f64,
    pub weight_rule: Option<String>,
    pub ui_color: Option<String>,
    pub ui_fgcolor: Option<String>,
    pub template_fields: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    /// `Operator` or `Sensor`: BetFlow tasks are Rust values, not classes.
    pub operator_name: String,
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    #[schema(value_type = Object)]
    pub class_ref: Map<String, Value>,
    pub is_mapped: bool,
    pub extra_links: Vec<String>,
}

fn task_response(t: &TaskNode, params: &Map<String, Value>) -> TaskResponse {
    let operator = match t.kind {
        TaskKind::Operator(_) => "Operator",
        TaskKind::Sensor { .. } => "Sensor",
    };
    TaskResponse {
        task_id: t.id.clone(),
        task_display_name: t.id.clone(),
        owner: None,
        start_date: None,
        end_date: None,
        trigger_rule: t.trigger_rule.as_str().to_owned(),
        depends_on_past: false,
        wait_for_downstream: false,
        retries: f64::from(t.retry.retries),
        queue: None,
        pool: t.pool.clone(),
        pool_slots: f64::from(t.pool_slots),
        execution_timeout: t.timeout.map(TimeDeltaResponse::from),
        retry_delay: Some(t.retry.delay.into()),
        retry_exponential_backoff: if t.retry.exponential { 2.0 } else { 0.0 },
        priority_weight: f64::from(t.priority_weight),
        weight_rule: Some("absolute".to_owned()),
        ui_color: None,
        ui_fgcolor: None,
        template_fields: Vec::new(),
        downstream_task_ids: t.downstream.clone(),
        doc_md: Some(t.doc.clone()).filter(|d| !d.is_empty()),
        operator_name: operator.to_owned(),
        params: params.clone(),
        class_ref: Map::new(),
        is_mapped: false,
        extra_links: Vec::new(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCollectionResponse {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: i64,
}

/// A DAG's tasks, upstream before downstream.
#[utoipa::path(
    operation_id = "get_tasks",
    get,
    path = "/dags/{dag_id}/tasks",
    tag = "Task",
    params(("dag_id" = String, Path)),
    responses(
        (status = 200, description = "The DAG's tasks", body = TaskCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG in this binary", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<Json<TaskCollectionResponse>, Problem> {
    let dag = dag_def(&state, &dag_id)?;
    let tasks: Vec<TaskResponse> = dag
        .tasks()
        .iter()
        .map(|t| task_response(t, &dag.params))
        .collect();
    Ok(Json(TaskCollectionResponse {
        total_entries: tasks.len() as i64,
        tasks,
    }))
}

/// One task of a DAG.
#[utoipa::path(
    operation_id = "get_task",
    get,
    path = "/dags/{dag_id}/tasks/{task_id}",
    tag = "Task",
    params(("dag_id" = String, Path), ("task_id" = String, Path)),
    responses(
        (status = 200, description = "The task", body = TaskResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG or task", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, task_id)): ApiPath<(String, String)>,
) -> Result<Json<TaskResponse>, Problem> {
    let dag = dag_def(&state, &dag_id)?;
    let task = dag
        .task(&task_id)
        .ok_or_else(|| Problem::not_found(format!("DAG `{dag_id}` has no task `{task_id}`")))?;
    Ok(Json(task_response(task, &dag.params)))
}
