//! The web UI in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started by the test on a loopback port) against `betflow up`
//! and a throwaway Postgres. Checks what only a browser shows: forms submitted
//! by clicks, redirects followed, and the grid turning green through htmx
//! polling without the page being reloaded.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`scripts/test`
//! installs them); the tests fail, naming what to install, when they are
//! missing. `BETFLOW_CHROMIUM` / `BETFLOW_CHROMEDRIVER` point at other binaries.
//!
//! Screenshots go to `$BETFLOW_ARTIFACTS/<test>/` if set, else to
//! `<cargo target dir>/browser-artifacts/<test>/`; their paths are printed.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestEnv;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const RUN_ID: &str = "manual__2024-03-01T00:00:00+00:00";
const RUN_PATH: &str = "/dags/example_etl/runs/manual__2024-03-01T00%3A00%3A00%2B00%3A00";
const ETL_TASKS: [&str; 3] = ["extract", "process.transform", "load"];

// ---------------------------------------------------------------------------
// Chromium and chromedriver

/// The browser binaries, or a failure that says what to install.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn find_program(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    fn find() -> Self {
        let chromium = find_program("BETFLOW_CHROMIUM", "chromium");
        let chromedriver = find_program("BETFLOW_CHROMEDRIVER", "chromedriver");
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Self {
                chromium,
                chromedriver,
            },
            (chromium, chromedriver) => {
                let mut missing = Vec::new();
                if chromium.is_none() {
                    missing.push("chromium (set BETFLOW_CHROMIUM for another path)");
                }
                if chromedriver.is_none() {
                    missing.push("chromedriver (set BETFLOW_CHROMEDRIVER for another path)");
                }
                panic!(
                    "the browser tests need Chromium and ChromeDriver; missing: {}.\n\
                     Install them (Debian/Ubuntu): apt-get install -y chromium chromium-driver\n\
                     (scripts/test installs them when run as root)",
                    missing.join(", ")
                );
            }
        }
    }
}

/// A chromedriver process on a free loopback port, in a process group of its
/// own so that dropping it also ends the Chromium it started.
struct ChromeDriver {
    child: Child,
    url: String,
    chromium: PathBuf,
    log: PathBuf,
    // Dropped after the processes are gone.
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    fn start(tools: &Tools) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("chromedriver.log");
        let out = fs::File::create(&log).expect("chromedriver log");
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", tools.chromedriver.display()));
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: tools.chromium.clone(),
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", driver.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}:\n{}",
                driver.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn log_text(&self) -> String {
        tail(&fs::read_to_string(&self.log).unwrap_or_default(), 30)
    }

    /// A new headless Chromium session with a fresh profile.
    async fn session(&self) -> Client {
        let profile = self.dir.path().join(format!(
            "profile-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not start a Chromium session through chromedriver: {e}\n\
                     chromedriver log:\n{}",
                    self.log_text()
                )
            })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is left of the group (chromedriver or Chromium's processes).
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… ({} more bytes)", &text[..end], text.len() - end)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------
// Screenshots

/// `$BETFLOW_ARTIFACTS/<test>` or `<target dir>/browser-artifacts/<test>`,
/// emptied of an earlier run's screenshots.
fn artifacts_dir(test: &str) -> PathBuf {
    let root = std::env::var_os("BETFLOW_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // CARGO_TARGET_TMPDIR is `<target dir>/tmp`.
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("target dir")
                .join("browser-artifacts")
        });
    let dir = root.join(test);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "png") {
            let _ = fs::remove_file(entry.path());
        }
    }
    dir
}

// ---------------------------------------------------------------------------
// The browser, with waits that poll and failures that say what the page showed

struct Browser {
    client: Client,
    base: String,
    artifacts: PathBuf,
    shots: Vec<PathBuf>,
    /// `betflow up`'s stderr and chromedriver's log, for failure reports.
    server_log: PathBuf,
    driver_log: PathBuf,
}

/// Fail with the page's state unless `cond` holds.
macro_rules! check {
    ($b:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            let msg = format!($($msg)+);
            panic!("{}", $b.diagnose(&msg).await);
        }
    };
}

impl Browser {
    async fn open(driver: &ChromeDriver, base: &str, test: &str, server_log: PathBuf) -> Self {
        Self {
            client: driver.session().await,
            base: base.to_owned(),
            artifacts: artifacts_dir(test),
            shots: Vec::new(),
            server_log,
            driver_log: driver.log.clone(),
        }
    }

    /// What went wrong, where the browser is, what the page shows, and the
    /// server's log; saves a `failure.png` screenshot too.
    async fn diagnose(&self, msg: &str) -> String {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("<unknown: {e}>"),
        };
        let page = match self
            .client
            .execute(
                "var m = document.querySelector('main'); \
                 return (m || document.documentElement).outerHTML;",
                vec![],
            )
            .await
        {
            Ok(Value::String(html)) => html,
            _ => self.client.source().await.unwrap_or_default(),
        };
        let shot = match self.client.screenshot().await {
            Ok(png) => {
                let path = self.artifacts.join("failure.png");
                match fs::write(&path, png) {
                    Ok(()) => path.display().to_string(),
                    Err(e) => format!("<not saved: {e}>"),
                }
            }
            Err(e) => format!("<not taken: {e}>"),
        };
        format!(
            "{msg}\n\
             current URL: {url}\n\
             failure screenshot: {shot}\n\
             page (<main>):\n{}\n\
             betflow up log (tail):\n{}\n\
             chromedriver log (tail):\n{}",
            excerpt(&page, 6000),
            tail(
                &fs::read_to_string(&self.server_log).unwrap_or_default(),
                40
            ),
            tail(
                &fs::read_to_string(&self.driver_log).unwrap_or_default(),
                20
            ),
        )
    }

    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        if let Err(e) = self.client.goto(&url).await {
            panic!("{}", self.diagnose(&format!("open {url}: {e}")).await);
        }
    }

    /// Run a script; errors (e.g. while a page is loading) are `Err`.
    async fn try_js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client
            .execute(script, args)
            .await
            .map_err(|e| e.to_string())
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        match self.try_js(script, args).await {
            Ok(v) => v,
            Err(e) => panic!("{}", self.diagnose(&format!("script failed: {e}")).await),
        }
    }

    /// Poll `script` until `done` accepts its value (script errors count as
    /// "not yet"); fail after `secs` with the last value seen.
    async fn wait_js(
        &self,
        what: &str,
        secs: u64,
        script: &str,
        args: Vec<Value>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let last = self.try_js(script, args.clone()).await;
            if let Ok(v) = &last {
                if done(v) {
                    return v.clone();
                }
            }
            if Instant::now() > deadline {
                let last = match last {
                    Ok(v) => v.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                let msg = format!("timed out after {secs} s waiting for {what}; last seen: {last}");
                panic!("{}", self.diagnose(&msg).await);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until the page is `path` (path and query) and has an element matching `css`.
    async fn wait_page(&self, path: &str, css: &str) {
        self.wait_js(
            &format!("page {path} with `{css}`"),
            20,
            "return document.readyState === 'complete' \
                && location.pathname + location.search === arguments[0] \
                && document.querySelector(arguments[1]) !== null \
                ? true : location.pathname + location.search + ' (' + document.readyState + ')';",
            vec![json!(path), json!(css)],
            |v| v == &Value::Bool(true),
        )
        .await;
    }

    /// Click what `css` matches and wait until a new page has loaded (the old
    /// page's marker is gone), even if it has the same URL.
    async fn click_and_load(&self, css: &str) {
        self.js("window.__leaving = true;", vec![]).await;
        self.click(css).await;
        self.wait_js(
            &format!("a new page after clicking `{css}`"),
            20,
            "return window.__leaving !== true && document.readyState === 'complete';",
            vec![],
            |v| v == &Value::Bool(true),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let res = match self.client.find(Locator::Css(css)).await {
            Ok(el) => el.click().await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            panic!("{}", self.diagnose(&format!("click `{css}`: {e}")).await);
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let res = match self.client.find(Locator::Css(css)).await {
            Ok(el) => match el.clear().await {
                Ok(()) => el.send_keys(text).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            panic!(
                "{}",
                self.diagnose(&format!("type into `{css}`: {e}")).await
            );
        }
    }

    /// Trimmed text of the first element matching `css`, or `None`.
    async fn text(&self, css: &str) -> Option<String> {
        match self
            .js(
                "var e = document.querySelector(arguments[0]); \
                 return e ? e.textContent.trim() : null;",
                vec![json!(css)],
            )
            .await
        {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    async fn exists(&self, css: &str) -> bool {
        self.js(
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await
            == Value::Bool(true)
    }

    /// Save a screenshot as `NN-name.png` in the artifacts directory.
    async fn screenshot(&mut self, name: &str) {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("{}", self.diagnose(&format!("screenshot: {e}")).await),
        };
        let path = self
            .artifacts
            .join(format!("{:02}-{name}.png", self.shots.len() + 1));
        fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        self.shots.push(path);
    }

    /// End the session; list the screenshots on stderr (also when output is captured).
    async fn close(self) {
        let _ = self.client.close().await;
        let names: Vec<String> = self
            .shots
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let _ = writeln!(
            std::io::stderr(),
            "browser screenshots in {}: {}",
            self.artifacts.display(),
            names.join(", ")
        );
    }

    /// Log in through the login page the app redirects `path` to; ends on `path`.
    async fn log_in_via_redirect(&self, path: &str, username: &str, password: &str) {
        self.goto(path).await;
        self.wait_page(&format!("/login?next={path}"), "#username")
            .await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click_and_load("#login-submit").await;
        self.wait_page(path, "#nav-user").await;
        let user = self.text("#nav-user").await.unwrap_or_default();
        check!(
            self,
            user.starts_with(username),
            "logged in as {username}, but the header says {user:?}"
        );
    }
}

/// The grid's state as the page shows it: whether it polls, the run's header
/// cell, the run's task cells (`task:classes`), the reload marker and the
/// number of htmx swaps since it was set.
const GRID_STATUS: &str = r#"
var run = arguments[0];
var grid = document.getElementById('grid');
if (!grid) { return {grid: false, url: location.pathname + location.search}; }
var head = grid.querySelector('a.sq.run[href="' + run + '"]');
var prefix = run + '/tasks/';
var cells = Array.prototype.map.call(
  grid.querySelectorAll('a.sq[href^="' + prefix + '"]'),
  function (a) { return a.getAttribute('href').slice(prefix.length) + ':' + a.className; });
return {
  grid: true,
  polling: grid.getAttribute('hx-trigger'),
  run: head ? head.className : null,
  cells: cells,
  marker: window.__marker === undefined ? null : window.__marker,
  swaps: window.__swaps || 0,
  url: location.pathname + location.search
};
"#;

fn all_cells_green(status: &Value) -> bool {
    let run_green = status["run"]
        .as_str()
        .is_some_and(|c| c.split(' ').any(|c| c == "s-success"));
    let cells: Vec<&str> = status["cells"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    run_green
        && ETL_TASKS.iter().all(|task| {
            cells.iter().any(|c| {
                c.strip_prefix(task).and_then(|c| c.strip_prefix(':')) == Some("sq s-success")
            })
        })
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn an_operator_triggers_a_run_watches_the_grid_reads_a_log_and_clears_a_task() {
    let tools = Tools::find();
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("op", "operator", "password123");
    let driver = ChromeDriver::start(&tools);
    let test = "operator_trigger_grid_log_clear";

    runtime().block_on(async {
        let mut b = Browser::open(&driver, &base, test, env.path("proc-0.log")).await;

        // Log in through the redirect; the DAGs page lists example_etl.
        b.log_in_via_redirect("/dags", "op", "password123").await;
        let etl_link = r#"tr.dag-row[data-dag-id="example_etl"] a.dag-link"#;
        check!(
            b,
            b.exists(etl_link).await,
            "example_etl is on the DAGs page"
        );
        b.screenshot("dags-after-login").await;

        // Open the DAG: its page has a grid, no runs yet.
        b.click_and_load(etl_link).await;
        b.wait_page("/dags/example_etl", "#grid").await;
        let title = b.text("#dag-title").await;
        check!(
            b,
            title.as_deref() == Some("example_etl"),
            "DAG title {title:?}"
        );
        let grid = b.text("#grid").await.unwrap_or_default();
        check!(b, grid.contains("No runs yet"), "empty grid, got {grid:?}");

        // Trigger through the form while the DAG is still paused, so the run
        // waits queued and the page shows it before any task has run.
        b.click("#trigger > summary").await;
        b.fill("#logical_date", "2024-03-01").await;
        b.click_and_load("#trigger-submit").await;
        let run_query = "?run_id=manual__2024-03-01T00%3A00%3A00%2B00%3A00";
        b.wait_page(&format!("/dags/example_etl{run_query}"), "#grid")
            .await;
        check!(
            b,
            !b.exists("#trigger-error").await,
            "the trigger form reported an error"
        );
        let state = env.scalar(&format!(
            "SELECT state FROM dag_runs WHERE run_id = '{RUN_ID}'"
        ));
        check!(b, state == "queued", "the new run is queued, got {state:?}");
        let status = b.js(GRID_STATUS, vec![json!(RUN_PATH)]).await;
        check!(
            b,
            status["polling"] == "every 2s"
                && status["run"]
                    .as_str()
                    .is_some_and(|c| c.contains("s-queued"))
                && !all_cells_green(&status),
            "a queued run in a grid that refreshes itself; got {status}"
        );
        b.screenshot("run-queued").await;

        // Mark this page, count htmx swaps, then let the run go and watch the
        // grid turn green in place.
        b.js(
            "window.__marker = 1; window.__swaps = 0; \
             document.addEventListener('htmx:afterSwap', function () { window.__swaps += 1; });",
            vec![],
        )
        .await;
        env.ok(&["dags", "unpause", "example_etl"]);
        let status = b
            .wait_js(
                "every grid cell of the new run to be s-success",
                30,
                GRID_STATUS,
                vec![json!(RUN_PATH)],
                all_cells_green,
            )
            .await;
        check!(
            b,
            status["marker"] == 1,
            "the page was reloaded while waiting (marker gone): {status}"
        );
        check!(
            b,
            status["swaps"].as_u64().unwrap_or(0) >= 1,
            "htmx swapped the grid: {status}"
        );
        check!(
            b,
            status["url"] == format!("/dags/example_etl{run_query}"),
            "still on the same page: {status}"
        );
        check!(
            b,
            status["polling"].is_null(),
            "the grid stops refreshing once nothing is active: {status}"
        );
        env.wait_for(
            &format!("SELECT state FROM dag_runs WHERE run_id = '{RUN_ID}'"),
            "success",
            10,
        );
        b.screenshot("grid-green").await;

        // The task instance page of `load`: its log.
        b.click_and_load(&format!(r#"#grid a.sq[href="{RUN_PATH}/tasks/load"]"#))
            .await;
        b.wait_page(&format!("{RUN_PATH}/tasks/load"), "#log").await;
        let log = b.text("#log").await.unwrap_or_default();
        check!(
            b,
            log.contains("loaded total 12"),
            "the log panel shows the task's line; got {log:?}"
        );
        let state = b.text("#ti-state").await;
        check!(b, state.as_deref() == Some("success"), "TI state {state:?}");
        b.screenshot("task-log").await;

        // The run page (breadcrumb), then clear `load` with its row's form.
        b.click_and_load(&format!(r#"p.crumbs a[href="{RUN_PATH}"]"#))
            .await;
        let load_row = r#"#task-instances tr[data-task-id="load"]"#;
        b.wait_page(RUN_PATH, load_row).await;
        let state = b.text("#run-state").await;
        check!(
            b,
            state.as_deref() == Some("success"),
            "run state {state:?}"
        );
        b.click_and_load(&format!(
            r#"{load_row} form[action="{RUN_PATH}/clear"] button[type="submit"]"#
        ))
        .await;
        b.wait_page(RUN_PATH, load_row).await;
        check!(
            b,
            !b.exists("#action-error").await,
            "clearing reported an error"
        );
        b.js("window.__marker = 2;", vec![]).await;
        env.wait_for(
            &format!(
                "SELECT state || ' ' || try_number FROM task_instances \
                 WHERE run_id = '{RUN_ID}' AND task_id = 'load'"
            ),
            "success 2",
            30,
        );
        // The page shows the second try's success and the run's new state
        // (the task list and the run badge refresh while the run is active).
        let row = b
            .wait_js(
                "the run page to show `load` succeeded on try 2",
                30,
                "var r = document.querySelector(arguments[0]); \
                 if (!r) { return null; } \
                 var c = r.querySelectorAll('td'); \
                 return {state: c[1].textContent.trim(), try: c[2].textContent.trim(), \
                         run: document.getElementById('run-state').textContent.trim(), \
                         marker: window.__marker === undefined ? null : window.__marker};",
                vec![json!(load_row)],
                |v| {
                    v["state"] == "success"
                        && v["try"].as_str().is_some_and(|t| t.starts_with("2 "))
                        && v["run"] == "success"
                },
            )
            .await;
        check!(
            b,
            row["marker"] == 2,
            "the run page was not reloaded: {row}"
        );
        b.screenshot("after-clear").await;

        // The second try's log, on its own tab.
        b.click_and_load(&format!(r#"{load_row} a[href="{RUN_PATH}/tasks/load"]"#))
            .await;
        b.wait_page(&format!("{RUN_PATH}/tasks/load"), "#log").await;
        let tab = b.text("#try-tabs a.active").await;
        check!(b, tab.as_deref() == Some("Try 2"), "selected tab {tab:?}");
        let log = b.text("#log").await.unwrap_or_default();
        check!(
            b,
            log.contains("Starting try 2") && log.contains("loaded total 12"),
            "try 2's log; got {log:?}"
        );
        b.screenshot("try-2-log").await;

        b.close().await;
    });
}

#[test]
fn a_viewer_sees_no_trigger_button() {
    let tools = Tools::find();
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("vi", "viewer", "password123");
    let driver = ChromeDriver::start(&tools);

    runtime().block_on(async {
        let mut b =
            Browser::open(&driver, &base, "viewer_no_trigger", env.path("proc-0.log")).await;
        b.log_in_via_redirect("/dags", "vi", "password123").await;
        let role = b.text("#nav-user .role").await;
        check!(b, role.as_deref() == Some("viewer"), "role {role:?}");
        let row = r#"tr.dag-row[data-dag-id="example_etl"]"#;
        check!(b, b.exists(row).await, "example_etl is listed");
        check!(
            b,
            !b.exists(&format!("{row} form")).await,
            "a viewer gets no pause toggle form on the DAGs page"
        );

        b.click_and_load(&format!("{row} a.dag-link")).await;
        b.wait_page("/dags/example_etl", "#grid").await;
        for css in ["#trigger", "#trigger-submit", "#pause-toggle", "#backfill"] {
            check!(b, !b.exists(css).await, "a viewer sees no `{css}`");
        }
        let buttons = b
            .js(
                "return Array.prototype.map.call(document.querySelectorAll('main button'), \
                 function (e) { return e.textContent.trim(); });",
                vec![],
            )
            .await;
        check!(
            b,
            !buttons.to_string().contains("Trigger"),
            "no Trigger button among {buttons}"
        );
        b.screenshot("viewer-dag-page").await;
        b.close().await;
    });
    assert_eq!(env.scalar("SELECT count(*) FROM dag_runs"), "0");
}

/// The bettor's and analyst's pages in a browser, as a viewer: the markets
/// board with its flags and sparkline-free first load, a price change
/// written by the odds sink showing up without a reload (htmx), the game
/// page's tables, the alerts feed and an analytics chart with its bars.
#[test]
fn a_viewer_watches_a_price_change_reach_the_markets_board() {
    let tools = Tools::find();
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("vi", "viewer", "password123");
    crate::web_markets::seed(&env);
    env.sql(
        "INSERT INTO serving.market_alerts (kind, sport, event_id, market, outcome, line, magnitude,
            bookmakers, detail, first_seen, last_seen)
         VALUES ('value', 'nfl', 'e-kc', 'h2h', 'away', NULL, 0.0265, ARRAY['b'], '{}',
                 '2024-09-08T16:00:00Z', '2024-09-08T16:10:00Z')",
    );
    env.sql(
        "INSERT INTO serving.gold_market_efficiency (sport, game_id, bookmaker, market, snapshots,
            avg_vig_pct, min_vig_pct, max_vig_pct, efficiency_rating, favourite_flips, updates,
            first_snapshot, last_snapshot, run_id)
         VALUES ('nfl', 'nfl:1', 'fanduel', 'h2h', 12, 4.2, 3.9, 4.6, 'efficient', 0, 3,
                 '2024-09-08T12:00:00Z', '2024-09-08T17:00:00Z', 'r1')",
    );
    let driver = ChromeDriver::start(&tools);

    runtime().block_on(async {
        let mut b = Browser::open(&driver, &base, "markets_live", env.path("proc-0.log")).await;
        let board = "/markets?sport=nfl&date=2024-09-08";
        b.log_in_via_redirect("/markets", "vi", "password123").await;
        b.goto(board).await;
        b.wait_page(board, "section.game").await;
        let rows = b
            .js("return document.querySelectorAll('section.game table.market tbody tr').length;", vec![])
            .await;
        check!(b, rows == json!(2), "two sides of the moneyline, got {rows}");
        let flags = b.text("section.game .flag.arb").await;
        check!(b, flags.as_deref() == Some("arb 3.60%"), "arbitrage flag {flags:?}");
        b.screenshot("markets-board").await;

        // The odds sink writes a new best home price; the open board shows
        // it at its next refresh, with no reload.
        b.js("window.__not_reloaded = true; return true;", vec![]).await;
        let written = Instant::now();
        env.sql(
            "UPDATE serving.odds_latest SET price_decimal = 2.30, implied_probability = 1 / 2.30,
                event_time = event_time + interval '5 minutes'
             WHERE bookmaker = 'a' AND outcome = 'home'",
        );
        b.wait_js(
            "the new best home price on the open board",
            10,
            "return window.__not_reloaded === true && document.body.innerText.indexOf('2.30 (+130)') >= 0;",
            vec![],
            |v| v == &json!(true),
        )
        .await;
        let delay = written.elapsed();
        eprintln!("price written → visible on the open board: {delay:?}");
        b.screenshot("markets-after-price-change").await;

        b.click_and_load("section.game a.matchup").await;
        b.wait_page("/markets/nfl/e-kc", "h1").await;
        let heading = b.text("h1").await;
        check!(
            b,
            heading.as_deref() == Some("Baltimore Ravens @ Kansas City Chiefs"),
            "game page heading {heading:?}"
        );
        check!(b, b.exists("ol.timeline li").await, "the status timeline has entries");
        b.screenshot("game-page").await;

        b.goto("/alerts?date=2024-09-08").await;
        b.wait_page("/alerts?date=2024-09-08", "table.alerts tbody tr").await;
        let kind = b.text("table.alerts tbody tr .flag").await;
        check!(b, kind.as_deref() == Some("value"), "alert kind {kind:?}");
        b.screenshot("alerts").await;

        b.goto("/analytics?sport=nfl").await;
        b.wait_page("/analytics?sport=nfl", "#market_efficiency svg.bars").await;
        let bars = b
            .js("return document.querySelectorAll('#market_efficiency svg.bars rect').length;", vec![])
            .await;
        check!(b, bars == json!(1), "one bar per bookmaker, got {bars}");
        b.screenshot("analytics").await;
        b.close().await;
    });
}

/// The live path end to end, as a bettor sees it: an odds poll published to
/// Kafka goes through the odds consumer into the serving tables and onto a
/// markets board already open in the browser, without a reload. Prints the
/// delay from the publish to the new price on the page.
#[test]
fn a_price_published_to_kafka_reaches_the_open_markets_board() {
    use chrono::{TimeDelta, Utc};
    use dags::live::envelope::{Kind, Topic};
    use streaming::kafka::producer::Producer;
    use streaming::kafka::KafkaSettings;

    let tools = Tools::find();
    let mut env = TestEnv::start();
    let broker = crate::common::Tansu::start(env.home.path());
    let (_pid, base) = env.spawn_up_with(&[
        ("KAFKA_BROKERS", &broker.bootstrap),
        ("BETFLOW_LIVE_PUBLISH", "off"),
    ]);
    env.create_user("vi", "viewer", "password123");
    crate::kafka::wait_until_assigned(&env, "odds_consumer", "betflow.odds.nba", 0);
    let driver = ChromeDriver::start(&tools);
    let rt = runtime();
    let producer =
        Producer::new(&KafkaSettings::new(&broker.bootstrap).with_partitions(1)).expect("producer");
    let topic = Topic::new(Kind::Odds, dags::sport("nba").expect("nba"));
    let event = "evt-kafka-page";
    // The game starts within the hour: its sports day is the board's.
    let now = Utc::now();
    let day = sources::sports_day(now + TimeDelta::hours(3));
    rt.block_on(async {
        producer.ensure_topics(&[topic]).await.expect("topics");
        producer
            .publish(
                topic,
                &crate::kafka::poll_of(event, now, (1.90, 1.90), (1.85, 1.95)),
            )
            .await
            .expect("publish the first poll");
    });
    env.wait_for(
        &format!("SELECT count(*) FROM serving.odds_latest WHERE event_id = '{event}'"),
        "4",
        30,
    );

    rt.block_on(async {
        let board = format!("/markets?sport=nba&date={day}");
        let mut b = Browser::open(&driver, &base, "markets_kafka", env.path("proc-0.log")).await;
        b.log_in_via_redirect("/markets", "vi", "password123").await;
        b.goto(&board).await;
        b.wait_page(&board, "section.game").await;
        let teams = b.text("section.game .matchup").await;
        check!(
            b,
            teams.as_deref() == Some("Away Team @ Home Team"),
            "the published game is on the board: {teams:?}"
        );
        b.js("window.__not_reloaded = true; return true;", vec![]).await;

        let published = Instant::now();
        producer
            .publish(
                topic,
                &crate::kafka::poll_of(
                    event,
                    now + TimeDelta::seconds(1),
                    (2.40, 1.60),
                    (1.85, 1.95),
                ),
            )
            .await
            .expect("publish the price change");
        b.wait_js(
            "the published home price on the open board",
            15,
            "return window.__not_reloaded === true && document.body.innerText.indexOf('2.40 (+140)') >= 0;",
            vec![],
            |v| v == &json!(true),
        )
        .await;
        let delay = published.elapsed();
        eprintln!("Kafka publish → visible on the open markets board: {delay:?}");
        b.screenshot("markets-from-kafka").await;
        b.close().await;
    });
}
