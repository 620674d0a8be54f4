//! `/dags`: list, get and pause/unpause DAGs, in the shape of Airflow 3's
//! `DAGResponse` so its Python client validates our answers.
//!
//! DAG facts come from the `dags` table (which `betflow up` syncs from the
//! binary's DAG bag), so stale DAGs, kept with their history, are listed too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::{DagPageFilter, DagRow, DagSort};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::{parse_order, Page};
use crate::audit::Action;
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

/// A DAG tag, as Airflow lists them: an object per tag, not a bare string.
#[derive(Debug, Serialize, ToSchema)]
pub struct DagTagResponse {
    pub name: String,
    pub dag_id: String,
    pub dag_display_name: String,
}

/// One DAG. Fields Airflow has and BetFlow has no notion of carry a fixed
/// value (`has_import_errors: false`: a DAG that fails to build stops the
/// binary) or null, so Airflow clients that require them still work.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DAGResponse)]
pub struct DagResponse {
    pub dag_id: String,
    /// BetFlow DAGs have no separate display name: the id.
    pub dag_display_name: String,
    pub description: Option<String>,
    pub is_paused: bool,
    /// A DAG in the database that this binary no longer defines.
    pub is_stale: bool,
    pub last_parsed_time: Option<DateTime<Utc>>,
    pub last_parse_duration: Option<f64>,
    pub last_expired: Option<DateTime<Utc>>,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    /// The Rust source file that defines the DAG.
    pub fileloc: String,
    pub relative_fileloc: Option<String>,
    /// Always empty: BetFlow serves no DAG source endpoint to redeem it at.
    pub file_token: String,
    pub owners: Vec<String>,
    pub tags: Vec<DagTagResponse>,
    /// The cron expression, or null for DAGs that run only when triggered.
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_periodic: bool,
    pub timetable_partitioned: bool,
    pub max_active_tasks: i32,
    pub max_active_runs: Option<i32>,
    /// 0: BetFlow never pauses a DAG after consecutive failures.
    pub max_consecutive_failed_dag_runs: i32,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    /// Cron DAGs can be backfilled (`betflow backfill`); manual ones cannot.
    pub is_backfillable: bool,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_start: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_end: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
    /// Null: every run type may be created.
    pub allowed_run_types: Option<Vec<String>>,
}

impl From<DagRow> for DagResponse {
    fn from(row: DagRow) -> Self {
        let tags = row
            .tags
            .iter()
            .map(|name| DagTagResponse {
                name: name.clone(),
                dag_id: row.dag_id.clone(),
                dag_display_name: row.dag_id.clone(),
            })
            .collect();
        let periodic = row.schedule.is_some();
        let timetable_description = Some(match (&row.schedule, &row.asset_expression) {
            (Some(cron), None) => format!("cron `{cron}` in {}", row.timezone),
            (Some(cron), Some(_)) => {
                format!(
                    "cron `{cron}` in {}, or when its assets are updated",
                    row.timezone
                )
            }
            // Airflow's wording for its asset-triggered timetable.
            (None, Some(_)) => "Triggered by assets".to_owned(),
            // Airflow's wording for its null timetable.
            (None, None) => "Never, external triggers only".to_owned(),
        });
        Self {
            dag_display_name: row.dag_id.clone(),
            description: Some(row.description).filter(|d| !d.is_empty()),
            is_paused: row.is_paused,
            is_stale: row.is_stale,
            last_parsed_time: Some(row.last_parsed_at),
            last_parse_duration: None,
            last_expired: None,
            bundle_name: None,
            bundle_version: None,
            relative_fileloc: Some(row.fileloc.clone()),
            fileloc: row.fileloc,
            file_token: String::new(),
            owners: Vec::new(),
            tags,
            timetable_summary: row
                .schedule
                .or_else(|| row.asset_expression.as_ref().map(|_| "Asset".to_owned())),
            timetable_description,
            timetable_periodic: periodic,
            timetable_partitioned: false,
            max_active_tasks: row.max_active_tasks,
            max_active_runs: Some(row.max_active_runs),
            max_consecutive_failed_dag_runs: 0,
            has_task_concurrency_limits: false,
            has_import_errors: false,
            is_backfillable: periodic,
            next_dagrun_logical_date: None,
            next_dagrun_data_interval_start: None,
            next_dagrun_data_interval_end: None,
            next_dagrun_run_after: None,
            allowed_run_types: None,
            dag_id: row.dag_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DAGCollectionResponse)]
pub struct DagCollectionResponse {
    pub dags: Vec<DagResponse>,
    pub total_entries: i64,
}

/// How `tags` combine: a DAG with any of them, or with all of them.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagsMatchMode {
    #[default]
    Any,
    All,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagListQuery {
    /// Page size; default 50, at most 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Repeat to give several.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `any` (default) or `all` of `tags`.
    #[param(inline)]
    pub tags_match_mode: Option<TagsMatchMode>,
    /// Case-insensitive substring of the DAG id (`%` and `_` are wildcards,
    /// `|` separates alternatives, `~` matches everything).
    pub dag_id_pattern: Option<String>,
    pub paused: Option<bool>,
    /// Hide DAGs this binary no longer defines; default true.
    pub exclude_stale: Option<bool>,
    /// `dag_id`, `dag_display_name`, `is_paused` or `last_parsed_time`; prefix `-` to reverse.
    #[serde(default)]
    pub order_by: Vec<String>,
}

const DAG_ORDER: &[(&str, DagSort)] = &[
    ("dag_id", DagSort::DagId),
    ("dag_display_name", DagSort::DagId),
    ("is_paused", DagSort::IsPaused),
    ("last_parsed_time", DagSort::LastParsedAt),
];

/// `a|b` → `["%a%", "%b%"]`; none when any alternative is `~` (everything).
fn id_patterns(pattern: Option<&str>) -> Vec<String> {
    let Some(pattern) = pattern else {
        return Vec::new();
    };
    let terms: Vec<&str> = pattern.split('|').filter(|t| !t.is_empty()).collect();
    if terms.contains(&"~") {
        return Vec::new();
    }
    terms.iter().map(|t| format!("%{t}%")).collect()
}

/// List DAGs.
#[utoipa::path(
    operation_id = "get_dags",
    get,
    path = "/dags",
    tag = "DAG",
    params(DagListQuery),
    responses(
        (status = 200, description = "A page of DAGs", body = DagCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(q): ApiQuery<DagListQuery>,
) -> Result<Json<DagCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let filter = DagPageFilter {
        tags: q.tags,
        tags_match_all: matches!(q.tags_match_mode.unwrap_or_default(), TagsMatchMode::All),
        dag_id_patterns: id_patterns(q.dag_id_pattern.as_deref()),
        paused: q.paused,
        exclude_stale: q.exclude_stale.unwrap_or(true),
        order: parse_order(&q.order_by, DAG_ORDER)?,
        limit: page.limit,
        offset: page.offset,
    };
    let (rows, total) = state.store.list_dags_page(&filter).await?;
    Ok(Json(DagCollectionResponse {
        dags: rows.into_iter().map(DagResponse::from).collect(),
        total_entries: total,
    }))
}

/// The DAG definition, or a 404 naming it.
pub fn dag_def(
    state: &AppState,
    dag_id: &str,
) -> Result<std::sync::Arc<orchestrator::Dag>, Problem> {
    state
        .bag
        .get(dag_id)
        .cloned()
        .ok_or_else(|| Problem::not_found(format!("DAG `{dag_id}` not found")))
}

/// The DAG row, or a 404 naming it.
pub async fn dag_row(state: &AppState, dag_id: &str) -> Result<DagRow, Problem> {
    state
        .store
        .dag(dag_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("DAG `{dag_id}` not found")))
}

/// Get a DAG.
#[utoipa::path(
    operation_id = "get_dag",
    get,
    path = "/dags/{dag_id}",
    tag = "DAG",
    params(("dag_id" = String, Path)),
    responses(
        (status = 200, description = "The DAG", body = DagResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<Json<DagResponse>, Problem> {
    Ok(Json(dag_row(&state, &dag_id).await?.into()))
}

/// What `PATCH /dags/{dag_id}` may change: only the paused flag, as in Airflow.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DAGPatchBody)]
pub struct DagPatchBody {
    pub is_paused: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagPatchQuery {
    /// Fields of the body to apply; only `is_paused` exists.
    #[serde(default)]
    pub update_mask: Vec<String>,
}

/// Pause or unpause a DAG (operator or admin).
#[utoipa::path(
    operation_id = "patch_dag",
    patch,
    path = "/dags/{dag_id}",
    tag = "DAG",
    params(("dag_id" = String, Path), DagPatchQuery),
    request_body = DagPatchBody,
    responses(
        (status = 200, description = "The DAG after the change", body = DagResponse),
        (status = 400, description = "`update_mask` names a field that cannot change", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn patch(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DagPatchQuery>,
    body: Result<ApiJson<DagPatchBody>, Problem>,
) -> Result<Json<DagResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    if let Some(bad) = q.update_mask.iter().find(|f| f.as_str() != "is_paused") {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("only `is_paused` can be updated, not `{bad}`"),
        ));
    }
    if !state.store.set_paused(&dag_id, body.is_paused).await? {
        return Err(Problem::not_found(format!("DAG `{dag_id}` not found")));
    }
    if !body.is_paused {
        // Let schedulers create and start its runs now rather than at their next tick.
        state.store.wake().await?;
    }
    tracing::info!(user = %user.0.username, dag_id, paused = body.is_paused, "DAG paused flag set");
    let event = if body.is_paused { "pause" } else { "unpause" };
    user.audit(
        &state.db,
        Action {
            event,
            dag_id: Some(&dag_id),
            ..Action::default()
        },
    )
    .await;
    Ok(Json(dag_row(&state, &dag_id).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_patterns_follow_airflows_pattern_syntax() {
        assert!(id_patterns(None).is_empty());
        assert_eq!(id_patterns(Some("etl")), vec!["%etl%"]);
        assert_eq!(id_patterns(Some("a|b_c")), vec!["%a%", "%b_c%"]);
        assert!(id_patterns(Some("x|~")).is_empty());
    }
}
