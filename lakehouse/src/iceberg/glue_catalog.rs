//! Iceberg tables in the AWS Glue Data Catalog, laid out as Iceberg's own
//! Glue catalogs (Java, pyiceberg) do: one Glue database per namespace, one
//! `EXTERNAL_TABLE` per table with `table_type = ICEBERG` and the current
//! metadata file in its `metadata_location` parameter, its columns in the
//! storage descriptor for engines that read only Glue (Athena's DDL view).
//!
//! Written over BetFlow's own Glue client ([`crate::glue_api`]) rather than
//! iceberg-rust's Glue catalog crate, whose schema conversion refuses
//! `timestamptz`, the type of every BetFlow timestamp, and which would bring
//! the AWS SDK back into the build.
//! Only what BetFlow's writes and reads need is here: namespaces created on
//! first use, tables created, found and loaded, and the commit's
//! compare-and-set of the metadata pointer.

use std::collections::HashMap;

use iceberg::io::FileIO;
use iceberg::spec::{PrimitiveType, Schema, TableMetadata, TableMetadataBuilder, Type};
use iceberg::table::Table;
use iceberg::Runtime;
use iceberg::{Error, ErrorKind, MetadataLocation, NamespaceIdent, TableCreation, TableIdent};
use serde::de::IgnoredAny;

use crate::glue_api::tables::{
    self as glue, Column, CreateDatabaseRequest, CreateTableRequest, DatabaseInput,
    GetDatabaseRequest, GetTableRequest, GetTableResponse, StorageDescriptor, TableInput,
    UpdateTableRequest,
};
use crate::glue_api::{GlueApiError, GlueClient, GlueErrorKind};

/// Glue table parameters Iceberg's catalogs agree on.
const TABLE_TYPE: &str = "table_type";
const ICEBERG: &str = "ICEBERG";
const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

/// A Glue Data Catalog holding tables whose files are in `warehouse`.
#[derive(Clone)]
pub struct GlueCatalog {
    pub(super) client: GlueClient,
    /// The account of the Data Catalog, when not the caller's own.
    pub(super) catalog_id: Option<String>,
    /// Reads and writes metadata files (in S3).
    pub(super) file_io: FileIO,
    /// `s3://{bucket}/warehouse`: tables go to `{warehouse}/{namespace}/{table}`.
    pub(super) warehouse: String,
    /// Where loaded tables spawn their scans' tasks.
    pub(super) runtime: Runtime,
}

/// `what` names the object (`GetTable bronze.games`); the source says the
/// rest (`GetTable failed: AccessDeniedException: …`), and iceberg's
/// Display prints both.
fn glue_error(what: String, e: GlueApiError) -> Error {
    Error::new(ErrorKind::Unexpected, format!("Glue {what}")).with_source(e)
}

/// The Glue database of a namespace (`bronze`, `silver`, `gold`).
fn database(namespace: &NamespaceIdent) -> String {
    namespace.join("_")
}

impl GlueCatalog {
    pub async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        let name: String = database(namespace);
        let request = GetDatabaseRequest {
            catalog_id: self.catalog_id.as_deref(),
            name: &name,
        };
        match self
            .client
            .call::<_, IgnoredAny>("GetDatabase", &request)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == Some(GlueErrorKind::EntityNotFound) => Ok(false),
            Err(e) => Err(glue_error(format!("GetDatabase {name}"), e)),
        }
    }

    /// Creates the namespace's database; one another writer created first
    /// (two first writes racing) is as good.
    pub async fn create_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        let name: String = database(namespace);
        let request = CreateDatabaseRequest {
            catalog_id: self.catalog_id.as_deref(),
            database_input: DatabaseInput {
                name: &name,
                location_uri: Some(format!("{}/{name}", self.warehouse)),
            },
        };
        match self
            .client
            .call::<_, IgnoredAny>("CreateDatabase", &request)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == Some(GlueErrorKind::AlreadyExists) => Ok(()),
            Err(e) => Err(glue_error(format!("CreateDatabase {name}"), e)),
        }
    }

    /// The table's Glue definition; `None` when there is none.
    async fn get(&self, ident: &TableIdent) -> iceberg::Result<Option<glue::Table>> {
        let database_name: String = database(ident.namespace());
        let request = GetTableRequest {
            catalog_id: self.catalog_id.as_deref(),
            database_name: &database_name,
            name: ident.name(),
        };
        match self
            .client
            .call::<_, GetTableResponse>("GetTable", &request)
            .await
        {
            Ok(got) => Ok(got.table),
            Err(e) if e.kind() == Some(GlueErrorKind::EntityNotFound) => Ok(None),
            Err(e) => Err(glue_error(format!("GetTable {ident}"), e)),
        }
    }

    pub async fn table_exists(&self, ident: &TableIdent) -> iceberg::Result<bool> {
        Ok(self.get(ident).await?.is_some())
    }

    pub async fn load_table(&self, ident: &TableIdent) -> iceberg::Result<Table> {
        let table = self.get(ident).await?.ok_or_else(|| {
            Error::new(ErrorKind::TableNotFound, format!("no Glue table {ident}"))
        })?;
        let location: String = metadata_location(&table)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    format!("Glue table {ident} is not an Iceberg table (no {METADATA_LOCATION})"),
                )
            })?
            .to_owned();
        let metadata = TableMetadata::read_from(&self.file_io, &location).await?;
        Table::builder()
            .runtime(self.runtime.clone())
            .file_io(self.file_io.clone())
            .identifier(ident.clone())
            .metadata_location(location)
            .metadata(metadata)
            .build()
    }

    /// Writes the first metadata file, then registers the table in Glue.
    pub async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> iceberg::Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        let location: String = creation.location.clone().unwrap_or_else(|| {
            format!(
                "{}/{}/{}",
                self.warehouse,
                database(namespace),
                creation.name
            )
        });
        let metadata: TableMetadata = TableMetadataBuilder::from_table_creation(TableCreation {
            location: Some(location.clone()),
            ..creation
        })?
        .build()?
        .metadata;
        let metadata_location = MetadataLocation::new_with_metadata(location.clone(), &metadata);
        metadata.write_to(&self.file_io, &metadata_location).await?;
        let descriptor = StorageDescriptor {
            location: location.clone(),
            columns: columns(metadata.current_schema())?,
        };
        let descriptor: serde_json::Value = serde_json::to_value(descriptor).map_err(|e| {
            Error::new(ErrorKind::Unexpected, format!("Glue columns of {ident}")).with_source(e)
        })?;
        let database_name: String = database(namespace);
        let request = CreateTableRequest {
            catalog_id: self.catalog_id.as_deref(),
            database_name: &database_name,
            table_input: TableInput {
                name: ident.name().to_owned(),
                description: None,
                owner: None,
                table_type: Some("EXTERNAL_TABLE".to_owned()),
                storage_descriptor: Some(descriptor),
                partition_keys: Vec::new(),
                parameters: Some(HashMap::from([
                    (TABLE_TYPE.to_owned(), ICEBERG.to_owned()),
                    (METADATA_LOCATION.to_owned(), metadata_location.to_string()),
                ])),
            },
        };
        self.client
            .call::<_, IgnoredAny>("CreateTable", &request)
            .await
            .map_err(|e| glue_error(format!("CreateTable {ident}"), e))?;
        Table::builder()
            .runtime(self.runtime.clone())
            .file_io(self.file_io.clone())
            .identifier(ident)
            .metadata_location(metadata_location.to_string())
            .metadata(metadata)
            .build()
    }

    /// Points the table at `new` if it still points at `current`, with the
    /// Glue version read alongside (Glue refuses the update if the table
    /// changed since); `false` when another writer moved it first.
    pub async fn swap_metadata(
        &self,
        ident: &TableIdent,
        current: &str,
        new: &str,
    ) -> iceberg::Result<bool> {
        let table = self.get(ident).await?.ok_or_else(|| {
            Error::new(ErrorKind::TableNotFound, format!("no Glue table {ident}"))
        })?;
        if metadata_location(&table) != Some(current) {
            return Ok(false);
        }
        let mut parameters: HashMap<String, String> = table.parameters.unwrap_or_default();
        parameters.insert(METADATA_LOCATION.to_owned(), new.to_owned());
        parameters.insert(PREVIOUS_METADATA_LOCATION.to_owned(), current.to_owned());
        let database_name: String = database(ident.namespace());
        // UpdateTable replaces the whole definition: keep the rest of it.
        let request = UpdateTableRequest {
            catalog_id: self.catalog_id.as_deref(),
            database_name: &database_name,
            table_input: TableInput {
                name: table.name,
                description: table.description,
                owner: table.owner,
                table_type: table.table_type,
                storage_descriptor: table.storage_descriptor,
                partition_keys: table.partition_keys,
                parameters: Some(parameters),
            },
            skip_archive: true,
            version_id: table.version_id,
        };
        match self
            .client
            .call::<_, IgnoredAny>("UpdateTable", &request)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == Some(GlueErrorKind::ConcurrentModification) => Ok(false),
            Err(e) => Err(glue_error(format!("UpdateTable {ident}"), e)),
        }
    }
}

fn metadata_location(table: &glue::Table) -> Option<&str> {
    table
        .parameters
        .as_ref()?
        .get(METADATA_LOCATION)
        .map(String::as_str)
}

/// The schema as Glue (Hive) columns, as Iceberg's Glue catalogs write
/// them: `timestamptz` is a Hive `timestamp`.
fn columns(schema: &Schema) -> iceberg::Result<Vec<Column>> {
    schema
        .as_struct()
        .fields()
        .iter()
        .map(|field| {
            let glue_type: String = match field.field_type.as_ref() {
                Type::Primitive(p) => glue_type(p),
                other => {
                    return Err(Error::new(
                        ErrorKind::FeatureUnsupported,
                        format!("column {} of type {other} in a Glue table", field.name),
                    ))
                }
            };
            Ok(Column {
                name: field.name.clone(),
                r#type: glue_type,
                comment: field.doc.clone(),
            })
        })
        .collect()
}

fn glue_type(p: &PrimitiveType) -> String {
    match p {
        PrimitiveType::Boolean => "boolean".to_owned(),
        PrimitiveType::Int => "int".to_owned(),
        PrimitiveType::Long => "bigint".to_owned(),
        PrimitiveType::Float => "float".to_owned(),
        PrimitiveType::Double => "double".to_owned(),
        PrimitiveType::Date => "date".to_owned(),
        PrimitiveType::Timestamp
        | PrimitiveType::Timestamptz
        | PrimitiveType::TimestampNs
        | PrimitiveType::TimestamptzNs => "timestamp".to_owned(),
        PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        PrimitiveType::Binary | PrimitiveType::Fixed(_) => "binary".to_owned(),
        PrimitiveType::Time | PrimitiveType::String | PrimitiveType::Uuid => "string".to_owned(),
    }
}
