//! Cross-DAG sensors: wait for another DAG's work on the same sports day,
//! like Airflow's `ExternalTaskSensor`, matched by the New York date of the
//! runs' data intervals (the DAGs run at different hours of the same day).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use orchestrator::{RunState, Sensor, TaskContext, TaskError, TaskSpec, TaskState};

use crate::{sports_day, TIMEZONE};

/// How often a cross-DAG sensor looks again.
pub const POKE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// How long it waits for a run that is in flight before failing.
pub const SENSOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2 * 3600);

/// Waits until `task_id` of `dag_id`'s run of the same sports day succeeded.
///
/// * that task succeeded, or its run did → done;
/// * the run is queued or running → poke again;
/// * the run failed, or the task failed → fail (fix and clear upstream first);
/// * there is no such run (a backfill of this DAG alone) → done, with a
///   warning: downstream tasks then see what the tables already hold.
#[derive(Debug, Clone)]
pub struct UpstreamDay {
    dag_id: &'static str,
    task_id: &'static str,
}

impl UpstreamDay {
    pub fn new(dag_id: &'static str, task_id: &'static str) -> Self {
        Self { dag_id, task_id }
    }

    pub fn spec(self, id: &str, doc: impl Into<String>) -> TaskSpec {
        TaskSpec::sensor(id, Arc::new(self), POKE_INTERVAL, SENSOR_TIMEOUT).doc(doc.into())
    }
}

#[async_trait]
impl Sensor for UpstreamDay {
    async fn poke(&self, ctx: TaskContext) -> Result<bool, TaskError> {
        let day: NaiveDate = sports_day(ctx.data_interval.start);
        let store = ctx.store().ok_or_else(|| {
            TaskError::msg("this sensor reads other DAGs' runs from the metadata database")
        })?;
        let upstream = store
            .latest_run_on_local_date(self.dag_id, self.task_id, day, TIMEZONE)
            .await
            .map_err(|e| TaskError::msg(format!("looking up {} runs: {e}", self.dag_id)))?;
        let Some(up) = upstream else {
            ctx.log.warn(format!(
                "no {} run for {day}: not waiting (its tables keep what they hold)",
                self.dag_id
            ));
            return Ok(true);
        };
        let what = format!(
            "{}.{} of run {} ({day})",
            self.dag_id, self.task_id, up.run_id
        );
        match (up.task_state, up.run_state) {
            (Some(TaskState::Failed | TaskState::UpstreamFailed), _) | (_, RunState::Failed) => {
                Err(TaskError::msg(format!(
                    "{what} did not succeed (run {}); fix it and clear it first",
                    up.run_state
                )))
            }
            // A skipped task (no selected sport) in a successful run is done too.
            (Some(TaskState::Success), _) | (_, RunState::Success) => {
                ctx.log.info(format!(
                    "{what}: {}",
                    up.task_state.map_or("done", TaskState::as_str)
                ));
                Ok(true)
            }
            (state, _) => {
                ctx.log.info(format!(
                    "waiting for {what}: task {}",
                    state.map_or("not started", TaskState::as_str)
                ));
                Ok(false)
            }
        }
    }
}
