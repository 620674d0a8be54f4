//! `POST /dags/{dag_id}/clearTaskInstances`: reset task instances so the
//! scheduler runs them again, with Airflow 3's body and defaults (notably
//! `dry_run` and `only_failed` both default to true).
//!
//! Running task instances are never cleared: `Store::clear_tasks` leaves
//! them alone so a try in flight is not disowned, and a dry run reports
//! exactly what a real one would clear.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use orchestrator::store::{RunPageFilter, RunRow, TaskInstancePageFilter};
use orchestrator::{Dag, TaskState};
use serde::Deserialize;
use utoipa::ToSchema;

use super::dag_runs::run_row;
use super::extract::{ApiJson, ApiPath};
use super::openapi::ProblemDetails;
use super::task_instances::{task_instance_response, TaskInstanceCollectionResponse};
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

/// A task to clear: its id, or `[id, map_index]` as Airflow also accepts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ClearTaskId {
    Id(String),
    Mapped(String, i32),
}

impl ClearTaskId {
    fn task_id(&self) -> &str {
        match self {
            Self::Id(id) | Self::Mapped(id, _) => id,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ClearTaskInstancesBody)]
pub struct ClearTaskInstancesBody {
    /// Only report what would be cleared; default true, as in Airflow.
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Tasks to clear; default every task.
    pub task_ids: Option<Vec<ClearTaskId>>,
    /// Clear in this run only; otherwise in every run whose logical date is
    /// within `start_date`..`end_date`.
    pub dag_run_id: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// Only failed and upstream-failed task instances; default true.
    #[serde(default = "yes")]
    pub only_failed: bool,
    /// Refused: running task instances cannot be cleared in BetFlow.
    #[serde(default)]
    pub only_running: bool,
    #[serde(default)]
    pub include_upstream: bool,
    #[serde(default)]
    pub include_downstream: bool,
    /// With `dag_run_id`: also runs with a later logical date.
    #[serde(default)]
    pub include_future: bool,
    /// With `dag_run_id`: also runs with an earlier logical date.
    #[serde(default)]
    pub include_past: bool,
    /// Must be true (the default): a run with cleared tasks always goes back
    /// to running, since only running runs are scheduled.
    #[serde(default = "yes")]
    pub reset_dag_runs: bool,
    /// Accepted for Airflow compatibility; BetFlow does not store notes.
    #[expect(
        dead_code,
        reason = "part of Airflow's body schema; BetFlow has no notes"
    )]
    pub note: Option<String>,
}

/// Every task upstream of `task_id`, transitively, and itself.
fn upstream_closure(dag: &Dag, task_id: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![task_id.to_owned()];
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(t) = dag.task(&id) {
            stack.extend(t.upstream.iter().cloned());
        }
    }
    seen.into_iter().collect()
}

/// The task ids the body selects, with upstream/downstream tasks added. 400 for unknown ids.
fn selected_tasks(dag: &Dag, body: &ClearTaskInstancesBody) -> Result<BTreeSet<String>, Problem> {
    let Some(ids) = &body.task_ids else {
        return Ok(dag.tasks().iter().map(|t| t.id.clone()).collect());
    };
    let mut out = BTreeSet::new();
    for spec in ids {
        let id = spec.task_id();
        if dag.task(id).is_none() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("DAG `{}` has no task `{id}`", dag.id),
            ));
        }
        if let ClearTaskId::Mapped(_, m) = spec {
            if *m != -1 {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("task `{id}` has no map index {m}: BetFlow does not map tasks"),
                ));
            }
        }
        out.insert(id.to_owned());
        if body.include_downstream {
            out.extend(dag.downstream_closure(id));
        }
        if body.include_upstream {
            out.extend(upstream_closure(dag, id));
        }
    }
    Ok(out)
}

/// Whether a task instance in `state` is cleared under the body's filters.
fn clears_state(state: TaskState, only_failed: bool) -> bool {
    match state {
        TaskState::Running => false,
        TaskState::Failed | TaskState::UpstreamFailed => true,
        _ => !only_failed,
    }
}

/// Runs the body covers, oldest first.
async fn target_runs(
    state: &AppState,
    dag_id: &str,
    body: &ClearTaskInstancesBody,
) -> Result<Vec<RunRow>, Problem> {
    let (gte, lte) = match &body.dag_run_id {
        Some(run_id) => {
            let run = run_row(state, dag_id, run_id).await?;
            if !body.include_past && !body.include_future {
                return Ok(vec![run]);
            }
            (
                (!body.include_past).then_some(run.logical_date),
                (!body.include_future).then_some(run.logical_date),
            )
        }
        None => (body.start_date, body.end_date),
    };
    let filter = RunPageFilter {
        dag_id: Some(dag_id.to_owned()),
        logical_date_gte: gte,
        logical_date_lte: lte,
        order: vec![(orchestrator::store::RunSort::LogicalDate, false)],
        // One past the bound, to tell "at the bound" from "beyond it".
        limit: MAX_CLEAR_RUNS + 1,
        ..Default::default()
    };
    Ok(state.store.list_runs_page(&filter).await?.0)
}

/// Runs one clear may touch: a body without a run or a date range would
/// otherwise reset every run the DAG ever had.
const MAX_CLEAR_RUNS: i64 = 500;

/// Clear task instances (operator or admin); answers with the task
/// instances cleared, or with `dry_run` those that would be.
#[utoipa::path(
    operation_id = "post_clear_task_instances",
    post,
    path = "/dags/{dag_id}/clearTaskInstances",
    tag = "TaskInstance",
    params(("dag_id" = String, Path)),
    request_body = ClearTaskInstancesBody,
    responses(
        (status = 200, description = "The task instances cleared, or that a dry run would clear", body = TaskInstanceCollectionResponse),
        (status = 400, description = "Unknown task id, or `only_running`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role does not allow this", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such DAG, run or task instance", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path, query or body parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn clear(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(dag_id): ApiPath<String>,
    body: Result<ApiJson<ClearTaskInstancesBody>, Problem>,
) -> Result<Json<TaskInstanceCollectionResponse>, Problem> {
    user.require(Role::Operator)?;
    let ApiJson(body) = body?;
    let dag = super::dags::dag_def(&state, &dag_id)?;
    if body.only_running {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "BetFlow does not clear running task instances; wait for them to finish",
        ));
    }
    if !body.reset_dag_runs {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "reset_dag_runs must be true: a run with cleared tasks goes back to running so they are scheduled",
        ));
    }
    let tasks = selected_tasks(&dag, &body)?;
    let runs: Vec<RunRow> = target_runs(&state, &dag_id, &body).await?;
    if runs.len() as i64 > MAX_CLEAR_RUNS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!(
                "this clear would reach more than {MAX_CLEAR_RUNS} runs of `{dag_id}`; \
                 narrow it with `dag_run_id` or `start_date`/`end_date`"
            ),
        ));
    }
    let mut out = Vec::new();
    for run in runs {
        let filter = TaskInstancePageFilter {
            dag_id: Some(dag_id.clone()),
            run_id: Some(run.run_id.clone()),
            limit: i64::MAX,
            ..Default::default()
        };
        let (tis, _) = state.store.list_task_instances_page(&filter).await?;
        let picked: Vec<_> = tis
            .into_iter()
            .filter(|t| tasks.contains(&t.ti.task_id) && clears_state(t.ti.state, body.only_failed))
            .collect();
        if picked.is_empty() {
            continue;
        }
        if body.dry_run {
            out.extend(picked);
            continue;
        }
        let ids: Vec<String> = picked.iter().map(|t| t.ti.task_id.clone()).collect();
        let cleared = state.store.clear_tasks(&dag, &run.run_id, &ids).await?;
        tracing::info!(
            user = %user.0.username, dag_id, run_id = run.run_id, tasks = ?cleared,
            "task instances cleared through the API"
        );
        user.audit(
            &state.db,
            crate::audit::Action {
                event: "clear",
                dag_id: Some(&dag_id),
                run_id: Some(&run.run_id),
                extra: serde_json::json!({"cleared": cleared}),
                ..Default::default()
            },
        )
        .await;
        // Answer with their state after clearing, as the next GET would show it.
        for task_id in cleared {
            if let Some(row) = state
                .store
                .task_instance_detail(&dag_id, &run.run_id, &task_id, -1)
                .await?
            {
                out.push(row);
            }
        }
    }
    let total = out.len() as i64;
    Ok(Json(TaskInstanceCollectionResponse {
        task_instances: out
            .into_iter()
            .map(|r| task_instance_response(r, &state.bag))
            .collect(),
        total_entries: total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_is_never_cleared_and_only_failed_keeps_failures() {
        assert!(!clears_state(TaskState::Running, false));
        assert!(!clears_state(TaskState::Running, true));
        assert!(clears_state(TaskState::Success, false));
        assert!(!clears_state(TaskState::Success, true));
        assert!(clears_state(TaskState::Failed, true));
        assert!(clears_state(TaskState::UpstreamFailed, true));
    }

    #[test]
    fn task_ids_take_airflows_two_shapes() {
        let body: ClearTaskInstancesBody =
            serde_json::from_str(r#"{"task_ids": ["a", ["b", -1]]}"#).unwrap();
        let ids: Vec<&str> = body
            .task_ids
            .as_ref()
            .unwrap()
            .iter()
            .map(ClearTaskId::task_id)
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(body.dry_run && body.only_failed, "Airflow's defaults");
    }
}
