//! `betflow runs …`

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use orchestrator::store::{CheckResultRow, RunFilter};
use orchestrator::RunState;
use serde_json::json;

use super::usage;
use crate::settings::Settings;
use services::database::Database;
use services::output;

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long)]
        dag: Option<String>,
        /// queued, running, success or failed.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 25)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One run: its task instances, tries, durations and quality-check results.
    Show {
        dag: String,
        run_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: &Settings, cmd: RunsCommand) -> Result<ExitCode> {
    let bag = super::dag_bag(settings)?;
    let mut state_filter: Option<RunState> = None;
    match &cmd {
        RunsCommand::List {
            dag, state, limit, ..
        } => {
            if let Some(d) = dag {
                super::dags::find_dag(&bag, d)?;
            }
            if let Some(s) = state {
                state_filter = Some(s.parse::<RunState>().map_err(|_| {
                    usage(format!(
                        "unknown state `{s}`: use queued, running, success or failed"
                    ))
                })?);
            }
            if *limit < 1 {
                return Err(usage("--limit must be at least 1"));
            }
        }
        RunsCommand::Show { dag, .. } => {
            super::dags::find_dag(&bag, dag)?;
        }
    }
    let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
    match cmd {
        RunsCommand::List {
            dag, limit, json, ..
        } => {
            let filter = RunFilter {
                dag_id: dag,
                state: state_filter,
                run_type: None,
                limit,
                offset: 0,
            };
            let (rows, total) = db.store.list_runs(&filter).await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"dag_runs": rows, "total_entries": total})
                    )?
                );
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        let duration = match (r.start_date, r.end_date) {
                            (Some(s), Some(e)) => Some((e - s).num_milliseconds() as f64 / 1000.0),
                            _ => None,
                        };
                        vec![
                            r.dag_id.clone(),
                            r.run_id.clone(),
                            r.state.to_string(),
                            r.run_type.clone(),
                            output::time(Some(r.logical_date)),
                            output::time(r.start_date),
                            output::secs(duration),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "dag_id",
                        "run_id",
                        "state",
                        "run_type",
                        "logical_date",
                        "start_date",
                        "duration",
                    ],
                    &table,
                )?;
                if total > rows.len() as i64 {
                    outln!("({} of {total} runs; use --limit)", rows.len());
                }
            }
        }
        RunsCommand::Show { dag, run_id, json } => {
            let Some(run) = db.store.run(&dag, &run_id).await? else {
                return Err(usage(format!("DAG `{dag}` has no run `{run_id}`")));
            };
            let tis = db.store.task_instances(&dag, &run_id).await?;
            let tries = db.store.task_tries(&dag, &run_id).await?;
            let checks = db.store.check_results(&dag, &run_id).await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "dag_run": run,
                        "task_instances": tis,
                        "tries": tries,
                        "quality_checks": checks,
                    }))?
                );
            } else {
                outln!(
                    "run {} of {}: {} ({})",
                    run.run_id,
                    run.dag_id,
                    run.state,
                    run.run_type
                );
                outln!(
                    "data interval: {} → {}",
                    run.data_interval_start.to_rfc3339(),
                    run.data_interval_end.to_rfc3339()
                );
                outln!(
                    "started {}  ended {}\n",
                    output::time(run.start_date),
                    output::time(run.end_date)
                );
                let rows: Vec<Vec<String>> = tis
                    .iter()
                    .map(|t| {
                        vec![
                            if t.map_index >= 0 {
                                format!("{} [{}]", t.task_id, t.map_index)
                            } else {
                                t.task_id.clone()
                            },
                            t.state.to_string(),
                            format!("{}/{}", t.try_number, t.max_tries + 1),
                            output::time(t.start_date),
                            output::time(t.end_date),
                            output::secs(t.duration),
                            t.worker_id.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "task_id", "state", "try", "start", "end", "duration", "worker",
                    ],
                    &rows,
                )?;
                print_checks(&checks)?;
                let failed: Vec<_> = tries.iter().filter(|t| t.error.is_some()).collect();
                if !failed.is_empty() {
                    outln!("\nFailed tries:");
                    for t in failed {
                        outln!(
                            "  {} try {}: {}",
                            t.task_id,
                            t.try_number,
                            t.error.as_deref().unwrap_or("")
                        );
                    }
                }
            }
        }
    }
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// The run's quality-check results, under its task instances; `result` is
/// `passed`, `failed` (error level) or `warn` (a failed warn-level check).
fn print_checks(checks: &[CheckResultRow]) -> Result<()> {
    if checks.is_empty() {
        return Ok(());
    }
    let failed = checks.iter().filter(|c| c.outcome() == "failed").count();
    let warned = checks.iter().filter(|c| c.outcome() == "warn").count();
    outln!(
        "\nQuality checks ({} passed, {failed} failed, {warned} warn):",
        checks.len() - failed - warned
    );
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.asset.clone(),
                c.check_name.clone(),
                c.severity.clone(),
                c.outcome().to_owned(),
                c.observed_label(),
                c.detail.clone(),
            ]
        })
        .collect();
    output::table(
        &["table", "check", "severity", "result", "observed", "detail"],
        &rows,
    )
}
