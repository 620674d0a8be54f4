//! A mapped task group through a whole engine on a real (embedded)
//! Postgres: each of its tasks runs once per item, instance `i` of a task
//! waits only for instance `i` of the one before it and reads that
//! instance's output, one item's failure leaves the other items' chains
//! running, and a task after the group reads every instance's output.

use std::time::Duration;

use orchestrator::{
    typed_fn, Dag, DagBag, EngineConfig, GroupOutput, MapOver, TaskContext, TaskError, TypedSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod common;
use common::{cluster, run_once, run_once_with, Cluster};

#[derive(Debug, Serialize, Deserialize)]
struct Fetched {
    sport: String,
    games: usize,
}

/// `per_sport` = fetch >> check, mapped over the `sports` param, then
/// `summary` (all_done) over every check. Fetching `mlb` fails; fetching
/// `nhl` takes three seconds, so the other checks can be seen not to wait
/// for it.
fn per_sport() -> Dag {
    let mut b = Dag::builder("per_sport_group").param("sports", json!(["nfl", "mlb", "nhl"]));
    b.mapped_group("per_sport", MapOver::Param("sports".into()), 8);
    let fetched: GroupOutput<Fetched> = b.mapped_group_add(
        "per_sport",
        TypedSpec::new(
            "fetch",
            typed_fn(|ctx: TaskContext| async move {
                let sport: String = ctx.item()?;
                match sport.as_str() {
                    "mlb" => return Err(TaskError::fatal("no such league here")),
                    "nhl" => tokio::time::sleep(Duration::from_secs(3)).await,
                    _ => {}
                }
                Ok(Fetched {
                    games: sport.len() * 10,
                    sport,
                })
            }),
        ),
    );
    let mine = fetched.each();
    let checked: GroupOutput<String> = b.mapped_group_add(
        "per_sport",
        TypedSpec::new(
            "check",
            typed_fn(move |ctx: TaskContext| {
                let mine = mine.clone();
                async move {
                    let item: String = ctx.item()?;
                    let fetched: Fetched = mine.get(&ctx)?;
                    // The fetch instance of this index, not another's or a list.
                    assert_eq!(fetched.sport, item);
                    Ok(format!(
                        "{}:{}:{}",
                        ctx.map_index, fetched.sport, fetched.games
                    ))
                }
            }),
        )
        .reads(&fetched.each()),
    );
    let all = checked.all();
    b.add(
        TypedSpec::new(
            "summary",
            typed_fn(move |ctx: TaskContext| {
                let all = all.clone();
                async move { Ok(all.get(&ctx)?.join(",")) }
            }),
        )
        .reads(&checked.all())
        .with(|s| s.trigger_rule(orchestrator::TriggerRule::AllDone)),
    );
    b.build().expect("per-sport DAG builds")
}

async fn text(c: &Cluster, sql: &str) -> String {
    sqlx::query_scalar(sql)
        .fetch_one(&c.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `task`'s instances as `map_index:state`, by map index.
async fn instances(c: &Cluster, run: &str, task: &str) -> String {
    text(
        c,
        &format!(
            "SELECT string_agg(map_index || ':' || state, ',' ORDER BY map_index)
             FROM task_instances WHERE run_id = '{run}' AND task_id = '{task}'"
        ),
    )
    .await
}

/// Whether instance `a` ended before instance `b` in `run`.
async fn ended_before(c: &Cluster, run: &str, a: (&str, i32), b: (&str, i32)) -> bool {
    sqlx::query_scalar(
        "SELECT (SELECT end_date FROM task_instances WHERE run_id = $1 AND task_id = $2 AND map_index = $3)
              < (SELECT end_date FROM task_instances WHERE run_id = $1 AND task_id = $4 AND map_index = $5)",
    )
    .bind(run)
    .bind(a.0)
    .bind(a.1)
    .bind(b.0)
    .bind(b.1)
    .fetch_one(&c.pool)
    .await
    .expect("end dates")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_item_runs_its_own_chain_and_one_failure_stops_only_its_own() {
    let mut bag = DagBag::new();
    bag.add(per_sport());
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "per_sport_group", json!({})).await;

    // Only mlb's chain stopped. The one leaf, `summary` (all_done), ran and
    // succeeded, so the run succeeds, as in Airflow.
    assert_eq!(state, "success");
    assert_eq!(
        instances(&c, &run, "per_sport.fetch").await,
        "0:success,1:failed,2:success"
    );
    assert_eq!(
        instances(&c, &run, "per_sport.check").await,
        "0:success,1:upstream_failed,2:success"
    );
    // Each check read its own fetch; the summary read every check's output.
    assert_eq!(
        text(
            &c,
            &format!(
                "SELECT value #>> '{{}}' FROM xcom WHERE run_id = '{run}' AND task_id = 'summary'"
            )
        )
        .await,
        "0:nfl:30,2:nhl:30"
    );
    // nfl's check did not wait for nhl's slow fetch.
    assert!(
        ended_before(&c, &run, ("per_sport.check", 0), ("per_sport.fetch", 2)).await,
        "check [0] ended before fetch [2]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_list_skips_the_whole_group_and_what_follows_it_runs_on_nothing() {
    let mut bag = DagBag::new();
    bag.add(per_sport());
    let c = cluster(&bag).await;
    let (run, state) = run_once(&c, &bag, "per_sport_group", json!({"sports": []})).await;
    assert_eq!(state, "success");
    assert_eq!(instances(&c, &run, "per_sport.fetch").await, "-1:skipped");
    assert_eq!(instances(&c, &run, "per_sport.check").await, "-1:skipped");
    assert_eq!(instances(&c, &run, "summary").await, "-1:success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_queued_as_soon_as_its_own_upstream_instance_succeeded() {
    let mut bag = DagBag::new();
    bag.add(per_sport());
    let c = cluster(&bag).await;
    // No periodic pass comes to the rescue: only the end of `fetch [0]`
    // can get `check [0]` going before the slow `fetch [1]` ends.
    let config = EngineConfig {
        run_streams: false,
        create_scheduled_runs: false,
        poll_interval: Duration::from_secs(60),
        ..EngineConfig::default()
    };
    let (run, state) = run_once_with(
        &c,
        &bag,
        "per_sport_group",
        json!({"sports": ["nfl", "nhl"]}),
        config,
    )
    .await;
    assert_eq!(state, "success");
    assert!(
        ended_before(&c, &run, ("per_sport.check", 0), ("per_sport.fetch", 1)).await,
        "check [0] ended before fetch [1]"
    );
}
