//! A worker's heartbeat over its running tries (`executor::heartbeat_tries`)
//! never waits for a row another transaction holds: the recorder holds the
//! tries it is finishing, and a heartbeat waiting on one of them while
//! holding others deadlocked with it.

use std::time::Duration;

use orchestrator::executor::{heartbeat_tries, WorkerIdentity};
use orchestrator::scheduler;
use orchestrator::store::write::RunType;
use orchestrator::{Dag, DagBag};

mod common;
use common::{cluster, daily, day};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_skips_the_tries_the_recorder_holds_instead_of_waiting() {
    let mut bag = DagBag::new();
    bag.add(daily("beats"));
    let c = cluster(&bag).await;
    let dag = bag.get("beats").expect("DAG").clone();
    let runs: Vec<(&Dag, _)> = (0..2).map(|i| (dag.as_ref(), day(i))).collect();
    c.store
        .create_runs(RunType::Scheduled, &runs)
        .await
        .expect("create runs");
    scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start runs");
    // Both runs' tries are running on this worker, last seen long ago.
    sqlx::query(
        "UPDATE task_instances SET state = 'running', worker_id = 'w1', try_number = 1,
                start_date = now(), heartbeat_at = now() - interval '1 hour'
         WHERE dag_id = 'beats'",
    )
    .execute(&c.pool)
    .await
    .expect("tries running");
    let run_ids: Vec<String> = sqlx::query_scalar(
        "SELECT run_id FROM dag_runs WHERE dag_id = 'beats' ORDER BY logical_date",
    )
    .fetch_all(&c.pool)
    .await
    .expect("run ids");

    // The recorder is finishing the first run's try: it holds its row.
    let mut recorder = c.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM task_instances WHERE run_id = $1 FOR UPDATE")
        .bind(&run_ids[0])
        .execute(&mut *recorder)
        .await
        .expect("hold the first try");

    let me = WorkerIdentity {
        worker_id: "w1".into(),
        hostname: "test".into(),
    };
    let marked = tokio::time::timeout(Duration::from_secs(5), heartbeat_tries(&c.store, &me))
        .await
        .expect("the heartbeat does not wait for the held try")
        .expect("heartbeat");
    assert_eq!(marked, 1, "only the try nobody holds");
    let fresh: Vec<(String, bool)> = sqlx::query_as(
        "SELECT run_id, heartbeat_at > now() - interval '1 minute' FROM task_instances
         WHERE dag_id = 'beats' ORDER BY run_id",
    )
    .fetch_all(&c.pool)
    .await
    .expect("heartbeats");
    assert_eq!(
        fresh,
        [(run_ids[0].clone(), false), (run_ids[1].clone(), true)]
    );
    recorder.rollback().await.expect("release");
    // Once released, the next heartbeat marks it too.
    assert_eq!(heartbeat_tries(&c.store, &me).await.expect("heartbeat"), 2);
}
