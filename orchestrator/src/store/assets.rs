//! Reads and user writes of assets and their events, for the CLI, the
//! Assets pages and `/api/v2/assets` (docs/assets.md). Events of task tries
//! and the runs they trigger are written by `crate::asset`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::write::notify_wakeup;
use super::{Store, StoreError};

/// A DAG scheduled on an asset.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssetDagRef {
    pub dag_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A task that writes or reads an asset.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssetTaskRef {
    pub dag_id: String,
    pub task_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An asset's newest event, as lists show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LastAssetEvent {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub partition: String,
    pub source_dag_id: Option<String>,
    pub source_run_id: Option<String>,
}

/// An asset with who writes, reads and is scheduled on it.
#[derive(Debug, Clone, Serialize)]
pub struct AssetRow {
    pub id: i64,
    pub uri: String,
    pub name: String,
    pub group: String,
    pub extra: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// DAGs scheduled on it.
    pub scheduled_dags: Vec<AssetDagRef>,
    /// Tasks declaring it an outlet.
    pub producing_tasks: Vec<AssetTaskRef>,
    /// Tasks declaring it an inlet.
    pub consuming_tasks: Vec<AssetTaskRef>,
    pub last_event: Option<LastAssetEvent>,
    pub event_count: i64,
}

/// Which assets a list shows.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    /// Case-insensitive substring of the URI.
    pub uri_pattern: Option<String>,
    /// Case-insensitive substring of the name.
    pub name_pattern: Option<String>,
    /// Case-sensitive prefix of the URI.
    pub uri_prefix: Option<String>,
    /// Case-sensitive prefix of the name.
    pub name_prefix: Option<String>,
    /// Only assets these DAGs write, read or are scheduled on (any).
    pub dag_ids: Vec<String>,
    /// Only assets some DAG of the deployment still names.
    pub only_active: bool,
}

/// How asset lists sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetSort {
    Id,
    Name,
    Uri,
}

/// A run an asset event led to.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TriggeredRunRow {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub state: String,
    /// The run's partition, when its events named one.
    pub partition_key: Option<String>,
    /// This event is the newest of the run's: the one that completed its
    /// condition (Airflow's `triggering`).
    pub triggering: bool,
}

/// One update of an asset.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssetEventRow {
    pub id: i64,
    pub asset_id: i64,
    pub uri: String,
    pub name: String,
    #[sqlx(rename = "group_name")]
    pub group: String,
    pub extra: Value,
    pub partition: String,
    pub source_dag_id: Option<String>,
    pub source_task_id: Option<String>,
    pub source_run_id: Option<String>,
    pub source_map_index: Option<i32>,
    pub source_try_number: Option<i32>,
    pub created_by: Option<String>,
    pub timestamp: DateTime<Utc>,
    #[sqlx(skip)]
    pub created_dagruns: Vec<TriggeredRunRow>,
}

/// Which events a list shows.
#[derive(Debug, Clone, Default)]
pub struct AssetEventFilter {
    pub asset_id: Option<i64>,
    pub source_dag_id: Option<String>,
    pub source_task_id: Option<String>,
    pub source_run_id: Option<String>,
    pub source_map_index: Option<i32>,
    pub timestamp_gte: Option<DateTime<Utc>>,
    pub timestamp_lte: Option<DateTime<Utc>>,
    /// Only these events (a run's triggering events).
    pub ids: Option<Vec<i64>>,
    pub newest_first: bool,
}

/// An event a DAG scheduled on its asset has not consumed yet.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct QueuedAssetEventRow {
    pub dag_id: String,
    pub asset_id: i64,
    pub uri: String,
    pub name: String,
    pub partition: String,
    pub event_id: i64,
    pub created_at: DateTime<Utc>,
}

type AssetBase = (
    i64,
    String,
    String,
    String,
    Value,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
);

impl Store {
    /// A page of assets and the total matching `filter`.
    pub async fn assets(
        &self,
        filter: &AssetFilter,
        sort: AssetSort,
        descending: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AssetRow>, i64), StoreError> {
        let column = match sort {
            AssetSort::Id => "a.id",
            AssetSort::Name => "a.name",
            AssetSort::Uri => "a.uri",
        };
        let direction = if descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT a.id, a.uri, a.name, a.group_name, a.extra, a.created_at, a.updated_at,
                    count(*) OVER ()
             FROM assets a
             WHERE ($1::text IS NULL OR strpos(lower(a.uri), lower($1)) > 0)
               AND ($2::text IS NULL OR strpos(lower(a.name), lower($2)) > 0)
               AND ($7::text IS NULL OR starts_with(a.uri, $7))
               AND ($8::text IS NULL OR starts_with(a.name, $8))
               AND (cardinality($3::text[]) = 0
                    OR EXISTS (SELECT 1 FROM asset_dag_refs r WHERE r.asset_id = a.id AND r.dag_id = ANY($3))
                    OR EXISTS (SELECT 1 FROM asset_task_refs r WHERE r.asset_id = a.id AND r.dag_id = ANY($3)))
               AND (NOT $4
                    OR EXISTS (SELECT 1 FROM asset_dag_refs r JOIN dags d USING (dag_id)
                               WHERE r.asset_id = a.id AND NOT d.is_stale)
                    OR EXISTS (SELECT 1 FROM asset_task_refs r JOIN dags d USING (dag_id)
                               WHERE r.asset_id = a.id AND NOT d.is_stale))
             ORDER BY {column} {direction}, a.id
             LIMIT $5 OFFSET $6"
        );
        let base: Vec<AssetBase> = sqlx::query_as(&sql)
            .bind(&filter.uri_pattern)
            .bind(&filter.name_pattern)
            .bind(&filter.dag_ids)
            .bind(filter.only_active)
            .bind(limit)
            .bind(offset)
            .bind(&filter.uri_prefix)
            .bind(&filter.name_prefix)
            .fetch_all(self.pool())
            .await?;
        let total = match base.first() {
            Some(b) => b.7,
            // Past the last page the window count is gone: count again.
            None if offset > 0 => {
                let (_, total) = Box::pin(self.assets(filter, sort, descending, 1, 0)).await?;
                total
            }
            None => 0,
        };
        let rows = self.with_references(base).await?;
        Ok((rows, total))
    }

    /// One asset by id.
    pub async fn asset(&self, id: i64) -> Result<Option<AssetRow>, StoreError> {
        let base: Option<AssetBase> = sqlx::query_as(
            "SELECT id, uri, name, group_name, extra, created_at, updated_at, 1::bigint
             FROM assets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(self
            .with_references(base.into_iter().collect())
            .await?
            .pop())
    }

    async fn with_references(&self, base: Vec<AssetBase>) -> Result<Vec<AssetRow>, StoreError> {
        let ids: Vec<i64> = base.iter().map(|b| b.0).collect();
        let dag_refs: Vec<(i64, String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT asset_id, dag_id, created_at, updated_at FROM asset_dag_refs
             WHERE asset_id = ANY($1) ORDER BY dag_id",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let task_refs: Vec<TaskRefRow> = sqlx::query_as(
            "SELECT asset_id, kind, dag_id, task_id, created_at, updated_at FROM asset_task_refs
                 WHERE asset_id = ANY($1) ORDER BY dag_id, task_id",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let last: Vec<LastEventRow> = sqlx::query_as(
            "SELECT a.id AS asset_id, e.id, e.timestamp, e.partition, e.source_dag_id,
                    e.source_run_id,
                    (SELECT count(*) FROM asset_events c WHERE c.asset_id = a.id) AS event_count
                 FROM unnest($1::bigint[]) AS a(id)
                 CROSS JOIN LATERAL (SELECT * FROM asset_events e WHERE e.asset_id = a.id
                                     ORDER BY e.id DESC LIMIT 1) e",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let mut rows: Vec<AssetRow> = base
            .into_iter()
            .map(
                |(id, uri, name, group, extra, created_at, updated_at, _)| AssetRow {
                    id,
                    uri,
                    name,
                    group,
                    extra,
                    created_at,
                    updated_at,
                    scheduled_dags: Vec::new(),
                    producing_tasks: Vec::new(),
                    consuming_tasks: Vec::new(),
                    last_event: None,
                    event_count: 0,
                },
            )
            .collect();
        let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        for (asset_id, dag_id, created_at, updated_at) in dag_refs {
            rows[index[&asset_id]].scheduled_dags.push(AssetDagRef {
                dag_id,
                created_at,
                updated_at,
            });
        }
        for t in task_refs {
            let r = &mut rows[index[&t.asset_id]];
            let list = if t.kind == "outlet" {
                &mut r.producing_tasks
            } else {
                &mut r.consuming_tasks
            };
            list.push(t.task);
        }
        for l in last {
            let r = &mut rows[index[&l.asset_id]];
            r.event_count = l.event_count;
            r.last_event = Some(l.event);
        }
        Ok(rows)
    }

    /// A page of asset events and the total matching `filter`, each with
    /// the runs it triggered.
    pub async fn asset_events(
        &self,
        filter: &AssetEventFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AssetEventRow>, i64), StoreError> {
        const WHERE: &str = "WHERE ($1::bigint IS NULL OR e.asset_id = $1)
               AND ($2::text IS NULL OR e.source_dag_id = $2)
               AND ($3::text IS NULL OR e.source_task_id = $3)
               AND ($4::text IS NULL OR e.source_run_id = $4)
               AND ($5::int IS NULL OR e.source_map_index = $5)
               AND ($6::timestamptz IS NULL OR e.timestamp >= $6)
               AND ($7::timestamptz IS NULL OR e.timestamp <= $7)
               AND ($8::bigint[] IS NULL OR e.id = ANY($8))";
        let direction = if filter.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT e.id, e.asset_id, a.uri, a.name, a.group_name, e.extra, e.partition,
                    e.source_dag_id, e.source_task_id, e.source_run_id, e.source_map_index,
                    e.source_try_number, e.created_by, e.timestamp
             FROM asset_events e JOIN assets a ON a.id = e.asset_id
             {WHERE} ORDER BY e.id {direction} LIMIT $9 OFFSET $10"
        );
        macro_rules! bind_filter {
            ($q:expr) => {
                $q.bind(filter.asset_id)
                    .bind(&filter.source_dag_id)
                    .bind(&filter.source_task_id)
                    .bind(&filter.source_run_id)
                    .bind(filter.source_map_index)
                    .bind(filter.timestamp_gte)
                    .bind(filter.timestamp_lte)
                    .bind(&filter.ids)
            };
        }
        let mut rows: Vec<AssetEventRow> = bind_filter!(sqlx::query_as(&sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let total: i64 = bind_filter!(sqlx::query_scalar(&format!(
            "SELECT count(*) FROM asset_events e {WHERE}"
        )))
        .fetch_one(self.pool())
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let runs: Vec<(i64, TriggeredRunRow)> = sqlx::query_as::<_, TriggeredWithEvent>(
            "SELECT l.event_id, r.dag_id, r.run_id, r.logical_date, r.data_interval_start,
                    r.data_interval_end, r.start_date, r.end_date, r.state, r.partition_key,
                    l.event_id = (SELECT max(m.event_id) FROM dag_run_asset_events m
                                  WHERE m.dag_run_id = l.dag_run_id) AS triggering
             FROM dag_run_asset_events l JOIN dag_runs r ON r.id = l.dag_run_id
             WHERE l.event_id = ANY($1) ORDER BY r.id",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|t| (t.event_id, t.run))
        .collect();
        let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        for (event_id, run) in runs {
            rows[index[&event_id]].created_dagruns.push(run);
        }
        Ok((rows, total))
    }

    /// The events that triggered a run, oldest first; empty for runs not
    /// triggered by assets. `None` when there is no such run.
    pub async fn run_asset_events(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Option<Vec<AssetEventRow>>, StoreError> {
        let run: Option<i64> =
            sqlx::query_scalar("SELECT id FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
                .bind(dag_id)
                .bind(run_id)
                .fetch_optional(self.pool())
                .await?;
        let Some(run) = run else {
            return Ok(None);
        };
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT event_id FROM dag_run_asset_events WHERE dag_run_id = $1")
                .bind(run)
                .fetch_all(self.pool())
                .await?;
        let filter = AssetEventFilter {
            ids: Some(ids),
            ..Default::default()
        };
        let (rows, _) = self.asset_events(&filter, i64::MAX, 0).await?;
        Ok(Some(rows))
    }

    /// Record an update of an asset made outside any task (Airflow's
    /// "create asset event"), of `partition` (`""`: none): queued for the
    /// DAGs scheduled on it like a task's. `None` when there is no such
    /// asset.
    pub async fn create_asset_event(
        &self,
        asset_id: i64,
        partition: &str,
        extra: &Value,
        created_by: &str,
    ) -> Result<Option<AssetEventRow>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO asset_events (asset_id, partition, extra, created_by)
             SELECT id, $2, $3, $4 FROM assets WHERE id = $1 RETURNING id",
        )
        .bind(asset_id)
        .bind(partition)
        .bind(extra)
        .bind(created_by)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO asset_queue (target_dag_id, event_id)
             SELECT r.dag_id, $2 FROM asset_dag_refs r JOIN dags d USING (dag_id)
             WHERE r.asset_id = $1 AND NOT d.is_stale",
        )
        .bind(asset_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        notify_wakeup(&mut *tx).await?;
        tx.commit().await?;
        let filter = AssetEventFilter {
            ids: Some(vec![id]),
            ..Default::default()
        };
        Ok(self.asset_events(&filter, 1, 0).await?.0.pop())
    }

    /// Events queued for `dag_id` (all DAGs when `None`) that no run has
    /// consumed yet, oldest first.
    pub async fn queued_asset_events(
        &self,
        dag_id: Option<&str>,
    ) -> Result<Vec<QueuedAssetEventRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT q.target_dag_id AS dag_id, e.asset_id, a.uri, a.name, e.partition,
                    e.id AS event_id, e.timestamp AS created_at
             FROM asset_queue q JOIN asset_events e ON e.id = q.event_id
             JOIN assets a ON a.id = e.asset_id
             WHERE ($1::text IS NULL OR q.target_dag_id = $1)
             ORDER BY q.target_dag_id, e.id",
        )
        .bind(dag_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forget what `dag_id` has queued (all assets, or one): Airflow's
    /// "delete queued events".
    pub async fn delete_queued_asset_events(
        &self,
        dag_id: &str,
        asset_id: Option<i64>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM asset_queue q USING asset_events e
             WHERE e.id = q.event_id AND q.target_dag_id = $1
               AND ($2::bigint IS NULL OR e.asset_id = $2)",
        )
        .bind(dag_id)
        .bind(asset_id)
        .execute(self.pool())
        .await?
        .rows_affected())
    }
}

#[derive(sqlx::FromRow)]
struct TaskRefRow {
    asset_id: i64,
    kind: String,
    #[sqlx(flatten)]
    task: AssetTaskRef,
}

#[derive(sqlx::FromRow)]
struct LastEventRow {
    asset_id: i64,
    event_count: i64,
    #[sqlx(flatten)]
    event: LastAssetEvent,
}

#[derive(sqlx::FromRow)]
struct TriggeredWithEvent {
    event_id: i64,
    #[sqlx(flatten)]
    run: TriggeredRunRow,
}
