//! The embedded Kafka-API broker of `betflow up`: when `KAFKA_BROKERS` is not
//! set and tansu is installed, `up` runs one on loopback for its own stream
//! tasks, as it runs its own Postgres.
//!
//! Its log is durable (SQLite under `$BETFLOW_HOME/kafka`): the consumers'
//! checkpoints and the topic archive hold Kafka offsets, which must not
//! start over when `up` restarts, and records published but not consumed
//! yet must still be there. A tansu built without SQLite support keeps
//! the log in memory instead, and `up` says so.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The tansu `up` installs when none is found: the release it was tested
/// with, with the memory and SQLite storage it uses.
pub const TANSU_VERSION: &str = "0.6.0";
pub const TANSU_FEATURES: &str = "dynostore,libsql";

/// How to install a tansu that keeps its log on disk.
pub const INSTALL_HINT: &str =
    "cargo install tansu --version 0.6.0 --locked --features dynostore,libsql";

/// `BETFLOW_BROKER_INSTALL=off`: do not install tansu when it is missing
/// (air-gapped machines, or a cluster given with `KAFKA_BROKERS` later).
pub const INSTALL_ENV: &str = "BETFLOW_BROKER_INSTALL";

/// Where the embedded broker keeps its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerLog {
    /// `$home/kafka/tansu.db`, kept across restarts.
    Durable,
    /// In memory: a benchmark's throwaway broker, with no disk in the path
    /// it measures.
    Memory,
}

pub struct EmbeddedBroker {
    child: Child,
    /// How it was started, to start it again the same way.
    bin: PathBuf,
    dir: PathBuf,
    kind: BrokerLog,
    /// `host:port` to bootstrap from.
    pub bootstrap: String,
    /// Where the log is, if on disk; `None`: in memory.
    pub log_file: Option<PathBuf>,
    /// Holds `bootstrap` while the broker runs, for other commands
    /// ([`running_bootstrap`]).
    address_file: PathBuf,
}

/// Where `up` and `scripts/test` install tools: `~/.cache/betflow-tools`.
fn tools_root() -> Option<PathBuf> {
    Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/betflow-tools"))
}

/// Where tansu is: `BETFLOW_TANSU`, else on PATH, else where `scripts/test`
/// installs it (`~/.cache/betflow-tools/bin`).
fn find_tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BETFLOW_TANSU").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = tools_root()?.join("bin/tansu");
        p.is_file().then_some(p)
    })
}

/// The command that installs tansu under `root` (its binary lands in
/// `root/bin`, where [`find_tansu`] looks).
fn install_command(root: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.args(["install", "tansu", "--version", TANSU_VERSION, "--locked"])
        .args(["--features", TANSU_FEATURES, "--root"])
        .arg(root);
    c
}

/// Installs tansu with cargo, printing a line every few crates so a first
/// `up` shows it is working; the installed binary.
fn install_tansu() -> Result<PathBuf> {
    use std::io::{BufRead, BufReader};
    let root: PathBuf = tools_root().context("HOME is not set: nowhere to install tansu")?;
    crate::outln!(
        "installing the Kafka broker (tansu {TANSU_VERSION}) into {} — once per machine, about 10 minutes on 2 cores; \
         everything else runs meanwhile and the stream tasks connect when it is up",
        root.display()
    );
    let mut child = install_command(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "cargo is not on PATH, so tansu cannot be installed: install Rust (https://rustup.rs), \
                 set BETFLOW_TANSU to a tansu binary, or KAFKA_BROKERS to a cluster"
            ),
            _ => anyhow::Error::new(e).context("starting cargo install tansu"),
        })?;
    let mut compiled: usize = 0;
    let mut tail: Vec<String> = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.trim_start().starts_with("Compiling") {
                compiled += 1;
                if compiled.is_multiple_of(50) {
                    crate::outln!("broker install: {compiled} crates compiled");
                }
            }
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
    }
    let status = child.wait().context("waiting for cargo install tansu")?;
    if !status.success() {
        anyhow::bail!(
            "cargo install tansu failed ({status}); its last lines:\n{}",
            tail.join("\n")
        );
    }
    let bin = root.join("bin/tansu");
    crate::outln!(
        "broker install: done ({compiled} crates), {}",
        bin.display()
    );
    Ok(bin)
}

/// The directory of the embedded broker of `home`.
fn kafka_dir(home: &Path) -> PathBuf {
    home.join("kafka")
}

/// The bootstrap address of the embedded broker a `betflow up` of `home`
/// is running, if one is.
pub fn running_bootstrap(home: &Path) -> Option<String> {
    let text: String = std::fs::read_to_string(kafka_dir(home).join("bootstrap")).ok()?;
    let address: &str = text.trim();
    std::net::TcpStream::connect(address).ok()?;
    Some(address.to_string())
}

/// Why a tansu process ended before it listened.
enum StartError {
    /// Built without SQLite support.
    NoSqlite,
    Other(anyhow::Error),
}

impl EmbeddedBroker {
    /// Start tansu unless the deployment names its own brokers or turned the
    /// embedded one off (`BETFLOW_EMBEDDED_KAFKA=false`). `Ok(None)` when not started.
    pub fn start_if_wanted(home: &Path, log: BrokerLog) -> Result<Option<Self>> {
        if std::env::var("KAFKA_BROKERS").is_ok_and(|b| !b.trim().is_empty()) {
            return Ok(None);
        }
        if matches!(
            std::env::var("BETFLOW_EMBEDDED_KAFKA").as_deref(),
            Ok("0" | "false" | "no")
        ) {
            return Ok(None);
        }
        let Some(bin) = find_tansu() else {
            eprintln!(
                "note: no Kafka broker: stream consumers are off. Set KAFKA_BROKERS, or install tansu \
                 (`{INSTALL_HINT}`) for an embedded one"
            );
            return Ok(None);
        };
        let dir: PathBuf = kafka_dir(home);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Self::start_from(&bin, &dir, log, None)
    }

    /// What `up` runs: tansu when it is installed, as [`Self::start_if_wanted`];
    /// when it is not, an address planned now and tansu installed and
    /// started there in the background ([`Broker::Provisioning`]), so the
    /// first `up` on a fresh machine needs nothing else.
    pub fn start_or_provision(home: &Path, log: BrokerLog) -> Result<Option<Broker>> {
        if find_tansu().is_some()
            || matches!(
                std::env::var(INSTALL_ENV).as_deref(),
                Ok("off" | "0" | "false" | "no")
            )
            || std::env::var("KAFKA_BROKERS").is_ok_and(|b| !b.trim().is_empty())
            || matches!(
                std::env::var("BETFLOW_EMBEDDED_KAFKA").as_deref(),
                Ok("0" | "false" | "no")
            )
        {
            return Ok(Self::start_if_wanted(home, log)?.map(Broker::Running));
        }
        let dir: PathBuf = kafka_dir(home);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let port: u16 = free_port()?;
        let bootstrap = format!("127.0.0.1:{port}");
        let log_file = matches!(log, BrokerLog::Durable).then(|| dir.join("tansu.db"));
        // The broker's parent-death signal follows the thread that starts
        // it, so this thread starts it and then stays for the process's
        // life: the broker still dies with `up`.
        std::thread::Builder::new()
            .name("broker-install".into())
            .spawn(move || {
                let started =
                    install_tansu().and_then(|bin| Self::start_from(&bin, &dir, log, Some(port)));
                match started {
                    Ok(Some(broker)) => {
                        // A closed stdout must not stop the broker.
                        let _ = crate::output::write_line(format_args!(
                            "Kafka broker (embedded tansu, installed just now): {}",
                            broker.bootstrap
                        ));
                        // Watched for the process's life (the flag never flips).
                        let forever = std::sync::atomic::AtomicBool::new(false);
                        broker.watch(WATCH_EVERY, &forever);
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("error: the embedded Kafka broker is not running: {e:#}"),
                }
            })
            .context("starting the broker install thread")?;
        Ok(Some(Broker::Provisioning {
            bootstrap,
            log_file,
        }))
    }

    fn start_from(
        bin: &Path,
        dir: &Path,
        log: BrokerLog,
        port: Option<u16>,
    ) -> Result<Option<Self>> {
        let broker = match log {
            BrokerLog::Durable => match Self::start(bin, dir, BrokerLog::Durable, port) {
                Err(StartError::NoSqlite) => {
                    eprintln!(
                        "note: {} was built without SQLite support, so the embedded broker keeps \
                         its log in memory and loses it when `up` stops; for a durable one: {INSTALL_HINT}",
                        bin.display()
                    );
                    Self::start(bin, dir, BrokerLog::Memory, port)
                }
                started => started,
            },
            BrokerLog::Memory => Self::start(bin, dir, BrokerLog::Memory, port),
        };
        let broker: Self = broker.map_err(|e| match e {
            StartError::NoSqlite => anyhow::anyhow!("tansu has no SQLite support"),
            StartError::Other(e) => e,
        })?;
        std::fs::write(&broker.address_file, &broker.bootstrap)
            .with_context(|| format!("writing {}", broker.address_file.display()))?;
        Ok(Some(broker))
    }

    fn start(
        bin: &Path,
        dir: &Path,
        log: BrokerLog,
        port: Option<u16>,
    ) -> Result<Self, StartError> {
        let other = StartError::Other;
        let port: u16 = match port {
            Some(p) => p,
            None => free_port().map_err(other)?,
        };
        let bootstrap = format!("127.0.0.1:{port}");
        let url = format!("tcp://{bootstrap}");
        let log_path = dir.join("tansu.log");
        // A new log, written from its start, and appended to: every write
        // lands at its end whoever else writes the file (a rotation that
        // truncates it, a line added by hand), none overwrites another.
        std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))
            .map_err(other)?;
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))
            .map_err(other)?;
        // tansu resolves a SQLite path against its working directory.
        let (storage, log_file) = match log {
            BrokerLog::Durable => ("sqlite://tansu.db", Some(dir.join("tansu.db"))),
            BrokerLog::Memory => ("memory://tansu/", None),
        };
        let mut command = Command::new(bin);
        // The broker dies with `up`, even killed -9: an orphaned one would
        // hold the SQLite log of the next `up`. (The signal follows the
        // forking thread; `up` starts it from the main one.)
        // SAFETY: prctl is async-signal-safe, as code between fork and exec must be.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| other(e.into()))?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))
            .map_err(other)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            if let Some(status) = child.try_wait().map_err(|e| other(e.into()))? {
                let said: String = std::fs::read_to_string(&log_path).unwrap_or_default();
                if said.contains("FeatureNotEnabled") && said.contains("libsql") {
                    return Err(StartError::NoSqlite);
                }
                return Err(other(anyhow::anyhow!(
                    "tansu exited ({status}); see {}",
                    log_path.display()
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(other(anyhow::anyhow!(
                    "tansu did not listen on {bootstrap} within 15 s; see {}",
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            child,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            kind: log,
            bootstrap,
            log_file,
            address_file: dir.join("bootstrap"),
        })
    }

    /// Watches the broker until `stop` (checked every `every`), starting
    /// it again on the same address when it exits: consumers and
    /// publishers reconnect to it, and the durable log keeps their topics
    /// and offsets. Runs on the calling thread, which must live as long as
    /// the broker: its parent-death signal follows the thread that forks.
    fn watch(mut self, every: Duration, stop: &std::sync::atomic::AtomicBool) {
        use std::sync::atomic::Ordering;
        let mut restarts = crate::restarts::Restarts::new(every);
        let log_path = self.dir.join("tansu.log");
        let mut log_read: u64 = 0;
        while !stop.load(Ordering::Acquire) {
            std::thread::park_timeout(restarts.look_every());
            if stop.load(Ordering::Acquire) {
                break;
            }
            let exited: String = match self.child.try_wait() {
                Ok(Some(status)) => format!("exited ({status})"),
                Ok(None) => match panic_in_log(&log_path, &mut log_read) {
                    // A panicked tansu may stay up and fail every request
                    // after (0.6's SQLite storage, on an idempotent
                    // producer's send after a kill): it is started again.
                    Some(line) => {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        format!("panicked ({line})")
                    }
                    None => {
                        restarts.running(std::time::Instant::now());
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!("cannot check the embedded Kafka broker: {e}");
                    continue;
                }
            };
            // In a crash loop: seen dead now, started again once the
            // loop's spacing has passed.
            let hold = restarts.hold(std::time::Instant::now());
            if !hold.is_zero() {
                tracing::warn!(
                    "the embedded Kafka broker {exited}; it died soon after its last start, \
                     starting it again in {}s",
                    hold.as_secs_f64().ceil()
                );
                let until = std::time::Instant::now() + hold;
                while !stop.load(Ordering::Acquire) && std::time::Instant::now() < until {
                    std::thread::park_timeout(until - std::time::Instant::now());
                }
                if stop.load(Ordering::Acquire) {
                    break;
                }
            }
            let port: Option<u16> = self
                .bootstrap
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok());
            match Self::start(&self.bin, &self.dir, self.kind, port) {
                Ok(mut fresh) => {
                    std::mem::swap(&mut self.child, &mut fresh.child);
                    // `fresh` now holds the exited child; its drop must not
                    // remove the address file the running broker owns.
                    fresh.address_file = PathBuf::new();
                    drop(fresh);
                    // A new log, written from its start.
                    log_read = 0;
                    let _ = std::fs::write(&self.address_file, &self.bootstrap);
                    let looping = restarts.restarted(std::time::Instant::now());
                    tracing::warn!(
                        "the embedded Kafka broker {exited}; started it again on {}{}",
                        self.bootstrap,
                        restarts.looping_note(looping)
                    );
                }
                Err(e) => {
                    restarts.failed(std::time::Instant::now());
                    let why = match e {
                        StartError::NoSqlite => "tansu has no SQLite support".to_owned(),
                        StartError::Other(e) => format!("{e:#}"),
                    };
                    tracing::error!(
                        "the embedded Kafka broker {exited} and did not start again: {why}; \
                         trying again in {}s",
                        restarts.wait().as_secs()
                    );
                }
            }
        }
    }
}

/// The first line past byte `read` of the broker's log that reports a
/// panic, trimmed; `read` moves to the end of what was read. A log that
/// cannot be read reports none.
fn panic_in_log(log: &Path, read: &mut u64) -> Option<String> {
    use std::io::{BufRead, BufReader, Seek, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    // Shorter than what was read: the log was started again.
    if len < *read {
        *read = 0;
    }
    file.seek(SeekFrom::Start(*read)).ok()?;
    let mut found = None;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            // A line still being written is read again next time.
            Ok(_) if line.last() != Some(&b'\n') => break,
            Ok(n) => {
                *read += n as u64;
                let text = String::from_utf8_lossy(&line);
                if found.is_none() && text.contains("panicked at") {
                    found = Some(text.trim().chars().take(200).collect());
                }
            }
        }
    }
    found
}

/// The watcher of a running embedded broker ([`Broker::watch`]): dropping
/// it stops the watch, then the broker.
pub struct BrokerWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for BrokerWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// How often a watched broker is checked.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A loopback port free now (bound, then released).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port for the broker")?
        .port())
}

/// The broker `up` runs.
pub enum Broker {
    /// tansu was installed and is running.
    Running(EmbeddedBroker),
    /// tansu is being installed; it will listen on `bootstrap`.
    Provisioning {
        bootstrap: String,
        log_file: Option<PathBuf>,
    },
}

impl Broker {
    /// Hands a running broker to a thread of its own that starts it again
    /// whenever it exits, until the returned watch is dropped (then the
    /// broker stops). A broker being installed is watched by its install
    /// thread already.
    pub fn watch(self) -> Result<Option<BrokerWatch>> {
        let Broker::Running(broker) = self else {
            return Ok(None);
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("broker-watch".into())
            .spawn(move || broker.watch(WATCH_EVERY, &flag))
            .context("starting the broker watch thread")?;
        Ok(Some(BrokerWatch {
            stop,
            thread: Some(thread),
        }))
    }

    pub fn bootstrap(&self) -> &str {
        match self {
            Broker::Running(b) => &b.bootstrap,
            Broker::Provisioning { bootstrap, .. } => bootstrap,
        }
    }

    pub fn log_file(&self) -> Option<&Path> {
        match self {
            Broker::Running(b) => b.log_file.as_deref(),
            Broker::Provisioning { log_file, .. } => log_file.as_deref(),
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if !self.address_file.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.address_file);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_is_pinned_and_lands_where_up_looks() {
        let c = install_command(Path::new("/tools"));
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "cargo");
        assert_eq!(
            args,
            [
                "install",
                "tansu",
                "--version",
                "0.6.0",
                "--locked",
                "--features",
                "dynostore,libsql",
                "--root",
                "/tools"
            ]
        );
        assert!(INSTALL_HINT.contains(TANSU_VERSION) && INSTALL_HINT.contains(TANSU_FEATURES));
    }

    #[test]
    fn a_panic_in_the_brokers_log_is_found_once_and_only_when_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tansu.log");
        let mut read = 0;
        assert_eq!(panic_in_log(&log, &mut read), None, "no log yet");
        std::fs::write(&log, "INFO listening\nINFO produce\n").expect("write");
        assert_eq!(panic_in_log(&log, &mut read), None);
        assert_eq!(read, 28);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        use std::io::Write;
        f.write_all(b"thread 'tokio-runtime-worker' panicked at src/lite.rs:503:9")
            .expect("append");
        assert_eq!(panic_in_log(&log, &mut read), None, "a line not yet ended");
        f.write_all(b":\nmore or less than one row\n")
            .expect("append");
        let found = panic_in_log(&log, &mut read).expect("the panic");
        assert!(found.contains("panicked at src/lite.rs"), "{found}");
        assert_eq!(panic_in_log(&log, &mut read), None, "reported once");
        // Started again: a new, shorter log is read from its start.
        std::fs::write(&log, "thread 'x' panicked at y\n").expect("write");
        assert!(panic_in_log(&log, &mut read).is_some());
    }

    #[test]
    fn no_running_broker_without_an_address_that_answers() {
        let home = tempfile::tempdir().expect("temp dir");
        assert_eq!(running_bootstrap(home.path()), None);
        std::fs::create_dir_all(kafka_dir(home.path())).expect("dir");
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        std::fs::write(
            kafka_dir(home.path()).join("bootstrap"),
            format!("127.0.0.1:{port}\n"),
        )
        .expect("write");
        assert_eq!(running_bootstrap(home.path()), None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let address = listener.local_addr().expect("addr").to_string();
        std::fs::write(kafka_dir(home.path()).join("bootstrap"), &address).expect("write");
        assert_eq!(running_bootstrap(home.path()), Some(address));
    }
}
