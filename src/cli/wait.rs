//! Waiting for runs to end, executing them in-process when no scheduler is
//! running anywhere (as `airflow dags test` would), so `--wait` always ends.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use orchestrator::{DagBag, RunState, Store};
use tokio_util::sync::CancellationToken;

/// Block until every run in `run_ids` is success or failed; returns their states in order.
pub async fn until_finished(
    store: &Store,
    engine: orchestrator::EngineConfig,
    bag: &DagBag,
    dag_id: &str,
    run_ids: &[String],
    progress: bool,
) -> Result<Vec<RunState>> {
    let local = if store.has_live_worker().await? {
        None
    } else {
        eprintln!("no scheduler is running: executing in this process");
        let mut config = engine;
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
        let rows = store.run_states(dag_id, run_ids).await?;
        let count = |state: RunState| rows.iter().filter(|(_, s)| *s == state).count();
        let done = rows.iter().filter(|(_, s)| s.is_finished()).count();
        if let Some(bar) = &bar {
            let (running, failed) = (count(RunState::Running), count(RunState::Failed));
            bar.set_position(done as u64);
            bar.set_message(format!("({running} running, {failed} failed)"));
        }
        // Every run finished, in `run_ids` order (run ids are unique per DAG).
        let by_id: HashMap<&str, RunState> = rows.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        let finished: Option<Vec<RunState>> = run_ids
            .iter()
            .map(|id| by_id.get(id.as_str()).copied().filter(|s| s.is_finished()))
            .collect();
        if let Some(states) = finished {
            break states;
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
