//! A viewer's logged-in session against a `betflow up` of a test: what the
//! page tests read pages through.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::StatusCode;

use super::TestEnv;

/// A logged-in viewer's session against a fresh `betflow up`.
pub struct Viewer {
    client: Client,
    base: String,
    cookie: String,
}

impl Viewer {
    pub fn log_in(env: &mut TestEnv) -> Self {
        let (_pid, base) = env.spawn_up();
        env.create_user("viewer", "viewer", "password123");
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let resp = client
            .post(format!("{base}/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("username=viewer&password=password123&next=%2Fstreams")
            .send()
            .expect("POST /login");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = resp
            .headers()
            .get(SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_owned();
        Self {
            client,
            base,
            cookie,
        }
    }

    /// GET a path that must answer 200; returns the body.
    pub fn get(&self, path: &str) -> String {
        let (status, body) = self.fetch(path);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
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
