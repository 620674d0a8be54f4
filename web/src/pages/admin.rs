//! `/admin/tokens` (admin only): the users, their API tokens (never the
//! token values, which are stored hashed), a form that creates a token and
//! shows it exactly once, and revocation.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{fmt_time, render, Nav, Pager};
use crate::auth::extract::PageUser;
use crate::auth::{create_token, list_tokens, list_users, revoke_token, AuthError, Role};
use crate::problem::Problem;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tokens", get(tokens_page).post(create))
        .route("/admin/tokens/{id}/revoke", post(revoke))
        .route("/admin/events", get(events_page))
}

/// Events shown per page of the event log.
const EVENTS_PAGE: i64 = 50;

struct EventView {
    when: String,
    event: String,
    owner: String,
    client: String,
    dag_id: String,
    run_id: String,
    task_id: String,
    extra: String,
}

#[derive(Template)]
#[template(path = "admin_events.html")]
struct EventsPage {
    nav: Nav,
    events: Vec<EventView>,
    pager: Pager,
}

#[derive(Deserialize)]
struct EventsQuery {
    offset: Option<i64>,
}

/// `/admin/events` (admin only): the audit trail, newest first.
async fn events_page(
    user: PageUser,
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<EventsQuery>,
) -> Result<Response, Problem> {
    user.require(Role::Admin)?;
    let offset = q.offset.unwrap_or(0).max(0);
    let filter = crate::audit::EventFilter {
        newest_first: true,
        limit: EVENTS_PAGE,
        offset,
        ..Default::default()
    };
    let (rows, total) = crate::audit::list(&state.db, &filter)
        .await
        .map_err(Problem::from)?;
    let shown = rows.len() as i64;
    let text = |s: Option<String>| s.unwrap_or_default();
    let events = rows
        .into_iter()
        .map(|e| EventView {
            when: fmt_time(Some(e.when)),
            event: e.event,
            owner: text(e.owner),
            client: text(e.client),
            dag_id: text(e.dag_id),
            run_id: text(e.run_id),
            task_id: text(e.task_id),
            extra: if e.extra.as_object().is_some_and(|m| m.is_empty()) {
                String::new()
            } else {
                e.extra.to_string()
            },
        })
        .collect();
    let page = EventsPage {
        nav: Nav::new(&user, "events"),
        events,
        pager: Pager::new(total, offset, shown, EVENTS_PAGE, |o| {
            format!("/admin/events?offset={o}")
        }),
    };
    Ok(render(&page, StatusCode::OK))
}

struct TokenView {
    id: i64,
    username: String,
    name: String,
    created: String,
    last_used: String,
    revoked: String,
    expires: String,
    scope: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "admin_tokens.html")]
struct TokensPage {
    nav: Nav,
    users: Vec<(String, String)>,
    tokens: Vec<TokenView>,
    /// A token just created: shown once, on this response only.
    new_token: Option<(String, String)>,
    error: Option<String>,
}

async fn page(
    user: &PageUser,
    state: &AppState,
    new_token: Option<(String, String)>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Problem> {
    let pool = &state.db;
    let users = list_users(pool).await.map_err(Problem::from)?;
    let tokens = list_tokens(pool)
        .await
        .map_err(Problem::from)?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            username: t.username,
            name: t.name,
            created: fmt_time(Some(t.created_at)),
            last_used: fmt_time(t.last_used_at),
            revoked: fmt_time(t.revoked_at),
            expires: t
                .expires_at
                .map_or_else(|| "never".to_owned(), |e| fmt_time(Some(e))),
            scope: t.scope,
            live: t.revoked_at.is_none(),
        })
        .collect();
    let page = TokensPage {
        nav: Nav::new(user, "admin"),
        users,
        tokens,
        new_token,
        error,
    };
    Ok(render(&page, status))
}

async fn tokens_page(user: PageUser, State(state): State<AppState>) -> Result<Response, Problem> {
    user.require(Role::Admin)?;
    page(&user, &state, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf_token: String,
    username: String,
    #[serde(default)]
    name: String,
}

async fn create(
    user: PageUser,
    State(state): State<AppState>,
    Form(form): Form<CreateForm>,
) -> Result<Response, Problem> {
    user.require(Role::Admin)?;
    user.check_csrf(&form.csrf_token)?;
    let name = if form.name.trim().is_empty() {
        "ui"
    } else {
        form.name.trim()
    };
    match create_token(&state.db, form.username.trim(), name).await {
        Ok(token) => {
            tracing::info!(admin = %user.user.username, for_user = %form.username, "API token created");
            user.audit(
                &state.db,
                crate::audit::Action {
                    event: "create_token",
                    extra: serde_json::json!({"for_user": form.username.trim(), "name": name}),
                    ..Default::default()
                },
            )
            .await;
            page(
                &user,
                &state,
                Some((form.username.trim().to_owned(), token)),
                None,
                StatusCode::OK,
            )
            .await
        }
        Err(e @ AuthError::NoSuchUser(_)) => {
            page(
                &user,
                &state,
                None,
                Some(e.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(Problem::internal(e)),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
}

async fn revoke(
    user: PageUser,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, Problem> {
    user.require(Role::Admin)?;
    user.check_csrf(&form.csrf_token)?;
    if !revoke_token(&state.db, id).await.map_err(Problem::from)? {
        return Err(Problem::not_found(format!("no live token {id}")));
    }
    tracing::info!(admin = %user.user.username, token_id = id, "API token revoked");
    user.audit(
        &state.db,
        crate::audit::Action {
            event: "revoke_token",
            extra: serde_json::json!({"token_id": id}),
            ..Default::default()
        },
    )
    .await;
    Ok(Redirect::to("/admin/tokens").into_response())
}
