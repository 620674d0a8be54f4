//! The table definitions the Spark scripts read, exported from the
//! [`TableDef`]s the polars engine writes with: one source of truth for
//! names, types and nullability. The export is checked in as
//! `glue/schemas.json` (a test keeps it equal to [`export`]) and shipped
//! beside the scripts.

use lakehouse::iceberg::{Kind, TableDef};
use serde_json::{json, Map, Value};

use crate::transform::{bronze, silver_tables};

/// Bumped when the file's shape (not its tables) changes.
pub const FORMAT_VERSION: u32 = 1;

/// The tables a Spark job writes or reads: bronze and silver of every
/// family.
pub fn tables() -> [&'static TableDef; 9] {
    [
        &bronze::GAMES,
        &bronze::ODDS,
        &bronze::WEATHER,
        &bronze::NEWS,
        &silver_tables::GAMES,
        &silver_tables::GAME_PERIODS,
        &silver_tables::ODDS,
        &silver_tables::WEATHER,
        &silver_tables::NEWS,
    ]
}

/// Iceberg's name of a kind, as the scripts map it to a Spark type.
pub fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "string",
        Kind::Int => "int",
        Kind::Long => "long",
        Kind::Double => "double",
        Kind::Bool => "boolean",
        Kind::Date => "date",
        Kind::Timestamp => "timestamp",
    }
}

/// `glue/schemas.json`'s text: pretty JSON with a final newline.
pub fn export() -> String {
    let mut out: Map<String, Value> = Map::new();
    for def in tables() {
        let columns: Vec<Value> = def
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": type_name(c.kind), "required": c.required}))
            .collect();
        out.insert(
            def.full_name(),
            json!({"partition_by": def.partition_by, "columns": columns}),
        );
    }
    let file = json!({"version": FORMAT_VERSION, "tables": out});
    let mut text = serde_json::to_string_pretty(&file).expect("JSON of plain values");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table changed without re-exporting would have the scripts write
    /// the old columns; the commit would refuse them at run time. This
    /// catches it at build time instead.
    #[test]
    fn the_checked_in_schemas_are_the_table_definitions() {
        assert_eq!(
            super::super::scripts::SCHEMAS,
            export(),
            "glue/schemas.json is stale: run `betflow glue schemas > glue/schemas.json`"
        );
    }

    #[test]
    fn every_column_keeps_its_kind_and_nullability() {
        let file: Value = serde_json::from_str(&export()).unwrap();
        let weather = &file["tables"]["bronze.weather"];
        assert_eq!(weather["partition_by"], json!(["sport", "sports_date"]));
        assert_eq!(
            weather["columns"][5],
            json!({"name": "observed_at", "type": "timestamp", "required": true})
        );
        assert_eq!(
            weather["columns"][6],
            json!({"name": "temperature_c", "type": "double", "required": false})
        );
    }
}
