//! Who is calling: axum extractors for API callers (bearer token, or a
//! browser session plus an `X-CSRF-Token` header on writes) and for pages
//! (session cookie, else a redirect to the login page).

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Redirect, Response};

use super::{session_user, token_user, Role, User};
use crate::problem::Problem;
use crate::AppState;

/// The session cookie's name. A `Secure` one carries the `__Host-` prefix:
/// a browser then takes it only from this very host, over https (or from
/// localhost), with `Path=/` and no `Domain`, so a page on a sibling
/// subdomain can neither plant a session of its own choosing nor
/// overwrite this one.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-betflow_session"
    } else {
        "betflow_session"
    }
}

/// The value of one cookie from the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_from_headers(&parts.headers, name)
}

pub fn cookie_from_headers<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A caller of `/api/v2`, and the address it called from.
pub struct ApiUser(pub User, pub Option<IpAddr>);

impl ApiUser {
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        require(&self.0, role)
    }

    /// Records an action this caller took in the audit trail.
    pub async fn audit(&self, db: &sqlx::PgPool, action: crate::audit::Action<'_>) {
        crate::audit::record(db, Some(&self.0.username), self.1, action).await;
    }
}

/// The client address of a request, when the server knows it.
/// The client's address: the peer's, or the one a trusted proxy names.
pub fn client_addr(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| state.proxies.client(c.0.ip(), &parts.headers))
}

pub fn require(user: &User, role: Role) -> Result<(), Problem> {
    if user.role >= role {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "user `{}` has role {}; this needs {}",
            user.username, user.role, role
        )))
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let pool = &state.db;
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            let Some(token) = auth.strip_prefix("Bearer ").map(str::trim) else {
                return Err(Problem::unauthorized("use `Authorization: Bearer <token>`"));
            };
            return match token_user(pool, token).await.map_err(Problem::from)? {
                Some(user) => Ok(Self(user, client_addr(parts, state))),
                None => Err(Problem::unauthorized("invalid or revoked token")),
            };
        }
        if let Some(token) = cookie(parts, session_cookie(state.secure_cookies)) {
            if let Some((user, csrf)) = session_user(pool, token).await.map_err(Problem::from)? {
                let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
                let header_csrf = parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok());
                if !safe && header_csrf != Some(csrf.as_str()) {
                    return Err(Problem::forbidden("missing or wrong X-CSRF-Token header"));
                }
                return Ok(Self(user, client_addr(parts, state)));
            }
        }
        Err(Problem::unauthorized(
            "log in or send `Authorization: Bearer <token>`",
        ))
    }
}

/// A logged-in browser user, with the CSRF token forms must carry.
pub struct PageUser {
    pub user: User,
    pub csrf: String,
    /// Where the request came from, for the audit trail.
    pub addr: Option<IpAddr>,
}

impl PageUser {
    /// 403 unless the user has at least `role`; forms call this before acting.
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        require(&self.user, role)
    }

    /// 403 unless the submitted form token matches the session's.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), Problem> {
        if !submitted.is_empty() && constant_time_eq(submitted.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Problem::forbidden(
                "the form's CSRF token is missing or stale; reload the page",
            ))
        }
    }

    pub fn can_operate(&self) -> bool {
        self.user.role >= Role::Operator
    }

    /// Records an action this user took in the audit trail.
    pub async fn audit(&self, db: &sqlx::PgPool, action: crate::audit::Action<'_>) {
        crate::audit::record(db, Some(&self.user.username), self.addr, action).await;
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = cookie(parts, session_cookie(state.secure_cookies)) {
            match session_user(&state.db, token).await {
                Ok(Some((user, csrf))) => {
                    return Ok(Self {
                        user,
                        csrf,
                        addr: client_addr(parts, state),
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(Problem::from(e).into_response()),
            }
        }
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let target = format!("/login?next={}", encode_component(next));
        Err(Redirect::to(&target).into_response())
    }
}

/// Percent-encode for a query parameter value.
pub fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
