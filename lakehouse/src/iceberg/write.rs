//! DataFrame → Parquet data files → one commit.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::TableCreation;
use parquet::file::properties::WriterProperties;
use polars::prelude::{AnyValue, DataFrame};
use serde::Serialize;

use super::arrow::to_record_batch;
use super::catalog::Warehouse;
use super::commit::{commit_replace, Scope};
use super::table::TableDef;
use super::{ice, IcebergError};

/// A partition value, in the order of [`TableDef::partition_by`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartValue {
    Str(String),
    Date(NaiveDate),
    Int(i32),
}

impl PartValue {
    fn literal(&self) -> Literal {
        match self {
            PartValue::Str(s) => Literal::string(s),
            PartValue::Date(d) => Literal::date(days_since_epoch(*d)),
            PartValue::Int(i) => Literal::int(*i),
        }
    }
}

pub(crate) fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// What a load replaces.
#[derive(Debug, Clone)]
pub enum Replace {
    /// The partitions the rows fall into, plus these (so a re-run whose day
    /// became empty still clears the day's old rows).
    Partitions(Vec<Vec<PartValue>>),
    /// Everything: the table is rebuilt (gold marts over the whole history).
    All,
}

/// What a commit did, for task outputs and logs.
#[derive(Debug, Clone, Serialize)]
pub struct WriteSummary {
    pub table: String,
    pub snapshot_id: i64,
    /// `append` (nothing replaced) or `overwrite`.
    pub operation: String,
    pub added_files: usize,
    pub added_rows: u64,
    pub deleted_files: usize,
    pub deleted_rows: u64,
    pub total_rows: u64,
}

/// Create the namespace and table of `def` if they do not exist yet; an
/// existing table gets the columns `def` appended to it.
pub async fn ensure_table(wh: &Warehouse, def: &TableDef) -> Result<Table, IcebergError> {
    let name = def.full_name();
    let catalog = wh;
    let ns = def.namespace_ident();
    if !catalog
        .namespace_exists(&ns)
        .await
        .map_err(ice("look up namespace of", &name))?
    {
        match catalog.create_namespace(&ns).await {
            Ok(_) => {}
            // Another task created it meanwhile.
            Err(_) if catalog.namespace_exists(&ns).await.unwrap_or(false) => {}
            Err(e) => return Err(ice("create namespace of", &name)(e)),
        }
    }
    let ident = def.ident();
    if catalog
        .table_exists(&ident)
        .await
        .map_err(ice("look up", &name))?
    {
        let table = catalog
            .load_table(&ident)
            .await
            .map_err(ice("load", &name))?;
        return super::evolve::to_definition(wh, def, table).await;
    }
    let creation = TableCreation::builder()
        .name(def.name.to_owned())
        .schema(def.schema()?.as_ref().clone())
        .partition_spec(def.partition_spec()?)
        .properties(HashMap::from([(
            "write.parquet.compression-codec".to_owned(),
            "zstd".to_owned(),
        )]))
        .build();
    match catalog.create_table(&ns, creation).await {
        Ok(t) => Ok(t),
        Err(_) if catalog.table_exists(&ident).await.unwrap_or(false) => {
            catalog.load_table(&ident).await.map_err(ice("load", &name))
        }
        Err(e) => Err(ice("create", &name)(e)),
    }
}

/// Write `df` as `def` and commit it in one snapshot that replaces what
/// `replace` says; `properties` go into the snapshot summary (the run id).
pub async fn write_table(
    wh: &Warehouse,
    def: &TableDef,
    df: &DataFrame,
    replace: Replace,
    properties: HashMap<String, String>,
) -> Result<WriteSummary, IcebergError> {
    let table = ensure_table(wh, def).await?;
    let name = def.full_name();
    let groups = split(def, df)?;
    let scope = match replace {
        Replace::All => Scope::All,
        Replace::Partitions(mut extra) => {
            extra.extend(groups.iter().map(|(v, _)| v.clone()));
            extra.sort_by_key(|v| format!("{v:?}"));
            extra.dedup();
            Scope::Partitions(extra.iter().map(|v| to_struct(v)).collect())
        }
    };
    // Every data file of this write is named `{prefix}-…`, so a write that
    // fails half way can find what it left.
    let prefix: String = uuid::Uuid::new_v4().simple().to_string();
    let files = match write_files(&table, def, groups, &prefix).await {
        Ok(files) => files,
        Err(e) => {
            let removed = remove_partial(&table, &prefix);
            if removed > 0 {
                tracing::warn!(table = %name, removed, "removed the data files of a failed write");
            }
            return Err(e);
        }
    };
    let summary = commit_replace(wh, def, files, scope, properties).await?;
    tracing::info!(table = %name, snapshot = summary.snapshot_id, rows = summary.added_rows, "committed");
    Ok(summary)
}

pub(crate) fn to_struct(values: &[PartValue]) -> Struct {
    Struct::from_iter(values.iter().map(|v| Some(v.literal())))
}

/// `df` split by the partition columns (one group for an unpartitioned table).
fn split(def: &TableDef, df: &DataFrame) -> Result<Vec<(Vec<PartValue>, DataFrame)>, IcebergError> {
    let name = def.full_name();
    if def.partition_by.is_empty() {
        return Ok(vec![(Vec::new(), df.clone())]);
    }
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let parts = df
        .partition_by_stable(def.partition_by.iter().copied(), true)
        .map_err(|source| IcebergError::Polars {
            table: name.clone(),
            source,
        })?;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let mut values = Vec::with_capacity(def.partition_by.len());
        for col in def.partition_by {
            let err = |message: String| IcebergError::Column {
                table: name.clone(),
                column: (*col).to_owned(),
                message,
            };
            let v = part
                .column(col)
                .and_then(|c| c.get(0))
                .map_err(|e| err(e.to_string()))?;
            values.push(match v {
                AnyValue::String(s) => PartValue::Str(s.to_owned()),
                AnyValue::StringOwned(s) => PartValue::Str(s.to_string()),
                AnyValue::Date(days) => PartValue::Date(
                    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                        + chrono::Duration::days(days as i64),
                ),
                AnyValue::Int32(i) => PartValue::Int(i),
                AnyValue::Null => return Err(err("a partition value is null".to_owned())),
                other => return Err(err(format!("unsupported partition value {other:?}"))),
            });
        }
        out.push((values, part));
    }
    Ok(out)
}

/// Removes the data files named `{prefix}-…` under a local table's data
/// directory, whole or partial: none is in a snapshot yet, so no reader
/// sees them, but a full disk needs the space back. An S3 object is never
/// half written, and is left to the table's orphan-file cleanup. Returns
/// how many were removed.
fn remove_partial(table: &Table, prefix: &str) -> usize {
    let location = table.metadata().location();
    let Some(root) = location
        .strip_prefix("file://")
        .or_else(|| location.starts_with('/').then_some(location))
    else {
        return 0;
    };
    fn walk(dir: &std::path::Path, prefix: &str, removed: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, prefix, removed);
            } else if entry.file_name().to_string_lossy().starts_with(prefix)
                && std::fs::remove_file(&path).is_ok()
            {
                *removed += 1;
            }
        }
    }
    let mut removed = 0;
    walk(
        &std::path::Path::new(root).join("data"),
        prefix,
        &mut removed,
    );
    removed
}

async fn write_files(
    table: &Table,
    def: &TableDef,
    groups: Vec<(Vec<PartValue>, DataFrame)>,
    prefix: &str,
) -> Result<Vec<DataFile>, IcebergError> {
    let name = def.full_name();
    let meta = table.metadata();
    let schema = meta.current_schema().clone();
    let arrow_schema =
        Arc::new(schema_to_arrow_schema(&schema).map_err(ice("map schema of", &name))?);
    let spec = meta.default_partition_spec().as_ref().clone();
    let locations = DefaultLocationGenerator::new(meta).map_err(ice("locate data of", &name))?;
    let names = DefaultFileNameGenerator::new(prefix.to_owned(), None, DataFileFormat::Parquet);
    let mut files = Vec::new();
    for (values, part) in groups {
        if part.height() == 0 {
            continue;
        }
        let batch = to_record_batch(def, &part, arrow_schema.clone())?;
        let key = (!def.partition_by.is_empty())
            .then(|| PartitionKey::new(spec.clone(), schema.clone(), to_struct(&values)));
        let parquet =
            ParquetWriterBuilder::new(WriterProperties::builder().build(), schema.clone());
        let rolling = RollingFileWriterBuilder::new_with_default_file_size(
            parquet,
            table.file_io().clone(),
            locations.clone(),
            names.clone(),
        );
        let mut writer = DataFileWriterBuilder::new(rolling)
            .build(key)
            .await
            .map_err(ice("open a data file of", &name))?;
        writer
            .write(batch)
            .await
            .map_err(ice("write data of", &name))?;
        files.extend(
            writer
                .close()
                .await
                .map_err(ice("close a data file of", &name))?,
        );
    }
    Ok(files)
}
