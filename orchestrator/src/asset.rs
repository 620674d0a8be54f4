//! Assets and data-aware scheduling, as Airflow 3 has them
//! (docs/assets.md).
//!
//! Tasks declare the assets they write (outlets) and read (inlets). A
//! successful try of a task with outlets records one event per outlet in
//! the transaction that records the try, and queues it for every DAG
//! scheduled on that asset. A DAG scheduled on an [`AssetCondition`] gets
//! an `asset_triggered` run once the condition holds for the events queued
//! for it: "silver games, odds, weather and news were all updated", for one
//! partition at a time when the producing DAGs name partitions (a sports
//! day), so a run never mixes two days.
//!
//! The orchestrator knows nothing of what an asset is: a URI, a name and a
//! group. What a partition means is the producing DAG's business
//! ([`crate::DagBuilder::asset_partition`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::dag::{Dag, DagBag, TaskNode};
use crate::schedule::DataInterval;
use crate::store::write::notify_wakeup;
use crate::store::{Store, StoreError};

/// Something tasks write and read, named by a URI
/// (`iceberg://silver.games`, `postgres://serving.gold_team_trends`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asset {
    pub uri: String,
    /// What the UI shows; the URI unless set.
    pub name: String,
    /// Airflow's asset group; `asset` unless set.
    pub group: String,
}

impl Asset {
    pub fn new(uri: impl Into<String>) -> Self {
        let uri = uri.into();
        Self {
            name: uri.clone(),
            uri,
            group: "asset".to_owned(),
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    fn expression(&self) -> Value {
        json!({ "asset": { "uri": self.uri, "name": self.name, "group": self.group } })
    }
}

/// When a DAG scheduled on assets runs: after an update of one asset, of
/// all of a list, of any of a list, nested as deep as needed (Airflow's
/// `Asset`, `AssetAll` / `&`, `AssetAny` / `|`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetCondition {
    Asset(Asset),
    All(Vec<AssetCondition>),
    Any(Vec<AssetCondition>),
}

impl AssetCondition {
    /// Every one of `assets` updated.
    pub fn all(assets: impl IntoIterator<Item = Asset>) -> Self {
        Self::All(assets.into_iter().map(Self::Asset).collect())
    }

    /// At least one of `assets` updated.
    pub fn any(assets: impl IntoIterator<Item = Asset>) -> Self {
        Self::Any(assets.into_iter().map(Self::Asset).collect())
    }

    /// The assets named, each once, in order of first mention.
    pub fn assets(&self) -> Vec<&Asset> {
        let mut out: Vec<&Asset> = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Asset>) {
        match self {
            Self::Asset(a) => {
                if !out.iter().any(|o| o.uri == a.uri) {
                    out.push(a);
                }
            }
            Self::All(cs) | Self::Any(cs) => cs.iter().for_each(|c| c.collect(out)),
        }
    }

    /// Does the condition hold when the assets with these URIs were updated?
    /// An empty `all` or `any` never holds: it names nothing to wait for.
    pub fn holds(&self, updated: &BTreeSet<&str>) -> bool {
        match self {
            Self::Asset(a) => updated.contains(a.uri.as_str()),
            Self::All(cs) => !cs.is_empty() && cs.iter().all(|c| c.holds(updated)),
            Self::Any(cs) => cs.iter().any(|c| c.holds(updated)),
        }
    }

    /// Airflow's `asset_expression` (`{"all": [{"asset": {…}}, …]}`).
    pub fn expression(&self) -> Value {
        match self {
            Self::Asset(a) => a.expression(),
            Self::All(cs) => json!({ "all": cs.iter().map(Self::expression).collect::<Vec<_>>() }),
            Self::Any(cs) => json!({ "any": cs.iter().map(Self::expression).collect::<Vec<_>>() }),
        }
    }

    /// For people: `silver.games & (silver.odds | silver.news)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Asset(a) => a.name.clone(),
            Self::All(cs) | Self::Any(cs) => {
                let sep = if matches!(self, Self::All(_)) {
                    " & "
                } else {
                    " | "
                };
                cs.iter()
                    .map(|c| match c {
                        Self::Asset(_) => c.describe(),
                        _ => format!("({})", c.describe()),
                    })
                    .collect::<Vec<_>>()
                    .join(sep)
            }
        }
    }
}

/// Names the partition of the assets a run writes, from its data interval
/// (`|i| sports_day(i.start).to_string()`).
pub type PartitionFn = Arc<dyn Fn(DataInterval) -> String + Send + Sync>;

/// Record the events of a successful try of `task`: one per outlet, each
/// queued for the DAGs scheduled on its asset. Runs inside the transaction
/// that records the try, so a try and its events commit together.
pub(crate) async fn record_outlet_events(
    tx: &mut sqlx::PgConnection,
    dag: &Dag,
    task: &TaskNode,
    run_id: &str,
    map_index: i32,
    try_number: i32,
    interval: DataInterval,
) -> Result<(), sqlx::Error> {
    if task.outlets.is_empty() {
        return Ok(());
    }
    let uris: Vec<&str> = task.outlets.iter().map(|a| a.uri.as_str()).collect();
    sqlx::query(
        "WITH ev AS (
            INSERT INTO asset_events (asset_id, partition, source_dag_id, source_task_id, source_run_id,
                                      source_map_index, source_try_number, data_interval_start,
                                      data_interval_end)
            SELECT id, $2, $3, $4, $5, $6, $7, $8, $9 FROM assets WHERE uri = ANY($1)
            RETURNING id, asset_id)
         INSERT INTO asset_queue (target_dag_id, event_id)
         SELECT r.dag_id, ev.id FROM ev
         JOIN asset_dag_refs r ON r.asset_id = ev.asset_id
         JOIN dags d ON d.dag_id = r.dag_id AND NOT d.is_stale",
    )
    .bind(&uris)
    .bind(dag.asset_partition(interval))
    .bind(&dag.id)
    .bind(&task.id)
    .bind(run_id)
    .bind(map_index)
    .bind(try_number)
    .bind(interval.start)
    .bind(interval.end)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One event waiting for a DAG.
struct Queued {
    event_id: i64,
    uri: String,
    partition: String,
}

/// Create the asset-triggered runs whose conditions hold: per DAG, per
/// partition in order of the first event, one run from all the events
/// queued for that partition. Paused DAGs keep their queue until unpaused.
/// Returns the number of runs created.
pub async fn create_triggered_runs(store: &Store, bag: &DagBag) -> Result<usize, StoreError> {
    let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT q.target_dag_id, q.event_id, a.uri, e.partition
         FROM asset_queue q
         JOIN asset_events e ON e.id = q.event_id
         JOIN assets a ON a.id = e.asset_id
         JOIN dags d ON d.dag_id = q.target_dag_id
         WHERE NOT d.is_paused AND NOT d.is_stale
         ORDER BY q.event_id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut by_dag: BTreeMap<String, Vec<Queued>> = BTreeMap::new();
    for (dag_id, event_id, uri, partition) in rows {
        by_dag.entry(dag_id).or_default().push(Queued {
            event_id,
            uri,
            partition,
        });
    }
    let mut created = 0;
    for (dag_id, queued) in by_dag {
        let Some(dag) = bag.get(&dag_id) else {
            continue;
        };
        let Some(condition) = &dag.asset_schedule else {
            continue;
        };
        for events in ready_partitions(condition, &queued) {
            if create_triggered_run(store, dag, &events).await?.is_some() {
                created += 1;
            }
        }
    }
    Ok(created)
}

/// The event ids of each partition whose updates satisfy `condition`, in
/// order of each partition's first event.
fn ready_partitions(condition: &AssetCondition, queued: &[Queued]) -> Vec<Vec<i64>> {
    let mut order: Vec<&str> = Vec::new();
    let mut parts: BTreeMap<&str, (BTreeSet<&str>, Vec<i64>)> = BTreeMap::new();
    for q in queued {
        let entry = parts.entry(q.partition.as_str()).or_insert_with(|| {
            order.push(q.partition.as_str());
            Default::default()
        });
        entry.0.insert(q.uri.as_str());
        entry.1.push(q.event_id);
    }
    order
        .into_iter()
        .filter_map(|p| {
            let (uris, ids) = &parts[p];
            condition.holds(uris).then(|| ids.clone())
        })
        .collect()
}

/// One run from `events`, taken off the DAG's queue in the same
/// transaction; `None` when another scheduler took them first.
async fn create_triggered_run(
    store: &Store,
    dag: &Dag,
    events: &[i64],
) -> Result<Option<String>, StoreError> {
    let mut tx = store.pool().begin().await?;
    let taken: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM asset_queue WHERE target_dag_id = $1 AND event_id = ANY($2) RETURNING event_id",
    )
    .bind(&dag.id)
    .bind(events)
    .fetch_all(&mut *tx)
    .await?;
    if taken.len() != events.len() {
        return Ok(None);
    }
    // The run covers the data its triggering events came from.
    let (start, end): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT min(data_interval_start), max(data_interval_end) FROM asset_events WHERE id = ANY($1)",
    )
    .bind(events)
    .fetch_one(&mut *tx)
    .await?;
    // Postgres keeps microseconds: the run id then matches the logical date.
    let now = Utc::now().trunc_subsecs(6);
    let interval = DataInterval {
        start: start.unwrap_or(now),
        end: end.or(start).unwrap_or(now).max(start.unwrap_or(now)),
    };
    let run_id = triggered_run_id(now);
    let run: Option<i64> = sqlx::query_scalar(
        "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end,
                               run_type, state, conf, dag_version, partition_key)
         VALUES ($1, $2, $3, $4, $5, 'asset_triggered', 'queued', '{}',
                 (SELECT max(version_number) FROM dag_versions WHERE dag_id = $1),
                 (SELECT NULLIF(min(partition), '') FROM asset_events WHERE id = ANY($6)))
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&dag.id)
    .bind(&run_id)
    .bind(now)
    .bind(interval.start)
    .bind(interval.end)
    .bind(events)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(run) = run else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO dag_run_asset_events (dag_run_id, event_id) SELECT $1, unnest($2::bigint[])",
    )
    .bind(run)
    .bind(events)
    .execute(&mut *tx)
    .await?;
    notify_wakeup(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!(dag_id = %dag.id, %run_id, events = events.len(), "asset-triggered run created");
    Ok(Some(run_id))
}

/// `asset_triggered__2026-12-05T11:02:03.123456+00:00`: to the microsecond,
/// since several partitions can become ready in one pass.
pub fn triggered_run_id(at: DateTime<Utc>) -> String {
    format!(
        "asset_triggered__{}",
        at.to_rfc3339_opts(SecondsFormat::Micros, false)
    )
}

/// Record the assets the DAGs of `bag` declare and who produces, reads and
/// is scheduled on each, replacing what was recorded for those DAGs.
pub(crate) async fn sync_references(
    tx: &mut sqlx::PgConnection,
    bag: &DagBag,
) -> Result<(), sqlx::Error> {
    for dag in bag.dags() {
        let mut declared: BTreeMap<&str, &Asset> = BTreeMap::new();
        let mut task_refs: Vec<(&str, &str, &str)> = Vec::new();
        for t in dag.tasks() {
            for (kind, list) in [("outlet", &t.outlets), ("inlet", &t.inlets)] {
                for a in list {
                    declared.entry(a.uri.as_str()).or_insert(a);
                    task_refs.push((a.uri.as_str(), t.id.as_str(), kind));
                }
            }
        }
        let scheduled: Vec<&str> = match &dag.asset_schedule {
            Some(c) => c
                .assets()
                .into_iter()
                .map(|a| {
                    declared.entry(a.uri.as_str()).or_insert(a);
                    a.uri.as_str()
                })
                .collect(),
            None => Vec::new(),
        };
        let (uris, names, groups) = unzip3(
            declared
                .values()
                .map(|a| (a.uri.as_str(), a.name.as_str(), a.group.as_str())),
        );
        sqlx::query(
            "INSERT INTO assets (uri, name, group_name)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
             ON CONFLICT (uri) DO UPDATE SET name = EXCLUDED.name, group_name = EXCLUDED.group_name,
                updated_at = now()
             WHERE (assets.name, assets.group_name) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.group_name)",
        )
        .bind(&uris)
        .bind(&names)
        .bind(&groups)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM asset_dag_refs r USING assets a
             WHERE r.asset_id = a.id AND r.dag_id = $1 AND NOT (a.uri = ANY($2))",
        )
        .bind(&dag.id)
        .bind(&scheduled)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO asset_dag_refs (asset_id, dag_id)
             SELECT id, $1 FROM assets WHERE uri = ANY($2) ON CONFLICT DO NOTHING",
        )
        .bind(&dag.id)
        .bind(&scheduled)
        .execute(&mut *tx)
        .await?;
        let (ref_uris, ref_tasks, ref_kinds) = unzip3(task_refs.iter().copied());
        sqlx::query(
            "DELETE FROM asset_task_refs r USING assets a
             WHERE r.asset_id = a.id AND r.dag_id = $1
               AND (a.uri, r.task_id, r.kind) NOT IN
                   (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]))",
        )
        .bind(&dag.id)
        .bind(&ref_uris)
        .bind(&ref_tasks)
        .bind(&ref_kinds)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO asset_task_refs (asset_id, dag_id, task_id, kind)
             SELECT a.id, $1, r.task_id, r.kind
             FROM unnest($2::text[], $3::text[], $4::text[]) AS r(uri, task_id, kind)
             JOIN assets a ON a.uri = r.uri
             ON CONFLICT DO NOTHING",
        )
        .bind(&dag.id)
        .bind(&ref_uris)
        .bind(&ref_tasks)
        .bind(&ref_kinds)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Columns for `unnest($1::text[], $2::text[], $3::text[])`.
fn unzip3<'a>(
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (x, y, z) in rows {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(uri: &str) -> Asset {
        Asset::new(uri)
    }

    fn set<'a>(uris: &[&'a str]) -> BTreeSet<&'a str> {
        uris.iter().copied().collect()
    }

    #[test]
    fn all_waits_for_every_asset_and_any_for_one() {
        let all = AssetCondition::all([a("x"), a("y")]);
        assert!(!all.holds(&set(&["x"])));
        assert!(all.holds(&set(&["x", "y", "z"])));
        let any = AssetCondition::any([a("x"), a("y")]);
        assert!(any.holds(&set(&["y"])));
        assert!(!any.holds(&set(&["z"])));
        assert!(!AssetCondition::All(vec![]).holds(&set(&["x"])));
    }

    #[test]
    fn conditions_nest_and_read_as_airflow_writes_them() {
        let c = AssetCondition::All(vec![
            AssetCondition::Asset(a("x")),
            AssetCondition::any([a("y"), a("z")]),
        ]);
        assert!(c.holds(&set(&["x", "z"])));
        assert!(!c.holds(&set(&["y", "z"])));
        assert_eq!(c.describe(), "x & (y | z)");
        assert_eq!(c.expression()["all"][1]["any"][0]["asset"]["uri"], "y");
        let uris: Vec<&str> = c.assets().iter().map(|a| a.uri.as_str()).collect();
        assert_eq!(uris, ["x", "y", "z"]);
    }

    #[test]
    fn a_run_takes_one_partition_whose_condition_holds() {
        let c = AssetCondition::all([a("games"), a("odds")]);
        let q = |event_id, uri: &str, partition: &str| Queued {
            event_id,
            uri: uri.to_owned(),
            partition: partition.to_owned(),
        };
        let queued = [
            q(1, "games", "2026-12-04"),
            q(2, "games", "2026-12-05"),
            q(3, "odds", "2026-12-05"),
            q(4, "games", "2026-12-05"),
        ];
        // The 4th is partition 12-05 only; 12-04 still waits for its odds.
        assert_eq!(ready_partitions(&c, &queued), vec![vec![2, 3, 4]]);
    }

    #[test]
    fn triggered_run_ids_keep_microseconds() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T11:02:03.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            triggered_run_id(at),
            "asset_triggered__2026-12-05T11:02:03.123456+00:00"
        );
    }
}
