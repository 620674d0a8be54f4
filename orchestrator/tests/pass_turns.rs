//! How a scheduler pass starts queued runs and takes turns among running
//! ones (docs/scheduler.md, "Passes"): each DAG starts its oldest queued
//! runs within `max_active_runs`, a paused DAG starts none, and a pass
//! stamps a run's turn at most once a second, never for a run it ended.

use chrono::{DateTime, Utc};
use orchestrator::schedule::DataInterval;
use orchestrator::scheduler;
use orchestrator::store::write::RunType;
use orchestrator::{task_fn, Dag, DagBag, TaskSpec};
use serde_json::Value;

mod common;
use common::{cluster, daily, day, Cluster};

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
    let runs: Vec<(&Dag, DataInterval)> = (0..days).map(|i| (dag, day(i))).collect();
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

/// Each run's turn stamp, by day.
async fn stamps(c: &Cluster) -> Vec<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT last_scheduling_decision FROM dag_runs ORDER BY logical_date")
        .fetch_all(&c.pool)
        .await
        .expect("stamps")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_stamps_a_turn_at_most_once_a_second_and_never_for_a_run_it_ended() {
    let mut bag = DagBag::new();
    bag.add(daily("turns"));
    let c = cluster(&bag).await;
    queue_days(&c, bag.get("turns").expect("DAG"), 2).await;
    scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start runs");

    // The first pass examines both just-started runs, queues both tasks in
    // one statement, and stamps both.
    let first = scheduler::advance_runs(&c.store, &bag)
        .await
        .expect("first pass");
    assert_eq!(first.queued, 2);
    let stamped = stamps(&c).await;
    assert!(stamped.iter().all(Option::is_some), "{stamped:?}");

    // Examined again within the second (the stamps are put ahead of the
    // clock, so that the test does not depend on how fast it runs): the
    // stamps stay as they were.
    sqlx::query("UPDATE dag_runs SET last_scheduling_decision = now() + interval '1 hour'")
        .execute(&c.pool)
        .await
        .expect("stamp both runs just now");
    let stamped = stamps(&c).await;
    scheduler::advance_runs(&c.store, &bag)
        .await
        .expect("second pass");
    assert_eq!(stamps(&c).await, stamped);

    // A stamp older than a second is renewed.
    sqlx::query(
        "UPDATE dag_runs SET last_scheduling_decision = last_scheduling_decision - interval '2 hours'
         WHERE logical_date = '2024-01-01'",
    )
    .execute(&c.pool)
    .await
    .expect("age the first stamp");
    let aged = stamps(&c).await;
    scheduler::advance_runs(&c.store, &bag)
        .await
        .expect("third pass");
    let renewed = stamps(&c).await;
    assert!(renewed[0] > aged[0], "{aged:?} -> {renewed:?}");
    assert_eq!(renewed[1], stamped[1]);

    // The second run's task succeeds: the pass ends that run and leaves
    // its stamp alone, however old.
    sqlx::query(
        "UPDATE dag_runs SET last_scheduling_decision = last_scheduling_decision - interval '2 hours'
         WHERE logical_date = '2024-01-02'",
    )
    .execute(&c.pool)
    .await
    .expect("age the second stamp");
    sqlx::query(
        "UPDATE task_instances SET state = 'success', end_date = now()
         WHERE run_id = (SELECT run_id FROM dag_runs WHERE logical_date = '2024-01-02')",
    )
    .execute(&c.pool)
    .await
    .expect("the second run's task succeeds");
    let before = stamps(&c).await;
    let last = scheduler::advance_runs(&c.store, &bag)
        .await
        .expect("fourth pass");
    assert_eq!(last.finished, 1);
    assert_eq!(days_in(&c, "turns", "success").await, [1]);
    assert_eq!(stamps(&c).await[1], before[1]);
}
