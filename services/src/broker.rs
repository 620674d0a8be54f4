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

/// How to install a tansu that keeps its log on disk.
pub const INSTALL_HINT: &str = "cargo install tansu --locked --features dynostore,postgres,libsql";

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
    /// `host:port` to bootstrap from.
    pub bootstrap: String,
    /// Where the log is, if on disk; `None`: in memory.
    pub log_file: Option<PathBuf>,
    /// Holds `bootstrap` while the broker runs, for other commands
    /// ([`running_bootstrap`]).
    address_file: PathBuf,
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
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".cache/betflow-tools/bin/tansu");
        p.is_file().then_some(p)
    })
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
        let broker = match log {
            BrokerLog::Durable => match Self::start(&bin, &dir, BrokerLog::Durable) {
                Err(StartError::NoSqlite) => {
                    eprintln!(
                        "note: {} was built without SQLite support, so the embedded broker keeps \
                         its log in memory and loses it when `up` stops; for a durable one: {INSTALL_HINT}",
                        bin.display()
                    );
                    Self::start(&bin, &dir, BrokerLog::Memory)
                }
                started => started,
            },
            BrokerLog::Memory => Self::start(&bin, &dir, BrokerLog::Memory),
        };
        let broker: Self = broker.map_err(|e| match e {
            StartError::NoSqlite => anyhow::anyhow!("tansu has no SQLite support"),
            StartError::Other(e) => e,
        })?;
        std::fs::write(&broker.address_file, &broker.bootstrap)
            .with_context(|| format!("writing {}", broker.address_file.display()))?;
        Ok(Some(broker))
    }

    fn start(bin: &Path, dir: &Path, log: BrokerLog) -> Result<Self, StartError> {
        let other = StartError::Other;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| other(e.into()))?
            .port();
        let bootstrap = format!("127.0.0.1:{port}");
        let url = format!("tcp://{bootstrap}");
        let log_path = dir.join("tansu.log");
        let out = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))
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
            bootstrap,
            log_file,
            address_file: dir.join("bootstrap"),
        })
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.address_file);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
