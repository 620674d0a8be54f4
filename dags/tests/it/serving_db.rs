//! A throwaway Postgres for the tests of the `serving` schema.

/// A throwaway Postgres with the orchestrator's and the serving schema's
/// migrations applied: the cluster (stopped on drop), its directory and a
/// pool on it.
pub struct ServingDb {
    pub pool: sqlx::PgPool,
    _pg: orchestrator::store::embedded::EmbeddedPostgres,
    _dir: tempfile::TempDir,
}

impl ServingDb {
    pub async fn start(connections: u32) -> ServingDb {
        use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = EmbeddedPostgres::start(&EmbeddedOptions {
            home: dir.path().join("pg"),
            durable: false,
        })
        .expect("start a throwaway Postgres");
        let pool = orchestrator::store::connect_pool(pg.url(), connections)
            .await
            .expect("connect");
        orchestrator::Store::new(pool.clone())
            .migrate_all(&[
                &orchestrator::store::migrations::ORCHESTRATOR,
                &dags::MIGRATIONS,
            ])
            .await
            .expect("migrate");
        ServingDb {
            pool,
            _pg: pg,
            _dir: dir,
        }
    }
}
