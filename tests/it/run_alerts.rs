//! Alerts on run and task outcomes and missed deadlines, delivered by a
//! running scheduler to a local HTTP receiver (the webhook) and a real SMTP
//! server (aiosmtpd from PyPI), including a receiver that keeps failing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::TestEnv;

/// An HTTP endpoint on loopback that answers every POST with `status` and
/// keeps the JSON bodies it received.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/services/T000/B000/secret-token",
            listener.local_addr().expect("addr")
        );
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(body) = read_post(&stream) {
                    kept.lock().expect("lock").push(body);
                }
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let _ = (&stream).write_all(
                    format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Self { url, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().expect("lock").clone()
    }
}

fn read_post(stream: &TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// aiosmtpd's debugging server, printing every message it accepts.
struct Smtp {
    child: Child,
    port: u16,
    out: std::path::PathBuf,
}

impl Smtp {
    fn start(dir: &std::path::Path) -> Self {
        let python = std::env::var("BETFLOW_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let out = dir.join("smtp.out");
        let child = Command::new(&python)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(std::fs::File::create(&out).expect("smtp log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} -m aiosmtpd (pip install aiosmtpd): {e}"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, port, out }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn failures_retries_and_missed_deadlines_reach_the_webhook_and_email() {
    let mut env = TestEnv::start();
    let hook = Receiver::start(200);
    let smtp = Smtp::start(env.home.path());
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    env.spawn(
        &["scheduler"],
        &[
            ("BETFLOW_NOTIFY_WEBHOOK_URL", &hook.url),
            (
                "BETFLOW_NOTIFY_EMAIL_TO",
                "ops@example.com, data@example.com",
            ),
            ("BETFLOW_SMTP_URL", &smtp_url),
            ("BETFLOW_NOTIFY_EMAIL_FROM", "betflow@example.com"),
        ],
    );
    for dag in ["example_retries", "example_deadline"] {
        env.ok(&["dags", "unpause", dag]);
    }
    env.ok(&[
        "dags",
        "trigger",
        "example_retries",
        "--conf",
        r#"{"give_up": true}"#,
    ]);
    env.ok(&["dags", "trigger", "example_deadline"]);

    // The run failure (the deployment's default events) on both channels,
    // and the deadline miss while the run was still going.
    env.wait_for(
        "SELECT count(*) FROM alert_deliveries WHERE state = 'delivered'",
        "4",
        60,
    );
    wait_until("the webhook's two bodies", 10, || hook.bodies().len() == 2);
    let bodies = hook.bodies();
    let failure = bodies
        .iter()
        .find(|b| b["event"] == "failure")
        .expect("a failure alert");
    assert_eq!(failure["dag_id"], "example_retries");
    assert!(failure["task_id"].is_null(), "the run's event: {failure}");
    let text = failure["text"].as_str().expect("Slack's text");
    assert!(
        text.starts_with("DAG example_retries run manual__")
            && text.ends_with("failed; failed tasks: flaky"),
        "{text}"
    );
    let deadline = bodies
        .iter()
        .find(|b| b["event"] == "deadline_miss")
        .expect("a deadline alert");
    assert!(
        deadline["text"]
            .as_str()
            .is_some_and(|t| t.contains("missed its deadline")),
        "{deadline}"
    );
    assert_eq!(deadline["detail"]["state"], "running");
    wait_until("two emails", 10, || {
        smtp.received().matches("Subject: ").count() == 2
    });
    let mail = smtp.received();
    assert!(
        mail.contains("Subject: [BetFlow] failure example_retries"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: [BetFlow] deadline miss example_deadline"),
        "{mail}"
    );
    assert!(
        mail.contains("To: ops@example.com, data@example.com"),
        "{mail}"
    );
    // The deadline alerts once, not at every pass, and the run is marked.
    env.wait_for(
        "SELECT state FROM dag_runs WHERE dag_id = 'example_deadline'",
        "success",
        30,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        env.scalar(
            "SELECT count(*) || ':' || count(deadline_missed_at) FROM dag_runs dr
             JOIN alert_deliveries a USING (dag_id, run_id) WHERE a.event = 'deadline_miss'"
        ),
        "2:2"
    );

    // A task-level alert: each failed try of `flaky` that is retried.
    env.ok(&[
        "dags",
        "trigger",
        "example_retries",
        "--logical-date",
        "2026-01-01T00:00:00Z",
    ]);
    env.wait_for(
        "SELECT count(*) FROM alert_deliveries WHERE event = 'retry' AND state = 'delivered'",
        "4",
        60,
    );
    let retries: Vec<String> = hook
        .bodies()
        .iter()
        .filter(|b| b["event"] == "retry")
        .map(|b| format!("{}:{}", b["task_id"], b["try_number"]))
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(retries.contains(&"\"flaky\":1".to_owned()), "{retries:?}");
    assert!(retries.contains(&"\"flaky\":2".to_owned()), "{retries:?}");
    // The webhook's secret path is in no row.
    assert_eq!(
        env.scalar(
            "SELECT count(*) FROM alert_deliveries WHERE coalesce(target, '') LIKE '%secret%'"
        ),
        "0"
    );

    // The DAG page marks the run and lists what was sent.
    let viewer = crate::common::viewer::Viewer::log_in(&mut env);
    let html = viewer.get("/dags/example_deadline");
    assert!(html.contains(">deadline missed</span>"), "{html}");
    assert!(html.contains("Each run must finish within 2"), "{html}");
    assert!(
        html.contains(r#"<td class="nowrap">deadline miss</td>"#)
            && html.contains(">delivered</span>"),
        "{html}"
    );
    let html = viewer.get("/dags/example_retries");
    assert!(html.contains("flaky (try 2)"), "{html}");
    assert!(
        html.contains("Tasks with their own notifications: flaky."),
        "{html}"
    );
}

#[test]
fn a_failing_receiver_is_retried_then_given_up_and_never_fails_the_run() {
    let mut env = TestEnv::start();
    let hook = Receiver::start(500);
    env.spawn(
        &["scheduler"],
        &[
            ("BETFLOW_NOTIFY_WEBHOOK_URL", &hook.url),
            ("BETFLOW_NOTIFY_ON", "success"),
            ("BETFLOW_NOTIFY_BACKOFF_MS", "100"),
        ],
    );
    env.ok(&["dags", "unpause", "example_etl"]);
    env.ok(&["dags", "trigger", "example_etl"]);
    env.wait_for(
        "SELECT state || ' ' || attempts FROM alert_deliveries",
        "failed 5",
        60,
    );
    assert_eq!(hook.bodies().len(), 5, "five tries");
    let error = env.scalar("SELECT last_error FROM alert_deliveries");
    assert!(error.contains("answered 500"), "{error}");
    assert!(!error.contains("secret-token"), "{error}");
    assert_eq!(
        env.scalar("SELECT state FROM dag_runs WHERE dag_id = 'example_etl'"),
        "success"
    );
}

#[test]
fn email_alerts_without_an_smtp_server_are_refused_at_start() {
    let env = TestEnv::start();
    let out = env
        .cmd(&["dags", "list"])
        .env("BETFLOW_NOTIFY_EMAIL_TO", "ops@example.com")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::common::stderr(&out).contains("BETFLOW_SMTP_URL is not"),
        "{}",
        crate::common::stderr(&out)
    );
    let out = env
        .cmd(&["dags", "list"])
        .env("BETFLOW_NOTIFY_ON", "failure,sometimes")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::common::stderr(&out).contains("\"sometimes\" is not an event"),
        "{}",
        crate::common::stderr(&out)
    );
}
