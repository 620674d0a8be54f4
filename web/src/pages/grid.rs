//! The grid view: the last runs as columns, tasks as rows in topological
//! order, each cell a task instance coloured by state. While a run is queued
//! or running, the grid re-fetches itself (htmx, every 2 s) from
//! `/dags/{dag_id}/grid`; once nothing is active the returned fragment has no
//! trigger, so polling stops on its own.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use orchestrator::dag::TaskNode;
use orchestrator::store::read::TaskStateRow;
use orchestrator::store::{RunFilter, RunRow, StoreError};
use orchestrator::{Dag, RunState, Store, TaskState};

use super::{dag_url, fmt_duration, fmt_time, render, run_url, span_secs, task_url};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

/// Columns in the grid, as in Airflow's default.
pub const GRID_RUNS: i64 = 25;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/grid", get(grid_fragment))
}

pub struct GridRun {
    pub href: String,
    pub state: RunState,
    pub title: String,
    /// The run's DAG version differs from the run before it in the grid:
    /// the structure changed between them (a line is drawn).
    pub version_change: bool,
}

pub struct GridCell {
    pub state: TaskState,
    /// The column starts a new DAG version ([`GridRun::version_change`]).
    pub version_change: bool,
    /// Empty when the run has no instance of this task yet.
    pub href: String,
    pub title: String,
}

pub struct GridRow {
    pub task_id: String,
    /// The group's name on the first row of its block, for a header row.
    pub group_header: String,
    pub in_group: bool,
    /// The task id without its group prefix.
    pub name: String,
    pub cells: Vec<GridCell>,
}

pub struct GridView {
    pub runs: Vec<GridRun>,
    /// Columns of a group header row: the task column and one per run.
    pub colspan: usize,
    pub rows: Vec<GridRow>,
    /// A run is queued or running: keep refreshing.
    pub active: bool,
    /// Some column starts a new DAG version: explain the line.
    pub version_changes: bool,
    pub refresh_url: String,
}

impl GridView {
    /// No runs and no tasks: for DAGs this build does not define.
    pub fn empty() -> Self {
        Self {
            runs: Vec::new(),
            colspan: 1,
            rows: Vec::new(),
            active: false,
            version_changes: false,
            refresh_url: String::new(),
        }
    }
}

/// Lay out the grid from runs (newest first, as queried) and their task states.
pub fn build(dag: &Dag, runs_newest_first: &[RunRow], states: &[TaskStateRow]) -> GridView {
    let runs: Vec<&RunRow> = runs_newest_first.iter().rev().collect();
    let changes: Vec<bool> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            i > 0
                && r.dag_version.is_some()
                && runs[i - 1].dag_version.is_some()
                && runs[i - 1].dag_version != r.dag_version
        })
        .collect();
    let by_key: HashMap<(&str, &str), &TaskStateRow> = states
        .iter()
        .map(|s| ((s.run_id.as_str(), s.task_id.as_str()), s))
        .collect();
    // Tasks of a group form one block (where its first task would be), as
    // Airflow's grid nests them; inside and between blocks, topological order.
    let mut first_of_group: HashMap<&str, usize> = HashMap::new();
    for (i, t) in dag.tasks().iter().enumerate() {
        if let Some(g) = &t.group {
            first_of_group.entry(g.as_str()).or_insert(i);
        }
    }
    let mut ordered: Vec<(usize, usize, &TaskNode)> = dag
        .tasks()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let block = t
                .group
                .as_deref()
                .and_then(|g| first_of_group.get(g).copied())
                .unwrap_or(i);
            (block, i, t)
        })
        .collect();
    ordered.sort_by_key(|(block, i, _)| (*block, *i));
    let mut previous_group: Option<&str> = None;
    let rows = ordered
        .into_iter()
        .map(|(_, _, t)| {
            let group = t.group.as_deref();
            let group_header = match group {
                Some(g) if previous_group != Some(g) => g.to_owned(),
                _ => String::new(),
            };
            previous_group = group;
            let name = match group {
                Some(g) => {
                    t.id.strip_prefix(&format!("{g}."))
                        .unwrap_or(&t.id)
                        .to_owned()
                }
                None => t.id.clone(),
            };
            // Airflow marks mapped tasks with brackets.
            let name = if t.map.is_some() {
                format!("{name} [ ]")
            } else {
                name
            };
            let cells = runs
                .iter()
                .zip(&changes)
                .map(
                    |(r, &version_change)| match by_key.get(&(r.run_id.as_str(), t.id.as_str())) {
                        Some(ti) => GridCell {
                            state: ti.state,
                            version_change,
                            href: task_url(&dag.id, &r.run_id, &t.id),
                            title: if ti.mapped > 0 {
                                format!(
                                    "{} [{} mapped] · {} · {}",
                                    t.id, ti.mapped, r.run_id, ti.state
                                )
                            } else {
                                format!(
                                    "{} · {} · {} · try {} · {}",
                                    t.id,
                                    r.run_id,
                                    ti.state,
                                    ti.try_number,
                                    fmt_duration(ti.duration)
                                )
                            },
                        },
                        None => GridCell {
                            state: TaskState::None,
                            version_change,
                            href: String::new(),
                            title: format!("{} · {} · not created yet", t.id, r.run_id),
                        },
                    },
                )
                .collect();
            GridRow {
                task_id: t.id.clone(),
                group_header,
                in_group: group.is_some(),
                name,
                cells,
            }
        })
        .collect();
    GridView {
        runs: runs
            .iter()
            .zip(&changes)
            .map(|(r, &version_change)| GridRun {
                href: run_url(&dag.id, &r.run_id),
                state: r.state,
                title: format!(
                    "{} · {} · logical date {} · {}{}",
                    r.run_id,
                    r.state,
                    fmt_time(Some(r.logical_date)),
                    fmt_duration(span_secs(r.start_date, r.end_date)),
                    match r.dag_version {
                        Some(v) if version_change =>
                            format!(" · DAG version {v} (structure changed)"),
                        Some(v) => format!(" · DAG version {v}"),
                        None => String::new(),
                    }
                ),
                version_change,
            })
            .collect(),
        colspan: runs.len() + 1,
        version_changes: changes.iter().any(|c| *c),
        rows,
        active: runs
            .iter()
            .any(|r| matches!(r.state, RunState::Queued | RunState::Running)),
        // While runs are active the grid polls the whole DAG page and takes the
        // grid, the run counts and the graph (coloured by the newest run) from it,
        // so the header and the graph do not go stale beside a live grid.
        refresh_url: dag_url(&dag.id),
    }
}

/// The newest runs of a DAG, newest first.
pub async fn latest_runs(store: &Store, dag_id: &str) -> Result<Vec<RunRow>, StoreError> {
    let (runs, _) = store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.to_owned()),
            limit: GRID_RUNS,
            ..RunFilter::default()
        })
        .await?;
    Ok(runs)
}

/// The grid of `runs` (newest first): one query for all their task states.
pub async fn load(store: &Store, dag: &Dag, runs: &[RunRow]) -> Result<GridView, StoreError> {
    let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    let states = store.task_states_for_runs(&dag.id, &ids).await?;
    Ok(build(dag, runs, &states))
}

#[derive(Template)]
#[template(path = "grid_fragment.html")]
struct GridFragment {
    grid: GridView,
}

async fn grid_fragment(
    _user: PageUser,
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Response, Problem> {
    let Some(dag) = state.bag.get(&dag_id).cloned() else {
        return Err(Problem::not_found(format!(
            "no DAG `{dag_id}` in this build"
        )));
    };
    let runs = latest_runs(&state.store, &dag.id).await?;
    let grid = load(&state.store, &dag, &runs).await?;
    Ok(render(&GridFragment { grid }, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use orchestrator::{task_fn, TaskSpec};
    use serde_json::{json, Value};

    fn run(id: &str, day: u32, state: RunState) -> RunRow {
        let d = Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap();
        RunRow {
            dag_id: "d".into(),
            run_id: id.into(),
            logical_date: d,
            data_interval_start: d,
            data_interval_end: d,
            run_type: "manual".into(),
            state,
            conf: json!({}),
            queued_at: d,
            start_date: Some(d),
            end_date: None,
            deadline_missed_at: None,
            note: None,
            dag_version: Some(1),
            partition_key: None,
        }
    }

    #[test]
    fn runs_read_oldest_to_newest_and_missing_cells_are_blank() {
        let noop = |id: &str| TaskSpec::new(id, task_fn(|_| async { Ok(Value::Null) }));
        let mut b = Dag::builder("d");
        let a = b.task(noop("a"));
        let x = b.group_task("g", noop("x"));
        let other = b.group_task("h", noop("y"));
        let z = b.group_task("g", noop("z"));
        b.edge(&a, &x);
        b.edge(&a, &other);
        b.edge(&x, &z);
        let dag = b.build().unwrap();
        let runs = [
            run("r2", 2, RunState::Running),
            run("r1", 1, RunState::Success),
        ];
        let states = [TaskStateRow {
            run_id: "r1".into(),
            task_id: "g.x".into(),
            state: TaskState::Success,
            try_number: 1,
            duration: Some(1.0),
            mapped: 0,
        }];
        let grid = build(&dag, &runs, &states);
        assert!(grid.active);
        assert_eq!(grid.runs[0].state, RunState::Success);
        let order: Vec<&str> = grid.rows.iter().map(|r| r.task_id.as_str()).collect();
        assert_eq!(order, ["a", "g.x", "g.z", "h.y"], "group g stays one block");
        assert_eq!(grid.rows[1].group_header, "g");
        assert_eq!(grid.rows[2].group_header, "");
        assert_eq!(grid.rows[3].group_header, "h");
        assert_eq!(grid.rows[1].name, "x");
        assert_eq!(grid.colspan, 3);
        assert_eq!(grid.rows[1].cells[0].state, TaskState::Success);
        assert_eq!(grid.rows[1].cells[0].href, "/dags/d/runs/r1/tasks/g.x");
        assert_eq!(grid.rows[0].cells[1].state, TaskState::None);
        assert!(grid.rows[0].cells[1].href.is_empty());
        assert!(!grid.runs[1].version_change);
    }

    #[test]
    fn a_new_dag_version_draws_a_line_before_its_first_run() {
        let noop = |id: &str| TaskSpec::new(id, task_fn(|_| async { Ok(Value::Null) }));
        let mut b = Dag::builder("d");
        b.task(noop("a"));
        let dag = b.build().unwrap();
        let mut newer = run("r3", 3, RunState::Success);
        newer.dag_version = Some(2);
        let runs = [
            newer,
            run("r2", 2, RunState::Success),
            run("r1", 1, RunState::Success),
        ];
        let grid = build(&dag, &runs, &[]);
        let changes: Vec<bool> = grid.runs.iter().map(|r| r.version_change).collect();
        assert_eq!(changes, [false, false, true]);
        assert!(grid.rows[0].cells[2].version_change);
        assert!(grid.runs[2]
            .title
            .contains("DAG version 2 (structure changed)"));
    }
}
