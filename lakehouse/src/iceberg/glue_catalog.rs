//! Iceberg tables in the AWS Glue Data Catalog, laid out as Iceberg's own
//! Glue catalogs (Java, pyiceberg) do: one Glue database per namespace, one
//! `EXTERNAL_TABLE` per table with `table_type = ICEBERG` and the current
//! metadata file in its `metadata_location` parameter, its columns in the
//! storage descriptor for engines that read only Glue (Athena's DDL view).
//!
//! Written over aws-sdk-glue rather than iceberg-rust's Glue catalog crate,
//! whose schema conversion refuses `timestamptz`, the type of every BetFlow
//! timestamp; it also keeps aws-config out of the build ([`crate::aws`]).
//! Only what BetFlow's writes and reads need is here: namespaces created on
//! first use, tables created, found and loaded, and the commit's
//! compare-and-set of the metadata pointer.

use std::collections::HashMap;

use aws_sdk_glue::error::{DisplayErrorContext, SdkError};
use aws_sdk_glue::operation::update_table::UpdateTableError;
use aws_sdk_glue::types::{Column, DatabaseInput, StorageDescriptor, TableInput};
use iceberg::io::FileIO;
use iceberg::spec::{PrimitiveType, Schema, TableMetadata, TableMetadataBuilder, Type};
use iceberg::table::Table;
use iceberg::Runtime;
use iceberg::{Error, ErrorKind, MetadataLocation, NamespaceIdent, TableCreation, TableIdent};

/// Glue table parameters Iceberg's catalogs agree on.
const TABLE_TYPE: &str = "table_type";
const ICEBERG: &str = "ICEBERG";
const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";

/// A Glue Data Catalog holding tables whose files are in `warehouse`.
#[derive(Clone)]
pub struct GlueCatalog {
    pub(super) client: aws_sdk_glue::Client,
    /// The account of the Data Catalog, when not the caller's own.
    pub(super) catalog_id: Option<String>,
    /// Reads and writes metadata files (in S3).
    pub(super) file_io: FileIO,
    /// `s3://{bucket}/warehouse`: tables go to `{warehouse}/{namespace}/{table}`.
    pub(super) warehouse: String,
    /// Where loaded tables spawn their scans' tasks.
    pub(super) runtime: Runtime,
}

fn glue_error<E, R>(what: String, e: &SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    Error::new(
        ErrorKind::Unexpected,
        format!("Glue {what}: {}", DisplayErrorContext(e)),
    )
}

/// The Glue database of a namespace (`bronze`, `silver`, `gold`).
fn database(namespace: &NamespaceIdent) -> String {
    namespace.join("_")
}

impl GlueCatalog {
    pub async fn namespace_exists(&self, namespace: &NamespaceIdent) -> iceberg::Result<bool> {
        let name: String = database(namespace);
        match self
            .client
            .get_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(&name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_entity_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error(format!("GetDatabase {name}"), &e)),
        }
    }

    pub async fn create_namespace(&self, namespace: &NamespaceIdent) -> iceberg::Result<()> {
        let name: String = database(namespace);
        let input: DatabaseInput = DatabaseInput::builder()
            .name(&name)
            .location_uri(format!("{}/{name}", self.warehouse))
            .build()
            .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
        self.client
            .create_database()
            .set_catalog_id(self.catalog_id.clone())
            .database_input(input)
            .send()
            .await
            .map_err(|e| glue_error(format!("CreateDatabase {name}"), &e))?;
        Ok(())
    }

    /// The table's Glue definition; `None` when there is none.
    async fn get(&self, ident: &TableIdent) -> iceberg::Result<Option<aws_sdk_glue::types::Table>> {
        match self
            .client
            .get_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(database(ident.namespace()))
            .name(ident.name())
            .send()
            .await
        {
            Ok(got) => Ok(got.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(glue_error(format!("GetTable {ident}"), &e)),
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
        let input: TableInput = TableInput::builder()
            .name(ident.name())
            .table_type("EXTERNAL_TABLE")
            .parameters(TABLE_TYPE, ICEBERG)
            .parameters(METADATA_LOCATION, metadata_location.to_string())
            .storage_descriptor(
                StorageDescriptor::builder()
                    .location(&location)
                    .set_columns(Some(columns(metadata.current_schema())?))
                    .build(),
            )
            .build()
            .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
        self.client
            .create_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(database(namespace))
            .table_input(input)
            .send()
            .await
            .map_err(|e| glue_error(format!("CreateTable {ident}"), &e))?;
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
        let mut parameters: HashMap<String, String> =
            table.parameters().cloned().unwrap_or_default();
        parameters.insert(METADATA_LOCATION.to_owned(), new.to_owned());
        parameters.insert(PREVIOUS_METADATA_LOCATION.to_owned(), current.to_owned());
        // UpdateTable replaces the whole definition: keep the rest of it.
        let input: TableInput = TableInput::builder()
            .name(table.name())
            .set_description(table.description().map(str::to_owned))
            .set_owner(table.owner().map(str::to_owned))
            .set_table_type(table.table_type().map(str::to_owned))
            .set_storage_descriptor(table.storage_descriptor().cloned())
            .set_partition_keys(Some(table.partition_keys().to_vec()))
            .set_parameters(Some(parameters))
            .build()
            .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
        let updated = self
            .client
            .update_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(database(ident.namespace()))
            .table_input(input)
            .skip_archive(true)
            .set_version_id(table.version_id().map(str::to_owned))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    UpdateTableError::ConcurrentModificationException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(glue_error(format!("UpdateTable {ident}"), &e)),
        }
    }
}

fn metadata_location(table: &aws_sdk_glue::types::Table) -> Option<&str> {
    table
        .parameters()?
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
            Column::builder()
                .name(&field.name)
                .r#type(glue_type)
                .set_comment(field.doc.clone())
                .build()
                .map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))
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
