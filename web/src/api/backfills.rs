//! `/backfills`: Airflow 3's backfill endpoints (`BackfillResponse`,
//! `BackfillPostBody`, the dry run, pause, unpause, cancel) over
//! `orchestrator::backfill`, the implementation the CLI and the DAG page
//! use too.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::backfill::{
    self, Backfill, BackfillRequest, ReprocessBehavior, DEFAULT_MAX_ACTIVE_RUNS,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dags::dag_row;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::Page;
use crate::audit::Action;
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillResponse {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub dag_run_conf: Value,
    pub is_paused: bool,
    /// `none`, `failed` or `completed`.
    pub reprocess_behavior: String,
    pub max_active_runs: i32,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub dag_display_name: String,
}

impl From<Backfill> for BackfillResponse {
    fn from(b: Backfill) -> Self {
        BackfillResponse {
            id: b.id,
            dag_display_name: b.dag_id.clone(),
            dag_id: b.dag_id,
            from_date: b.from_date,
            to_date: b.to_date,
            dag_run_conf: b.dag_run_conf,
            is_paused: b.is_paused,
            reprocess_behavior: b.reprocess_behavior,
            max_active_runs: b.max_active_runs,
            created_at: b.created_at,
            completed_at: b.completed_at,
            updated_at: b.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillCollectionResponse {
    pub backfills: Vec<BackfillResponse>,
    pub total_entries: i64,
}

/// A backfill to create (or to dry-run).
#[derive(Debug, Deserialize, ToSchema)]
pub struct BackfillPostBody {
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    #[serde(default)]
    pub run_backwards: Option<bool>,
    /// Every run's conf: a JSON object.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub dag_run_conf: Option<Value>,
    /// `none` (default), `failed` or `completed`.
    #[serde(default)]
    pub reprocess_behavior: Option<String>,
    /// Default 10.
    #[serde(default)]
    pub max_active_runs: Option<i32>,
    /// Accepted for Airflow compatibility: BetFlow runs always use the
    /// binary's (latest) DAG version.
    #[serde(default)]
    #[expect(
        dead_code,
        reason = "part of Airflow's body schema; every run uses the latest version"
    )]
    pub run_on_latest_version: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunBackfillResponse {
    pub logical_date: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunBackfillCollectionResponse {
    pub backfills: Vec<DryRunBackfillResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackfillQuery {
    /// Required, as in Airflow.
    pub dag_id: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// `id` (default) or `-id`.
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// The body as a request for `user`, checked.
fn request(body: &BackfillPostBody, user: &ApiUser) -> Result<BackfillRequest, Problem> {
    let reprocess: ReprocessBehavior = match body.reprocess_behavior.as_deref() {
        None => ReprocessBehavior::None,
        Some(r) => r.parse().map_err(Problem::unprocessable)?,
    };
    Ok(BackfillRequest {
        from: body.from_date,
        to: body.to_date,
        run_backwards: body.run_backwards.unwrap_or(false),
        conf: match &body.dag_run_conf {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v) => v.clone(),
        },
        reprocess,
        max_active_runs: body.max_active_runs.unwrap_or(DEFAULT_MAX_ACTIVE_RUNS),
        created_by: Some(user.0.username.clone()),
    })
}

/// A DAG's backfills, oldest first by default.
#[utoipa::path(
    operation_id = "list_backfills",
    get,
    path = "/backfills",
    tag = "Backfill",
    params(BackfillQuery),
    responses(
        (status = 200, description = "A page of the DAG's backfills", body = BackfillCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "No `dag_id`", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(q): ApiQuery<BackfillQuery>,
) -> Result<Json<BackfillCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let Some(dag_id) = q.dag_id.as_deref() else {
        return Err(Problem::unprocessable("dag_id is required"));
    };
    let ascending = match q.order_by.first().map(String::as_str) {
        None | Some("id") => true,
        Some("-id") => false,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("cannot order backfills by `{other}`; use `id` or `-id`"),
            ))
        }
    };
    dag_row(&state, dag_id).await?;
    let (rows, total) = backfill::list(
        &state.store,
        Some(dag_id),
        ascending,
        page.limit,
        page.offset,
    )
    .await
    .map_err(Problem::from)?;
    Ok(Json(BackfillCollectionResponse {
        backfills: rows.into_iter().map(BackfillResponse::from).collect(),
        total_entries: total,
    }))
}

/// Create a backfill (operator or admin).
#[utoipa::path(
    operation_id = "create_backfill",
    post,
    path = "/backfills",
    tag = "Backfill",
    request_body = BackfillPostBody,
    responses(
        (status = 200, description = "The backfill created", body = BackfillResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The DAG has an active backfill", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A bad range, conf, limit or reprocess behavior, or nothing to do", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    user: ApiUser,
    body: Result<ApiJson<BackfillPostBody>, Problem>,
) -> Result<Json<BackfillResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let dag = super::dags::dag_def(&state, &body.dag_id)?;
    let request = request(&body, &user)?;
    let (created, plan) = backfill::create(&state.store, &dag, &request)
        .await
        .map_err(Problem::from)?;
    tracing::info!(user = %user.0.username, dag_id = %dag.id, backfill = created.id, "backfill created through the API");
    user.audit(
        &state.db,
        Action {
            event: "backfill",
            dag_id: Some(&dag.id),
            extra: serde_json::json!({
                "backfill_id": created.id,
                "runs": plan.effective().count(),
            }),
            ..Action::default()
        },
    )
    .await;
    Ok(Json(created.into()))
}

/// The logical dates a backfill would create or re-run; writes nothing.
#[utoipa::path(
    operation_id = "create_backfill_dry_run",
    post,
    path = "/backfills/dry_run",
    tag = "Backfill",
    request_body = BackfillPostBody,
    responses(
        (status = 200, description = "The runs it would create or re-run", body = DryRunBackfillCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A bad range, conf, limit or reprocess behavior", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn dry_run(
    State(state): State<AppState>,
    user: ApiUser,
    body: Result<ApiJson<BackfillPostBody>, Problem>,
) -> Result<Json<DryRunBackfillCollectionResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let dag = super::dags::dag_def(&state, &body.dag_id)?;
    let plan = backfill::plan(&state.store, &dag, &request(&body, &user)?)
        .await
        .map_err(Problem::from)?;
    let backfills: Vec<DryRunBackfillResponse> = plan
        .effective()
        .map(|r| DryRunBackfillResponse {
            logical_date: r.logical_date,
        })
        .collect();
    Ok(Json(DryRunBackfillCollectionResponse {
        total_entries: backfills.len() as i64,
        backfills,
    }))
}

/// One backfill.
#[utoipa::path(
    operation_id = "get_backfill",
    get,
    path = "/backfills/{backfill_id}",
    tag = "Backfill",
    params(("backfill_id" = i64, Path)),
    responses(
        (status = 200, description = "The backfill", body = BackfillResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such backfill", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, Problem> {
    let b = backfill::get(&state.store, id)
        .await
        .map_err(Problem::from)?;
    Ok(Json(b.into()))
}

/// Pause, resume or cancel, recorded in the event log.
async fn change(
    state: &AppState,
    user: &ApiUser,
    id: i64,
    event: &'static str,
) -> Result<Json<BackfillResponse>, Problem> {
    user.require(Role::Operator)?;
    let b = match event {
        "backfill_pause" => backfill::set_paused(&state.store, id, true).await,
        "backfill_unpause" => backfill::set_paused(&state.store, id, false).await,
        _ => backfill::cancel(&state.store, id).await,
    }
    .map_err(Problem::from)?;
    user.audit(
        &state.db,
        Action {
            event,
            dag_id: Some(&b.dag_id),
            extra: serde_json::json!({"backfill_id": id}),
            ..Action::default()
        },
    )
    .await;
    Ok(Json(b.into()))
}

/// Stop starting the backfill's runs until it is unpaused.
#[utoipa::path(
    operation_id = "pause_backfill",
    put,
    path = "/backfills/{backfill_id}/pause",
    tag = "Backfill",
    params(("backfill_id" = i64, Path)),
    responses(
        (status = 200, description = "The backfill, paused", body = BackfillResponse),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such backfill", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The backfill has completed", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn pause(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, Problem> {
    change(&state, &user, id, "backfill_pause").await
}

/// Start the backfill's runs again.
#[utoipa::path(
    operation_id = "unpause_backfill",
    put,
    path = "/backfills/{backfill_id}/unpause",
    tag = "Backfill",
    params(("backfill_id" = i64, Path)),
    responses(
        (status = 200, description = "The backfill, running", body = BackfillResponse),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such backfill", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The backfill has completed", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn unpause(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, Problem> {
    change(&state, &user, id, "backfill_unpause").await
}

/// Cancel: the backfill ends now, its runs not yet started fail, its
/// running runs finish.
#[utoipa::path(
    operation_id = "cancel_backfill",
    put,
    path = "/backfills/{backfill_id}/cancel",
    tag = "Backfill",
    params(("backfill_id" = i64, Path)),
    responses(
        (status = 200, description = "The backfill, cancelled", body = BackfillResponse),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such backfill", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The backfill has completed", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<BackfillResponse>, Problem> {
    change(&state, &user, id, "backfill_cancel").await
}
