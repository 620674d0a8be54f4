//! `betflow bench scheduler`: trigger-to-success time, throughput and
//! task-to-task dispatch latency through the real scheduler and executor on
//! Postgres, plus the idle scheduler's CPU and memory. Prints figures; asserts nothing.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use orchestrator::store::write::RunType;
use orchestrator::{
    task_fn, typed_fn, Dag, DagBag, DataInterval, Node, Output, TaskSpec, TypedSpec,
};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use services::database::Database;

/// A benchmark shape: its DAG id, task count, and the target from the issue.
struct Shape {
    id: &'static str,
    tasks: usize,
    target_secs: f64,
}

const SHAPES: [Shape; 6] = [
    Shape {
        id: "bench_chain_20",
        tasks: 20,
        target_secs: 0.25,
    },
    Shape {
        id: "bench_fanout_100",
        tasks: 102,
        target_secs: 0.16,
    },
    Shape {
        id: "bench_fanout_1000",
        tasks: 1002,
        target_secs: 3.0,
    },
    Shape {
        id: "bench_chain_100",
        tasks: 100,
        target_secs: f64::NAN,
    },
    Shape {
        id: "bench_fanout_10000",
        tasks: 10_002,
        target_secs: 3.0,
    },
    Shape {
        id: "bench_mapped_10000",
        tasks: 10_002,
        target_secs: 3.0,
    },
];

pub(crate) fn noop(id: String) -> TaskSpec {
    TaskSpec::new(id, task_fn(|_| async { Ok(Value::Null) }))
}

pub(crate) fn chain(id: &str, n: usize) -> Result<Dag> {
    let mut b = Dag::builder(id).max_active_tasks(10_000).tags(&["bench"]);
    let nodes: Vec<Node> = (0..n).map(|i| b.task(noop(format!("t{i:03}")))).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    b.chain(&refs);
    Ok(b.build()?)
}

fn fanout(id: &str, width: usize) -> Result<Dag> {
    let mut b = Dag::builder(id).max_active_tasks(10_000).tags(&["bench"]);
    let start = b.task(noop("start".into()));
    let end = b.task(noop("end".into()));
    for i in 0..width {
        let mid = b.task(noop(format!("mid{i:05}")));
        b.edge(&start, &mid);
        b.edge(&mid, &end);
    }
    Ok(b.build()?)
}

/// 1 → n → 1 where the n are one task mapped over the list `start` returns.
fn mapped(id: &str, width: usize) -> Result<Dag> {
    let mut b = Dag::builder(id).max_active_tasks(10_000).tags(&["bench"]);
    let items: Output<Vec<usize>> = b.add(TypedSpec::new(
        "start",
        typed_fn(move |_| async move { Ok((0..width).collect::<Vec<usize>>()) }),
    ));
    let mids: Output<Vec<()>> = b.add_mapped(
        TypedSpec::new("mid", typed_fn(|_| async { Ok(()) }))
            .expand_over(&items)
            .max_map_length(width),
    );
    b.add(TypedSpec::new("end", typed_fn(|_| async { Ok(()) })).reads(&mids));
    Ok(b.build()?)
}

#[derive(Serialize)]
struct ShapeResult {
    shape: String,
    tasks: usize,
    wall_secs_median: f64,
    wall_secs_all: Vec<f64>,
    tasks_per_sec: f64,
    dispatch_p50_ms: f64,
    dispatch_p99_ms: f64,
    target_wall_secs: Option<f64>,
}

#[derive(Serialize)]
struct IdleResult {
    seconds: u64,
    cpu_percent: f64,
    rss_mb: f64,
}

/// What `bench scheduler` runs.
pub struct Options {
    pub as_json: bool,
    /// Runs per shape; the median wall time is reported.
    pub repeat: usize,
    pub idle_secs: u64,
    /// Hourly DAGs catching up a day (0: no catch-up).
    pub catchup_dags: usize,
    /// Only these shapes (DAG ids); every shape when empty.
    pub shapes: Vec<String>,
}

pub async fn run(
    home: &Path,
    engine: orchestrator::EngineConfig,
    opts: Options,
) -> Result<ExitCode> {
    let Options {
        as_json,
        repeat,
        idle_secs,
        catchup_dags,
        shapes,
    } = opts;
    if let Some(unknown) = shapes
        .iter()
        .find(|s| !SHAPES.iter().any(|k| k.id == s.as_str()))
    {
        let known: Vec<&str> = SHAPES.iter().map(|k| k.id).collect();
        bail!("no shape `{unknown}`; the shapes are {}", known.join(", "));
    }
    let mut bag = DagBag::new();
    bag.add(chain("bench_chain_20", 20)?);
    bag.add(fanout("bench_fanout_100", 100)?);
    bag.add(fanout("bench_fanout_1000", 1000)?);
    bag.add(chain("bench_chain_100", 100)?);
    bag.add(fanout("bench_fanout_10000", 10_000)?);
    bag.add(mapped("bench_mapped_10000", 10_000)?);

    // A cluster of its own under the home, so benchmark runs never mix with real ones.
    let bench_home = home.join("bench");
    std::fs::create_dir_all(&bench_home)
        .with_context(|| format!("creating {}", bench_home.display()))?;
    let db = Database::open_isolated(&bench_home, &bag).await?;
    let store = db.store.clone();
    let mut config = engine.clone();
    config.run_streams = false;
    config.create_scheduled_runs = false;
    let token = CancellationToken::new();
    let engine_task = tokio::spawn(orchestrator::engine::run(
        store.clone(),
        bag.clone(),
        config,
        token.clone(),
    ));

    let mut results = Vec::new();
    let mut base = Utc::now();
    let mut timed_any = false;
    for shape in SHAPES
        .iter()
        .filter(|k| shapes.is_empty() || shapes.iter().any(|s| s == k.id))
    {
        let dag = bag.get(shape.id).context("bench DAG missing")?.clone();
        let mut walls = Vec::new();
        let mut latencies = Vec::new();
        for _ in 0..repeat.max(1) {
            // A fresh database has nothing to vacuum.
            if timed_any {
                vacuum_task_tables(&db.pool).await?;
            }
            timed_any = true;
            base += chrono::Duration::seconds(1);
            let interval = DataInterval {
                start: base,
                end: base,
            };
            let run_id = store
                .create_run(&dag, RunType::Manual, interval, &json!({}))
                .await?
                .context("bench run id collided")?;
            let wall = wait_success(&db.pool, &dag.id, &run_id).await?;
            walls.push(wall);
            latencies.extend(dispatch_latencies(&db.pool, &dag, &run_id).await?);
        }
        walls.sort_by(f64::total_cmp);
        latencies.sort_by(f64::total_cmp);
        let median = walls[walls.len() / 2];
        let r = ShapeResult {
            shape: shape.id.to_owned(),
            tasks: shape.tasks,
            wall_secs_median: median,
            wall_secs_all: walls,
            tasks_per_sec: shape.tasks as f64 / median,
            dispatch_p50_ms: percentile(&latencies, 0.50),
            dispatch_p99_ms: percentile(&latencies, 0.99),
            target_wall_secs: (!shape.target_secs.is_nan()).then_some(shape.target_secs),
        };
        if !as_json {
            outln!(
                "{:<18} {:>5} tasks  wall {:>7.3}s (target {})  {:>8.0} tasks/s  dispatch p50 {:>6.2} ms  p99 {:>6.2} ms",
                r.shape,
                r.tasks,
                r.wall_secs_median,
                r.target_wall_secs.map(|t| format!("< {t}s")).unwrap_or_else(|| "-".into()),
                r.tasks_per_sec,
                r.dispatch_p50_ms,
                r.dispatch_p99_ms
            );
        }
        results.push(r);
    }

    let idle = measure_idle(idle_secs).await?;
    token.cancel();
    engine_task.await??;
    let catchup = if catchup_dags > 0 {
        Some(crate::catchup::run(&db, &engine, catchup_dags).await?)
    } else {
        None
    };
    if !as_json {
        outln!(
            "idle scheduler over {}s: cpu {:.2}% (target < 2%), rss {:.1} MB (target < 60 MB)",
            idle.seconds,
            idle.cpu_percent,
            idle.rss_mb
        );
        if let Some(c) = &catchup {
            c.print()?;
        }
        outln!("dispatch = a task's start minus its last upstream's end; in fan-outs it includes waiting for a free slot (BETFLOW_PARALLELISM)");
        outln!("reference: Apache Airflow 3.3.2 (LocalExecutor, Postgres, 2 cores): ~24 s for the 20-chain, ~16 s for 1 → 100 → 1");
    } else {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"shapes": results, "idle": idle, "catchup": catchup})
            )?
        );
    }
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Vacuums what earlier runs left behind before a run is timed. In a
/// deployment autovacuum does this between runs of a DAG; back to back,
/// each repeat of a 10,000-wide shape would find its queue index's head
/// full of the earlier repeats' dead entries, and every claim would walk
/// them (docs/scheduler.md, "Claiming"): the third repeat took 50 % longer
/// than the first.
async fn vacuum_task_tables(pool: &sqlx::PgPool) -> Result<()> {
    // Not ANALYZE: statistics of the bench shapes' few runs would then plan
    // the catch-up's thousands of runs as if they were still a few.
    sqlx::raw_sql("VACUUM task_instances, task_tries, task_logs, xcom")
        .execute(pool)
        .await
        .context("vacuuming the task tables between runs")?;
    Ok(())
}

/// Seconds from the run's creation to its end, by the database clock.
pub(crate) async fn wait_success(pool: &sqlx::PgPool, dag_id: &str, run_id: &str) -> Result<f64> {
    let started = Instant::now();
    loop {
        let row: (String, DateTime<Utc>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT state, queued_at, end_date FROM dag_runs WHERE dag_id = $1 AND run_id = $2",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch_one(pool)
        .await?;
        match (row.0.as_str(), row.2) {
            ("success", Some(end)) => {
                return Ok((end - row.1).num_microseconds().unwrap_or(0) as f64 / 1e6)
            }
            ("failed", _) => anyhow::bail!("bench run {run_id} failed"),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("bench run {run_id} did not finish in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(sqlx::FromRow)]
struct TaskTimes {
    task_id: String,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
}

/// A task's instances (one, or a mapped task's many): their starts, and
/// the end of the last of them.
#[derive(Default)]
struct Instances {
    starts: Vec<DateTime<Utc>>,
    last_end: Option<DateTime<Utc>>,
}

/// For every task instance with upstreams: its start minus its last
/// upstream's end (a mapped upstream's last instance), in ms.
pub(crate) async fn dispatch_latencies(
    pool: &sqlx::PgPool,
    dag: &Dag,
    run_id: &str,
) -> Result<Vec<f64>> {
    let rows: Vec<TaskTimes> = sqlx::query_as(
        "SELECT task_id, start_date, end_date FROM task_instances WHERE dag_id = $1 AND run_id = $2",
    )
    .bind(&dag.id)
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    let mut tasks: std::collections::HashMap<String, Instances> = Default::default();
    for r in rows {
        let t = tasks.entry(r.task_id).or_default();
        t.starts.extend(r.start_date);
        t.last_end = t.last_end.max(r.end_date);
    }
    let mut out = Vec::new();
    for t in dag.tasks() {
        let Some(me) = tasks.get(&t.id) else {
            continue;
        };
        let last_up = t
            .upstream
            .iter()
            .filter_map(|u| tasks.get(u).and_then(|i| i.last_end))
            .max();
        if let Some(up_end) = last_up {
            out.extend(
                me.starts
                    .iter()
                    .map(|s| (*s - up_end).num_microseconds().unwrap_or(0) as f64 / 1000.0),
            );
        }
    }
    Ok(out)
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[idx]
}

/// CPU share and resident memory of this process while the engine idles.
async fn measure_idle(seconds: u64) -> Result<IdleResult> {
    let cpu = || -> Result<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        let after_comm = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let utime: f64 = fields.get(11).context("utime")?.parse()?;
        let stime: f64 = fields.get(12).context("stime")?.parse()?;
        Ok((utime + stime) / 100.0) // clock ticks of 10 ms on Linux
    };
    let before = cpu()?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let used = cpu()? - before;
    let elapsed = t0.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok(IdleResult {
        seconds,
        cpu_percent: used / elapsed * 100.0,
        rss_mb: rss_kb / 1024.0,
    })
}
