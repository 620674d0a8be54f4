//! `/dagStats`, `/pools` and `/jobs`: run counts per state, pool slots and
//! the engine processes, in Airflow 3's shapes.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::{PoolRow, ProcessRow};
use orchestrator::RunState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::Page;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct DagStatsStateResponse {
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagStatsResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    /// Every run state, zero included, as Airflow lists them.
    pub stats: Vec<DagStatsStateResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagStatsCollectionResponse {
    pub dags: Vec<DagStatsResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagStatsQuery {
    /// Repeat to give several; none: every DAG with runs.
    #[serde(default)]
    pub dag_ids: Vec<String>,
}

const RUN_STATES: [RunState; 4] = [
    RunState::Queued,
    RunState::Running,
    RunState::Success,
    RunState::Failed,
];

/// Runs per state of each DAG.
#[utoipa::path(
    operation_id = "get_dag_stats",
    get,
    path = "/dagStats",
    tag = "DagStats",
    params(DagStatsQuery),
    responses(
        (status = 200, description = "Run counts per DAG and state", body = DagStatsCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn dag_stats(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(q): ApiQuery<DagStatsQuery>,
) -> Result<Json<DagStatsCollectionResponse>, Problem> {
    let ids: Option<&[String]> = (!q.dag_ids.is_empty()).then_some(q.dag_ids.as_slice());
    let rows = state.store.run_counts_per_dag(ids).await?;
    let mut dag_ids: Vec<String> = match ids {
        Some(ids) => ids.to_vec(),
        None => rows.iter().map(|r| r.dag_id.clone()).collect(),
    };
    dag_ids.sort();
    dag_ids.dedup();
    let dags: Vec<DagStatsResponse> = dag_ids
        .into_iter()
        .map(|dag_id| DagStatsResponse {
            stats: RUN_STATES
                .iter()
                .map(|s| DagStatsStateResponse {
                    state: s.as_str().to_owned(),
                    count: rows
                        .iter()
                        .filter(|r| r.dag_id == dag_id && r.state == *s)
                        .map(|r| r.count)
                        .sum(),
                })
                .collect(),
            dag_display_name: dag_id.clone(),
            dag_id,
        })
        .collect();
    Ok(Json(DagStatsCollectionResponse {
        total_entries: dags.len() as i64,
        dags,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolResponse {
    pub name: String,
    pub slots: i32,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub open_slots: i64,
    /// BetFlow has no deferrable tasks.
    pub deferred_slots: i64,
    pub team_name: Option<String>,
}

impl From<PoolRow> for PoolResponse {
    fn from(p: PoolRow) -> Self {
        let occupied = p.running_slots + p.queued_slots;
        Self {
            open_slots: (i64::from(p.slots) - occupied).max(0),
            occupied_slots: occupied,
            running_slots: p.running_slots,
            queued_slots: p.queued_slots,
            scheduled_slots: p.scheduled_slots,
            description: Some(p.description).filter(|d| !d.is_empty()),
            include_deferred: false,
            deferred_slots: 0,
            team_name: None,
            slots: p.slots,
            name: p.name,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoolCollectionResponse {
    pub pools: Vec<PoolResponse>,
    pub total_entries: i64,
}

/// Every pool: slots declared by the DAGs, and what their tasks take.
#[utoipa::path(
    operation_id = "get_pools",
    get,
    path = "/pools",
    tag = "Pool",
    responses(
        (status = 200, description = "The pools", body = PoolCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn pools(
    State(state): State<AppState>,
    _user: ApiUser,
) -> Result<Json<PoolCollectionResponse>, Problem> {
    let pools: Vec<PoolResponse> = state
        .store
        .pools()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(PoolCollectionResponse {
        total_entries: pools.len() as i64,
        pools,
    }))
}

/// One pool.
#[utoipa::path(
    operation_id = "get_pool",
    get,
    path = "/pools/{pool_name}",
    tag = "Pool",
    params(("pool_name" = String, Path)),
    responses(
        (status = 200, description = "The pool", body = PoolResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such pool", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn pool(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PoolResponse>, Problem> {
    state
        .store
        .pools()
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| Json(p.into()))
        .ok_or_else(|| Problem::not_found(format!("no pool `{name}`")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub id: i64,
    pub dag_id: Option<String>,
    pub dag_display_name: Option<String>,
    /// `running` while it heartbeats, `success` once stopped cleanly,
    /// `failed` when its heartbeat went stale without a stop.
    pub state: String,
    /// `SchedulerJob`: each BetFlow engine schedules and executes.
    pub job_type: String,
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    pub latest_heartbeat: DateTime<Utc>,
    pub executor_class: Option<String>,
    pub hostname: String,
    /// The engine's worker id (host, pid and a nonce).
    pub unixname: String,
}

fn job(w: ProcessRow) -> JobResponse {
    let stale = Utc::now() - w.heartbeat_at > chrono::Duration::seconds(60);
    let state = match (w.stopped_at, stale) {
        (Some(_), _) => "success",
        (None, true) => "failed",
        (None, false) => "running",
    };
    JobResponse {
        id: w.id,
        dag_id: None,
        dag_display_name: None,
        state: state.to_owned(),
        job_type: "SchedulerJob".to_owned(),
        start_date: w.started_at,
        end_date: w.stopped_at,
        latest_heartbeat: w.heartbeat_at,
        executor_class: Some("betflow".to_owned()),
        hostname: w.hostname,
        unixname: w.worker_id,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobCollectionResponse {
    pub jobs: Vec<JobResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The processes that ran BetFlow's engine against this database.
#[utoipa::path(
    operation_id = "get_jobs",
    get,
    path = "/jobs",
    tag = "Job",
    params(JobQuery),
    responses(
        (status = 200, description = "Engine processes, newest first", body = JobCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn jobs(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> Result<Json<JobCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    let (rows, total) = state.store.processes(page.limit, page.offset).await?;
    Ok(Json(JobCollectionResponse {
        jobs: rows.into_iter().map(job).collect(),
        total_entries: total,
    }))
}
