//! Several `betflow` processes on one database: shared work with no try run
//! twice, recovery after kill -9, graceful shutdown, stream task supervision
//! and the web server's health endpoint.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{children_named, TestEnv};
use nix::sys::signal::Signal;

#[test]
fn two_schedulers_share_200_task_instances_running_each_exactly_once() {
    let mut env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_wide"]);
    let fast = [("BETFLOW_PARALLELISM", "8")];
    env.spawn(&["scheduler"], &fast);
    env.spawn(&["scheduler"], &fast);
    env.wait_for(
        "SELECT count(*) FROM workers WHERE stopped_at IS NULL",
        "2",
        30,
    );
    env.ok(&["dags", "trigger", "example_wide"]);
    env.wait_for(
        "SELECT state FROM dag_runs WHERE dag_id = 'example_wide'",
        "success",
        90,
    );

    assert_eq!(
        env.scalar("SELECT count(*) FROM task_instances WHERE state = 'success'"),
        "200"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM task_instances WHERE try_number <> 1"),
        "0"
    );
    // Each try logs one "Starting try" line when it starts: exactly one per task instance.
    assert_eq!(
        env.scalar("SELECT count(*) FROM task_logs WHERE message LIKE 'Starting try%'"),
        "200"
    );
    assert_eq!(
        env.scalar(
            "SELECT count(DISTINCT task_id) FROM task_logs WHERE message LIKE 'Starting try%'"
        ),
        "200"
    );
    let workers: i64 = env
        .scalar("SELECT count(DISTINCT worker_id) FROM task_instances")
        .parse()
        .unwrap();
    assert_eq!(workers, 2, "both processes ran tasks");
}

#[test]
fn a_killed_process_tasks_are_retried_by_another_after_its_heartbeat_goes_stale() {
    let mut env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_slow"]);
    let quick_zombies = [("BETFLOW_ZOMBIE_THRESHOLD_SECS", "3")];
    let victim = env.spawn(&["scheduler"], &quick_zombies);
    env.ok(&["dags", "trigger", "example_slow"]);
    env.wait_for(
        "SELECT state FROM task_instances WHERE task_id = 'first'",
        "running",
        30,
    );
    env.signal(victim, Signal::SIGKILL);

    let survivor = env.spawn(&["scheduler"], &quick_zombies);
    env.wait_for(
        "SELECT state FROM dag_runs WHERE dag_id = 'example_slow'",
        "success",
        60,
    );
    let tries = env.sql("SELECT try_number || ':' || state FROM task_tries WHERE task_id = 'first' ORDER BY try_number");
    assert_eq!(tries, ["1:failed", "2:success"]);
    let error =
        env.scalar("SELECT error FROM task_tries WHERE task_id = 'first' AND try_number = 1");
    assert!(error.contains("zombie"), "{error}");
    let status = env.signal(survivor, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        env.scalar("SELECT count(*) FROM task_instances WHERE state = 'running'"),
        "0"
    );
}

#[test]
fn shutdown_returns_unfinished_tries_to_the_queue() {
    let mut env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_slow"]);
    let pid = env.spawn(&["scheduler"], &[("BETFLOW_SHUTDOWN_GRACE_SECS", "0")]);
    env.ok(&["dags", "trigger", "example_slow"]);
    env.wait_for(
        "SELECT state FROM task_instances WHERE task_id = 'first'",
        "running",
        30,
    );
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        env.scalar("SELECT count(*) FROM task_instances WHERE state = 'running'"),
        "0"
    );
    assert_eq!(
        env.scalar("SELECT state || ':' || try_number FROM task_instances WHERE task_id = 'first'"),
        "queued:0",
        "the interrupted try does not count"
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM workers WHERE stopped_at IS NULL"),
        "0"
    );

    // A restarted process picks the run up and finishes it.
    env.spawn(&["scheduler"], &[]);
    env.wait_for(
        "SELECT state FROM dag_runs WHERE dag_id = 'example_slow'",
        "success",
        60,
    );
}

/// `up` stops within its shutdown grace however it is held up: a try
/// running past the grace, consumers whose broker is gone, a browser
/// following that try's log.
#[test]
fn up_stops_within_its_grace_with_a_long_try_a_dead_broker_and_a_log_followed() {
    let mut env = TestEnv::start();
    let mut broker = crate::common::Tansu::start(env.home.path());
    let (pid, base) = env.spawn_up_with(&[
        ("KAFKA_BROKERS", &broker.bootstrap),
        ("BETFLOW_SHUTDOWN_GRACE_SECS", "10"),
    ]);
    env.wait_for(
        "SELECT count(*) FROM stream_tasks WHERE task_id LIKE '%_consumer' AND state = 'running'",
        "5",
        60,
    );
    env.ok(&["dags", "unpause", "example_slow"]);
    env.ok(&[
        "dags",
        "trigger",
        "example_slow",
        "--conf",
        r#"{"first_ms": 120000}"#,
    ]);
    env.wait_for(
        "SELECT state FROM task_instances WHERE task_id = 'first'",
        "running",
        30,
    );
    let run_id = env.scalar("SELECT run_id FROM dag_runs WHERE dag_id = 'example_slow'");
    let viewer = crate::common::viewer::Viewer::log_in_to(&mut env, &base);
    let follow = viewer.open(&format!(
        "/dags/example_slow/runs/{}/tasks/first/logs/stream",
        run_id.replace(':', "%3A").replace('+', "%2B")
    ));
    assert_eq!(follow.status(), 200, "the log follow opened");
    broker.kill();
    std::thread::sleep(Duration::from_secs(2));

    let asked = std::time::Instant::now();
    let status = env.signal(pid, Signal::SIGTERM);
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    // The grace bounds the whole stop; a second of slack for the test's own
    // signalling and reaping on a loaded machine.
    assert!(
        took <= Duration::from_secs(11),
        "up took {took:?} to stop with a grace of 10 s\n{}",
        env.proc_log(0)
    );
    drop(follow);
    assert_eq!(
        env.scalar("SELECT state || ':' || try_number FROM task_instances WHERE task_id = 'first'"),
        "queued:0",
        "the interrupted try went back to the queue"
    );
}

#[test]
fn stream_tasks_start_with_the_process_and_report_health() {
    let mut env = TestEnv::start();
    let pid = env.spawn(&["scheduler"], &[]);
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE dag_id = 'live_streams' AND (health->>'ticks')::int >= 2",
        "running",
        30,
    );
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success());
    assert_eq!(
        env.scalar("SELECT DISTINCT state FROM stream_tasks"),
        "stopped"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn up_serves_health_and_stops_cleanly_on_sigterm() {
    let mut env = TestEnv::start();
    let pid = env.spawn(&["up", "--port", "0"], &[]);
    let port: u16 = env
        .up_url(0)
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("up's port");
    env.wait_for(
        "SELECT count(*) FROM workers WHERE stopped_at IS NULL",
        "1",
        30,
    );
    let mut response = String::new();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            response = http_get(port, "/health");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"metadatabase\""), "{response}");
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
}

/// `--home` is where everything of the deployment lives: the tasks `up`
/// runs write the lake under it, not under `BETFLOW_HOME` or `./.betflow`.
#[test]
fn up_with_home_keeps_the_lake_under_that_home() {
    let mut env = TestEnv::start();
    let other = tempfile::tempdir().expect("another home");
    let other_home = other.path().to_str().expect("utf-8 path").to_owned();
    env.spawn(&["--home", &other_home, "up", "--port", "0"], &[]);
    env.wait_for(
        "SELECT count(*) FROM workers WHERE stopped_at IS NULL",
        "1",
        30,
    );
    env.ok(&["dags", "unpause", "historical_games_daily"]);
    env.ok(&[
        "dags",
        "trigger",
        "historical_games_daily",
        "--logical-date",
        "2025-09-07",
        "--conf",
        r#"{"sports":["nfl"]}"#,
    ]);
    env.wait_for(
        "SELECT count(*) FROM dag_runs WHERE dag_id = 'historical_games_daily' AND run_type = 'manual' AND state = 'success'",
        "1",
        120,
    );
    let day = "raw/historical/nfl/games/date=2025-09-07";
    let under_home = std::fs::read_dir(other.path().join("lake").join(day))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(under_home, 1, "the day's raw object under --home");
    assert!(
        !env.path("lake").join(day).exists(),
        "nothing under BETFLOW_HOME's lake"
    );
}

#[test]
fn catchup_creates_a_run_for_every_missed_interval() {
    let mut env = TestEnv::start();
    env.ok(&["dags", "unpause", "example_hourly_catchup"]);
    env.spawn(&["scheduler"], &[]);
    env.wait_for(
        "SELECT count(*) >= 3 FROM dag_runs WHERE dag_id = 'example_hourly_catchup' AND state = 'success'",
        "t",
        60,
    );
    // One run per hour, back to back, all scheduled.
    let gaps = env.sql(
        "SELECT DISTINCT data_interval_end - data_interval_start, run_type FROM dag_runs
         WHERE dag_id = 'example_hourly_catchup'",
    );
    assert_eq!(gaps, ["01:00:00|scheduled"]);
    let contiguous = env.scalar(
        "SELECT bool_and(data_interval_start = prev_end) FROM (
            SELECT data_interval_start, lag(data_interval_end) OVER (ORDER BY logical_date) AS prev_end
            FROM dag_runs WHERE dag_id = 'example_hourly_catchup') t WHERE prev_end IS NOT NULL",
    );
    assert_eq!(contiguous, "t");
}

/// `up` with an embedded broker, once its stream consumers run (and so
/// the watch on its broker has started); its pid.
fn spawn_up_with_its_broker(env: &mut TestEnv) -> u32 {
    let pid = env.spawn(
        &["up", "--port", "0"],
        &[("BETFLOW_EMBEDDED_KAFKA", "true")],
    );
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE task_id = 'odds_consumer'",
        "running",
        60,
    );
    pid
}

#[test]
fn up_runs_an_embedded_broker_for_its_stream_consumers_and_stops_it() {
    let mut env = TestEnv::start();
    let pid = spawn_up_with_its_broker(&mut env);
    let brokers = children_named(pid, "tansu");
    assert_eq!(brokers.len(), 1, "one embedded broker under `up`");
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{}", brokers[0])).exists(),
        "the broker stopped with `up`"
    );
    assert_eq!(
        env.scalar("SELECT state FROM stream_tasks WHERE task_id = 'odds_consumer'"),
        "stopped"
    );
}

#[test]
fn up_starts_its_embedded_broker_again_when_it_is_killed_and_the_consumers_carry_on() {
    broker_fails_and_comes_back("exited", |_, broker| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(broker as i32), Signal::SIGKILL)
            .expect("kill tansu");
    });
}

/// A broker that panicked may stay up and fail every request after (seen
/// with tansu 0.6's SQLite storage): the watch reads the broker's log, and
/// a panic there has the broker started again like one that exited. The
/// panic here is a line the test appends to the running broker's log, as
/// a panicking tansu writes it.
#[test]
fn up_starts_its_embedded_broker_again_when_its_log_reports_a_panic() {
    broker_fails_and_comes_back("panicked", |env, _| {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(env.home.path().join("kafka/tansu.log"))
            .expect("the broker's log");
        writeln!(
            log,
            "thread 'tokio-runtime-worker' panicked at tansu-storage/src/lite.rs:503:9:\nsequence out of order"
        )
        .expect("append to the broker's log");
    });
}

/// A broker that dies again right after each restart is not restarted in a
/// tight loop: from the second quick death on, the next restart waits out
/// a hold that doubles. The watch still sees each death at its next look and
/// says when the restart will come.
#[test]
fn up_spaces_out_the_restarts_of_a_broker_that_keeps_dying() {
    let mut env = TestEnv::start();
    let pid = spawn_up_with_its_broker(&mut env);
    let restarted = |env: &TestEnv| -> Vec<String> {
        env.proc_log(0)
            .lines()
            .filter(|l| l.contains("the embedded Kafka broker exited"))
            .filter(|l| l.contains("started it again on"))
            .map(str::to_owned)
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for kills in 1..=4 {
        // The broker running now: a restarted one once it listens.
        let broker = children_named(pid, "tansu");
        assert_eq!(broker.len(), 1, "{broker:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(broker[0] as i32),
            Signal::SIGKILL,
        )
        .expect("kill tansu");
        while restarted(&env).len() < kills {
            assert!(
                std::time::Instant::now() < deadline,
                "no restart after kill {kills}:\n{}",
                env.proc_log(0)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let started = restarted(&env);
    let log = env.proc_log(0);
    assert!(!started[0].contains("soon after"), "a first death: {log}");
    // The hold a restart sets for the next, in seconds.
    let hold = |line: &str| -> u64 {
        line.split_once("not started again for ")
            .and_then(|(_, rest)| rest.split_once("s if it dies again"))
            .and_then(|(secs, _)| secs.parse().ok())
            .unwrap_or_else(|| panic!("no hold in {line:?}: {log}"))
    };
    // From the second quick death on, a crash loop: each hold doubles.
    let holds: Vec<u64> = started[1..].iter().map(|l| hold(l)).collect();
    assert_eq!(holds, [holds[0], 2 * holds[0], 4 * holds[0]], "{log}");
    // A death within a hold is seen at the next look and its restart held.
    assert!(
        log.contains("it died soon after its last start, starting it again in"),
        "{log}"
    );
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
}

/// `up` with its embedded broker; `fail(env, broker pid)` makes the broker
/// fail; then a new broker process is up, the log says it `says`, the
/// health check calls it healthy, and the consumers serve what a replay
/// publishes through it.
fn broker_fails_and_comes_back(says: &str, fail: impl FnOnce(&TestEnv, u32)) {
    let mut env = TestEnv::start();
    let pid = spawn_up_with_its_broker(&mut env);
    let first = children_named(pid, "tansu");
    assert_eq!(first.len(), 1, "one embedded broker under `up`");
    fail(&env, first[0]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let line = format!("the embedded Kafka broker {says}");
    loop {
        let now = children_named(pid, "tansu");
        let said = env.proc_log(0).contains(&line);
        if now.len() == 1 && now[0] != first[0] && said {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new broker: {now:?}\n{}",
            env.proc_log(0)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let health: serde_json::Value = reqwest::blocking::get(format!("{}/health", env.up_url(0)))
        .and_then(|r| r.json())
        .expect("/health");
    assert_eq!(health["kafka"]["status"], "healthy", "{health}");
    // The restarted broker, on the same address, feeds the same consumers.
    env.ok(&[
        "stream",
        "replay",
        "--from",
        "2024-09-08",
        "--to",
        "2024-09-08",
        "--sport",
        "nfl",
    ]);
    env.wait_for(
        "SELECT count(*) > 0 FROM serving.odds_latest WHERE sport = 'nfl'",
        "t",
        90,
    );
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");
}

#[test]
fn up_starts_its_embedded_postgres_again_when_the_postmaster_is_killed() {
    let mut env = TestEnv::start();
    // An empty DATABASE_URL: `up` starts (and owns) the embedded cluster.
    let (_pid, base) = env.spawn_up_with(&[("DATABASE_URL", "")]);
    let pid_file = env.home.path().join("postgres/data/postmaster.pid");
    let postmaster = || -> Option<i32> {
        std::fs::read_to_string(&pid_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let healthy = || {
        reqwest::blocking::get(format!("{base}/health"))
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.text().ok())
            .is_some_and(|body| body.contains("\"healthy\""))
    };
    assert!(healthy(), "healthy before");
    let first = postmaster().expect("the embedded cluster's postmaster");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the postmaster");

    // Back, serving, and the log says why (the line may follow the new
    // postmaster by a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(postmaster().is_some_and(|p| p != first)
        && healthy()
        && env
            .proc_log(0)
            .contains("the embedded PostgreSQL had stopped"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the embedded PostgreSQL did not come back, or the log does not say why:\n{}",
            env.proc_log(0)
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// An embedded Postgres that dies again right after each restart is
/// started again less and less often: from the second quick death on, the
/// next restart waits out a hold; a death within it is seen at the next
/// look and the log says when the restart comes.
#[test]
fn up_spaces_out_the_restarts_of_a_postgres_that_keeps_dying() {
    let mut env = TestEnv::start();
    let (_pid, _base) = env.spawn_up_with(&[("DATABASE_URL", "")]);
    let pid_file = env.home.path().join("postgres/data/postmaster.pid");
    let postmaster = || -> Option<i32> {
        std::fs::read_to_string(&pid_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let restarted = |env: &TestEnv| -> usize {
        env.proc_log(0)
            .lines()
            .filter(|l| l.contains("the embedded PostgreSQL had stopped"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Four: the holds grow (4 s, then 8 s), so a death within one is seen.
    for kills in 1..=4 {
        let pid = postmaster().expect("the embedded cluster's postmaster");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)
            .expect("kill the postmaster");
        // Restarted: the log says so and a new postmaster runs.
        while !(restarted(&env) >= kills && postmaster().is_some_and(|p| p != pid)) {
            assert!(
                std::time::Instant::now() < deadline,
                "no restart after kill {kills}:\n{}",
                env.proc_log(0)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let log = env.proc_log(0);
    assert!(
        log.contains("so it is not started again for"),
        "a quick second death is a crash loop: {log}"
    );
    assert!(
        log.contains(
            "the embedded PostgreSQL stopped again soon after its last start; starting it again in"
        ),
        "a death within a hold is seen, its restart held: {log}"
    );
}

#[test]
fn health_says_when_the_kafka_broker_does_not_answer() {
    let mut env = TestEnv::start();
    // A port nothing listens on.
    let (pid, base) = env.spawn_up_with(&[("KAFKA_BROKERS", "127.0.0.1:9")]);
    let health: serde_json::Value = reqwest::blocking::get(format!("{base}/health"))
        .and_then(|r| r.json())
        .expect("/health");
    assert_eq!(health["kafka"]["status"], "unhealthy", "{health}");
    assert!(
        health["kafka"].get("bootstrap").is_none(),
        "no address for anyone who asks: {health}"
    );
    assert_eq!(health["metadatabase"]["status"], "healthy", "{health}");
    // Logged in, the streams page names the broker and says it is down.
    let viewer = crate::common::viewer::Viewer::log_in_to(&mut env, &base);
    let page = viewer.get("/streams");
    assert!(
        page.contains(r#"<p id="broker" class="error">Kafka broker 127.0.0.1:9 does not answer"#),
        "{page}"
    );

    // Its consumers wait on a broker that is gone; `up` still stops within
    // its 30 s grace (stream tasks get 10 s, then are abandoned).
    env.wait_for(
        "SELECT count(*) > 0 FROM stream_tasks WHERE state IN ('running', 'restarting')",
        "t",
        30,
    );
    let asked = std::time::Instant::now();
    let status = env.signal(pid, Signal::SIGTERM);
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < std::time::Duration::from_secs(30),
        "stopped after {took:?}:\n{}",
        env.proc_log(0)
    );
}

#[test]
fn a_try_that_ends_while_postgres_is_down_is_recorded_once_it_is_back() {
    let mut env = TestEnv::start_with(true);
    // `up` on an external database (DATABASE_URL), as in a failover.
    let (pid, base) = env.spawn_up();
    env.create_user("olga", "operator", "operator-pass");
    let token = env.token("olga");
    let session = log_in(&base, "olga", "operator-pass");
    env.ok(&["dags", "unpause", "example_deadline"]);
    env.ok(&[
        "dags",
        "trigger",
        "example_deadline",
        "--logical-date",
        "2024-01-01",
    ]);
    env.wait_for(
        "SELECT state FROM task_instances WHERE dag_id = 'example_deadline' AND task_id = 'slow'",
        "running",
        30,
    );
    // The task sleeps 4 s: it ends while the database is down.
    env.kill_postgres();
    let started = std::time::Instant::now();
    // Meanwhile the API says the database is unreachable (503, retry),
    // not that BetFlow broke (500), and health says which part is down.
    let client = reqwest::blocking::Client::new();
    let api = client
        .get(format!("{base}/api/v2/dags"))
        .bearer_auth(&token)
        .send()
        .expect("the API answers while Postgres is down");
    assert_eq!(api.status().as_u16(), 503);
    let body: serde_json::Value = api.json().unwrap();
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("metadata database cannot be reached")),
        "{body}"
    );
    let health = client.get(format!("{base}/health")).send().unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let health: serde_json::Value = health.json().unwrap();
    assert_eq!(health["metadatabase"]["status"], "unhealthy", "{health}");
    // A browser gets a page saying so, not JSON.
    let page = client
        .get(format!("{base}/dags"))
        .header(reqwest::header::COOKIE, &session)
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 503);
    assert_eq!(page.headers()["retry-after"], "5");
    let html = page.text().unwrap();
    assert!(
        html.contains("id=\"unavailable\"") && html.contains("metadata database cannot be reached"),
        "{html}"
    );
    if let Some(rest) = std::time::Duration::from_secs(6).checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    env.revive_postgres();
    env.wait_for(
        "SELECT state FROM dag_runs WHERE dag_id = 'example_deadline'",
        "success",
        120,
    );
    let tries = env.sql(
        "SELECT try_number || ':' || state FROM task_tries
         WHERE dag_id = 'example_deadline' AND task_id = 'slow' ORDER BY try_number",
    );
    assert_eq!(
        tries,
        ["1:success"],
        "one try, recorded once:\n{}",
        env.proc_log(0)
    );
    // The same process is still serving: it did not exit and come back.
    let again = client
        .get(format!("{base}/api/v2/dags/example_deadline"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "up exited"
    );
}

/// A browser session's `Cookie` header for `username`, from the login form.
fn log_in(base: &str, username: &str, password: &str) -> String {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (csrf, form_cookie) = crate::common::viewer::login_form(&client, base);
    let resp = client
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::COOKIE, form_cookie)
        .body(format!(
            "username={username}&password={password}&next=%2F&csrf={csrf}"
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "log in as {username}");
    crate::common::viewer::set_cookie(&resp, "betflow_session").expect("a session")
}

/// The CPUs a thread or process may run on, as `/proc` lists them.
fn cpus_allowed(status: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(status)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_default()
}

/// `BETFLOW_ENGINE_CPUS` keeps CPUs for the engine: with the embedded
/// cluster, the engine's threads and its Postgres backends run there, and
/// the web's threads, the postmaster and the web's backends on the rest.
#[test]
fn up_keeps_the_engine_and_its_backends_on_the_cpus_it_is_given() {
    let allowed = cpus_allowed("/proc/self/status");
    let first: usize = allowed
        .split([',', '-'])
        .next()
        .and_then(|c| c.parse().ok())
        .expect("a CPU list");
    let mut env = TestEnv::start();
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        // One CPU: none would be left for the rest, and `up` says so.
        let out = env
            .cmd(&["up", "--port", "0"])
            .env("BETFLOW_ENGINE_CPUS", first.to_string())
            .output()
            .expect("run up");
        assert!(!out.status.success());
        assert!(crate::common::stderr(&out).contains("need one left"));
        return;
    }
    let engine = first.to_string();
    let (pid, base) = env.spawn_up_with(&[("DATABASE_URL", ""), ("BETFLOW_ENGINE_CPUS", &engine)]);
    let out = std::fs::read_to_string(env.home.path().join("proc-0.out")).unwrap_or_default();
    assert!(
        out.contains(&format!(
            "engine on CPUs {engine} with its Postgres backends"
        )),
        "{out}"
    );
    assert!(reqwest::blocking::get(format!("{base}/health")).is_ok());
    assert_up_placed(&env, pid, &engine, &allowed, &out);
}

/// [`assert_engine_placed`] for an `up` that printed `out`: its web's
/// threads off the engine's CPUs, its metadata database's URL read there.
fn assert_up_placed(env: &TestEnv, pid: u32, engine: &str, allowed: &str, out: &str) {
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("metadata database: "))
        .expect("the metadata database's URL");
    assert_engine_placed(env, pid, engine, allowed, &["betflow", "betflow-web"], url);
}

/// By default (`BETFLOW_ENGINE_CPUS=auto`) `up` keeps the last CPU it may
/// use for its engine when it may use two or more; `none` shares every CPU.
#[test]
fn up_keeps_the_last_cpu_for_its_engine_unless_told_none() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return; // one CPU: nothing to keep
    }
    let allowed = cpus_allowed("/proc/self/status");
    let last = allowed
        .rsplit([',', '-'])
        .next()
        .expect("a CPU list")
        .to_owned();
    let mut env = TestEnv::start();
    let (pid, _) = env.spawn_up_with(&[("DATABASE_URL", "")]);
    let out = std::fs::read_to_string(env.home.path().join("proc-0.out")).unwrap_or_default();
    assert!(
        out.contains(&format!("engine on CPUs {last} with its Postgres backends"))
            && out.contains("BETFLOW_ENGINE_CPUS=none shares every CPU"),
        "{out}"
    );
    assert_up_placed(&env, pid, &last, &allowed, &out);
    let status = env.signal(pid, Signal::SIGTERM);
    assert!(status.success(), "{status:?}");

    // `none`: no CPU kept, the engine's threads on every CPU.
    let (pid, _) = env.spawn_up_with(&[("DATABASE_URL", ""), ("BETFLOW_ENGINE_CPUS", "none")]);
    let out = std::fs::read_to_string(env.home.path().join("proc-1.out")).unwrap_or_default();
    assert!(!out.contains("engine on CPUs"), "{out}");
    let engine_threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("up's threads")
        .filter_map(|t| {
            let t = t.ok()?.path();
            let name = std::fs::read_to_string(t.join("comm")).ok()?;
            name.starts_with("betflow-engine")
                .then(|| cpus_allowed(t.join("status")))
        })
        .collect();
    assert!(!engine_threads.is_empty());
    assert!(
        engine_threads.iter().all(|c| *c == allowed),
        "{engine_threads:?}"
    );
}

/// `betflow scheduler`, which serves no pages, keeps CPUs for its engine
/// as `up` does: from the host's other load.
#[test]
fn scheduler_keeps_the_engine_and_its_backends_on_the_cpus_it_is_given() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return; // `up`'s test checks the refusal on one CPU
    }
    let allowed = cpus_allowed("/proc/self/status");
    let engine = allowed
        .split([',', '-'])
        .next()
        .expect("a CPU list")
        .to_owned();
    let mut env = TestEnv::start();
    let pid = env.spawn(
        &["scheduler"],
        &[("DATABASE_URL", ""), ("BETFLOW_ENGINE_CPUS", &engine)],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let said = format!("engine on CPUs {engine} with its Postgres backends");
    let out = loop {
        let out = std::fs::read_to_string(env.home.path().join("proc-0.out")).unwrap_or_default();
        if out.contains(&said) {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{out}\n{}",
            env.proc_log(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let url = env
        .proc_log(0)
        .lines()
        .find_map(|l| {
            l.split_once("scheduler running on ")
                .map(|(_, u)| u.to_owned())
        })
        .unwrap_or_else(|| panic!("the metadata database's URL: {out}"));
    let rest = ["betflow", "tokio-r"];
    assert_engine_placed(&env, pid, &engine, &allowed, &rest, &url);
}

/// The threads of process `pid` named `betflow-engine` run on `engine`,
/// those named as in `rest` on neither `engine` nor every CPU (`allowed`);
/// the engine's backends in the embedded cluster at `masked_url` run on
/// `engine`, the postmaster and the other sessions' backends not.
fn assert_engine_placed(
    env: &TestEnv,
    pid: u32,
    engine: &str,
    allowed: &str,
    rest: &[&str],
    masked_url: &str,
) {
    // The process's threads: the engine's workers and the thread that
    // runs its runtime on its CPU, its blocking pool on every CPU, the main
    // thread and the others elsewhere.
    let mut seen = std::collections::HashMap::<String, usize>::new();
    // The engine's runtime starts its threads as the engine starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.get("betflow-engine") < Some(&2) {
        assert!(
            std::time::Instant::now() < deadline,
            "engine threads: {seen:?}"
        );
        seen.clear();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the threads") {
            let task = task.expect("a thread").path();
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            let name = name.trim().to_owned();
            let cpus = cpus_allowed(task.join("status"));
            if cpus.is_empty() {
                continue; // ended since it was listed (an idle blocking thread)
            }
            if name.starts_with("betflow-engine") {
                assert_eq!(cpus, engine, "engine thread {}", task.display());
            } else if name.starts_with("betflow-block") {
                // The engine runtime's blocking pool: its tasks' heavy work.
                assert_eq!(cpus, allowed, "blocking thread {}", task.display());
            } else if rest.iter().any(|r| name.starts_with(r)) {
                assert!(cpus != engine && cpus != allowed, "{name}: {cpus}");
            } else {
                continue;
            }
            *seen.entry(name).or_default() += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        rest.iter().all(|r| seen.keys().any(|n| n.starts_with(r))),
        "{seen:?}"
    );

    // The cluster: the engine's backends on its CPU, the others not.
    assert!(
        masked_url.contains("***"),
        "the URL is printed masked: {masked_url}"
    );
    let password = std::fs::read_to_string(env.home.path().join("postgres/password"))
        .expect("the embedded cluster's password");
    let url = masked_url.replace("***", password.trim());
    let backends = |application: &str| -> Vec<i32> {
        let out = std::process::Command::new("psql")
            .args(["-X", "-At", &url, "-c"])
            .arg(format!(
                "SELECT pid FROM pg_stat_activity WHERE application_name {application}"
            ))
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    // A session is named as it opens and placed once open: the engine
    // opens its connections as it starts, so they are waited for.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let engines = backends("= 'betflow engine'");
        let misplaced: Vec<(i32, String)> = engines
            .iter()
            .map(|b| (*b, cpus_allowed(format!("/proc/{b}/status"))))
            .filter(|(_, cpus)| !cpus.is_empty() && *cpus != engine)
            .collect();
        if !engines.is_empty() && misplaced.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the engine's backends {engines:?}, misplaced: {misplaced:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The other sessions (the web's and the metadata pool's), psql's own
    // left out: it has ended by the time its answer is read.
    let others: Vec<String> = backends(
        "<> 'betflow engine' AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .into_iter()
    .map(|b| cpus_allowed(format!("/proc/{b}/status")))
    .filter(|cpus| !cpus.is_empty())
    .collect();
    assert!(!others.is_empty(), "the pools' sessions");
    assert!(others.iter().all(|cpus| *cpus != engine), "{others:?}");
    let postmaster: i32 =
        std::fs::read_to_string(env.home.path().join("postgres/data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .expect("the postmaster's pid");
    let cpus = cpus_allowed(format!("/proc/{postmaster}/status"));
    assert!(cpus != engine && !cpus.is_empty(), "postmaster: {cpus}");
}

/// A CPU list that cannot be used is refused before anything starts.
#[test]
fn up_and_scheduler_refuse_engine_cpus_they_cannot_use() {
    let env = TestEnv::start();
    let all = cpus_allowed("/proc/self/status");
    for command in [&["up", "--port", "0"][..], &["scheduler"]] {
        for (cpus, says) in [
            ("one", "not a CPU list"),
            ("1023", "may run on CPUs"),
            ("0-1023", "may run on CPUs"),
            (all.as_str(), "need one left"),
        ] {
            let out = env
                .cmd(command)
                .env("BETFLOW_ENGINE_CPUS", cpus)
                .output()
                .expect("run betflow");
            let err = crate::common::stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command:?} {cpus}: a usage error"
            );
            assert!(
                err.contains("BETFLOW_ENGINE_CPUS") && err.contains(says),
                "{command:?} {cpus}: {err}"
            );
        }
    }
}
