//! The catch-up part of `betflow bench scheduler`: many hourly DAGs whose
//! start date is a day back, so the scheduler creates, starts and finishes a
//! day of runs of each at once. Prints how long each scheduler pass took
//! while it did, and how evenly the DAGs got their turn.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, DurationRound, Utc};
use orchestrator::engine::PassTimes;
use orchestrator::store::write::SyncOptions;
use orchestrator::{Dag, DagBag, EngineConfig, Node};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use services::database::Database;

use crate::scheduler::{noop, percentile};

/// Runs each DAG catches up: the hours of the day before now.
const HOURS: i64 = 24;

/// Prefix of the catch-up DAGs' ids, so a later bench can clear their runs.
const PREFIX: &str = "bench_hourly_";

#[derive(Serialize)]
pub(crate) struct CatchUpResult {
    dags: usize,
    runs: i64,
    tasks: i64,
    wall_secs: f64,
    passes: usize,
    pass_p50_ms: f64,
    pass_p99_ms: f64,
    pass_max_ms: f64,
    target_pass_p99_ms: f64,
    /// Seconds until every DAG had its first run done (the longest any DAG waited).
    all_dags_started_secs: f64,
    /// Seconds until the first DAG, and the last, had its whole day done.
    first_dag_done_secs: f64,
    last_dag_done_secs: f64,
}

/// An hourly DAG of three chained no-ops starting at `start`.
fn hourly(i: usize, start: DateTime<Utc>) -> Result<Dag> {
    let mut b = Dag::builder(format!("{PREFIX}{i:03}"))
        .schedule("0 * * * *", "UTC")
        .start_date(start)
        .catchup(true)
        .tags(&["bench"]);
    let nodes: Vec<Node> = ["extract", "transform", "load"]
        .into_iter()
        .map(|id| b.task(noop(id.to_owned())))
        .collect();
    b.chain(&nodes.iter().collect::<Vec<_>>());
    Ok(b.build()?)
}

/// `dags` hourly DAGs catch up a day through a fresh engine on `db`.
pub(crate) async fn run(
    db: &Database,
    engine: &EngineConfig,
    dags: usize,
) -> Result<CatchUpResult> {
    let start =
        (Utc::now() - chrono::Duration::hours(HOURS)).duration_trunc(chrono::Duration::hours(1))?;
    let mut bag = DagBag::new();
    for i in 0..dags {
        bag.add(hourly(i, start)?);
    }
    let opts = SyncOptions {
        mark_missing_stale: false,
        paused_at_creation: false,
    };
    db.store
        .sync_dags(&bag, opts)
        .await
        .context("recording the catch-up DAGs")?;
    // A day of runs from an earlier bench would leave nothing to catch up.
    sqlx::query("DELETE FROM dag_runs WHERE dag_id LIKE $1")
        .bind(format!("{PREFIX}%"))
        .execute(&db.pool)
        .await?;
    sqlx::query("UPDATE dags SET is_paused = false WHERE dag_id LIKE $1")
        .bind(format!("{PREFIX}%"))
        .execute(&db.pool)
        .await?;

    let passes = PassTimes::default();
    let mut config = engine.clone();
    config.run_streams = false;
    config.create_scheduled_runs = true;
    config.pass_times = Some(passes.clone());
    let token = CancellationToken::new();
    let began: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await?;
    let t0 = Instant::now();
    let engine = tokio::spawn(orchestrator::engine::run(
        db.store.clone(),
        bag,
        config,
        token.clone(),
    ));
    let expected = dags as i64 * HOURS;
    let done = wait_caught_up(db, expected, &engine).await;
    let wall = t0.elapsed().as_secs_f64();
    token.cancel();
    engine.await??;
    let runs = done?;

    let mut times: Vec<f64> = passes
        .take()
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let per_dag: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT min(end_date), max(end_date) FROM dag_runs
         WHERE dag_id LIKE $1 AND state = 'success' GROUP BY dag_id",
    )
    .bind(format!("{PREFIX}%"))
    .fetch_all(&db.pool)
    .await?;
    let secs = |t: DateTime<Utc>| (t - began).num_milliseconds() as f64 / 1000.0;
    let max_or_nan =
        |v: Vec<f64>, pick: fn(f64, f64) -> f64| v.into_iter().reduce(pick).unwrap_or(f64::NAN);
    Ok(CatchUpResult {
        dags,
        runs,
        tasks: runs * 3,
        wall_secs: wall,
        passes: times.len(),
        pass_p50_ms: percentile(&times, 0.50),
        pass_p99_ms: percentile(&times, 0.99),
        pass_max_ms: times.last().copied().unwrap_or(f64::NAN),
        target_pass_p99_ms: 100.0,
        all_dags_started_secs: max_or_nan(per_dag.iter().map(|d| secs(d.0)).collect(), f64::max),
        first_dag_done_secs: max_or_nan(per_dag.iter().map(|d| secs(d.1)).collect(), f64::min),
        last_dag_done_secs: max_or_nan(per_dag.iter().map(|d| secs(d.1)).collect(), f64::max),
    })
}

/// Wait until `expected` runs of the catch-up DAGs succeeded and none is
/// left to run; returns how many succeeded.
async fn wait_caught_up(
    db: &Database,
    expected: i64,
    engine: &tokio::task::JoinHandle<Result<(), orchestrator::store::StoreError>>,
) -> Result<i64> {
    let started = Instant::now();
    loop {
        // Off the run counts the triggers keep (migration 28): counting
        // the runs themselves ten times a second took a core's tenth from
        // the scheduler this measures.
        let (success, open, failed): (i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(runs) FILTER (WHERE state = 'success'), 0)::bigint,
                    coalesce(sum(runs) FILTER (WHERE state IN ('queued', 'running')), 0)::bigint,
                    coalesce(sum(runs) FILTER (WHERE state = 'failed'), 0)::bigint
             FROM dag_run_counts WHERE dag_id LIKE $1",
        )
        .bind(format!("{PREFIX}%"))
        .fetch_one(&db.pool)
        .await?;
        if failed > 0 {
            anyhow::bail!("{failed} catch-up runs failed");
        }
        if success >= expected && open == 0 {
            return Ok(success);
        }
        if engine.is_finished() {
            anyhow::bail!("the engine stopped during the catch-up");
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("catch-up not done in 600 s: {success} of {expected} runs succeeded");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl CatchUpResult {
    pub(crate) fn print(&self) -> Result<()> {
        outln!(
            "catch-up: {} hourly DAGs, {} runs ({} tasks) in {:.1}s; scheduler pass p50 {:.1} ms  p99 {:.1} ms (target < {} ms)  max {:.1} ms over {} passes",
            self.dags,
            self.runs,
            self.tasks,
            self.wall_secs,
            self.pass_p50_ms,
            self.pass_p99_ms,
            self.target_pass_p99_ms,
            self.pass_max_ms,
            self.passes
        );
        outln!(
            "catch-up fairness: every DAG had a run done by {:.1}s; first DAG caught up at {:.1}s, last at {:.1}s",
            self.all_dags_started_secs,
            self.first_dag_done_secs,
            self.last_dag_done_secs
        );
        Ok(())
    }
}
