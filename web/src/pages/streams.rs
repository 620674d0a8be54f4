//! `/streams`: every supervised stream task (one row per task and process)
//! with its state, restarts, last error and health JSON. The table
//! refreshes itself every 5 s, since stream health changes continuously.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{dag_url, fmt_duration, fmt_time, pretty_json, render, Nav};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

/// Heartbeats older than this mean the supervising process is gone (it
/// records health every second while the task runs).
const STALE_SECS: f64 = 30.0;

pub fn routes() -> Router<AppState> {
    Router::new().route("/streams", get(streams_page))
}

struct StreamView {
    dag_id: String,
    dag_href: String,
    task_id: String,
    worker: String,
    state: String,
    restarts: i32,
    last_error: String,
    health_json: String,
    started: String,
    heartbeat_age: String,
    stale: bool,
}

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsPage {
    nav: Nav,
    streams: Vec<StreamView>,
    /// Rows of processes that exited cleanly: kept for their last health
    /// and errors, shown apart so they do not crowd the live ones.
    stopped: Vec<StreamView>,
}

async fn streams_page(user: PageUser, State(state): State<AppState>) -> Result<Response, Problem> {
    let rows = state.store.stream_tasks().await?;
    let (streams, stopped): (Vec<StreamView>, Vec<StreamView>) = rows
        .into_iter()
        .map(|r| StreamView {
            dag_href: dag_url(&r.dag_id),
            worker: match &r.hostname {
                Some(h) => format!("{h} / {}", r.worker_id),
                None => r.worker_id.clone(),
            },
            stale: r.state != "stopped" && r.heartbeat_age_secs > STALE_SECS,
            heartbeat_age: fmt_duration(Some(r.heartbeat_age_secs.max(0.0))),
            started: fmt_time(Some(r.started_at)),
            health_json: pretty_json(&r.health),
            last_error: r.last_error.unwrap_or_default(),
            restarts: r.restarts,
            state: r.state,
            dag_id: r.dag_id,
            task_id: r.task_id,
        })
        .partition(|s| s.state != "stopped");
    let page = StreamsPage {
        nav: Nav::new(&user, "streams"),
        streams,
        stopped,
    };
    Ok(render(&page, StatusCode::OK))
}
