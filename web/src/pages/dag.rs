//! `/dags/{dag_id}`: one DAG's grid, graph, run history and details, with
//! the operator's forms (trigger, backfill, pause). The trigger and backfill
//! handlers in `actions.rs` re-render this page with their errors, so a bad
//! date or conf is shown next to the form instead of failing the request.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use orchestrator::backfill::{self, Backfill};
use orchestrator::store::read::TaskStateRow;
use orchestrator::store::{RunFilter, RunRow};
use orchestrator::{RunState, TaskState};
use serde::Deserialize;
use serde_json::Value;

use super::dags::next_run_label;
use super::graph::{self, GraphView};
use super::grid::{self, GridView, GRID_RUNS};
use super::{
    dag_url, fmt_duration, fmt_time, pretty_json, render, run_state_counts, run_url, seg,
    span_secs, Nav, StateCount,
};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

/// Runs per page of the history table.
const HISTORY_PAGE: i64 = 25;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}", get(dag_page))
}

#[derive(Deserialize, Default)]
pub struct DagQuery {
    /// The run whose states colour the graph; the newest by default.
    pub run_id: Option<String>,
    /// First row of the run history.
    pub offset: Option<i64>,
}

/// What the trigger and backfill forms show: the values last submitted and
/// what was wrong with them.
#[derive(Default)]
pub struct DagForms {
    pub logical_date: String,
    /// `None` pre-fills the DAG's params, as Airflow's trigger form does.
    pub conf: Option<String>,
    pub trigger_error: Option<String>,
    pub backfill_from: String,
    pub backfill_to: String,
    /// The choices last submitted; empty for the defaults.
    pub backfill_reprocess: String,
    pub backfill_max_active: String,
    pub backfill_backwards: bool,
    pub backfill_error: Option<String>,
}

/// The newest backfills the DAG page lists.
const BACKFILLS_SHOWN: i64 = 5;

/// One backfill as the DAG page shows it.
struct BackfillView {
    id: i64,
    range: String,
    status: &'static str,
    /// Its runs by state, and in all.
    counts: Vec<StateCount>,
    total: i64,
    /// Share of its runs finished, 0–100.
    done_pct: i64,
    reprocess: String,
    max_active_runs: i32,
    run_backwards: bool,
    created: String,
    created_by: String,
    /// Pause/resume/cancel are offered.
    open: bool,
}

impl BackfillView {
    fn of(b: &Backfill) -> Self {
        let total = b.total_runs();
        BackfillView {
            id: b.id,
            range: format!(
                "{} → {}",
                b.from_date.format("%Y-%m-%d %H:%M"),
                b.to_date.format("%Y-%m-%d %H:%M")
            ),
            status: b.status(),
            counts: run_state_counts([
                (RunState::Queued, b.queued),
                (RunState::Running, b.running),
                (RunState::Success, b.success),
                (RunState::Failed, b.failed),
            ]),
            total,
            done_pct: if total == 0 {
                100
            } else {
                (b.success + b.failed) * 100 / total
            },
            reprocess: b.reprocess_behavior.clone(),
            max_active_runs: b.max_active_runs,
            run_backwards: b.run_backwards,
            created: fmt_time(Some(b.created_at)),
            created_by: b.created_by.clone().unwrap_or_default(),
            open: b.completed_at.is_none(),
        }
    }
}

struct HistoryRow {
    run_id: String,
    href: String,
    state: RunState,
    run_type: String,
    logical_date: String,
    start: String,
    end: String,
    duration: String,
    deadline_missed: bool,
}

/// A notification as the DAG page lists it.
struct AlertView {
    time: String,
    event: String,
    run_id: String,
    run_href: String,
    task: String,
    channel: String,
    state: String,
    attempts: i32,
    error: String,
}

/// An asset an asset-scheduled DAG waits on.
struct AssetWait {
    name: String,
    href: String,
    /// Days with an update not yet run on, oldest first.
    days: String,
    waiting: usize,
}

struct RunChoice {
    run_id: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "dag.html")]
struct DagPage {
    nav: Nav,
    dag_id: String,
    href: String,
    description: String,
    schedule: String,
    timezone: String,
    has_schedule: bool,
    /// `silver.games & silver.odds`; empty when not scheduled on assets.
    asset_schedule: String,
    /// Each asset of its asset schedule and the updates waiting for a run.
    asset_waits: Vec<AssetWait>,
    next_run: String,
    fileloc: String,
    /// "3, since 2026-12-06 00:40 UTC"; empty before the first sync.
    version: String,
    tags: Vec<String>,
    params_json: String,
    is_paused: bool,
    is_stale: bool,
    /// The DAG is defined in this build (stale DAGs keep their history only).
    in_bag: bool,
    catchup: bool,
    max_active_runs: i32,
    max_active_tasks: i32,
    streams: Vec<String>,
    counts: Vec<StateCount>,
    backfills: Vec<BackfillView>,
    backfills_total: i64,
    grid: GridView,
    graph: GraphView,
    graph_runs: Vec<RunChoice>,
    history: Vec<HistoryRow>,
    history_total: i64,
    history_from: i64,
    history_to: i64,
    newer_href: String,
    older_href: String,
    forms: DagForms,
    conf_text: String,
    /// Which events notify and where, in words.
    notify_summary: String,
    alerts: Vec<AlertView>,
}

async fn dag_page(
    user: PageUser,
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Query(q): Query<DagQuery>,
) -> Result<Response, Problem> {
    render_dag(
        &state,
        &user,
        &dag_id,
        &q,
        DagForms::default(),
        StatusCode::OK,
    )
    .await
}

fn history_row(r: &RunRow) -> HistoryRow {
    HistoryRow {
        run_id: r.run_id.clone(),
        href: run_url(&r.dag_id, &r.run_id),
        state: r.state,
        run_type: r.run_type.clone(),
        logical_date: fmt_time(Some(r.logical_date)),
        start: fmt_time(r.start_date),
        end: fmt_time(r.end_date),
        duration: fmt_duration(span_secs(r.start_date, r.end_date)),
        deadline_missed: r.deadline_missed_at.is_some(),
    }
}

/// "Notifies on failure, deadline miss by webhook and email (2 recipients);
/// deadline 2h after the logical date", or why it notifies no one.
fn notify_summary(dag: &orchestrator::Dag) -> String {
    let a = &dag.alerts;
    let mut channels: Vec<String> = Vec::new();
    if a.webhook_url.is_some() {
        channels.push("webhook".to_owned());
    }
    if !a.email_to.is_empty() {
        channels.push(format!("email ({} recipients)", a.email_to.len()));
    }
    let named: Vec<String> = a.on.iter().map(|e| e.as_str().replace('_', " ")).collect();
    // "failure", "failure and deadline miss", "failure, retry and success".
    let events: String = match named.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    };
    let mut text = if events.is_empty() {
        "Run notifications are off for this DAG.".to_owned()
    } else if channels.is_empty() {
        format!(
            "Notifies on {events} once a channel is set (BETFLOW_NOTIFY_WEBHOOK_URL or BETFLOW_NOTIFY_EMAIL_TO); until then nobody is told."
        )
    } else {
        format!("Notifies on {events} by {}.", channels.join(" and "))
    };
    if let Some(d) = dag.deadline {
        let from = match d.reference {
            orchestrator::alert::DeadlineReference::LogicalDate => "its logical date",
            orchestrator::alert::DeadlineReference::QueuedAt => "being queued",
        };
        text.push_str(&format!(
            " Each run must finish within {} of {from}.",
            fmt_duration(Some(d.interval.as_secs_f64()))
        ));
    }
    let task_alerts: Vec<&str> = dag
        .tasks()
        .iter()
        .filter(|t| t.alerts.is_some())
        .map(|t| t.id.as_str())
        .collect();
    if !task_alerts.is_empty() {
        text.push_str(&format!(
            " Tasks with their own notifications: {}.",
            task_alerts.join(", ")
        ));
    }
    text
}

/// The DAG page with `forms` (values and errors) and the given status.
pub async fn render_dag(
    state: &AppState,
    user: &PageUser,
    dag_id: &str,
    q: &DagQuery,
    forms: DagForms,
    status: StatusCode,
) -> Result<Response, Problem> {
    let store = &state.store;
    let Some(row) = store.dag(dag_id).await? else {
        return Err(Problem::not_found(format!("no DAG `{dag_id}`")));
    };
    let dag = state.bag.get(dag_id).cloned();
    let offset = q.offset.unwrap_or(0).max(0);
    let (history_runs, history_total) = store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.to_owned()),
            limit: HISTORY_PAGE,
            offset,
            ..RunFilter::default()
        })
        .await?;
    let latest = if offset == 0 && HISTORY_PAGE == GRID_RUNS {
        history_runs.clone()
    } else {
        grid::latest_runs(store, dag_id).await?
    };
    let summary = store.run_counts_per_dag(Some(&[dag_id.to_owned()])).await?;
    let last_end = summary.iter().filter_map(|c| c.last_scheduled_end).max();
    let (backfills, backfills_total) =
        backfill::list(store, Some(dag_id), false, BACKFILLS_SHOWN, 0)
            .await
            .map_err(Problem::from)?;

    let selected = q
        .run_id
        .clone()
        .or_else(|| latest.first().map(|r| r.run_id.clone()));
    let mut ids: Vec<String> = latest.iter().map(|r| r.run_id.clone()).collect();
    if let Some(sel) = &selected {
        if !ids.contains(sel) {
            ids.push(sel.clone());
        }
    }
    let states: Vec<TaskStateRow> = store.task_states_for_runs(dag_id, &ids).await?;
    let graph_states: HashMap<String, TaskState> = states
        .iter()
        .filter(|s| Some(&s.run_id) == selected.as_ref())
        .map(|s| (s.task_id.clone(), s.state))
        .collect();

    let (grid, graph, streams) = match &dag {
        Some(d) => (
            grid::build(d, &latest, &states),
            graph::layout(d, selected.as_deref(), &graph_states),
            d.streams.iter().map(|s| s.id.clone()).collect(),
        ),
        None => (
            GridView::empty(),
            GraphView {
                width: 0,
                height: 0,
                nodes: Vec::new(),
                edges: Vec::new(),
            },
            Vec::new(),
        ),
    };
    let params = dag
        .as_ref()
        .map(|d| Value::Object(d.params.clone()))
        .unwrap_or_else(|| Value::Object(Default::default()));
    let href = dag_url(dag_id);
    let page_href = |off: i64| -> String {
        let mut s = format!("{href}?offset={off}");
        if let Some(r) = &q.run_id {
            s.push_str(&format!("&run_id={}", seg(r)));
        }
        s
    };
    let alerts: Vec<AlertView> = store
        .recent_alerts(dag_id, 10)
        .await?
        .into_iter()
        .map(|a| AlertView {
            time: fmt_time(Some(a.created_at)),
            event: a.event.replace('_', " "),
            run_href: run_url(dag_id, &a.run_id),
            run_id: a.run_id,
            task: match (a.task_id, a.try_number) {
                (Some(t), Some(n)) => format!("{t} (try {n})"),
                (Some(t), None) => t,
                _ => String::new(),
            },
            channel: a.channel,
            state: a.state,
            attempts: a.attempts,
            error: a.last_error.unwrap_or_default(),
        })
        .collect();
    let version = match store
        .dag_versions(Some(dag_id), true, 1, 0)
        .await?
        .0
        .first()
    {
        Some(v) => format!(
            "{}, since {}",
            v.version_number,
            fmt_time(Some(v.created_at))
        ),
        None => String::new(),
    };
    let shown = history_runs.len() as i64;
    let (asset_schedule, asset_waits) = match dag.as_ref().and_then(|d| d.asset_schedule.clone()) {
        None => (String::new(), Vec::new()),
        Some(condition) => {
            let queued = store.queued_asset_events(Some(dag_id)).await?;
            let (known, _) = store
                .assets(
                    &orchestrator::store::AssetFilter {
                        dag_ids: vec![dag_id.to_owned()],
                        ..Default::default()
                    },
                    orchestrator::store::AssetSort::Id,
                    false,
                    100,
                    0,
                )
                .await?;
            let waits = condition
                .assets()
                .into_iter()
                .map(|a| {
                    let mine: Vec<_> = queued.iter().filter(|q| q.uri == a.uri).collect();
                    let mut days: Vec<&str> = mine
                        .iter()
                        .map(|q| q.partition.as_str())
                        .filter(|p| !p.is_empty())
                        .collect();
                    days.sort_unstable();
                    days.dedup();
                    AssetWait {
                        name: a.name.clone(),
                        href: known
                            .iter()
                            .find(|k| k.uri == a.uri)
                            .map(|k| super::assets::asset_url(k.id))
                            .unwrap_or_else(|| "/assets".to_owned()),
                        days: super::assets::days_summary(&days),
                        waiting: mine.len(),
                    }
                })
                .collect();
            (condition.describe(), waits)
        }
    };
    let page = DagPage {
        asset_schedule,
        asset_waits,
        nav: Nav::new(user, "dags"),
        dag_id: row.dag_id.clone(),
        description: row.description.clone(),
        schedule: row.schedule.clone().unwrap_or_else(|| "None".to_owned()),
        timezone: row.timezone.clone(),
        has_schedule: dag
            .as_ref()
            .is_some_and(|d| d.schedule.expression().is_some()),
        next_run: next_run_label(dag.as_deref(), last_end),
        fileloc: row.fileloc.clone(),
        version,
        tags: row.tags.clone(),
        params_json: pretty_json(&params),
        is_paused: row.is_paused,
        is_stale: row.is_stale,
        in_bag: dag.is_some(),
        catchup: row.catchup,
        max_active_runs: row.max_active_runs,
        max_active_tasks: row.max_active_tasks,
        streams,
        counts: run_state_counts(summary.iter().map(|c| (c.state, c.count))),
        backfills: backfills.iter().map(BackfillView::of).collect(),
        backfills_total,
        grid,
        graph,
        graph_runs: latest
            .iter()
            .map(|r| RunChoice {
                selected: Some(&r.run_id) == selected.as_ref(),
                run_id: r.run_id.clone(),
            })
            .collect(),
        notify_summary: dag.as_deref().map(notify_summary).unwrap_or_default(),
        alerts,
        history: history_runs.iter().map(history_row).collect(),
        history_total,
        history_from: if shown == 0 { 0 } else { offset + 1 },
        history_to: offset + shown,
        newer_href: if offset > 0 {
            page_href((offset - HISTORY_PAGE).max(0))
        } else {
            String::new()
        },
        older_href: if offset + shown < history_total {
            page_href(offset + HISTORY_PAGE)
        } else {
            String::new()
        },
        conf_text: forms.conf.clone().unwrap_or_else(|| pretty_json(&params)),
        forms,
        href,
    };
    Ok(render(&page, status))
}
