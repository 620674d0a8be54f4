//! Data Catalog shapes: databases and tables (GetDatabase, CreateDatabase,
//! GetTable, CreateTable, UpdateTable), with Glue's member names. Outputs
//! BetFlow ignores are read as [`serde::de::IgnoredAny`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDatabaseRequest<'a> {
    /// The account of the Data Catalog; `None` for the caller's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<&'a str>,
    pub name: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateDatabaseRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<&'a str>,
    pub database_input: DatabaseInput<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseInput<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTableRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<&'a str>,
    pub database_name: &'a str,
    pub name: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTableResponse {
    pub table: Option<Table>,
}

/// A Glue table, as far as an update must carry it over. The storage
/// descriptor and partition keys stay raw JSON: Table and TableInput share
/// those shapes, so UpdateTable sends back exactly what GetTable returned,
/// including what other engines set and BetFlow does not model.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub table_type: Option<String>,
    pub storage_descriptor: Option<serde_json::Value>,
    #[serde(default)]
    pub partition_keys: Vec<serde_json::Value>,
    pub parameters: Option<HashMap<String, String>>,
    /// What UpdateTable's compare-and-set checks against.
    pub version_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTableRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<&'a str>,
    pub database_name: &'a str,
    pub table_input: TableInput,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTableRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<&'a str>,
    pub database_name: &'a str,
    pub table_input: TableInput,
    /// No archived copy of the old definition per commit.
    pub skip_archive: bool,
    /// The [`Table::version_id`] read before: Glue answers
    /// ConcurrentModificationException when the table moved since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// A table's whole definition: UpdateTable replaces the old one with it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableInput {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    /// A [`StorageDescriptor`] for a new table; the one read, as is, on update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<HashMap<String, String>>,
}

/// Where a new table's files are and its columns, for engines that read
/// only Glue.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageDescriptor {
    pub location: String,
    pub columns: Vec<Column>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    pub name: String,
    /// A Hive type: `bigint`, `timestamp`, `decimal(10,2)`, …
    #[serde(rename = "Type")]
    pub r#type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::{Column, GetTableResponse, StorageDescriptor, TableInput, UpdateTableRequest};
    use serde_json::json;

    /// What GetTable returns goes back through UpdateTable unchanged,
    /// output-only members (CreateTime, DatabaseName, …) left out.
    #[test]
    fn a_read_table_updates_with_what_it_had() {
        let descriptor = json!({"Location": "s3://b/w/t", "Columns": [
            {"Name": "id", "Type": "bigint"},
            {"Name": "ts", "Type": "timestamp", "Comment": "when"}
        ], "SerdeInfo": {"SerializationLibrary": "x"}});
        let answer = json!({"Table": {
            "Name": "t", "DatabaseName": "bronze", "CreateTime": 1_725_768_000.0,
            "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
            "Parameters": {"table_type": "ICEBERG"}, "VersionId": "3"
        }});
        let table = serde_json::from_value::<GetTableResponse>(answer)
            .expect("decodes")
            .table
            .expect("table");
        let request = UpdateTableRequest {
            catalog_id: None,
            database_name: "bronze",
            table_input: TableInput {
                name: table.name,
                description: table.description,
                owner: table.owner,
                table_type: table.table_type,
                storage_descriptor: table.storage_descriptor,
                partition_keys: table.partition_keys,
                parameters: table.parameters,
            },
            skip_archive: true,
            version_id: table.version_id,
        };
        assert_eq!(
            serde_json::to_value(&request).expect("encodes"),
            json!({"DatabaseName": "bronze", "SkipArchive": true, "VersionId": "3",
                   "TableInput": {"Name": "t", "TableType": "EXTERNAL_TABLE",
                                  "StorageDescriptor": descriptor,
                                  "Parameters": {"table_type": "ICEBERG"}}})
        );
    }

    #[test]
    fn columns_use_the_type_member() {
        let descriptor = StorageDescriptor {
            location: "s3://b/w/t".to_owned(),
            columns: vec![Column {
                name: "price".to_owned(),
                r#type: "decimal(10,2)".to_owned(),
                comment: None,
            }],
        };
        assert_eq!(
            serde_json::to_value(&descriptor).expect("encodes"),
            json!({"Location": "s3://b/w/t", "Columns": [{"Name": "price", "Type": "decimal(10,2)"}]})
        );
    }
}
