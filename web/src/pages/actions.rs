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
use orchestrator::backfill::{
    self, BackfillError, BackfillRequest, PlannedAction, ReprocessBehavior, DEFAULT_MAX_ACTIVE_RUNS,
};
use orchestrator::schedule::parse_date;
use orchestrator::store::write::RunType;
use orchestrator::{Dag, TaskState};
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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/pause", post(pause))
        .route("/dags/{dag_id}/trigger", post(trigger))
        .route("/dags/{dag_id}/backfill", post(backfill))
        .route(
            "/dags/{dag_id}/backfills/{id}/{action}",
            post(backfill_action),
        )
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
    #[serde(default)]
    reprocess_behavior: String,
    #[serde(default)]
    max_active_runs: String,
    /// A checkbox: present (any value) means newest first.
    run_backwards: Option<String>,
}

/// The form as a backfill request, or what is wrong with it.
fn backfill_request(dag: &Dag, form: &BackfillForm, user: &str) -> Result<BackfillRequest, String> {
    let tz = dag.schedule.timezone();
    let from = parse_date(form.from.trim(), tz).map_err(|e| format!("From: {e}"))?;
    let to = parse_date(form.to.trim(), tz).map_err(|e| format!("To: {e}"))?;
    let reprocess: ReprocessBehavior = match form.reprocess_behavior.trim() {
        "" => ReprocessBehavior::None,
        other => other.parse()?,
    };
    let max_active_runs: i32 = match form.max_active_runs.trim() {
        "" => DEFAULT_MAX_ACTIVE_RUNS,
        n => n
            .parse()
            .map_err(|_| format!("Max active runs: {n:?} is not a whole number."))?,
    };
    Ok(BackfillRequest {
        from,
        to,
        run_backwards: form.run_backwards.is_some(),
        conf: json!({}),
        reprocess,
        max_active_runs,
        created_by: Some(user.to_owned()),
    })
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
    let created = match backfill_request(&dag, &form, &user.user.username) {
        Err(e) => Err(e),
        Ok(request) => match backfill::create(&state.store, &dag, &request).await {
            Ok(done) => Ok(done),
            Err(BackfillError::Store(e)) => return Err(e.into()),
            Err(e) => Err(e.to_string()),
        },
    };
    let (created, plan) = match created {
        Ok(c) => c,
        Err(e) => {
            let forms = DagForms {
                backfill_from: form.from.clone(),
                backfill_to: form.to.clone(),
                backfill_reprocess: form.reprocess_behavior.clone(),
                backfill_max_active: form.max_active_runs.clone(),
                backfill_backwards: form.run_backwards.is_some(),
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
    tracing::info!(user = %user.user.username, %dag_id, backfill = created.id, "backfill");
    user.audit(
        &state.db,
        Action {
            event: "backfill",
            dag_id: Some(&dag_id),
            extra: serde_json::json!({
                "backfill_id": created.id,
                "from": form.from,
                "to": form.to,
                "created": plan.count(PlannedAction::Create),
                "rerun": plan.count(PlannedAction::Rerun),
            }),
            ..Action::default()
        },
    )
    .await;
    Ok(see_other(&format!("{}#backfills", dag_url(&dag_id))))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// Pause, resume or cancel one of the DAG's backfills.
async fn backfill_action(
    user: PageUser,
    State(state): State<AppState>,
    Path((dag_id, id, action)): Path<(String, i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Problem> {
    authorize(&user, &form.csrf_token)?;
    let found = backfill::get(&state.store, id).await;
    match found {
        Ok(b) if b.dag_id == dag_id => {}
        Ok(_) | Err(BackfillError::NotFound(_)) => {
            return Err(Problem::not_found(format!(
                "DAG `{dag_id}` has no backfill {id}"
            )))
        }
        Err(e) => return Err(Problem::from(e)),
    }
    let done = match action.as_str() {
        "pause" => backfill::set_paused(&state.store, id, true).await,
        "unpause" => backfill::set_paused(&state.store, id, false).await,
        "cancel" => backfill::cancel(&state.store, id).await,
        other => {
            return Err(Problem::not_found(format!(
                "no backfill action `{other}` (pause, unpause, cancel)"
            )))
        }
    };
    done.map_err(Problem::from)?;
    user.audit(
        &state.db,
        Action {
            event: match action.as_str() {
                "pause" => "backfill_pause",
                "unpause" => "backfill_unpause",
                _ => "backfill_cancel",
            },
            dag_id: Some(&dag_id),
            extra: serde_json::json!({"backfill_id": id}),
            ..Action::default()
        },
    )
    .await;
    Ok(see_other(&format!("{}#backfills", dag_url(&dag_id))))
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
    fn backfill_forms_become_requests_or_say_what_is_wrong() {
        let dag = daily();
        let form = |from: &str, to: &str, reprocess: &str, max: &str| BackfillForm {
            csrf_token: String::new(),
            from: from.into(),
            to: to.into(),
            reprocess_behavior: reprocess.into(),
            max_active_runs: max.into(),
            run_backwards: None,
        };
        let r = backfill_request(&dag, &form("2024-01-01", "2024-01-03", "", ""), "ann").unwrap();
        assert_eq!(r.reprocess, ReprocessBehavior::None);
        assert_eq!(r.max_active_runs, DEFAULT_MAX_ACTIVE_RUNS);
        assert_eq!(r.created_by.as_deref(), Some("ann"));
        assert!(!r.run_backwards);
        let r = backfill_request(
            &dag,
            &form("2024-01-01", "2024-01-03", "failed", "3"),
            "ann",
        )
        .unwrap();
        assert_eq!(
            (r.reprocess, r.max_active_runs),
            (ReprocessBehavior::Failed, 3)
        );
        assert!(
            backfill_request(&dag, &form("someday", "2024-01-03", "", ""), "ann")
                .unwrap_err()
                .starts_with("From:")
        );
        assert!(
            backfill_request(&dag, &form("2024-01-01", "2024-01-03", "all", ""), "ann")
                .unwrap_err()
                .contains("not one of none, failed, completed")
        );
        assert!(
            backfill_request(&dag, &form("2024-01-01", "2024-01-03", "", "many"), "ann")
                .unwrap_err()
                .contains("not a whole number")
        );
    }
}
