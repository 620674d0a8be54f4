//! `betflow bench web --mixed-seconds N`: the scheduler under web load.
//! One process serves the pages and the API and runs the engine, as
//! `betflow up` does; a 1,000-task chain is run over and over, first with
//! no web traffic for `--mixed-seconds`, then as long again while
//! `--mixed-clients` concurrent connections (wrk) load the DAGs page, a
//! grid, the runs API and the markets board.
//! Prints the scheduler's dispatch p99 both ways (goal: loaded under 2×
//! idle), each page's p99 under the mix, and what a disk flush costs
//! idle and under the load: every hop commits once, and a durable commit
//! waits for a WAL flush. Asserts nothing.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use orchestrator::store::write::RunType;
use orchestrator::{Dag, DagBag, DataInterval};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use services::database::Database;

use crate::scheduler::{dispatch_latencies, percentile, wait_success};
use crate::web::Mixed;

/// The DAG the scheduler runs during the mix: 1,000 no-op tasks in a chain,
/// so every hop is one scheduling decision and none waits for a slot.
pub const CHAIN_DAG: &str = "bench_mixed_chain";
pub const CHAIN_TASKS: usize = 1_000;

/// Dispatch latencies (ms, sorted) and run walls (s) of the chain's runs.
#[derive(Default)]
struct Runs {
    dispatch_ms: Vec<f64>,
    walls: Vec<f64>,
}

impl Runs {
    fn line(&self, label: &str) -> String {
        let mut walls = self.walls.clone();
        walls.sort_by(f64::total_cmp);
        format!(
            "{label:<14} {} runs of {CHAIN_TASKS} tasks: wall median {:.2}s, dispatch p50 {:.2} ms  p99 {:.2} ms",
            walls.len(),
            walls.get(walls.len() / 2).copied().unwrap_or(f64::NAN),
            percentile(&self.dispatch_ms, 0.50),
            percentile(&self.dispatch_ms, 0.99)
        )
    }
}

/// Runs the chain once at logical date `at`; adds its figures to `runs`.
async fn run_chain(db: &Database, dag: &Dag, at: DateTime<Utc>, runs: &mut Runs) -> Result<()> {
    let interval = DataInterval { start: at, end: at };
    let run_id = db
        .store
        .create_run(dag, RunType::Manual, interval, &json!({}))
        .await?
        .context("bench run id collided")?;
    runs.walls
        .push(wait_success(&db.pool, &dag.id, &run_id).await?);
    runs.dispatch_ms
        .extend(dispatch_latencies(&db.pool, dag, &run_id).await?);
    runs.dispatch_ms.sort_by(f64::total_cmp);
    Ok(())
}

/// From the load's start to the chain's first loaded run: wrk's ramp-up
/// (half a second) and the flush probe (at most [`FLUSH_PROBE_LIMIT`]).
const LOAD_LEAD: Duration = Duration::from_secs(3);

/// Flushes timed at most per probe, and the longest a probe lasts.
const FLUSHES: usize = 200;
const FLUSH_PROBE_LIMIT: Duration = Duration::from_secs(2);

/// Durations (ms, sorted) of disk flushes in `dir`: an 8 KiB write and
/// `fdatasync`, as Postgres flushes its WAL for a durable commit. On a
/// virtual machine whose block completions wait for a free core, this is
/// what every hop pays once a load keeps all cores busy.
fn flush_latencies(dir: &Path) -> Result<Vec<f64>> {
    let path = dir.join("flush-probe");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let block = [0u8; 8192];
    let mut ms = Vec::with_capacity(FLUSHES);
    let began = Instant::now();
    while ms.len() < FLUSHES && began.elapsed() < FLUSH_PROBE_LIMIT {
        let start = Instant::now();
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&block)?;
        file.sync_data()
            .with_context(|| format!("flushing {}", path.display()))?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

async fn probe_flushes(dir: &Path) -> Result<Vec<f64>> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || flush_latencies(&dir)).await?
}

fn flush_line(label: &str, ms: &[f64]) -> String {
    format!(
        "{label:<14} {} flushes: p50 {:.3} ms  p99 {:.3} ms",
        ms.len(),
        percentile(ms, 0.50),
        percentile(ms, 0.99)
    )
}

/// Runs `wrk` to its end on a thread of its own, placed on `cpus` first
/// when given, so that wrk starts there whatever this process's threads
/// are placed on.
pub(crate) fn spawn_load(
    mut wrk: std::process::Command,
    cpus: Option<orchestrator::cpus::Cpus>,
) -> tokio::sync::oneshot::Receiver<std::io::Result<std::process::Output>> {
    let (done, out) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let ran = match cpus.map(|c| c.pin_this_thread()) {
            Some(Err(e)) => Err(std::io::Error::other(e)),
            _ => wrk.output(),
        };
        let _ = done.send(ran);
    });
    out
}

/// `url` with `synchronous_commit = off` on every session it opens.
fn without_flush_wait(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[synchronous_commit]=off")
}

/// The mixed phase against the server on `port`, authenticated by
/// the `Cookie:` header `cookie`; the disk flushes are timed in `probe_dir`.
pub async fn run(
    db: &Database,
    bag: &DagBag,
    mixed: &Mixed,
    port: u16,
    cookie: &str,
    paths: &[String],
    probe_dir: &Path,
) -> Result<()> {
    let (seconds, clients) = (mixed.seconds, mixed.clients);
    let dag = bag.get(CHAIN_DAG).context("the mixed chain DAG")?.clone();
    let mut config = mixed.engine.clone();
    // Placed as `betflow up` places them (`crate::web::run` placed this
    // process and the cluster); the load generator, which stands for
    // clients elsewhere, keeps every CPU.
    let mut wrk_cpus = None;
    if let Some(placed) = config.cpus.as_mut() {
        placed.backends &= db.is_embedded();
        wrk_cpus = Some(placed.placement.all());
    }
    config.run_streams = false;
    config.create_scheduled_runs = false;
    let token = CancellationToken::new();
    let engine_url = if mixed.async_commit {
        without_flush_wait(&db.url)
    } else {
        db.url.clone()
    };
    let mixed_cpus = config.cpus.clone();
    // As `betflow up` runs it: on a thread, runtime and pool of its own.
    let engine_thread =
        orchestrator::engine::spawn_dedicated(engine_url, 20, bag.clone(), config, token.clone())?;

    // Run ids carry the logical date to the second: one second apart each.
    let mut at = Utc::now();
    let mut next = || {
        at += chrono::Duration::seconds(1);
        at
    };
    // Idle for as long as the load will last, so that what the database
    // does in the background (autovacuum of the chain's own rows,
    // checkpoints) falls in both figures alike.
    let idle_flushes = probe_flushes(probe_dir).await?;
    let mut idle = Runs::default();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until || idle.walls.is_empty() {
        run_chain(db, &dag, next(), &mut idle).await?;
    }

    // One wrk per path, the clients shared out between them.
    let per_path = (clients / paths.len().max(1)).max(1);
    let mut loads = Vec::new();
    for path in paths {
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut wrk = std::process::Command::new("wrk");
        wrk.args(["-t", "1", "-c", &per_path.to_string()])
            .args([
                "-d",
                // The load also covers the ramp-up and the flush probe
                // before the chain's runs, and the last run's overrun.
                &format!("{}s", seconds + LOAD_LEAD.as_secs() + 10),
                "--latency",
                "--timeout",
                "10s",
            ])
            .args(["-H", cookie, &url]);
        loads.push((path.clone(), spawn_load(wrk, wrk_cpus.clone())));
    }
    // Once wrk has its connections open; then the chain runs for as long
    // as it ran idle, all of it under the load.
    let lead = Instant::now() + LOAD_LEAD;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_flushes = probe_flushes(probe_dir).await?;
    tokio::time::sleep_until(lead.into()).await;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut loaded = Runs::default();
    while Instant::now() < until || loaded.walls.is_empty() {
        run_chain(db, &dag, next(), &mut loaded).await?;
    }
    outln!(
        "mixed: the scheduler runs a {CHAIN_TASKS}-task chain while {} connections load {} paths for {seconds}s",
        per_path * paths.len(),
        paths.len()
    );
    if let Some(placed) = &mixed_cpus {
        outln!(
            "the engine's workers{} on CPUs {}, the web and the database's other processes on {}, wrk on any (BETFLOW_ENGINE_CPUS)",
            if placed.backends { " and Postgres backends" } else { "" },
            placed.placement.engine,
            placed.placement.rest
        );
    }
    if mixed.async_commit {
        outln!("the engine's sessions commit without waiting for the WAL flush (--mixed-async-commit); `betflow up` never does");
    }
    outln!("{}", idle.line("idle"));
    outln!("{}", loaded.line("under load"));
    let ratio = percentile(&loaded.dispatch_ms, 0.99) / percentile(&idle.dispatch_ms, 0.99);
    outln!("dispatch p99 under load / idle: {ratio:.2}× (goal < 2×)");
    outln!(
        "disk flush (8 KiB write + fdatasync beside the cluster; a durable commit waits for one):"
    );
    outln!("{}", flush_line("  idle", &idle_flushes));
    outln!("{}", flush_line("  under load", &loaded_flushes));
    for (path, load) in loads {
        let out = load.await?.context("running wrk")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pick = |key: &str| -> String {
            text.lines()
                .find(|l| l.trim_start().starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_owned()
        };
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?");
        let errors = text
            .lines()
            .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
            .collect::<Vec<_>>()
            .join("; ");
        outln!(
            "  {path:<40} p50 {:>9}  p99 {:>9}  {rps:>8} req/s {errors}",
            pick("50%"),
            pick("99%")
        );
    }
    token.cancel();
    tokio::task::spawn_blocking(move || engine_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgConnectOptions;

    fn options_of(url: &str) -> Option<String> {
        let opts: PgConnectOptions = url.parse().expect("a valid URL");
        opts.get_options().map(str::to_owned)
    }

    #[test]
    fn the_async_commit_diagnostic_sets_synchronous_commit_on_the_engines_sessions() {
        let plain = without_flush_wait("postgres://betflow:pw@127.0.0.1:5432/betflow");
        assert_eq!(
            options_of(&plain).as_deref(),
            Some("-c synchronous_commit=off")
        );
        let with_query =
            without_flush_wait("postgres://betflow:pw@127.0.0.1:5432/betflow?sslmode=disable");
        assert!(
            with_query.contains("?sslmode=disable&options"),
            "{with_query}"
        );
        assert_eq!(
            options_of(&with_query).as_deref(),
            Some("-c synchronous_commit=off")
        );
    }

    #[test]
    fn flushes_are_timed_in_the_given_directory_and_leave_no_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ms = flush_latencies(dir.path()).expect("flushes");
        assert!(!ms.is_empty());
        assert!(ms.windows(2).all(|w| w[0] <= w[1]), "sorted");
        assert!(ms.iter().all(|m| m.is_finite() && *m >= 0.0));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
