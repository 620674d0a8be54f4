//! `/dags/{dag_id}/dagVersions`: the versions of a DAG's structure in
//! Airflow 3's `DagVersionResponse` shape. BetFlow records a version when
//! the binary's definition of a DAG changes (`Dag::structure`); a run
//! names the version it was created under (`DAGRunResponse.dag_versions`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::DagVersionRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dags::dag_row;
use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::Page;
use super::ALL;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagVersionResponse {
    /// The version's UUID.
    pub id: String,
    pub version_number: i32,
    pub dag_id: String,
    /// BetFlow DAGs are compiled into the binary: no bundles.
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub dag_display_name: String,
    pub bundle_url: Option<String>,
}

impl From<DagVersionRow> for DagVersionResponse {
    fn from(v: DagVersionRow) -> Self {
        Self {
            id: v.id,
            version_number: v.version_number,
            dag_display_name: v.dag_id.clone(),
            dag_id: v.dag_id,
            bundle_name: None,
            bundle_version: None,
            created_at: v.created_at,
            bundle_url: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagVersionCollectionResponse {
    pub dag_versions: Vec<DagVersionResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagVersionQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// `version_number` (default) or `-version_number`.
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// The versions of a DAG (`~`: of every DAG), oldest first by default.
#[utoipa::path(
    operation_id = "get_dag_versions",
    get,
    path = "/dags/{dag_id}/dagVersions",
    tag = "DagVersion",
    params(("dag_id" = String, Path), DagVersionQuery),
    responses(
        (status = 200, description = "A page of the DAG's versions", body = DagVersionCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DagVersionQuery>,
) -> Result<Json<DagVersionCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let newest_first = match q.order_by.first().map(String::as_str) {
        None | Some("version_number" | "id") => false,
        Some("-version_number" | "-id") => true,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!(
                "cannot order DAG versions by `{other}`; use `version_number` or `-version_number`"
            ),
            ))
        }
    };
    let dag = if dag_id == ALL {
        None
    } else {
        dag_row(&state, &dag_id).await?;
        Some(dag_id.as_str())
    };
    let (rows, total) = state
        .store
        .dag_versions(dag, newest_first, page.limit, page.offset)
        .await
        .map_err(Problem::from)?;
    Ok(Json(DagVersionCollectionResponse {
        dag_versions: rows.into_iter().map(DagVersionResponse::from).collect(),
        total_entries: total,
    }))
}

/// One version of a DAG.
#[utoipa::path(
    operation_id = "get_dag_version",
    get,
    path = "/dags/{dag_id}/dagVersions/{version_number}",
    tag = "DagVersion",
    params(("dag_id" = String, Path), ("version_number" = i32, Path)),
    responses(
        (status = 200, description = "The version", body = DagVersionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG or version", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The version number is not a number", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, version_number)): ApiPath<(String, i32)>,
) -> Result<Json<DagVersionResponse>, Problem> {
    dag_row(&state, &dag_id).await?;
    let version = state
        .store
        .dag_version(&dag_id, version_number)
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| {
            Problem::not_found(format!("DAG `{dag_id}` has no version {version_number}"))
        })?;
    Ok(Json(version.into()))
}
