//! `betflow backfill`: runs for every schedule interval in a date range.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use orchestrator::store::write::{run_id_for, RunType};
use orchestrator::RunState;
use serde_json::json;

use super::dags::find_dag;
use super::{usage, wait};
use crate::settings::Settings;
use services::database::Database;

#[derive(Args)]
pub struct BackfillArgs {
    dag: String,
    /// First logical date (RFC 3339 or YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: String,
    /// Last logical date, inclusive.
    #[arg(long)]
    to: String,
    /// Clear and re-run the failed task instances of existing failed runs.
    #[arg(long)]
    rerun_failed: bool,
    /// Print the runs that would be created; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait for the runs with a progress bar, then print a summary.
    #[arg(long)]
    wait: bool,
}

/// Upper bound on runs one backfill creates, against typos like `--to 2204-01-01`.
const MAX_RUNS: usize = 10_000;

pub async fn run(settings: &Settings, args: BackfillArgs) -> Result<ExitCode> {
    let bag = super::dag_bag(settings)?;
    let dag = find_dag(&bag, &args.dag)?;
    if dag.schedule.expression().is_none() {
        return Err(usage(format!(
            "DAG `{}` has no schedule, so it has no intervals to backfill",
            dag.id
        )));
    }
    let tz = dag.schedule.timezone();
    let from = orchestrator::schedule::parse_date(&args.from, tz)
        .map_err(|e| usage(format!("--from: {e}")))?;
    let to = orchestrator::schedule::parse_date(&args.to, tz)
        .map_err(|e| usage(format!("--to: {e}")))?;
    if from > to {
        return Err(usage(format!(
            "--from {} is after --to {}",
            args.from, args.to
        )));
    }
    let intervals = dag.schedule.intervals_between(from, to, MAX_RUNS + 1);
    if intervals.len() > MAX_RUNS {
        return Err(usage(format!(
            "the range holds more than {MAX_RUNS} intervals; split it"
        )));
    }
    if intervals.is_empty() {
        outln!("no schedule interval of {} starts in that range", dag.id);
        return Ok(ExitCode::SUCCESS);
    }

    let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
    let existing = db
        .store
        .run_states_between(
            &dag.id,
            from,
            intervals.last().map(|i| i.start).unwrap_or(to),
        )
        .await?;
    let (mut created, mut kept, mut rerun) = (Vec::new(), Vec::new(), Vec::new());
    for interval in &intervals {
        match existing.iter().find(|r| r.logical_date == interval.start) {
            Some(r) if args.rerun_failed && r.state == RunState::Failed => {
                rerun.push(r.run_id.clone())
            }
            Some(r) => kept.push(r.run_id.clone()),
            None => {
                if args.dry_run {
                    created.push(run_id_for(RunType::Backfill, interval.start));
                } else if let Some(id) = db
                    .store
                    .create_run(&dag, RunType::Backfill, *interval, &json!({}))
                    .await?
                {
                    created.push(id);
                }
            }
        }
    }
    if args.dry_run {
        outln!(
            "dry run: would create {} run(s), re-run {}, keep {} existing:",
            created.len(),
            rerun.len(),
            kept.len()
        );
        for id in &created {
            outln!("  create {id}");
        }
        for id in &rerun {
            outln!("  re-run {id}");
        }
        for id in &kept {
            outln!("  keep   {id}");
        }
        db.close().await?;
        return Ok(ExitCode::SUCCESS);
    }
    for run_id in &rerun {
        let failed = db.store.failed_task_ids(&dag.id, run_id).await?;
        db.store.clear_tasks(&dag, run_id, &failed).await?;
    }
    let action = web::audit::Action {
        event: "backfill",
        dag_id: Some(&dag.id),
        extra: json!({"created": created, "rerun": rerun, "kept": kept.len()}),
        ..Default::default()
    };
    super::audit(&db, action).await;
    outln!(
        "backfill of {}: {} run(s) created, {} failed run(s) re-run, {} existing run(s) kept",
        dag.id,
        created.len(),
        rerun.len(),
        kept.len()
    );
    let mut code = ExitCode::SUCCESS;
    if args.wait {
        let ids: Vec<String> = created.iter().chain(rerun.iter()).cloned().collect();
        if !ids.is_empty() {
            let states = wait::until_finished(
                &db.store,
                settings.engine_config(),
                &bag,
                &dag.id,
                &ids,
                true,
            )
            .await?;
            let ok = states.iter().filter(|s| **s == RunState::Success).count();
            let failed = states.len() - ok;
            outln!("summary: {ok} succeeded, {failed} failed");
            if failed > 0 {
                code = ExitCode::FAILURE;
            }
        }
    }
    db.close().await?;
    Ok(code)
}
