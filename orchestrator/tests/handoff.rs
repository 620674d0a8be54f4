//! The recorder claims the tasks it queues for its own executor, in the
//! transaction that queued them (`record::Handoff`): such a claim keeps a
//! pool's slots and a DAG's `max_active_tasks` like any other, a try's
//! dates say when its task ran, and a task handed over gets its upstream
//! outputs whichever batch they were recorded in.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use orchestrator::store::write::RunType;
use orchestrator::{task_fn, Dag, DagBag, DataInterval, EngineConfig, TaskSpec};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

mod common;
use common::{cluster, run_once, Cluster};

const WIDTH: usize = 6;

/// How long each `w` task of the limit tests sleeps.
const NAP: Duration = Duration::from_millis(40);

/// Runs of [`runs_wider_than_the_executors_slots_all_run_through_them`].
const RUNS: i64 = 60;

/// start → w0..w5 → end; each w sleeps `nap`, in `pool` if given.
fn fan_out(id: &str, pool: Option<&str>, max_active_tasks: u32, nap: Duration) -> Dag {
    let mut b = Dag::builder(id).max_active_tasks(max_active_tasks);
    let noop = || task_fn(|_| async { Ok(Value::Null) });
    let start = b.task(TaskSpec::new("start", noop()));
    let end = b.task(TaskSpec::new("end", noop()));
    for i in 0..WIDTH {
        let mut spec = TaskSpec::new(
            format!("w{i}"),
            task_fn(move |_| async move {
                tokio::time::sleep(nap).await;
                Ok(Value::Null)
            }),
        );
        if let Some(pool) = pool {
            spec = spec.pool(pool, 1);
        }
        let w = b.task(spec);
        b.edge(&start, &w);
        b.edge(&w, &end);
    }
    b.build().expect("fan-out builds")
}

/// The tries of the `w` tasks of `run`: (start, end), by start.
async fn w_tries(c: &Cluster, run: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT start_date, end_date FROM task_tries
         WHERE run_id = $1 AND task_id LIKE 'w%' ORDER BY start_date",
    )
    .bind(run)
    .fetch_all(&c.pool)
    .await
    .expect("read tries")
}

/// The most tries that ran at once.
fn most_at_once(tries: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    tries
        .iter()
        .map(|(start, _)| {
            tries
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_queued_into_a_one_slot_pool_run_one_at_a_time() {
    let mut bag = DagBag::new();
    bag.pool("single", 1);
    bag.add(fan_out("handoff_pool", Some("single"), 100, NAP));
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "handoff_pool", json!({})).await;
    assert_eq!(state, "success");
    let tries = w_tries(&c, &run).await;
    assert_eq!(tries.len(), WIDTH);
    assert_eq!(most_at_once(&tries), 1, "{tries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_wider_than_the_executors_slots_all_run_through_them() {
    // Two slots and sixty fan-outs at once: the recorder holds both slots
    // for tries it has claimed but not yet handed over while the executor
    // looks for a free one; the executor must wait for those tries too,
    // not only for a slot to free.
    let mut bag = DagBag::new();
    bag.add(fan_out("handoff_two_slots", None, 100, Duration::ZERO));
    let c = cluster(&bag).await;
    let dag = bag.get("handoff_two_slots").expect("in bag").clone();
    let start = Utc::now();
    for i in 0..RUNS {
        let at = start + chrono::Duration::seconds(i);
        let interval = DataInterval { start: at, end: at };
        c.store
            .create_run(&dag, RunType::Manual, interval, &json!({}))
            .await
            .expect("create run")
            .expect("new run");
    }
    let config = EngineConfig {
        parallelism: 2,
        // The executor looks for work every millisecond, so it often
        // does while the recorder holds the slots.
        poll_interval: Duration::from_millis(1),
        run_streams: false,
        create_scheduled_runs: false,
        ..EngineConfig::default()
    };
    let token = CancellationToken::new();
    let engine = tokio::spawn(orchestrator::engine::run(
        c.store.clone(),
        bag.clone(),
        config,
        token.clone(),
    ));
    let waited = Instant::now();
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dag_runs WHERE dag_id = 'handoff_two_slots' AND state = 'success'",
        )
        .fetch_one(&c.pool)
        .await
        .expect("count runs");
        if done == RUNS {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "{done} of {RUNS} runs done after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    engine.await.expect("join").expect("engine stops cleanly");
    let tries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_tries WHERE dag_id = 'handoff_two_slots'")
            .fetch_one(&c.pool)
            .await
            .expect("count tries");
    assert_eq!(tries, RUNS * (WIDTH as i64 + 2), "each task once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_queued_by_a_try_keep_their_dags_max_active_tasks() {
    let mut bag = DagBag::new();
    bag.add(fan_out("handoff_max_active", None, 2, NAP));
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "handoff_max_active", json!({})).await;
    assert_eq!(state, "success");
    let tries = w_tries(&c, &run).await;
    assert_eq!(tries.len(), WIDTH);
    assert!(most_at_once(&tries) <= 2, "{tries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tries_dates_are_when_its_task_ran_and_the_next_starts_after_it() {
    let mut bag = DagBag::new();
    let mut b = Dag::builder("handoff_dates");
    let first = b.task(TaskSpec::new(
        "first",
        task_fn(|_| async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok(Value::Null)
        }),
    ));
    let second = b.task(TaskSpec::new(
        "second",
        task_fn(|_| async { Ok(Value::Null) }),
    ));
    b.edge(&first, &second);
    bag.add(b.build().expect("chain builds"));
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "handoff_dates", json!({})).await;
    assert_eq!(state, "success");

    type Dates = (String, DateTime<Utc>, DateTime<Utc>, f64);
    let dates = |table: &'static str| {
        let sql = format!(
            "SELECT task_id, start_date, end_date, duration FROM {table}
             WHERE run_id = $1 ORDER BY task_id"
        );
        let (pool, run) = (c.pool.clone(), run.clone());
        async move {
            sqlx::query_as::<_, Dates>(&sql)
                .bind(&run)
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("reading {table}: {e}"))
        }
    };
    let instances = dates("task_instances").await;
    let tries = dates("task_tries").await;
    assert_eq!(instances, tries, "an instance's dates are its last try's");
    let (_, first_start, first_end, first_took) = &instances[0];
    let (_, second_start, _, _) = &instances[1];
    assert!(*first_took >= 0.15, "the task slept 150 ms: {first_took}");
    let span = (*first_end - *first_start).num_microseconds().unwrap() as f64 / 1e6;
    assert!(
        (span - first_took).abs() < 1e-3,
        "{span} against {first_took}"
    );
    assert!(
        second_start >= first_end,
        "{second_start} before {first_end}"
    );
}

/// a → b → c and a → slow → fan_in ← c: `b` and `c` are handed over with
/// the batch their upstream ended in, inputs and all; `fan_in` is handed
/// over with `slow`'s batch, while `c` ended in an earlier one, so its
/// inputs are read back. Each returns what it was given, added up.
fn outputs() -> Dag {
    let mut b = Dag::builder("handoff_outputs");
    let a = b.task(TaskSpec::new("a", task_fn(|_| async { Ok(json!(1)) })));
    let plus_one = |from: &'static str| {
        task_fn(move |ctx| async move { Ok(json!(ctx.upstream::<i64>(from)? + 1)) })
    };
    let bb = b.task(TaskSpec::new("b", plus_one("a")));
    let c = b.task(TaskSpec::new("c", plus_one("b")));
    let slow = b.task(TaskSpec::new(
        "slow",
        task_fn(|_| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(json!(10))
        }),
    ));
    let fan_in = b.task(TaskSpec::new(
        "fan_in",
        task_fn(|ctx| async move {
            Ok(json!(
                ctx.upstream::<i64>("c")? + ctx.upstream::<i64>("slow")?
            ))
        }),
    ));
    b.chain(&[&a, &bb, &c, &fan_in]);
    b.edge(&a, &slow);
    b.edge(&slow, &fan_in);
    b.build().expect("DAG builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_reach_handed_over_tasks_from_their_batch_or_read_back() {
    let mut bag = DagBag::new();
    bag.add(outputs());
    let c = cluster(&bag).await;
    let (run_id, state) = run_once(&c, &bag, "handoff_outputs", json!({})).await;
    assert_eq!(state, "success");
    let got: Vec<(String, Value)> = sqlx::query_as(
        "SELECT task_id, value FROM xcom WHERE run_id = $1 AND key = 'return_value' ORDER BY task_id",
    )
    .bind(&run_id)
    .fetch_all(&c.pool)
    .await
    .expect("outputs");
    let want: Vec<(String, Value)> = [("a", 1), ("b", 2), ("c", 3), ("fan_in", 13), ("slow", 10)]
        .into_iter()
        .map(|(t, v)| (t.to_owned(), json!(v)))
        .collect();
    assert_eq!(got, want);
}
