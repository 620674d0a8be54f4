//! A viewer's logged-in session against a `betflow up` of a test: what the
//! page tests read pages through.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::StatusCode;

use super::TestEnv;

/// `name=value` of the cookie `name` a response sets.
pub fn set_cookie(resp: &reqwest::blocking::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// A fresh login form's (CSRF token, `Cookie` header value): what a
/// browser holds when it posts the form.
pub fn login_form(client: &Client, base: &str) -> (String, String) {
    let resp = client
        .get(format!("{base}/login"))
        .send()
        .expect("GET /login");
    let cookie = set_cookie(&resp, "betflow_login_csrf").expect("login form cookie");
    let html = resp.text().expect("login page");
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("csrf field") + marker.len();
    let token = html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned();
    (token, cookie)
}

/// The status of a login form post with these credentials: 303 when they
/// log in.
pub fn login_status(base: &str, username: &str, password: &str) -> StatusCode {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let (token, form_cookie) = login_form(&client, base);
    let form = format!(
        "username={}&password={}&next=%2F&csrf={token}",
        crate::common::viewer::encode(username),
        crate::common::viewer::encode(password)
    );
    client
        .post(format!("{base}/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, form_cookie)
        .body(form)
        .send()
        .expect("POST /login")
        .status()
}

/// Form-encodes the few characters the tests' credentials use.
fn encode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c.to_string(),
            c => format!("%{:02X}", c as u32),
        })
        .collect()
}

/// A logged-in viewer's session against a fresh `betflow up`.
pub struct Viewer {
    client: Client,
    base: String,
    cookie: String,
}

impl Viewer {
    pub fn log_in(env: &mut TestEnv) -> Self {
        let (_pid, base) = env.spawn_up();
        Self::log_in_to(env, &base)
    }

    /// A viewer logged in to the `betflow up` of `env` at `base`.
    pub fn log_in_to(env: &mut TestEnv, base: &str) -> Self {
        let base: String = base.to_owned();
        env.create_user("viewer", "viewer", "password123");
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let (token, form_cookie) = login_form(&client, &base);
        let resp = client
            .post(format!("{base}/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, form_cookie)
            .body(format!(
                "username=viewer&password=password123&next=%2Fstreams&csrf={token}"
            ))
            .send()
            .expect("POST /login");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(&resp, "betflow_session").expect("session cookie");
        Self {
            client,
            base,
            cookie,
        }
    }

    /// The base URL of the `betflow up` it is logged in to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET a path that must answer 200; returns the body.
    pub fn get(&self, path: &str) -> String {
        let (status, body) = self.fetch(path);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// GET a path and keep the response open, unread (a stream).
    pub fn open(&self, path: &str) -> reqwest::blocking::Response {
        Client::builder()
            .timeout(None)
            .build()
            .expect("http client")
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .expect("GET")
    }

    /// GET a path; its status and body, whatever the status.
    pub fn fetch(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .expect("GET");
        let status = resp.status();
        (status, resp.text().expect("body"))
    }
}
