//! `betflow tasks …`

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use orchestrator::dag::{Dag, TaskKind, TaskNode};
use orchestrator::task::TaskLogger;
use orchestrator::{mapping, MapOver};
use orchestrator::{TaskContext, TaskError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::dags::{find_dag, parse_conf};
use super::usage;
use crate::settings::Settings;
use services::database::{Database, MIGRATIONS};

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Run one task now, in this process, recording nothing (like `airflow tasks test`).
    Run {
        dag: String,
        task: String,
        /// Logical date: RFC 3339 or YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// JSON object merged over the DAG's params.
        #[arg(long)]
        conf: Option<String>,
        /// The instance of a task mapped over a param: the index of its
        /// item in the param's list.
        #[arg(long)]
        map_index: Option<i32>,
    },
    /// Reset task instances of a run so the scheduler runs them again.
    Clear {
        dag: String,
        run_id: String,
        /// Only this task (default: every task of the run).
        #[arg(long)]
        task: Option<String>,
        /// Also clear everything downstream of --task.
        #[arg(long)]
        downstream: bool,
    },
    /// Print a task instance's log, one try or all.
    Logs {
        dag: String,
        run_id: String,
        task: String,
        #[arg(long = "try")]
        try_number: Option<i32>,
        /// Only this instance of a mapped task (default: each in turn).
        #[arg(long)]
        map_index: Option<i32>,
    },
}

/// The `(map_index, item)` that `tasks run` gives a mapped task, from its
/// param's list; `None` for an unmapped task. A mapped task needs an index
/// (the error lists its items), and one mapped over an upstream output, or
/// reading an instance of its mapped group, cannot run alone: `tasks run`
/// runs no upstream task.
fn mapped_instance(
    dag: &Dag,
    node: &TaskNode,
    params: &serde_json::Map<String, Value>,
    map_index: Option<i32>,
) -> Result<Option<(i32, Value)>> {
    let Some(spec) = &node.map else {
        return match map_index {
            Some(_) => Err(usage(format!(
                "task `{}` is not mapped: leave out --map-index",
                node.id
            ))),
            None => Ok(None),
        };
    };
    let paired = node
        .upstream
        .iter()
        .find(|u| dag.task(u).is_some_and(|up| node.follows_index_of(up)));
    if let Some(up) = paired {
        return Err(usage(format!(
            "task `{}` reads the output of `{up}`'s instance of the same index in its mapped group, which `tasks run` does not run; trigger the DAG instead (`dags trigger … --wait`)",
            node.id
        )));
    }
    if let MapOver::Output(up) = &spec.over {
        return Err(usage(format!(
            "task `{}` is mapped over the output of `{up}`, which `tasks run` does not run; trigger the DAG instead (`dags trigger … --wait`)",
            node.id
        )));
    }
    let items: Vec<Value> = mapping::items(spec, params, None)
        .map_err(|e| usage(format!("task `{}`: {e}", node.id)))?;
    if items.is_empty() {
        return Err(usage(format!(
            "task `{}` maps over an empty list: a run would skip it",
            node.id
        )));
    }
    let listed = || {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| format!("{i}: {item}"))
            .collect::<Vec<String>>()
            .join(", ")
    };
    let Some(index) = map_index else {
        return Err(usage(format!(
            "task `{}` is mapped: pick an instance with --map-index ({})",
            node.id,
            listed()
        )));
    };
    let item = usize::try_from(index)
        .ok()
        .and_then(|i| items.get(i))
        .ok_or_else(|| {
            usage(format!(
                "task `{}` has no instance {index} ({})",
                node.id,
                listed()
            ))
        })?;
    Ok(Some((index, item.clone())))
}

pub async fn run(settings: &Settings, cmd: TasksCommand) -> Result<ExitCode> {
    let bag = super::dag_bag(settings)?;
    match cmd {
        TasksCommand::Run {
            dag,
            task,
            date,
            conf,
            map_index,
        } => {
            let d = find_dag(&bag, &dag)?;
            let node = d
                .task(&task)
                .ok_or_else(|| usage(format!("DAG `{dag}` has no task `{task}`")))?;
            let logical =
                orchestrator::schedule::parse_date(&date, d.schedule.timezone()).map_err(usage)?;
            let conf = parse_conf(conf.as_deref())?;
            let params = d.resolve_params(&conf);
            let instance = mapped_instance(&d, node, &params, map_index)?;
            let interval = d
                .schedule
                .interval_from(logical)
                .unwrap_or_else(|| d.schedule.manual_interval(logical));
            let ctx = TaskContext::new(
                dag.clone(),
                task.clone(),
                format!("test__{}", logical.to_rfc3339()),
                interval,
                1,
                node.retry.retries as i32,
                params,
                TaskLogger::stderr(),
                CancellationToken::new(),
                HashMap::new(),
            );
            let ctx = match instance {
                Some((index, item)) => ctx.with_map(index, Some(item)),
                None => ctx,
            };
            // The try is not recorded, but the task reaches the database
            // as under the scheduler: transforms commit Iceberg tables
            // registered there, and publishers write serving tables.
            let db = Database::connect(&settings.home).await?;
            db.store.migrate_all(&MIGRATIONS).await?;
            let ctx = ctx.with_store(db.store.clone());
            let result = match &node.kind {
                TaskKind::Operator(op) => op.execute(ctx).await,
                TaskKind::Sensor { sensor, .. } => sensor
                    .poke(ctx)
                    .await
                    .map(|met| serde_json::json!({"condition_met": met})),
            };
            match result {
                Ok(output) => {
                    outln!("{}", serde_json::to_string_pretty(&output)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(TaskError::Skip(reason)) => {
                    outln!("skipped: {reason}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("task failed: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        TasksCommand::Clear {
            dag,
            run_id,
            task,
            downstream,
        } => {
            let d = find_dag(&bag, &dag)?;
            let ids: Vec<String> = match &task {
                Some(t) => {
                    if d.task(t).is_none() {
                        return Err(usage(format!("DAG `{dag}` has no task `{t}`")));
                    }
                    if downstream {
                        d.downstream_closure(t)
                    } else {
                        vec![t.clone()]
                    }
                }
                None if downstream => return Err(usage("--downstream needs --task")),
                None => d.tasks().iter().map(|t| t.id.clone()).collect(),
            };
            let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
            if db.store.run(&dag, &run_id).await?.is_none() {
                return Err(usage(format!("DAG `{dag}` has no run `{run_id}`")));
            }
            let cleared = db.store.clear_tasks(&d, &run_id, &ids).await?;
            let action = web::audit::Action {
                event: "clear",
                dag_id: Some(&dag),
                run_id: Some(&run_id),
                task_id: task.as_deref(),
                extra: serde_json::json!({"task_ids": cleared, "downstream": downstream}),
            };
            super::audit(&db, action).await;
            outln!(
                "cleared {} task instance(s): {}",
                cleared.len(),
                cleared.join(", ")
            );
            let skipped = ids.len() - cleared.len();
            if skipped > 0 {
                outln!("({skipped} left alone because they are running)");
            }
            db.close().await?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Logs {
            dag,
            run_id,
            task,
            try_number,
            map_index,
        } => {
            let d = find_dag(&bag, &dag)?;
            if d.task(&task).is_none() {
                return Err(usage(format!("DAG `{dag}` has no task `{task}`")));
            }
            let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
            if db.store.run(&dag, &run_id).await?.is_none() {
                return Err(usage(format!("DAG `{dag}` has no run `{run_id}`")));
            }
            let lines = db
                .store
                .task_logs(&dag, &run_id, &task, try_number, map_index)
                .await?;
            if lines.is_empty() {
                outln!("(no log lines)");
            }
            let mut current = None;
            for l in lines {
                if current != Some((l.map_index, l.try_number)) {
                    match (l.map_index, l.try_number) {
                        (-1, 0) => outln!("--- expansion ---"),
                        (-1, n) => outln!("--- try {n} ---"),
                        (i, n) => outln!("--- [{i}] try {n} ---"),
                    }
                    current = Some((l.map_index, l.try_number));
                }
                outln!(
                    "[{}] {} - {}",
                    l.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    l.level,
                    l.message
                );
            }
            db.close().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
