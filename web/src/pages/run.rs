//! `/dags/{dag_id}/runs/{run_id}`: a run's task instances (state, try,
//! timing, worker), its data-quality check results, the errors of its
//! failed tries, and for operators the clear and mark actions. The clear and mark handlers re-render this page
//! with their error when they could not act (e.g. the task is running).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use orchestrator::store::TaskInstanceRow;
use orchestrator::{RunState, TaskState};

use super::{
    dag_url, fmt_duration, fmt_time, pretty_json, render, run_url, span_secs, task_url, Nav,
};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/runs/{run_id}", get(run_page))
}

struct TiRow {
    task_id: String,
    /// `[i]` for an instance of a mapped task, else empty.
    map_label: String,
    href: String,
    state: TaskState,
    try_number: i32,
    max_tries: i32,
    start: String,
    end: String,
    duration: String,
    worker: String,
    pool: String,
}

/// One data-quality check result of the run.
struct CheckRow {
    task_id: String,
    task_href: String,
    table: String,
    check: String,
    severity: String,
    /// `passed`, `failed` or `warn`: the CSS class and the label.
    outcome: &'static str,
    observed: String,
    detail: String,
}

struct FailedTry {
    task_id: String,
    href: String,
    try_number: i32,
    end: String,
    error: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    dag_id: String,
    dag_href: String,
    run_id: String,
    href: String,
    state: RunState,
    run_type: String,
    logical_date: String,
    interval_start: String,
    interval_end: String,
    queued: String,
    start: String,
    end: String,
    duration: String,
    conf_json: String,
    tis: Vec<TiRow>,
    checks: Vec<CheckRow>,
    failed_tries: Vec<FailedTry>,
    /// Operator, and the DAG is in this build (clearing needs its definition).
    can_act: bool,
    /// Queued or running: the task table refreshes itself.
    active: bool,
    error: Option<String>,
    /// The asset updates that started it (asset-triggered runs).
    triggered_by: Vec<TriggerEvent>,
}

/// One asset update that started an asset-triggered run.
struct TriggerEvent {
    asset: String,
    href: String,
    partition: String,
    source: String,
    source_href: String,
    when: String,
}

async fn run_page(
    user: PageUser,
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    render_run(&state, &user, &dag_id, &run_id, None, StatusCode::OK).await
}

/// `hostname / worker_id`, or `-` before a worker claimed the task.
fn worker_label(ti: &TaskInstanceRow) -> String {
    match (&ti.hostname, &ti.worker_id) {
        (Some(h), Some(w)) => format!("{h} / {w}"),
        (None, Some(w)) => w.clone(),
        (Some(h), None) => h.clone(),
        (None, None) => "-".to_owned(),
    }
}

/// The run page, with `error` from an action that could not be done.
pub async fn render_run(
    state: &AppState,
    user: &PageUser,
    dag_id: &str,
    run_id: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Problem> {
    let store = &state.store;
    let Some(run) = store.run(dag_id, run_id).await? else {
        return Err(Problem::not_found(format!(
            "DAG `{dag_id}` has no run `{run_id}`"
        )));
    };
    let dag = state.bag.get(dag_id).cloned();
    let mut tis = store.task_instances(dag_id, run_id).await?;
    if let Some(d) = &dag {
        let order: HashMap<&str, usize> = d
            .tasks()
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        tis.sort_by_key(|ti| {
            (
                order
                    .get(ti.task_id.as_str())
                    .copied()
                    .unwrap_or(usize::MAX),
                ti.map_index,
            )
        });
    }
    let tries = store.task_tries(dag_id, run_id).await?;
    let checks = store.check_results(dag_id, run_id).await?;
    let triggered_by = store
        .run_asset_events(dag_id, run_id)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let (source, source_href) = match (&e.source_dag_id, &e.source_run_id) {
                (Some(d), Some(r)) => (format!("{d} › {r}"), run_url(d, r)),
                _ => (
                    format!("posted by {}", e.created_by.as_deref().unwrap_or("?")),
                    String::new(),
                ),
            };
            TriggerEvent {
                href: super::assets::asset_url(e.asset_id),
                asset: e.name,
                partition: e.partition,
                source,
                source_href,
                when: fmt_time(Some(e.timestamp)),
            }
        })
        .collect();
    let page = RunPage {
        triggered_by,
        nav: Nav::new(user, "dags"),
        dag_id: dag_id.to_owned(),
        dag_href: dag_url(dag_id),
        run_id: run_id.to_owned(),
        href: run_url(dag_id, run_id),
        state: run.state,
        run_type: run.run_type.clone(),
        logical_date: fmt_time(Some(run.logical_date)),
        interval_start: fmt_time(Some(run.data_interval_start)),
        interval_end: fmt_time(Some(run.data_interval_end)),
        queued: fmt_time(Some(run.queued_at)),
        start: fmt_time(run.start_date),
        end: fmt_time(run.end_date),
        duration: fmt_duration(span_secs(run.start_date, run.end_date)),
        conf_json: pretty_json(&run.conf),
        tis: tis
            .iter()
            .map(|ti| TiRow {
                task_id: ti.task_id.clone(),
                map_label: if ti.map_index >= 0 {
                    format!("[{}]", ti.map_index)
                } else {
                    String::new()
                },
                href: if ti.map_index >= 0 {
                    format!(
                        "{}?map_index={}",
                        task_url(dag_id, run_id, &ti.task_id),
                        ti.map_index
                    )
                } else {
                    task_url(dag_id, run_id, &ti.task_id)
                },
                state: ti.state,
                try_number: ti.try_number,
                max_tries: ti.max_tries + 1,
                start: fmt_time(ti.start_date),
                end: fmt_time(ti.end_date),
                duration: fmt_duration(ti.duration.or_else(|| {
                    (ti.state == TaskState::Running)
                        .then(|| span_secs(ti.start_date, None))
                        .flatten()
                })),
                worker: worker_label(ti),
                pool: ti.pool.clone(),
            })
            .collect(),
        checks: checks
            .iter()
            .map(|c| CheckRow {
                task_id: c.task_id.clone(),
                task_href: format!(
                    "{}?try={}",
                    task_url(dag_id, run_id, &c.task_id),
                    c.try_number
                ),
                table: c.asset.clone(),
                check: c.check_name.clone(),
                severity: c.severity.clone(),
                outcome: c.outcome(),
                observed: c.observed_label(),
                detail: c.detail.clone(),
            })
            .collect(),
        failed_tries: tries
            .iter()
            .filter_map(|t| {
                t.error.as_ref().map(|e| FailedTry {
                    task_id: t.task_id.clone(),
                    href: format!(
                        "{}?try={}",
                        task_url(dag_id, run_id, &t.task_id),
                        t.try_number
                    ),
                    try_number: t.try_number,
                    end: fmt_time(t.end_date),
                    error: e.clone(),
                })
            })
            .collect(),
        can_act: user.can_operate() && dag.is_some(),
        active: matches!(run.state, RunState::Queued | RunState::Running),
        error,
    };
    Ok(render(&page, status))
}
