//! The REST API under `/api/v2` against a real `betflow up`: auth and roles,
//! problem-details errors, paging, triggering a run and following it to its
//! logs, clearing, pausing, and the OpenAPI document.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::TestEnv;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

/// An API caller: a base URL and, unless anonymous, a bearer token.
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    client: Client,
}

/// Status, `Content-Type` and parsed JSON body of one response.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Api {
    pub(crate) fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: format!("{base}/api/v2"),
            token,
            client: Client::new(),
        }
    }

    pub(crate) fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            content_type,
            body,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None)
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body))
    }

    pub(crate) fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body))
    }

    /// GET that must answer 200; returns the body.
    pub(crate) fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.body
    }

    /// Poll a run until it reaches `want` (panics on another final state or after `secs`).
    pub(crate) fn wait_run(&self, dag: &str, run_id: &str, want: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let run = self.ok(&format!("/dags/{dag}/dagRuns/{run_id}"));
            let state = run["state"].as_str().unwrap_or_default().to_owned();
            if state == want {
                return run;
            }
            assert!(
                state != "failed" && state != "success",
                "run {run_id} ended {state}, wanted {want}"
            );
            assert!(
                Instant::now() < deadline,
                "run {run_id} still {state} after {secs}s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A problem-details error with this status.
pub(crate) fn assert_problem(r: &Reply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(
        r.content_type, "application/problem+json",
        "{what}: {}",
        r.body
    );
    assert_eq!(r.body["status"], status, "{what}: {}", r.body);
    assert!(
        r.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {}",
        r.body
    );
}

/// A running server with an operator and a viewer.
pub(crate) fn start() -> (TestEnv, Api, Api, String) {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("olga", "operator", "operator-pass");
    env.create_user("victor", "viewer", "viewer-pass");
    let operator = Api::new(&base, Some(env.token("olga")));
    let viewer = Api::new(&base, Some(env.token("victor")));
    (env, operator, viewer, base)
}

#[test]
fn callers_roles_and_bad_requests_get_the_right_errors() {
    let (_env, op, viewer, base) = start();
    let anon = Api::new(&base, None);

    assert_problem(&anon.get("/dags"), 401, "no token");
    let forged = Api::new(&base, Some("bf_not-a-real-token".into()));
    assert_problem(&forged.get("/dags/example_etl"), 401, "unknown token");

    // Viewers read but cannot act.
    assert_eq!(viewer.get("/dags/example_etl").status, 200);
    assert_problem(
        &viewer.post("/dags/example_etl/dagRuns", json!({})),
        403,
        "viewer trigger",
    );
    assert_problem(
        &viewer.post("/dags/example_etl/clearTaskInstances", json!({})),
        403,
        "viewer clear",
    );
    assert_problem(
        &viewer.patch("/dags/example_etl", json!({"is_paused": false})),
        403,
        "viewer patch",
    );
    // A viewer is refused before the body is even looked at.
    assert_problem(
        &viewer.post("/dags/example_etl/dagRuns", json!({"conf": 5})),
        403,
        "viewer with bad body",
    );

    // Unknown things are 404s.
    assert_problem(&op.get("/dags/nope"), 404, "unknown DAG");
    assert_problem(&op.get("/dags/nope/dagRuns"), 404, "runs of unknown DAG");
    assert_problem(
        &op.post("/dags/nope/dagRuns", json!({})),
        404,
        "trigger unknown DAG",
    );
    assert_problem(
        &op.patch("/dags/nope", json!({"is_paused": true})),
        404,
        "patch unknown DAG",
    );
    assert_problem(
        &op.get("/dags/example_etl/dagRuns/no_such_run"),
        404,
        "unknown run",
    );
    assert_problem(
        &op.get("/dags/example_etl/dagRuns/no_such_run/taskInstances"),
        404,
        "task instances of unknown run",
    );
    assert_problem(&op.get("/no/such/endpoint"), 404, "unknown route");
    assert_problem(
        &op.call(Method::DELETE, "/dags/example_etl", None),
        405,
        "wrong method",
    );

    // Bad input is a 422 problem, not axum's plain-text 400.
    assert_problem(&op.get("/dags?limit=lots"), 422, "non-numeric limit");
    assert_problem(&op.get("/dags?paused=maybe"), 422, "non-boolean flag");
    assert_problem(&op.get("/dags?limit=-1"), 422, "negative limit");
    assert_problem(
        &op.get("/dags/~/dagRuns?state=sideways"),
        422,
        "unknown run state",
    );
    assert_problem(&op.get("/dags?order_by=color"), 400, "unsupported order_by");
    assert_problem(
        &op.post(
            "/dags/example_etl/dagRuns",
            json!({"logical_date": "yesterday"}),
        ),
        422,
        "bad logical_date",
    );
    assert_problem(
        &op.post(
            "/dags/example_etl/dagRuns",
            json!({"logical_date": "2024-01-01T00:00:00"}),
        ),
        422,
        "logical_date without a timezone",
    );
    assert_problem(
        &op.post("/dags/example_etl/dagRuns", json!({"conf": [1, 2]})),
        422,
        "conf not an object",
    );
    assert_problem(
        &op.post("/dags/example_etl/dagRuns", json!({"dag_run_id": "a/b"})),
        422,
        "run id with a slash",
    );
    assert_problem(
        &op.patch("/dags/example_etl", json!({"paused": true})),
        422,
        "patch without is_paused",
    );
    assert_problem(
        &op.post(
            "/dags/example_etl/clearTaskInstances",
            json!({"task_ids": ["no_such_task"]}),
        ),
        400,
        "clear unknown task",
    );

    // Public endpoints.
    let version = anon.get("/version");
    assert_eq!(version.status, 200);
    assert_eq!(version.body["version"], env!("CARGO_PKG_VERSION"));
    let health = anon.get("/monitor/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["metadatabase"]["status"], "healthy");
}

#[test]
fn dags_and_runs_are_listed_filtered_and_paged() {
    let (_env, op, _viewer, _base) = start();

    // DAGs: the example tag selects exactly the example_* DAGs.
    let all = op.ok("/dags?limit=100");
    let ids: Vec<&str> = all["dags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["dag_id"].as_str())
        .collect();
    assert_eq!(all["total_entries"], ids.len());
    let examples: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| id.starts_with("example_"))
        .collect();
    assert!(examples.contains(&"example_etl"), "{ids:?}");
    let tagged = op.ok("/dags?tags=example&limit=100");
    assert_eq!(tagged["total_entries"], examples.len());
    let page = op.ok("/dags?tags=example&limit=3&offset=3&order_by=-dag_id");
    let mut desc = examples.clone();
    desc.sort_unstable_by(|a, b| b.cmp(a));
    let got: Vec<&str> = page["dags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["dag_id"].as_str())
        .collect();
    assert_eq!(got, desc[3..6].to_vec());
    let etl_like = op.ok("/dags?dag_id_pattern=EXAMPLE_ET");
    assert_eq!(etl_like["total_entries"], 1);
    assert_eq!(etl_like["dags"][0]["dag_id"], "example_etl");
    let etl = &etl_like["dags"][0];
    assert_eq!(etl["is_paused"], true, "paused at creation: {etl}");
    assert_eq!(etl["is_stale"], false);
    assert_eq!(etl["tags"][0]["name"], "example");
    assert_eq!(
        op.ok("/dags?paused=false")["total_entries"],
        0,
        "every DAG starts paused here"
    );

    // Pause flag round trip.
    let patched = op.patch("/dags/example_daily", json!({"is_paused": false}));
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["is_paused"], false);
    let unpaused = op.ok("/dags?paused=false");
    assert_eq!(unpaused["total_entries"], 1);
    assert_eq!(unpaused["dags"][0]["dag_id"], "example_daily");
    let repaused = op.patch(
        "/dags/example_daily?update_mask=is_paused",
        json!({"is_paused": true}),
    );
    assert_eq!(repaused.body["is_paused"], true, "{}", repaused.body);
    assert!(op.ok("/dags/example_daily")["is_paused"].as_bool().unwrap());

    // Five runs of a paused DAG stay queued, so their list is stable.
    let mut run_ids = Vec::new();
    for day in 1..=5 {
        let r = op.post(
            "/dags/example_etl/dagRuns",
            json!({"logical_date": format!("2024-01-0{day}T00:00:00Z"), "conf": {"day": day}}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["state"], "queued");
        assert_eq!(r.body["run_type"], "manual");
        assert_eq!(r.body["conf"]["day"], day);
        assert_eq!(
            r.body["dag_run_id"],
            format!("manual__2024-01-0{day}T00:00:00+00:00")
        );
        run_ids.push(r.body["dag_run_id"].as_str().unwrap().to_owned());
    }
    // The same logical date again is a conflict, whatever the run id.
    let dup = op.post(
        "/dags/example_etl/dagRuns",
        json!({"logical_date": "2024-01-03T00:00:00+00:00", "dag_run_id": "other_id"}),
    );
    assert_problem(&dup, 409, "duplicate logical date");
    let named = op.post(
        "/dags/example_etl/dagRuns",
        json!({"logical_date": "2024-02-01T00:00:00Z", "dag_run_id": "my_run"}),
    );
    assert_eq!(named.status, 200, "{}", named.body);
    assert_problem(
        &op.post(
            "/dags/example_etl/dagRuns",
            json!({"logical_date": "2024-02-02T00:00:00Z", "dag_run_id": "my_run"}),
        ),
        409,
        "duplicate run id",
    );
    run_ids.push("my_run".into());

    // Pages in creation order cover every run once.
    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let page = op.ok(&format!(
            "/dags/example_etl/dagRuns?limit=2&offset={offset}"
        ));
        assert_eq!(page["total_entries"], 6);
        for r in page["dag_runs"].as_array().unwrap() {
            seen.push(r["dag_run_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, run_ids);
    let past_end = op.ok("/dags/example_etl/dagRuns?limit=2&offset=6");
    assert_eq!(past_end["dag_runs"].as_array().unwrap().len(), 0);
    assert_eq!(past_end["total_entries"], 6);

    let newest = op.ok("/dags/example_etl/dagRuns?order_by=-logical_date&limit=1");
    assert_eq!(newest["dag_runs"][0]["dag_run_id"], "my_run");
    let window = op.ok(
        "/dags/example_etl/dagRuns?logical_date_gte=2024-01-02T00:00:00Z&logical_date_lte=2024-01-04T00:00:00%2B00:00",
    );
    assert_eq!(window["total_entries"], 3);
    let queued = op.ok("/dags/example_etl/dagRuns?state=queued&state=running");
    assert_eq!(queued["total_entries"], 6);
    assert_eq!(
        op.ok("/dags/example_etl/dagRuns?state=success")["total_entries"],
        0
    );
    let by_run_after =
        op.ok("/dags/example_etl/dagRuns?order_by=-run_after&order_by=run_id&limit=1");
    assert_eq!(
        by_run_after["dag_runs"][0]["dag_run_id"], "my_run",
        "triggered last"
    );
    assert_problem(
        &op.get("/dags/example_etl/dagRuns?cursor="),
        400,
        "cursor paging",
    );
    // Every DAG's runs: example_etl's six, and whatever run the scheduler
    // of `up` created for example_daily in the moment it was unpaused above.
    let everywhere = op.ok("/dags/~/dagRuns?limit=1");
    let daily = op.ok("/dags/example_daily/dagRuns?limit=1")["total_entries"]
        .as_i64()
        .unwrap();
    assert_eq!(everywhere["total_entries"], 6 + daily);

    // A queued run has no task instances yet.
    let tis = op.ok(&format!(
        "/dags/example_etl/dagRuns/{}/taskInstances",
        run_ids[0]
    ));
    assert_eq!(tis["total_entries"], 0);
}

#[test]
fn a_triggered_run_is_followed_to_its_logs_then_cleared_and_rerun() {
    let (_env, op, _viewer, _base) = start();
    let unpaused = op.patch("/dags/example_etl", json!({"is_paused": false}));
    assert_eq!(unpaused.status, 200, "{}", unpaused.body);

    let trig = op.post(
        "/dags/example_etl/dagRuns",
        json!({"logical_date": "2024-03-01T00:00:00Z"}),
    );
    assert_eq!(trig.status, 200, "{}", trig.body);
    let run_id = trig.body["dag_run_id"].as_str().unwrap().to_owned();
    assert_eq!(trig.body["logical_date"], "2024-03-01T00:00:00Z");
    let run = op.wait_run("example_etl", &run_id, "success", 30);
    assert!(run["duration"].as_f64().is_some_and(|d| d >= 0.0), "{run}");
    assert!(run["end_date"].is_string(), "{run}");

    let tis = op.ok(&format!("/dags/example_etl/dagRuns/{run_id}/taskInstances"));
    assert_eq!(tis["total_entries"], 3, "{tis}");
    let mut tasks: Vec<(String, String, i64)> = tis["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task_id"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap_or("null").to_owned(),
                t["try_number"].as_i64().unwrap(),
            )
        })
        .collect();
    tasks.sort();
    assert_eq!(
        tasks,
        vec![
            ("extract".into(), "success".into(), 1),
            ("load".into(), "success".into(), 1),
            ("process.transform".into(), "success".into(), 1),
        ]
    );
    let ids: HashSet<&str> = tis["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3, "distinct ids");

    let load_path = format!("/dags/example_etl/dagRuns/{run_id}/taskInstances/load");
    let load = op.ok(&load_path);
    assert_eq!(load["state"], "success");
    assert_eq!(load["dag_run_id"], run_id.as_str());
    assert_eq!(load["map_index"], -1);
    assert_eq!(load["operator"], "Task");
    assert_problem(
        &op.get(&format!(
            "/dags/example_etl/dagRuns/{run_id}/taskInstances/nope"
        )),
        404,
        "unknown task",
    );

    let log = op.ok(&format!("{load_path}/logs/1"));
    assert!(log["continuation_token"].is_null());
    let events: Vec<&str> = log["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["event"].as_str())
        .collect();
    assert!(events.contains(&"loaded total 12"), "{log}");
    assert_eq!(log["content"][0]["level"], "info");
    assert!(log["content"][0]["timestamp"].is_string());
    assert_problem(
        &op.get(&format!("{load_path}/logs/2")),
        404,
        "no second try yet",
    );
    assert_problem(&op.get(&format!("{load_path}/logs/0")), 404, "try 0");
    let ndjson = op
        .client
        .get(format!("{}{load_path}/logs/1", op.base))
        .bearer_auth(op.token.as_deref().unwrap())
        .header("accept", "application/x-ndjson")
        .send()
        .unwrap();
    assert_eq!(
        ndjson.headers()["content-type"],
        "application/x-ndjson",
        "asked for ndjson"
    );
    let lines: Vec<Value> = ndjson
        .text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(
        lines.iter().any(|l| l["event"] == "loaded total 12"),
        "{lines:?}"
    );
    assert_problem(
        &op.get(&format!("{load_path}/logs/-1")),
        422,
        "negative try",
    );
    assert_problem(
        &op.get(&format!("{load_path}/logs/first")),
        422,
        "try not a number",
    );

    // Airflow's defaults: a dry run of failed tasks only, so nothing here.
    let dry_default = op.post("/dags/example_etl/clearTaskInstances", json!({}));
    assert_eq!(dry_default.status, 200, "{}", dry_default.body);
    assert_eq!(dry_default.body["total_entries"], 0);

    let selection = json!({
        "dag_run_id": run_id,
        "task_ids": ["process.transform"],
        "include_downstream": true,
        "only_failed": false,
    });
    let dry = op.post("/dags/example_etl/clearTaskInstances", selection.clone());
    assert_eq!(dry.status, 200, "{}", dry.body);
    let mut would: Vec<&str> = dry.body["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    would.sort();
    assert_eq!(would, vec!["load", "process.transform"]);
    assert_eq!(dry.body["task_instances"][0]["state"], "success");
    assert_eq!(
        op.ok(&format!("/dags/example_etl/dagRuns/{run_id}"))["state"],
        "success",
        "a dry run changes nothing"
    );

    let mut real = selection;
    real["dry_run"] = json!(false);
    let cleared = op.post("/dags/example_etl/clearTaskInstances", real);
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    assert_eq!(cleared.body["total_entries"], 2, "{}", cleared.body);
    for t in cleared.body["task_instances"].as_array().unwrap() {
        // Cleared: no longer the old success (the scheduler may already be re-running it).
        let rerun_already = t["try_number"] == 2;
        assert!(t["state"] != "success" || rerun_already, "{t}");
    }

    op.wait_run("example_etl", &run_id, "success", 30);
    let load = op.ok(&load_path);
    assert_eq!(load["try_number"], 2, "{load}");
    let extract = op.ok(&format!(
        "/dags/example_etl/dagRuns/{run_id}/taskInstances/extract"
    ));
    assert_eq!(extract["try_number"], 1, "not cleared: {extract}");
    let log2 = op.ok(&format!("{load_path}/logs/2"));
    assert!(
        log2["content"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["event"] == "loaded total 12"),
        "{log2}"
    );
    let succeeded = op.ok(&format!(
        "/dags/example_etl/dagRuns/{run_id}/taskInstances?state=success&order_by=-task_id"
    ));
    let order: Vec<&str> = succeeded["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(order, vec!["process.transform", "load", "extract"]);
}

#[test]
fn the_openapi_document_describes_the_served_paths() {
    let (_env, op, _viewer, base) = start();
    let anon = Api::new(&base, None);
    let doc = anon.get("/openapi.json");
    assert_eq!(doc.status, 200);
    assert_eq!(doc.content_type, "application/json");
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/api/v2/dags", "get"),
        ("/api/v2/dags/{dag_id}", "get"),
        ("/api/v2/dags/{dag_id}", "patch"),
        ("/api/v2/dags/{dag_id}/dagRuns", "get"),
        ("/api/v2/dags/{dag_id}/dagRuns", "post"),
        ("/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}", "get"),
        (
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
            "get",
        ),
        (
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
            "get",
        ),
        (
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
            "get",
        ),
        (
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/qualityChecks",
            "get",
        ),
        ("/api/v2/dags/{dag_id}/clearTaskInstances", "post"),
        ("/api/v2/version", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let mut operation_ids = HashSet::new();
    for ops in paths.values() {
        for op in ops.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id), "operationId {id} used twice");
        }
    }
    assert!(
        operation_ids.contains("trigger_dag_run"),
        "Airflow's operation ids"
    );
    let schemas = &doc.body["components"]["schemas"];
    for required in ["dag_id", "is_paused", "is_stale", "tags", "file_token"] {
        assert!(
            schemas["DAGResponse"]["properties"][required].is_object(),
            "DAGResponse.{required}"
        );
    }
    assert!(schemas["DAGRunResponse"]["properties"]["run_after"].is_object());
    assert!(schemas["TaskInstanceResponse"]["properties"]["try_number"].is_object());
    assert!(schemas["QualityCheckResponse"]["properties"]["outcome"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["HTTPBearer"].is_object());

    // What the document says a DAG looks like is what a DAG looks like.
    let dag = op.ok("/dags/example_etl");
    let documented: HashSet<&str> = schemas["DAGResponse"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let served: HashSet<&str> = dag
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn a_runs_quality_checks_are_listed_and_paged() {
    let (env, op, viewer, base) = start();
    let created = op.post(
        "/dags/example_etl/dagRuns",
        json!({"dag_run_id": "checked", "logical_date": "2024-03-01T00:00:00Z"}),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let empty = viewer.ok("/dags/example_etl/dagRuns/checked/qualityChecks");
    assert_eq!(empty, json!({"quality_checks": [], "total_entries": 0}));

    env.sql(
        "INSERT INTO check_results (dag_id, run_id, task_id, try_number, logical_date, asset,
             check_name, severity, passed, observed_value, observed, detail)
         SELECT dag_id, run_id, 'gate', v.try, logical_date, 'silver.odds', v.name, v.severity,
             v.passed, v.value, v.observed::jsonb, v.detail
         FROM dag_runs, (VALUES
             (1, 'unique(event_id)', 'error', false, 9.0, '{}', 'an earlier try'),
             (2, 'unique(event_id)', 'error', true, 0.0, '{\"sample\": []}', 'all distinct'),
             (2, 'decimal > 1', 'error', false, 2.0, '{\"sample\": [\"event_id=e1\"]}', '2 rows'),
             (2, 'freshness(captured_at)', 'warn', false, 90000.5, '{}', 'stale')
         ) AS v(try, name, severity, passed, value, observed, detail)
         WHERE run_id = 'checked'",
    );
    let all = viewer.ok("/dags/example_etl/dagRuns/checked/qualityChecks");
    assert_eq!(all["total_entries"], 3, "{all}");
    let checks = all["quality_checks"].as_array().unwrap();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["unique(event_id)", "decimal > 1", "freshness(captured_at)"]
    );
    let outcomes: Vec<&str> = checks
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["passed", "failed", "warn"]);
    let failed = &checks[1];
    assert_eq!(failed["dag_id"], "example_etl");
    assert_eq!(failed["dag_run_id"], "checked");
    assert_eq!(failed["task_id"], "gate");
    assert_eq!(failed["try_number"], 2);
    assert_eq!(failed["table"], "silver.odds");
    assert_eq!(failed["severity"], "error");
    assert_eq!(failed["passed"], false);
    assert_eq!(failed["observed_value"], 2.0);
    assert_eq!(failed["observed"]["sample"], json!(["event_id=e1"]));
    assert_eq!(failed["detail"], "2 rows");
    assert_eq!(failed["logical_date"], "2024-03-01T00:00:00Z");
    assert!(failed["checked_at"].is_string());

    let page = viewer.ok("/dags/example_etl/dagRuns/checked/qualityChecks?limit=1&offset=2");
    assert_eq!(page["total_entries"], 3);
    assert_eq!(
        page["quality_checks"][0]["check_name"],
        "freshness(captured_at)"
    );
    assert_problem(
        &viewer.get("/dags/example_etl/dagRuns/nope/qualityChecks"),
        404,
        "unknown run",
    );
    assert_problem(
        &viewer.get("/dags/no_such_dag/dagRuns/checked/qualityChecks"),
        404,
        "unknown DAG",
    );
    assert_problem(
        &viewer.get("/dags/example_etl/dagRuns/checked/qualityChecks?limit=-1"),
        422,
        "negative limit",
    );
    assert_problem(
        &Api::new(&base, None).get("/dags/example_etl/dagRuns/checked/qualityChecks"),
        401,
        "anonymous",
    );
}

#[test]
fn a_run_is_marked_noted_and_deleted_and_bad_patches_are_refused() {
    let (env, operator, viewer, _base) = start();
    env.ok(&["dags", "unpause", "example_skip"]);
    let run = operator.post("/dags/example_skip/dagRuns", json!({}));
    assert_eq!(run.status, 200, "{}", run.body);
    let run_id = run.body["dag_run_id"].as_str().expect("run id").to_owned();
    let path = format!("/dags/example_skip/dagRuns/{run_id}");
    operator.wait_run("example_skip", &run_id, "success", 30);

    assert_problem(
        &viewer.patch(&path, json!({"note": "x"})),
        403,
        "a viewer patches",
    );
    assert_problem(
        &operator.patch(&path, json!({"state": "running"})),
        400,
        "running cannot be set",
    );
    assert_problem(
        &operator.patch(&path, json!({"note": "n".repeat(1001)})),
        422,
        "a note over 1,000 characters",
    );
    let noted = operator.patch(&path, json!({"note": "rerun after the fix"}));
    assert_eq!(noted.body["note"], "rerun after the fix", "{}", noted.body);

    // Failed by hand: every task instance that had finished keeps its state.
    let failed = operator.patch(&path, json!({"state": "failed"}));
    assert_eq!(failed.body["state"], "failed", "{}", failed.body);
    // Queued: every task instance is cleared and the run goes again.
    let queued = operator.patch(&path, json!({"state": "queued"}));
    assert_eq!(queued.status, 200, "{}", queued.body);
    operator.wait_run("example_skip", &run_id, "success", 30);

    let gone = operator.call(Method::DELETE, &path, None);
    assert_eq!(gone.status, 204, "{}", gone.body);
    assert_problem(&operator.get(&path), 404, "a deleted run");
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM task_instances WHERE run_id = '{run_id}'"
        )),
        "0"
    );

    // Each action is in the audit trail: who, what, on which run, from where.
    assert_problem(
        &viewer.get("/eventLogs"),
        403,
        "a viewer reads the event log",
    );
    env.create_user("ada", "admin", "admin-pass1");
    let admin = Api::new(
        operator.base.trim_end_matches("/api/v2"),
        Some(env.token("ada")),
    );
    let log = admin.ok(&format!("/eventLogs?run_id={}&order_by=when", seg(&run_id)));
    let events: Vec<String> = log["event_logs"]
        .as_array()
        .expect("event_logs")
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["event"].as_str().unwrap_or(""),
                e["owner"],
                e["dag_id"]
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "trigger \"olga\" \"example_skip\"",
            "set_run_state \"olga\" \"example_skip\"",
            "set_run_state \"olga\" \"example_skip\"",
            "delete_run \"olga\" \"example_skip\"",
        ]
    );
    let first = &log["event_logs"][0];
    let extra: Value = serde_json::from_str(first["extra"].as_str().expect("extra")).expect("json");
    assert_eq!(extra["client"], "127.0.0.1", "{first}");
    let one = admin.ok(&format!("/eventLogs/{}", first["event_log_id"]));
    assert_eq!(one["event"], "trigger");
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_clear_without_bounds_is_refused_past_500_runs() {
    let (env, operator, _viewer, _base) = start();
    env.sql(
        "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end,
            run_type, state)
         SELECT 'example_etl', 'manual__' || d, d, d, d + interval '1 day', 'manual', 'success'
         FROM generate_series(timestamptz '2020-01-01', timestamptz '2020-01-01' + interval '500 days',
                              interval '1 day') AS d",
    );
    let r = operator.post(
        "/dags/example_etl/clearTaskInstances",
        json!({"dry_run": false, "only_failed": false}),
    );
    assert_problem(&r, 400, "a clear of every run");
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("more than 500 runs")),
        "{}",
        r.body
    );
    // Narrowed by dates, it goes through.
    let r = operator.post(
        "/dags/example_etl/clearTaskInstances",
        json!({"dry_run": true, "only_failed": false,
               "start_date": "2020-01-01T00:00:00Z", "end_date": "2020-01-31T00:00:00Z"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_long_log_comes_in_pages_with_continuation_tokens() {
    let (env, _operator, viewer, _base) = start();
    env.sql(
        "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end,
            run_type, state)
         VALUES ('example_etl', 'manual__long', '2020-01-01', '2020-01-01', '2020-01-02', 'manual', 'success');
         INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number)
         VALUES ('example_etl', 'manual__long', 'extract', 'success', 1);
         INSERT INTO task_logs (dag_id, run_id, task_id, try_number, ts, level, message)
         SELECT 'example_etl', 'manual__long', 'extract', 1, now(), 'INFO', 'line ' || n
         FROM generate_series(1, 12000) AS n",
    );
    let path = "/dags/example_etl/dagRuns/manual__long/taskInstances/extract/logs/1";
    let mut lines: Vec<String> = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let url = match &token {
            Some(t) => format!("{path}?token={t}"),
            None => path.to_owned(),
        };
        let page = viewer.ok(&url);
        pages += 1;
        let content = page["content"].as_array().expect("content");
        assert!(content.len() <= 5_000, "a page holds at most 5,000 lines");
        lines.extend(
            content
                .iter()
                .map(|l| l["event"].as_str().unwrap_or_default().to_owned()),
        );
        match page["continuation_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(lines.len(), 12_000);
    assert_eq!(lines.first().map(String::as_str), Some("line 1"));
    assert_eq!(lines.last().map(String::as_str), Some("line 12000"));

    // full_content: bigger pages, here the whole log at once.
    let full = viewer.ok(&format!("{path}?full_content=true"));
    assert_eq!(full["content"].as_array().map(Vec::len), Some(12_000));
    assert!(full["continuation_token"].is_null());

    let r = viewer.get(&format!("{path}?token=not-a-token"));
    assert_problem(&r, 400, "a forged token");
}

#[test]
fn admins_read_the_configuration_with_its_secrets_masked() {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up_with(&[
        ("ODDS_API_KEY", "odds-key-123"),
        (
            "BETFLOW_NOTIFY_WEBHOOK_URL",
            "https://hooks.example/T000/secret-path",
        ),
    ]);
    env.create_user("ada", "admin", "admin-pass-1");
    env.create_user("victor", "viewer", "viewer-pass");
    let admin = Api::new(&base, Some(env.token("ada")));
    let viewer = Api::new(&base, Some(env.token("victor")));
    assert_problem(&viewer.get("/config"), 403, "a viewer");

    let config = admin.ok("/config");
    let text = config.to_string();
    assert!(
        !text.contains("odds-key-123") && !text.contains("secret-path"),
        "{text}"
    );
    let option = |section: &str, key: &str| -> Value {
        config["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["name"] == section)
            .flat_map(|s| s["options"].as_array().cloned().unwrap_or_default())
            .find(|o| o["key"] == key)
            .map(|o| o["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(option("environment", "ODDS_API_KEY"), "< hidden >");
    assert_eq!(
        option("environment", "BETFLOW_NOTIFY_WEBHOOK_URL"),
        "< hidden >"
    );
    let db = option("environment", "DATABASE_URL");
    assert!(db.as_str().is_some_and(|u| u.contains(":***@")), "{db}");
    assert_eq!(option("betflow", "transform_engine"), "local");

    let one = admin.ok("/config/section/betflow/option/transform_engine");
    assert_eq!(one["sections"][0]["options"][0]["value"], "local");
    assert_problem(
        &admin.get("/config?section=nope"),
        404,
        "an unknown section",
    );
}

#[test]
fn task_instances_are_set_by_hand_across_tasks_and_runs() {
    let (env, operator, viewer, _base) = start();
    env.ok(&["dags", "unpause", "example_etl"]);
    let mut runs: Vec<String> = Vec::new();
    for day in ["2024-06-01", "2024-06-02", "2024-06-03"] {
        let run = operator.post(
            "/dags/example_etl/dagRuns",
            json!({"logical_date": format!("{day}T00:00:00Z")}),
        );
        assert_eq!(run.status, 200, "{}", run.body);
        let run_id = run.body["dag_run_id"].as_str().unwrap().to_owned();
        operator.wait_run("example_etl", &run_id, "success", 30);
        runs.push(run_id);
    }
    let path = |run: &str, task: &str| {
        format!(
            "/dags/example_etl/dagRuns/{}/taskInstances/{task}",
            seg(run)
        )
    };
    let reached = |r: &Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["task_instances"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|t| {
                format!(
                    "{}/{}={}",
                    t["dag_run_id"].as_str().unwrap(),
                    t["task_id"].as_str().unwrap(),
                    t["state"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    let middle = &runs[1];
    assert_problem(
        &viewer.patch(&path(middle, "load"), json!({"new_state": "failed"})),
        403,
        "a viewer marks",
    );
    // The task in this run and the earlier ones: two instances.
    let past = operator.patch(
        &path(middle, "load"),
        json!({"new_state": "failed", "include_past": true}),
    );
    assert_eq!(past.status, 200, "{}", past.body);
    assert_eq!(
        reached(&past),
        [
            format!("{}/load=failed", runs[0]),
            format!("{middle}/load=failed")
        ]
    );
    // Upstream of `load` in the later runs, as a dry run: nothing changes.
    let dry = operator.call(
        Method::PATCH,
        &format!("{}/dry_run", path(middle, "load")),
        Some(json!({"new_state": "skipped", "include_upstream": true, "include_future": true})),
    );
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(
        reached(&dry).len(),
        6,
        "3 tasks × 2 runs: {:?}",
        reached(&dry)
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM task_instances WHERE state = 'skipped'"),
        "0"
    );
    let skipped = operator.patch(
        &path(middle, "load"),
        json!({"new_state": "skipped", "include_upstream": true, "include_future": true}),
    );
    assert!(
        reached(&skipped).iter().all(|t| t.ends_with("=skipped")),
        "{:?}",
        reached(&skipped)
    );
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM task_instances WHERE state = 'skipped' AND run_id = '{}'",
            runs[0]
        )),
        "0",
        "the earlier run is not reached"
    );
    assert_problem(
        &operator.patch(
            &format!("{}?map_index=2", path(middle, "load")),
            json!({"new_state": "success"}),
        ),
        404,
        "a mapped instance",
    );
    assert_problem(
        &operator.patch(
            &format!("{}?update_mask=state", path(middle, "load")),
            json!({"new_state": "success"}),
        ),
        400,
        "an unknown field in the mask",
    );
}
