//! The forms that change state: pause/unpause, trigger, backfill, clear and
//! mark. Each needs the operator role and the session's CSRF token (checked
//! before anything is read from the form's other fields), answers 303 back
//! to the page on success, and shows what was wrong on the page otherwise.
//!
//! Every form field is optional at deserialization so that a missing CSRF
//! token is a 403 from `check_csrf`, not a 422 from the form extractor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use orchestrator::schedule::parse_date;
use orchestrator::store::write::RunType;
use orchestrator::{Dag, DataInterval, TaskState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::dag::{render_dag, DagForms, DagQuery};
use super::run::render_run;
use super::{dag_url, local_path, run_url, seg};
use crate::audit::Action;
use crate::auth::extract::PageUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

/// Most runs one backfill form creates; larger ranges belong to the CLI,
/// which shows progress while it inserts.
const MAX_BACKFILL_RUNS: usize = 1_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/pause", post(pause))
        .route("/dags/{dag_id}/trigger", post(trigger))
        .route("/dags/{dag_id}/backfill", post(backfill))
        .route("/dags/{dag_id}/runs/{run_id}/clear", post(clear))
        .route("/dags/{dag_id}/runs/{run_id}/mark", post(mark))
}

/// Operators only, and only with this session's form token.
fn authorize(user: &PageUser, csrf_token: &str) -> Result<(), Problem> {
    user.require(Role::Operator)?;
    user.check_csrf(csrf_token)
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize)]
struct PauseForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    paused: String,
    next: Option<String>,
}

async fn pause(
    user: PageUser,
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<PauseForm>,
) -> Result<Response, Problem> {
    authorize(&user, &form.csrf_token)?;
    let paused = match form.paused.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(Problem::unprocessable(format!(
                "`paused` must be true or false, not `{other}`"
            )))
        }
    };
    if !state.store.set_paused(&dag_id, paused).await? {
        return Err(Problem::not_found(format!("no DAG `{dag_id}`")));
    }
    if !paused {
        // Unpausing may make runs due now; tell the schedulers instead of waiting a tick.
        state.store.wake().await?;
    }
    tracing::info!(user = %user.user.username, %dag_id, paused, "set paused");
    let event = if paused { "pause" } else { "unpause" };
    user.audit(
        &state.db,
        Action {
            event,
            dag_id: Some(&dag_id),
            ..Action::default()
        },
    )
    .await;
    Ok(see_other(&local_path(
        form.next.as_deref(),
        dag_url(&dag_id),
    )))
}

#[derive(Deserialize)]
struct TriggerForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    logical_date: String,
    #[serde(default)]
    conf: String,
}

/// The logical date (now when empty) and conf (a JSON object, `{}` when
/// empty) of a manual run, or what is wrong with them.
fn parse_trigger(
    dag: &Dag,
    logical_date: &str,
    conf: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, Value), String> {
    let date = match logical_date.trim() {
        "" => now,
        s => parse_date(s, dag.schedule.timezone()).map_err(|e| format!("Logical date: {e}"))?,
    };
    let conf = match conf.trim() {
        "" => json!({}),
        text => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err("Conf must be a JSON object, e.g. {\"days\": 7}".to_owned()),
            Err(e) => return Err(format!("Conf is not valid JSON: {e}")),
        },
    };
    Ok((date, conf))
}

async fn trigger(
    user: PageUser,
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<TriggerForm>,
) -> Result<Response, Problem> {
    authorize(&user, &form.csrf_token)?;
    let Some(dag) = state.bag.get(&dag_id).cloned() else {
        return Err(Problem::not_found(format!(
            "no DAG `{dag_id}` in this build"
        )));
    };
    let failed = |error: String| DagForms {
        logical_date: form.logical_date.clone(),
        conf: Some(form.conf.clone()),
        trigger_error: Some(error),
        ..DagForms::default()
    };
    let (date, conf) = match parse_trigger(&dag, &form.logical_date, &form.conf, Utc::now()) {
        Ok(v) => v,
        Err(e) => {
            let forms = failed(e);
            return render_dag(
                &state,
                &user,
                &dag_id,
                &DagQuery::default(),
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let interval = dag.schedule.manual_interval(date);
    let Some(run_id) = state
        .store
        .create_run(&dag, RunType::Manual, interval, &conf)
        .await?
    else {
        let forms = failed(format!(
            "This DAG already has a run at logical date {}; pick another date.",
            interval.start.to_rfc3339()
        ));
        return render_dag(
            &state,
            &user,
            &dag_id,
            &DagQuery::default(),
            forms,
            StatusCode::CONFLICT,
        )
        .await;
    };
    tracing::info!(user = %user.user.username, %dag_id, %run_id, "triggered run");
    user.audit(
        &state.db,
        Action {
            event: "trigger",
            dag_id: Some(&dag_id),
            run_id: Some(&run_id),
            ..Action::default()
        },
    )
    .await;
    Ok(see_other(&format!(
        "{}?run_id={}",
        dag_url(&dag_id),
        seg(&run_id)
    )))
}

#[derive(Deserialize)]
struct BackfillForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The schedule intervals whose logical dates fall in `[from, to]`.
fn backfill_intervals(dag: &Dag, from: &str, to: &str) -> Result<Vec<DataInterval>, String> {
    if dag.schedule.expression().is_none() {
        return Err("This DAG has no schedule, so it has no intervals to backfill.".to_owned());
    }
    let tz = dag.schedule.timezone();
    let from_date = parse_date(from.trim(), tz).map_err(|e| format!("From: {e}"))?;
    let to_date = parse_date(to.trim(), tz).map_err(|e| format!("To: {e}"))?;
    if from_date > to_date {
        return Err(format!("From ({from}) is after To ({to})."));
    }
    let intervals = dag
        .schedule
        .intervals_between(from_date, to_date, MAX_BACKFILL_RUNS + 1);
    if intervals.len() > MAX_BACKFILL_RUNS {
        return Err(format!(
            "The range holds more than {MAX_BACKFILL_RUNS} intervals; split it, or use `betflow backfill`."
        ));
    }
    if intervals.is_empty() {
        return Err("No schedule interval starts in that range.".to_owned());
    }
    Ok(intervals)
}

async fn backfill(
    user: PageUser,
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<BackfillForm>,
) -> Result<Response, Problem> {
    authorize(&user, &form.csrf_token)?;
    let Some(dag) = state.bag.get(&dag_id).cloned() else {
        return Err(Problem::not_found(format!(
            "no DAG `{dag_id}` in this build"
        )));
    };
    let intervals = match backfill_intervals(&dag, &form.from, &form.to) {
        Ok(i) => i,
        Err(e) => {
            let forms = DagForms {
                backfill_from: form.from.clone(),
                backfill_to: form.to.clone(),
                backfill_error: Some(e),
                ..DagForms::default()
            };
            return render_dag(
                &state,
                &user,
                &dag_id,
                &DagQuery::default(),
                forms,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let (first, last) = match (intervals.first(), intervals.last()) {
        (Some(f), Some(l)) => (f.start, l.start),
        _ => return Ok(see_other(&dag_url(&dag_id))),
    };
    let existing = state
        .store
        .logical_dates_between(&dag_id, first, last)
        .await?;
    let mut created = 0usize;
    for interval in intervals.iter().filter(|i| !existing.contains(&i.start)) {
        // `create_run` skips a date another request took meanwhile.
        if state
            .store
            .create_run(&dag, RunType::Backfill, *interval, &json!({}))
            .await?
            .is_some()
        {
            created += 1;
        }
    }
    tracing::info!(user = %user.user.username, %dag_id, created, skipped = intervals.len() - created, "backfill");
    user.audit(
        &state.db,
        Action {
            event: "backfill",
            dag_id: Some(&dag_id),
            extra: serde_json::json!({"from": form.from, "to": form.to, "created": created}),
            ..Action::default()
        },
    )
    .await;
    Ok(see_other(&dag_url(&dag_id)))
}

#[derive(Deserialize)]
struct ClearForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    task_id: String,
    /// A checkbox: present (any value) means "and everything downstream".
    downstream: Option<String>,
    next: Option<String>,
}

async fn clear(
    user: PageUser,
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
    Form(form): Form<ClearForm>,
) -> Result<Response, Problem> {
    authorize(&user, &form.csrf_token)?;
    let Some(dag) = state.bag.get(&dag_id).cloned() else {
        return Err(Problem::not_found(format!(
            "no DAG `{dag_id}` in this build"
        )));
    };
    if dag.task(&form.task_id).is_none() {
        return Err(Problem::not_found(format!(
            "DAG `{dag_id}` has no task `{}`",
            form.task_id
        )));
    }
    if state.store.run(&dag_id, &run_id).await?.is_none() {
        return Err(Problem::not_found(format!(
            "DAG `{dag_id}` has no run `{run_id}`"
        )));
    }
    let ids = if form.downstream.is_some() {
        dag.downstream_closure(&form.task_id)
    } else {
        vec![form.task_id.clone()]
    };
    let cleared = state.store.clear_tasks(&dag, &run_id, &ids).await?;
    if cleared.is_empty() {
        let msg = format!(
            "Nothing was cleared: `{}` is running or has no instance in this run yet.",
            form.task_id
        );
        return render_run(
            &state,
            &user,
            &dag_id,
            &run_id,
            Some(msg),
            StatusCode::CONFLICT,
        )
        .await;
    }
    tracing::info!(user = %user.user.username, %dag_id, %run_id, ?cleared, "cleared tasks");
    user.audit(
        &state.db,
        Action {
            event: "clear",
            dag_id: Some(&dag_id),
            run_id: Some(&run_id),
            extra: serde_json::json!({"cleared": cleared}),
            ..Action::default()
        },
    )
    .await;
    Ok(see_other(&local_path(
        form.next.as_deref(),
        run_url(&dag_id, &run_id),
    )))
}

#[derive(Deserialize)]
struct MarkForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    task_id: String,
    #[serde(default)]
    state: String,
    next: Option<String>,
}

async fn mark(
    user: PageUser,
    State(state): State<AppState>,
    Path((dag_id, run_id)): Path<(String, String)>,
    Form(form): Form<MarkForm>,
) -> Result<Response, Problem> {
    authorize(&user, &form.csrf_token)?;
    let mark_as = match form.state.parse::<TaskState>() {
        Ok(s @ (TaskState::Success | TaskState::Failed)) => s,
        _ => {
            return Err(Problem::unprocessable(format!(
                "a task can be marked success or failed, not `{}`",
                form.state
            )))
        }
    };
    if !state
        .store
        .mark_task(&dag_id, &run_id, &form.task_id, mark_as)
        .await?
    {
        let msg = format!(
            "`{}` was not marked: it is running or has no instance in this run.",
            form.task_id
        );
        return render_run(
            &state,
            &user,
            &dag_id,
            &run_id,
            Some(msg),
            StatusCode::CONFLICT,
        )
        .await;
    }
    tracing::info!(user = %user.user.username, %dag_id, %run_id, task_id = %form.task_id, state = %form.state, "marked task");
    user.audit(
        &state.db,
        Action {
            event: "mark_task",
            dag_id: Some(&dag_id),
            run_id: Some(&run_id),
            task_id: Some(&form.task_id),
            extra: serde_json::json!({"state": form.state}),
        },
    )
    .await;
    Ok(see_other(&local_path(
        form.next.as_deref(),
        run_url(&dag_id, &run_id),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn daily() -> Dag {
        Dag::builder("d").schedule("@daily", "UTC").build().unwrap()
    }

    #[test]
    fn trigger_input_is_validated() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let dag = daily();
        let (d, c) = parse_trigger(&dag, "", "", now).unwrap();
        assert_eq!((d, c), (now, json!({})));
        let (d, c) = parse_trigger(&dag, "2024-03-01", "{\"days\": 7}", now).unwrap();
        assert_eq!(d, Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap());
        assert_eq!(c["days"], 7);
        assert!(parse_trigger(&dag, "yesterday", "", now)
            .unwrap_err()
            .starts_with("Logical date"));
        assert!(parse_trigger(&dag, "", "[1]", now)
            .unwrap_err()
            .contains("JSON object"));
        assert!(parse_trigger(&dag, "", "{", now)
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn backfill_ranges_are_bounded_and_checked() {
        let dag = daily();
        assert_eq!(
            backfill_intervals(&dag, "2024-01-01", "2024-01-03")
                .unwrap()
                .len(),
            3
        );
        assert!(backfill_intervals(&dag, "2024-01-03", "2024-01-01")
            .unwrap_err()
            .contains("after"));
        assert!(backfill_intervals(&dag, "2000-01-01", "2024-01-01")
            .unwrap_err()
            .contains("more than"));
        let manual = Dag::builder("m").build().unwrap();
        assert!(backfill_intervals(&manual, "2024-01-01", "2024-01-02")
            .unwrap_err()
            .contains("no schedule"));
    }
}
