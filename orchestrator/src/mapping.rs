//! Dynamic task mapping (Airflow's `expand`): a task declared over a list
//! becomes, at run time, one task instance per item (`map_index` 0..n),
//! once the list is known: when the run starts for a param, when the
//! upstream task succeeded for an output. See docs/mapping.md.
//!
//! Until then the task has one placeholder instance (`map_index` -1), as
//! every unmapped task does; the scheduler replaces it with the mapped
//! instances in the transaction that decides the task may run. An empty
//! list skips the task; a list longer than its cap, or a value that is not
//! a list, fails it with the reason in its log.

use serde_json::{Map, Value};
use sqlx::{Postgres, Transaction};

use crate::dag::{Dag, TaskNode};
use crate::store::StoreError;

/// The most instances one mapped task may expand to unless it says
/// otherwise (Airflow's `max_map_length`).
pub const DEFAULT_MAX_MAP_LENGTH: usize = 1024;

/// Where a mapped task's list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapOver {
    /// A DAG param (its default, or the run's conf): a JSON array.
    Param(String),
    /// The output of an upstream task: a JSON array, or, when that task
    /// is mapped itself, the list of its instances' outputs.
    Output(String),
}

impl MapOver {
    /// `{"param": name}` or `{"output": task}`, as the DAG's structure
    /// and the API show it.
    pub fn describe(&self) -> Value {
        match self {
            MapOver::Param(name) => serde_json::json!({ "param": name }),
            MapOver::Output(task) => serde_json::json!({ "output": task }),
        }
    }
}

/// How a task is mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    pub over: MapOver,
    pub max_length: usize,
}

/// Why a mapped task could not be expanded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error("param `{0}` to map over is not set")]
    MissingParam(String),
    #[error("upstream task `{0}` left no output to map over")]
    MissingOutput(String),
    #[error("{list} to map over is not a list but {found}")]
    NotAList { list: String, found: &'static str },
    #[error("{list} has {len} items to map over, more than the task's max_map_length of {max}")]
    TooLong {
        list: String,
        len: usize,
        max: usize,
    },
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The items a task mapped by `spec` expands to, given the run's params
/// and, for [`MapOver::Output`], the upstream's output (already a list
/// of instance outputs when the upstream is mapped).
pub fn items(
    spec: &MapSpec,
    params: &Map<String, Value>,
    output: Option<&Value>,
) -> Result<Vec<Value>, MapError> {
    let (source, value) = match &spec.over {
        MapOver::Param(name) => (
            format!("param `{name}`"),
            params
                .get(name)
                .filter(|v| !v.is_null())
                .ok_or_else(|| MapError::MissingParam(name.clone()))?,
        ),
        MapOver::Output(task) => (
            format!("the output of `{task}`"),
            output.ok_or_else(|| MapError::MissingOutput(task.clone()))?,
        ),
    };
    let Value::Array(list) = value else {
        return Err(MapError::NotAList {
            list: source,
            found: kind_of(value),
        });
    };
    if list.len() > spec.max_length {
        return Err(MapError::TooLong {
            list: source,
            len: list.len(),
            max: spec.max_length,
        });
    }
    Ok(list.clone())
}

/// Outputs of `task_id`'s instances in `run_id`: the single instance's
/// value, or for a mapped task the list of its instances' outputs in
/// `map_index` order (instances that left none are left out, as
/// Airflow's lazy XCom sequence does).
pub async fn upstream_output(
    tx: &mut Transaction<'_, Postgres>,
    dag: &Dag,
    run_id: &str,
    task_id: &str,
) -> Result<Option<Value>, StoreError> {
    let rows: Vec<(i32, Value)> = sqlx::query_as(
        "SELECT map_index, value FROM xcom
         WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND key = 'return_value'
         ORDER BY map_index",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(task_id)
    .fetch_all(&mut **tx)
    .await?;
    let mapped: bool = dag.task(task_id).is_some_and(|t| t.map.is_some());
    Ok(collect_outputs(mapped, rows))
}

/// One value per task from `(map_index, value)` rows: the list of them
/// for a mapped task, else the unmapped instance's.
pub fn collect_outputs(mapped: bool, rows: Vec<(i32, Value)>) -> Option<Value> {
    if mapped {
        let values: Vec<Value> = rows
            .into_iter()
            .filter(|(i, _)| *i >= 0)
            .map(|(_, v)| v)
            .collect();
        return Some(Value::Array(values));
    }
    rows.into_iter().find(|(i, _)| *i == -1).map(|(_, v)| v)
}

/// What instance `map_index` of `task` reads of upstream `up`, from the
/// `(map_index, value)` rows `up` wrote: the same instance's value when
/// both are in one mapped group, else as [`collect_outputs`] gives it.
pub fn input_of(
    task: &TaskNode,
    map_index: i32,
    up: &TaskNode,
    rows: Vec<(i32, Value)>,
) -> Option<Value> {
    if task.follows_index_of(up) {
        return rows
            .into_iter()
            .find(|(i, _)| *i == map_index)
            .map(|(_, v)| v);
    }
    collect_outputs(up.map.is_some(), rows)
}

/// What expanding a mapped task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expansion {
    /// This many instances, queued.
    Queued(usize),
    /// This many instances of a task in a mapped group, each waiting for
    /// the same instance of the group's tasks upstream of it.
    Waiting(usize),
    /// The list was empty: the task is skipped.
    Skipped,
    /// The list could not be read: the task failed.
    Failed(String),
}

/// Replaces the placeholder instance of mapped `task` in `run_id` with
/// one queued instance per item, or skips or fails it; in the caller's
/// transaction, so the placeholder is expanded exactly once.
pub async fn expand(
    tx: &mut Transaction<'_, Postgres>,
    dag: &Dag,
    run_id: &str,
    task: &TaskNode,
    conf: &Value,
) -> Result<Expansion, StoreError> {
    let Some(spec) = &task.map else {
        return Ok(Expansion::Queued(0));
    };
    let output: Option<Value> = match &spec.over {
        MapOver::Output(up) => upstream_output(tx, dag, run_id, up).await?,
        MapOver::Param(_) => None,
    };
    let listed = items(spec, &dag.resolve_params(conf), output.as_ref());
    let (state, reason) = match &listed {
        Ok(list) if list.is_empty() => ("skipped", "an empty list to map over: skipped".to_owned()),
        Ok(_) => ("", String::new()),
        Err(e) => ("failed", format!("cannot expand the mapped task: {e}")),
    };
    if !state.is_empty() {
        sqlx::query(
            "UPDATE task_instances SET state = $4, end_date = now()
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = -1 AND state = 'none'",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(&task.id)
        .bind(state)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO task_logs (dag_id, run_id, task_id, map_index, try_number, ts, level, message)
             VALUES ($1, $2, $3, -1, 0, now(), $4, $5)",
        )
        .bind(&dag.id)
        .bind(run_id)
        .bind(&task.id)
        .bind(if state == "failed" { "ERROR" } else { "INFO" })
        .bind(&reason)
        .execute(&mut **tx)
        .await?;
        tracing::info!(dag_id = %dag.id, run_id, task_id = %task.id, "{reason}");
        return Ok(if state == "failed" {
            Expansion::Failed(reason)
        } else {
            Expansion::Skipped
        });
    }
    let list: Vec<Value> = listed.unwrap_or_default();
    let deleted = sqlx::query(
        "DELETE FROM task_instances
         WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = -1 AND state = 'none'",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(&task.id)
    .execute(&mut **tx)
    .await?;
    if deleted.rows_affected() == 0 {
        return Ok(Expansion::Queued(0));
    }
    let indexes: Vec<i32> = (0..list.len() as i32).collect();
    // An instance expanded again (the task was cleared) goes on from the
    // tries its index already had, as a cleared unmapped task does.
    sqlx::query(
        "INSERT INTO task_instances (dag_id, run_id, task_id, map_index, map_item, state, queued_at,
                                     try_number, max_tries, pool, pool_slots, priority_weight)
         SELECT $1, $2, $3, m.i, m.item, $10, CASE WHEN $10 = 'queued' THEN now() END,
                coalesce(h.tries, 0), coalesce(h.tries, 0) + $6, $7, $8, $9
         FROM unnest($4::int[], $5::jsonb[]) AS m(i, item)
         LEFT JOIN (SELECT map_index, max(try_number) AS tries FROM task_tries
                    WHERE dag_id = $1 AND run_id = $2 AND task_id = $3
                    GROUP BY map_index) h ON h.map_index = m.i
         ON CONFLICT DO NOTHING",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(&task.id)
    .bind(&indexes)
    .bind(&list)
    .bind(task.retry.retries as i32)
    .bind(&task.pool)
    .bind(task.pool_slots as i32)
    .bind(task.priority_weight)
    // A mapped group's instances wait: each queues when its own upstream
    // instances allow, in the pass that expanded it or a later one.
    .bind(if task.in_mapped_group { "none" } else { "queued" })
    .execute(&mut **tx)
    .await?;
    tracing::debug!(dag_id = %dag.id, run_id, task_id = %task.id, instances = list.len(), "expanded");
    Ok(if task.in_mapped_group {
        Expansion::Waiting(list.len())
    } else {
        Expansion::Queued(list.len())
    })
}

/// Turns the cleared mapped `tasks` of `run_id` back into their
/// placeholders, so the scheduler expands them again over their lists as
/// they are then. A task with an instance still running is left expanded.
pub async fn collapse(
    tx: &mut Transaction<'_, Postgres>,
    dag: &Dag,
    run_id: &str,
    tasks: &[&str],
) -> Result<(), StoreError> {
    let idle: Vec<String> = sqlx::query_scalar(
        "SELECT t FROM unnest($3::text[]) AS t
         WHERE NOT EXISTS (SELECT 1 FROM task_instances ti
                           WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = t
                             AND ti.state = 'running')",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(tasks)
    .fetch_all(&mut **tx)
    .await?;
    if idle.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM task_instances
         WHERE dag_id = $1 AND run_id = $2 AND task_id = ANY($3) AND map_index >= 0",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(&idle)
    .execute(&mut **tx)
    .await?;
    // A placeholder that failed or skipped its expansion was cleared with
    // the task; the others are made anew.
    let idle: Vec<&str> = idle.iter().map(String::as_str).collect();
    crate::scheduler::insert_task_instances(tx, dag, run_id, Some(&idle)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(over: MapOver, max_length: usize) -> MapSpec {
        MapSpec { over, max_length }
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_param_list_gives_one_item_per_element() {
        let s = spec(MapOver::Param("sports".into()), 10);
        let got = items(&s, &params(json!({"sports": ["nba", "nfl"]})), None).unwrap();
        assert_eq!(got, vec![json!("nba"), json!("nfl")]);
    }

    #[test]
    fn an_upstream_output_list_is_mapped() {
        let s = spec(MapOver::Output("list".into()), 10);
        let out = json!([{"n": 1}, {"n": 2}, {"n": 3}]);
        assert_eq!(items(&s, &Map::new(), Some(&out)).unwrap().len(), 3);
    }

    #[test]
    fn what_is_not_a_list_is_named() {
        let s = spec(MapOver::Param("sports".into()), 10);
        let err = items(&s, &params(json!({"sports": "nba"})), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "param `sports` to map over is not a list but a string"
        );
        let err = items(&s, &Map::new(), None).unwrap_err();
        assert_eq!(err, MapError::MissingParam("sports".into()));
        let s = spec(MapOver::Output("list".into()), 10);
        assert_eq!(
            items(&s, &Map::new(), None).unwrap_err(),
            MapError::MissingOutput("list".into())
        );
    }

    #[test]
    fn lists_longer_than_the_cap_are_refused() {
        let s = spec(MapOver::Param("ids".into()), 2);
        let err = items(&s, &params(json!({"ids": [1, 2, 3]})), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "param `ids` has 3 items to map over, more than the task's max_map_length of 2"
        );
        assert!(items(&s, &params(json!({"ids": [1, 2]})), None).is_ok());
    }

    #[test]
    fn a_mapped_upstream_gives_its_outputs_in_map_index_order() {
        let rows = vec![(0, json!("a")), (1, json!("b")), (3, json!("d"))];
        assert_eq!(collect_outputs(true, rows), Some(json!(["a", "b", "d"])));
        assert_eq!(collect_outputs(true, vec![]), Some(json!([])));
        assert_eq!(collect_outputs(false, vec![(-1, json!(7))]), Some(json!(7)));
        assert_eq!(collect_outputs(false, vec![]), None);
    }
}
