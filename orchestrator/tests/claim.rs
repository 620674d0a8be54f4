//! A claim takes the best queued instances its free slots allow, within
//! each DAG's `max_active_tasks` (docs/scheduler.md, "Claiming"): when the
//! rows it first looked at belong to a full DAG, it looks further in the
//! same claim instead of leaving slots idle.

use orchestrator::executor::{self, Lookahead};
use orchestrator::scheduler;
use orchestrator::store::write::RunType;
use orchestrator::store::KeptConnection;
use orchestrator::{task_fn, Dag, DagBag, TaskSpec};
use serde_json::Value;

mod common;
use common::{cluster, day};

/// `tasks` independent no-ops of priority `weight`, at most `max_active`
/// of them running at once.
fn dag(id: &str, tasks: usize, weight: i32, max_active: u32) -> Dag {
    let mut b = Dag::builder(id)
        .schedule("@daily", "UTC")
        .max_active_tasks(max_active);
    for i in 0..tasks {
        b.task(
            TaskSpec::new(format!("t{i}"), task_fn(|_| async { Ok(Value::Null) }))
                .priority_weight(weight),
        );
    }
    b.build().expect("DAG builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_steps_over_a_full_dags_instances_and_fills_its_slots_from_others() {
    let mut bag = DagBag::new();
    // The narrow DAG's instances come first (higher priority) but only
    // one of them may run.
    bag.add(dag("narrow", 5, 10, 1));
    bag.add(dag("open", 3, 1, 16));
    let c = cluster(&bag).await;
    for id in ["narrow", "open"] {
        let dag = bag.get(id).expect("DAG");
        c.store
            .create_runs(RunType::Scheduled, &[(dag.as_ref(), day(0))])
            .await
            .expect("create run");
    }
    scheduler::start_queued_runs(&c.store, &bag)
        .await
        .expect("start runs");
    let advanced = scheduler::advance_runs(&c.store, &bag, &mut scheduler::Turns::default())
        .await
        .expect("queue the tasks");
    assert_eq!(advanced.queued, 8);
    let me = orchestrator::engine::new_identity();
    let mut lookahead = Lookahead::default();
    let unanswered = executor::UnansweredClaims::default();
    let mut db = KeptConnection::new(c.store.clone());

    // Two slots: the two best rows are both the narrow DAG's, so the claim
    // looks further and takes one instance of each DAG.
    let first = executor::claim(&mut db, &bag, &me, 2, &mut lookahead, &unanswered)
        .await
        .expect("first claim");
    let mut dags: Vec<&str> = first.iter().map(|t| t.dag_id.as_str()).collect();
    dags.sort_unstable();
    assert_eq!(dags, ["narrow", "open"]);

    // The narrow DAG is full: the next claim takes the open DAG's other two.
    let second = executor::claim(&mut db, &bag, &me, 4, &mut lookahead, &unanswered)
        .await
        .expect("second claim");
    let dags: Vec<&str> = second.iter().map(|t| t.dag_id.as_str()).collect();
    assert_eq!(dags, ["open", "open"]);

    // Nothing else may run until the narrow DAG's running instance ends.
    let third = executor::claim(&mut db, &bag, &me, 4, &mut lookahead, &unanswered)
        .await
        .expect("third claim");
    assert!(third.is_empty(), "{third:?}");
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_instances WHERE dag_id = 'narrow' AND state = 'queued'",
    )
    .fetch_one(&c.pool)
    .await
    .expect("queued");
    assert_eq!(queued, 4);
}
