//! Example DAGs that show (and let the integration tests exercise) each
//! orchestrator feature through the real binary. Loaded only when
//! `BETFLOW_LOAD_EXAMPLES=true`, like Airflow's `load_examples`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use orchestrator::{
    task_fn, typed_fn, AlertEvent, Alerts, Asset, AssetCondition, Dag, DagBag, Deadline,
    GroupOutput, MapOver, Output, RetryPolicy, Sensor, TaskContext, TaskError, TaskSpec,
    TriggerRule, TypedSpec,
};
use polars::prelude::{DataFrame, NamedFrom, Series};
use serde::{Deserialize, Serialize};
use serde_json::json;

use lakehouse::quality::{self, Check, Suite};

pub fn add_to(bag: &mut DagBag) {
    bag.source("dags/src/examples.rs", include_str!("examples.rs"));
    bag.pool("example_single", 1);
    for dag in [
        etl(),
        retries(),
        timeout(),
        skips(),
        sensor(),
        wide(),
        slow(),
        daily(),
        hourly_catchup(),
        pool(),
        quality(),
        deadline(),
        asset_producer("example_asset_numbers", "numbers"),
        asset_producer("example_asset_letters", "letters"),
        asset_consumer(),
        mapping(),
        mapped_group(),
    ] {
        match dag {
            Ok(d) => bag.add(d),
            Err(e) => tracing::error!("example DAG does not build: {e}"),
        }
    }
}

/// Dynamic task mapping: `double` runs once per number `make_numbers`
/// returns and `total` sums their outputs; `fetch_sport` runs once per
/// sport in the run's `sports` param and `summary` counts what they found.
fn mapping() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_dynamic_mapping")
        .description("One task instance per item of a list known only at run time")
        .tags(&["example"])
        .param("count", json!(3))
        .param("sports", crate::all_sports_param());
    let numbers: Output<Vec<i64>> = b.add(TypedSpec::new(
        "make_numbers",
        typed_fn(|ctx: TaskContext| async move {
            let count: i64 = ctx.param("count")?;
            ctx.log.info(format!("making {count} numbers"));
            Ok((1..=count).collect::<Vec<i64>>())
        }),
    ));
    let doubled: Output<Vec<i64>> = b.add_mapped(
        TypedSpec::new(
            "double",
            typed_fn(|ctx: TaskContext| async move {
                let n: i64 = ctx.item()?;
                ctx.log
                    .info(format!("instance {} doubles {n}", ctx.map_index));
                Ok(n * 2)
            }),
        )
        .expand_over(&numbers),
    );
    let input = doubled.clone();
    b.add(
        TypedSpec::new(
            "total",
            typed_fn(move |ctx: TaskContext| {
                let input = input.clone();
                async move {
                    let all: Vec<i64> = input.get(&ctx)?;
                    let total: i64 = all.iter().sum();
                    ctx.log
                        .info(format!("{} doubled numbers sum to {total}", all.len()));
                    Ok(Total { total })
                }
            }),
        )
        .reads(&doubled),
    );
    let found: Output<Vec<SportFetch>> = b.add_mapped(
        TypedSpec::new("fetch_sport", typed_fn(fetch_one_sport))
            .expand_over_param("sports")
            .max_map_length(8),
    );
    let input = found.clone();
    b.add(
        TypedSpec::new(
            "summary",
            typed_fn(move |ctx: TaskContext| {
                let input = input.clone();
                async move {
                    let fetched: Vec<SportFetch> = input.get(&ctx)?;
                    let games: i64 = fetched.iter().map(|f| f.games).sum();
                    ctx.log
                        .info(format!("{} sports, {games} games", fetched.len()));
                    Ok(Total { total: games })
                }
            }),
        )
        .reads(&found),
    );
    b.build()
}

/// A mapped task group: `per_sport.fetch` then `per_sport.score`, once per
/// sport of the run's `sports` param, each sport's score following its own
/// fetch alone; `report` reads every score, whatever became of the others.
fn mapped_group() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_mapped_task_group")
        .description("Two tasks run once per sport; each sport's chain goes on its own")
        .tags(&["example"])
        .param("sports", crate::all_sports_param());
    b.mapped_group("per_sport", MapOver::Param("sports".into()), 8);
    let fetched: GroupOutput<SportFetch> = b.mapped_group_add(
        "per_sport",
        TypedSpec::new("fetch", typed_fn(fetch_one_sport)),
    );
    let mine = fetched.each();
    let scored: GroupOutput<String> = b.mapped_group_add(
        "per_sport",
        TypedSpec::new(
            "score",
            typed_fn(move |ctx: TaskContext| {
                let mine = mine.clone();
                async move {
                    // The fetch instance of this sport, not the list of all.
                    let fetched: SportFetch = mine.get(&ctx)?;
                    ctx.log.info(format!(
                        "scoring {} ({} games) as instance {}",
                        fetched.sport, fetched.games, ctx.map_index
                    ));
                    Ok(format!("{}: {} games", fetched.sport, fetched.games))
                }
            }),
        )
        .reads(&fetched.each()),
    );
    let all = scored.all();
    b.add(
        TypedSpec::new(
            "report",
            typed_fn(move |ctx: TaskContext| {
                let all = all.clone();
                async move {
                    let lines: Vec<String> = all.get(&ctx)?;
                    ctx.log.info(format!("{} sports scored", lines.len()));
                    Ok(lines.join("; "))
                }
            }),
        )
        .reads(&scored.all())
        .with(|s| s.trigger_rule(TriggerRule::AllDone)),
    );
    b.build()
}

/// One sport's fetch in the mapping examples: its item is the sport's key;
/// it "finds" as many games as the key has letters.
async fn fetch_one_sport(ctx: TaskContext) -> Result<SportFetch, TaskError> {
    let sport: String = ctx.item()?;
    if crate::sport(&sport).is_none() {
        return Err(TaskError::fatal(format!("unknown sport `{sport}`")));
    }
    ctx.log.info(format!("fetching {sport}"));
    Ok(SportFetch {
        games: sport.len() as i64,
        sport,
    })
}

/// What one `fetch_sport` instance of `example_dynamic_mapping` found.
#[derive(Debug, Serialize, Deserialize)]
struct SportFetch {
    sport: String,
    games: i64,
}

fn sleep_task(id: &str, ms: u64) -> TaskSpec {
    TaskSpec::new(
        id,
        task_fn(move |ctx: TaskContext| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = ctx.cancel.cancelled() => return Err(TaskError::msg("cancelled")),
            }
            ctx.log.info(format!("slept {ms} ms"));
            Ok(json!({"slept_ms": ms}))
        }),
    )
}

/// extract → transform → load, passing outputs downstream, inside a group.
fn etl() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_etl")
        .description("Extract, transform and load, passing outputs between tasks")
        .tags(&["example"])
        .param("multiplier", json!(2));
    let extract: Output<Values> = b.add(TypedSpec::new(
        "extract",
        typed_fn(|ctx: TaskContext| async move {
            ctx.log
                .info(format!("extracting for {}", ctx.logical_date.date_naive()));
            Ok(Values {
                values: vec![1, 2, 3],
            })
        }),
    ));
    // Each task reads its upstream's output through the handle: that read
    // is the edge, with the type the upstream wrote.
    let input = extract.clone();
    let transform: Output<Values> = b.group_add(
        "process",
        TypedSpec::new(
            "transform",
            typed_fn(move |ctx: TaskContext| {
                let input = input.clone();
                async move {
                    let m: i64 = ctx.param("multiplier")?;
                    let values: Vec<i64> = input.get(&ctx)?.values.iter().map(|v| v * m).collect();
                    ctx.log.info(format!("transformed {} values", values.len()));
                    Ok(Values { values })
                }
            }),
        )
        .reads(&extract),
    );
    let input = transform.clone();
    b.add(
        TypedSpec::new(
            "load",
            typed_fn(move |ctx: TaskContext| {
                let input = input.clone();
                async move {
                    let total: i64 = input.get(&ctx)?.values.iter().sum();
                    ctx.log.info(format!("loaded total {total}"));
                    Ok(Total { total })
                }
            }),
        )
        .reads(&transform),
    );
    b.build()
}

/// What `example_etl`'s extract and transform write.
#[derive(Debug, Serialize, Deserialize)]
struct Values {
    values: Vec<i64>,
}

/// What `example_etl`'s load writes.
#[derive(Debug, Serialize, Deserialize)]
struct Total {
    total: i64,
}

/// A task that fails until its third try, with exponential backoff; with
/// `give_up`, it fails in a way no retry can fix and is not retried.
fn retries() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_retries")
        .tags(&["example"])
        .param("succeed_on_try", json!(3))
        .param("give_up", json!(false));
    let flaky = b.task(
        TaskSpec::new(
            "flaky",
            task_fn(|ctx: TaskContext| async move {
                let on: i32 = ctx.param("succeed_on_try")?;
                if ctx.param::<bool>("give_up")? {
                    return Err(TaskError::fatal(
                        "gives up on purpose: retrying cannot help",
                    ));
                }
                if ctx.try_number < on {
                    return Err(TaskError::msg(format!(
                        "try {} fails on purpose",
                        ctx.try_number
                    )));
                }
                Ok(json!({"succeeded_on_try": ctx.try_number}))
            }),
        )
        .retry_policy(RetryPolicy {
            retries: 3,
            delay: Duration::from_secs(1),
            exponential: true,
            max_delay: Duration::from_secs(2),
        })
        // Each failed try that will be retried alerts, through the
        // deployment's channels.
        .alerts(Alerts::on(&[AlertEvent::Retry])),
    );
    let after = b.task(sleep_task("after", 1));
    b.edge(&flaky, &after);
    b.build()
}

/// A run that must finish within two seconds of being queued and takes
/// four: its deadline is missed once, alerting while it still runs.
fn deadline() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_deadline")
        .tags(&["example"])
        .deadline(Deadline::after_queued(Duration::from_secs(2)));
    b.task(sleep_task("slow", 4_000));
    b.build()
}

/// A task that outlives its timeout; what depends on it never runs.
fn timeout() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_timeout").tags(&["example"]);
    let slow = b.task(sleep_task("slow", 60_000).timeout(Duration::from_secs(1)));
    let after = b.task(sleep_task("after", 1));
    let on_failure = b.task(sleep_task("on_failure", 1).trigger_rule(TriggerRule::OneFailed));
    b.edge(&slow, &after);
    b.edge(&slow, &on_failure);
    b.build()
}

/// A task that skips itself; the skip propagates, `none_failed` still runs.
fn skips() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_skip").tags(&["example"]);
    let branch = b.task(TaskSpec::new(
        "branch",
        task_fn(|_ctx: TaskContext| async move { Err(TaskError::skip("nothing to do today")) }),
    ));
    let child = b.task(sleep_task("child", 1));
    let other = b.task(sleep_task("other", 1));
    let join = b.task(sleep_task("join", 1).trigger_rule(TriggerRule::NoneFailed));
    b.edge(&branch, &child);
    b.edge(&child, &join);
    b.edge(&other, &join);
    b.build()
}

/// Waits for the file named by the `path` param to exist.
struct FileSensor;

#[async_trait::async_trait]
impl Sensor for FileSensor {
    async fn poke(&self, ctx: TaskContext) -> Result<bool, TaskError> {
        let path: String = ctx.param("path")?;
        let exists = tokio::fs::try_exists(&path).await?;
        ctx.log.info(format!(
            "poking for {path}: {}",
            if exists { "found" } else { "not yet" }
        ));
        Ok(exists)
    }
}

fn sensor() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_sensor")
        .tags(&["example"])
        .param("path", json!("/nonexistent/betflow-example-ready"));
    let wait = b.task(TaskSpec::sensor(
        "wait_for_file",
        std::sync::Arc::new(FileSensor),
        Duration::from_millis(300),
        Duration::from_secs(20),
    ));
    let after = b.task(sleep_task("after", 1));
    b.edge(&wait, &after);
    b.build()
}

/// 1 → 198 → 1: 200 short tasks, for sharing work between processes.
fn wide() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_wide")
        .tags(&["example"])
        .max_active_tasks(64);
    let start = b.task(sleep_task("start", 10));
    let end = b.task(sleep_task("end", 10));
    for i in 0..198 {
        let mid = b.task(sleep_task(&format!("mid_{i:03}"), 20));
        b.edge(&start, &mid);
        b.edge(&mid, &end);
    }
    b.build()
}

/// Two tasks of a few seconds each, with retries: killed processes leave zombies here.
fn slow() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_slow")
        .tags(&["example"])
        .param("first_ms", json!(4000))
        .default_retry(RetryPolicy {
            retries: 2,
            delay: Duration::from_secs(1),
            exponential: false,
            max_delay: Duration::from_secs(1),
        });
    let first = b.task(TaskSpec::new(
        "first",
        task_fn(|ctx: TaskContext| async move {
            // The run's conf may hold it longer (shutdown tests).
            let ms: u64 = ctx.param("first_ms")?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = ctx.cancel.cancelled() => return Err(TaskError::msg("cancelled")),
            }
            ctx.log.info(format!("slept {ms} ms"));
            Ok(json!({"slept_ms": ms}))
        }),
    ));
    let second = b.task(sleep_task("second", 500));
    b.edge(&first, &second);
    b.build()
}

/// A daily DAG without catchup, for backfills.
fn daily() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_daily")
        .schedule("0 0 * * *", "UTC")
        .start_date(
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        )
        .catchup(false)
        .max_active_runs(2)
        .tags(&["example"]);
    let a = b.task(sleep_task("a", 5));
    let c = b.task(sleep_task("b", 5));
    b.edge(&a, &c);
    b.build()
}

/// Three parallel tasks in a one-slot pool: they must run one at a time.
fn pool() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_pool").tags(&["example"]);
    for i in 0..3 {
        b.task(sleep_task(&format!("task_{i}"), 300).pool("example_single", 1));
    }
    b.build()
}

/// Hourly with catchup from three hours before the current hour: a scheduler
/// started now owes it three runs, one per missed interval.
fn hourly_catchup() -> Result<Dag, orchestrator::dag::DagError> {
    let now = Utc::now();
    let top_of_hour = now.timestamp() - now.timestamp().rem_euclid(3600);
    let hour = Utc.timestamp_opt(top_of_hour, 0).single().unwrap_or(now);
    let mut b = Dag::builder("example_hourly_catchup")
        .schedule("@hourly", "UTC")
        .start_date(hour - chrono::Duration::hours(3))
        .catchup(true)
        .tags(&["example"]);
    b.task(sleep_task("tick", 1));
    b.build()
}

/// `ids` 1..=`rows` with scores; the last `bad_rows` get a negative score,
/// every other row has no note.
fn scores(rows: i64, bad_rows: i64) -> Result<DataFrame, TaskError> {
    let ids: Vec<i64> = (1..=rows).collect();
    let score: Vec<i64> = ids
        .iter()
        .map(|i| if *i > rows - bad_rows { -1 } else { i * 10 })
        .collect();
    let note: Vec<Option<&str>> = ids.iter().map(|i| (i % 2 == 1).then_some("ok")).collect();
    Ok(DataFrame::new_infer_height(vec![
        Series::new("id".into(), ids).into(),
        Series::new("score".into(), score).into(),
        Series::new("note".into(), note).into(),
    ])?)
}

/// A data-quality gate between producing and publishing a table: the gate
/// records its checks' results on the run; an error-level failure (a
/// negative score, with conf `{"bad_rows": 1}`) fails it, so `publish` ends
/// `upstream_failed`, while the warn-level checks (notes missing, the row
/// count far from the previous run's) are only recorded.
fn quality() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_quality")
        .description("A quality gate that stops publishing on bad data")
        .tags(&["example"])
        .param("rows", json!(4))
        .param("bad_rows", json!(0));
    let gate = b.task(
        TaskSpec::new(
            "quality_gate",
            task_fn(|ctx: TaskContext| async move {
                let df = scores(ctx.param("rows")?, ctx.param("bad_rows")?)?;
                let suite = Suite::new("example.scores")
                    .key(["id"])
                    .error(Check::unique(["id"]))
                    .error(Check::at_least("score", 0.0))
                    .warn(Check::not_null(["note"]))
                    .warn(Check::row_count_vs_previous(0.5, 2.0));
                quality::check_table(&ctx, &suite, &df).await
            }),
        )
        .retries(0),
    );
    let publish = b.task(sleep_task("publish", 1));
    b.edge(&gate, &publish);
    b.build()
}

/// `example://{what}`, an asset the example producers update.
fn example_asset(what: &str) -> Asset {
    Asset::new(format!("example://{what}"))
        .named(format!("example.{what}"))
        .group("example")
}

/// Updates `example://{what}` for the UTC day of its logical date. No
/// schedule: triggered by hand or by the tests.
fn asset_producer(id: &str, what: &str) -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder(id)
        .description(format!(
            "Writes example://{what}: each successful run records an update of it for its day"
        ))
        .tags(&["example", "assets"])
        .asset_partition(|interval| interval.start.date_naive().to_string());
    b.task(sleep_task("write", 5).outlets([example_asset(what)]));
    b.build()
}

/// Runs when numbers and letters were both updated for the same day, and
/// reports the updates that started it.
fn asset_consumer() -> Result<Dag, orchestrator::dag::DagError> {
    let mut b = Dag::builder("example_asset_consumer")
        .description(
            "Runs once example://numbers and example://letters are updated for the same day",
        )
        .tags(&["example", "assets"])
        .schedule_on(AssetCondition::all([
            example_asset("numbers"),
            example_asset("letters"),
        ]));
    b.task(
        TaskSpec::new(
            "combine",
            task_fn(|ctx: TaskContext| async move {
                let events = ctx
                    .triggering_asset_events()
                    .await
                    .map_err(|e| TaskError::msg(format!("reading the triggering events: {e}")))?;
                let seen: Vec<serde_json::Value> = events
                    .iter()
                    .map(|e| json!({"uri": e.uri, "partition": e.partition, "source_run_id": e.source_run_id}))
                    .collect();
                ctx.log
                    .info(format!("triggered by {} asset updates", seen.len()));
                Ok(json!({ "triggered_by": seen }))
            }),
        )
        .inlets([example_asset("numbers"), example_asset("letters")]),
    );
    b.build()
}
