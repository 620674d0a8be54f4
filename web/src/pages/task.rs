//! `/dags/{dag_id}/runs/{run_id}/tasks/{task_id}`: one task instance's logs
//! per try, its tries, output (XCom `return_value`) and rendered params; and
//! `…/logs/stream`, server-sent events that follow a running try's log.
//!
//! Following polls `task_logs` for ids above the last one sent every 500 ms
//! (the executor flushes lines at that rate) and ends once the try is no
//! longer running. The try's outcome and its last lines are committed in one
//! transaction, so reading "not running" first and the lines second never
//! misses the tail.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use orchestrator::store::read::LogLineRow;
use orchestrator::{Store, TaskState};
use serde::Deserialize;
use serde_json::Value;

use super::{
    dag_url, fmt_duration, fmt_time, pretty_json, render, run_url, span_secs, task_url, Nav,
};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

/// Lines shown on the page; older ones are left out (the CLI prints them all).
const PAGE_LOG_LINES: i64 = 10_000;
/// Lines sent per poll when following.
const FOLLOW_BATCH: i64 = 1_000;
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// How often a follow checks that its session still lives.
const SESSION_CHECK: Duration = Duration::from_secs(5);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            get(task_page),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/stream",
            get(log_stream),
        )
}

#[derive(Deserialize, Default)]
struct TryQuery {
    #[serde(rename = "try")]
    try_number: Option<i32>,
    /// Which instance of a mapped task (its first when unset).
    map_index: Option<i32>,
    /// Send only lines with ids above this (the page already shows those).
    after: Option<i64>,
}

/// One log line as the page and the stream show it.
fn log_line(l: &LogLineRow) -> String {
    format!(
        "{} {:<5} {}",
        l.ts.format("%Y-%m-%d %H:%M:%S%.3f"),
        l.level,
        l.message.replace('\r', "")
    )
}

struct TryTab {
    number: i32,
    href: String,
    selected: bool,
}

/// One instance of a mapped task, in the page's list of them.
struct MappedView {
    map_index: i32,
    state: TaskState,
    item: String,
    href: String,
    selected: bool,
}

struct TryRowView {
    number: i32,
    state: TaskState,
    worker: String,
    start: String,
    end: String,
    duration: String,
    error: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    nav: Nav,
    dag_id: String,
    dag_href: String,
    run_id: String,
    run_href: String,
    task_id: String,
    href: String,
    state: TaskState,
    try_number: i32,
    max_tries: i32,
    start: String,
    end: String,
    duration: String,
    worker: String,
    pool: String,
    kind: String,
    trigger_rule: String,
    upstream: Vec<(String, String)>,
    downstream: Vec<(String, String)>,
    doc: String,
    tabs: Vec<TryTab>,
    selected_try: i32,
    log_text: String,
    log_truncated: bool,
    /// SSE endpoint to follow while the selected try runs; empty otherwise.
    follow_url: String,
    tries: Vec<TryRowView>,
    output_json: Option<String>,
    params_json: Option<String>,
    can_act: bool,
    /// The instances of a mapped task; empty for an unmapped one.
    mapped: Vec<MappedView>,
    /// What the task maps over (`param sports`), for a mapped task.
    map_source: String,
    /// Why a mapped task has no instances (not expanded yet, or not at all).
    map_note: String,
    /// The shown instance's `[i]`, for a mapped task.
    map_label: String,
    item_json: Option<String>,
}

async fn task_page(
    user: PageUser,
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(q): Query<TryQuery>,
) -> Result<Response, Problem> {
    let store = &state.store;
    let (Some(run), Some(ti)) = (
        store.run(&dag_id, &run_id).await?,
        store
            .task_instance(&dag_id, &run_id, &task_id, q.map_index)
            .await?,
    ) else {
        return Err(Problem::not_found(format!(
            "run `{run_id}` of DAG `{dag_id}` has no task `{task_id}`"
        )));
    };
    let dag = state.bag.get(&dag_id).cloned();
    let node = dag.as_ref().and_then(|d| d.task(&task_id));
    let tries: Vec<_> = store
        .task_tries(&dag_id, &run_id)
        .await?
        .into_iter()
        .filter(|t| t.task_id == task_id && t.map_index == ti.map_index)
        .collect();
    let mut numbers: BTreeSet<i32> = (1..=ti.try_number).collect();
    numbers.extend(
        store
            .log_try_numbers(&dag_id, &run_id, &task_id, ti.map_index)
            .await?,
    );
    numbers.extend(tries.iter().map(|t| t.try_number));
    let latest = numbers.last().copied().unwrap_or(0);
    let selected = q
        .try_number
        .filter(|n| numbers.contains(n))
        .unwrap_or(latest);
    let lines = if numbers.contains(&selected) {
        store
            .task_log_tail(
                &dag_id,
                &run_id,
                &task_id,
                ti.map_index,
                selected,
                PAGE_LOG_LINES,
            )
            .await?
    } else {
        Vec::new()
    };
    let base = task_url(&dag_id, &run_id, &task_id);
    let mapped_rows = if ti.map_index >= 0 || node.is_some_and(|n| n.map.is_some()) {
        store.mapped_instances(&dag_id, &run_id, &task_id).await?
    } else {
        Vec::new()
    };
    let item = mapped_rows
        .iter()
        .find(|m| m.map_index == ti.map_index)
        .and_then(|m| m.map_item.clone());
    let mapped: Vec<MappedView> = mapped_rows
        .into_iter()
        .map(|m| MappedView {
            map_index: m.map_index,
            state: m.state,
            item: m
                .map_item
                .as_ref()
                .map(|v| {
                    let text = v.to_string();
                    if text.chars().count() > 80 {
                        format!("{}…", text.chars().take(79).collect::<String>())
                    } else {
                        text
                    }
                })
                .unwrap_or_default(),
            href: format!("{base}?map_index={}", m.map_index),
            selected: m.map_index == ti.map_index,
        })
        .collect();
    // The shown instance's own address: its tabs and follow stay on it.
    let href = if ti.map_index >= 0 {
        format!("{base}?map_index={}", ti.map_index)
    } else {
        base.clone()
    };
    let sep = if href.contains('?') { '&' } else { '?' };
    let following = ti.state == TaskState::Running && selected == ti.try_number;
    let last_id = lines.last().map(|l| l.id).unwrap_or(0);
    let output = store.xcom(&dag_id, &run_id, &task_id, ti.map_index).await?;
    let link = |id: &String| (id.clone(), task_url(&dag_id, &run_id, id));
    let page = TaskPage {
        nav: Nav::new(&user, "dags"),
        dag_href: dag_url(&dag_id),
        run_href: run_url(&dag_id, &run_id),
        state: ti.state,
        try_number: ti.try_number,
        max_tries: ti.max_tries + 1,
        start: fmt_time(ti.start_date),
        end: fmt_time(ti.end_date),
        duration: fmt_duration(
            ti.duration
                .or_else(|| following.then(|| span_secs(ti.start_date, None)).flatten()),
        ),
        worker: match (&ti.hostname, &ti.worker_id) {
            (Some(h), Some(w)) => format!("{h} / {w}"),
            (_, Some(w)) => w.clone(),
            _ => "-".to_owned(),
        },
        pool: ti.pool.clone(),
        kind: match node {
            Some(n) if n.is_sensor() => "sensor".to_owned(),
            Some(_) => "operator".to_owned(),
            None => "-".to_owned(),
        },
        trigger_rule: node
            .map(|n| n.trigger_rule.as_str().to_owned())
            .unwrap_or_else(|| "-".to_owned()),
        upstream: node
            .map(|n| n.upstream.iter().map(link).collect())
            .unwrap_or_default(),
        downstream: node
            .map(|n| n.downstream.iter().map(link).collect())
            .unwrap_or_default(),
        doc: node.map(|n| n.doc.clone()).unwrap_or_default(),
        tabs: numbers
            .iter()
            .map(|n| TryTab {
                number: *n,
                href: format!("{href}{sep}try={n}"),
                selected: *n == selected,
            })
            .collect(),
        selected_try: selected,
        log_truncated: lines.len() as i64 >= PAGE_LOG_LINES,
        log_text: lines.iter().map(log_line).collect::<Vec<_>>().join("\n"),
        follow_url: if following {
            format!(
                "{base}/logs/stream?try={selected}&after={last_id}&map_index={}",
                ti.map_index
            )
        } else {
            String::new()
        },
        tries: tries
            .iter()
            .map(|t| TryRowView {
                number: t.try_number,
                state: t.state,
                worker: t.worker_id.clone().unwrap_or_else(|| "-".to_owned()),
                start: fmt_time(t.start_date),
                end: fmt_time(t.end_date),
                duration: fmt_duration(t.duration),
                error: t.error.clone().unwrap_or_default(),
            })
            .collect(),
        output_json: output.as_ref().map(pretty_json),
        params_json: dag
            .as_ref()
            .map(|d| pretty_json(&Value::Object(d.resolve_params(&run.conf)))),
        can_act: user.can_operate() && dag.is_some(),
        mapped,
        map_source: node
            .and_then(|n| Some((n, n.map.as_ref()?)))
            .map(|(n, m)| {
                let list = match &m.over {
                    orchestrator::MapOver::Param(p) => format!("param {p}"),
                    orchestrator::MapOver::Output(t) => format!("the output of {t}"),
                };
                match (&n.group, n.in_mapped_group) {
                    (Some(g), true) => format!(
                        "{list}, as every task of mapped group {g}: instance i follows instance i of the group's tasks upstream of it"
                    ),
                    _ => list,
                }
            })
            .unwrap_or_default(),
        map_note: match ti.state {
            TaskState::Failed => {
                "Not expanded: the list could not be read (the Expansion log says why).".to_owned()
            }
            TaskState::Skipped => {
                "Not expanded: the list was empty, so the task was skipped.".to_owned()
            }
            TaskState::UpstreamFailed => "Not expanded: an upstream task failed.".to_owned(),
            _ => {
                "Not expanded yet: the instances are made once the task's upstream tasks are done."
                    .to_owned()
            }
        },
        map_label: if ti.map_index >= 0 {
            format!("[{}]", ti.map_index)
        } else {
            String::new()
        },
        item_json: item.as_ref().map(pretty_json),
        href,
        dag_id,
        run_id,
        task_id,
    };
    Ok(render(&page, StatusCode::OK))
}

/// What the follower knows between polls.
struct Follow {
    store: Store,
    dag_id: String,
    run_id: String,
    task_id: String,
    map_index: i32,
    try_number: i32,
    last_id: i64,
    pending: VecDeque<Event>,
    /// The end event is queued; stop once `pending` drains.
    finished: bool,
    first_poll: bool,
    /// The session the follow was opened under: once it ends (logout,
    /// expiry, a disabled user), so does the follow.
    session: Option<String>,
    db: sqlx::PgPool,
    session_checked: std::time::Instant,
    /// Held while the stream lives: the user's follow slot.
    _slot: super::follows::FollowSlot,
}

impl Follow {
    /// One poll: is the session still live (every few seconds), is the try
    /// still running, then what it logged since `last_id`.
    async fn poll(&mut self) {
        if self.session_checked.elapsed() >= SESSION_CHECK {
            self.session_checked = std::time::Instant::now();
            let live = match &self.session {
                Some(token) => matches!(
                    crate::auth::session_user(&self.db, token).await,
                    Ok(Some(_))
                ),
                None => false,
            };
            if !live {
                self.pending.push_back(
                    Event::default()
                        .event("end")
                        .data("your session ended; log in again to follow the log"),
                );
                self.finished = true;
                return;
            }
        }
        let running = match self
            .store
            .task_instance(
                &self.dag_id,
                &self.run_id,
                &self.task_id,
                Some(self.map_index),
            )
            .await
        {
            Ok(ti) => {
                ti.is_some_and(|t| t.state == TaskState::Running && t.try_number == self.try_number)
            }
            Err(e) => return self.fail(e),
        };
        let lines = match self
            .store
            .task_logs_after(
                &self.dag_id,
                &self.run_id,
                (&self.task_id, self.map_index),
                self.try_number,
                self.last_id,
                FOLLOW_BATCH,
            )
            .await
        {
            Ok(lines) => lines,
            Err(e) => return self.fail(e),
        };
        let full_batch = lines.len() as i64 >= FOLLOW_BATCH;
        for l in &lines {
            self.last_id = l.id;
            self.pending
                .push_back(Event::default().id(l.id.to_string()).data(log_line(l)));
        }
        if !running && !full_batch {
            self.pending
                .push_back(Event::default().event("end").data("try finished"));
            self.finished = true;
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        tracing::warn!(task_id = %self.task_id, "log follow stopped: {e}");
        self.pending.push_back(
            Event::default()
                .event("end")
                .data("the log could not be read; reload the page"),
        );
        self.finished = true;
    }
}

fn follow_stream(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(f, |mut f| async move {
        loop {
            if let Some(ev) = f.pending.pop_front() {
                return Some((Ok(ev), f));
            }
            if f.finished {
                return None;
            }
            if !f.first_poll {
                tokio::time::sleep(FOLLOW_POLL).await;
            }
            f.first_poll = false;
            f.poll().await;
        }
    })
}

async fn log_stream(
    user: PageUser,
    State(state): State<AppState>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
    Query(q): Query<TryQuery>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some(ti) = state
        .store
        .task_instance(&dag_id, &run_id, &task_id, q.map_index)
        .await?
    else {
        return Err(Problem::not_found(format!(
            "run `{run_id}` of DAG `{dag_id}` has no task `{task_id}`"
        )));
    };
    // A reconnecting EventSource says where it stopped.
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let Some(slot) = state.follows.open(user.user.id) else {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "at most {} live log follows per user; close one (another tab or window) first",
                super::follows::PER_USER
            ),
        ));
    };
    let session = crate::auth::extract::cookie_from_headers(
        &headers,
        crate::auth::extract::session_cookie(state.secure_cookies),
    )
    .map(str::to_owned);
    let follow = Follow {
        session,
        db: state.db.clone(),
        session_checked: std::time::Instant::now(),
        _slot: slot,
        store: state.store.clone(),
        try_number: q.try_number.unwrap_or(ti.try_number),
        map_index: ti.map_index,
        last_id: resumed.max(q.after).unwrap_or(0),
        dag_id,
        run_id,
        task_id,
        pending: VecDeque::new(),
        finished: false,
        first_poll: true,
    };
    Ok(Sse::new(follow_stream(follow))
        .keep_alive(KeepAlive::default())
        .into_response())
}
