//! `/login` and `/logout`: sessions in HttpOnly, SameSite=Lax cookies,
//! rate-limited by client address and username.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::auth::extract::{cookie_from_headers, SESSION_COOKIE};
use crate::auth::limiter::client_key;
use crate::auth::{create_session, delete_session, verify_login, SESSION_HOURS};
use crate::problem::Problem;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only paths on this site, so the login form cannot redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    super::local_path(next, "/".to_owned())
}

fn render(page: LoginPage, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    render(
        LoginPage {
            next: safe_next(q.next.as_deref()),
            error: None,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let client = client_key(addr.ip());
    let next = safe_next(form.next.as_deref());
    let Some(guess) = state.limiter.reserve(&client, &form.username) else {
        return render(
            LoginPage {
                next,
                error: Some("Too many failed attempts; wait a few minutes.".into()),
            },
            StatusCode::TOO_MANY_REQUESTS,
        );
    };
    let user = match verify_login(&state.db, &form.username, &form.password).await {
        Ok(u) => u,
        Err(e) => return Problem::internal(e).into_response(),
    };
    let Some(user) = user else {
        // The reserved guess stays counted.
        drop(guess);
        let shown: String = form.username.chars().take(64).collect();
        tracing::info!(username = %shown, %client, "failed login");
        return render(
            LoginPage {
                next,
                error: Some("Wrong username or password.".into()),
            },
            StatusCode::UNAUTHORIZED,
        );
    };
    guess.succeeded();
    let (token, _csrf) = match create_session(&state.db, &user).await {
        Ok(t) => t,
        Err(e) => return Problem::internal(e).into_response(),
    };
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_HOURS * 3600
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Logging out needs no CSRF check: the worst a forged request does is end a session.
    if let Some(token) = cookie_from_headers(&headers, SESSION_COOKIE) {
        if let Err(e) = delete_session(&state.db, token).await {
            return Problem::internal(e).into_response();
        }
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
