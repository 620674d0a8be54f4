//! `/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances`: list and get task
//! instances and read a try's log, in the shapes of Airflow 3's
//! `TaskInstanceResponse` and `TaskInstancesLogResponse`.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::dag::TaskKind;
use orchestrator::store::{TaskInstanceDetailRow, TaskInstancePageFilter, TaskInstanceSort};
use orchestrator::{DagBag, TaskState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::dag_runs::{run_after, run_row};
use super::dags::dag_row;
use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::{batch_request, no_cursor, parse_order, Page};
use super::ALL;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;
use crate::AppState;

/// One task instance. Airflow's executor, queue, trigger and rendering
/// fields have no counterpart here and are null.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TaskInstanceResponse)]
pub struct TaskInstanceResponse {
    /// Stable per (DAG, run, task, map index): a hash of them, since rows have no id of their own.
    #[schema(format = "uuid")]
    pub id: String,
    pub task_id: String,
    pub task_display_name: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub dag_run_id: String,
    /// -1: BetFlow does not map tasks.
    pub map_index: i32,
    pub rendered_map_index: Option<String>,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    /// Airflow's task states; null is "no status yet".
    pub state: Option<String>,
    /// Tries started so far.
    pub try_number: i32,
    /// The try number after which no retry follows.
    pub max_tries: i32,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: i32,
    pub queue: Option<String>,
    pub priority_weight: Option<i32>,
    /// `Task` or `Sensor` (the orchestrator trait it implements); null for stale DAGs.
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i32>,
    pub executor: Option<String>,
    /// Always `{}`: BetFlow has no per-task executor config.
    pub executor_config: String,
    pub note: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub rendered_fields: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub trigger: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub triggerer_job: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub dag_version: Option<Value>,
}

/// A UUID-formatted id derived from the task instance's key, so clients
/// that require `id` get one that stays the same across requests.
fn task_instance_id(dag_id: &str, run_id: &str, task_id: &str, map_index: i32) -> String {
    let mut hash = Sha256::new();
    for part in [dag_id, run_id, task_id] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    hash.update(map_index.to_be_bytes());
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&hash.finalize()[..16]);
    // RFC 9562 version 8 (custom), variant 10.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn task_instance_response(row: TaskInstanceDetailRow, bag: &DagBag) -> TaskInstanceResponse {
    let ti = row.ti;
    let operator = bag
        .get(&ti.dag_id)
        .and_then(|d| d.task(&ti.task_id))
        .map(|t| match t.kind {
            TaskKind::Operator(_) => "Task".to_owned(),
            TaskKind::Sensor { .. } => "Sensor".to_owned(),
        });
    TaskInstanceResponse {
        id: task_instance_id(&ti.dag_id, &ti.run_id, &ti.task_id, ti.map_index),
        task_display_name: ti.task_id.clone(),
        dag_display_name: ti.dag_id.clone(),
        map_index: ti.map_index,
        rendered_map_index: None,
        logical_date: Some(row.logical_date),
        run_after: run_after(&row.run_type, row.run_queued_at, row.data_interval_end),
        start_date: ti.start_date,
        end_date: ti.end_date,
        duration: ti.duration,
        state: Some(ti.state)
            .filter(|s| *s != TaskState::None)
            .map(|s| s.as_str().to_owned()),
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        hostname: ti.hostname,
        unixname: None,
        pool: ti.pool,
        pool_slots: row.pool_slots,
        queue: None,
        priority_weight: Some(row.priority_weight),
        operator_name: operator.clone(),
        operator,
        queued_when: ti.queued_at,
        scheduled_when: None,
        pid: None,
        executor: None,
        executor_config: "{}".to_owned(),
        note: row.note.clone(),
        rendered_fields: None,
        trigger: None,
        triggerer_job: None,
        dag_version: None,
        task_id: ti.task_id,
        dag_id: ti.dag_id,
        dag_run_id: ti.run_id,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TaskInstanceCollectionResponse)]
pub struct TaskInstanceCollectionResponse {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskInstanceListQuery {
    /// Page size; default 50, at most 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub task_id: Option<String>,
    /// Task states to keep (`none` or `no_status` for no status yet); repeat to give several.
    #[serde(default)]
    pub state: Vec<String>,
    /// Prefix `-` to reverse.
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Refused: only `limit`/`offset` paging is supported.
    pub cursor: Option<String>,
}

const TI_ORDER: &[(&str, TaskInstanceSort)] = &[
    ("dag_id", TaskInstanceSort::DagId),
    ("run_id", TaskInstanceSort::RunId),
    ("dag_run_id", TaskInstanceSort::RunId),
    ("task_id", TaskInstanceSort::TaskId),
    ("state", TaskInstanceSort::State),
    ("try_number", TaskInstanceSort::TryNumber),
    ("start_date", TaskInstanceSort::StartDate),
    ("end_date", TaskInstanceSort::EndDate),
    ("duration", TaskInstanceSort::Duration),
    ("logical_date", TaskInstanceSort::LogicalDate),
];

/// Task-state filter values; Airflow spells "no status" `no_status` or `none`.
fn state_filter(states: Vec<String>) -> Result<Vec<TaskState>, Problem> {
    states
        .into_iter()
        .map(|s| match s.as_str() {
            "no_status" => Ok(TaskState::None),
            _ => s
                .parse::<TaskState>()
                .map_err(|e| Problem::unprocessable(e.to_string())),
        })
        .collect()
}

/// List task instances of a run; `~` for the run (and the DAG) lists across them.
#[utoipa::path(
    operation_id = "get_task_instances",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
    tag = "TaskInstance",
    params(
        ("dag_id" = String, Path, description = "A DAG id, or `~` for all DAGs"),
        ("dag_run_id" = String, Path, description = "A run id, or `~` for all runs"),
        TaskInstanceListQuery,
    ),
    responses(
        (status = 200, description = "A page of task instances", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A request BetFlow cannot serve", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TaskInstanceListQuery>,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    no_cursor(q.cursor.as_deref())?;
    let states = state_filter(q.state)?;
    let order = parse_order(&q.order_by, TI_ORDER)?;
    let (dag_filter, run_filter) = match (dag_id == ALL, run_id == ALL) {
        (true, true) => (None, None),
        (true, false) => {
            return Err(Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "with `~` as the DAG id the run id must be `~` too",
            ))
        }
        (false, true) => {
            dag_row(&state, &dag_id).await?;
            (Some(dag_id), None)
        }
        (false, false) => {
            run_row(&state, &dag_id, &run_id).await?;
            (Some(dag_id), Some(run_id))
        }
    };
    let filter = TaskInstancePageFilter {
        dag_id: dag_filter,
        run_id: run_filter,
        task_id: q.task_id,
        states,
        order,
        limit: page.limit,
        offset: page.offset,
        ..Default::default()
    };
    page_of(&state, &filter).await
}

/// One page of task instances as the API answers it.
async fn page_of(
    state: &AppState,
    filter: &TaskInstancePageFilter,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    let (rows, total) = state.store.list_task_instances_page(filter).await?;
    Ok(collection(state, rows, total))
}

/// A page of task instances out of `total`, in Airflow's shapes.
fn collection(
    state: &AppState,
    rows: Vec<TaskInstanceDetailRow>,
    total: i64,
) -> Json<TaskInstanceCollectionResponse> {
    Json(TaskInstanceCollectionResponse {
        task_instances: rows
            .into_iter()
            .map(|r| task_instance_response(r, &state.bag))
            .collect(),
        total_entries: total,
    })
}

/// The task instance, or a 404 naming it.
pub(super) async fn detail_row(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
) -> Result<TaskInstanceDetailRow, Problem> {
    state
        .store
        .task_instance_detail(dag_id, run_id, task_id, -1)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "task instance `{task_id}` of run `{run_id}` of DAG `{dag_id}` not found"
            ))
        })
}

/// Get a task instance.
#[utoipa::path(
    operation_id = "get_task_instance",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "TaskInstance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path)),
    responses(
        (status = 200, description = "The task instance", body = TaskInstanceResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
) -> Result<Json<TaskInstanceResponse>, Problem> {
    let row = detail_row(&state, &dag_id, &run_id, &task_id).await?;
    Ok(Json(task_instance_response(row, &state.bag)))
}

/// List the instances of a mapped task (Airflow's `get_mapped_task_instances`).
#[utoipa::path(
    operation_id = "get_mapped_task_instances",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/listMapped",
    tag = "TaskInstance",
    params(
        ("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path),
        MappedListQuery,
    ),
    responses(
        (status = 200, description = "A page of the task's mapped instances", body = TaskInstanceCollectionResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or mapped task", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path or query parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list_mapped(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<MappedListQuery>,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    let page = Page::new(q.limit, q.offset)?;
    run_row(&state, &dag_id, &run_id).await?;
    let (rows, total) = state
        .store
        .mapped_instance_details((&dag_id, &run_id, &task_id), page.limit, page.offset)
        .await?;
    let mapped_in_dag: bool = state
        .bag
        .get(&dag_id)
        .and_then(|d| d.task(&task_id))
        .is_some_and(|t| t.map.is_some());
    if total == 0 && !mapped_in_dag {
        return Err(Problem::not_found(format!(
            "task `{task_id}` of run `{run_id}` of DAG `{dag_id}` has no mapped instances"
        )));
    }
    Ok(collection(&state, rows, total))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MappedListQuery {
    /// Page size; default 50, at most 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Get one instance of a mapped task.
#[utoipa::path(
    operation_id = "get_mapped_task_instance",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}",
    tag = "TaskInstance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), ("map_index" = i32, Path)),
    responses(
        (status = 200, description = "The task instance", body = TaskInstanceResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get_mapped(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id, task_id, map_index)): ApiPath<(String, String, String, i32)>,
) -> Result<Json<TaskInstanceResponse>, Problem> {
    let row = state
        .store
        .task_instance_detail(&dag_id, &run_id, &task_id, map_index)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "task instance `{task_id}` [{map_index}] of run `{run_id}` of DAG `{dag_id}` not found"
            ))
        })?;
    Ok(Json(task_instance_response(row, &state.bag)))
}

/// One log line, as Airflow 3's structured logs give it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StructuredLogMessage)]
pub struct StructuredLogMessage {
    pub timestamp: Option<DateTime<Utc>>,
    /// The message.
    pub event: String,
    /// `info`, `warning` or `error`.
    pub level: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TaskInstancesLogResponse)]
pub struct TaskInstancesLogResponse {
    pub content: Vec<StructuredLogMessage>,
    /// Pass as `token` for the lines after these; null at the end of the log.
    pub continuation_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Larger pages: up to 50,000 lines per response instead of 5,000.
    pub full_content: Option<bool>,
    /// Which instance of a mapped task; -1 (the default) for an unmapped one.
    pub map_index: Option<i32>,
    /// The `continuation_token` of the previous page.
    pub token: Option<String>,
}

/// Lines per log response, and with `full_content=true`: a log of any
/// length is sent in pages, so one request never holds it all in memory.
pub const LOG_PAGE_LINES: i64 = 5_000;
pub const FULL_LOG_PAGE_LINES: i64 = 50_000;

/// The opaque token for the lines after log line `id`.
fn log_token(id: i64) -> String {
    format!("l{id:x}")
}

/// The line id a token continues after; 400 for anything else.
fn parse_log_token(token: &str) -> Result<i64, Problem> {
    token
        .strip_prefix('l')
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid continuation token: pass the continuation_token of the previous page",
            )
        })
}

/// Whether the caller asked for newline-delimited JSON rather than one JSON document.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    accept.contains("application/x-ndjson") && !accept.contains("application/json")
}

/// The log of one try of a task instance: JSON by default, or one JSON
/// line per log line with `Accept: application/x-ndjson`.
#[utoipa::path(
    operation_id = "get_log",
    get,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
    tag = "TaskInstance",
    params(
        ("dag_id" = String, Path),
        ("dag_run_id" = String, Path),
        ("task_id" = String, Path),
        ("try_number" = i32, Path, minimum = 0),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The try's log lines", content(
            (TaskInstancesLogResponse = "application/json"),
            (StructuredLogMessage = "application/x-ndjson"),
        )),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such task instance, map index or try", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn log(
    State(state): State<AppState>,
    _user: ApiUser,
    headers: HeaderMap,
    ApiPath((dag_id, run_id, task_id, try_number)): ApiPath<(String, String, String, i32)>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response, Problem> {
    if try_number < 0 {
        return Err(Problem::unprocessable("try_number must be 0 or more"));
    }
    let map_index: i32 = q.map_index.unwrap_or(-1);
    let row = state
        .store
        .task_instance_detail(&dag_id, &run_id, &task_id, map_index)
        .await?
        .ok_or_else(|| {
            Problem::not_found(if map_index == -1 {
                format!("task instance `{task_id}` of run `{run_id}` of DAG `{dag_id}` not found")
            } else {
                format!("task `{task_id}` of run `{run_id}` has no map index {map_index}")
            })
        })?;
    // Try 0 is Airflow's "not started yet": it has no log either.
    if try_number == 0 || try_number > row.ti.try_number {
        return Err(Problem::not_found(format!(
            "task instance `{task_id}` of run `{run_id}` has had {} tries, not {try_number}",
            row.ti.try_number
        )));
    }
    let after = match q.token.as_deref() {
        Some(t) => parse_log_token(t)?,
        None => 0,
    };
    let limit = if q.full_content == Some(true) {
        FULL_LOG_PAGE_LINES
    } else {
        LOG_PAGE_LINES
    };
    // One line more than a page says whether another page follows.
    let mut rows = state
        .store
        .task_log_page(
            &dag_id,
            &run_id,
            (&task_id, map_index),
            try_number,
            after,
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let continuation_token = match rows.last() {
        Some(last) if more => Some(log_token(last.id)),
        _ => None,
    };
    let lines: Vec<StructuredLogMessage> = rows
        .into_iter()
        .map(|l| StructuredLogMessage {
            timestamp: Some(l.ts),
            event: l.message,
            level: l.level.to_lowercase(),
        })
        .collect();
    if wants_ndjson(&headers) {
        let mut body = String::new();
        for line in &lines {
            body.push_str(&serde_json::to_string(line).map_err(Problem::internal)?);
            body.push('\n');
        }
        let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
        // NDJSON has no envelope: the next page's token is a header.
        if let Some(token) = continuation_token.and_then(|t| t.parse().ok()) {
            response.headers_mut().insert("x-continuation-token", token);
        }
        return Ok(response);
    }
    Ok(Json(TaskInstancesLogResponse {
        content: lines,
        continuation_token,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_uuid_shaped_and_distinct() {
        let a = task_instance_id("d", "r", "t", -1);
        assert_eq!(a, task_instance_id("d", "r", "t", -1));
        assert_ne!(a, task_instance_id("d", "r", "t2", -1));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            task_instance_id("ab", "c", "t", -1),
            task_instance_id("a", "bc", "t", -1)
        );
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "8", "version 8");
    }

    #[test]
    fn no_status_is_stored_as_none() {
        assert_eq!(
            state_filter(vec!["no_status".into(), "failed".into()]).unwrap(),
            vec![TaskState::None, TaskState::Failed]
        );
        assert_eq!(state_filter(vec!["bogus".into()]).unwrap_err().status, 422);
    }

    #[test]
    fn log_tokens_round_trip_and_others_are_refused() {
        assert_eq!(parse_log_token(&log_token(0)).unwrap(), 0);
        assert_eq!(
            parse_log_token(&log_token(123_456_789)).unwrap(),
            123_456_789
        );
        for bad in ["", "l", "x10", "l-1", "lzz", "l8000000000000000"] {
            assert_eq!(parse_log_token(bad).unwrap_err().status, 400, "{bad:?}");
        }
    }

    #[test]
    fn ndjson_only_when_asked_for_without_json() {
        let mut h = HeaderMap::new();
        assert!(!wants_ndjson(&h));
        h.insert(header::ACCEPT, "application/x-ndjson".parse().unwrap());
        assert!(wants_ndjson(&h));
        h.insert(
            header::ACCEPT,
            "application/json, application/x-ndjson".parse().unwrap(),
        );
        assert!(!wants_ndjson(&h));
    }
}

/// `POST /dags/~/dagRuns/~/taskInstances/list`: Airflow's batch task-instance
/// list, its filters in the body; filters BetFlow does not have are refused
/// with a 400 rather than ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TaskInstancesBatchBody)]
pub struct TaskInstancesBatchBody {
    pub dag_ids: Option<Vec<String>>,
    pub dag_run_ids: Option<Vec<String>>,
    pub task_ids: Option<Vec<String>>,
    pub state: Option<Vec<Option<String>>>,
    pub pool: Option<Vec<String>>,
    pub start_date_gte: Option<DateTime<Utc>>,
    pub start_date_lte: Option<DateTime<Utc>>,
    pub end_date_gte: Option<DateTime<Utc>>,
    pub end_date_lte: Option<DateTime<Utc>>,
    pub order_by: Option<String>,
    pub page_offset: Option<i64>,
    pub page_limit: Option<i64>,
    /// The rest of Airflow's filters, refused when set.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub other: serde_json::Map<String, Value>,
}

/// Task instances of any DAGs and runs, filtered by the body.
#[utoipa::path(
    operation_id = "get_task_instances_batch",
    post,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list",
    tag = "TaskInstance",
    params(
        ("dag_id" = String, Path, description = "`~`: the DAGs are in the body"),
        ("dag_run_id" = String, Path, description = "`~`: the runs are in the body"),
    ),
    request_body = TaskInstancesBatchBody,
    responses(
        (status = 200, description = "A page of task instances", body = TaskInstanceCollectionResponse),
        (status = 400, description = "An unsupported filter or order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list_batch(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    body: Result<super::extract::ApiJson<TaskInstancesBatchBody>, Problem>,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    let super::extract::ApiJson(body) = body?;
    batch_request(
        &[&dag_id, &run_id],
        &body.other,
        "task instances",
        "/dags/~/dagRuns/~/taskInstances/list",
    )?;
    let page = Page::new(body.page_limit, body.page_offset)?;
    // A null state is Airflow's "no status".
    let states = state_filter(
        body.state
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.unwrap_or_else(|| "no_status".to_owned()))
            .collect(),
    )?;
    let order: Vec<String> = body.order_by.into_iter().collect();
    let filter = TaskInstancePageFilter {
        dag_ids: body.dag_ids.unwrap_or_default(),
        run_ids: body.dag_run_ids.unwrap_or_default(),
        task_ids: body.task_ids.unwrap_or_default(),
        pools: body.pool.unwrap_or_default(),
        states,
        start_date_gte: body.start_date_gte,
        start_date_lte: body.start_date_lte,
        end_date_gte: body.end_date_gte,
        end_date_lte: body.end_date_lte,
        order: parse_order(&order, TI_ORDER)?,
        limit: page.limit,
        offset: page.offset,
        ..Default::default()
    };
    page_of(&state, &filter).await
}
