//! `/login` and `/logout`: sessions in HttpOnly, SameSite=Lax cookies,
//! rate-limited by client address and username.
//!
//! Both forms carry a CSRF token. The login form's is a double-submit
//! token: the form page sets it in a `SameSite=Strict` cookie and in the
//! form, and a login is only taken when they match, so another site cannot
//! log a browser into an account of its choosing. Logout carries the
//! session's token, so another site cannot end a session either.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::auth::extract::{constant_time_eq, cookie_from_headers, session_cookie};
use crate::auth::limiter::client_key;
use crate::auth::{
    create_session, delete_session, random_hex, session_user, verify_login, SESSION_HOURS,
};
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
    csrf: String,
}

/// The login form's double-submit cookie.
const LOGIN_CSRF_COOKIE: &str = "betflow_login_csrf";

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only paths on this site, so the login form cannot redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    super::local_path(next, "/".to_owned())
}

/// The login page with a fresh form token, set in its cookie too.
fn render(state: &AppState, next: String, error: Option<String>, status: StatusCode) -> Response {
    let csrf = random_hex(16);
    let page = LoginPage { next, error, csrf };
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}",
        page.csrf
    );
    match page.render() {
        Ok(html) => (status, [(header::SET_COOKIE, cookie)], Html(html)).into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

async fn login_form(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    render(&state, safe_next(q.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = state.proxies.client(addr.ip(), &headers);
    let client = client_key(ip);
    let next = safe_next(form.next.as_deref());
    let expected = cookie_from_headers(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return render(
            &state,
            next,
            Some("The login form expired or came from another site; log in again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let Some(guess) = state.limiter.reserve(&client, &form.username) else {
        return render(
            &state,
            next,
            Some("Too many failed attempts; wait a few minutes.".into()),
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
        let action = crate::audit::Action {
            event: "login_failed",
            ..Default::default()
        };
        crate::audit::record(&state.db, Some(&shown), Some(ip), action).await;
        return render(
            &state,
            next,
            Some("Wrong username or password.".into()),
            StatusCode::UNAUTHORIZED,
        );
    };
    guess.succeeded();
    let (token, _csrf) = match create_session(&state.db, &user).await {
        Ok(t) => t,
        Err(e) => return Problem::internal(e).into_response(),
    };
    let action = crate::audit::Action {
        event: "login",
        ..Default::default()
    };
    crate::audit::record(&state.db, Some(&user.username), Some(ip), action).await;
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        session_cookie(state.secure_cookies),
        SESSION_HOURS * 3600
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let name = session_cookie(state.secure_cookies);
    if let Some(token) = cookie_from_headers(&headers, name) {
        // Only the session's own pages can end it: a forged form has no token.
        match session_user(&state.db, token).await {
            Ok(Some((_, csrf))) if !constant_time_eq(csrf.as_bytes(), form.csrf.as_bytes()) => {
                return Problem::forbidden(
                    "the logout form's CSRF token is missing or stale; reload the page",
                )
                .into_response();
            }
            Ok(Some((user, _))) => {
                let action = crate::audit::Action {
                    event: "logout",
                    ..Default::default()
                };
                let ip = state.proxies.client(addr.ip(), &headers);
                crate::audit::record(&state.db, Some(&user.username), Some(ip), action).await;
            }
            Ok(None) => {}
            Err(e) => return Problem::internal(e).into_response(),
        }
        if let Err(e) = delete_session(&state.db, token).await {
            return Problem::internal(e).into_response();
        }
    }
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
