//! A cleared task's outputs go with it: when its next try returns nothing,
//! its readers get nothing, not the output of the try before the clear
//! (Airflow clears a task's XComs before each try).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator::{task_fn, Dag, DagBag, EngineConfig, TaskSpec};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

mod common;
use common::{cluster, run_once, Cluster};

/// `produce → read ← wait`: `produce` returns `{"v": 1}` on its first try
/// and nothing after; `read` notes what it was given. `wait` ends after
/// `produce`, so `read` is handed over with `wait`'s batch and reads
/// `produce`'s output from the database.
fn dag(tries: Arc<AtomicUsize>, seen: Arc<Mutex<Vec<Option<Value>>>>) -> Dag {
    let mut b = Dag::builder("cleared_outputs");
    let produce = b.task(TaskSpec::new(
        "produce",
        task_fn(move |_| {
            let first = tries.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                Ok(if first {
                    json!({ "v": 1 })
                } else {
                    Value::Null
                })
            }
        }),
    ));
    let read = b.task(TaskSpec::new(
        "read",
        task_fn(move |ctx| {
            seen.lock()
                .expect("seen")
                .push(ctx.upstream::<Value>("produce").ok());
            async { Ok(Value::Null) }
        }),
    ));
    let wait = b.task(TaskSpec::new(
        "wait",
        task_fn(|_| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Value::Null)
        }),
    ));
    b.edge(&produce, &read);
    b.edge(&wait, &read);
    b.build().expect("DAG builds")
}

async fn run_state(c: &Cluster, run_id: &str) -> String {
    sqlx::query_scalar(
        "SELECT state FROM dag_runs WHERE dag_id = 'cleared_outputs' AND run_id = $1",
    )
    .bind(run_id)
    .fetch_one(&c.pool)
    .await
    .expect("run state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_task_that_returns_nothing_leaves_its_readers_nothing() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut bag = DagBag::new();
    bag.add(dag(Arc::new(AtomicUsize::new(0)), seen.clone()));
    let c = cluster(&bag).await;
    let (run_id, state) = run_once(&c, &bag, "cleared_outputs", json!({})).await;
    assert_eq!(state, "success");

    let dag = bag.get("cleared_outputs").expect("DAG").clone();
    let ids = vec!["produce".to_owned(), "read".to_owned(), "wait".to_owned()];
    let cleared = c
        .store
        .clear_tasks(&dag, &run_id, &ids)
        .await
        .expect("clear");
    assert_eq!(cleared, ids);
    let token = CancellationToken::new();
    let config = EngineConfig {
        run_streams: false,
        create_scheduled_runs: false,
        ..EngineConfig::default()
    };
    let engine = tokio::spawn(orchestrator::engine::run(
        c.store.clone(),
        bag.clone(),
        config,
        token.clone(),
    ));
    let started = Instant::now();
    while run_state(&c, &run_id).await != "success" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the cleared run did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    engine.await.expect("join").expect("engine stops");

    assert_eq!(
        *seen.lock().expect("seen"),
        vec![Some(json!({ "v": 1 })), None],
        "the second read got the first try's output"
    );
    let outputs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM xcom WHERE dag_id = 'cleared_outputs' AND run_id = $1",
    )
    .bind(&run_id)
    .fetch_one(&c.pool)
    .await
    .expect("count");
    assert_eq!(outputs, 0, "no output is left of the try before the clear");
}
