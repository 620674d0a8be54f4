//! The embedded Kafka-API broker of `betflow up`: when `KAFKA_BROKERS` is not
//! set and tansu is installed, `up` runs one on loopback with in-memory
//! storage for its own stream tasks, as it runs its own Postgres.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct EmbeddedBroker {
    child: Child,
    /// `host:port` to bootstrap from.
    pub bootstrap: String,
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

impl EmbeddedBroker {
    /// Start tansu unless the deployment names its own brokers or turned the
    /// embedded one off (`BETFLOW_EMBEDDED_KAFKA=false`). `Ok(None)` when not started.
    pub fn start_if_wanted(home: &Path) -> Result<Option<Self>> {
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
                 (`cargo install tansu --locked --features dynostore,postgres`) for an embedded one"
            );
            return Ok(None);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let bootstrap = format!("127.0.0.1:{port}");
        let url = format!("tcp://{bootstrap}");
        std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
        let log_path = home.join("tansu.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("tansu exited ({status}); see {}", log_path.display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "tansu did not listen on {bootstrap} within 15 s; see {}",
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Some(Self { child, bootstrap }))
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
