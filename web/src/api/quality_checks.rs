//! `/dags/{dag_id}/dagRuns/{dag_run_id}/qualityChecks`: a run's
//! data-quality check results. Airflow has no such resource; the path and
//! paging follow its conventions so clients page it like any other list.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::CheckResultRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dag_runs::run_row;
use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::Page;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

/// One check's result, from the latest try of the task that ran it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QualityCheckResponse)]
pub struct QualityCheckResponse {
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub try_number: i32,
    /// The table or asset checked.
    pub table: String,
    pub check_name: String,
    /// `error` (a failure fails the task) or `warn` (recorded only).
    pub severity: String,
    pub passed: bool,
    /// `passed`, `failed` (error level) or `warn` (a failed warn-level check).
    pub outcome: String,
    /// The headline figure: failing rows, a row count, an age in seconds.
    pub observed_value: Option<f64>,
    /// Everything else measured, including `sample` (up to 5 failing keys).
    #[schema(value_type = Object)]
    pub observed: Value,
    pub detail: String,
    pub logical_date: DateTime<Utc>,
    pub checked_at: DateTime<Utc>,
}

impl From<CheckResultRow> for QualityCheckResponse {
    fn from(r: CheckResultRow) -> Self {
        Self {
            outcome: r.outcome().to_owned(),
            dag_id: r.dag_id,
            dag_run_id: r.run_id,
            task_id: r.task_id,
            try_number: r.try_number,
            table: r.asset,
            check_name: r.check_name,
            severity: r.severity,
            passed: r.passed,
            observed_value: r.observed_value,
            observed: r.observed,
            detail: r.detail,
            logical_date: r.logical_date,
            checked_at: r.checked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QualityCheckCollectionResponse)]
pub struct QualityCheckCollectionResponse {
    pub quality_checks: Vec<QualityCheckResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QualityCheckListQuery {
    /// Page size; default 50, at most 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// List a run's data-quality check results, by task, in the order each task checked.
#[utoipa::path(
    operation_id = "get_quality_checks",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/qualityChecks",
    tag = "QualityCheck",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), QualityCheckListQuery),
    responses(
        (status = 200, description = "A page of check results", body = QualityCheckCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<QualityCheckListQuery>,
) -> Result<Json<QualityCheckCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    run_row(&state, &dag_id, &run_id).await?;
    let (rows, total) = state
        .store
        .check_results_page(&dag_id, &run_id, page.limit, page.offset)
        .await?;
    Ok(Json(QualityCheckCollectionResponse {
        quality_checks: rows.into_iter().map(QualityCheckResponse::from).collect(),
        total_entries: total,
    }))
}
