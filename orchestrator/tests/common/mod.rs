//! A throwaway embedded Postgres, migrated and with a bag's DAGs synced,
//! for the tests that need the real database.

use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
use orchestrator::store::write::SyncOptions;
use orchestrator::{DagBag, Store};

pub struct Cluster {
    pub store: Store,
    pub pool: sqlx::PgPool,
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
        _pg: pg,
        _home: home,
    }
}
