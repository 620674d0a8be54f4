//! The web UI through the real binary: `betflow up` against a throwaway
//! Postgres, driven over HTTP the way a browser would (session cookie,
//! forms with CSRF tokens, no redirects followed so 303s are visible).

use std::time::Duration;

use crate::common::TestEnv;
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::StatusCode;

/// A browser without JavaScript: one session cookie, redirects not followed.
struct Browser {
    client: Client,
    base: String,
    cookie: Option<String>,
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: base.to_owned(),
            cookie: None,
        }
    }

    fn get(&self, path: &str) -> Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        req.send().expect("GET")
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.join("&"));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        req.send().expect("POST")
    }

    fn login(&mut self, username: &str, password: &str) -> Response {
        self.login_to(username, password, "/dags")
    }

    /// The login form's CSRF token and its cookie, from a fresh form.
    fn login_form(&self) -> (String, String) {
        crate::common::viewer::login_form(&self.client, &self.base)
    }

    /// Logs in through the form, asking to land on `next`.
    fn login_to(&mut self, username: &str, password: &str, next: &str) -> Response {
        let (token, form_cookie) = self.login_form();
        let body = [
            ("username", username),
            ("password", password),
            ("next", next),
            ("csrf", token.as_str()),
        ]
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let resp = self
            .client
            .post(format!("{}/login", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, form_cookie)
            .body(body)
            .send()
            .expect("POST /login");
        if let Some(session) = crate::common::viewer::set_cookie(&resp, "betflow_session") {
            self.cookie = Some(session);
        }
        resp
    }

    /// GET a page that must answer 200; returns its HTML.
    fn page(&self, path: &str) -> String {
        let resp = self.get(path);
        let status = resp.status();
        let body = resp.text().expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// The session's CSRF token, from the meta tag every logged-in page has.
    fn csrf(&self) -> String {
        let html = self.page("/dags");
        let start = html
            .find(r#"<meta name="csrf-token" content=""#)
            .expect("csrf meta tag")
            + r#"<meta name="csrf-token" content=""#.len();
        html[start..]
            .split('"')
            .next()
            .expect("csrf token")
            .to_owned()
    }
}

fn location(resp: &Response) -> String {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn logged_in(env: &mut TestEnv, role: &str) -> (Browser, String) {
    let (_pid, base) = env.spawn_up();
    env.create_user("op", role, "password123");
    let mut b = Browser::new(&base);
    let resp = b.login("op", "password123");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/dags");
    (b, base)
}

#[test]
fn metrics_can_require_a_bearer_token() {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up_with(&[("BETFLOW_METRICS_TOKEN", "scrape-secret")]);
    // The web answers before the engine has registered its worker.
    env.wait_for(
        "SELECT count(*) FROM workers WHERE stopped_at IS NULL",
        "1",
        30,
    );
    let client = Client::new();
    let get = |auth: Option<&str>| {
        let mut req = client.get(format!("{base}/metrics"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().expect("GET /metrics")
    };
    assert_eq!(get(None).status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("Bearer wrong")).status(), StatusCode::UNAUTHORIZED);
    let ok = get(Some("Bearer scrape-secret"));
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok
        .text()
        .unwrap()
        .contains("betflow_worker_heartbeat_age_seconds"));
    // /health stays open for load balancers.
    assert_eq!(
        client
            .get(format!("{base}/health"))
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

const ETL_RUN: &str = "manual__2024-03-01T00:00:00+00:00";
const ETL_RUN_PATH: &str = "/dags/example_etl/runs/manual__2024-03-01T00%3A00%3A00%2B00%3A00";

#[test]
fn pages_need_a_login_and_failed_logins_are_limited() {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("op", "operator", "password123");
    let mut b = Browser::new(&base);

    for path in ["/dags", "/", "/streams", "/dags/example_etl"] {
        let resp = b.get(path);
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(location(&resp).starts_with("/login"), "{path}");
    }
    assert_eq!(location(&b.get("/dags")), "/login?next=/dags");
    assert_eq!(b.get("/health").status(), StatusCode::OK);
    assert_eq!(b.get("/metrics").status(), StatusCode::OK);

    // Every page cannot be framed, sniffed, run foreign script or be cached;
    // static files keep their own caching.
    let login = b.get("/login");
    let header = |resp: &Response, name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header(&login, "content-security-policy").contains("script-src 'self'"));
    assert!(header(&login, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&login, "x-frame-options"), "DENY");
    assert_eq!(header(&login, "x-content-type-options"), "nosniff");
    assert_eq!(header(&login, "referrer-policy"), "same-origin");
    assert_eq!(header(&login, "cache-control"), "no-store");
    let css = b.get("/static/app.css");
    assert_eq!(header(&css, "cache-control"), "public, max-age=86400");
    assert_eq!(header(&css, "x-content-type-options"), "nosniff");

    // A login's `next` stays on this site, however it is dressed up.
    for evil in [
        "//evil.example",
        "/%09/evil.example",
        "/\\evil.example",
        "https://evil.example",
    ] {
        let resp = b.login_to("op", "password123", evil);
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(location(&resp), "/", "next={evil:?}");
        b.cookie = None;
    }
    // A login form posted from elsewhere (no form cookie, or another
    // form's token) is refused before the password is looked at.
    let forged = b.post(
        "/login",
        &[
            ("username", "op"),
            ("password", "password123"),
            ("next", "/dags"),
            ("csrf", "x"),
        ],
    );
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().unwrap().contains("came from another site"));

    let resp = b.login("op", "wrong-password");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().unwrap().contains("Wrong username or password"));
    assert!(b.cookie.is_none());
    for _ in 0..4 {
        assert_eq!(
            b.login("op", "wrong-password").status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Five failures: even the right password is refused for a while.
    let resp = b.login("op", "password123");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(b.cookie.is_none());
}

#[test]
fn an_operator_browses_triggers_inspects_and_clears_through_forms() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "operator");
    let csrf = b.csrf();

    let resp = b.get("/");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/dags");

    // The DAGs page: every DAG, the header, the toggles; search and tag filters.
    let html = b.page("/dags");
    assert!(html.contains(r#"data-dag-id="example_etl""#));
    assert!(html.contains(r#"data-dag-id="historical_games_daily""#));
    assert!(html.contains(r#"id="nav-user">op <span class="role">operator</span>"#));
    assert!(html.contains(r#"action="/logout""#));
    assert!(html.contains(r#"action="/dags/example_etl/pause""#));
    let html = b.page("/dags?search=ETL");
    assert!(html.contains(r#"data-dag-id="example_etl""#));
    assert!(!html.contains(r#"data-dag-id="historical_games_daily""#));
    let html = b.page("/dags?tag=games");
    assert!(html.contains(r#"data-dag-id="historical_games_daily""#));
    assert!(!html.contains(r#"data-dag-id="example_etl""#));

    // Unpause with the toggle's form, back to where it was.
    let resp = b.post(
        "/dags/example_etl/pause",
        &[
            ("csrf_token", &csrf),
            ("paused", "false"),
            ("next", "/dags?tag=example"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/dags?tag=example");
    assert_eq!(
        env.scalar("SELECT is_paused FROM dags WHERE dag_id = 'example_etl'"),
        "f"
    );

    // Bad input is shown on the page, nothing is created.
    let resp = b.post(
        "/dags/example_etl/trigger",
        &[
            ("csrf_token", &csrf),
            ("logical_date", "yesterday"),
            ("conf", "{}"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().unwrap().contains(r#"id="trigger-error""#));
    let resp = b.post(
        "/dags/example_etl/trigger",
        &[
            ("csrf_token", &csrf),
            ("logical_date", "2024-03-01"),
            ("conf", "[1, 2]"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(resp.text().unwrap().contains("JSON object"));
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), "0");

    // Trigger through the form; the run goes to success.
    let resp = b.post(
        "/dags/example_etl/trigger",
        &[
            ("csrf_token", &csrf),
            ("logical_date", "2024-03-01"),
            ("conf", "{}"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(location(&resp).starts_with("/dags/example_etl?run_id=manual__2024-03-01"));
    env.wait_for(
        &format!("SELECT state FROM dag_runs WHERE run_id = '{ETL_RUN}'"),
        "success",
        60,
    );
    // The same date again is a conflict shown next to the form.
    let resp = b.post(
        "/dags/example_etl/trigger",
        &[
            ("csrf_token", &csrf),
            ("logical_date", "2024-03-01"),
            ("conf", ""),
        ],
    );
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().unwrap().contains("already has a run"));

    // The DAG page: grid cells and run header in the run's states, an SVG node per task.
    let html = b.page("/dags/example_etl");
    assert!(html.contains(r#"<div id="grid""#));
    assert!(
        !html.contains(r#"hx-trigger="every 2s""#),
        "nothing is active"
    );
    assert!(html.contains(&format!(
        r#"<a class="sq s-success" href="{ETL_RUN_PATH}/tasks/load""#
    )));
    assert!(html.contains(&format!(
        r#"<a class="sq run s-success" href="{ETL_RUN_PATH}""#
    )));
    assert!(html.contains("<svg"));
    for task in ["extract", "process.transform", "load"] {
        assert!(
            html.contains(&format!(
                r#"<g class="node s-success" data-task-id="{task}">"#
            )),
            "graph node {task}"
        );
    }
    assert!(html.contains(r#"data-from="extract" data-to="process.transform""#));
    assert!(html.contains("Extract, transform and load"));
    assert!(html.contains("dags/src/examples.rs"), "code location");
    assert!(html.contains("&#34;multiplier&#34;: 2"), "params");
    assert!(html.contains(r#"id="trigger""#));
    assert!(
        !html.contains(r#"id="backfill""#),
        "a manual DAG has nothing to backfill"
    );
    let fragment = b.page("/dags/example_etl/grid");
    assert!(fragment.starts_with(r#"<div id="grid""#));
    assert!(!fragment.contains("<html"));

    // The run page lists its task instances.
    let html = b.page(ETL_RUN_PATH);
    for task in ["extract", "process.transform", "load"] {
        assert!(
            html.contains(&format!(r#"<tr data-task-id="{task}">"#)),
            "{task}"
        );
    }
    assert!(html.contains(
        r#"action="/dags/example_etl/runs/manual__2024-03-01T00%3A00%3A00%2B00%3A00/clear""#
    ));

    // The task page: the log, the output, the rendered params.
    let task_path = format!("{ETL_RUN_PATH}/tasks/load");
    let html = b.page(&task_path);
    assert!(html.contains("loaded total 12"), "{html}");
    assert!(html.contains("&#34;total&#34;: 12"), "output");
    assert!(html.contains(r#"id="rendered-params""#));
    assert!(
        !html.contains("data-follow"),
        "a finished try is not followed"
    );

    // The log stream sends the try's lines, then ends.
    let resp = b.get(&format!("{task_path}/logs/stream?try=1"));
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let body = resp.text().unwrap();
    assert!(body.contains("loaded total 12"), "{body}");
    assert!(body.contains("event: end"), "{body}");
    let resp = b.get(&format!("{task_path}/logs/stream?try=1&after=999999999"));
    let body = resp.text().unwrap();
    assert!(!body.contains("loaded total"), "only lines after `after`");

    // Metrics count the run.
    let metrics = metrics_with(
        &b,
        r#"betflow_dag_runs{dag_id="example_etl",state="success"} 1"#,
    );
    assert!(
        metrics.contains(r#"betflow_dag_runs{dag_id="example_etl",state="success"} 1"#),
        "{metrics}"
    );
    assert!(metrics
        .contains(r#"betflow_task_duration_seconds_count{dag_id="example_etl",task_id="load"} 1"#));

    // Clearing `load` through the form resets it and it runs a second try.
    let resp = b.post(
        &format!("{ETL_RUN_PATH}/clear"),
        &[
            ("csrf_token", &csrf),
            ("task_id", "load"),
            ("next", &task_path),
        ],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), task_path);
    env.wait_for(
        &format!(
            "SELECT state || ' ' || try_number FROM task_instances WHERE run_id = '{ETL_RUN}' AND task_id = 'load'"
        ),
        "success 2",
        60,
    );
    assert_eq!(
        env.scalar(&format!(
            "SELECT state || ' ' || try_number FROM task_instances WHERE run_id = '{ETL_RUN}' AND task_id = 'extract'"
        )),
        "success 1",
        "without the downstream box only `load` is cleared"
    );
    let html = b.page(&format!("{task_path}?try=2"));
    assert!(html.contains(">Try 1</a>") && html.contains(r#"class="active">Try 2</a>"#));

    // Mark failed, then the run page shows it.
    let resp = b.post(
        &format!("{ETL_RUN_PATH}/mark"),
        &[
            ("csrf_token", &csrf),
            ("task_id", "load"),
            ("state", "failed"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        env.scalar(&format!(
            "SELECT state FROM task_instances WHERE run_id = '{ETL_RUN}' AND task_id = 'load'"
        )),
        "failed"
    );
}

#[test]
fn forms_need_the_csrf_token_and_the_operator_role() {
    let mut env = TestEnv::start();
    let (op, base) = logged_in(&mut env, "operator");
    let csrf = op.csrf();

    for fields in [
        vec![("logical_date", "2024-03-01"), ("conf", "{}")],
        vec![
            ("csrf_token", "not-the-token"),
            ("logical_date", "2024-03-01"),
            ("conf", "{}"),
        ],
    ] {
        let resp = op.post("/dags/example_etl/trigger", &fields);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(resp.text().unwrap().contains("CSRF"));
    }
    let resp = op.post(
        "/dags/example_etl/pause",
        &[("paused", "false"), ("csrf_token", "")],
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), "0");
    assert_eq!(
        env.scalar("SELECT is_paused FROM dags WHERE dag_id = 'example_etl'"),
        "t"
    );

    // A viewer sees no action forms, and its posts are refused even with its token.
    env.create_user("view", "viewer", "password123");
    let mut viewer = Browser::new(&base);
    assert_eq!(
        viewer.login("view", "password123").status(),
        StatusCode::SEE_OTHER
    );
    let html = viewer.page("/dags/example_daily");
    assert!(!html.contains(r#"id="trigger""#));
    assert!(!html.contains(r#"id="backfill""#));
    assert!(!html.contains(r#"action="/dags/example_daily/pause""#));
    let viewer_csrf = viewer.csrf();
    for (path, fields) in [
        (
            "/dags/example_daily/trigger",
            vec![("csrf_token", viewer_csrf.as_str()), ("conf", "{}")],
        ),
        (
            "/dags/example_daily/pause",
            vec![("csrf_token", viewer_csrf.as_str()), ("paused", "false")],
        ),
        (
            "/dags/example_daily/backfill",
            vec![
                ("csrf_token", viewer_csrf.as_str()),
                ("from", "2024-01-01"),
                ("to", "2024-01-03"),
            ],
        ),
    ] {
        let resp = viewer.post(path, &fields);
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        // A browser is told why on a page, not in the API's JSON.
        assert!(resp
            .headers()
            .get(CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(resp.text().unwrap().contains("Forbidden"), "{path}");
    }
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), "0");

    // The operator's backfill creates one run per interval, skipping existing dates,
    // and the DAG page shows their progress.
    let html = op.page("/dags/example_daily");
    assert!(html.contains(r#"id="backfill""#));
    let resp = op.post(
        "/dags/example_daily/backfill",
        &[
            ("csrf_token", &csrf),
            ("from", "2024-01-03"),
            ("to", "2024-01-01"),
            ("reprocess_behavior", "failed"),
            ("max_active_runs", "3"),
            ("run_backwards", "1"),
        ],
    );
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The form says what is wrong and keeps what was chosen.
    let html = resp.text().unwrap();
    assert!(html.contains(r#"id="backfill-error""#));
    assert!(
        html.contains(r#"<option value="failed" selected>"#),
        "{html}"
    );
    assert!(html.contains(r#"type="number" min="1" value="3""#));
    assert!(html.contains(r#"name="run_backwards" value="1" checked"#));
    let backfill = |from: &str, to: &str, max: &str| {
        op.post(
            "/dags/example_daily/backfill",
            &[
                ("csrf_token", csrf.as_str()),
                ("from", from),
                ("to", to),
                ("reprocess_behavior", "none"),
                ("max_active_runs", max),
            ],
        )
    };
    let resp = backfill("2024-01-01", "2024-01-03", "10");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "/dags/example_daily#backfills");
    // One active backfill per DAG: the same request again is refused
    // while the first is running, and has nothing to do once it is done.
    let again = backfill("2024-01-01", "2024-01-03", "10");
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = again.text().unwrap();
    assert!(
        text.contains("already has an active backfill") || text.contains("nothing to do"),
        "{text}"
    );
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM dag_runs WHERE dag_id = 'example_daily' AND run_type = 'backfill'"
        ),
        "3"
    );
    // Backfill runs execute even though the DAG is paused.
    env.wait_for(
        "SELECT count(*) FROM backfills WHERE completed_at IS NOT NULL",
        "1",
        60,
    );
    let html = op.page("/dags/example_daily");
    assert!(html.contains(r#"id="backfill-table""#));
    assert!(html.contains(r#"<span class="badge b-completed">completed</span>"#));
    assert!(html.contains(r#"<span class="count s-success" title="success">3</span>"#));

    // A long backfill, one run at a time: paused, then cancelled; its runs
    // not yet started fail, and the page says so.
    let resp = backfill("2024-02-01", "2024-03-31", "1");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let id = env.scalar("SELECT max(id) FROM backfills");
    let resp = op.post(
        &format!("/dags/example_daily/backfills/{id}/pause"),
        &[("csrf_token", csrf.as_str())],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(op
        .page("/dags/example_daily")
        .contains(r#"<span class="badge b-paused">paused</span>"#));
    let resp = op.post(
        &format!("/dags/example_daily/backfills/{id}/cancel"),
        &[("csrf_token", csrf.as_str())],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let html = op.page("/dags/example_daily");
    assert!(html.contains(r#"<span class="badge b-cancelled">cancelled</span>"#));
    let failed: i64 = env
        .scalar(&format!(
            "SELECT count(*) FROM dag_runs WHERE backfill_id = {id} AND state = 'failed'"
        ))
        .parse()
        .unwrap();
    assert!(failed >= 55, "{failed} of 60 runs failed by the cancel");
    // A cancelled backfill cannot be resumed; a viewer cannot touch one.
    let resp = op.post(
        &format!("/dags/example_daily/backfills/{id}/unpause"),
        &[("csrf_token", csrf.as_str())],
    );
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = viewer.post(
        &format!("/dags/example_daily/backfills/{id}/pause"),
        &[("csrf_token", viewer_csrf.as_str())],
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[test]
fn the_streams_page_shows_the_live_ticker() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "viewer");
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE dag_id = 'live_streams' AND (health->>'ticks')::int >= 2",
        "running",
        30,
    );
    let html = b.page("/streams");
    assert!(
        html.contains(r#"data-stream="live_streams.ticker""#),
        "{html}"
    );
    assert!(html.contains(r#"<span class="state s-running">running</span>"#));
    assert!(html.contains("&#34;ticks&#34;"));
    let metrics = b.get("/metrics").text().unwrap();
    assert!(metrics
        .contains(r#"betflow_stream_task_restarts_total{dag_id="live_streams",task_id="ticker""#));
    assert!(metrics.contains("betflow_worker_heartbeat_age_seconds{worker_id="));
    assert!(
        metrics.contains("betflow_scheduler_loop_seconds{worker_id="),
        "{metrics}"
    );
    // A consumer's health (as the Kafka consumers report it) becomes lag
    // per partition and a message counter.
    env.sql(
        "INSERT INTO stream_tasks (dag_id, task_id, worker_id, state, health) VALUES \
         ('live_streams', 'odds_consumer', 'w-test', 'running', \
          '{\"messages\": 42, \"lag\": {\"betflow.odds.nfl/0\": 7, \"betflow.odds.nfl/1\": 0}}')",
    );
    // Without BETFLOW_METRICS_TOKEN, worker ids are opaque tags and host
    // names are left out; the page is kept a few seconds.
    let metrics = metrics_with(&b, r#"task_id="odds_consumer",worker_id="worker-"#);
    assert!(!metrics.contains("w-test"), "{metrics}");
    assert!(
        !metrics.contains("hostname=\"vm") && !metrics.contains(&hostname()),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"topic="betflow.odds.nfl",partition="0"} 7"#),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"betflow_consumer_messages_total{dag_id="live_streams",task_id="odds_consumer",worker_id="worker-"#
        ) && l.ends_with("} 42")),
        "{metrics}"
    );
}

/// `/metrics` once it holds `want` (it is kept 5 s), within 15 s.
fn metrics_with(b: &Browser, want: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let metrics = b.get("/metrics").text().unwrap();
        if metrics.contains(want) || std::time::Instant::now() > deadline {
            return metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| format!("hostname=\"{}\"", h.trim()))
        .unwrap_or_else(|_| "hostname=\"?\"".to_owned())
}

/// Triggers `example_slow` for `day`, its first task sleeping `first_ms`,
/// and waits until that task runs; returns the task's page path.
fn slow_first_running(env: &mut TestEnv, day: &str, first_ms: u64) -> String {
    env.ok(&["dags", "unpause", "example_slow"]);
    let conf = format!(r#"{{"first_ms": {first_ms}}}"#);
    env.ok(&[
        "dags",
        "trigger",
        "example_slow",
        "--logical-date",
        day,
        "--conf",
        &conf,
    ]);
    env.wait_for(
        &format!(
            "SELECT state FROM task_instances WHERE dag_id = 'example_slow' AND task_id = 'first'
             AND run_id LIKE '%{day}%'"
        ),
        "running",
        30,
    );
    format!("/dags/example_slow/runs/manual__{day}T00%3A00%3A00%2B00%3A00/tasks/first")
}

#[test]
fn a_running_try_is_followed_live() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "viewer");
    let task_path = slow_first_running(&mut env, "2024-03-01", 4000);
    let html = b.page(&task_path);
    assert!(
        html.contains(&format!(
            r#"data-follow="{task_path}/logs/stream?try=1&#38;after="#
        )),
        "a running try is followed: {html}"
    );
    // The stream stays open while the 4 s try runs, sends its lines as they
    // are written, and ends when the try does.
    let body = b
        .get(&format!("{task_path}/logs/stream?try=1"))
        .text()
        .unwrap();
    let start = body.find("Starting try 1").expect("first line");
    let end = body.find("slept 4000 ms").expect("last line");
    assert!(start < end && body[end..].contains("event: end"), "{body}");

    // A user holds at most four live follows; a closed one frees its slot.
    let second = format!(
        "{}/logs/stream?try=1",
        slow_first_running(&mut env, "2024-03-02", 4000)
    );
    let mut open: Vec<Response> = (0..4).map(|_| b.get(&second)).collect();
    assert!(open.iter().all(|r| r.status() == StatusCode::OK));
    let fifth = b.get(&second);
    assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(fifth.text().unwrap().contains("at most 4 live log follows"));
    drop(open.pop());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(b.get(&second).status(), StatusCode::OK, "a slot given back");
    assert_eq!(
        env.scalar(
            "SELECT state FROM task_tries WHERE dag_id = 'example_slow' AND task_id = 'first'"
        ),
        "success",
        "the stream ended only once the try was recorded"
    );
}

#[test]
fn an_admin_creates_an_api_token_in_the_ui_shown_once_and_revokes_it() {
    let mut env = TestEnv::start();
    let (b, base) = logged_in(&mut env, "admin");
    let csrf = b.csrf();
    let html = {
        let resp = b.post(
            "/admin/tokens",
            &[
                ("csrf_token", &csrf),
                ("username", "op"),
                ("name", "grafana"),
            ],
        );
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().unwrap()
    };
    let start = html.find("bf_").expect("the new token is shown");
    let token: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(token.len(), 3 + 64);
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM api_tokens WHERE token_hash = '{token}' OR length(token_hash) <> 64"
        )),
        "0",
        "only the hash is stored"
    );
    let api = |t: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{base}/api/v2/dags"))
            .bearer_auth(t)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(api(&token), StatusCode::OK);
    let listing = b.page("/admin/tokens");
    assert!(
        listing.contains("grafana") && !listing.contains(&token),
        "listed, never shown again"
    );

    let id = env.scalar("SELECT id FROM api_tokens WHERE name = 'grafana'");
    let resp = b.post(
        &format!("/admin/tokens/{id}/revoke"),
        &[("csrf_token", &csrf)],
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(api(&token), StatusCode::UNAUTHORIZED);

    // The event log has the login, the token and its revocation, on one page.
    let events = b.page("/admin/events");
    assert!(events.contains("Events 1–"), "{events}");
    assert!(!events.contains(">older</a>"), "{events}");
}

#[test]
fn a_missing_dag_run_or_task_gets_a_page_that_says_so() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "viewer");
    for (path, says) in [
        ("/dags/no_such_dag", "no_such_dag"),
        ("/dags/example_daily/runs/no_such_run", "no_such_run"),
        (
            "/dags/example_daily/runs/no_such_run/tasks/no_such_task",
            "no_such_task",
        ),
    ] {
        let resp = b.get(path);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let content_type = resp.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        let html = resp.text().unwrap();
        // In the layout of every page: the header with the user, the reason.
        assert!(html.contains(r#"id="nav-user""#), "{path}: {html}");
        assert!(html.contains("Not Found"), "{path}: {html}");
        assert!(html.contains(r#"id="problem""#), "{path}: {html}");
        assert!(html.contains(says), "{path}: {html}");
    }
    // The API keeps answering in problem details.
    let resp = b.get("/api/v2/dags/no_such_dag");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        resp.headers().get(CONTENT_TYPE).unwrap(),
        "application/problem+json"
    );
}

#[test]
fn only_admins_reach_the_token_page() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "operator");
    assert_eq!(b.get("/admin/tokens").status(), StatusCode::FORBIDDEN);
    let csrf = b.csrf();
    let resp = b.post(
        "/admin/tokens",
        &[("csrf_token", &csrf), ("username", "op")],
    );
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(env.scalar("SELECT count(*) FROM api_tokens"), "0");
}

#[test]
fn the_run_page_shows_the_runs_quality_check_results() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "viewer");
    env.ok(&[
        "dags",
        "trigger",
        "example_etl",
        "--logical-date",
        "2024-03-01",
    ]);
    let html = b.page(ETL_RUN_PATH);
    assert!(html.contains("No task of this run has recorded data-quality checks."));
    env.sql(&format!(
        "INSERT INTO check_results (dag_id, run_id, task_id, try_number, logical_date, asset,
             check_name, severity, passed, observed_value, detail)
         SELECT dag_id, run_id, 'load', 1, logical_date, 'gold.totals', v.name, v.severity,
             v.passed, v.value, v.detail
         FROM dag_runs, (VALUES
             ('unique(id)', 'error', true, 0.0, 'all 3 rows have distinct (id)'),
             ('range(total >= 0)', 'error', false, 1.0, '1 of 3 rows with total not >= 0'),
             ('row_count_vs_previous', 'warn', false, 3.5, '3 rows vs 30')
         ) AS v(name, severity, passed, value, detail)
         WHERE run_id = '{ETL_RUN}'"
    ));
    let html = b.page(ETL_RUN_PATH);
    assert!(html.contains(r#"<table id="quality-checks">"#), "{html}");
    let row = |check: &str| {
        let start = html
            .find(&format!(r#"<tr data-check="{check}""#))
            .unwrap_or_else(|| panic!("no row for {check} in {html}"));
        let end = start + html[start..].find("</tr>").unwrap();
        html[start..end].to_owned()
    };
    let passed = row("unique(id)");
    assert!(
        passed.contains(r#"<span class="state q-passed">passed</span>"#),
        "{passed}"
    );
    assert!(passed.contains("gold.totals") && passed.contains("<td class=\"nowrap\">0</td>"));
    let failed = row("range(total &#62;= 0)");
    assert!(
        failed.contains(r#"<span class="state q-failed">failed</span>"#),
        "{failed}"
    );
    assert!(
        failed.contains("1 of 3 rows with total not &#62;= 0"),
        "{failed}"
    );
    assert!(failed.contains("/tasks/load?try=1"), "{failed}");
    let warned = row("row_count_vs_previous");
    assert!(
        warned.contains(r#"<span class="state q-warn">warn</span>"#),
        "{warned}"
    );
    assert!(warned.contains("3.500"), "{warned}");
    let css = b.page("/static/app.css");
    assert!(css.contains(".q-failed { background: var(--failed); }"));
}

/// With `Secure` cookies (the default), the session cookie is named with
/// the `__Host-` prefix, which a browser takes only from this very host,
/// with `Path=/` and no `Domain`; logging out needs the session's CSRF
/// token, so a forged form cannot end it.
#[test]
fn a_secure_session_cookie_carries_the_host_prefix_and_logout_needs_its_token() {
    let mut env = TestEnv::start();
    // Not `spawn_up`: it turns `Secure` off for the plain-http tests.
    env.spawn(&["up", "--port", "0"], &[("BETFLOW_KAFKA", "off")]);
    let base = env.up_url(0);
    env.create_user("op", "operator", "password123");
    let mut b = Browser::new(&base);

    let resp = b.login("op", "password123");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set: Vec<String> = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let session_header = set
        .iter()
        .find(|c| c.starts_with("__Host-betflow_session="))
        .unwrap_or_else(|| panic!("a __Host- session cookie: {set:?}"));
    for part in ["Path=/;", "Secure", "HttpOnly"] {
        assert!(session_header.contains(part), "{part}: {session_header}");
    }
    assert!(!session_header.contains("Domain"), "{session_header}");
    let cookie =
        crate::common::viewer::set_cookie(&resp, "__Host-betflow_session").expect("the session");
    let token = cookie.split_once('=').expect("name=value").1.to_owned();

    // The unprefixed name is not read.
    b.cookie = Some(format!("betflow_session={token}"));
    assert_eq!(b.get("/dags").status(), StatusCode::SEE_OTHER);
    b.cookie = Some(cookie.clone());
    assert_eq!(b.get("/dags").status(), StatusCode::OK);

    // A logout form without the session's token is refused, the session kept.
    let forged = b.post("/logout", &[]);
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(b.get("/dags").status(), StatusCode::OK);
    let csrf = b.csrf();
    let out = b.post("/logout", &[("csrf", csrf.as_str())]);
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = out
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cleared.starts_with("__Host-betflow_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(b.get("/dags").status(), StatusCode::SEE_OTHER, "logged out");
}

/// Behind a reverse proxy listed in `BETFLOW_TRUSTED_PROXIES`, the login
/// limiter counts each client the proxy names apart: one client's failures
/// lock out that client, not everyone behind the proxy; and a client
/// cannot escape its count by writing the header itself.
#[test]
fn behind_a_trusted_proxy_failed_logins_lock_out_only_their_client() {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up_with(&[("BETFLOW_TRUSTED_PROXIES", "127.0.0.1")]);
    env.create_user("op", "operator", "password123");
    let b = Browser::new(&base);
    let login_as = |forwarded: &str, password: &str| -> StatusCode {
        let (token, form_cookie) = b.login_form();
        let body = format!(
            "username=op&password={}&next=%2Fdags&csrf={}",
            form_encode(password),
            form_encode(&token)
        );
        b.client
            .post(format!("{base}/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, form_cookie)
            .header("x-forwarded-for", forwarded)
            .body(body)
            .send()
            .expect("POST /login")
            .status()
    };
    for _ in 0..5 {
        assert_eq!(login_as("203.0.113.7", "wrong"), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_as("203.0.113.7", "password123"),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A forged leftmost entry does not make the locked client another one.
    assert_eq!(
        login_as("198.51.100.9, 203.0.113.7", "password123"),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy logs in.
    assert_eq!(
        login_as("198.51.100.9", "password123"),
        StatusCode::SEE_OTHER
    );
}

/// A live log follow ends once its session does: logging out in another
/// tab closes the stream within a few seconds, while the try still runs.
#[test]
fn a_followed_log_stream_ends_when_its_session_ends() {
    let mut env = TestEnv::start();
    let (b, _base) = logged_in(&mut env, "viewer");
    let task_path = slow_first_running(&mut env, "2024-03-03", 60_000);
    let stream = format!("{}{task_path}/logs/stream?try=1", b.base);
    let (client, cookie) = (b.client.clone(), b.cookie.clone().expect("a session"));
    let follower = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let body = client
            .get(stream)
            .header(COOKIE, cookie)
            .timeout(Duration::from_secs(50))
            .send()
            .and_then(|r| r.text())
            .expect("the stream ends, not times out");
        (body, started.elapsed())
    });
    std::thread::sleep(Duration::from_secs(1));
    let csrf = b.csrf();
    assert_eq!(
        b.post("/logout", &[("csrf", csrf.as_str())]).status(),
        StatusCode::SEE_OTHER
    );
    let (body, took) = follower.join().expect("the follower");
    assert!(body.contains("Starting try 1"), "{body}");
    assert!(body.contains("your session ended"), "{body}");
    assert!(took < Duration::from_secs(15), "ended after {took:?}");
    assert_eq!(
        env.scalar(
            "SELECT state FROM task_instances WHERE dag_id = 'example_slow' AND task_id = 'first'"
        ),
        "running",
        "the try itself goes on"
    );
}
