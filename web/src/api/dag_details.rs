//! `/dags/{dag_id}/details` and `/dagSources/{dag_id}`: a DAG's settings
//! beyond `DAGResponse` (Airflow 3's `DAGDetailsResponse`), and the Rust
//! source of the file that defines it (`DAGSourceResponse`), which the
//! binary carries for its own DAGs.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::dag_versions::DagVersionResponse;
use super::dags::{dag_row, DagResponse};
use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DAGDetailsResponse)]
pub struct DagDetailsResponse {
    #[serde(flatten)]
    pub dag: DagResponse,
    pub catchup: bool,
    /// `max_active_tasks` under Airflow's deprecated name.
    pub concurrency: i32,
    pub render_template_as_native_obj: bool,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    #[schema(value_type = Object)]
    pub params: Option<Map<String, Value>>,
    pub doc_md: Option<String>,
    pub template_search_path: Option<Vec<String>>,
    pub is_paused_upon_creation: Option<bool>,
    pub last_parsed: Option<DateTime<Utc>>,
    pub latest_dag_version: Option<DagVersionResponse>,
    /// Runs queued or running now.
    pub active_runs_count: i64,
    /// The DAG's asset condition (`{"all": [{"asset": {…}}]}`), for DAGs
    /// scheduled on assets (docs/assets.md).
    #[schema(value_type = Option<Object>)]
    pub asset_expression: Option<Value>,
}

/// A DAG's details.
#[utoipa::path(
    operation_id = "get_dag_details",
    get,
    path = "/dags/{dag_id}/details",
    tag = "DAG",
    params(("dag_id" = String, Path)),
    responses(
        (status = 200, description = "The DAG's details", body = DagDetailsResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn details(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<Json<DagDetailsResponse>, Problem> {
    let row = dag_row(&state, &dag_id).await?;
    // Dates and params come from the definition; a stale DAG has none.
    let def = state.bag.get(&dag_id).cloned();
    let latest = state
        .store
        .dag_versions(Some(&dag_id), true, 1, 0)
        .await
        .map_err(Problem::from)?
        .0
        .into_iter()
        .next()
        .map(DagVersionResponse::from);
    let active_runs_count = state
        .store
        .active_run_count(&dag_id)
        .await
        .map_err(Problem::from)?;
    Ok(Json(DagDetailsResponse {
        catchup: row.catchup,
        concurrency: row.max_active_tasks,
        render_template_as_native_obj: false,
        start_date: def.as_ref().map(|d| d.bounds.start_date),
        end_date: def.as_ref().and_then(|d| d.bounds.end_date),
        timezone: Some(row.timezone.clone()),
        params: def.as_ref().map(|d| d.params.clone()),
        doc_md: None,
        template_search_path: None,
        is_paused_upon_creation: None,
        last_parsed: Some(row.last_parsed_at),
        latest_dag_version: latest,
        active_runs_count,
        asset_expression: def
            .as_ref()
            .and_then(|d| d.asset_schedule.as_ref())
            .map(|c| c.expression()),
        dag: DagResponse::from(row),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DAGSourceResponse)]
pub struct DagSourceResponse {
    pub content: Option<String>,
    pub dag_id: String,
    pub dag_display_name: String,
    pub version_number: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceQuery {
    /// Only the current version's source is in this binary.
    pub version_number: Option<i32>,
}

/// The source of the file that defines a DAG: JSON, or the file itself
/// with `Accept: text/plain`.
#[utoipa::path(
    operation_id = "get_dag_source",
    get,
    path = "/dagSources/{dag_id}",
    tag = "DagSource",
    params(("dag_id" = String, Path), SourceQuery),
    responses(
        (status = 200, description = "The DAG's source", content(
            (DagSourceResponse = "application/json"),
            (String = "text/plain"),
        )),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, no source in this binary, or an older version", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn source(
    State(state): State<AppState>,
    _user: ApiUser,
    headers: HeaderMap,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SourceQuery>,
) -> Result<Response, Problem> {
    dag_row(&state, &dag_id).await?;
    let current = state
        .store
        .dag_versions(Some(&dag_id), true, 1, 0)
        .await
        .map_err(Problem::from)?
        .0
        .first()
        .map(|v| v.version_number);
    if let Some(asked) = q.version_number.filter(|v| Some(*v) != current) {
        return Err(Problem::not_found(format!(
            "this binary carries the source of version {} of `{dag_id}`, not of version {asked}",
            current.map_or("?".to_owned(), |v| v.to_string())
        )));
    }
    let text = state
        .bag
        .get(&dag_id)
        .and_then(|d| state.bag.source_of(d))
        .ok_or_else(|| {
            Problem::not_found(format!(
                "this binary does not carry the source of `{dag_id}` (a stale DAG, or one defined outside BetFlow's dags crate)"
            ))
        })?;
    let plain = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/plain") && !a.contains("application/json"));
    if plain {
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    Ok(Json(DagSourceResponse {
        content: Some(text.to_owned()),
        dag_display_name: dag_id.clone(),
        dag_id,
        version_number: current,
    })
    .into_response())
}
