//! `PATCH …/taskInstances/{task_id}` and its `dry_run`: setting a task
//! instance's state by hand (Airflow's "mark success/failed/skipped"),
//! optionally with its upstream or downstream tasks and the same tasks in
//! earlier or later runs, and its note. Running instances are never
//! changed; the scheduler then carries the runs on from the new states.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use orchestrator::store::TaskInstancePageFilter;
use orchestrator::TaskState;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::dag_runs::{checked_note, run_row};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::task_instances::{task_instance_response, TaskInstanceCollectionResponse};
use crate::audit::Action;
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = PatchTaskInstanceBody)]
pub struct PatchTaskInstanceBody {
    /// `success`, `failed` or `skipped`.
    pub new_state: Option<String>,
    /// At most 1,000 characters; null clears it.
    pub note: Option<String>,
    #[serde(default)]
    pub include_upstream: bool,
    #[serde(default)]
    pub include_downstream: bool,
    /// The same tasks in the DAG's earlier runs.
    #[serde(default)]
    pub include_past: bool,
    /// The same tasks in the DAG's later runs.
    #[serde(default)]
    pub include_future: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatchQuery {
    /// The body's fields to apply (`new_state`, `note`); default: those given.
    #[serde(default)]
    pub update_mask: Vec<String>,
    /// Only -1 exists: BetFlow does not map tasks.
    pub map_index: Option<i32>,
}

/// What a patch reaches: the runs and the tasks, and the state to set.
struct Targets {
    run_ids: Vec<String>,
    task_ids: Vec<String>,
    new_state: Option<TaskState>,
}

async fn targets(
    state: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    q: &PatchQuery,
    body: &PatchTaskInstanceBody,
) -> Result<Targets, Problem> {
    if let Some(bad) = q
        .update_mask
        .iter()
        .find(|f| !matches!(f.as_str(), "new_state" | "note"))
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("only `new_state` and `note` can be updated, not `{bad}`"),
        ));
    }
    if q.map_index.is_some_and(|m| m != -1) {
        return Err(Problem::not_found(
            "BetFlow does not map tasks: every task instance has map_index -1",
        ));
    }
    let dag = super::dags::dag_def(state, dag_id)?;
    if dag.task(task_id).is_none() {
        return Err(Problem::not_found(format!(
            "DAG `{dag_id}` has no task `{task_id}`"
        )));
    }
    run_row(state, dag_id, run_id).await?;
    let wants = |f: &str| q.update_mask.is_empty() || q.update_mask.iter().any(|m| m == f);
    let asked: Option<&str> = body.new_state.as_deref().filter(|_| wants("new_state"));
    let new_state: Option<TaskState> = asked.map(settable_state).transpose()?;
    let mut task_ids: Vec<String> = vec![task_id.to_owned()];
    if body.include_upstream {
        task_ids.extend(dag.upstream_closure(task_id));
    }
    if body.include_downstream {
        task_ids.extend(dag.downstream_closure(task_id));
    }
    task_ids.sort();
    task_ids.dedup();
    let run_ids = state
        .store
        .runs_around(dag_id, run_id, body.include_past, body.include_future)
        .await?;
    Ok(Targets {
        run_ids,
        task_ids,
        new_state,
    })
}

/// A state a task instance may be set to by hand: Airflow's three.
fn settable_state(s: &str) -> Result<TaskState, Problem> {
    match s.parse::<TaskState>() {
        Ok(t @ (TaskState::Success | TaskState::Failed | TaskState::Skipped)) => Ok(t),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("a task instance can be set to `success`, `failed` or `skipped`, not `{s}`"),
        )),
    }
}

/// The task instances of `t`, as the API shows them.
/// The most task instances a patch lists among those it reached.
const REACHED_LISTED: i64 = 10_000;

async fn instances(
    state: &AppState,
    dag_id: &str,
    t: &Targets,
) -> Result<TaskInstanceCollectionResponse, Problem> {
    let (rows, total) = state
        .store
        .list_task_instances_page(&TaskInstancePageFilter {
            dag_id: Some(dag_id.to_owned()),
            run_ids: t.run_ids.clone(),
            task_ids: t.task_ids.clone(),
            // Mapped tasks have several instances per run: the total says
            // how many there are past this many.
            limit: REACHED_LISTED,
            ..TaskInstancePageFilter::default()
        })
        .await?;
    Ok(TaskInstanceCollectionResponse {
        task_instances: rows
            .into_iter()
            .map(|r| task_instance_response(r, &state.bag))
            .collect(),
        total_entries: total,
    })
}

/// Set a task instance's state (with its upstream, downstream, past or
/// future instances) or note (operator or admin). Answers the instances
/// reached, after the change.
#[utoipa::path(
    operation_id = "patch_task_instance",
    patch,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "TaskInstance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), PatchQuery),
    request_body = PatchTaskInstanceBody,
    responses(
        (status = 200, description = "The task instances reached", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state or field that cannot be set", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn patch(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<PatchQuery>,
    body: Result<ApiJson<PatchTaskInstanceBody>, Problem>,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let t = targets(&state, &dag_id, &run_id, &task_id, &q, &body).await?;
    let note_asked = q.update_mask.iter().any(|f| f == "note")
        || (q.update_mask.is_empty() && body.note.is_some());
    if note_asked {
        let note = checked_note(body.note.as_deref())?;
        if !state
            .store
            .set_task_instance_note(&dag_id, &run_id, &task_id, note)
            .await?
        {
            return Err(Problem::not_found(format!(
                "run `{run_id}` has no instance of task `{task_id}` yet"
            )));
        }
    }
    if let Some(new_state) = t.new_state {
        let changed = state
            .store
            .mark_task_instances(&dag_id, &t.run_ids, &t.task_ids, new_state)
            .await?;
        tracing::info!(user = %user.0.username, dag_id, run_id, task_id, state = %new_state.as_str(), changed = changed.len(), "task instances set by hand");
        user.audit(
            &state.db,
            Action {
                event: "mark_task",
                dag_id: Some(&dag_id),
                run_id: Some(&run_id),
                task_id: Some(&task_id),
                extra: serde_json::json!({
                    "state": new_state.as_str(),
                    "changed": changed
                        .iter()
                        .map(|(r, t)| format!("{r}/{t}"))
                        .collect::<Vec<_>>(),
                }),
            },
        )
        .await;
    }
    Ok(Json(instances(&state, &dag_id, &t).await?))
}

/// The task instances a patch would reach; changes nothing.
#[utoipa::path(
    operation_id = "patch_task_instance_dry_run",
    patch,
    path = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run",
    tag = "TaskInstance",
    params(("dag_id" = String, Path), ("dag_run_id" = String, Path), ("task_id" = String, Path), PatchQuery),
    request_body = PatchTaskInstanceBody,
    responses(
        (status = 200, description = "The task instances it would reach", body = TaskInstanceCollectionResponse),
        (status = 400, description = "A state or field that cannot be set", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn dry_run(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<PatchQuery>,
    body: Result<ApiJson<PatchTaskInstanceBody>, Problem>,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let t = targets(&state, &dag_id, &run_id, &task_id, &q, &body).await?;
    Ok(Json(instances(&state, &dag_id, &t).await?))
}
