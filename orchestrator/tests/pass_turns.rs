//! How a scheduler pass starts queued runs and takes turns among running
//! ones (docs/scheduler.md, "Passes"): each DAG starts its oldest queued
//! runs within `max_active_runs`, a paused DAG starts none, running runs
//! take turns by id, and a run just started goes before them.

use orchestrator::schedule::DataInterval;
use orchestrator::scheduler;
use orchestrator::store::write::RunType;
use orchestrator::{task_fn, Dag, DagBag, TaskSpec};
use serde_json::Value;

mod common;
use common::{cluster, day, Cluster};

/// A daily DAG of one no-op task that runs at most `n` runs at once.
fn limited(id: &str, n: u32) -> Dag {
    let mut b = Dag::builder(id)
        .schedule("@daily", "UTC")
        .max_active_runs(n);
    b.task(TaskSpec::new(
        "only",
        task_fn(|_| async { Ok(Value::Null) }),
    ));
    b.build().expect("DAG builds")
}

async fn queue_days(c: &Cluster, dag: &Dag, days: i64) {
    queue_days_from(c, dag, 0, days).await;
}

async fn queue_days_from(c: &Cluster, dag: &Dag, first: i64, days: i64) {
    let runs: Vec<(&Dag, DataInterval)> = (first..first + days).map(|i| (dag, day(i))).collect();
    c.store
        .create_runs(RunType::Scheduled, &runs)
        .await
        .expect("create runs");
}

/// The days (from 2024-01-01) of a DAG's runs in `state`.
async fn days_in(c: &Cluster, dag_id: &str, state: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT ((logical_date AT TIME ZONE 'UTC')::date - DATE '2024-01-01')::bigint FROM dag_runs
         WHERE dag_id = $1 AND state = $2 ORDER BY logical_date",
    )
    .bind(dag_id)
    .bind(state)
    .fetch_all(&c.pool)
    .await
    .expect("runs by state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dag_starts_its_oldest_queued_runs_within_max_active_runs() {
    let mut bag = DagBag::new();
    bag.add(limited("two_at_once", 2));
    bag.add(limited("one_at_once", 1));
    bag.add(limited("paused", 5));
    let c = cluster(&bag).await;
    for id in ["two_at_once", "one_at_once", "paused"] {
        queue_days(&c, bag.get(id).expect("DAG"), 4).await;
    }
    sqlx::query("UPDATE dags SET is_paused = dag_id = 'paused'")
        .execute(&c.pool)
        .await
        .expect("pause one DAG");

    let started = scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start runs");

    assert_eq!(started.runs, 3);
    assert!(!started.more, "nothing more may start");
    assert_eq!(days_in(&c, "two_at_once", "running").await, [0, 1]);
    assert_eq!(days_in(&c, "one_at_once", "running").await, [0]);
    assert_eq!(days_in(&c, "paused", "running").await, Vec::<i64>::new());
    // Each started run has its task instance; the queued ones have none yet.
    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM task_instances")
        .fetch_one(&c.pool)
        .await
        .expect("instances");
    assert_eq!(instances, 3);

    // A finished run makes room for the next oldest, and only that one.
    sqlx::query(
        "UPDATE dag_runs SET state = 'success' WHERE dag_id = 'two_at_once'
           AND logical_date = '2024-01-01'",
    )
    .execute(&c.pool)
    .await
    .expect("finish the oldest run");
    let started = scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start runs");
    assert_eq!(started.runs, 1);
    assert_eq!(days_in(&c, "two_at_once", "running").await, [1, 2]);
}

/// The days of the runs whose one task a pass queued, in order.
async fn queued_days(c: &Cluster) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT ((r.logical_date AT TIME ZONE 'UTC')::date - DATE '2024-01-01')::bigint
         FROM task_instances ti JOIN dag_runs r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id
         WHERE ti.state = 'queued' ORDER BY r.logical_date",
    )
    .fetch_all(&c.pool)
    .await
    .expect("queued days")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_runs_take_turns_by_id_and_a_started_run_goes_first() {
    let mut bag = DagBag::new();
    bag.add(limited("turns", 10_000));
    let c = cluster(&bag).await;
    let per_pass = scheduler::RUNS_PER_PASS;
    let days = 2 * per_pass;
    queue_days(&c, bag.get("turns").expect("DAG"), days).await;
    // Running without asking for a pass (as after a restart): only turns
    // reach them. Their task instances are made by the pass that first
    // examines each.
    sqlx::query("UPDATE dag_runs SET state = 'running'")
        .execute(&c.pool)
        .await
        .expect("runs running");
    let mut turns = scheduler::Turns::default();

    // The first pass examines the first RUNS_PER_PASS runs by id, writing
    // nothing to the runs it only looked at.
    let first = scheduler::advance_runs(&c.store, &bag, &mut turns)
        .await
        .expect("first pass");
    assert_eq!(first.queued, per_pass as usize);
    assert_eq!(queued_days(&c).await, (0..per_pass).collect::<Vec<i64>>());

    // A run started now asks for a pass: the next one takes it before its
    // turn would come, then goes on with the turns where the last stopped.
    queue_days_from(&c, bag.get("turns").expect("DAG"), days, 1).await;
    let started = scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start the new run");
    assert_eq!(started.runs, 1);
    let second = scheduler::advance_runs(&c.store, &bag, &mut turns)
        .await
        .expect("second pass");
    assert_eq!(second.queued, per_pass as usize);
    let mut expected: Vec<i64> = (0..days - 1).collect();
    expected.push(days);
    assert_eq!(queued_days(&c).await, expected);

    // The third goes on to the last run, then starts over from the first.
    let third = scheduler::advance_runs(&c.store, &bag, &mut turns)
        .await
        .expect("third pass");
    assert_eq!(third.queued, 1);
    assert_eq!(queued_days(&c).await, (0..=days).collect::<Vec<i64>>());
}
