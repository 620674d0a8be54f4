//! `/dags`: every DAG with its schedule, next run, paused toggle, tags, last
//! runs and run counts, filterable by tag and searchable by id.
//!
//! Built from three queries whatever the number of DAGs and runs: the DAG
//! rows, the newest runs of each DAG (a lateral index scan per DAG), and the
//! run counts grouped by DAG and state.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use orchestrator::store::read::{DagStateCountRow, RecentRunRow};
use orchestrator::{Dag, RunState};
use serde::Deserialize;

use super::{dag_url, fmt_time, render, run_state_counts, run_url, Nav, StateCount};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

/// Squares per DAG, as in Airflow's "Recent runs" column.
const RECENT_RUNS: i64 = 10;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dags", get(dags_page))
}

#[derive(Deserialize, Default)]
struct DagsQuery {
    #[serde(default)]
    tag: String,
    #[serde(default)]
    search: String,
}

struct RunSquare {
    href: String,
    state: RunState,
    title: String,
}

struct DagItem {
    dag_id: String,
    href: String,
    description: String,
    schedule: String,
    next_run: String,
    is_paused: bool,
    tags: Vec<String>,
    recent: Vec<RunSquare>,
    counts: Vec<StateCount>,
}

#[derive(Template)]
#[template(path = "dags.html")]
struct DagsPage {
    nav: Nav,
    dags: Vec<DagItem>,
    all_tags: Vec<String>,
    tag: String,
    search: String,
    /// DAGs before filtering, for "n of m".
    total: usize,
    /// This page's path and query, where the pause toggles come back to.
    here: String,
}

/// The cron expression, `on N assets` for a DAG scheduled on assets
/// (with ` + assets` after a cron it also has), or `None`.
fn schedule_label(cron: Option<&str>, dag: Option<&orchestrator::Dag>) -> String {
    let assets = dag
        .and_then(|d| d.asset_schedule.as_ref())
        .map(|c| c.assets().len());
    match (cron, assets) {
        (Some(c), Some(_)) => format!("{c} + assets"),
        (Some(c), None) => c.to_owned(),
        (None, Some(1)) => "on 1 asset".to_owned(),
        (None, Some(n)) => format!("on {n} assets"),
        (None, None) => "None".to_owned(),
    }
}

/// When the scheduler will next create a run: the end of the interval after
/// the newest scheduled run (its "run after"), or the interval already due.
/// `None` for DAGs without a schedule or past their end date.
pub fn next_run(
    dag: &Dag,
    last_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if let Some(due) = dag
        .schedule
        .due_intervals(&dag.bounds, last_end, now, 1)
        .first()
    {
        return Some(due.end);
    }
    let after = last_end
        .unwrap_or(dag.bounds.start_date)
        .max(dag.bounds.start_date);
    let start = dag.schedule.tick_at_or_after(after)?;
    if dag.bounds.end_date.is_some_and(|end| start > end) {
        return None;
    }
    dag.schedule.next_tick(start)
}

/// The "Next run" cell: `-` for manual DAGs, as Airflow shows `None`.
pub fn next_run_label(dag: Option<&Dag>, last_end: Option<DateTime<Utc>>) -> String {
    match dag.and_then(|d| next_run(d, last_end, Utc::now())) {
        Some(t) => fmt_time(Some(t)),
        None => "-".to_owned(),
    }
}

fn matches(dag_id: &str, tags: &[String], q: &DagsQuery) -> bool {
    let search = q.search.trim().to_lowercase();
    let tag = q.tag.trim();
    (search.is_empty() || dag_id.to_lowercase().contains(&search))
        && (tag.is_empty() || tags.iter().any(|t| t == tag))
}

async fn dags_page(
    user: PageUser,
    State(state): State<AppState>,
    Query(q): Query<DagsQuery>,
    uri: Uri,
) -> Result<Response, Problem> {
    let rows = state.store.list_dags().await?;
    let total = rows.len();
    let all_tags: Vec<String> = rows
        .iter()
        .flat_map(|r| r.tags.iter().cloned())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| matches(&r.dag_id, &r.tags, &q))
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| r.dag_id.clone()).collect();
    let filtered = ids.len() < total;
    // Independent queries on separate pool connections: the page waits for the slower only.
    let (recent, counts): (Vec<RecentRunRow>, Vec<DagStateCountRow>) = tokio::try_join!(
        state.store.recent_runs_per_dag(&ids, RECENT_RUNS),
        state
            .store
            .run_counts_per_dag(filtered.then_some(ids.as_slice())),
    )?;

    let mut recent_by_dag: HashMap<&str, Vec<&RecentRunRow>> = HashMap::new();
    for r in &recent {
        recent_by_dag.entry(r.dag_id.as_str()).or_default().push(r);
    }
    let mut counts_by_dag: HashMap<&str, Vec<&DagStateCountRow>> = HashMap::new();
    for c in &counts {
        counts_by_dag.entry(c.dag_id.as_str()).or_default().push(c);
    }

    let dags = rows
        .into_iter()
        .map(|row| {
            let dag_counts = counts_by_dag
                .get(row.dag_id.as_str())
                .cloned()
                .unwrap_or_default();
            let last_end = dag_counts.iter().filter_map(|c| c.last_scheduled_end).max();
            let mut squares: Vec<RunSquare> = recent_by_dag
                .get(row.dag_id.as_str())
                .map(|runs| {
                    runs.iter()
                        .map(|r| RunSquare {
                            href: run_url(&r.dag_id, &r.run_id),
                            state: r.state,
                            title: format!("{} · {}", r.run_id, r.state),
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Oldest left, newest right, like the grid.
            squares.reverse();
            DagItem {
                href: dag_url(&row.dag_id),
                next_run: next_run_label(state.bag.get(&row.dag_id).map(|d| d.as_ref()), last_end),
                schedule: schedule_label(
                    row.schedule.as_deref(),
                    state.bag.get(&row.dag_id).map(|d| d.as_ref()),
                ),
                counts: run_state_counts(dag_counts.iter().map(|c| (c.state, c.count))),
                recent: squares,
                dag_id: row.dag_id,
                description: row.description,
                is_paused: row.is_paused,
                tags: row.tags,
            }
        })
        .collect();

    let page = DagsPage {
        nav: Nav::new(&user, "dags"),
        dags,
        all_tags,
        tag: q.tag.trim().to_owned(),
        search: q.search.trim().to_owned(),
        total,
        here: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/dags".to_owned()),
    };
    Ok(render(&page, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn daily(catchup: bool) -> Dag {
        Dag::builder("d")
            .schedule("@daily", "UTC")
            .start_date(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
            .catchup(catchup)
            .build()
            .unwrap()
    }

    #[test]
    fn next_run_follows_the_newest_scheduled_interval() {
        let now = Utc.with_ymd_and_hms(2024, 1, 10, 12, 0, 0).unwrap();
        let last_end = Utc.with_ymd_and_hms(2024, 1, 10, 0, 0, 0).unwrap();
        assert_eq!(
            next_run(&daily(true), Some(last_end), now),
            Some(Utc.with_ymd_and_hms(2024, 1, 11, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn an_overdue_interval_is_the_next_run() {
        let now = Utc.with_ymd_and_hms(2024, 1, 10, 12, 0, 0).unwrap();
        let last_end = Utc.with_ymd_and_hms(2024, 1, 5, 0, 0, 0).unwrap();
        // With catchup the oldest missing interval comes next; it is already due.
        assert_eq!(
            next_run(&daily(true), Some(last_end), now),
            Some(Utc.with_ymd_and_hms(2024, 1, 6, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn manual_dags_have_no_next_run() {
        let dag = Dag::builder("m").build().unwrap();
        assert_eq!(next_run(&dag, None, Utc::now()), None);
        assert_eq!(next_run_label(Some(&dag), None), "-");
    }

    #[test]
    fn filters_match_id_substrings_and_exact_tags() {
        let tags = vec!["example".to_owned()];
        let q = |tag: &str, search: &str| DagsQuery {
            tag: tag.into(),
            search: search.into(),
        };
        assert!(matches("example_etl", &tags, &q("", "ETL")));
        assert!(matches("example_etl", &tags, &q("example", "")));
        assert!(!matches("example_etl", &tags, &q("exam", "")));
        assert!(!matches("example_etl", &tags, &q("", "games")));
    }
}
