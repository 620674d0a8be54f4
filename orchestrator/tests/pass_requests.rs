//! The runs executors ask a scheduler pass for (`run_schedule_requests`,
//! migration 29): a pass examines the running ones and takes their
//! requests, and drops the requests of runs that have ended meanwhile.

use orchestrator::schedule::DataInterval;
use orchestrator::scheduler;
use orchestrator::store::write::RunType;
use orchestrator::{Dag, DagBag};

mod common;
use common::{cluster, daily, day};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_takes_the_requests_of_running_runs_and_drops_those_of_ended_ones() {
    let mut bag = DagBag::new();
    bag.add(daily("requests"));
    let c = cluster(&bag).await;
    let dag = bag.get("requests").expect("DAG").clone();

    let runs: Vec<(&Dag, DataInterval)> = (0..2).map(|i| (dag.as_ref(), day(i))).collect();
    c.store
        .create_runs(RunType::Scheduled, &runs)
        .await
        .expect("create runs");
    let started = scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start runs");
    assert_eq!(started.runs, 2);
    let run_ids: Vec<String> = sqlx::query_scalar(
        "SELECT run_id FROM dag_runs WHERE dag_id = 'requests' ORDER BY logical_date",
    )
    .fetch_all(&c.pool)
    .await
    .expect("run ids");
    // The second run ends (marked by a user) after an executor asked for it.
    sqlx::query("UPDATE dag_runs SET state = 'success' WHERE run_id = $1")
        .bind(&run_ids[1])
        .execute(&c.pool)
        .await
        .expect("mark the second run");
    for run_id in &run_ids {
        sqlx::query(
            "INSERT INTO run_schedule_requests (dag_id, run_id) VALUES ('requests', $1), ('requests', $1)",
        )
        .bind(run_id)
        .execute(&c.pool)
        .await
        .expect("request a pass");
    }

    let advanced = scheduler::advance_runs(&c.store, &bag, &mut scheduler::Turns::default())
        .await
        .expect("a pass");

    // The running run was examined: its one task is queued.
    assert_eq!(advanced.queued, 1);
    let task_state = |run_id: &str| {
        let (pool, run_id) = (c.pool.clone(), run_id.to_owned());
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT state FROM task_instances
                 WHERE dag_id = 'requests' AND run_id = $1 AND task_id = 'only'",
            )
            .bind(run_id)
            .fetch_one(&pool)
            .await
            .expect("task state")
        }
    };
    assert_eq!(task_state(&run_ids[0]).await, "queued");
    // Both runs' requests are gone; the ended run's task was left alone.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM run_schedule_requests")
        .fetch_one(&c.pool)
        .await
        .expect("requests left");
    assert_eq!(left, 0);
    assert_eq!(task_state(&run_ids[1]).await, "none");
}
