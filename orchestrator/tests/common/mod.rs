//! A throwaway embedded Postgres, migrated and with a bag's DAGs synced,
//! for the tests that need the real database.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use orchestrator::schedule::DataInterval;
use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
use orchestrator::store::write::{RunType, SyncOptions};
use orchestrator::{task_fn, Dag, DagBag, EngineConfig, Store, TaskSpec};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub store: Store,
    pub pool: sqlx::PgPool,
    /// The server's own address, for tests that put something in between.
    #[allow(dead_code)]
    pub url: String,
    // Dropped after the store: the server outlives the pool.
    _pg: EmbeddedPostgres,
    _home: tempfile::TempDir,
}

pub async fn cluster(bag: &DagBag) -> Cluster {
    let home = tempfile::tempdir().expect("tempdir");
    let opts = EmbeddedOptions {
        home: home.path().to_path_buf(),
        durable: false,
    };
    let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&opts))
        .await
        .expect("join")
        .expect("embedded Postgres starts");
    let pool = orchestrator::store::connect_pool(pg.url(), 10)
        .await
        .expect("connect");
    let store = Store::new(pool.clone());
    store.migrate().await.expect("migrate");
    let opts = SyncOptions {
        mark_missing_stale: false,
        paused_at_creation: false,
    };
    store.sync_dags(bag, opts).await.expect("sync DAGs");
    Cluster {
        store,
        pool,
        url: pg.url().to_owned(),
        _pg: pg,
        _home: home,
    }
}

/// A daily DAG of one no-op task, `only`. (Not every test file that
/// includes this module uses every helper in it.)
#[allow(dead_code)]
pub fn daily(id: &str) -> Dag {
    let mut b = Dag::builder(id).schedule("@daily", "UTC");
    b.task(TaskSpec::new(
        "only",
        task_fn(|_| async { Ok(Value::Null) }),
    ));
    b.build().expect("DAG builds")
}

/// The `i`th day from 2024-01-01.
#[allow(dead_code)]
pub fn day(i: i64) -> DataInterval {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(i);
    DataInterval {
        start,
        end: start + chrono::Duration::days(1),
    }
}

/// Run `dag_id` once with `conf` through a whole engine; returns the run's
/// id and end state.
#[allow(dead_code)]
pub async fn run_once(c: &Cluster, bag: &DagBag, dag_id: &str, conf: Value) -> (String, String) {
    let config = EngineConfig {
        run_streams: false,
        create_scheduled_runs: false,
        ..EngineConfig::default()
    };
    run_once_with(c, bag, dag_id, conf, config).await
}

/// [`run_once`] with the engine's `config`.
#[allow(dead_code)]
pub async fn run_once_with(
    c: &Cluster,
    bag: &DagBag,
    dag_id: &str,
    conf: Value,
    config: EngineConfig,
) -> (String, String) {
    run_once_through(c, &c.store, bag, dag_id, conf, config).await
}

/// [`run_once_with`] whose engine reaches the cluster through `store`
/// (another pool, such as one through a relay); the run is created and
/// watched directly.
#[allow(dead_code)]
pub async fn run_once_through(
    c: &Cluster,
    engine_store: &Store,
    bag: &DagBag,
    dag_id: &str,
    conf: Value,
    config: EngineConfig,
) -> (String, String) {
    let store = &c.store;
    let dag = bag.get(dag_id).expect("DAG in bag").clone();
    let now = chrono::Utc::now();
    let interval = DataInterval {
        start: now,
        end: now,
    };
    let run_id = store
        .create_run(&dag, RunType::Manual, interval, &conf)
        .await
        .expect("create run")
        .expect("new run");
    let token = CancellationToken::new();
    let engine = tokio::spawn(orchestrator::engine::run(
        engine_store.clone(),
        bag.clone(),
        config,
        token.clone(),
    ));
    let started = Instant::now();
    let state = loop {
        let state: String =
            sqlx::query_scalar("SELECT state FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
                .bind(dag_id)
                .bind(&run_id)
                .fetch_one(&c.pool)
                .await
                .expect("run state");
        if state == "success" || state == "failed" {
            break state;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{dag_id} still {state} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    token.cancel();
    engine.await.expect("join").expect("engine stops cleanly");
    (run_id, state)
}
