//! Settings read from the environment, in one place so the README's table
//! and the code agree.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use orchestrator::EngineConfig;

/// `BETFLOW_HOME`, default `./.betflow`.
pub fn default_home() -> PathBuf {
    std::env::var_os("BETFLOW_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".betflow"))
}

fn env_num(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .with_context(|| format!("{name}={v:?} is not a non-negative integer")),
        Err(_) => Ok(None),
    }
}

/// Engine settings from `BETFLOW_*` variables over the defaults.
pub fn engine_config() -> Result<EngineConfig> {
    let mut c = EngineConfig::default();
    if let Some(n) = env_num("BETFLOW_PARALLELISM")? {
        c.parallelism = n.max(1) as usize;
    }
    if let Some(ms) = env_num("BETFLOW_POLL_MS")? {
        c.poll_interval = Duration::from_millis(ms.max(10));
    }
    if let Some(s) = env_num("BETFLOW_HEARTBEAT_SECS")? {
        c.heartbeat_interval = Duration::from_secs(s.max(1));
    }
    if let Some(s) = env_num("BETFLOW_ZOMBIE_THRESHOLD_SECS")? {
        c.zombie_threshold = Duration::from_secs(s.max(1));
    }
    if let Some(s) = env_num("BETFLOW_SHUTDOWN_GRACE_SECS")? {
        c.shutdown_grace = Duration::from_secs(s);
    }
    Ok(c)
}

/// `BETFLOW_LOAD_EXAMPLES=true` adds the example DAGs (as Airflow's load_examples).
pub fn load_examples() -> bool {
    matches!(
        std::env::var("BETFLOW_LOAD_EXAMPLES").as_deref(),
        Ok("1" | "true" | "TRUE" | "yes")
    )
}

/// `BETFLOW_PAUSED_AT_CREATION=true`: DAGs seen for the first time start paused.
pub fn paused_at_creation() -> bool {
    matches!(
        std::env::var("BETFLOW_PAUSED_AT_CREATION").as_deref(),
        Ok("1" | "true" | "TRUE" | "yes")
    )
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
