//! `.../taskInstances/{task_id}/xcomEntries`: a run's XCom entries in
//! Airflow 3's shapes. BetFlow stores a task's output as its
//! `return_value`; `~` as the task id lists every task's.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::XcomRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dag_runs::{run_after, run_row};
use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::Page;
use super::ALL;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = XComResponse)]
pub struct XcomResponse {
    pub key: String,
    pub timestamp: DateTime<Utc>,
    pub logical_date: Option<DateTime<Utc>>,
    pub map_index: i32,
    pub task_id: String,
    pub dag_id: String,
    pub run_id: String,
    pub run_after: DateTime<Utc>,
    pub dag_display_name: String,
    pub task_display_name: String,
    /// With the entry itself only (`XComResponseNative`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = XComCollectionResponse)]
pub struct XcomCollectionResponse {
    pub xcom_entries: Vec<XcomResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct XcomQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Only entries under this key.
    pub xcom_key: Option<String>,
}

async fn entries(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: Option<&str>,
    key: Option<&str>,
    page: Page,
    with_value: bool,
) -> Result<(Vec<XcomResponse>, i64), Problem> {
    let run = run_row(state, dag_id, run_id).await?;
    let (rows, total) = state
        .store
        .xcom_entries(dag_id, run_id, task_id, key, page.limit, page.offset)
        .await
        .map_err(Problem::from)?;
    let after = run_after(&run.run_type, run.queued_at, run.data_interval_end);
    let entries = rows
        .into_iter()
        .map(|x: XcomRow| XcomResponse {
            timestamp: x.created_at,
            logical_date: Some(run.logical_date),
            map_index: x.map_index,
            task_display_name: x.task_id.clone(),
            task_id: x.task_id,
            dag_id: dag_id.to_owned(),
            dag_display_name: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            run_after: after,
            key: x.key,
            value: with_value.then_some(x.value),
        })
        .collect();
    Ok((entries, total))
}

/// A run's XCom entries (of one task, or of all with `~`).
#[utoipa::path(
    operation_id = "get_xcom_entries",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries",
    tag = "XCom",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), XcomQuery),
    responses(
        (status = 200, description = "A page of entries, without their values", body = XcomCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG run", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<XcomQuery>,
) -> Result<Json<XcomCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let task = (task_id != ALL).then_some(task_id.as_str());
    let (xcom_entries, total_entries) = entries(
        &state,
        &dag_id,
        &run_id,
        task,
        q.xcom_key.as_deref(),
        page,
        false,
    )
    .await?;
    Ok(Json(XcomCollectionResponse {
        xcom_entries,
        total_entries,
    }))
}

/// One XCom entry, with its value.
#[utoipa::path(
    operation_id = "get_xcom_entry",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
    tag = "XCom",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("xcom_key" = String, Path)),
    responses(
        (status = 200, description = "The entry and its value", body = XcomResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such run or entry", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id, key)): ApiPath<(String, String, String, String)>,
) -> Result<Json<XcomResponse>, Problem> {
    let page = Page::new(Some(1), Some(0))?;
    let (mut found, _) = entries(
        &state,
        &dag_id,
        &run_id,
        Some(&task_id),
        Some(&key),
        page,
        true,
    )
    .await?;
    found.pop().map(Json).ok_or_else(|| {
        Problem::not_found(format!(
            "task `{task_id}` of run `{run_id}` has no XCom entry `{key}`"
        ))
    })
}
