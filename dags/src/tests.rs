//! Shape tests of every DAG, and an in-process dry run of each batch DAG that
//! executes its tasks in dependency order with the executor's rules (trigger
//! rules, skips, only direct upstreams' non-null outputs passed on), so a
//! step reading an output it will not get fails here, not in production.
//! Tasks that need the metadata database (the warehouse's catalog, the
//! quality results, the cross-DAG sensors) get a throwaway Postgres cluster,
//! one per test thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use orchestrator::dag::TaskKind;
use orchestrator::state::{evaluate, Decision, UpstreamSummary};
use orchestrator::task::{LogLine, TaskLogger};
use orchestrator::{Dag, TaskContext, TaskError, TaskState};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
use orchestrator::store::Store;

use crate::batch::{self, GOLD_MARTS, HISTORICAL_GAMES, HISTORICAL_ODDS, NEWS, WEATHER};
use crate::ingest::{Settings, SourceMode};
use crate::live_streams::LIVE_STREAMS;
use crate::SPORTS;

/// A throwaway metadata database for the dry runs of one test.
pub(crate) struct Metadata {
    store: Store,
    /// The store's connections, for the test's own looks at the tables.
    pool: sqlx::PgPool,
    // Dropped after the store: stops the cluster, then removes its directory.
    _pg: EmbeddedPostgres,
    _dir: tempfile::TempDir,
}

thread_local! {
    static METADATA: std::cell::RefCell<Option<std::rc::Rc<Metadata>>> = const { std::cell::RefCell::new(None) };
}

impl Metadata {
    pub(crate) fn pool(&self) -> &sqlx::postgres::PgPool {
        &self.pool
    }
}

/// This test thread's metadata database, started on first use.
pub(crate) async fn metadata() -> std::rc::Rc<Metadata> {
    if let Some(m) = METADATA.with(|m| m.borrow().clone()) {
        return m;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = EmbeddedPostgres::start(&EmbeddedOptions {
        home: dir.path().join("pg"),
        durable: false,
    })
    .expect("start a throwaway Postgres for the dry runs");
    let pool = orchestrator::store::connect_pool(pg.url(), 4)
        .await
        .expect("connect");
    let store = Store::new(pool.clone());
    store
        .migrate_all(&[
            &orchestrator::store::migrations::ORCHESTRATOR,
            &crate::MIGRATIONS,
        ])
        .await
        .expect("migrate");
    let m = std::rc::Rc::new(Metadata {
        store,
        pool,
        _pg: pg,
        _dir: dir,
    });
    METADATA.with(|slot| *slot.borrow_mut() = Some(m.clone()));
    m
}

/// A row for the DAG and one for its run of `interval` (what the scheduler
/// would have written), so what tasks record against the run (quality check
/// results) has its parent rows. A dry run of the same interval replaces it.
async fn record_run(
    pool: &sqlx::PgPool,
    dag: &Dag,
    interval: orchestrator::DataInterval,
    run_id: &str,
) {
    sqlx::query("INSERT INTO dags (dag_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(&dag.id)
        .execute(pool)
        .await
        .expect("record the DAG");
    sqlx::query("DELETE FROM dag_runs WHERE dag_id = $1 AND logical_date = $2")
        .bind(&dag.id)
        .bind(interval.start)
        .execute(pool)
        .await
        .expect("forget an earlier dry run of the interval");
    sqlx::query(
        "INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end, run_type, state)
         VALUES ($1, $2, $3, $3, $4, 'manual', 'running')",
    )
    .bind(&dag.id)
    .bind(run_id)
    .bind(interval.start)
    .bind(interval.end)
    .execute(pool)
    .await
    .expect("record the run");
}

/// The bag of a deployment with every default setting.
fn dag_bag() -> orchestrator::DagBag {
    crate::dag_bag_for(default_settings())
}

fn default_settings() -> std::sync::Arc<crate::settings::Settings> {
    std::sync::Arc::new(crate::settings::Settings::new(
        "/tmp/betflow-unused",
        SourceMode::Replay,
    ))
}

fn build(id: &str) -> std::sync::Arc<Dag> {
    dag_bag()
        .get(id)
        .unwrap_or_else(|| panic!("no DAG `{id}`"))
        .clone()
}

fn ids(dag: &Dag) -> Vec<&str> {
    dag.tasks().iter().map(|t| t.id.as_str()).collect()
}

fn upstream(dag: &Dag, id: &str) -> BTreeSet<String> {
    dag.task(id)
        .unwrap_or_else(|| panic!("no task `{id}` in {}", dag.id))
        .upstream
        .iter()
        .cloned()
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_dag_builds_and_the_bag_holds_exactly_betflows_dags_and_pools() {
    for dag in batch::dags(default_settings()) {
        dag.expect("batch DAG builds");
    }
    crate::live_streams::live_streams(&default_settings()).expect("stream DAG builds");
    let bag = dag_bag();
    let got: Vec<&str> = bag.dags().map(|d| d.id.as_str()).collect();
    let mut want = vec![
        HISTORICAL_GAMES,
        HISTORICAL_ODDS,
        WEATHER,
        NEWS,
        GOLD_MARTS,
        LIVE_STREAMS,
    ];
    want.sort_unstable();
    assert_eq!(got, want);
    let pools: Vec<(&str, u32)> = bag.pools().iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        pools,
        [
            ("espn_api", 2),
            ("news_feeds", 2),
            ("odds_api", 1),
            ("weather_api", 2)
        ]
    );
}

#[test]
fn tasks_come_in_dependency_order_so_every_graph_is_acyclic() {
    for dag in dag_bag().dags() {
        let mut seen = BTreeSet::new();
        for t in dag.tasks() {
            for u in &t.upstream {
                assert!(
                    seen.contains(u),
                    "{}: `{}` listed before its upstream `{u}`",
                    dag.id,
                    t.id
                );
            }
            seen.insert(t.id.clone());
        }
    }
}

#[test]
fn nightly_dags_share_schedule_retry_timeout_and_params() {
    // Loads due at 07:30 and the marts at 09:00 New York, the day after
    // the logical date: hours after the logical date.
    let expected = [
        (HISTORICAL_GAMES, "0 6 * * *", "games", 25.5),
        (HISTORICAL_ODDS, "30 6 * * *", "odds", 25.0),
        (WEATHER, "15 6 * * *", "weather", 25.25),
        (NEWS, "45 6 * * *", "news", 24.75),
    ];
    for (id, cron, tag, due_hours) in expected {
        let dag = build(id);
        assert_eq!(dag.schedule.expression(), Some(cron), "{id}");
        let deadline = dag.deadline.expect("a deadline");
        assert_eq!(
            deadline,
            orchestrator::Deadline::after_logical_date(Duration::from_secs_f64(due_hours * 3600.0)),
            "{id}"
        );
        assert_eq!(dag.schedule.timezone().name(), "America/New_York", "{id}");
        assert!(dag.bounds.catchup, "{id}");
        assert_eq!(
            dag.bounds.start_date.to_rfc3339(),
            "2024-09-01T00:00:00+00:00"
        );
        assert!((1..=3).contains(&dag.max_active_runs), "{id}");
        assert!(
            dag.tags.iter().any(|t| t == "batch") && dag.tags.iter().any(|t| t == tag),
            "{id}: {:?}",
            dag.tags
        );
        assert_eq!(
            dag.params["sports"],
            json!(["nfl", "ncaaf", "nba", "nhl"]),
            "{id}"
        );
        assert!(dag.fileloc.ends_with("batch.rs"), "{id}: {}", dag.fileloc);
        for t in dag.tasks() {
            assert_eq!(t.timeout, Some(Duration::from_secs(1800)), "{id}.{}", t.id);
            let expected_retries = if t.id.starts_with("quality.") { 0 } else { 2 };
            assert_eq!(t.retry.retries, expected_retries, "{id}.{}", t.id);
            assert!(t.retry.exponential);
            assert_eq!(t.retry.delay, Duration::from_secs(30));
            assert_eq!(t.retry.max_delay, Duration::from_secs(600));
        }
    }
    let gold = build(GOLD_MARTS);
    assert_eq!(gold.max_active_runs, 1, "full rebuilds of shared tables");
    assert_eq!(gold.schedule.expression(), None, "gold runs on assets");
    assert_eq!(
        gold.deadline,
        Some(orchestrator::Deadline::after_queued(Duration::from_secs(
            2 * 3600
        )))
    );
}

#[test]
fn the_marts_run_when_all_four_silver_tables_of_a_day_passed_their_gates() {
    let gold = build(GOLD_MARTS);
    let condition = gold.asset_schedule.clone().expect("an asset schedule");
    let scheduled: Vec<&str> = condition.assets().iter().map(|a| a.uri.as_str()).collect();
    assert_eq!(
        scheduled,
        [
            "iceberg://silver.games",
            "iceberg://silver.odds",
            "iceberg://silver.weather",
            "iceberg://silver.news"
        ]
    );
    let updated = |uris: &[&str]| uris.iter().map(|u| u.to_string()).collect::<Vec<String>>();
    let set = |owned: &[String]| -> bool {
        let uris: BTreeSet<&str> = owned.iter().map(String::as_str).collect();
        condition.holds(&uris)
    };
    assert!(!set(&updated(&scheduled[..3])));
    assert!(set(&updated(&scheduled)));
    // Each load's gate updates its silver tables, for the run's sports day.
    for (dag, gate, tables) in [
        (
            HISTORICAL_GAMES,
            "quality.silver_games",
            vec!["iceberg://silver.games", "iceberg://silver.game_periods"],
        ),
        (
            HISTORICAL_ODDS,
            "quality.silver_odds",
            vec!["iceberg://silver.odds"],
        ),
        (
            WEATHER,
            "quality.silver_weather",
            vec!["iceberg://silver.weather"],
        ),
        (NEWS, "quality.silver_news", vec!["iceberg://silver.news"]),
    ] {
        let dag = build(dag);
        let outlets: Vec<&str> = dag
            .task(gate)
            .unwrap()
            .outlets
            .iter()
            .map(|a| a.uri.as_str())
            .collect();
        assert_eq!(outlets, tables, "{}", dag.id);
        // The 06:00 New York run of 2024-11-03 covers that sports day.
        let start = chrono::DateTime::parse_from_rfc3339("2024-11-03T06:00:00-05:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let interval = orchestrator::DataInterval {
            start,
            end: start + chrono::Duration::days(1),
        };
        assert_eq!(dag.asset_partition(interval), "2024-11-03", "{}", dag.id);
    }
    // Gold names what it reads and writes, for lineage.
    let mart = gold.task("marts.weather_impact").unwrap();
    assert!(mart
        .inlets
        .iter()
        .any(|a| a.uri == "iceberg://silver.weather"));
    assert_eq!(mart.outlets[0].uri, "iceberg://gold.weather_impact");
    assert_eq!(gold.task("publish_serving").unwrap().outlets.len(), 13);
}

#[test]
fn historical_games_daily_fans_out_per_sport_then_models_and_gates() {
    let dag = build(HISTORICAL_GAMES);
    assert_eq!(
        ids(&dag),
        [
            "sport.fetch_scoreboard",
            "sport.validate",
            "transform.bronze_games",
            "transform.silver_games",
            "quality.silver_games",
        ]
    );
    // One fetch and one validate instance per sport of the run; a sport's
    // validate follows that sport's fetch alone (a mapped task group).
    let fetch = dag.task("sport.fetch_scoreboard").unwrap();
    let map = fetch.map.as_ref().expect("fetch is mapped");
    assert_eq!(map.over, orchestrator::MapOver::Param("sports".into()));
    assert_eq!(map.max_length, SPORTS.len());
    let validate = dag.task("sport.validate").unwrap();
    assert_eq!(validate.map.as_ref(), Some(map));
    assert!(validate.follows_index_of(fetch));
    assert_eq!(
        upstream(&dag, "sport.validate"),
        set(&["sport.fetch_scoreboard"])
    );
    assert_eq!(
        upstream(&dag, "transform.bronze_games"),
        set(&["sport.validate"])
    );
    assert_eq!(
        dag.task("transform.bronze_games").unwrap().trigger_rule,
        orchestrator::TriggerRule::NoneFailed
    );
    assert_eq!(
        upstream(&dag, "transform.silver_games"),
        set(&["transform.bronze_games"])
    );
    assert_eq!(
        upstream(&dag, "quality.silver_games"),
        set(&["transform.silver_games"])
    );
}

#[test]
fn fetch_tasks_run_in_their_sources_pool() {
    let pools = [
        (HISTORICAL_GAMES, "sport.fetch_scoreboard", "espn_api"),
        (HISTORICAL_ODDS, "sport.fetch_odds_snapshots", "odds_api"),
        (WEATHER, "sport.fetch_open_meteo", "weather_api"),
        (NEWS, "sport.fetch_news", "news_feeds"),
    ];
    for (dag_id, fetch, pool) in pools {
        let dag = build(dag_id);
        let in_pool: Vec<&str> = dag
            .tasks()
            .iter()
            .filter(|t| t.pool == pool)
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(in_pool, [fetch], "{dag_id}");
        // Each instance takes one slot, so a backfill of many days keeps
        // to the pool's slots across sports and dates.
        assert_eq!(dag.task(fetch).unwrap().pool_slots, 1, "{dag_id}");
    }
}

#[test]
fn historical_odds_daily_starts_with_the_games_sensor() {
    let dag = build(HISTORICAL_ODDS);
    let first = &dag.tasks()[0];
    assert_eq!(first.id, "wait_for_games");
    match &first.kind {
        TaskKind::Sensor {
            poke_interval,
            timeout,
            ..
        } => {
            assert_eq!(*poke_interval, crate::sensors::POKE_INTERVAL);
            assert_eq!(*timeout, Duration::from_secs(7200));
        }
        TaskKind::Operator(_) => panic!("wait_for_games must be a sensor"),
    }
    let roots: Vec<&str> = dag
        .tasks()
        .iter()
        .filter(|t| t.upstream.is_empty())
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(roots, ["wait_for_games"]);
    assert_eq!(
        upstream(&dag, "sport.fetch_odds_snapshots"),
        set(&["wait_for_games"])
    );
    assert_eq!(
        upstream(&dag, "transform.silver_odds"),
        set(&["transform.bronze_odds"])
    );
    assert_eq!(
        upstream(&dag, "quality.silver_odds"),
        set(&["transform.silver_odds"])
    );
}

#[test]
fn weather_daily_selects_outdoor_venues_before_fetching() {
    let dag = build(WEATHER);
    assert_eq!(
        upstream(&dag, "select_outdoor_venues"),
        set(&["wait_for_games"])
    );
    assert_eq!(
        upstream(&dag, "sport.fetch_open_meteo"),
        set(&["select_outdoor_venues"])
    );
    assert_eq!(
        upstream(&dag, "quality.silver_weather"),
        set(&["transform.silver_weather"])
    );
}

#[test]
fn gold_marts_depend_on_their_dims_then_one_gate_then_publish() {
    let dag = build(GOLD_MARTS);
    let dims = [
        "dim_teams",
        "dim_venues",
        "dim_bookmakers",
        "dim_markets",
        "dim_dates",
    ];
    let marts = [
        "market_efficiency",
        "odds_movement",
        "bookmaker_comparison",
        "closing_line_value",
        "team_trends",
        "scoring_patterns",
        "weather_impact",
        "news_sentiment_daily",
    ];
    let groups = dag.groups();
    assert_eq!(groups["dims"].len(), dims.len());
    assert_eq!(groups["marts"].len(), marts.len());
    for d in dims {
        let up = upstream(&dag, &format!("dims.{d}"));
        assert!(
            up.is_empty(),
            "dims wait for nothing in the run: {d}: {up:?}"
        );
    }
    for m in marts {
        let up = upstream(&dag, &format!("marts.{m}"));
        assert!(
            up.iter().any(|u| u.starts_with("dims.")),
            "{m} joins no dim: {up:?}"
        );
        assert!(up.iter().all(|u| u.starts_with("dims.")), "{m}: {up:?}");
    }
    assert_eq!(
        upstream(&dag, "marts.market_efficiency"),
        set(&["dims.dim_teams", "dims.dim_bookmakers", "dims.dim_markets"])
    );
    assert!(upstream(&dag, "marts.weather_impact").contains("dims.dim_venues"));
    assert_eq!(
        upstream(&dag, "marts.news_sentiment_daily"),
        set(&["dims.dim_teams"])
    );
    // Every dim feeds some mart.
    for d in dims {
        let id = format!("dims.{d}");
        assert!(
            !dag.task(&id).unwrap().downstream.is_empty(),
            "{d} feeds nothing"
        );
    }
    let all_marts: BTreeSet<String> = marts.iter().map(|m| format!("marts.{m}")).collect();
    assert_eq!(upstream(&dag, "quality.gold"), all_marts);
    assert_eq!(upstream(&dag, "publish_serving"), set(&["quality.gold"]));
    assert_eq!(dag.tasks().last().unwrap().id, "publish_serving");
}

// ---- dry runs -------------------------------------------------------------

struct DryRun {
    /// Each task's state, and each instance's of a mapped one (`task[i]`).
    /// A mapped task's own entry sums its instances up: failed if one
    /// failed, skipped if all were, else success.
    states: BTreeMap<String, TaskState>,
    /// Each task's output, or each instance's (`task[i]`); a mapped task's
    /// own entry is the list of its instances' outputs, as readers get it.
    outputs: HashMap<String, Value>,
    errors: BTreeMap<String, String>,
    /// Whether each failed task's error lets its retries try again.
    retryable: BTreeMap<String, bool>,
    logs: Vec<LogLine>,
    /// The states downstream trigger rules see: one per instance.
    instances: HashMap<String, Vec<TaskState>>,
    /// The run's `sports` param, the list the fetch tasks are mapped over.
    sports: Vec<String>,
}

impl DryRun {
    /// The key of `task`'s instance for `sport` (`fetch_scoreboard[2]`):
    /// the fetch and validate tasks are mapped over the run's sports.
    fn of(&self, task: &str, sport: &str) -> String {
        let index = self
            .sports
            .iter()
            .position(|s| s == sport)
            .unwrap_or_else(|| panic!("`{sport}` is not in the run's sports {:?}", self.sports));
        format!("{task}[{index}]")
    }
}

/// Run the DAG's first scheduled interval in memory, as the executor would.
async fn dry_run(dag: &Dag, conf: Value) -> DryRun {
    dry_run_at(dag, conf, dag.bounds.start_date).await
}

/// What one try of one task (or mapped instance) ended in.
struct Ended {
    state: TaskState,
    output: Option<Value>,
    error: Option<(String, bool)>,
}

/// Run the DAG's first scheduled interval at or after `at`, in memory.
async fn dry_run_at(dag: &Dag, conf: Value, at: chrono::DateTime<chrono::Utc>) -> DryRun {
    dry_run_tries(dag, conf, at, false).await
}

/// [`dry_run`], each task running as its first try, or as its last when
/// `last_try` (the retries spent).
async fn dry_run_tries(
    dag: &Dag,
    conf: Value,
    at: chrono::DateTime<chrono::Utc>,
    last_try: bool,
) -> DryRun {
    // A DAG without a cron (the marts run on assets) runs as triggered at `at`.
    let interval = match dag.schedule.tick_at_or_after(at) {
        Some(first) => dag.schedule.interval_from(first).expect("an interval"),
        None => dag.schedule.manual_interval(at),
    };
    let params = dag.resolve_params(&conf);
    let meta = metadata().await;
    let run_id = format!("dry_run__{}", interval.start.to_rfc3339());
    record_run(meta.pool(), dag, interval, &run_id).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut run = DryRun {
        states: BTreeMap::new(),
        outputs: HashMap::new(),
        errors: BTreeMap::new(),
        retryable: BTreeMap::new(),
        logs: Vec::new(),
        instances: HashMap::new(),
        sports: params
            .get("sports")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default(),
    };
    for task in dag.tasks() {
        // The group's tasks upstream of a mapped group's task: its instance
        // `i` follows their instance `i` once they were expanded.
        let paired: Vec<&String> = task
            .upstream
            .iter()
            .filter(|u| dag.task(u).is_some_and(|up| task.follows_index_of(up)))
            .filter(|u| run.states.contains_key(&format!("{u}[0]")))
            .collect();
        let summary = UpstreamSummary::from_states(
            task.upstream
                .iter()
                .filter(|u| !paired.contains(u))
                .flat_map(|u| run.instances[u].iter().copied()),
        );
        let decision = evaluate(task.trigger_rule, summary);
        if decision == Decision::Wait {
            panic!(
                "{}: upstreams of `{}` not done in topological order",
                dag.id, task.id
            );
        }
        // Only direct upstreams' non-null outputs, without the list a
        // mapped task was cut from.
        let upstream: HashMap<String, Value> = task
            .inputs()
            .filter_map(|u| run.outputs.get(u).map(|v| (u.clone(), v.clone())))
            .collect();
        // Instance `i`'s own decision and inputs: the paired upstreams'
        // instance `i` instead of all of them.
        let instance = |run: &DryRun, i: usize| -> (Decision, HashMap<String, Value>) {
            let mut inputs = upstream.clone();
            let mut states: Vec<TaskState> = task
                .upstream
                .iter()
                .filter(|u| !paired.contains(u))
                .flat_map(|u| run.instances[u].iter().copied())
                .collect();
            for u in &paired {
                let key = format!("{u}[{i}]");
                states.push(run.states[&key]);
                inputs.remove(*u);
                if let Some(v) = run.outputs.get(&key) {
                    inputs.insert((*u).clone(), v.clone());
                }
            }
            let summary = UpstreamSummary::from_states(states);
            (evaluate(task.trigger_rule, summary), inputs)
        };
        let try_one = |map: Option<(i32, Value)>, upstream: HashMap<String, Value>| {
            let mut ctx = TaskContext::new(
                dag.id.clone(),
                task.id.clone(),
                run_id.clone(),
                interval,
                if last_try {
                    1 + task.retry.retries as i32
                } else {
                    1
                },
                task.retry.retries as i32,
                params.clone(),
                TaskLogger::channel(tx.clone()),
                CancellationToken::new(),
                upstream,
            )
            .with_store(meta.store.clone());
            if let Some((index, item)) = map {
                ctx = ctx.with_map(index, Some(item));
            }
            async move {
                let result = match &task.kind {
                    TaskKind::Operator(op) => op.execute(ctx).await,
                    TaskKind::Sensor { sensor, .. } => sensor.poke(ctx).await.map(|held| {
                        assert!(
                            held,
                            "sensors hold at once in a dry run (upstream runs are over)"
                        );
                        Value::Null
                    }),
                };
                match result {
                    // The executor stores no XCom for a null output.
                    Ok(value) => Ended {
                        state: TaskState::Success,
                        output: Some(value).filter(|v| !v.is_null()),
                        error: None,
                    },
                    Err(TaskError::Skip(_)) => Ended {
                        state: TaskState::Skipped,
                        output: None,
                        error: None,
                    },
                    Err(e) => Ended {
                        state: TaskState::Failed,
                        output: None,
                        error: Some((e.to_string(), e.is_retryable())),
                    },
                }
            }
        };
        let record = |run: &mut DryRun, key: &str, ended: Ended| {
            if let Some(value) = ended.output {
                run.outputs.insert(key.to_owned(), value);
            }
            if let Some((error, retryable)) = ended.error {
                run.retryable.insert(key.to_owned(), retryable);
                run.errors.insert(key.to_owned(), error);
            }
            run.states.insert(key.to_owned(), ended.state);
            ended.state
        };
        let states: Vec<TaskState> = match (decision, &task.map) {
            (Decision::Skip, _) => vec![TaskState::Skipped],
            (Decision::UpstreamFailed, _) => vec![TaskState::UpstreamFailed],
            (_, None) => vec![record(
                &mut run,
                &task.id,
                try_one(None, upstream.clone()).await,
            )],
            (_, Some(spec)) => {
                let source: Option<&Value> = match &spec.over {
                    orchestrator::MapOver::Output(up) => run.outputs.get(up),
                    orchestrator::MapOver::Param(_) => None,
                };
                match orchestrator::mapping::items(spec, &params, source) {
                    Err(e) => {
                        run.retryable.insert(task.id.clone(), false);
                        run.errors.insert(task.id.clone(), e.to_string());
                        vec![TaskState::Failed]
                    }
                    Ok(items) if items.is_empty() => vec![TaskState::Skipped],
                    Ok(items) => {
                        let mut states = Vec::new();
                        let mut outputs = Vec::new();
                        for (i, item) in items.into_iter().enumerate() {
                            let key = format!("{}[{i}]", task.id);
                            let (decision, inputs) = instance(&run, i);
                            let ended = match decision {
                                Decision::Skip => Ended {
                                    state: TaskState::Skipped,
                                    output: None,
                                    error: None,
                                },
                                Decision::UpstreamFailed => Ended {
                                    state: TaskState::UpstreamFailed,
                                    output: None,
                                    error: None,
                                },
                                _ => try_one(Some((i as i32, item)), inputs).await,
                            };
                            outputs.extend(ended.output.clone());
                            states.push(record(&mut run, &key, ended));
                        }
                        run.outputs.insert(task.id.clone(), Value::Array(outputs));
                        states
                    }
                }
            }
        };
        let sum = if states.contains(&TaskState::Failed) {
            TaskState::Failed
        } else if states.contains(&TaskState::UpstreamFailed) {
            TaskState::UpstreamFailed
        } else if states.iter().all(|s| *s == TaskState::Skipped) {
            TaskState::Skipped
        } else {
            TaskState::Success
        };
        run.states.insert(task.id.clone(), sum);
        run.instances.insert(task.id.clone(), states);
    }
    drop(tx);
    while let Ok(line) = rx.try_recv() {
        run.logs.push(line);
    }
    // Finish the run the way the scheduler would, for cross-DAG sensors.
    let state = if run.errors.is_empty() {
        "success"
    } else {
        "failed"
    };
    sqlx::query("UPDATE dag_runs SET state = $3 WHERE dag_id = $1 AND run_id = $2")
        .bind(&dag.id)
        .bind(&run_id)
        .bind(state)
        .execute(meta.pool())
        .await
        .expect("finish the run");
    run
}

#[tokio::test]
async fn gold_dag_dry_runs_to_success_on_an_empty_warehouse() {
    let home = tempfile::tempdir().unwrap();
    let dag = batch::gold_marts_nightly(settings(home.path(), SourceMode::Replay)).unwrap();
    let run = dry_run_at(&dag, Value::Null, batch::start_date()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    for (task, state) in &run.states {
        assert_eq!(*state, TaskState::Success, "{task}");
    }
    // Nothing in silver yet: every table is rebuilt empty, except the
    // static market dimension.
    for (task, out) in &run.outputs {
        if task.starts_with("dims.") || task.starts_with("marts.") {
            let expected = if task == "dims.dim_markets" {
                out["records"].clone()
            } else {
                json!(0)
            };
            assert_eq!(out["records"], expected, "{task}: {out}");
        }
    }
    assert!(run.outputs["dims.dim_markets"]["records"].as_u64().unwrap() >= 6);
}

/// `historical_games_daily` on a throwaway lake with `mode` as its source.
fn games_dag(home: &std::path::Path, mode: SourceMode) -> Dag {
    let settings = Settings::new(home, mode);
    batch::historical_games_daily(std::sync::Arc::new(settings)).expect("games DAG")
}

fn lake_files(home: &std::path::Path, prefix: &str) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let root = home.join("lake");
    let mut out = Vec::new();
    walk(&root.join(prefix), &root, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn games_dry_run_fetches_replay_into_the_lake_and_passes_counts_downstream() {
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(home.path(), SourceMode::Replay);
    let run = dry_run(&dag, Value::Null).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    for (task, state) in &run.states {
        assert_eq!(*state, TaskState::Success, "{task}");
    }
    let mut total: u64 = 0;
    for s in SPORTS {
        let fetch = &run.outputs[&run.of("sport.fetch_scoreboard", s.key)];
        assert_eq!(fetch["sport"], s.key);
        assert_eq!(fetch["date"], "2024-09-01");
        assert_eq!(fetch["source"], "replay");
        let key = fetch["key"].as_str().unwrap();
        assert!(
            key.starts_with(&format!(
                "raw/historical/{}/games/date=2024-09-01/replay-dry_run",
                s.key
            )),
            "{key}"
        );
        assert!(home.path().join("lake").join(key).is_file(), "{key}");
        let validate = &run.outputs[&run.of("sport.validate", s.key)];
        assert_eq!(validate["rejected"], 0, "{validate}");
        assert_eq!(validate["games"], validate["final_games"], "{validate}");
        total += validate["games"].as_u64().unwrap();
    }
    // 2024-09-01 is a Sunday before every season's openers: few or no
    // games; tests/ingest.rs covers a day full of real ones.
    let bronze = &run.outputs["transform.bronze_games"];
    assert_eq!(bronze["records"], total, "{bronze}");
    assert_eq!(run.outputs["quality.silver_games"]["records"], total);
    assert!(lake_files(home.path(), "raw/dead_letter").is_empty());
    // Deterministic: a second run of the date gives the same counts and
    // still one object per sport and date.
    let again = dry_run(&dag, Value::Null).await;
    assert_eq!(
        again.outputs["transform.bronze_games"]["records"],
        bronze["records"]
    );
    assert_eq!(lake_files(home.path(), "raw/historical/nfl/games").len(), 1);
}

/// A fake ESPN answering every scoreboard request with `body`.
async fn fake_espn(body: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move { body });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn live_mode_dead_letters_bad_events_and_keeps_the_good_ones() {
    let good = std::str::from_utf8(sources::replay::CAPTURES[1].bytes).unwrap();
    let mut payload: Value = serde_json::from_str(good).unwrap();
    let events = payload["events"].as_array_mut().unwrap();
    let n = events.len();
    events.push(json!({"id": "broken", "competitions": "not a list"}));
    let body: &'static str = Box::leak(payload.to_string().into_boxed_str());
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(
        home.path(),
        SourceMode::Live {
            base_url: fake_espn(body).await,
        },
    );
    let run = dry_run(&dag, json!({"sports": ["nfl"]})).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(
        run.outputs[&run.of("sport.fetch_scoreboard", "nfl")]["source"],
        "espn"
    );
    assert_eq!(
        run.outputs[&run.of("sport.fetch_scoreboard", "nfl")]["bytes"],
        body.len()
    );
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert_eq!(v["rejected"], 1, "{v}");
    assert_eq!(v["games"].as_u64().unwrap() as usize, n, "{v}");
    let dead = lake_files(home.path(), "raw/dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].starts_with("raw/dead_letter/espn.scoreboard/nfl/date=2024-09-01/"),
        "{dead:?}"
    );
    assert!(run
        .logs
        .iter()
        .any(|l| l.level == "WARNING" && l.message.contains("1 rejected")));
}

#[tokio::test]
async fn a_body_that_is_not_json_fails_the_fetch_for_a_retry_and_stores_nothing() {
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(
        home.path(),
        SourceMode::Live {
            base_url: fake_espn("<html>maintenance</html>").await,
        },
    );
    let run = dry_run(&dag, json!({"sports": ["nfl"]})).await;
    assert_eq!(
        run.states[&run.of("sport.fetch_scoreboard", "nfl")],
        TaskState::Failed
    );
    assert!(
        run.errors[&run.of("sport.fetch_scoreboard", "nfl")].contains("is not JSON"),
        "{:?}",
        run.errors
    );
    // The source may answer properly on the next try: the fetch retries.
    assert!(run.retryable[&run.of("sport.fetch_scoreboard", "nfl")]);
    assert_eq!(run.states["sport.validate"], TaskState::UpstreamFailed);
    assert!(lake_files(home.path(), "raw/historical/nfl/games").is_empty());
    assert!(
        lake_files(home.path(), "raw/dead_letter").is_empty(),
        "kept only on the last try"
    );
}

#[tokio::test]
async fn a_body_refused_on_the_last_try_is_kept_with_its_reason_in_the_dead_letter_area() {
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(
        home.path(),
        SourceMode::Live {
            base_url: fake_espn("<html>maintenance</html>").await,
        },
    );
    let last = dry_run_tries(
        &dag,
        json!({"sports": ["nfl"]}),
        dag.bounds.start_date,
        true,
    )
    .await;
    let fetch = last.of("sport.fetch_scoreboard", "nfl");
    assert_eq!(last.states[&fetch], TaskState::Failed);
    let error = &last.errors[&fetch];
    assert!(
        error.contains("is not JSON") && error.contains("last try"),
        "{error}"
    );
    assert!(lake_files(home.path(), "raw/historical/nfl/games").is_empty());
    let kept = lake_files(home.path(), "raw/dead_letter/espn.scoreboard/nfl");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].ends_with("~fetch.ndjson.gz"), "{kept:?}");
    assert!(error.contains(&kept[0]), "the error names where: {error}");
    let gz = std::fs::read(home.path().join("lake").join(&kept[0])).unwrap();
    let text = String::from_utf8(crate::lake::gunzip("k", &gz).unwrap()).unwrap();
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["source"], "espn.scoreboard");
    assert_eq!(line["raw"], "<html>maintenance</html>");
    assert!(
        line["reason"].as_str().unwrap().contains("is not JSON"),
        "{line}"
    );
}

#[tokio::test]
async fn a_stored_payload_that_does_not_parse_fails_validate_without_retries() {
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(home.path(), SourceMode::Replay);
    let mut run = dry_run(&dag, json!({"sports": ["nfl"]})).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    // The day's raw object is damaged after the fetch stored it.
    let files = lake_files(home.path(), "raw/historical/nfl/games");
    let path = home.path().join("lake").join(&files[0]);
    std::fs::write(&path, crate::lake::gzip("k", b"<html>").unwrap()).unwrap();
    let task = dag.task("sport.validate").expect("validate task");
    let orchestrator::dag::TaskKind::Operator(op) = &task.kind else {
        panic!("validate is an operator");
    };
    let fetch_key = run.of("sport.fetch_scoreboard", "nfl");
    let fetched: Value = run.outputs.remove(&fetch_key).expect("fetch output");
    let (tx, _rx) = mpsc::unbounded_channel();
    let interval = dag
        .schedule
        .interval_from(
            dag.schedule
                .tick_at_or_after(dag.bounds.start_date)
                .unwrap(),
        )
        .unwrap();
    let ctx = TaskContext::new(
        dag.id.clone(),
        task.id.clone(),
        "damaged".to_owned(),
        interval,
        1,
        3,
        dag.resolve_params(&json!({"sports": ["nfl"]})),
        TaskLogger::channel(tx),
        CancellationToken::new(),
        HashMap::from([(fetch_key.replace("[0]", ""), fetched)]),
    )
    .with_map(0, Some(json!("nfl")));
    let err = op.execute(ctx).await.expect_err("a damaged payload fails");
    assert!(err.to_string().contains("is not JSON"), "{err}");
    assert!(
        !err.is_retryable(),
        "no retry changes a stored object: {err}"
    );
}

#[tokio::test]
async fn the_sports_param_decides_the_fetch_instances_and_the_fan_in_reads_them_in_table_order() {
    let home = tempfile::tempdir().unwrap();
    let settings = std::sync::Arc::new(Settings::new(home.path(), SourceMode::Replay));
    for (id, fetch) in [
        (HISTORICAL_GAMES, "sport.fetch_scoreboard"),
        (HISTORICAL_ODDS, "sport.fetch_odds_snapshots"),
        (WEATHER, "sport.fetch_open_meteo"),
        (NEWS, "sport.fetch_news"),
    ] {
        let dag = match id {
            HISTORICAL_GAMES => batch::historical_games_daily(settings.clone()),
            HISTORICAL_ODDS => batch::historical_odds_daily(settings.clone()),
            NEWS => batch::news_daily(settings.clone()),
            _ => batch::weather_daily(settings.clone()),
        }
        .unwrap();
        let run = dry_run(&dag, json!({"sports": ["nba", "nfl"]})).await;
        assert!(run.errors.is_empty(), "{id}: {:?}", run.errors);
        for (task, state) in &run.states {
            assert_eq!(*state, TaskState::Success, "{id}.{task}");
        }
        // One fetch and one validate per selected sport, in the conf's order.
        for task in [fetch, "sport.validate"] {
            assert_eq!(run.instances[task].len(), 2, "{id}.{task}");
            let sports: Vec<&Value> = run.outputs[task]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| &o["sport"])
                .collect();
            assert_eq!(sports, [&json!("nba"), &json!("nfl")], "{id}.{task}");
        }
        let bronze = run
            .outputs
            .iter()
            .find(|(k, _)| k.starts_with("transform.bronze_"))
            .unwrap()
            .1;
        assert_eq!(bronze["sports"], json!(["nfl", "nba"]), "{id}: table order");
    }
}

#[tokio::test]
async fn no_sports_skip_the_fetch_and_validate_but_not_the_fan_in() {
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(home.path(), SourceMode::Replay);
    let run = dry_run(&dag, json!({"sports": []})).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.states["sport.fetch_scoreboard"], TaskState::Skipped);
    assert_eq!(run.states["sport.validate"], TaskState::Skipped);
    assert_eq!(run.states["transform.bronze_games"], TaskState::Success);
    assert_eq!(run.outputs["transform.bronze_games"]["records"], 0);
}

#[tokio::test]
async fn an_unknown_or_repeated_sport_fails_its_instance_loudly() {
    let home = tempfile::tempdir().unwrap();
    let dag = games_dag(home.path(), SourceMode::Replay);
    let run = dry_run(&dag, json!({"sports": ["nfl", "mlb", "nfl"]})).await;
    // nfl is fetched once; the unknown and the repeated key fail at once.
    assert_eq!(run.states["sport.fetch_scoreboard[0]"], TaskState::Success);
    for (i, words) in [(1, "unknown sport `mlb`"), (2, "listed twice")] {
        let key = format!("sport.fetch_scoreboard[{i}]");
        assert_eq!(run.states[&key], TaskState::Failed, "{key}");
        assert!(run.errors[&key].contains(words), "{:?}", run.errors);
        assert!(!run.retryable[&key], "no retry changes the conf");
    }
    // nfl's validate still ran: each sport's follows its own fetch.
    assert_eq!(run.states["sport.validate[0]"], TaskState::Success);
    assert_eq!(run.states["sport.validate[1]"], TaskState::UpstreamFailed);
    assert_eq!(run.states["sport.validate[2]"], TaskState::UpstreamFailed);
    assert_eq!(run.states["sport.validate"], TaskState::UpstreamFailed);
    assert_eq!(
        run.states["transform.bronze_games"],
        TaskState::UpstreamFailed
    );
    assert_eq!(
        run.states["quality.silver_games"],
        TaskState::UpstreamFailed
    );
    // More sports than there are fail the expansion, naming the cap.
    let run = dry_run(&dag, json!({"sports": ["nfl", "nfl", "nfl", "nfl", "nfl"]})).await;
    assert_eq!(run.states["sport.fetch_scoreboard"], TaskState::Failed);
    assert!(
        run.errors["sport.fetch_scoreboard"].contains("max_map_length of 4"),
        "{:?}",
        run.errors
    );
}

// ---- odds and weather ----------------------------------------------------

/// 2024-09-08, NFL week 1's Sunday: the generator's 13 games (no capture).
fn week1() -> chrono::DateTime<chrono::Utc> {
    "2024-09-08T09:00:00Z".parse().unwrap()
}

fn settings(home: &std::path::Path, mode: SourceMode) -> crate::ingest::SharedSettings {
    std::sync::Arc::new(Settings::new(home, mode))
}

fn gunzip_json(home: &std::path::Path, key: &str) -> Value {
    let gz = std::fs::read(home.join("lake").join(key)).unwrap();
    serde_json::from_slice(&crate::lake::gunzip(key, &gz).unwrap()).unwrap()
}

#[test]
fn odds_weather_and_news_fetch_per_sport_then_validate_each_fetch() {
    for (id, fetch) in [
        (HISTORICAL_ODDS, "sport.fetch_odds_snapshots"),
        (WEATHER, "sport.fetch_open_meteo"),
        (NEWS, "sport.fetch_news"),
    ] {
        let dag = build(id);
        let task = dag.task(fetch).unwrap();
        assert_eq!(
            task.map.as_ref().map(|m| &m.over),
            Some(&orchestrator::MapOver::Param("sports".into())),
            "{id}"
        );
        // A sport's validate follows that sport's fetch (mapped task group).
        let validate = dag.task("sport.validate").unwrap();
        assert_eq!(validate.map, task.map, "{id}");
        assert!(validate.follows_index_of(task), "{id}");
        let bronze = dag
            .tasks()
            .iter()
            .find(|t| t.id.starts_with("transform.bronze_"))
            .unwrap();
        assert_eq!(bronze.upstream, ["sport.validate"], "{id}");
        assert!(!ids(&dag).iter().any(|t| t.ends_with("write_raw")), "{id}");
    }
}

#[test]
fn snapshot_times_cover_the_new_york_day() {
    let day = chrono::NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
    let times = crate::ingest::odds::snapshot_times(day, 60);
    assert_eq!(times.len(), 24);
    assert_eq!(times[0].to_rfc3339(), "2024-09-08T04:00:00+00:00");
    assert_eq!(crate::ingest::odds::snapshot_times(day, 1440).len(), 1);
    // The autumn DST change makes a 25-hour day.
    let fall = chrono::NaiveDate::from_ymd_opt(2024, 11, 3).unwrap();
    assert_eq!(crate::ingest::odds::snapshot_times(fall, 60).len(), 25);
}

#[tokio::test]
async fn odds_dry_run_stores_a_days_snapshots_and_counts_them() {
    let home = tempfile::tempdir().unwrap();
    let dag = batch::historical_odds_daily(settings(home.path(), SourceMode::Replay)).unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl", "nba"]}), week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fetch = &run.outputs[&run.of("sport.fetch_odds_snapshots", "nfl")];
    assert_eq!(fetch["date"], "2024-09-08");
    assert_eq!(fetch["source"], "replay");
    assert_eq!(fetch["requested"], 24);
    assert_eq!(fetch["snapshots"], 24);
    let key = fetch["key"].as_str().unwrap();
    assert!(
        key.starts_with("raw/historical/nfl/odds/date=2024-09-08/replay-dry_run"),
        "{key}"
    );
    let stored = gunzip_json(home.path(), key);
    let snapshots = stored.as_array().unwrap();
    assert_eq!(snapshots.len(), 24);
    let events: usize = snapshots
        .iter()
        .map(|s| s["data"].as_array().unwrap().len())
        .sum();
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert_eq!(v["snapshots"], 24, "{v}");
    assert_eq!(v["events"], events, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    assert!(events > 0, "week 1 has priced games: {v}");
    // 13 Sunday games, the Monday game, 6 books × 3 markets × 2 outcomes.
    assert_eq!(v["distinct_events"], 14, "{v}");
    assert_eq!(v["bookmakers"], 6, "{v}");
    assert_eq!(v["quotes"], events * 6 * 6, "{v}");
    assert_eq!(run.outputs["transform.bronze_odds"]["records"], v["quotes"]);
    // No NBA games in September: an empty day still stores its snapshots.
    assert_eq!(run.outputs[&run.of("sport.validate", "nba")]["events"], 0);
    assert!(lake_files(home.path(), "raw/dead_letter").is_empty());
    // Deterministic, and one object per sport and date on a re-run.
    let again = dry_run_at(&dag, json!({"sports": ["nfl", "nba"]}), week1()).await;
    assert_eq!(again.outputs[&again.of("sport.validate", "nfl")], *v);
    assert_eq!(lake_files(home.path(), "raw/historical/nfl/odds").len(), 1);
}

#[tokio::test]
async fn odds_replay_uses_a_recorded_capture_for_its_date() {
    // theoddsapi_nfl_odds_jonathaanh.json has games on 2023-01-01.
    let home = tempfile::tempdir().unwrap();
    let dag = batch::historical_odds_daily(settings(home.path(), SourceMode::Replay)).unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2023-01-01T09:00:00Z".parse().unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl"]}), at).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fetch = &run.outputs[&run.of("sport.fetch_odds_snapshots", "nfl")];
    assert!(
        fetch["url"]
            .as_str()
            .unwrap()
            .starts_with("replay://odds_api/nfl/historical"),
        "{fetch}"
    );
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert!(v["events"].as_u64().unwrap() > 0, "{v}");
}

/// A fake HTTP API answering every request with `body` (and Odds API
/// quota headers).
async fn fake_api(body: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move {
        (
            [
                ("x-requests-remaining", "480"),
                ("x-requests-used", "20"),
                ("x-requests-last", "10"),
            ],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn live_odds_dead_letter_bad_events_and_need_a_key() {
    let generator = sources::generator::SeasonGenerator::new(crate::ingest::REPLAY_SEED).unwrap();
    let nfl = crate::sport("nfl").unwrap();
    let snap = generator
        .historical_odds(nfl, "2024-09-08T16:00:00Z".parse().unwrap())
        .unwrap();
    let mut payload: Value = serde_json::from_slice(&snap.body).unwrap();
    let data = payload["data"].as_array_mut().unwrap();
    let n = data.len();
    assert!(n > 0);
    let mut broken = data[0].clone();
    broken["id"] = json!("broken");
    broken["bookmakers"][0]["markets"][0]["outcomes"]
        .as_array_mut()
        .unwrap()
        .pop();
    data.push(broken);
    data.push(json!({"id": "no teams", "commence_time": "2024-09-08T17:00:00Z"}));
    let body: &'static str = Box::leak(payload.to_string().into_boxed_str());
    let url = fake_api(body).await;
    let home = tempfile::tempdir().unwrap();
    let live = SourceMode::Live {
        base_url: "http://127.0.0.1:9".into(),
    };

    // Without ODDS_API_KEY the fetch fails and says why.
    let mut s = Settings::new(home.path(), live.clone());
    s.odds_api_url = url.clone();
    let dag = batch::historical_odds_daily(std::sync::Arc::new(s.clone())).unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl"]}), week1()).await;
    assert!(
        run.errors[&run.of("sport.fetch_odds_snapshots", "nfl")].contains("ODDS_API_KEY"),
        "{:?}",
        run.errors
    );

    // One snapshot a day keeps the test fast (the API allows 1 req/s).
    s.odds_api_key = Some(sources::ApiKey::new("test-key"));
    s.odds_snapshot_minutes = 1440;
    let dag = batch::historical_odds_daily(std::sync::Arc::new(s)).unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl"]}), week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fetch = &run.outputs[&run.of("sport.fetch_odds_snapshots", "nfl")];
    assert_eq!(fetch["source"], "odds_api");
    assert_eq!(fetch["snapshots"], 1);
    assert_eq!(fetch["credits_used"], 10.0);
    assert_eq!(fetch["credits_remaining"], 480.0);
    assert!(
        !fetch["url"].as_str().unwrap().contains("test-key"),
        "{fetch}"
    );
    assert_eq!(fetch["bytes"], body.len() + 2);
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    // The broken h2h market is rejected alone: its event is kept with the
    // rest of its markets. The event without teams is rejected whole.
    assert_eq!(v["events"], n + 1, "{v}");
    assert_eq!(v["rejected"], 2, "{v}");
    let dead = lake_files(home.path(), "raw/dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].starts_with("raw/dead_letter/odds_api.historical/nfl/date=2024-09-08/"),
        "{dead:?}"
    );
    assert!(run.logs.iter().any(|l| l.message.contains("remaining 480")));
    assert!(run
        .logs
        .iter()
        .any(|l| l.level == "WARNING" && l.message.contains("2 rejected")));
}

#[tokio::test]
async fn weather_dry_run_fetches_the_outdoor_venues_of_the_days_games() {
    let home = tempfile::tempdir().unwrap();
    let conf = json!({"sports": ["nfl", "nba"]});
    // No games in the lake yet: no venues, an empty (but stored) day.
    let weather = batch::weather_daily(settings(home.path(), SourceMode::Replay)).unwrap();
    let run = dry_run_at(&weather, conf.clone(), week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.outputs["select_outdoor_venues"]["records"], 0);
    assert!(run
        .logs
        .iter()
        .any(|l| l.level == "WARNING" && l.message.contains("historical_games_daily")));

    let games = batch::historical_games_daily(settings(home.path(), SourceMode::Replay)).unwrap();
    let g = dry_run_at(&games, conf.clone(), week1()).await;
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let run = dry_run_at(&weather, conf.clone(), week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let venues = &run.outputs["select_outdoor_venues"]["sports"]["nfl"];
    let games_key = g.outputs[&g.of("sport.fetch_scoreboard", "nfl")]["key"]
        .as_str()
        .unwrap();
    assert_eq!(venues["games_key"], games_key);
    let scoreboard = gunzip_json(home.path(), games_key);
    let outdoor: BTreeSet<String> = scoreboard["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["competitions"][0]["venue"]["indoor"] == json!(false))
        .map(|e| {
            e["competitions"][0]["venue"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let chosen: BTreeSet<String> = venues["venues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["venue_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!chosen.is_empty(), "{venues}");
    assert_eq!(
        chosen, outdoor,
        "every outdoor venue of the captures is seeded"
    );
    assert_eq!(venues["missing_coordinates"], json!([]));
    // Indoor leagues have nothing to fetch.
    assert_eq!(
        run.outputs["select_outdoor_venues"]["sports"]["nba"]["venues"],
        json!([])
    );

    let fetch = &run.outputs[&run.of("sport.fetch_open_meteo", "nfl")];
    assert_eq!(fetch["venues"], chosen.len());
    let key = fetch["key"].as_str().unwrap();
    assert!(
        key.starts_with("raw/historical/nfl/weather/date=2024-09-08/replay-dry_run"),
        "{key}"
    );
    let stored = gunzip_json(home.path(), key);
    assert_eq!(stored.as_array().unwrap().len(), chosen.len());
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert_eq!(v["venues"], chosen.len(), "{v}");
    // Two UTC days of hourly values per venue.
    assert_eq!(v["observations"], chosen.len() * 48, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    let again = dry_run_at(&weather, conf, week1()).await;
    assert_eq!(again.outputs[&again.of("sport.validate", "nfl")], *v);
    assert_eq!(
        lake_files(home.path(), "raw/historical/nfl/weather").len(),
        1
    );
}

#[tokio::test]
async fn live_weather_dead_letters_a_response_for_the_wrong_place() {
    let home = tempfile::tempdir().unwrap();
    let conf = json!({"sports": ["nfl"]});
    let games = batch::historical_games_daily(settings(home.path(), SourceMode::Replay)).unwrap();
    assert!(dry_run_at(&games, conf.clone(), week1())
        .await
        .errors
        .is_empty());
    // Live reads the live games object: copy the replayed one under `espn`.
    for key in lake_files(home.path(), "raw/historical/nfl/games") {
        let to = key.replace("/replay-", "/espn-");
        std::fs::copy(
            home.path().join("lake").join(&key),
            home.path().join("lake").join(to),
        )
        .unwrap();
    }
    // An archive answer for (0, 0): every venue's response is rejected.
    let body = r#"{"latitude":0.0,"longitude":0.0,"utc_offset_seconds":0,"hourly_units":{"temperature_2m":"°C"},"hourly":{"time":["2024-09-08T00:00"],"temperature_2m":[20.0]}}"#;
    let mut s = Settings::new(
        home.path(),
        SourceMode::Live {
            base_url: "http://127.0.0.1:9".into(),
        },
    );
    s.open_meteo_url = fake_api(body).await;
    let weather = batch::weather_daily(std::sync::Arc::new(s)).unwrap();
    let run = dry_run_at(&weather, conf, week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fetch = &run.outputs[&run.of("sport.fetch_open_meteo", "nfl")];
    assert_eq!(fetch["source"], "open_meteo");
    let n = fetch["venues"].as_u64().unwrap();
    assert!(n > 0);
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert_eq!(v["venues"], 0, "{v}");
    assert_eq!(v["rejected"], n, "{v}");
    let dead = lake_files(home.path(), "raw/dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].starts_with("raw/dead_letter/open_meteo.archive/nfl/date=2024-09-08/"),
        "{dead:?}"
    );
}

// ---- news ------------------------------------------------------------------

#[tokio::test]
async fn news_dry_run_replays_a_day_of_headlines_into_silver() {
    let home = tempfile::tempdir().unwrap();
    let dag = batch::news_daily(settings(home.path(), SourceMode::Replay)).unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl", "nba"]}), week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    for (task, state) in &run.states {
        assert_eq!(*state, TaskState::Success, "{task}");
    }
    let fetch = &run.outputs[&run.of("sport.fetch_news", "nfl")];
    assert_eq!(fetch["source"], "replay");
    assert_eq!(fetch["feeds"], 2);
    assert_eq!(fetch["failed_feeds"], 0);
    let key = fetch["key"].as_str().unwrap();
    assert!(
        key.starts_with("raw/historical/nfl/news/date=2024-09-08/replay-dry_run"),
        "{key}"
    );
    // Every recorded article is moved onto the day: 20 + 14, none rejected.
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert_eq!(v["items"], 34, "{v}");
    assert_eq!(v["outside_day"], 0, "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    let matched = v["matched_items"].as_u64().unwrap();
    assert!(
        matched >= 2,
        "the Lions and the Giants are in the headlines: {v}"
    );
    assert_eq!(matched + v["unmatched_items"].as_u64().unwrap(), 34);
    assert_eq!(run.outputs["transform.bronze_news"]["records"], 34 * 2);
    let silver = &run.outputs["transform.silver_news"];
    assert!(silver["records"].as_u64().unwrap() >= 34 * 2, "{silver}");
    let unmatched = silver["unmatched_items"].as_u64().unwrap();
    assert_eq!(
        unmatched,
        v["unmatched_items"].as_u64().unwrap()
            + run.outputs[&run.of("sport.validate", "nba")]["unmatched_items"]
                .as_u64()
                .unwrap()
    );
    assert!(
        run.outputs["quality.silver_news"]["records"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(lake_files(home.path(), "raw/dead_letter").is_empty());
    // Deterministic: a re-run of the day counts the same and keeps one object.
    let again = dry_run_at(&dag, json!({"sports": ["nfl", "nba"]}), week1()).await;
    assert_eq!(again.outputs[&again.of("sport.validate", "nfl")], *v);
    assert_eq!(lake_files(home.path(), "raw/historical/nfl/news").len(), 1);
}

/// A fake feed server: `/good.xml` an RSS feed with one article of the
/// day and one without a link, `/down.xml` a 404.
async fn fake_feeds() -> String {
    let rss = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Test - NFL</title>
<item><title>Eagles win big</title><link>https://news.test/eagles</link><pubDate>Sun, 08 Sep 2024 18:00:00 GMT</pubDate><description>Dominant victory</description></item>
<item><title>No link here</title><pubDate>Sun, 08 Sep 2024 19:00:00 GMT</pubDate></item>
</channel></rss>"#;
    let app = axum::Router::new()
        .route("/good.xml", axum::routing::get(move || async move { rss }))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "gone") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn live_news_keeps_a_dead_feed_on_record_and_dead_letters_bad_articles() {
    let base = fake_feeds().await;
    let home = tempfile::tempdir().unwrap();
    let mut s = Settings::new(
        home.path(),
        SourceMode::Live {
            base_url: "http://127.0.0.1:9".into(),
        },
    );
    s.news_feeds.insert(
        "nfl".into(),
        vec![format!("{base}/good.xml"), format!("{base}/down.xml")],
    );
    let dag = batch::news_daily(std::sync::Arc::new(s.clone())).unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl"]}), week1()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let fetch = &run.outputs[&run.of("sport.fetch_news", "nfl")];
    assert_eq!(fetch["source"], "rss");
    assert_eq!(fetch["feeds"], 2);
    assert_eq!(fetch["failed_feeds"], 1);
    let v = &run.outputs[&run.of("sport.validate", "nfl")];
    assert_eq!(v["items"], 1, "{v}");
    assert_eq!(v["matched_items"], 1, "{v}");
    // The article without a link and the 404 feed.
    assert_eq!(v["rejected"], 2, "{v}");
    let dead = lake_files(home.path(), "raw/dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].starts_with("raw/dead_letter/news.items/nfl/date=2024-09-08/"),
        "{dead:?}"
    );

    // Every feed down: the fetch fails (and retries) rather than store nothing.
    s.news_feeds
        .insert("nfl".into(), vec![format!("{base}/down.xml")]);
    let dag = batch::news_daily(std::sync::Arc::new(s)).unwrap();
    let run = dry_run_at(&dag, json!({"sports": ["nfl"]}), week1()).await;
    assert!(
        run.errors[&run.of("sport.fetch_news", "nfl")].contains("every nfl news feed failed"),
        "{:?}",
        run.errors
    );
}
