//! Schema migrations, one set per owning crate.
//!
//! Each crate embeds the migrations of its own tables
//! (`migrations/{owner}/`): the orchestrator's metadata here, the web's
//! users and sessions in `web`, the `serving` schema in `dags`. The binary
//! applies the sets in the order it lists them. All sets share sqlx's one
//! `_sqlx_migrations` table with distinct versions, so each set is run
//! ignoring the versions the others applied.

use sqlx::migrate::Migrator;

use super::{Store, StoreError};

/// One crate's migrations.
pub struct Migrations {
    /// The crate (and folder under `migrations/`) that owns them.
    pub owner: &'static str,
    pub migrator: Migrator,
}

/// The orchestrator's metadata tables: DAGs, runs, task instances, tries,
/// logs, XCom, pools, workers, stream tasks, quality check results.
pub static ORCHESTRATOR: Migrations = Migrations {
    owner: "orchestrator",
    migrator: sqlx::migrate!("../migrations/orchestrator"),
};

/// One migration of a set and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub owner: &'static str,
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

impl Migrations {
    /// The set as a migrator that leaves the other sets' versions alone.
    fn beside_others(&self) -> Migrator {
        Migrator {
            migrations: self.migrator.migrations.clone(),
            ignore_missing: true,
            locking: self.migrator.locking,
            no_tx: self.migrator.no_tx,
        }
    }
}

impl Store {
    /// Applies the orchestrator's own migrations (engine tests; the binary
    /// applies every set with [`Store::migrate_all`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_all(&[&ORCHESTRATOR]).await
    }

    /// Applies each set's pending migrations, set by set in the given order.
    pub async fn migrate_all(&self, sets: &[&Migrations]) -> Result<(), StoreError> {
        for set in sets {
            set.beside_others().run(&self.pool).await?;
        }
        Ok(())
    }

    /// Every migration of the sets, in order, applied or pending.
    pub async fn migration_status(
        &self,
        sets: &[&Migrations],
    ) -> Result<Vec<MigrationStatus>, StoreError> {
        // A database never migrated has no table yet: everything is pending.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        Ok(sets
            .iter()
            .flat_map(|set| {
                set.migrator.iter().map(|m| MigrationStatus {
                    owner: set.owner,
                    version: m.version,
                    description: m.description.to_string(),
                    applied: applied.contains(&m.version),
                })
            })
            .collect())
    }
}
