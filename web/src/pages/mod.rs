//! Server-rendered pages. Each module holds one page family: its handlers,
//! its askama template structs, and its routes. Every page but the login
//! page needs a session ([`PageUser`] redirects to `/login`); forms that
//! change state carry the session's CSRF token and need the operator role.

mod actions;
mod admin;
mod alerts;
mod analytics;
pub(crate) mod assets;
mod chart;
mod csv;
mod dag;
mod dags;
pub(crate) mod follows;
mod graph;
mod grid;
mod login;
mod markets;
mod run;
mod streams;
mod task;
pub(crate) mod ttl_cache;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use orchestrator::RunState;
use serde_json::Value;

use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .merge(login::routes())
        .merge(dags::routes())
        .merge(dag::routes())
        .merge(grid::routes())
        .merge(run::routes())
        .merge(task::routes())
        .merge(actions::routes())
        .merge(streams::routes())
        .merge(markets::routes())
        .merge(analytics::routes())
        .merge(alerts::routes())
        .merge(assets::routes())
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(state, problem_page))
}

#[derive(Template)]
#[template(path = "unavailable.html")]
struct UnavailablePage {
    detail: String,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    title: String,
    detail: String,
}

/// A page route that answers with a problem (an unknown DAG, run or task,
/// a refused action) gets it as a page in the site's layout, not the API's
/// problem-details JSON a browser would show raw. While the metadata
/// database is unreachable the page says so (503, `Retry-After`).
async fn problem_page(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // What finding the user again takes (the session cookie), kept in
    // case the answer is a problem: the page then has the usual header.
    let uri = req.uri().clone();
    let cookie = req.headers().get(axum::http::header::COOKIE).cloned();
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let status = res.status();
    if !is_problem && status != StatusCode::SERVICE_UNAVAILABLE {
        return res;
    }
    let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let detail =
            detail.unwrap_or_else(|| "BetFlow cannot serve this page right now.".to_owned());
        let mut page = render(&UnavailablePage { detail }, status);
        page.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
        return page;
    }
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let detail = detail.unwrap_or_else(|| title.clone());
    let mut parts = axum::http::Request::builder()
        .uri(uri)
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| axum::http::Request::new(()).into_parts().0);
    if let Some(cookie) = cookie {
        parts.headers.insert(axum::http::header::COOKIE, cookie);
    }
    use axum::extract::FromRequestParts;
    match PageUser::from_request_parts(&mut parts, &state).await {
        Ok(user) => render(
            &ErrorPage {
                nav: Nav::new(&user, ""),
                title,
                message: detail,
            },
            status,
        ),
        Err(_) => render(&ProblemPage { title, detail }, status),
    }
}

/// `/` is the DAGs page, as in Airflow; the redirect keeps one URL per page.
async fn home(_user: PageUser) -> Redirect {
    Redirect::to("/dags")
}

/// What the header of every logged-in page shows, and the CSRF token its
/// forms and htmx requests carry.
pub struct Nav {
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
    pub can_operate: bool,
    pub is_admin: bool,
    /// Which nav entry is highlighted.
    pub section: &'static str,
}

impl Nav {
    pub fn new(user: &PageUser, section: &'static str) -> Self {
        Self {
            username: user.user.username.clone(),
            role: user.user.role.as_str(),
            csrf: user.csrf.clone(),
            can_operate: user.can_operate(),
            is_admin: user.user.role >= crate::auth::Role::Admin,
            section,
        }
    }
}

/// A page that says what went wrong with the request, in the layout of
/// every page: a bad query parameter (400, naming it) or a missing thing (404).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub nav: Nav,
    pub title: String,
    pub message: String,
}

impl ErrorPage {
    pub fn bad_param(nav: Nav, name: &str, message: &str) -> Response {
        let page = ErrorPage {
            nav,
            title: format!("Bad parameter `{name}`"),
            message: message.to_owned(),
        };
        render(&page, StatusCode::BAD_REQUEST)
    }

    pub fn not_found(nav: Nav, message: &str) -> Response {
        let page = ErrorPage {
            nav,
            title: "Not found".to_owned(),
            message: message.to_owned(),
        };
        render(&page, StatusCode::NOT_FOUND)
    }
}

/// "Items 51–100 of 230" with newer/older links, for lists paged newest
/// first by `offset`.
pub struct Pager {
    pub total: i64,
    pub from: i64,
    pub to: i64,
    /// Empty on the first page.
    pub newer_href: String,
    /// Empty on the last page.
    pub older_href: String,
}

impl Pager {
    /// `shown` items at `offset` of `total`, `size` a page; `href` makes
    /// the link to another offset.
    pub fn new(
        total: i64,
        offset: i64,
        shown: i64,
        size: i64,
        href: impl Fn(i64) -> String,
    ) -> Self {
        Self {
            total,
            from: if shown == 0 { 0 } else { offset + 1 },
            to: offset + shown,
            newer_href: if offset > 0 {
                href((offset - size).max(0))
            } else {
                String::new()
            },
            older_href: if offset + shown < total {
                href(offset + shown)
            } else {
                String::new()
            },
        }
    }
}

/// Render a page, turning a template error into a logged 500.
pub fn render<T: Template>(page: &T, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

/// Percent-encode one path segment: run ids hold `:` and `+`, task ids `.`.
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn dag_url(dag_id: &str) -> String {
    format!("/dags/{}", seg(dag_id))
}

pub fn run_url(dag_id: &str, run_id: &str) -> String {
    format!("/dags/{}/runs/{}", seg(dag_id), seg(run_id))
}

pub fn task_url(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!(
        "/dags/{}/runs/{}/tasks/{}",
        seg(dag_id),
        seg(run_id),
        seg(task_id)
    )
}

/// Timestamps in UTC, to the second: the database's and Airflow's default.
pub fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".to_owned(),
    }
}

/// `0.42s`, `12.3s`, `4m 05s`, `2h 03m`: short enough for table cells.
pub fn fmt_duration(secs: Option<f64>) -> String {
    let Some(s) = secs.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "-".to_owned();
    };
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        let whole = s as u64;
        format!("{}m {:02}s", whole / 60, whole % 60)
    } else {
        let whole = s as u64;
        format!("{}h {:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

/// Seconds between two timestamps; for a run still going, until now.
pub fn span_secs(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    let start = start?;
    let end = end.unwrap_or_else(Utc::now);
    Some((end - start).num_milliseconds() as f64 / 1000.0)
}

pub fn pretty_json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Only local paths, so a form's `next` cannot send the browser elsewhere.
pub fn local_path(next: Option<&str>, fallback: String) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_owned(),
        _ => fallback,
    }
}

/// A path on this origin, as a browser will read it from `Location`: one
/// leading `/` and never `//` (another host), no `\` (which browsers read
/// as `/`), and no whitespace or control character, raw or
/// percent-encoded (browsers drop tabs and newlines, so `/\t/evil` would
/// become `//evil`). Capped in length, as a query string is.
fn is_local_path(n: &str) -> bool {
    let bad_char = |c: char| c == '\\' || c.is_whitespace() || c.is_control();
    let encoded_bad = |rest: &str| {
        let hex = rest.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok());
        matches!(hex, Some(b) if b < 0x20 || b == 0x7f || b == b'\\' || b == b'/')
    };
    n.len() <= 2048
        && n.starts_with('/')
        && !n.starts_with("//")
        && !n.chars().any(bad_char)
        && !n.match_indices('%').any(|(i, _)| encoded_bad(&n[i + 1..]))
}

/// A run state and how many runs are in it, for the coloured counters.
pub struct StateCount {
    pub state: RunState,
    pub count: i64,
}

/// Counts in [`RunState::ALL`] order (Airflow's: queued, running, success,
/// failed), zero-filled, so columns line up.
pub fn run_state_counts(counts: impl IntoIterator<Item = (RunState, i64)>) -> Vec<StateCount> {
    let mut out: Vec<StateCount> = RunState::ALL
        .into_iter()
        .map(|state| StateCount { state, count: 0 })
        .collect();
    for (state, n) in counts {
        if let Some(c) = out.iter_mut().find(|c| c.state == state) {
            c.count += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_survive_as_path_segments() {
        assert_eq!(
            seg("manual__2024-03-01T00:00:00+00:00"),
            "manual__2024-03-01T00%3A00%3A00%2B00%3A00"
        );
        assert_eq!(seg("process.transform"), "process.transform");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(None), "-");
        assert_eq!(fmt_duration(Some(0.421)), "0.42s");
        assert_eq!(fmt_duration(Some(245.0)), "4m 05s");
        assert_eq!(fmt_duration(Some(7380.0)), "2h 03m");
    }

    #[test]
    fn run_counts_line_up_in_airflows_order() {
        let counts = run_state_counts([(RunState::Failed, 2), (RunState::Queued, 1)]);
        let shown: Vec<(String, i64)> = counts
            .iter()
            .map(|c| (c.state.to_string(), c.count))
            .collect();
        assert_eq!(
            shown,
            [
                ("queued".to_owned(), 1),
                ("running".to_owned(), 0),
                ("success".to_owned(), 0),
                ("failed".to_owned(), 2)
            ]
        );
    }

    #[test]
    fn next_paths_stay_local() {
        assert_eq!(local_path(Some("/dags?tag=x"), "/".into()), "/dags?tag=x");
        assert_eq!(local_path(Some("//evil.example"), "/d".into()), "/d");
        assert_eq!(local_path(Some("https://evil.example"), "/d".into()), "/d");
        assert_eq!(local_path(None, "/d".into()), "/d");
        for evil in [
            "/\\evil.example",
            "/%09/evil.example",
            "/%5c/evil.example",
            "/%2f/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/\u{0}x",
            "\\\\evil.example",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(Some(evil), "/d".into()), "/d", "{evil:?}");
        }
        assert_eq!(
            local_path(Some("/markets?sport=nfl&date=2024-09-08"), "/d".into()),
            "/markets?sport=nfl&date=2024-09-08"
        );
        assert_eq!(
            local_path(Some("/dags/a/runs/manual__2024%3A00"), "/d".into()),
            "/dags/a/runs/manual__2024%3A00"
        );
        assert_eq!(local_path(Some(&"/a".repeat(2000)), "/d".into()), "/d");
    }
}
