//! `/alerts`: the market alerts the odds consumer records — arbitrage,
//! steam and value — newest first, for one sports day, filtered by sport
//! and kind, refreshed every two seconds (`/alerts/live`) and downloadable
//! as `/alerts.csv`. An alert is one signal (kind, game, market, side,
//! line) with when it was first and last seen; its delivery to the webhook,
//! when one is set, shows beside it.

use std::collections::HashMap;
use std::fmt::Write as _;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::markets::{fmt_point, today, BadParam, Filter};
use super::{csv, fmt_time, render, seg, ErrorPage, Nav};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(alerts_page))
        .route("/alerts/live", get(alerts_fragment))
        .route("/alerts.csv", get(alerts_csv))
}

/// Kinds of alert, as the table spells them.
const KINDS: [&str; 3] = ["arbitrage", "steam", "value"];

/// Alerts shown at most: a busy replayed day has thousands of signals.
const LIMIT: i64 = 500;

#[derive(Debug, Clone, sqlx::FromRow)]
struct AlertRow {
    kind: String,
    sport: String,
    event_id: String,
    market: String,
    outcome: Option<String>,
    line: Option<f64>,
    magnitude: f64,
    bookmakers: Vec<String>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    times_seen: i64,
    notified_at: Option<DateTime<Utc>>,
    notify_error: Option<String>,
    home_team: Option<String>,
    away_team: Option<String>,
}

const ALERTS: &str = "SELECT a.kind, a.sport, a.event_id, a.market, a.outcome, a.line,
        a.magnitude, a.bookmakers, a.first_seen, a.last_seen, a.times_seen, a.notified_at,
        a.notify_error, e.home_team, e.away_team
    FROM serving.market_alerts a LEFT JOIN serving.odds_events e USING (event_id)
    WHERE a.last_seen >= $1 AND a.first_seen < $2
      AND ($3::text IS NULL OR a.sport = $3) AND ($4::text IS NULL OR a.kind = $4)
    ORDER BY a.last_seen DESC, a.id DESC LIMIT $5";

async fn alerts(pool: &PgPool, f: &AlertFilter) -> sqlx::Result<Vec<AlertRow>> {
    let (from, to) = f.day.bounds();
    sqlx::query_as(ALERTS)
        .bind(from)
        .bind(to)
        .bind(f.day.sport.as_deref())
        .bind(f.kind.as_deref())
        .bind(LIMIT)
        .fetch_all(pool)
        .await
}

struct AlertFilter {
    day: Filter,
    kind: Option<String>,
}

fn filter_of(state: &AppState, query: &HashMap<String, String>) -> Result<AlertFilter, BadParam> {
    let day = Filter::parse(query, &state.sports, today())?;
    let kind = match query.get("kind").map(|k| k.trim()) {
        None | Some("") => None,
        Some(k) if KINDS.contains(&k) => Some(k.to_owned()),
        Some(k) => {
            return Err(BadParam {
                name: "kind",
                message: format!(
                    "`{k}` is not a kind of alert; use one of {}",
                    KINDS.join(", ")
                ),
            })
        }
    };
    Ok(AlertFilter { day, kind })
}

impl AlertFilter {
    fn query(&self) -> String {
        match &self.kind {
            Some(k) => format!("{}&kind={k}", self.day.query()),
            None => self.day.query(),
        }
    }
}

struct AlertView {
    kind: String,
    sport: String,
    game: String,
    href: String,
    what: String,
    size: String,
    bookmakers: String,
    first_seen: String,
    last_seen: String,
    times_seen: i64,
    delivery: String,
}

/// The alert's size as its kind measures it.
fn size_of(kind: &str, magnitude: f64) -> String {
    match kind {
        "arbitrage" => format!("margin {:.2}%", magnitude * 100.0),
        "value" => format!("edge {:+.1}%", magnitude * 100.0),
        _ => format!("{:+.1} pts", magnitude * 100.0),
    }
}

fn view(a: &AlertRow) -> AlertView {
    let game = match (&a.away_team, &a.home_team) {
        (Some(away), Some(home)) => format!("{away} @ {home}"),
        _ => a.event_id.clone(),
    };
    let side = match (a.outcome.as_deref(), &a.home_team, &a.away_team) {
        (Some("home"), Some(home), _) => home.clone(),
        (Some("away"), _, Some(away)) => away.clone(),
        (Some(o), _, _) => o.to_owned(),
        (None, _, _) => "every side".to_owned(),
    };
    let line = match (a.market.as_str(), a.line) {
        ("spreads", Some(l)) => format!(" (home {})", fmt_point(l)),
        (_, Some(l)) => format!(" {l}"),
        _ => String::new(),
    };
    AlertView {
        kind: a.kind.clone(),
        sport: a.sport.clone(),
        game,
        href: format!("/markets/{}/{}", seg(&a.sport), seg(&a.event_id)),
        what: format!("{}{line} · {side}", a.market),
        size: size_of(&a.kind, a.magnitude),
        bookmakers: a.bookmakers.join(", "),
        first_seen: fmt_time(Some(a.first_seen)),
        last_seen: fmt_time(Some(a.last_seen)),
        times_seen: a.times_seen,
        delivery: match (&a.notified_at, &a.notify_error) {
            (Some(_), None) => "sent".to_owned(),
            (Some(_), Some(e)) => e.clone(),
            (None, _) => String::new(),
        },
    }
}

#[derive(Template)]
#[template(path = "alerts_fragment.html")]
struct AlertsFragment {
    alerts: Vec<AlertView>,
    query: String,
    date: String,
    updated: String,
    limited: bool,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    nav: Nav,
    sports: Vec<String>,
    sport: String,
    kinds: [&'static str; 3],
    kind: String,
    date: String,
    query: String,
    feed_html: String,
}

async fn fragment(state: &AppState, f: &AlertFilter) -> Result<AlertsFragment, Problem> {
    let rows = alerts(&state.db, f).await?;
    Ok(AlertsFragment {
        limited: rows.len() as i64 == LIMIT,
        alerts: rows.iter().map(view).collect(),
        query: f.query(),
        date: f.day.date.to_string(),
        updated: Utc::now().format("%H:%M:%S UTC").to_string(),
    })
}

async fn alerts_page(
    user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let nav = Nav::new(&user, "alerts");
    let f = match filter_of(&state, &query) {
        Ok(f) => f,
        Err(bad) => return Ok(ErrorPage::bad_param(nav, bad.name, &bad.message)),
    };
    let feed_html = fragment(&state, &f)
        .await?
        .render()
        .map_err(Problem::internal)?;
    let page = AlertsPage {
        nav,
        sports: state.sports.to_vec(),
        sport: f.day.sport.clone().unwrap_or_default(),
        kinds: KINDS,
        kind: f.kind.clone().unwrap_or_default(),
        date: f.day.date.to_string(),
        query: f.query(),
        feed_html,
    };
    Ok(render(&page, StatusCode::OK))
}

async fn alerts_fragment(
    _user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let f = filter_of(&state, &query).map_err(Problem::from)?;
    Ok(render(&fragment(&state, &f).await?, StatusCode::OK))
}

async fn alerts_csv(
    _user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let f = filter_of(&state, &query).map_err(Problem::from)?;
    let rows = alerts(&state.db, &f).await?;
    let mut out = String::from(
        "kind,sport,event_id,away_team,home_team,market,outcome,line,magnitude,bookmakers,first_seen,last_seen,times_seen,notified_at,notify_error\n",
    );
    let q = csv::field;
    for a in &rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            a.kind,
            a.sport,
            q(&a.event_id),
            q(a.away_team.as_deref().unwrap_or("")),
            q(a.home_team.as_deref().unwrap_or("")),
            a.market,
            a.outcome.as_deref().unwrap_or(""),
            a.line.map(|l| l.to_string()).unwrap_or_default(),
            a.magnitude,
            q(&a.bookmakers.join(" ")),
            a.first_seen.to_rfc3339(),
            a.last_seen.to_rfc3339(),
            a.times_seen,
            a.notified_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            q(a.notify_error.as_deref().unwrap_or("")),
        );
    }
    Ok(csv::download(&format!("alerts-{}.csv", f.day.date), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_their_kind_measures() {
        assert_eq!(size_of("arbitrage", 0.036005), "margin 3.60%");
        assert_eq!(size_of("value", 0.0265), "edge +2.6%");
        assert_eq!(size_of("steam", -0.021), "-2.1 pts");
    }
}
