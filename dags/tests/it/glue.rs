//! The GlueJob task against a real Glue API server on loopback: moto's
//! `moto_server`, one per test.
//!
//! moto (5.2) runs job runs through STARTING → RUNNING → SUCCEEDED under its
//! state manager (`glue::job_run`, steered over `/moto-api/state-manager`),
//! but it never fails a run and does not implement BatchStopJobRun (it
//! answers 500). The tests that need those put a small recording proxy in
//! front of moto ([`GlueProxy`]): it answers BatchStopJobRun the way Glue
//! does and records it, can turn moto's real GetJobRun answer into Glue's
//! FAILED answer, and can inject server errors; moto has no UpdateJob
//! either, so the proxy replaces the job in moto (DeleteJob, CreateJob
//! with the update) and records the request. Everything else reaches moto.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::moto_auth::require_signatures;
use crate::support::MotoServer;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use chrono::{TimeZone, Utc};
use lakehouse::aws::AwsCredentials;
use lakehouse::glue_api::jobs::{GetJobRunRequest, GetJobRunResponse, JobRun};
use lakehouse::glue_api::{GlueClient, GlueErrorKind};
use lakehouse::glue_job::{job_name_var, GlueConfig, GlueJob, GlueRunOutput, PREFIX_VAR};
use orchestrator::setting::Vars;
use orchestrator::task::{LogLine, TaskLogger};
use orchestrator::{DataInterval, Task, TaskContext, TaskError};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const RUN_ID: &str = "scheduled__2024-09-08T04:00:00+00:00";

fn credentials() -> AwsCredentials {
    AwsCredentials {
        access_key_id: "betflow-test".to_owned(),
        secret_access_key: "betflow-test-secret".to_owned(),
        session_token: None,
    }
}

/// Fast polls: moto answers at once, and the tests wait on state changes.
fn config(endpoint: &str, job_name: &str) -> GlueConfig {
    let mut config = GlueConfig::new(job_name, "us-east-1", credentials());
    config.endpoint = Some(endpoint.to_owned());
    config.poll_initial = Duration::from_millis(10);
    config.poll_max = Duration::from_millis(50);
    config
        .arguments
        .insert("--lake".to_owned(), "s3://betflow-lake".to_owned());
    config
}

/// A client for `endpoint` with the tasks' credentials.
fn client(endpoint: &str) -> GlueClient {
    GlueClient::new(
        Some(endpoint),
        "us-east-1",
        &credentials(),
        Duration::from_secs(30),
    )
    .expect("Glue client")
}

/// Creates the job in moto (BetFlow itself never creates jobs, so the
/// request is plain JSON in Glue's CreateJob shape).
async fn create_job(endpoint: &str, name: &str) {
    let request = json!({
        "Name": name,
        "Role": "arn:aws:iam::123456789012:role/betflow-glue",
        "Command": {
            "Name": "glueetl",
            "ScriptLocation": format!("s3://betflow-glue/scripts/{name}.py"),
        },
        "DefaultArguments": {"--TempDir": "s3://betflow-glue/tmp/"},
    });
    let created: Value = client(endpoint)
        .call("CreateJob", &request)
        .await
        .expect("create job");
    assert_eq!(created["Name"], name, "{created}");
}

/// The run as moto has it, asked directly.
async fn job_run(endpoint: &str, job: &str, run_id: &str) -> JobRun {
    let request = GetJobRunRequest {
        job_name: job,
        run_id,
    };
    client(endpoint)
        .call::<_, GetJobRunResponse>("GetJobRun", &request)
        .await
        .expect("get job run")
        .job_run
        .expect("job run")
}

/// Sets how moto's job runs progress (`immediate`, the default, finishes a
/// run at its first GetJobRun).
async fn set_transition(moto: &MotoServer, transition: Value) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/state-manager/set-transition",
            moto.endpoint
        ))
        .json(&json!({"model_name": "glue::job_run", "transition": transition}))
        .send()
        .await
        .expect("set transition");
    assert!(response.status().is_success(), "{}", response.status());
}

/// A try's context for the day 2024-09-08 (New York), with its log lines
/// going to the returned receiver.
fn context(cancel: CancellationToken) -> (TaskContext, mpsc::UnboundedReceiver<LogLine>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let start = Utc.with_ymd_and_hms(2024, 9, 8, 4, 0, 0).unwrap();
    let ctx = TaskContext::new(
        "gold_marts_nightly".to_owned(),
        "nfl.silver_games".to_owned(),
        RUN_ID.to_owned(),
        DataInterval {
            start,
            end: start + chrono::Duration::days(1),
        },
        1,
        2,
        Map::new(),
        TaskLogger::channel(tx),
        cancel,
        HashMap::new(),
    );
    (ctx, rx)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<LogLine>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(format!("{} {}", line.level, line.message));
    }
    lines
}

/// Waits for a log line containing `needle`, returning the lines seen.
async fn wait_for_log(rx: &mut mpsc::UnboundedReceiver<LogLine>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(line)) => {
                let hit = line.message.contains(needle);
                seen.push(format!("{} {}", line.level, line.message));
                if hit {
                    return seen;
                }
            }
            Ok(None) => panic!("task ended before logging {needle:?}: {seen:#?}"),
            Err(_) => panic!("no log line with {needle:?} within 30 s: {seen:#?}"),
        }
    }
}

fn failure(result: Result<Value, TaskError>) -> String {
    match result {
        Ok(value) => panic!("expected a failure, got {value}"),
        Err(TaskError::Skip(reason)) => panic!("expected a failure, got a skip: {reason}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_run_succeeds_and_carries_the_run_identity() {
    let moto = MotoServer::start();
    create_job(&moto.endpoint, "betflow-silver-games").await;
    // One state step per GetJobRun, so the task sees every state.
    set_transition(&moto, json!({"progression": "manual", "times": 1})).await;
    let cfg = config(&moto.endpoint, "betflow-silver-games");
    let task = GlueJob::new(cfg.clone())
        .arg("--sport", "nfl")
        .run_arg(dags::batch::SPORTS_DAY_ARG, dags::batch::glue_sports_day)
        // The identity arguments win over a task's own.
        .arg("--run_id", "somebody-else");
    let (ctx, mut logs) = context(CancellationToken::new());

    let value = task.execute(ctx).await.expect("job run succeeds");
    let output: GlueRunOutput = serde_json::from_value(value.clone()).expect("output shape");
    assert_eq!(output.job_name, "betflow-silver-games");
    assert!(output.job_run_id.starts_with("jr_"), "{value}");
    assert_eq!(output.state, "SUCCEEDED");
    assert!(output.started_on.is_some(), "{value}");
    assert_eq!(value["job_run_id"], output.job_run_id.as_str());

    let lines = drain(&mut logs);
    let run = &output.job_run_id;
    for needle in [
        format!("run {run} started"),
        format!("run {run} is RUNNING"),
        format!("run {run}: RUNNING → SUCCEEDED"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&needle)),
            "no {needle:?} in {lines:#?}"
        );
    }

    // What moto recorded for the run: the job's defaults, the config's and
    // the task's arguments, and the try's identity.
    let recorded = job_run(&moto.endpoint, &cfg.job_name, run).await;
    assert_eq!(recorded.job_run_state.as_deref(), Some("SUCCEEDED"));
    let args: BTreeMap<String, String> =
        recorded.arguments.expect("arguments").into_iter().collect();
    let expected: BTreeMap<String, String> = [
        ("--TempDir", "s3://betflow-glue/tmp/"),
        ("--lake", "s3://betflow-lake"),
        ("--logical_date", "2024-09-08T04:00:00+00:00"),
        ("--run_id", RUN_ID),
        ("--sport", "nfl"),
        ("--sports_day", "2024-09-08"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(args, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_does_not_exist_fails_naming_it() {
    let moto = MotoServer::start();
    let task = GlueJob::new(config(&moto.endpoint, "betflow-no-such-job"));
    let (ctx, _logs) = context(CancellationToken::new());
    let text = failure(task.execute(ctx).await);
    assert!(
        text.contains("could not start Glue job `betflow-no-such-job`"),
        "{text}"
    );
    assert!(text.contains("EntityNotFoundException"), "{text}");
    assert!(text.contains("Job betflow-no-such-job not found"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_surfaces_glues_error_message() {
    let moto = MotoServer::start();
    create_job(&moto.endpoint, "betflow-gold-marts").await;
    let proxy = GlueProxy::start(&moto).await;
    let message = "ZeroDivisionError: division by zero (gold_marts.py, line 42)";
    *proxy.state.fail_runs_with.lock().unwrap() = Some(message.to_owned());
    let task = GlueJob::new(config(&proxy.endpoint, "betflow-gold-marts"));
    let (ctx, mut logs) = context(CancellationToken::new());

    let text = failure(task.execute(ctx).await);
    let run_id = only_run_id(&moto, "betflow-gold-marts").await;
    assert!(
        text.contains(&format!(
            "Glue job `betflow-gold-marts` run {run_id} ended FAILED: {message}"
        )),
        "{text}"
    );
    let lines = drain(&mut logs);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("FAILED") && l.contains(message)),
        "{lines:#?}"
    );
    // A finished run is not stopped.
    assert!(proxy.state.stops.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_poll_errors_are_retried() {
    let moto = MotoServer::start();
    create_job(&moto.endpoint, "betflow-silver-odds").await;
    let proxy = GlueProxy::start(&moto).await;
    // More than the client's own three attempts, so the task's loop retries too.
    proxy.state.failing_polls.store(4, Ordering::SeqCst);
    let task = GlueJob::new(config(&proxy.endpoint, "betflow-silver-odds"));
    let (ctx, mut logs) = context(CancellationToken::new());

    let value = task.execute(ctx).await.expect("succeeds despite 5xx");
    assert_eq!(value["state"], "SUCCEEDED");
    assert_eq!(proxy.state.failing_polls.load(Ordering::SeqCst), 0);
    let lines = drain(&mut logs);
    assert!(
        lines.iter().any(|l| l.starts_with("WARNING")
            && l.contains("failed (1 of at most 10 in a row), retrying")
            && l.contains("InternalServiceException")),
        "{lines:#?}"
    );
}

/// Starts the task with the run held RUNNING, returning once the task
/// has seen it running.
async fn start_held_running(
    moto: &MotoServer,
    proxy: &GlueProxy,
    job: &str,
    cancel: CancellationToken,
) -> (
    tokio::task::JoinHandle<Result<Value, TaskError>>,
    mpsc::UnboundedReceiver<LogLine>,
    String,
) {
    create_job(&moto.endpoint, job).await;
    // STARTING for 2 s, then RUNNING…
    set_transition(moto, json!({"progression": "time", "seconds": 2})).await;
    let task = GlueJob::new(config(&proxy.endpoint, job));
    let (ctx, mut logs) = context(cancel);
    let handle = tokio::spawn(async move { task.execute(ctx).await });
    wait_for_log(&mut logs, "RUNNING").await;
    // …and RUNNING for good: a manual step after a billion polls.
    set_transition(
        moto,
        json!({"progression": "manual", "times": 1_000_000_000u64}),
    )
    .await;
    let run_id = only_run_id(moto, job).await;
    assert_eq!(run_state(moto, job, &run_id).await, "RUNNING");
    (handle, logs, run_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_the_run() {
    let moto = MotoServer::start();
    let proxy = GlueProxy::start(&moto).await;
    let cancel = CancellationToken::new();
    let (handle, mut logs, run_id) =
        start_held_running(&moto, &proxy, "betflow-silver-weather", cancel.clone()).await;

    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("task returns promptly after cancellation")
        .expect("task did not panic");
    let text = failure(result);
    assert!(
        text.contains(&format!(
            "Glue job `betflow-silver-weather` run {run_id} cancelled"
        )),
        "{text}"
    );
    assert!(text.contains("stop requested"), "{text}");
    assert_eq!(
        *proxy.state.stops.lock().unwrap(),
        [json!({"JobName": "betflow-silver-weather", "JobRunIds": [run_id]})]
    );
    let lines = drain(&mut logs);
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "asked Glue to stop job `betflow-silver-weather` run {run_id}"
        ))),
        "{lines:#?}"
    );
    // moto cannot stop a run, so it stays RUNNING there; the request above
    // is what Glue would act on.
    assert_eq!(
        run_state(&moto, "betflow-silver-weather", &run_id).await,
        "RUNNING"
    );
}

/// What the executor does on a timeout: cancel, then abort the future at
/// once, so the task's own cancellation branch may never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_task_still_stops_the_run() {
    let moto = MotoServer::start();
    let proxy = GlueProxy::start(&moto).await;
    let (handle, _logs, run_id) = start_held_running(
        &moto,
        &proxy,
        "betflow-gold-edges",
        CancellationToken::new(),
    )
    .await;

    handle.abort();
    let joined = handle.await;
    assert!(joined.is_err_and(|e| e.is_cancelled()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stops = proxy.state.stops.lock().unwrap().clone();
        if !stops.is_empty() {
            assert_eq!(
                stops,
                [json!({"JobName": "betflow-gold-edges", "JobRunIds": [run_id]})]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no BatchStopJobRun within 30 s of the abort"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Glue refuses a request whose signature does not cover exactly what is
/// sent; moto checks the same way once told to. The task's own calls
/// (StartJobRun, GetJobRun) and the catalog's go through the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_calls_pass_signature_checks() {
    let moto = MotoServer::start();
    create_job(&moto.endpoint, "betflow-signed").await;
    let keys = require_signatures(&moto).await;
    let glue = |credentials: &AwsCredentials| {
        GlueClient::new(
            Some(&moto.endpoint),
            "us-east-1",
            credentials,
            Duration::from_secs(30),
        )
        .expect("Glue client")
    };
    let signed = glue(&keys);
    let missing = signed
        .call::<_, Value>("GetDatabase", &json!({"Name": "bronze"}))
        .await
        .expect_err("no database yet");
    assert_eq!(
        missing.kind(),
        Some(GlueErrorKind::EntityNotFound),
        "{missing}"
    );
    let input = json!({"Name": "bronze", "Description": "Größe & Zeit: \"quoted\""});
    signed
        .call::<_, Value>("CreateDatabase", &json!({"DatabaseInput": input}))
        .await
        .expect("signed CreateDatabase");

    let mut cfg = config(&moto.endpoint, "betflow-signed");
    cfg.credentials = keys.clone();
    let (ctx, _logs) = context(CancellationToken::new());
    let value = GlueJob::new(cfg)
        .execute(ctx)
        .await
        .expect("signed job run");
    assert_eq!(value["state"], "SUCCEEDED");

    let wrong = glue(&AwsCredentials {
        secret_access_key: "not-the-secret".to_owned(),
        ..keys
    });
    let refused = wrong
        .call::<_, Value>("GetDatabase", &json!({"Name": "bronze"}))
        .await
        .expect_err("a wrong secret is refused");
    assert_eq!(refused.kind(), Some(GlueErrorKind::Refused), "{refused}");
    assert!(!refused.is_transient());
    let text = refused.to_string();
    assert!(
        text.contains("SignatureDoesNotMatch") && text.contains("HTTP 403"),
        "{text}"
    );
}

#[test]
fn config_names_what_is_missing() {
    let mut env = Vars::default();
    let set = |env: &mut Vars, name: &str, value: &str| {
        env.0.insert(name.to_owned(), value.to_owned());
    };
    assert_eq!(
        job_name_var("silver_games"),
        "BETFLOW_GLUE_JOB_NAME_SILVER_GAMES"
    );
    let text = GlueConfig::resolve("silver_games", &env)
        .expect_err("no job name")
        .to_string();
    assert!(
        text.contains("BETFLOW_GLUE_JOB_NAME_SILVER_GAMES") && text.contains(PREFIX_VAR),
        "{text}"
    );

    set(&mut env, PREFIX_VAR, "betflow-prod-");
    let text = GlueConfig::resolve("silver_games", &env)
        .expect_err("no credentials")
        .to_string();
    assert!(
        text.contains("`betflow-prod-silver_games`") && text.contains("AWS_ACCESS_KEY_ID"),
        "{text}"
    );
    set(&mut env, "AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    let text = GlueConfig::resolve("silver_games", &env)
        .expect_err("no secret")
        .to_string();
    assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    set(&mut env, "AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI");
    set(&mut env, "AWS_DEFAULT_REGION", "eu-west-1");
    set(&mut env, "BETFLOW_GLUE_POLL_INITIAL_SECS", "0.5");

    let config = GlueConfig::resolve("silver_games", &env).expect("complete");
    assert_eq!(config.job_name, "betflow-prod-silver_games");
    assert_eq!(config.region, "eu-west-1");
    assert_eq!(config.endpoint, None);
    assert_eq!(config.poll_initial, Duration::from_millis(500));
    assert_eq!(config.poll_max, Duration::from_secs(60));
    assert!(!format!("{config:?}").contains("wJalrXUtnFEMI"));

    // The per-job name beats the prefix; AWS_REGION beats AWS_DEFAULT_REGION.
    set(
        &mut env,
        "BETFLOW_GLUE_JOB_NAME_SILVER_GAMES",
        "legacy_silver_games",
    );
    set(&mut env, "AWS_REGION", "us-west-2");
    set(&mut env, "BETFLOW_GLUE_ENDPOINT", "http://127.0.0.1:5000");
    let config = GlueConfig::resolve("silver_games", &env).expect("complete");
    assert_eq!(config.job_name, "legacy_silver_games");
    assert_eq!(config.region, "us-west-2");
    assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:5000"));

    set(&mut env, "BETFLOW_GLUE_POLL_MAX_SECS", "0.1");
    let text = GlueConfig::resolve("silver_games", &env)
        .expect_err("max below initial")
        .to_string();
    assert!(text.contains("BETFLOW_GLUE_POLL_MAX_SECS"), "{text}");
    set(&mut env, "BETFLOW_GLUE_POLL_MAX_SECS", "soon");
    let text = GlueConfig::resolve("silver_games", &env)
        .expect_err("not a number")
        .to_string();
    assert!(
        text.contains("BETFLOW_GLUE_POLL_MAX_SECS=\"soon\""),
        "{text}"
    );
}

/// The id of the job's only run, asked of moto directly.
async fn only_run_id(moto: &MotoServer, job: &str) -> String {
    let answer: Value = client(&moto.endpoint)
        .call("GetJobRuns", &json!({"JobName": job}))
        .await
        .expect("get job runs");
    let runs: &Vec<Value> = answer["JobRuns"].as_array().expect("JobRuns");
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0]["Id"].as_str().expect("run id").to_owned()
}

async fn run_state(moto: &MotoServer, job: &str, run_id: &str) -> String {
    job_run(&moto.endpoint, job, run_id)
        .await
        .job_run_state
        .expect("state")
}

/// An HTTP proxy in front of moto for what moto cannot do; see the module docs.
pub(crate) struct GlueProxy {
    pub(crate) endpoint: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    moto: String,
    http: reqwest::Client,
    /// BatchStopJobRun request bodies, in order.
    stops: Mutex<Vec<Value>>,
    /// GetJobRun calls still to answer with a 500.
    failing_polls: AtomicU32,
    /// When set, GetJobRun answers say FAILED with this ErrorMessage.
    fail_runs_with: Mutex<Option<String>>,
    /// UpdateJob request bodies, in order.
    pub(crate) updates: Mutex<Vec<Value>>,
}

impl GlueProxy {
    pub(crate) async fn start(moto: &MotoServer) -> GlueProxy {
        let state = Arc::new(ProxyState {
            moto: moto.endpoint.clone(),
            http: reqwest::Client::new(),
            stops: Mutex::new(Vec::new()),
            failing_polls: AtomicU32::new(0),
            fail_runs_with: Mutex::new(None),
            updates: Mutex::new(Vec::new()),
        });
        let app: Router = Router::new().fallback(proxy).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        GlueProxy { endpoint, state }
    }

    /// The UpdateJob requests received so far.
    pub(crate) fn updates(&self) -> Vec<Value> {
        self.state.updates.lock().unwrap().clone()
    }
}

/// One call to moto with `headers` (its signature is not checked here),
/// as operation `target`.
async fn moto_call(
    state: &ProxyState,
    headers: &HeaderMap,
    target: &str,
    body: Value,
) -> StatusCode {
    let mut request = state.http.post(&state.moto).body(body.to_string());
    for (name, value) in headers {
        if name != "host" && name != "content-length" && name != "x-amz-target" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let response = request
        .header("x-amz-target", target)
        .send()
        .await
        .expect("moto answers");
    StatusCode::from_u16(response.status().as_u16()).expect("status")
}

fn glue_json(status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Body::from(body))
        .expect("response")
}

async fn proxy(State(state): State<Arc<ProxyState>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if target == "AWSGlue.BatchStopJobRun" {
        let request: Value = serde_json::from_slice(&body).expect("stop request JSON");
        let submitted: Vec<Value> = request["JobRunIds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|id| json!({"JobName": request["JobName"], "JobRunId": id}))
            .collect();
        state.stops.lock().unwrap().push(request);
        let answer = json!({"SuccessfulSubmissions": submitted, "Errors": []});
        return glue_json(StatusCode::OK, answer.to_string().into_bytes());
    }
    if target == "AWSGlue.UpdateJob" {
        let request: Value = serde_json::from_slice(&body).expect("update request JSON");
        let name = request["JobName"].clone();
        let mut create = request["JobUpdate"].clone();
        create["Name"] = name.clone();
        let deleted = moto_call(
            &state,
            &headers,
            "AWSGlue.DeleteJob",
            json!({"JobName": name}),
        )
        .await;
        let created = moto_call(&state, &headers, "AWSGlue.CreateJob", create).await;
        assert!(
            deleted.is_success() && created.is_success(),
            "moto replaced the job: {deleted} {created}"
        );
        state.updates.lock().unwrap().push(request);
        return glue_json(
            StatusCode::OK,
            json!({"JobName": name}).to_string().into_bytes(),
        );
    }
    if target == "AWSGlue.GetJobRun"
        && state
            .failing_polls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        let answer = json!({"__type": "InternalServiceException", "message": "injected outage"});
        return glue_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            answer.to_string().into_bytes(),
        );
    }
    let mut request = state.http.post(&state.moto).body(body.to_vec());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let response = request.send().await.expect("moto answers");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let mut bytes = response.bytes().await.expect("moto body").to_vec();
    let fail_with = state.fail_runs_with.lock().unwrap().clone();
    if let (true, Some(message)) = (
        target == "AWSGlue.GetJobRun" && status.is_success(),
        fail_with,
    ) {
        let mut answer: Value = serde_json::from_slice(&bytes).expect("GetJobRun JSON");
        answer["JobRun"]["JobRunState"] = json!("FAILED");
        answer["JobRun"]["ErrorMessage"] = json!(message);
        bytes = answer.to_string().into_bytes();
    }
    glue_json(status, bytes)
}
