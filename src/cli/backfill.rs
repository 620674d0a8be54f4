//! `betflow backfill`: a backfill record over a date range
//! (`orchestrator::backfill`, the same one the UI and the API create).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use orchestrator::backfill::{
    self, BackfillError, BackfillRequest, PlannedAction, ReprocessBehavior, DEFAULT_MAX_ACTIVE_RUNS,
};
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
    /// What to do with runs that exist: `none` keeps them, `failed` re-runs the failed tasks of failed runs, `completed` re-runs every finished run.
    #[arg(long, default_value = "none", value_parser = parse_reprocess)]
    reprocess_behavior: ReprocessBehavior,
    /// Same as `--reprocess-behavior failed`.
    #[arg(long, conflicts_with = "reprocess_behavior")]
    rerun_failed: bool,
    /// How many of the backfill's runs may run at once.
    #[arg(long, default_value_t = DEFAULT_MAX_ACTIVE_RUNS)]
    max_active_runs: i32,
    /// Run the newest interval first.
    #[arg(long)]
    run_backwards: bool,
    /// Every run's conf, a JSON object.
    #[arg(long, default_value = "{}")]
    conf: String,
    /// Print the runs that would be created and re-run; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Wait for the runs with a progress bar, then print a summary.
    #[arg(long)]
    wait: bool,
}

fn parse_reprocess(s: &str) -> Result<ReprocessBehavior, String> {
    s.parse()
}

pub async fn run(settings: &Settings, args: BackfillArgs) -> Result<ExitCode> {
    let bag = super::dag_bag(settings)?;
    let dag = find_dag(&bag, &args.dag)?;
    let tz = dag.schedule.timezone();
    let from = orchestrator::schedule::parse_date(&args.from, tz)
        .map_err(|e| usage(format!("--from: {e}")))?;
    let to = orchestrator::schedule::parse_date(&args.to, tz)
        .map_err(|e| usage(format!("--to: {e}")))?;
    let conf =
        serde_json::from_str(&args.conf).map_err(|e| usage(format!("--conf is not JSON: {e}")))?;
    let request = BackfillRequest {
        from,
        to,
        run_backwards: args.run_backwards,
        conf,
        reprocess: if args.rerun_failed {
            ReprocessBehavior::Failed
        } else {
            args.reprocess_behavior
        },
        max_active_runs: args.max_active_runs,
        created_by: Some(format!("cli:{}", super::login())),
    };

    let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
    if args.dry_run {
        let plan = backfill::plan(&db.store, &dag, &request)
            .await
            .map_err(refused)?;
        outln!(
            "dry run: would create {} run(s), re-run {}, keep {} existing, leave {} in flight:",
            plan.count(PlannedAction::Create),
            plan.count(PlannedAction::Rerun),
            plan.count(PlannedAction::Keep),
            plan.count(PlannedAction::InFlight)
        );
        for run in &plan.runs {
            let verb = match run.action {
                PlannedAction::Create => "create   ",
                PlannedAction::Rerun => "re-run   ",
                PlannedAction::Keep => "keep     ",
                PlannedAction::InFlight => "in flight",
            };
            outln!("  {verb} {}", run.run_id);
        }
        db.close().await?;
        return Ok(ExitCode::SUCCESS);
    }
    let (created, plan) = backfill::create(&db.store, &dag, &request)
        .await
        .map_err(refused)?;
    let action = web::audit::Action {
        event: "backfill",
        dag_id: Some(&dag.id),
        extra: json!({
            "backfill_id": created.id,
            "created": plan.count(PlannedAction::Create),
            "rerun": plan.count(PlannedAction::Rerun),
            "kept": plan.count(PlannedAction::Keep),
        }),
        ..Default::default()
    };
    super::audit(&db, action).await;
    outln!(
        "backfill {} of {}: {} run(s) created, {} re-run, {} existing kept, {} in flight left alone \
         (at most {} at once{})",
        created.id,
        dag.id,
        plan.count(PlannedAction::Create),
        plan.count(PlannedAction::Rerun),
        plan.count(PlannedAction::Keep),
        plan.count(PlannedAction::InFlight),
        request.max_active_runs,
        if request.run_backwards {
            ", newest first"
        } else {
            ""
        }
    );
    let mut code = ExitCode::SUCCESS;
    if args.wait {
        let ids: Vec<String> = plan.effective().map(|r| r.run_id.clone()).collect();
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
    db.close().await?;
    Ok(code)
}

/// A request the backfill refused is the user's to fix (exit 2); a
/// database failure is not.
fn refused(e: BackfillError) -> anyhow::Error {
    match e {
        BackfillError::Store(e) => e.into(),
        other => usage(other.to_string()),
    }
}
