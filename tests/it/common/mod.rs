//! Test harness: a throwaway Postgres cluster per test (the same embedded
//! code `betflow` uses), and helpers to drive the real `betflow` binary
//! against it the way a user would.

#![allow(dead_code)]

pub mod viewer;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};

pub struct TestEnv {
    pub url: String,
    children: Vec<Child>,
    // Fields drop in order: the cluster stops after the children are gone,
    // and its directory is removed only after the cluster has stopped.
    pg: EmbeddedPostgres,
    pub home: tempfile::TempDir,
}

impl TestEnv {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// With `durable`, the test cluster keeps what it committed through a
    /// crash (fsync and synchronous commits on), for tests that kill it.
    pub fn start_with(durable: bool) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        let pg = EmbeddedPostgres::start(&EmbeddedOptions {
            home: home.path().join("pg"),
            durable,
        })
        .expect("start a throwaway Postgres cluster");
        let url = pg.url().to_owned();
        Self {
            home,
            url,
            children: Vec::new(),
            pg,
        }
    }

    /// Kills this environment's Postgres, keeps it down for `down`, then
    /// starts it again on the same port.
    pub fn crash_postgres_for(&mut self, down: Duration) {
        self.kill_postgres();
        std::thread::sleep(down);
        self.revive_postgres();
    }

    /// SIGKILL of this environment's postmaster: its connections drop at once.
    pub fn kill_postgres(&mut self) {
        let pid_file = self.pg.data_dir().join("postmaster.pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|c| c.lines().next().and_then(|l| l.trim().parse().ok()))
            .expect("the test cluster's postmaster pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the postmaster");
    }

    /// Start this environment's Postgres again on the same port, once the
    /// killed one has gone.
    pub fn revive_postgres(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.pg.revive() {
                Ok(orchestrator::store::embedded::Health::Restarted { .. }) => return,
                // Still exiting, or its backends still hold its memory.
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                other => panic!("the test cluster did not start again: {other:?}"),
            }
        }
    }

    /// `betflow <args>` with this environment's database and the example DAGs.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_betflow"));
        c.args(args)
            .env("DATABASE_URL", &self.url)
            .env("BETFLOW_HOME", self.home.path())
            .env("BETFLOW_LOAD_EXAMPLES", "true")
            .env("BETFLOW_PAUSED_AT_CREATION", "true")
            .env("BETFLOW_POLL_MS", "200")
            .env("BETFLOW_HEARTBEAT_SECS", "1")
            // `up` starts no broker of its own unless a test asks for one.
            .env("BETFLOW_EMBEDDED_KAFKA", "false")
            .env("BETFLOW_LIVE_PUBLISH", "off")
            .env_remove("BETFLOW_LOG")
            .env_remove("KAFKA_BROKERS");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run betflow")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "betflow {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require a usage error (exit code 2); returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "betflow {args:?} should fail with exit code 2\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Start a long-running `betflow` process; killed when the env drops.
    pub fn spawn(&mut self, args: &[&str], extra_env: &[(&str, &str)]) -> u32 {
        let mut c = self.cmd(args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let log = std::fs::File::create(
            self.home
                .path()
                .join(format!("proc-{}.log", self.children.len())),
        )
        .expect("log file");
        let out = std::fs::File::create(
            self.home
                .path()
                .join(format!("proc-{}.out", self.children.len())),
        )
        .expect("stdout file");
        let child = c.stdout(out).stderr(log).spawn().expect("spawn betflow");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Send a signal to a spawned process and wait for it; returns its exit status.
    pub fn signal(&mut self, pid: u32, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal");
        let idx = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .expect("known child");
        let mut child = self.children.remove(idx);
        child.wait().expect("wait child")
    }

    /// stderr of the n-th spawned process.
    pub fn proc_log(&self, n: usize) -> String {
        std::fs::read_to_string(self.home.path().join(format!("proc-{n}.log"))).unwrap_or_default()
    }

    /// Rows of a query, columns separated by `|`.
    pub fn sql(&self, query: &str) -> Vec<String> {
        self.try_sql(query)
            .unwrap_or_else(|e| panic!("psql failed: {e}"))
    }

    pub fn try_sql(&self, query: &str) -> Result<Vec<String>, String> {
        let out = Command::new("psql")
            .args(["-X", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1"])
            .args([&self.url, "-c", query])
            .output()
            .expect("run psql");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    pub fn scalar(&self, query: &str) -> String {
        self.sql(query).into_iter().next().unwrap_or_default()
    }

    /// Poll `query` until it returns `want` (or panic after `secs`). Errors
    /// (tables not yet migrated by a starting process) count as "not yet".
    pub fn wait_for(&self, query: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = match self.try_sql(query) {
                Ok(rows) => rows.into_iter().next().unwrap_or_default(),
                Err(e) => e,
            };
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                let mut logs: Vec<String> = (0..self.children_spawned())
                    .map(|n| self.proc_log(n))
                    .collect();
                logs.extend(self.broker_log_tails());
                panic!(
                    "timed out waiting for `{query}` = {want:?}; last {got:?}\nprocess logs:\n{}",
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of each tansu broker's log in the home directory.
    fn broker_log_tails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.home.path()) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("tansu-"))
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                format!(
                    "{} (last 40 lines):\n{tail}",
                    e.file_name().to_string_lossy()
                )
            })
            .collect()
    }

    fn children_spawned(&self) -> usize {
        (0..)
            .take_while(|n| self.home.path().join(format!("proc-{n}.log")).exists())
            .count()
    }

    /// Start `betflow up` on a port the OS picks; returns (pid, base URL)
    /// once it answers `/health`.
    pub fn spawn_up(&mut self) -> (u32, String) {
        self.spawn_up_with(&[])
    }

    /// [`TestEnv::spawn_up`] with more environment variables.
    pub fn spawn_up_with(&mut self, vars: &[(&str, &str)]) -> (u32, String) {
        let n = self.children.len();
        let mut all: Vec<(&str, &str)> = vec![("BETFLOW_INSECURE_COOKIES", "1")];
        all.extend_from_slice(vars);
        let pid = self.spawn(&["up", "--port", "0"], &all);
        let base = self.up_url(n);
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::blocking::get(format!("{base}/health")).is_err() {
            assert!(
                Instant::now() < deadline,
                "betflow up did not answer: {}",
                self.proc_log(0)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        (pid, base)
    }

    /// The base URL the `n`th spawned process (an `up`) printed once it
    /// bound its port (`--port 0` lets the OS pick a free one, so no test
    /// races another for a port it picked and released).
    pub fn up_url(&self, n: usize) -> String {
        let out = self.home.path().join(format!("proc-{n}.out"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(url) = text.lines().find_map(|l| l.strip_prefix("BetFlow is up: ")) {
                return url.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "betflow up printed no URL:\n{text}\n{}",
                self.proc_log(n)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Create a web user with a known password.
    pub fn create_user(&self, username: &str, role: &str, password: &str) {
        use std::io::Write;
        let mut child = self
            .cmd(&["users", "create", "--username", username, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn users create");
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "users create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new API token for `username`.
    pub fn token(&self, username: &str) -> String {
        self.ok(&["tokens", "create", "--username", username])
            .trim()
            .to_owned()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A tansu Kafka-API broker on a free loopback port, its log in memory or
/// (as under `betflow up`) in SQLite; killed when dropped.
pub struct Tansu {
    child: Child,
    /// `host:port` bootstrap address.
    pub bootstrap: String,
    log: PathBuf,
    /// Where its log lives: `None` in memory, else the directory of its
    /// SQLite file.
    durable: Option<PathBuf>,
}

impl Tansu {
    /// Starts tansu (`$BETFLOW_TANSU`, else `tansu` on PATH, else
    /// `~/.cache/betflow-tools/bin/tansu`) and waits until it accepts connections.
    /// tansu cannot be told to pick its own port and report it: a port is
    /// picked, released and handed over, and when another process takes
    /// it first tansu exits and the start is tried again on another.
    pub fn start(log_dir: &std::path::Path) -> Self {
        Self::start_with(log_dir, None)
    }

    /// [`Tansu::start`] with its log in a SQLite file under `log_dir`, which
    /// survives a kill: what `betflow up`'s embedded broker keeps.
    pub fn start_durable(log_dir: &std::path::Path) -> Self {
        let data = log_dir.join("tansu-data");
        std::fs::create_dir_all(&data).expect("tansu data dir");
        Self::start_with(log_dir, Some(data))
    }

    fn start_with(log_dir: &std::path::Path, durable: Option<PathBuf>) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let bootstrap = format!("127.0.0.1:{port}");
            let log = log_dir.join(format!("tansu-{port}.log"));
            let child = Self::spawn(&bootstrap, &log, durable.as_deref());
            let mut broker = Self {
                child,
                bootstrap,
                log,
                durable: durable.clone(),
            };
            match broker.listening() {
                Ok(()) => return broker,
                Err(why) => last = why,
            }
        }
        panic!("tansu did not start on any of 5 ports; the last:\n{last}");
    }

    /// Kills the broker (SIGKILL, as a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts an empty broker at the address of a killed one, as an
    /// in-memory broker comes back after a crash: no topics, offsets or groups.
    pub fn start_empty_again(&mut self) {
        assert!(self.durable.is_none(), "a durable broker keeps its log");
        self.start_again();
    }

    /// Starts a killed broker again at its address, with its log if durable.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(&self.bootstrap, &self.log, self.durable.as_deref());
        self.wait_until_listening();
    }

    fn spawn(bootstrap: &str, log: &std::path::Path, durable: Option<&std::path::Path>) -> Child {
        let bin = tansu_binary().unwrap_or_else(|| {
            panic!(
                "tansu (the Kafka-API broker the Kafka tests use) is not installed: run \
                 scripts/test, which installs it into ~/.cache/betflow-tools, or set BETFLOW_TANSU"
            )
        });
        let url = format!("tcp://{bootstrap}");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("tansu log file");
        let mut command = Command::new(&bin);
        // tansu resolves a SQLite path against its working directory.
        let storage: &str = match durable {
            Some(dir) => {
                command.current_dir(dir);
                "sqlite://tansu.db"
            }
            None => "memory://tansu/",
        };
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()))
    }

    /// Waits until this broker (not another process on its port) accepts
    /// connections; `Err` when it exited first.
    fn listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tansu exited ({status}):\n{}", self.log()));
            }
            if std::net::TcpStream::connect(&self.bootstrap).is_ok() {
                // A port taken by someone else also accepts: make sure the
                // broker is still the one alive on it.
                std::thread::sleep(Duration::from_millis(200));
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("tansu exited ({status}):\n{}", self.log()));
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "tansu did not listen on {}:\n{}",
                    self.bootstrap,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tansu exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}:\n{}",
                self.bootstrap,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BETFLOW_TANSU").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = PathBuf::from(std::env::var_os("HOME")?);
        let p = home.join(".cache/betflow-tools/bin/tansu");
        p.is_file().then_some(p)
    })
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a Python `script` that prints one JSON document with `args`
/// (`sys.argv[1:]`) under `$BETFLOW_PYTHON`, the venv `scripts/test`
/// provides with pyiceberg, and returns that document.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let python = std::env::var("BETFLOW_PYTHON")
        .expect("BETFLOW_PYTHON is not set: run scripts/test (it provides pyiceberg in a venv)");
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from the script")
}

/// Pids of the direct children of `parent` whose command name is `name`.
pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid: u32 = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent && comm == name {
            out.push(pid);
        }
    }
    out
}
