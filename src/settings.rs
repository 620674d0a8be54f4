//! The process's settings, parsed once in `main` with the command line:
//! every variable the engine and the CLI read, typed and checked before a
//! command starts. A bad value stops the command with exit code 2 naming
//! the variable and the value; nothing reads these variables later. The
//! README's configuration table is checked against the code
//! (`readme_lists_every_variable_the_code_reads`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use orchestrator::{AlertEvent, Alerts, EngineConfig, Notifiers};

/// Settings from flags or their `BETFLOW_*` variables (flags win). Only
/// `--home` is shown in `--help`; the rest are for the environment.
#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// Directory for the embedded Postgres, the lake and local state
    #[arg(
        long,
        global = true,
        env = "BETFLOW_HOME",
        default_value = "./.betflow",
        value_name = "DIR"
    )]
    pub home: PathBuf,
    /// Task instances one process runs at once.
    #[arg(long, global = true, hide = true, env = "BETFLOW_PARALLELISM", default_value = "32",
          value_parser = |v: &str| at_least("BETFLOW_PARALLELISM", v, 1))]
    pub parallelism: u64,
    /// Worker threads of the runtime that serves the web (`up`, `bench
    /// web`); default half the cores, at least 1. The engine has a runtime
    /// of its own with a thread per core.
    #[arg(long, global = true, hide = true, env = "BETFLOW_WEB_THREADS",
          value_parser = |v: &str| at_least("BETFLOW_WEB_THREADS", v, 1))]
    pub web_threads: Option<u64>,
    /// CPUs kept for the engine (docs/scheduler.md, "Cores of its own"):
    /// `auto` (`up` keeps the last CPU when it may use two or more;
    /// `scheduler` none), `none`, or a list as `taskset -c` writes it
    /// (`1`, `2-3`). The engine's workers and, with the embedded Postgres,
    /// its backends run there; the web, the other database processes and
    /// the broker on the CPUs left. The benches place as `up` does.
    #[arg(long, global = true, hide = true, env = "BETFLOW_ENGINE_CPUS", default_value = "auto",
          value_parser = |v: &str| v.parse::<orchestrator::cpus::Keep>()
              .map_err(|e| format!("BETFLOW_ENGINE_CPUS: {e}")))]
    pub engine_cpus: orchestrator::cpus::Keep,
    /// Reverse proxies (addresses or CIDR blocks, comma-separated) whose
    /// `X-Forwarded-For` names the client, for the login limiter and the
    /// audit log; none by default.
    #[arg(long, global = true, hide = true, env = "BETFLOW_TRUSTED_PROXIES",
          default_value = "",
          value_parser = |v: &str| v.parse::<web::proxy::TrustedProxies>()
              .map_err(|e| format!("BETFLOW_TRUSTED_PROXIES: {e}")))]
    pub trusted_proxies: web::proxy::TrustedProxies,
    /// Longest scheduler/executor sleep when nothing wakes them, in ms.
    #[arg(long, global = true, hide = true, env = "BETFLOW_POLL_MS", default_value = "1000",
          value_parser = |v: &str| at_least("BETFLOW_POLL_MS", v, 10))]
    pub poll_ms: u64,
    /// Heartbeat period of a process and its running tasks, in seconds.
    #[arg(long, global = true, hide = true, env = "BETFLOW_HEARTBEAT_SECS", default_value = "2",
          value_parser = |v: &str| at_least("BETFLOW_HEARTBEAT_SECS", v, 1))]
    pub heartbeat_secs: u64,
    /// A running try whose heartbeat is older is failed and retried, in seconds.
    #[arg(long, global = true, hide = true, env = "BETFLOW_ZOMBIE_THRESHOLD_SECS", default_value = "30",
          value_parser = |v: &str| at_least("BETFLOW_ZOMBIE_THRESHOLD_SECS", v, 1))]
    pub zombie_threshold_secs: u64,
    /// On SIGINT/SIGTERM, how long running tries may finish, in seconds.
    #[arg(long, global = true, hide = true, env = "BETFLOW_SHUTDOWN_GRACE_SECS", default_value = "30",
          value_parser = |v: &str| at_least("BETFLOW_SHUTDOWN_GRACE_SECS", v, 0))]
    pub shutdown_grace_secs: u64,
    /// New DAGs start paused (Airflow's `dags_are_paused_at_creation`).
    #[arg(long, global = true, hide = true, env = "BETFLOW_PAUSED_AT_CREATION", default_value = "false",
          value_parser = |v: &str| flag("BETFLOW_PAUSED_AT_CREATION", v))]
    pub paused_at_creation: bool,
    /// Also load the `example_*` DAGs (Airflow's `load_examples`).
    #[arg(long, global = true, hide = true, env = "BETFLOW_LOAD_EXAMPLES", default_value = "false",
          value_parser = |v: &str| flag("BETFLOW_LOAD_EXAMPLES", v))]
    pub load_examples: bool,
    /// Events that alert where a DAG does not say (docs/alerts.md).
    #[arg(long, global = true, hide = true, env = "BETFLOW_NOTIFY_ON", default_value = "failure,deadline_miss",
          value_parser = alert_events)]
    pub alert_on: AlertEvents,
    /// The deployment's alert webhook (Slack-compatible).
    #[arg(long, global = true, hide = true, env = "BETFLOW_NOTIFY_WEBHOOK_URL",
          value_parser = |v: &str| http_url("BETFLOW_NOTIFY_WEBHOOK_URL", v))]
    pub alert_webhook_url: Option<String>,
    /// The deployment's alert email recipients, comma separated.
    #[arg(long, global = true, hide = true, env = "BETFLOW_NOTIFY_EMAIL_TO")]
    pub alert_email_to: Option<String>,
    /// The SMTP server alert email goes through: smtp://host:port or smtps://user:pass@host.
    #[arg(long, global = true, hide = true, env = "BETFLOW_SMTP_URL",
          value_parser = |v: &str| smtp_url("BETFLOW_SMTP_URL", v))]
    pub smtp_url: Option<String>,
    /// First wait before an undelivered alert is retried (it doubles), in ms.
    #[arg(long, global = true, hide = true, env = "BETFLOW_NOTIFY_BACKOFF_MS", default_value = "5000",
          value_parser = |v: &str| at_least("BETFLOW_NOTIFY_BACKOFF_MS", v, 10))]
    pub alert_backoff_ms: u64,
    /// The From address of alert email.
    #[arg(
        long,
        global = true,
        hide = true,
        env = "BETFLOW_NOTIFY_EMAIL_FROM",
        default_value = "betflow@localhost"
    )]
    pub alert_email_from: String,
}

/// The events of `BETFLOW_NOTIFY_ON`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertEvents(pub Vec<AlertEvent>);

fn alert_events(v: &str) -> Result<AlertEvents, String> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && *e != "none")
        .map(|e| {
            AlertEvent::parse(e).ok_or_else(|| {
                format!(
                    "BETFLOW_NOTIFY_ON={v:?}: {e:?} is not an event; use failure, retry, success, deadline_miss or none"
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(AlertEvents)
}

fn http_url(var: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.starts_with("http://") || v.starts_with("https://") {
        Ok(v.to_owned())
    } else {
        // The path of a webhook URL is its secret: never echo the value.
        Err(format!("{var} must be an http:// or https:// URL"))
    }
}

fn smtp_url(var: &str, v: &str) -> Result<String, String> {
    match services::notify::smtp_url_problem(v.trim()) {
        None => Ok(v.trim().to_owned()),
        // It may hold a password: name the problem, not the value.
        Some(problem) => Err(format!("{var} is not an SMTP server address: {problem}")),
    }
}

impl Settings {
    /// Worker threads for the runtime serving the web: the setting, else
    /// half the cores (at least one). The web gets a share of the cores,
    /// not all of them: each thread rendering pages under a flood of
    /// requests is one more runnable thread ahead of the scheduler's
    /// (`betflow bench web --mixed-seconds`, README "Benchmark").
    pub fn web_threads(&self) -> usize {
        match self.web_threads {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => (std::thread::available_parallelism().map_or(2, usize::from) / 2).max(1),
        }
    }

    /// Where `BETFLOW_ENGINE_CPUS` puts the engine and the rest, checked
    /// against the CPUs this process may use; `auto` as for a process that
    /// serves pages when `serves_pages`.
    pub fn placement(
        &self,
        serves_pages: bool,
    ) -> Result<Option<orchestrator::cpus::Placement>, String> {
        self.engine_cpus
            .placement(serves_pages)
            .map_err(|e| format!("BETFLOW_ENGINE_CPUS: {e}"))
    }

    /// The engine's settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            parallelism: self.parallelism as usize,
            poll_interval: Duration::from_millis(self.poll_ms),
            heartbeat_interval: Duration::from_secs(self.heartbeat_secs),
            zombie_threshold: Duration::from_secs(self.zombie_threshold_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            notifiers: self.notifiers(),
            alert_backoff: Duration::from_millis(self.alert_backoff_ms),
            ..EngineConfig::default()
        }
    }

    /// The deployment's alerts: what a DAG leaves unset.
    pub fn alerts(&self) -> Alerts {
        Alerts {
            on: self.alert_on.0.clone(),
            webhook_url: self.alert_webhook_url.clone(),
            email_to: self
                .alert_email_to
                .iter()
                .flat_map(|to| to.split(','))
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The process's alert channels. Email needs `BETFLOW_SMTP_URL`; without
    /// it, email alerts wait in the table and say so.
    fn notifiers(&self) -> Notifiers {
        match services::notify::notifiers(self.smtp_url.as_deref(), &self.alert_email_from) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("alerts cannot be delivered: {e:#}");
                Notifiers::default()
            }
        }
    }
}

/// A whole number of at least `min`.
fn at_least(var: &str, v: &str, min: u64) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "{var}={v:?} must be a whole number of at least {min}"
        )),
    }
}

/// `true`/`false` and their usual spellings.
fn flag(var: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{var}={v:?} must be true or false")),
    }
}

pub fn init_tracing(daemon: bool) {
    let default = if daemon {
        "info,sqlx=warn"
    } else {
        "warn,sqlx=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BETFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let err = at_least("BETFLOW_PARALLELISM", "0", 1).unwrap_err();
        assert!(err.contains("BETFLOW_PARALLELISM=\"0\""), "{err}");
        assert!(flag("BETFLOW_LOAD_EXAMPLES", "maybe").is_err());
        assert_eq!(flag("BETFLOW_LOAD_EXAMPLES", "TRUE"), Ok(true));
        assert_eq!(at_least("BETFLOW_POLL_MS", " 250 ", 10), Ok(250));
    }

    /// Every `BETFLOW_*`, `KAFKA_*`, `ODDS_API_KEY`, `OPENWEATHER_API_KEY`
    /// and `DATABASE_URL` the code names is in the README's configuration
    /// table (or documented beside it), so the table cannot drift.
    #[test]
    fn readme_lists_every_variable_the_code_reads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
        let mut named: BTreeSet<String> = BTreeSet::new();
        for dir in [
            "src",
            "orchestrator/src",
            "sources/src",
            "lakehouse/src",
            "streaming/src",
            "dags/src",
            "web/src",
        ] {
            collect(&root.join(dir), &mut named);
        }
        let missing: Vec<&String> = named
            .iter()
            .filter(|v| !readme.contains(v.as_str()))
            .collect();
        assert!(missing.is_empty(), "not in README.md: {missing:?}");
    }

    fn collect(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for quoted in text.split('"').skip(1).step_by(2) {
                    let is_var = ["BETFLOW_", "KAFKA_"].iter().any(|p| quoted.starts_with(p))
                        || matches!(
                            quoted,
                            "ODDS_API_KEY" | "OPENWEATHER_API_KEY" | "DATABASE_URL"
                        );
                    let whole = quoted
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                    if is_var && whole && !quoted.ends_with('_') {
                        out.insert(quoted.to_owned());
                    }
                }
            }
        }
    }
}
