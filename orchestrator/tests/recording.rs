//! The engine against a real (embedded) Postgres: wide fan-outs are
//! recorded try by try whatever batch their tries end in, a mapped fan-out's
//! reader gets every output, and a try whose outcome the database refuses
//! fails with the reason while the tries beside it are kept.

use orchestrator::{task_fn, typed_fn, Dag, DagBag, Node, Output, TaskSpec, TypedSpec};
use serde_json::{json, Value};

mod common;
use common::{cluster, run_once, Cluster};

const WIDTH: usize = 300;

/// start → mid000..mid299 → end, where mid013 returns a string with a NUL
/// character (which Postgres cannot store) and end runs whatever they did.
fn fan_out() -> Dag {
    let mut b = Dag::builder("record_fan_out").max_active_tasks(10_000);
    let start = b.task(TaskSpec::new("start", task_fn(|_| async { Ok(json!(1)) })));
    let end = b.task(
        TaskSpec::new("end", task_fn(|_| async { Ok(Value::Null) }))
            .trigger_rule(orchestrator::TriggerRule::AllDone),
    );
    for i in 0..WIDTH {
        let out = if i == 13 {
            json!("a\u{0}b")
        } else {
            json!({ "i": i })
        };
        let mid: Node = b.task(TaskSpec::new(
            format!("mid{i:03}"),
            task_fn(move |ctx| {
                let out = out.clone();
                async move {
                    let one: i64 = ctx.upstream("start")?;
                    assert_eq!(one, 1);
                    ctx.log.info("a line with a NUL: \u{0}");
                    Ok(out)
                }
            }),
        ));
        b.edge(&start, &mid);
        b.edge(&mid, &end);
    }
    b.build().expect("fan-out builds")
}

/// numbers → double[0..300] → total, the sum of what the instances returned.
fn mapped() -> Dag {
    let mut b = Dag::builder("record_mapped").max_active_tasks(10_000);
    let numbers: Output<Vec<i64>> = b.add(TypedSpec::new(
        "numbers",
        typed_fn(|_| async { Ok((1..=WIDTH as i64).collect::<Vec<i64>>()) }),
    ));
    let doubled: Output<Vec<i64>> = b.add_mapped(
        TypedSpec::new(
            "double",
            typed_fn(|ctx: orchestrator::TaskContext| async move { Ok(ctx.item::<i64>()? * 2) }),
        )
        .expand_over(&numbers)
        .max_map_length(WIDTH),
    );
    let input = doubled.clone();
    b.add(
        TypedSpec::new(
            "total",
            typed_fn(move |ctx| {
                let input = input.clone();
                async move { Ok(input.get(&ctx)?.iter().sum::<i64>()) }
            }),
        )
        .reads(&doubled),
    );
    b.build().expect("mapped DAG builds")
}

async fn scalar<T>(c: &Cluster, sql: &str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sql)
        .fetch_one(&c.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_outcome_fails_its_try_and_keeps_every_other() {
    let mut bag = DagBag::new();
    bag.add(fan_out());
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "record_fan_out", json!({})).await;
    // `end` is the only leaf and ran (all_done): the run succeeds.
    assert_eq!(state, "success");

    let states: String = scalar(
        &c,
        &format!(
            "SELECT string_agg(state || ':' || n, ',' ORDER BY state) FROM (
                 SELECT state, count(*) AS n FROM task_instances
                 WHERE run_id = '{run}' AND task_id LIKE 'mid%' GROUP BY state) s"
        ),
    )
    .await;
    assert_eq!(states, format!("failed:1,success:{}", WIDTH - 1));
    // One try row per task, each output once, and every log kept.
    let tries: i64 = scalar(
        &c,
        &format!("SELECT count(*) FROM task_tries WHERE run_id = '{run}'"),
    )
    .await;
    assert_eq!(tries, WIDTH as i64 + 2);
    let outputs: i64 = scalar(
        &c,
        &format!("SELECT count(*) FROM xcom WHERE run_id = '{run}' AND task_id LIKE 'mid%'"),
    )
    .await;
    assert_eq!(outputs, WIDTH as i64 - 1);
    let error: String = scalar(
        &c,
        &format!("SELECT error FROM task_tries WHERE run_id = '{run}' AND task_id = 'mid013'"),
    )
    .await;
    assert!(
        error.starts_with("the try's outcome could not be recorded"),
        "{error}"
    );
    let nul_lines: i64 = scalar(
        &c,
        &format!(
            "SELECT count(*) FROM task_logs WHERE run_id = '{run}' AND message LIKE 'a line with a NUL: %'"
        ),
    )
    .await;
    assert_eq!(
        nul_lines, WIDTH as i64,
        "each mid's log line, its NUL replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_fan_out_gives_its_reader_every_output_in_order() {
    let mut bag = DagBag::new();
    bag.add(mapped());
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "record_mapped", json!({})).await;
    assert_eq!(state, "success");
    let total: String = scalar(
        &c,
        &format!("SELECT value::text FROM xcom WHERE run_id = '{run}' AND task_id = 'total'"),
    )
    .await;
    let n = WIDTH as i64;
    assert_eq!(total, (n * (n + 1)).to_string());
    let tries: i64 = scalar(
        &c,
        &format!("SELECT count(*) FROM task_tries WHERE run_id = '{run}' AND task_id = 'double'"),
    )
    .await;
    assert_eq!(tries, n);
}
