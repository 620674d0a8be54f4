//! `/assets`: Airflow 3's asset endpoints (`AssetResponse`,
//! `AssetEventResponse`, queued events, a run's upstream events) over the
//! assets BetFlow's tasks declare (docs/assets.md). Asset aliases are an
//! Airflow concept BetFlow does not have: an empty list, a 404 for an id.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::{
    AssetEventFilter, AssetEventRow, AssetFilter, AssetRow, AssetSort, AssetTaskRef,
    QueuedAssetEventRow, TriggeredRunRow,
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
pub struct DagScheduleAssetReference {
    pub dag_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskAssetReference {
    pub dag_id: String,
    pub task_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AssetTaskRef> for TaskAssetReference {
    fn from(r: AssetTaskRef) -> Self {
        Self {
            dag_id: r.dag_id,
            task_id: r.task_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastAssetEventResponse {
    pub id: Option<i64>,
    pub timestamp: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetResponse {
    pub id: i64,
    pub name: String,
    pub uri: String,
    pub group: String,
    #[schema(value_type = Object)]
    pub extra: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub scheduled_dags: Vec<DagScheduleAssetReference>,
    pub producing_tasks: Vec<TaskAssetReference>,
    pub consuming_tasks: Vec<TaskAssetReference>,
    /// BetFlow has no asset aliases.
    #[schema(value_type = Vec<Object>)]
    pub aliases: Vec<Value>,
    /// Nor watchers (event-driven triggers).
    #[schema(value_type = Vec<Object>)]
    pub watchers: Vec<Value>,
    pub last_asset_event: Option<LastAssetEventResponse>,
}

impl From<AssetRow> for AssetResponse {
    fn from(a: AssetRow) -> Self {
        Self {
            id: a.id,
            name: a.name,
            uri: a.uri,
            group: a.group,
            extra: a.extra,
            created_at: a.created_at,
            updated_at: a.updated_at,
            scheduled_dags: a
                .scheduled_dags
                .into_iter()
                .map(|d| DagScheduleAssetReference {
                    dag_id: d.dag_id,
                    created_at: d.created_at,
                    updated_at: d.updated_at,
                })
                .collect(),
            producing_tasks: a.producing_tasks.into_iter().map(Into::into).collect(),
            consuming_tasks: a.consuming_tasks.into_iter().map(Into::into).collect(),
            aliases: Vec::new(),
            watchers: Vec::new(),
            last_asset_event: a.last_event.map(|e| LastAssetEventResponse {
                id: Some(e.id),
                timestamp: Some(e.timestamp),
            }),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetCollectionResponse {
    pub assets: Vec<AssetResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagRunAssetReference {
    pub run_id: String,
    pub dag_id: String,
    pub logical_date: Option<DateTime<Utc>>,
    /// When the run started; its queue time while it waits.
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub state: String,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub partition_key: Option<String>,
    /// The event completed the run's condition (the newest of its events).
    pub triggering: bool,
}

impl From<TriggeredRunRow> for DagRunAssetReference {
    fn from(r: TriggeredRunRow) -> Self {
        Self {
            run_id: r.run_id,
            dag_id: r.dag_id,
            // An asset-triggered run is queued at its logical date.
            start_date: r.start_date.or(Some(r.logical_date)),
            logical_date: Some(r.logical_date),
            end_date: r.end_date,
            state: r.state,
            data_interval_start: Some(r.data_interval_start),
            data_interval_end: Some(r.data_interval_end),
            partition_key: r.partition_key,
            triggering: r.triggering,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetEventResponse {
    pub id: i64,
    pub asset_id: i64,
    pub uri: Option<String>,
    pub name: Option<String>,
    pub group: Option<String>,
    #[schema(value_type = Object)]
    pub extra: Value,
    /// The partition it updated (a sports day), when the producer names one.
    pub partition_key: Option<String>,
    pub source_task_id: Option<String>,
    pub source_dag_id: Option<String>,
    pub source_run_id: Option<String>,
    /// -1 when not from a mapped task instance (or not from a task).
    pub source_map_index: i32,
    pub created_dagruns: Vec<DagRunAssetReference>,
    pub timestamp: DateTime<Utc>,
}

impl From<AssetEventRow> for AssetEventResponse {
    fn from(e: AssetEventRow) -> Self {
        let mut extra = match e.extra {
            Value::Object(m) => m,
            _ => Default::default(),
        };
        if let Some(by) = e.created_by {
            extra
                .entry("created_by")
                .or_insert_with(|| Value::String(by));
        }
        Self {
            id: e.id,
            asset_id: e.asset_id,
            uri: Some(e.uri),
            name: Some(e.name),
            group: Some(e.group),
            extra: Value::Object(extra),
            partition_key: (!e.partition.is_empty()).then_some(e.partition),
            source_task_id: e.source_task_id,
            source_dag_id: e.source_dag_id,
            source_run_id: e.source_run_id,
            source_map_index: e.source_map_index.unwrap_or(-1),
            created_dagruns: e.created_dagruns.into_iter().map(Into::into).collect(),
            timestamp: e.timestamp,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetEventCollectionResponse {
    pub asset_events: Vec<AssetEventResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedEventResponse {
    pub dag_id: String,
    pub asset_id: i64,
    pub created_at: DateTime<Utc>,
    pub dag_display_name: String,
}

impl From<QueuedAssetEventRow> for QueuedEventResponse {
    fn from(q: QueuedAssetEventRow) -> Self {
        Self {
            dag_display_name: q.dag_id.clone(),
            dag_id: q.dag_id,
            asset_id: q.asset_id,
            created_at: q.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedEventCollectionResponse {
    pub queued_events: Vec<QueuedEventResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetAliasCollectionResponse {
    #[schema(value_type = Vec<Object>)]
    pub asset_aliases: Vec<Value>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Case-insensitive substring of the name.
    pub name_pattern: Option<String>,
    /// Case-insensitive substring of the URI.
    pub uri_pattern: Option<String>,
    /// Case-sensitive prefix of the name.
    pub name_prefix_pattern: Option<String>,
    /// Case-sensitive prefix of the URI.
    pub uri_prefix_pattern: Option<String>,
    /// Assets these DAGs write, read or are scheduled on.
    #[serde(default)]
    pub dag_ids: Vec<String>,
    /// Only assets a DAG of the deployment still names (default true).
    pub only_active: Option<bool>,
    /// `id` (default), `name` or `uri`, `-` first for descending.
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// The assets BetFlow's DAGs declare.
#[utoipa::path(
    operation_id = "get_assets",
    get,
    path = "/assets",
    tag = "Asset",
    params(AssetQuery),
    responses(
        (status = 200, description = "A page of assets", body = AssetCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(q): ApiQuery<AssetQuery>,
) -> Result<Json<AssetCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let (sort, descending) = match q.order_by.first().map(String::as_str) {
        None | Some("id") => (AssetSort::Id, false),
        Some("-id") => (AssetSort::Id, true),
        Some("name") => (AssetSort::Name, false),
        Some("-name") => (AssetSort::Name, true),
        Some("uri") => (AssetSort::Uri, false),
        Some("-uri") => (AssetSort::Uri, true),
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "cannot order assets by `{other}`; use id, name or uri (`-` for descending)"
                ),
            ))
        }
    };
    let filter = AssetFilter {
        uri_pattern: q.uri_pattern,
        name_pattern: q.name_pattern,
        uri_prefix: q.uri_prefix_pattern,
        name_prefix: q.name_prefix_pattern,
        dag_ids: q.dag_ids,
        only_active: q.only_active.unwrap_or(true),
    };
    let (rows, total) = state
        .store
        .assets(&filter, sort, descending, page.limit, page.offset)
        .await?;
    Ok(Json(AssetCollectionResponse {
        assets: rows.into_iter().map(AssetResponse::from).collect(),
        total_entries: total,
    }))
}

/// One asset.
#[utoipa::path(
    operation_id = "get_asset",
    get,
    path = "/assets/{asset_id}",
    tag = "Asset",
    params(("asset_id" = i64, Path)),
    responses(
        (status = 200, description = "The asset", body = AssetResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such asset", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a number", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(asset_id): ApiPath<i64>,
) -> Result<Json<AssetResponse>, Problem> {
    let asset = state
        .store
        .asset(asset_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no asset with id {asset_id}")))?;
    Ok(Json(asset.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetEventQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub asset_id: Option<i64>,
    pub source_dag_id: Option<String>,
    pub source_task_id: Option<String>,
    pub source_run_id: Option<String>,
    pub source_map_index: Option<i32>,
    pub timestamp_gte: Option<String>,
    pub timestamp_lte: Option<String>,
    /// `timestamp` or `id` (default, oldest first), `-` first for newest first.
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// Updates of assets, with the runs each triggered.
#[utoipa::path(
    operation_id = "get_asset_events",
    get,
    path = "/assets/events",
    tag = "Asset",
    params(AssetEventQuery),
    responses(
        (status = 200, description = "A page of asset events", body = AssetEventCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A bad date", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(q): ApiQuery<AssetEventQuery>,
) -> Result<Json<AssetEventCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let newest_first = match q.order_by.first().map(String::as_str) {
        None | Some("id" | "timestamp") => false,
        Some("-id" | "-timestamp") => true,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "cannot order asset events by `{other}`; use timestamp or id (`-` for newest first)"
                ),
            ))
        }
    };
    let filter = AssetEventFilter {
        asset_id: q.asset_id,
        source_dag_id: q.source_dag_id,
        source_task_id: q.source_task_id,
        source_run_id: q.source_run_id,
        source_map_index: q.source_map_index,
        timestamp_gte: super::parse_query_date("timestamp_gte", q.timestamp_gte.as_deref())?,
        timestamp_lte: super::parse_query_date("timestamp_lte", q.timestamp_lte.as_deref())?,
        ids: None,
        newest_first,
    };
    let (rows, total) = state
        .store
        .asset_events(&filter, page.limit, page.offset)
        .await?;
    Ok(Json(AssetEventCollectionResponse {
        asset_events: rows.into_iter().map(AssetEventResponse::from).collect(),
        total_entries: total,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAssetEventsBody {
    pub asset_id: i64,
    /// Kept on the event.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra: Value,
    /// The partition updated (a sports day), at most 250 characters.
    pub partition_key: Option<String>,
    /// Airflow's per-event access control: BetFlow checks the caller's
    /// role instead, so it must be left out or null.
    #[schema(value_type = Option<Object>)]
    pub access_control: Option<Value>,
}

/// Record that an asset was updated outside BetFlow's tasks (operator or
/// admin): DAGs scheduled on it count the update like a task's.
#[utoipa::path(
    operation_id = "create_asset_event",
    post,
    path = "/assets/events",
    tag = "Asset",
    request_body = CreateAssetEventsBody,
    responses(
        (status = 200, description = "The event recorded", body = AssetEventResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such asset", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A malformed body", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn create_event(
    State(state): State<AppState>,
    user: ApiUser,
    body: Result<ApiJson<CreateAssetEventsBody>, Problem>,
) -> Result<Json<AssetEventResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let extra = match body.extra {
        Value::Null => Value::Object(Default::default()),
        Value::Object(m) => Value::Object(m),
        _ => return Err(Problem::unprocessable("extra must be a JSON object")),
    };
    if body.access_control.is_some_and(|a| !a.is_null()) {
        return Err(Problem::unprocessable(
            "access_control is not supported: writes need the operator role",
        ));
    }
    let partition = body.partition_key.unwrap_or_default();
    if partition.chars().count() > 250 || partition.chars().any(char::is_control) {
        return Err(Problem::unprocessable(
            "partition_key must be at most 250 characters, none of them control characters",
        ));
    }
    let event = state
        .store
        .create_asset_event(body.asset_id, &partition, &extra, &user.0.username)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no asset with id {}", body.asset_id)))?;
    user.audit(
        &state.db,
        Action {
            event: "create_asset_event",
            extra: serde_json::json!({ "asset_id": event.asset_id, "uri": event.uri, "event_id": event.id }),
            ..Action::default()
        },
    )
    .await;
    Ok(Json(event.into()))
}

/// The events that triggered a run (empty for runs not triggered by assets).
#[utoipa::path(
    operation_id = "get_upstream_asset_events",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/upstreamAssetEvents",
    tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path)),
    responses(
        (status = 200, description = "The run's triggering events", body = AssetEventCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG or run", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn upstream_events(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
) -> Result<Json<AssetEventCollectionResponse>, Problem> {
    dag_row(&state, &dag_id).await?;
    let rows = state
        .store
        .run_asset_events(&dag_id, &run_id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("DAG `{dag_id}` has no run `{run_id}`")))?;
    Ok(Json(AssetEventCollectionResponse {
        total_entries: rows.len() as i64,
        asset_events: rows.into_iter().map(AssetEventResponse::from).collect(),
    }))
}

/// The updates a DAG scheduled on assets has seen but not run on yet.
#[utoipa::path(
    operation_id = "get_dag_asset_queued_events",
    get,
    path = "/dags/{dag_id}/assets/queuedEvents",
    tag = "Asset",
    params(("dag_id" = String, Path)),
    responses(
        (status = 200, description = "The DAG's queued events", body = QueuedEventCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn queued_events(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<Json<QueuedEventCollectionResponse>, Problem> {
    dag_row(&state, &dag_id).await?;
    let rows = state.store.queued_asset_events(Some(&dag_id)).await?;
    Ok(Json(QueuedEventCollectionResponse {
        total_entries: rows.len() as i64,
        queued_events: rows.into_iter().map(QueuedEventResponse::from).collect(),
    }))
}

/// Forget a DAG's queued updates (operator or admin): it then waits for
/// new ones.
#[utoipa::path(
    operation_id = "delete_dag_asset_queued_events",
    delete,
    path = "/dags/{dag_id}/assets/queuedEvents",
    tag = "Asset",
    params(("dag_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn delete_queued_events(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    user.require(Role::Operator)?;
    dag_row(&state, &dag_id).await?;
    let deleted = state
        .store
        .delete_queued_asset_events(&dag_id, None)
        .await?;
    user.audit(
        &state.db,
        Action {
            event: "delete_queued_asset_events",
            dag_id: Some(&dag_id),
            extra: serde_json::json!({ "deleted": deleted }),
            ..Action::default()
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// BetFlow has no asset aliases: always empty.
#[utoipa::path(
    operation_id = "get_asset_aliases",
    get,
    path = "/assets/aliases",
    tag = "Asset",
    responses(
        (status = 200, description = "No aliases", body = AssetAliasCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn aliases(_user: ApiUser) -> Json<AssetAliasCollectionResponse> {
    Json(AssetAliasCollectionResponse {
        asset_aliases: Vec::new(),
        total_entries: 0,
    })
}

/// Always 404: BetFlow has no asset aliases.
#[utoipa::path(
    operation_id = "get_asset_alias",
    get,
    path = "/assets/aliases/{asset_alias_id}",
    tag = "Asset",
    params(("asset_alias_id" = i64, Path)),
    responses(
        (status = 404, description = "BetFlow has no asset aliases", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn alias(_user: ApiUser, ApiPath(id): ApiPath<String>) -> Problem {
    Problem::not_found(format!(
        "no asset alias `{id}`: BetFlow names assets by URI and has no aliases"
    ))
}
