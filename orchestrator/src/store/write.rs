//! Write-side operations users ask for: syncing DAG definitions, pausing,
//! creating runs (scheduled, manual, backfill) and clearing task instances.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::{Store, StoreError};
use crate::dag::{Dag, DagBag};
use crate::schedule::DataInterval;
use crate::state::TaskState;

/// Why a run was created; also the prefix of its run id, as in Airflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunType {
    Scheduled,
    Manual,
    Backfill,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
            Self::Backfill => "backfill",
        }
    }
}

/// Airflow-style run id: `scheduled__2024-01-01T00:00:00+00:00`.
pub fn run_id_for(run_type: RunType, logical_date: DateTime<Utc>) -> String {
    format!(
        "{}__{}",
        run_type.as_str(),
        logical_date.to_rfc3339_opts(SecondsFormat::Secs, false)
    )
}

#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    pub mark_missing_stale: bool,
    pub paused_at_creation: bool,
}

/// Channel every process LISTENs on; a NOTIFY wakes schedulers and executors.
pub const WAKEUP_CHANNEL: &str = "betflow_wakeup";

/// Wake every scheduler and executor. Inside a transaction the NOTIFY is
/// delivered at commit, so listeners never look before the change is visible.
pub async fn notify_wakeup<'e, E: sqlx::PgExecutor<'e>>(db: E) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKEUP_CHANNEL)
        .execute(db)
        .await?;
    Ok(())
}

/// The payload of a wake-up for executors alone: tasks were queued, and
/// nothing waits for a scheduler. A scheduler woken by every queued task
/// ran a whole pass for nothing on each hop of a chain.
const QUEUED: &str = "queued";

/// Wake every executor to claim the tasks just queued (see
/// [`notify_wakeup`] for when it is delivered). `by` names the worker that
/// queued them, when one did: that process wakes its own executor
/// directly, and skips the wake-up (see [`Wakeup::of`]).
pub async fn notify_queued<'e, E: sqlx::PgExecutor<'e>>(
    db: E,
    by: Option<&str>,
) -> Result<(), sqlx::Error> {
    let payload = match by {
        Some(worker_id) => format!("{QUEUED} {worker_id}"),
        None => QUEUED.to_owned(),
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(WAKEUP_CHANNEL)
        .bind(payload)
        .execute(db)
        .await?;
    Ok(())
}

/// Which of a process's loops a wake-up on [`WAKEUP_CHANNEL`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wakeup {
    pub scheduler: bool,
    pub executor: bool,
}

impl Wakeup {
    const EVERY_LOOP: Wakeup = Wakeup {
        scheduler: true,
        executor: true,
    };

    /// The loops of worker `me` a NOTIFY with `payload` wakes. Any payload
    /// but a queued one (an older version's, or another process's empty
    /// one) wakes both, as every wake-up once did.
    pub fn of(payload: &str, me: &str) -> Wakeup {
        let executor = match payload.strip_prefix(QUEUED) {
            Some("") => true,
            Some(rest) => match rest.strip_prefix(' ') {
                Some(by) => by != me,
                None => return Wakeup::EVERY_LOOP,
            },
            None => return Wakeup::EVERY_LOOP,
        };
        Wakeup {
            scheduler: false,
            executor,
        }
    }
}

impl Store {
    /// Record the DAGs and pools this binary defines. With
    /// `mark_missing_stale`, DAGs in the database but not in the bag are
    /// marked stale (kept, with their history). New DAGs start paused when
    /// `paused_at_creation` (Airflow's `dags_are_paused_at_creation`).
    pub async fn sync_dags(&self, bag: &DagBag, opts: SyncOptions) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // One syncer at a time, so concurrent starts do not deadlock on rows.
        sqlx::query("SELECT pg_advisory_xact_lock(7240001)")
            .execute(&mut *tx)
            .await?;
        for dag in bag.dags() {
            sqlx::query(
                "INSERT INTO dags (dag_id, description, schedule, timezone, tags, fileloc, max_active_runs,
                                   max_active_tasks, catchup, start_date, end_date, is_stale, is_paused,
                                   last_parsed_at, asset_expression)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE, $12, now(), $13)
                 ON CONFLICT (dag_id) DO UPDATE SET asset_expression = EXCLUDED.asset_expression,
                    description = EXCLUDED.description, schedule = EXCLUDED.schedule,
                    timezone = EXCLUDED.timezone, tags = EXCLUDED.tags, fileloc = EXCLUDED.fileloc,
                    max_active_runs = EXCLUDED.max_active_runs, max_active_tasks = EXCLUDED.max_active_tasks,
                    catchup = EXCLUDED.catchup, start_date = EXCLUDED.start_date,
                    end_date = EXCLUDED.end_date, is_stale = FALSE, last_parsed_at = now()",
            )
            .bind(&dag.id)
            .bind(&dag.description)
            .bind(dag.schedule.expression())
            .bind(dag.schedule.timezone().name())
            .bind(&dag.tags)
            .bind(&dag.fileloc)
            .bind(dag.max_active_runs as i32)
            .bind(dag.max_active_tasks as i32)
            .bind(dag.bounds.catchup)
            .bind(dag.bounds.start_date)
            .bind(dag.bounds.end_date)
            .bind(opts.paused_at_creation)
            .bind(dag.asset_schedule.as_ref().map(|c| c.expression()))
            .execute(&mut *tx)
            .await?;
            // A new version when the structure differs from the latest one.
            sqlx::query(
                "INSERT INTO dag_versions (dag_id, version_number, structure_hash, structure)
                 SELECT $1, COALESCE(max(version_number), 0) + 1, $2, $3
                 FROM dag_versions WHERE dag_id = $1
                 HAVING COALESCE((array_agg(structure_hash ORDER BY version_number DESC))[1], '') <> $2",
            )
            .bind(&dag.id)
            .bind(dag.structure_hash())
            .bind(dag.structure())
            .execute(&mut *tx)
            .await?;
        }
        crate::asset::sync_references(&mut tx, bag).await?;
        if opts.mark_missing_stale {
            let ids: Vec<String> = bag.dags().map(|d| d.id.clone()).collect();
            sqlx::query("UPDATE dags SET is_stale = TRUE WHERE NOT (dag_id = ANY($1))")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        }
        for (name, slots) in bag.pools() {
            sqlx::query(
                "INSERT INTO pools (name, slots) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET slots = EXCLUDED.slots",
            )
            .bind(name)
            .bind(*slots as i32)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns false when no such DAG is known.
    pub async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<bool, StoreError> {
        let res = sqlx::query("UPDATE dags SET is_paused = $2 WHERE dag_id = $1")
            .bind(dag_id)
            .bind(paused)
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Create a queued run; `None` when a run already exists for that logical date.
    pub async fn create_run(
        &self,
        dag: &Dag,
        run_type: RunType,
        interval: DataInterval,
        conf: &Value,
    ) -> Result<Option<String>, StoreError> {
        let run_id = run_id_for(run_type, interval.start);
        self.create_run_with_id(dag, run_type, interval, conf, &run_id)
            .await
    }

    /// Create queued runs of `run_type` with the conf `{}`, in one
    /// statement; an interval whose run exists is left alone. Returns how
    /// many were created.
    pub async fn create_runs(
        &self,
        run_type: RunType,
        runs: &[(&Dag, DataInterval)],
    ) -> Result<usize, StoreError> {
        if runs.is_empty() {
            return Ok(0);
        }
        let created: i64 = sqlx::query_scalar(
            "WITH created AS (
                 INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start,
                                       data_interval_end, run_type, state, conf, dag_version)
                 SELECT c.dag_id, c.run_id, c.starts, c.starts, c.ends, $5, 'queued', '{}'::jsonb,
                        (SELECT max(version_number) FROM dag_versions v WHERE v.dag_id = c.dag_id)
                 FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
                      AS c(dag_id, run_id, starts, ends)
                 ON CONFLICT DO NOTHING RETURNING 1)
             SELECT count(*) FROM created",
        )
        .bind(runs.iter().map(|(d, _)| d.id.as_str()).collect::<Vec<_>>())
        .bind(
            runs.iter()
                .map(|(_, i)| run_id_for(run_type, i.start))
                .collect::<Vec<_>>(),
        )
        .bind(runs.iter().map(|(_, i)| i.start).collect::<Vec<_>>())
        .bind(runs.iter().map(|(_, i)| i.end).collect::<Vec<_>>())
        .bind(run_type.as_str())
        .fetch_one(self.pool())
        .await?;
        if created > 0 {
            self.wake().await?;
        }
        Ok(created as usize)
    }

    /// Create a queued run under a caller-chosen run id (the REST API's
    /// `dag_run_id`); `None` when a run with that id or logical date exists.
    pub async fn create_run_with_id(
        &self,
        dag: &Dag,
        run_type: RunType,
        interval: DataInterval,
        conf: &Value,
        run_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let created: Option<String> = sqlx::query_scalar(
            "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end,
                                   run_type, state, conf, dag_version)
             VALUES ($1, $2, $3, $3, $4, $5, 'queued', $6,
                     (SELECT max(version_number) FROM dag_versions WHERE dag_id = $1))
             ON CONFLICT DO NOTHING RETURNING run_id",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(interval.start)
        .bind(interval.end)
        .bind(run_type.as_str())
        .bind(conf)
        .fetch_optional(self.pool())
        .await?;
        if created.is_some() {
            self.wake().await?;
        }
        Ok(created)
    }

    /// Reset task instances so the scheduler runs them again, and put their
    /// run back to running. Returns the task ids cleared.
    pub async fn clear_tasks(
        &self,
        dag: &Dag,
        run_id: &str,
        task_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let (ids, retries): (Vec<String>, Vec<i32>) = task_ids
            .iter()
            .filter_map(|id| dag.task(id).map(|t| (id.clone(), t.retry.retries as i32)))
            .unzip();
        // Each cleared task gets its full retry budget again on top of the
        // tries it used. Its outputs go with it, as Airflow clears a task's
        // XComs before a try: a try that returns nothing must not leave its
        // readers the output of the try before it.
        let cleared: Vec<String> = sqlx::query_scalar(
            "WITH cleared AS (
                 UPDATE task_instances ti SET state = 'none', next_attempt_at = NULL, first_attempt_at = NULL,
                        queued_at = NULL, end_date = NULL, duration = NULL, max_tries = ti.try_number + c.retries
                 FROM unnest($3::text[], $4::int[]) AS c(task_id, retries)
                 WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = c.task_id AND ti.state <> 'running'
                 RETURNING ti.task_id, ti.map_index),
             outputs AS (
                 DELETE FROM xcom x USING cleared c
                 WHERE x.dag_id = $1 AND x.run_id = $2 AND x.task_id = c.task_id
                   AND x.map_index = c.map_index)
             SELECT DISTINCT task_id FROM cleared ORDER BY task_id",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(&ids)
        .bind(&retries)
        .fetch_all(&mut *tx)
        .await?;
        // A cleared mapped task is expanded again, over its list as it is
        // when it next runs (docs/mapping.md); not while an instance runs.
        let mapped: Vec<&str> = cleared
            .iter()
            .filter(|id| dag.task(id).is_some_and(|t| t.map.is_some()))
            .map(String::as_str)
            .collect();
        if !mapped.is_empty() {
            crate::mapping::collapse(&mut tx, dag, run_id, &mapped).await?;
        }
        if !cleared.is_empty() {
            // Running again, and first in line for the next pass.
            sqlx::query(
                "WITH run AS (UPDATE dag_runs SET state = 'running', end_date = NULL
                              WHERE dag_id = $1 AND run_id = $2 RETURNING dag_id, run_id)
                 INSERT INTO run_schedule_requests (dag_id, run_id) SELECT dag_id, run_id FROM run",
            )
            .bind(&dag.id)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            notify_wakeup(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(cleared)
    }

    /// Sets the state of the task instances of `task_ids` in `run_ids` by
    /// hand (the API's task-instance patch), leaving running ones alone.
    /// Returns the (run id, task id) pairs changed.
    pub async fn mark_task_instances(
        &self,
        dag_id: &str,
        run_ids: &[String],
        task_ids: &[String],
        state: TaskState,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // Every instance of a mapped task with it; one row per task.
        let changed: Vec<(String, String)> = sqlx::query_as(
            "WITH changed AS (
                 UPDATE task_instances SET state = $4, end_date = now()
                 WHERE dag_id = $1 AND run_id = ANY($2) AND task_id = ANY($3)
                   AND state <> 'running' AND state <> $4
                 RETURNING run_id, task_id)
             SELECT DISTINCT run_id, task_id FROM changed ORDER BY run_id, task_id",
        )
        .bind(dag_id)
        .bind(run_ids)
        .bind(task_ids)
        .bind(state)
        .fetch_all(self.pool())
        .await?;
        if !changed.is_empty() {
            self.wake().await?;
        }
        Ok(changed)
    }

    /// The runs of `dag_id` logically before (`past`) and after (`future`)
    /// `run_id`, with `run_id` itself: what "include past/future" reaches.
    pub async fn runs_around(
        &self,
        dag_id: &str,
        run_id: &str,
        past: bool,
        future: bool,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT r.run_id FROM dag_runs r,
                    (SELECT logical_date FROM dag_runs WHERE dag_id = $1 AND run_id = $2) me
             WHERE r.dag_id = $1
               AND (r.run_id = $2 OR ($3 AND r.logical_date < me.logical_date)
                    OR ($4 AND r.logical_date > me.logical_date))
             ORDER BY r.logical_date",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(past)
        .bind(future)
        .fetch_all(self.pool())
        .await?)
    }

    /// Sets (or with `None` removes) a task instance's note; false when
    /// there is no such instance.
    pub async fn set_task_instance_note(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE task_instances SET note = $4
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = -1",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(note)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Set a task instance's state by hand (UI "mark success/failed").
    pub async fn mark_task(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        state: TaskState,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE task_instances SET state = $4, end_date = now()
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND state <> 'running'",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .bind(state)
        .execute(self.pool())
        .await?;
        self.wake().await?;
        Ok(res.rows_affected() == 1)
    }

    /// Marks a run by hand (Airflow's "mark run as"): as success, its
    /// unfinished task instances finish as success; as failed, the ones
    /// started or waiting on a retry fail and the ones not started are
    /// skipped. A try still running on a worker loses its outcome (its
    /// guard no longer matches). `false` when there is no such run.
    pub async fn mark_run(
        &self,
        dag_id: &str,
        run_id: &str,
        success: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let found = sqlx::query(
            "UPDATE dag_runs SET state = $3, end_date = now(), start_date = COALESCE(start_date, now())
             WHERE dag_id = $1 AND run_id = $2",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(if success { "success" } else { "failed" })
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !found {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE task_instances SET end_date = now(),
                    state = CASE WHEN $3 THEN 'success'
                                 WHEN state IN ('running', 'queued', 'up_for_retry', 'up_for_reschedule')
                                 THEN 'failed' ELSE 'skipped' END
             WHERE dag_id = $1 AND run_id = $2
               AND state NOT IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed')",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(success)
        .execute(&mut *tx)
        .await?;
        notify_wakeup(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets (or, with `None`, clears) a run's note. `false`: no such run.
    pub async fn set_run_note(
        &self,
        dag_id: &str,
        run_id: &str,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query("UPDATE dag_runs SET note = $3 WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id)
            .bind(note)
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Deletes a run with its task instances, tries, logs and outputs.
    /// `false`: no such run.
    pub async fn delete_run(&self, dag_id: &str, run_id: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Folds the run counts the triggers appended into one row per DAG and
    /// state (migration 28); returns how many rows it folded, 0 when
    /// another process was compacting.
    pub async fn compact_run_counts(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT compact_dag_run_counts()")
            .fetch_one(self.pool())
            .await?)
    }

    /// The same for the task-instance counts (migration 30).
    pub async fn compact_task_instance_counts(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT compact_task_instance_counts()")
            .fetch_one(self.pool())
            .await?)
    }

    /// Drops the requests for a scheduler pass (migration 29) whose run is
    /// no longer running: finished, marked or deleted meanwhile. Requests a
    /// pass is taking are skipped, not waited for.
    pub async fn drop_stale_schedule_requests(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM run_schedule_requests WHERE ctid IN (
                 SELECT q.ctid FROM run_schedule_requests q
                 WHERE NOT EXISTS (
                     SELECT 1 FROM dag_runs r
                     WHERE r.dag_id = q.dag_id AND r.run_id = q.run_id AND r.state = 'running'
                 )
                 FOR UPDATE SKIP LOCKED
             )",
        )
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// Wake every scheduler and executor listening on this database.
    pub async fn wake(&self) -> Result<(), StoreError> {
        notify_wakeup(self.pool()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_look_like_airflows() {
        let d = DateTime::parse_from_rfc3339("2024-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            run_id_for(RunType::Backfill, d),
            "backfill__2024-01-02T00:00:00+00:00"
        );
    }

    #[test]
    fn a_wakeup_for_queued_tasks_skips_schedulers_and_the_worker_that_queued_them() {
        let both = Wakeup {
            scheduler: true,
            executor: true,
        };
        let executor = Wakeup {
            scheduler: false,
            executor: true,
        };
        let nobody = Wakeup {
            scheduler: false,
            executor: false,
        };
        assert_eq!(Wakeup::of("", "w1"), both);
        assert_eq!(Wakeup::of("queued", "w1"), executor);
        assert_eq!(Wakeup::of("queued w2", "w1"), executor);
        assert_eq!(Wakeup::of("queued w1", "w1"), nobody);
        // Not ours: a payload we do not know wakes everyone, as before.
        assert_eq!(Wakeup::of("queuedw1", "w1"), both);
        assert_eq!(Wakeup::of("runs", "w1"), both);
    }
}
