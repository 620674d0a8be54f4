//! `betflow dags …`

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;
use clap::Subcommand;
use orchestrator::dag::TaskKind;
use orchestrator::store::write::RunType;
use orchestrator::{Dag, DagBag, RunState};
use serde_json::{json, Value};

use super::{usage, wait};
use crate::settings::Settings;
use services::database::Database;
use services::output;

#[derive(Subcommand)]
pub enum DagsCommand {
    /// Every DAG with its schedule, paused flag and tags.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A DAG's settings, tasks and edges.
    Show { dag: String },
    /// Stop creating and starting runs of a DAG.
    Pause { dag: String },
    /// Resume a paused DAG.
    Unpause { dag: String },
    /// Create a manual run.
    Trigger {
        dag: String,
        /// RFC 3339 or YYYY-MM-DD (midnight in the DAG's timezone); default now.
        #[arg(long)]
        logical_date: Option<String>,
        /// JSON object merged over the DAG's params.
        #[arg(long)]
        conf: Option<String>,
        /// Block until the run ends; exit 1 if it failed.
        #[arg(long)]
        wait: bool,
    },
}

/// The DAG called `id`, or a usage error naming it.
pub fn find_dag(bag: &DagBag, id: &str) -> Result<Arc<Dag>> {
    bag.get(id).cloned().ok_or_else(|| {
        let known: Vec<&str> = bag.dags().map(|d| d.id.as_str()).collect();
        usage(format!("unknown DAG `{id}` (known: {})", known.join(", ")))
    })
}

pub fn parse_conf(conf: Option<&str>) -> Result<Value> {
    match conf {
        None => Ok(json!({})),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(usage(
                "--conf must be a JSON object, e.g. '{\"sports\": [\"nfl\"]}'",
            )),
            Err(e) => Err(usage(format!("--conf is not valid JSON: {e}"))),
        },
    }
}

pub async fn run(settings: &Settings, cmd: DagsCommand) -> Result<ExitCode> {
    let bag = super::dag_bag(settings)?;
    // Validate ids before touching the database, so a typo writes nothing.
    match &cmd {
        DagsCommand::Show { dag } => {
            show(find_dag(&bag, dag)?.as_ref())?;
            return Ok(ExitCode::SUCCESS);
        }
        DagsCommand::Pause { dag }
        | DagsCommand::Unpause { dag }
        | DagsCommand::Trigger { dag, .. } => {
            find_dag(&bag, dag)?;
        }
        DagsCommand::List { .. } => {}
    }
    let trigger_input = if let DagsCommand::Trigger {
        dag,
        logical_date,
        conf,
        ..
    } = &cmd
    {
        let d = find_dag(&bag, dag)?;
        let date = match logical_date {
            Some(s) => {
                orchestrator::schedule::parse_date(s, d.schedule.timezone()).map_err(usage)?
            }
            None => Utc::now(),
        };
        Some((date, parse_conf(conf.as_deref())?))
    } else {
        None
    };

    let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
    let code = match cmd {
        DagsCommand::List { json } => {
            let rows = db.store.list_dags().await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.dag_id.clone(),
                            match (&r.schedule, &r.asset_expression) {
                                (Some(cron), None) => cron.clone(),
                                (Some(cron), Some(_)) => format!("{cron} + assets"),
                                (None, Some(_)) => "assets".into(),
                                (None, None) => "None".into(),
                            },
                            r.timezone.clone(),
                            if r.is_paused {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            r.tags.join(","),
                        ]
                    })
                    .collect();
                output::table(
                    &["dag_id", "schedule", "timezone", "paused", "tags"],
                    &table,
                )?;
            }
            ExitCode::SUCCESS
        }
        DagsCommand::Pause { dag } => {
            db.store.set_paused(&dag, true).await?;
            super::audit(&db, dag_action("pause", &dag, None)).await;
            outln!("paused {dag}");
            ExitCode::SUCCESS
        }
        DagsCommand::Unpause { dag } => {
            db.store.set_paused(&dag, false).await?;
            super::audit(&db, dag_action("unpause", &dag, None)).await;
            db.store.wake().await?;
            outln!("unpaused {dag}");
            ExitCode::SUCCESS
        }
        DagsCommand::Trigger {
            dag, wait: block, ..
        } => {
            let d = find_dag(&bag, &dag)?;
            let (date, conf) = trigger_input.unwrap_or((Utc::now(), json!({})));
            if block && db.store.dag(&dag).await?.is_some_and(|r| r.is_paused) {
                return Err(usage(format!(
                    "DAG `{dag}` is paused, so its run would wait forever; run `betflow dags unpause {dag}` first"
                )));
            }
            let interval = d.schedule.manual_interval(date);
            let Some(run_id) = db
                .store
                .create_run(&d, RunType::Manual, interval, &conf)
                .await?
            else {
                return Err(usage(format!(
                    "DAG `{dag}` already has a run at logical date {}",
                    interval.start.to_rfc3339()
                )));
            };
            super::audit(&db, dag_action("trigger", &dag, Some(&run_id))).await;
            outln!("created run {run_id} of {dag}");
            if block {
                let states = wait::until_finished(
                    &db.store,
                    settings.engine_config(),
                    &bag,
                    &dag,
                    std::slice::from_ref(&run_id),
                    false,
                )
                .await?;
                let state = states.first().copied();
                outln!(
                    "run {run_id} finished: {}",
                    state.map_or("unknown", RunState::as_str)
                );
                if state == Some(RunState::Success) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            } else {
                if !db.store.has_live_worker().await? {
                    eprintln!("note: no scheduler is running; start `betflow up` or `betflow scheduler` to execute it");
                }
                ExitCode::SUCCESS
            }
        }
        DagsCommand::Show { .. } => ExitCode::SUCCESS,
    };
    db.close().await?;
    Ok(code)
}

fn show(dag: &Dag) -> Result<()> {
    outln!("DAG {}", dag.id);
    if !dag.description.is_empty() {
        outln!("  description:      {}", dag.description);
    }
    outln!(
        "  schedule:         {} ({})",
        dag.schedule
            .expression()
            .unwrap_or(match &dag.asset_schedule {
                Some(_) => "None (on assets)",
                None => "None (manual)",
            }),
        dag.schedule.timezone()
    );
    if let Some(c) = &dag.asset_schedule {
        outln!("  runs on assets:   {}", c.describe());
    }
    outln!("  start date:       {}", dag.bounds.start_date.to_rfc3339());
    if let Some(end) = dag.bounds.end_date {
        outln!("  end date:         {}", end.to_rfc3339());
    }
    outln!("  catchup:          {}", dag.bounds.catchup);
    outln!("  max active runs:  {}", dag.max_active_runs);
    outln!("  max active tasks: {}", dag.max_active_tasks);
    if !dag.tags.is_empty() {
        outln!("  tags:             {}", dag.tags.join(", "));
    }
    if !dag.params.is_empty() {
        outln!("  params:           {}", Value::Object(dag.params.clone()));
    }
    if !dag.fileloc.is_empty() {
        outln!("  defined in:       {}", dag.fileloc);
    }
    if !dag.tasks().is_empty() {
        outln!("\nTasks ({}):", dag.tasks().len());
        let rows: Vec<Vec<String>> = dag
            .tasks()
            .iter()
            .map(|t| {
                vec![
                    // Airflow marks mapped tasks with brackets.
                    if t.map.is_some() {
                        format!("{} [ ]", t.id)
                    } else {
                        t.id.clone()
                    },
                    if matches!(t.kind, TaskKind::Sensor { .. }) {
                        "sensor"
                    } else {
                        "task"
                    }
                    .into(),
                    t.trigger_rule.as_str().into(),
                    t.retry.retries.to_string(),
                    t.timeout
                        .map(|d| format!("{}s", d.as_secs()))
                        .unwrap_or_else(|| "-".into()),
                    t.pool.clone(),
                    if t.upstream.is_empty() {
                        "-".into()
                    } else {
                        t.upstream.join(", ")
                    },
                ]
            })
            .collect();
        output::table(
            &[
                "task_id",
                "kind",
                "trigger_rule",
                "retries",
                "timeout",
                "pool",
                "upstream",
            ],
            &rows,
        )?;
        outln!("\nEdges:");
        for t in dag.tasks() {
            for d in &t.downstream {
                outln!("  {} -> {}", t.id, d);
            }
        }
        let groups = dag.groups();
        if !groups.is_empty() {
            outln!("\nGroups:");
            for (g, members) in groups {
                outln!("  {g}: {}", members.join(", "));
            }
        }
    }
    if !dag.streams.is_empty() {
        outln!("\nStream tasks (started with every `betflow up` / `betflow scheduler`):");
        for s in &dag.streams {
            outln!(
                "  {} (restart backoff {}s, max {}s)",
                s.id,
                s.restart.delay.as_secs(),
                s.restart.max_delay.as_secs()
            );
        }
    }
    Ok(())
}

/// A DAG action for the audit trail.
fn dag_action<'a>(event: &'a str, dag: &'a str, run_id: Option<&'a str>) -> web::audit::Action<'a> {
    web::audit::Action {
        event,
        dag_id: Some(dag),
        run_id,
        ..Default::default()
    }
}
