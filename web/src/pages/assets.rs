//! `/assets`: the assets BetFlow's DAGs update and read, who writes and
//! reads each, the DAGs scheduled on them and their latest updates;
//! `/assets/{id}`: one asset's lineage (producing tasks → asset →
//! scheduled DAGs and reading tasks) as server-drawn SVG, the updates
//! waiting for each scheduled DAG, and its events with the runs they
//! started (docs/assets.md).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use orchestrator::store::{AssetEventFilter, AssetFilter, AssetRow, AssetSort};
use serde::Deserialize;

use super::{dag_url, fmt_time, render, run_url, ErrorPage, Nav, Pager};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/assets", get(list_page))
        .route("/assets/{id}", get(asset_page))
}

/// Assets listed on one page; BetFlow's DAGs declare a few dozen.
const ASSETS_PAGE: i64 = 100;
/// Events per page of an asset's history.
const EVENTS_PAGE: i64 = 50;

pub fn asset_url(id: i64) -> String {
    format!("/assets/{id}")
}

/// A link to a DAG, or to one of its tasks.
struct Link {
    text: String,
    href: String,
}

struct AssetLine {
    href: String,
    name: String,
    uri: String,
    group: String,
    producers: Vec<Link>,
    scheduled: Vec<Link>,
    readers: Vec<Link>,
    last_when: String,
    last_partition: String,
    last_run: Option<Link>,
    events: i64,
}

#[derive(Template)]
#[template(path = "assets.html")]
struct ListPage {
    nav: Nav,
    assets: Vec<AssetLine>,
    total: i64,
    query: String,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
}

fn task_link(dag_id: &str, task_id: &str) -> Link {
    Link {
        text: format!("{dag_id} › {task_id}"),
        href: format!("{}/graph", dag_url(dag_id)),
    }
}

fn dag_link(dag_id: &str) -> Link {
    Link {
        text: dag_id.to_owned(),
        href: dag_url(dag_id),
    }
}

/// One link per DAG: `dag › task` for one task, `dag (N tasks)` for more,
/// so an asset read by a whole DAG's marts stays one line.
fn by_dag(refs: &[orchestrator::store::AssetTaskRef]) -> Vec<Link> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for r in refs {
        match out.iter_mut().find(|(d, _)| *d == r.dag_id) {
            Some((_, tasks)) => tasks.push(&r.task_id),
            None => out.push((r.dag_id.clone(), vec![&r.task_id])),
        }
    }
    out.into_iter()
        .map(|(dag, tasks)| match tasks.as_slice() {
            [one] => task_link(&dag, one),
            many => Link {
                text: format!("{dag} ({} tasks)", many.len()),
                href: format!("{}/graph", dag_url(&dag)),
            },
        })
        .collect()
}

/// Days waiting, shortened when there are many: `2024-09-05, 2024-09-06,
/// … 2024-10-06 (32 days)`.
pub fn days_summary(days: &[&str]) -> String {
    match days.len() {
        0..=4 => days.join(", "),
        n => format!("{}, {}, … {} ({n} days)", days[0], days[1], days[n - 1]),
    }
}

fn line(a: AssetRow) -> AssetLine {
    let last_run = a.last_event.as_ref().and_then(|e| {
        let (dag, run) = (e.source_dag_id.as_ref()?, e.source_run_id.as_ref()?);
        // The DAG names the run well enough in a list; the run id is long.
        Some(Link {
            text: format!("{dag} run"),
            href: run_url(dag, run),
        })
    });
    AssetLine {
        href: asset_url(a.id),
        producers: by_dag(&a.producing_tasks),
        scheduled: a
            .scheduled_dags
            .iter()
            .map(|d| dag_link(&d.dag_id))
            .collect(),
        readers: by_dag(&a.consuming_tasks),
        last_when: fmt_time(a.last_event.as_ref().map(|e| e.timestamp)),
        last_partition: a
            .last_event
            .as_ref()
            .map(|e| e.partition.clone())
            .unwrap_or_default(),
        last_run,
        events: a.event_count,
        name: a.name,
        uri: a.uri,
        group: a.group,
    }
}

/// `/assets`: every asset a DAG of the deployment names; `q` filters by
/// name or URI.
async fn list_page(
    user: PageUser,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    let query = q.q.unwrap_or_default().trim().to_owned();
    let filter = AssetFilter {
        uri_pattern: (!query.is_empty()).then(|| query.clone()),
        only_active: true,
        ..Default::default()
    };
    let (rows, total) = state
        .store
        .assets(&filter, AssetSort::Uri, false, ASSETS_PAGE, 0)
        .await?;
    let page = ListPage {
        nav: Nav::new(&user, "assets"),
        assets: rows.into_iter().map(line).collect(),
        total,
        query,
    };
    Ok(render(&page, StatusCode::OK))
}

/// A box of the lineage graph.
struct LineageNode {
    x: i32,
    y: i32,
    w: i32,
    text_x: i32,
    text_y: i32,
    label: String,
    kind: &'static str,
    href: String,
}

struct Lineage {
    width: i32,
    height: i32,
    nodes: Vec<LineageNode>,
    edges: Vec<String>,
}

const NODE_H: i32 = 30;
const GAP_Y: i32 = 12;
const COL_W: i32 = 350;
const GAP_X: i32 = 70;
const PAD: i32 = 12;
/// Characters that fit a box; longer labels are cut with `…`.
const LABEL_CHARS: usize = 46;

/// Producing tasks left, the asset in the middle, scheduled DAGs and
/// reading tasks right; curves from each producer to the asset and from
/// the asset to each consumer.
fn lineage(a: &AssetLine) -> Lineage {
    let left: Vec<(&Link, &'static str)> = a.producers.iter().map(|l| (l, "task")).collect();
    let right: Vec<(&Link, &'static str)> = a
        .scheduled
        .iter()
        .map(|l| (l, "dag"))
        .chain(a.readers.iter().map(|l| (l, "task")))
        .collect();
    let rows = left.len().max(right.len()).max(1) as i32;
    let height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y;
    let column_y = |n: usize, i: usize| -> i32 {
        let span = n as i32 * NODE_H + (n as i32 - 1).max(0) * GAP_Y;
        (height - span) / 2 + i as i32 * (NODE_H + GAP_Y)
    };
    let label = |s: &str| -> String {
        if s.chars().count() > LABEL_CHARS {
            let cut: String = s.chars().take(LABEL_CHARS - 1).collect();
            format!("{cut}…")
        } else {
            s.to_owned()
        }
    };
    let node = |x: i32, y: i32, text: &str, kind: &'static str, href: String| LineageNode {
        x,
        y,
        w: COL_W,
        text_x: x + 14,
        text_y: y + NODE_H / 2 + 4,
        label: label(text),
        kind,
        href,
    };
    let (x_left, x_mid, x_right) = (PAD, PAD + COL_W + GAP_X, PAD + 2 * (COL_W + GAP_X));
    let mid_y = column_y(1, 0);
    let mut nodes = vec![node(x_mid, mid_y, &a.name, "asset", a.href.clone())];
    let mut edges = Vec::new();
    let curve = |x1: i32, y1: i32, x2: i32, y2: i32| -> String {
        let c = (x2 - x1) / 2;
        format!("M{x1},{y1} C{},{y1} {},{y2} {x2},{y2}", x1 + c, x2 - c)
    };
    for (i, (l, kind)) in left.iter().enumerate() {
        let y = column_y(left.len(), i);
        nodes.push(node(x_left, y, &l.text, kind, l.href.clone()));
        edges.push(curve(
            x_left + COL_W,
            y + NODE_H / 2,
            x_mid,
            mid_y + NODE_H / 2,
        ));
    }
    for (i, (l, kind)) in right.iter().enumerate() {
        let y = column_y(right.len(), i);
        nodes.push(node(x_right, y, &l.text, kind, l.href.clone()));
        edges.push(curve(
            x_mid + COL_W,
            mid_y + NODE_H / 2,
            x_right,
            y + NODE_H / 2,
        ));
    }
    Lineage {
        width: x_right + COL_W + PAD,
        height,
        nodes,
        edges,
    }
}

struct EventLine {
    when: String,
    partition: String,
    source: Option<Link>,
    task: String,
    try_number: String,
    created_by: String,
    runs: Vec<Link>,
}

/// Updates a scheduled DAG has seen and not run on yet.
struct Waiting {
    dag: Link,
    events: usize,
    partitions: String,
}

#[derive(Template)]
#[template(path = "asset.html")]
struct AssetPage {
    nav: Nav,
    asset: AssetLine,
    lineage: Lineage,
    waiting: Vec<Waiting>,
    events: Vec<EventLine>,
    pager: Pager,
}

#[derive(Deserialize)]
struct AssetQuery {
    offset: Option<String>,
}

/// `/assets/{id}`: lineage, waiting DAGs, and the events newest first.
async fn asset_page(
    user: PageUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AssetQuery>,
) -> Result<Response, Problem> {
    let nav = Nav::new(&user, "assets");
    let Ok(id) = id.parse::<i64>() else {
        return Ok(ErrorPage::not_found(
            nav,
            &format!("no asset `{id}`: asset ids are numbers (see /assets)"),
        ));
    };
    let offset = match q.offset.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(o)) if o >= 0 => o,
        Some(_) => {
            return Ok(ErrorPage::bad_param(
                nav,
                "offset",
                "expected a whole number of events to skip, 0 or more",
            ))
        }
    };
    let Some(row) = state.store.asset(id).await? else {
        return Ok(ErrorPage::not_found(nav, &format!("no asset with id {id}")));
    };
    let scheduled: Vec<String> = row
        .scheduled_dags
        .iter()
        .map(|d| d.dag_id.clone())
        .collect();
    let asset = line(row);
    let queued = state.store.queued_asset_events(None).await?;
    let waiting = scheduled
        .iter()
        .map(|dag_id| {
            let mine: Vec<_> = queued
                .iter()
                .filter(|q| &q.dag_id == dag_id && q.asset_id == id)
                .collect();
            let mut partitions: Vec<&str> = mine
                .iter()
                .map(|q| q.partition.as_str())
                .filter(|p| !p.is_empty())
                .collect();
            partitions.sort_unstable();
            partitions.dedup();
            Waiting {
                dag: dag_link(dag_id),
                events: mine.len(),
                partitions: days_summary(&partitions),
            }
        })
        .collect();
    let filter = AssetEventFilter {
        asset_id: Some(id),
        newest_first: true,
        ..Default::default()
    };
    let (rows, total) = state
        .store
        .asset_events(&filter, EVENTS_PAGE, offset)
        .await?;
    let shown = rows.len() as i64;
    let events = rows
        .into_iter()
        .map(|e| EventLine {
            when: fmt_time(Some(e.timestamp)),
            partition: e.partition,
            source: match (&e.source_dag_id, &e.source_run_id) {
                (Some(d), Some(r)) => Some(Link {
                    text: format!("{d} › {r}"),
                    href: run_url(d, r),
                }),
                _ => None,
            },
            task: e.source_task_id.unwrap_or_default(),
            try_number: e
                .source_try_number
                .map(|t| t.to_string())
                .unwrap_or_default(),
            created_by: e.created_by.unwrap_or_default(),
            runs: e
                .created_dagruns
                .iter()
                .map(|r| Link {
                    text: format!("{} › {} ({})", r.dag_id, r.run_id, r.state),
                    href: run_url(&r.dag_id, &r.run_id),
                })
                .collect(),
        })
        .collect();
    let page = AssetPage {
        nav,
        lineage: lineage(&asset),
        asset,
        waiting,
        events,
        pager: Pager::new(total, offset, shown, EVENTS_PAGE, |o| {
            format!("{}?offset={o}", asset_url(id))
        }),
    };
    Ok(render(&page, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(t: &str) -> Link {
        Link {
            text: t.to_owned(),
            href: "/x".to_owned(),
        }
    }

    #[test]
    fn many_waiting_days_are_shortened_to_the_first_two_and_the_last() {
        assert_eq!(days_summary(&["a", "b"]), "a, b");
        assert_eq!(
            days_summary(&["d1", "d2", "d3", "d4", "d5"]),
            "d1, d2, … d5 (5 days)"
        );
    }

    #[test]
    fn lineage_puts_producers_left_and_consumers_right_of_the_asset() {
        let a = AssetLine {
            href: "/assets/1".into(),
            name: "silver.games".into(),
            uri: "iceberg://silver.games".into(),
            group: "iceberg".into(),
            producers: vec![link("historical_games_daily › quality.silver_games")],
            scheduled: vec![link("gold_marts_nightly")],
            readers: vec![link("gold_marts_nightly › dims.dim_teams"), link("x › y")],
            last_when: "-".into(),
            last_partition: String::new(),
            last_run: None,
            events: 0,
        };
        let g = lineage(&a);
        assert_eq!(g.nodes.len(), 5);
        assert_eq!(g.edges.len(), 4);
        let asset = &g.nodes[0];
        assert_eq!(asset.kind, "asset");
        assert!(g.nodes[1].x < asset.x, "producer left of the asset");
        assert!(g.nodes.iter().skip(2).all(|n| n.x > asset.x));
        assert!(g.nodes.iter().all(|n| n.y >= 0 && n.y + NODE_H <= g.height));
        let long = "a".repeat(60);
        let cut = lineage(&AssetLine { name: long, ..a });
        assert!(cut.nodes[0].label.ends_with('…'));
        assert_eq!(cut.nodes[0].label.chars().count(), LABEL_CHARS);
    }
}
