//! `/dags/{dag_id}/dagRuns`: list, get, trigger, patch (state, note) and
//! delete runs, in the shape of
//! Airflow 3's `DAGRunResponse`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use orchestrator::schedule::DataInterval;
use orchestrator::store::write::{run_id_for, RunType};
use orchestrator::store::{RunPageFilter, RunRow, RunSort};
use orchestrator::RunState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dag_versions::DagVersionResponse;
use super::dags::dag_row;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::{batch_request, no_cursor, parse_order, Page};
use super::{parse_query_date, ALL};
use crate::audit::Action;
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

/// One DAG run; `dag_versions` holds the version it was created under
/// (empty for runs older than DAG versions).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DAGRunResponse)]
pub struct DagRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub dag_display_name: String,
    /// BetFlow runs always have one: the start of their data interval.
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Seconds from start to end, once the run has ended.
    pub duration: Option<f64>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    /// When the run became due: the end of the data interval for scheduled
    /// and backfill runs, the trigger time for manual ones.
    pub run_after: DateTime<Utc>,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    /// `timetable` or `backfill`; null for manual runs (CLI, UI and API are not told apart).
    pub triggered_by: Option<String>,
    pub triggering_user_name: Option<String>,
    #[schema(value_type = Object)]
    pub conf: Value,
    pub note: Option<String>,
    pub dag_versions: Vec<DagVersionResponse>,
    pub bundle_version: Option<String>,
    pub partition_key: Option<String>,
    pub partition_date: Option<DateTime<Utc>>,
}

/// When a run became due; see [`DagRunResponse::run_after`].
pub fn run_after(
    run_type: &str,
    queued_at: DateTime<Utc>,
    data_interval_end: DateTime<Utc>,
) -> DateTime<Utc> {
    if run_type == RunType::Manual.as_str() || run_type == "asset_triggered" {
        queued_at
    } else {
        data_interval_end
    }
}

impl From<RunRow> for DagRunResponse {
    fn from(r: RunRow) -> Self {
        let duration = match (r.start_date, r.end_date) {
            (Some(s), Some(e)) => Some((e - s).num_microseconds().unwrap_or(0) as f64 / 1e6),
            _ => None,
        };
        let triggered_by = match r.run_type.as_str() {
            "scheduled" => Some("timetable".to_owned()),
            "backfill" => Some("backfill".to_owned()),
            "asset_triggered" => Some("asset".to_owned()),
            _ => None,
        };
        Self {
            run_after: run_after(&r.run_type, r.queued_at, r.data_interval_end),
            dag_display_name: r.dag_id.clone(),
            dag_run_id: r.run_id,
            dag_id: r.dag_id,
            logical_date: Some(r.logical_date),
            queued_at: Some(r.queued_at),
            start_date: r.start_date,
            end_date: r.end_date,
            duration,
            data_interval_start: Some(r.data_interval_start),
            data_interval_end: Some(r.data_interval_end),
            last_scheduling_decision: None,
            run_type: r.run_type,
            state: r.state.as_str().to_owned(),
            triggered_by,
            triggering_user_name: None,
            conf: r.conf,
            note: r.note,
            dag_versions: Vec::new(),
            bundle_version: None,
            partition_key: r.partition_key,
            partition_date: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DAGRunCollectionResponse)]
pub struct DagRunCollectionResponse {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagRunListQuery {
    /// Page size; default 50, at most 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Run states to keep; repeat to give several.
    #[serde(default)]
    pub state: Vec<String>,
    /// Run types to keep; repeat to give several.
    #[serde(default)]
    pub run_type: Vec<String>,
    /// RFC 3339.
    pub logical_date_gte: Option<String>,
    /// RFC 3339.
    pub logical_date_lte: Option<String>,
    /// Default `id` (creation order); prefix `-` to reverse.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Refused: only `limit`/`offset` paging is supported.
    pub cursor: Option<String>,
}

const RUN_ORDER: &[(&str, RunSort)] = &[
    ("id", RunSort::Id),
    ("dag_id", RunSort::DagId),
    ("run_id", RunSort::RunId),
    ("dag_run_id", RunSort::RunId),
    ("state", RunSort::State),
    ("run_type", RunSort::RunType),
    ("logical_date", RunSort::LogicalDate),
    ("data_interval_start", RunSort::DataIntervalStart),
    ("data_interval_end", RunSort::DataIntervalEnd),
    ("queued_at", RunSort::QueuedAt),
    ("start_date", RunSort::StartDate),
    ("end_date", RunSort::EndDate),
    ("run_after", RunSort::RunAfter),
    ("duration", RunSort::Duration),
];

/// Airflow's run types; BetFlow creates `scheduled`, `manual`, `backfill`
/// and `asset_triggered`, the rest match nothing.
const RUN_TYPES: &[&str] = &[
    "scheduled",
    "manual",
    "backfill",
    "operator_triggered",
    "asset_triggered",
    "asset_materialization",
];

/// List runs of a DAG, or of every DAG with `~` as the DAG id.
#[utoipa::path(
    operation_id = "get_dag_runs",
    get,
    path = "/dags/{dag_id}/dagRuns",
    tag = "DagRun",
    params(("dag_id" = String, Path, description = "A DAG id, or `~` for all DAGs"), DagRunListQuery),
    responses(
        (status = 200, description = "A page of runs", body = DagRunCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DagRunListQuery>,
) -> Result<Json<DagRunCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    no_cursor(q.cursor.as_deref())?;
    let states = run_states(q.state.iter().cloned())?;
    if let Some(bad) = q.run_type.iter().find(|t| !RUN_TYPES.contains(&t.as_str())) {
        return Err(Problem::unprocessable(format!(
            "unknown run type `{bad}`: use {}",
            RUN_TYPES.join(", ")
        )));
    }
    let dag_filter = if dag_id == ALL {
        None
    } else {
        dag_row(&state, &dag_id).await?;
        Some(dag_id)
    };
    let filter = RunPageFilter {
        dag_id: dag_filter,
        states,
        run_types: q.run_type,
        logical_date_gte: parse_query_date("logical_date_gte", q.logical_date_gte.as_deref())?,
        logical_date_lte: parse_query_date("logical_date_lte", q.logical_date_lte.as_deref())?,
        order: parse_order(&q.order_by, RUN_ORDER)?,
        limit: page.limit,
        offset: page.offset,
        ..Default::default()
    };
    run_page(&state, &filter).await
}

/// The run, or a 404 naming it.
/// Run-state filter values; 422 naming the good ones otherwise.
fn run_states(states: impl Iterator<Item = String>) -> Result<Vec<RunState>, Problem> {
    states
        .map(|s| {
            s.parse::<RunState>().map_err(|e| {
                Problem::unprocessable(format!("{e}: use queued, running, success or failed"))
            })
        })
        .collect()
}

/// One page of runs as the API answers it, each with its DAG version.
async fn run_page(
    state: &AppState,
    filter: &RunPageFilter,
) -> Result<Json<DagRunCollectionResponse>, Problem> {
    let (rows, total) = state.store.list_runs_page(filter).await?;
    Ok(Json(DagRunCollectionResponse {
        dag_runs: with_versions(state, rows).await?,
        total_entries: total,
    }))
}

/// Responses for `rows`, each with the DAG version it was created under.
async fn with_versions(
    state: &AppState,
    rows: Vec<RunRow>,
) -> Result<Vec<DagRunResponse>, Problem> {
    let versions = state
        .store
        .versions_of_runs(&rows)
        .await
        .map_err(Problem::from)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let version = versions
                .iter()
                .find(|v| v.dag_id == r.dag_id && Some(v.version_number) == r.dag_version)
                .cloned();
            let mut response = DagRunResponse::from(r);
            response.dag_versions = version.map(DagVersionResponse::from).into_iter().collect();
            response
        })
        .collect())
}

/// One run's response, with its DAG version; a 404 naming it when absent.
async fn run_response(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
) -> Result<DagRunResponse, Problem> {
    let row = run_row(state, dag_id, run_id).await?;
    let mut responses = with_versions(state, vec![row]).await?;
    Ok(responses.remove(0))
}

pub async fn run_row(state: &AppState, dag_id: &str, run_id: &str) -> Result<RunRow, Problem> {
    state.store.run(dag_id, run_id).await?.ok_or_else(|| {
        Problem::not_found(format!("DAG run `{run_id}` of DAG `{dag_id}` not found"))
    })
}

/// Get a DAG run.
#[utoipa::path(
    operation_id = "get_dag_run",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}",
    tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path)),
    responses(
        (status = 200, description = "The run", body = DagRunResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
) -> Result<Json<DagRunResponse>, Problem> {
    Ok(Json(run_response(&state, &dag_id, &run_id).await?))
}

/// What `PATCH` may change on a run: its state (Airflow's mutable run
/// states) and its note.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DAGRunPatchBody)]
pub struct DagRunPatchBody {
    /// `success`, `failed` or `queued` (clears every task instance so the
    /// run starts over).
    pub state: Option<String>,
    /// At most 1,000 characters; null clears it.
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagRunPatchQuery {
    /// The body's fields to apply (`state`, `note`); default: those given.
    #[serde(default)]
    pub update_mask: Vec<String>,
}

/// Longest run note, as Airflow's.
const MAX_NOTE: usize = 1_000;

/// A run's or task instance's note as stored: trimmed, `None` when blank,
/// at most [`MAX_NOTE`] characters and without NUL (422 otherwise).
pub fn checked_note(note: Option<&str>) -> Result<Option<&str>, Problem> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(n) = note {
        let chars = n.chars().count();
        if chars > MAX_NOTE {
            return Err(Problem::unprocessable(format!(
                "note: {chars} characters, at most {MAX_NOTE}"
            )));
        }
        if n.contains('\0') {
            return Err(Problem::unprocessable("note: holds a NUL character"));
        }
    }
    Ok(note)
}

/// Change a run's state or note (operator or admin).
#[utoipa::path(
    operation_id = "patch_dag_run",
    patch,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}",
    tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), DagRunPatchQuery),
    request_body = DagRunPatchBody,
    responses(
        (status = 200, description = "The run after the change", body = DagRunResponse),
        (status = 400, description = "A state or field that cannot be set", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG or run", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn patch(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<DagRunPatchQuery>,
    body: Result<ApiJson<DagRunPatchBody>, Problem>,
) -> Result<Json<DagRunResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    if let Some(bad) = q
        .update_mask
        .iter()
        .find(|f| !matches!(f.as_str(), "state" | "note"))
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("only `state` and `note` can be updated, not `{bad}`"),
        ));
    }
    let wants = |field: &str| q.update_mask.is_empty() || q.update_mask.iter().any(|f| f == field);
    run_row(&state, &dag_id, &run_id).await?;
    if wants("note") && (body.note.is_some() || q.update_mask.iter().any(|f| f == "note")) {
        let note = checked_note(body.note.as_deref())?;
        state.store.set_run_note(&dag_id, &run_id, note).await?;
    }
    if let Some(new_state) = body.state.as_deref().filter(|_| wants("state")) {
        match new_state {
            "success" | "failed" => {
                state
                    .store
                    .mark_run(&dag_id, &run_id, new_state == "success")
                    .await?;
            }
            "queued" => {
                let dag = super::dags::dag_def(&state, &dag_id)?;
                let all: Vec<String> = dag.tasks().iter().map(|t| t.id.clone()).collect();
                state.store.clear_tasks(&dag, &run_id, &all).await?;
            }
            other => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("a run can be set to `success`, `failed` or `queued`, not `{other}`"),
                ))
            }
        }
        tracing::info!(user = %user.0.username, dag_id, run_id, state = new_state, "DAG run state set");
        user.audit(
            &state.db,
            Action {
                event: "set_run_state",
                dag_id: Some(&dag_id),
                run_id: Some(&run_id),
                extra: serde_json::json!({"state": new_state}),
                ..Action::default()
            },
        )
        .await;
    }
    Ok(Json(run_response(&state, &dag_id, &run_id).await?))
}

/// Delete a run with its task instances, tries, logs and outputs (operator or admin).
#[utoipa::path(
    operation_id = "delete_dag_run",
    delete,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}",
    tag = "DagRun",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG or run", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, Problem> {
    user.require(Role::Operator)?;
    if !state.store.delete_run(&dag_id, &run_id).await? {
        return Err(Problem::not_found(format!(
            "DAG run `{run_id}` of DAG `{dag_id}` not found"
        )));
    }
    tracing::info!(user = %user.0.username, dag_id, run_id, "DAG run deleted");
    user.audit(
        &state.db,
        Action {
            event: "delete_run",
            dag_id: Some(&dag_id),
            run_id: Some(&run_id),
            ..Action::default()
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A manual run to create. `logical_date` null or absent means now; a run
/// covers `[data_interval_start, data_interval_end)`, from the logical date
/// to the DAG's next cron tick unless both ends are given.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TriggerDAGRunPostBody)]
pub struct TriggerDagRunBody {
    /// Default `manual__<logical date>`; letters, digits and `_.~:+-`.
    pub dag_run_id: Option<String>,
    pub logical_date: Option<DateTime<Utc>>,
    /// With `data_interval_end`; must equal `logical_date` if both are given.
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    /// A JSON object merged over the DAG's params.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<Value>,
    /// Accepted for Airflow compatibility; BetFlow does not store run notes.
    #[expect(
        dead_code,
        reason = "part of Airflow's body schema; BetFlow has no notes"
    )]
    pub note: Option<String>,
}

/// Longest run id accepted, as in Airflow.
const MAX_RUN_ID_LEN: usize = 250;

/// Run ids appear in URLs and file names; keep to Airflow's default allowed pattern.
fn check_run_id(run_id: &str) -> Result<(), Problem> {
    let ok = !run_id.is_empty()
        && run_id.len() <= MAX_RUN_ID_LEN
        && run_id != ALL
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.~:+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Problem::unprocessable(format!(
            "invalid dag_run_id `{run_id}`: use 1-{MAX_RUN_ID_LEN} letters, digits and `_.~:+-`"
        )))
    }
}

/// The run's data interval from the body, with BetFlow's rule that the
/// logical date is the start of the data interval.
fn interval_for(
    body: &TriggerDagRunBody,
    manual_interval: impl Fn(DateTime<Utc>) -> DataInterval,
    now: DateTime<Utc>,
) -> Result<DataInterval, Problem> {
    match (body.data_interval_start, body.data_interval_end) {
        (None, None) => Ok(manual_interval(body.logical_date.unwrap_or(now))),
        (Some(start), Some(end)) => {
            if end < start {
                return Err(Problem::unprocessable(
                    "data_interval_end is before data_interval_start",
                ));
            }
            if body.logical_date.is_some_and(|d| d != start) {
                return Err(Problem::unprocessable(
                    "logical_date must equal data_interval_start: a BetFlow run's logical date is the start of its data interval",
                ));
            }
            Ok(DataInterval { start, end })
        }
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "give both data_interval_start and data_interval_end, or neither",
        )),
    }
}

/// Trigger a manual run (operator or admin). Answers 200 with the run, as Airflow 3 does.
#[utoipa::path(
    operation_id = "trigger_dag_run",
    post,
    path = "/dags/{dag_id}/dagRuns",
    tag = "DagRun",
    params(("dag_id" = String, Path)),
    request_body = TriggerDagRunBody,
    responses(
        (status = 200, description = "The run created", body = DagRunResponse),
        (status = 400, description = "Only one end of the data interval given", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "A run with this id or logical date exists", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn trigger(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
    body: Result<ApiJson<TriggerDagRunBody>, Problem>,
) -> Result<Json<DagRunResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let dag = super::dags::dag_def(&state, &dag_id)?;
    let conf = match &body.conf {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(Problem::unprocessable("conf must be a JSON object")),
    };
    // The database keeps microseconds; trim now to match so the id and the stored date agree.
    let now =
        DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now);
    let interval = interval_for(&body, |d| dag.schedule.manual_interval(d), now)?;
    let run_id = match &body.dag_run_id {
        Some(id) => {
            check_run_id(id)?;
            id.clone()
        }
        None if body.logical_date.is_some() || body.data_interval_start.is_some() => {
            run_id_for(RunType::Manual, interval.start)
        }
        // No date given: microseconds in the id, so two triggers in one second both succeed.
        None => format!(
            "{}__{}",
            RunType::Manual.as_str(),
            interval.start.to_rfc3339_opts(SecondsFormat::Micros, false)
        ),
    };
    let created = state
        .store
        .create_run_with_id(&dag, RunType::Manual, interval, &conf, &run_id)
        .await?;
    if created.is_none() {
        let detail = if state.store.run(&dag_id, &run_id).await?.is_some() {
            format!("DAG `{dag_id}` already has a run with id `{run_id}`")
        } else {
            format!(
                "DAG `{dag_id}` already has a run at logical date {}",
                interval.start.to_rfc3339()
            )
        };
        return Err(Problem::conflict(detail));
    }
    tracing::info!(user = %user.0.username, dag_id, run_id, "run triggered through the API");
    user.audit(
        &state.db,
        Action {
            event: "trigger",
            dag_id: Some(&dag_id),
            run_id: Some(&run_id),
            ..Action::default()
        },
    )
    .await;
    Ok(Json(run_response(&state, &dag_id, &run_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn body(logical: Option<&str>, start: Option<&str>, end: Option<&str>) -> TriggerDagRunBody {
        TriggerDagRunBody {
            dag_run_id: None,
            logical_date: logical.map(at),
            data_interval_start: start.map(at),
            data_interval_end: end.map(at),
            conf: None,
            note: None,
        }
    }

    fn daily(d: DateTime<Utc>) -> DataInterval {
        DataInterval {
            start: d,
            end: d + chrono::Duration::days(1),
        }
    }

    #[test]
    fn intervals_come_from_the_schedule_or_the_body() {
        let now = at("2024-05-01T10:00:00Z");
        assert_eq!(
            interval_for(&body(None, None, None), daily, now).unwrap(),
            daily(now)
        );
        let d = "2024-01-01T00:00:00Z";
        assert_eq!(
            interval_for(&body(Some(d), None, None), daily, now).unwrap(),
            daily(at(d))
        );
        let given = interval_for(
            &body(None, Some(d), Some("2024-01-03T00:00:00Z")),
            daily,
            now,
        )
        .unwrap();
        assert_eq!(given.end, at("2024-01-03T00:00:00Z"));
    }

    #[test]
    fn inconsistent_intervals_are_refused() {
        let now = at("2024-05-01T10:00:00Z");
        let d = "2024-01-01T00:00:00Z";
        let one_end = interval_for(&body(None, Some(d), None), daily, now).unwrap_err();
        assert_eq!(one_end.status, StatusCode::BAD_REQUEST);
        let backwards = interval_for(
            &body(None, Some(d), Some("2023-12-31T00:00:00Z")),
            daily,
            now,
        );
        assert_eq!(backwards.unwrap_err().status, 422);
        let moved = interval_for(
            &body(
                Some("2024-01-02T00:00:00Z"),
                Some(d),
                Some("2024-01-03T00:00:00Z"),
            ),
            daily,
            now,
        );
        assert_eq!(moved.unwrap_err().status, 422);
    }

    #[test]
    fn run_ids_keep_to_a_url_safe_alphabet() {
        assert!(check_run_id("manual__2024-01-01T00:00:00+00:00").is_ok());
        assert!(check_run_id("my_run.1").is_ok());
        for bad in ["", "~", "a/b", "a b", &"x".repeat(251)] {
            assert!(check_run_id(bad).is_err(), "{bad:?}");
        }
    }
}

/// `POST /dags/~/dagRuns/list`: Airflow's batch run list, its filters in
/// the body. Filters BetFlow does not have (`conf_contains`, durations,
/// `run_after`, strict `_gt`/`_lt` bounds) are refused with a 400 rather
/// than ignored, so a script never reads an unfiltered page as filtered.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DAGRunsBatchBody)]
pub struct DagRunsBatchBody {
    pub dag_ids: Option<Vec<String>>,
    pub states: Option<Vec<Option<String>>>,
    pub logical_date_gte: Option<DateTime<Utc>>,
    pub logical_date_lte: Option<DateTime<Utc>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    /// One attribute, `-` for descending.
    pub order_by: Option<String>,
    pub page_offset: Option<i64>,
    pub page_limit: Option<i64>,
    /// The rest of Airflow's filters, refused when set.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: serde_json::Map<String, Value>,
}

/// Runs of any DAGs, filtered by the body (Airflow's batch list).
#[utoipa::path(
    operation_id = "get_list_dag_runs_batch",
    post,
    path = "/dags/{dag_id}/dagRuns/list",
    tag = "DagRun",
    params(("dag_id" = String, Path, description = "`~`: the DAGs are in the body")),
    request_body = DagRunsBatchBody,
    responses(
        (status = 200, description = "A page of runs", body = DagRunCollectionResponse),
        (status = 400, description = "An unsupported filter or order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list_batch(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
    body: Result<ApiJson<DagRunsBatchBody>, Problem>,
) -> Result<Json<DagRunCollectionResponse>, Problem> {
    let ApiJson(body) = body?;
    batch_request(&[&dag_id], &body.other, "runs", "/dags/~/dagRuns/list")?;
    let page = Page::new(body.page_limit, body.page_offset)?;
    let states = run_states(body.states.unwrap_or_default().into_iter().flatten())?;
    let order: Vec<String> = body.order_by.into_iter().collect();
    let filter = RunPageFilter {
        dag_ids: body.dag_ids.unwrap_or_default(),
        states,
        logical_date_gte: body.logical_date_gte,
        logical_date_lte: body.logical_date_lte,
        start_date_gte: body.start_date_gte,
        start_date_lte: body.start_date_lte,
        end_date_gte: body.end_date_gte,
        end_date_lte: body.end_date_lte,
        order: parse_order(&order, RUN_ORDER)?,
        limit: page.limit,
        offset: page.offset,
        ..Default::default()
    };
    run_page(&state, &filter).await
}
