//! Waiting for runs to end, executing them in-process when no scheduler is
//! running anywhere (as `airflow dags test` would), so `--wait` always ends.

use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use orchestrator::{DagBag, Store};
use tokio_util::sync::CancellationToken;

/// Is any engine heartbeating against this database?
pub async fn live_worker(store: &Store) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workers WHERE stopped_at IS NULL AND heartbeat_at > now() - interval '10 seconds'",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(n > 0)
}

/// Block until every run in `run_ids` is success or failed; returns their states in order.
pub async fn until_finished(
    store: &Store,
    bag: &DagBag,
    dag_id: &str,
    run_ids: &[String],
    progress: bool,
) -> Result<Vec<String>> {
    let local = if live_worker(store).await? {
        None
    } else {
        eprintln!("no scheduler is running: executing in this process");
        let mut config = crate::config::engine_config()?;
        config.run_streams = false;
        config.create_scheduled_runs = false;
        let token = CancellationToken::new();
        let handle = tokio::spawn(orchestrator::engine::run(
            store.clone(),
            bag.only(dag_id),
            config,
            token.clone(),
        ));
        Some((token, handle))
    };
    let bar = progress.then(|| {
        let bar = ProgressBar::new(run_ids.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let states = loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT run_id, state FROM dag_runs WHERE dag_id = $1 AND run_id = ANY($2)",
        )
        .bind(dag_id)
        .bind(run_ids)
        .fetch_all(store.pool())
        .await?;
        let done = rows
            .iter()
            .filter(|(_, s)| s == "success" || s == "failed")
            .count();
        if let Some(bar) = &bar {
            let running = rows.iter().filter(|(_, s)| s == "running").count();
            let failed = rows.iter().filter(|(_, s)| s == "failed").count();
            bar.set_position(done as u64);
            bar.set_message(format!("({running} running, {failed} failed)"));
        }
        if done == run_ids.len() {
            let by_id: std::collections::HashMap<_, _> = rows.into_iter().collect();
            break run_ids
                .iter()
                .map(|r| by_id.get(r).cloned().unwrap_or_default())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some((token, handle)) = local {
        token.cancel();
        handle.await??;
    }
    Ok(states)
}
