//! The assets BetFlow's DAGs update and read: Iceberg tables and the
//! serving tables the pages read, named by URI so lineage and the asset
//! schedule of the marts speak of the same things (docs/assets.md).

use orchestrator::Asset;

/// An Iceberg table, `layer.table` (`silver.games`):
/// `iceberg://silver.games`, shown as `silver.games`.
pub fn iceberg(table: &str) -> Asset {
    Asset::new(format!("iceberg://{table}"))
        .named(table)
        .group("iceberg")
}

/// A table of Postgres's `serving` schema (`gold_team_trends`):
/// `postgres://serving.gold_team_trends`.
pub fn serving(table: &str) -> Asset {
    Asset::new(format!("postgres://serving.{table}"))
        .named(format!("serving.{table}"))
        .group("serving")
}
