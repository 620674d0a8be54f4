//! Table scans into polars, for the next layer's transforms and the gates.

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::Datum;
use polars::prelude::DataFrame;

use super::arrow::to_data_frame;
use super::catalog::Warehouse;
use super::table::TableDef;
use super::write::{days_since_epoch, PartValue};
use super::{ice, IcebergError};

/// Which rows to read. Filters on partition columns prune whole files.
#[derive(Debug, Clone)]
pub enum Filter {
    All,
    /// `column` is one of these values.
    In(&'static str, Vec<PartValue>),
    /// `column` is in [from, to] (dates).
    Between(&'static str, chrono::NaiveDate, chrono::NaiveDate),
    And(Vec<Filter>),
}

impl Filter {
    fn predicate(&self) -> Option<Predicate> {
        match self {
            Filter::All => None,
            Filter::In(col, values) => {
                let datums = values.iter().map(datum);
                Some(Reference::new(*col).is_in(datums))
            }
            Filter::Between(col, from, to) => Some(
                Reference::new(*col)
                    .greater_than_or_equal_to(Datum::date(days_since_epoch(*from)))
                    .and(
                        Reference::new(*col)
                            .less_than_or_equal_to(Datum::date(days_since_epoch(*to))),
                    ),
            ),
            Filter::And(all) => all
                .iter()
                .filter_map(Filter::predicate)
                .reduce(|a, b| a.and(b)),
        }
    }
}

fn datum(v: &PartValue) -> Datum {
    match v {
        PartValue::Str(s) => Datum::string(s),
        PartValue::Date(d) => Datum::date(days_since_epoch(*d)),
        PartValue::Int(i) => Datum::int(*i),
    }
}

/// The rows of `def` matching `filter`, every column, as polars dtypes of
/// the table's kinds. A table not created yet reads as empty.
pub async fn read_table(
    wh: &Warehouse,
    def: &TableDef,
    filter: &Filter,
) -> Result<DataFrame, IcebergError> {
    read_columns(wh, def, &def.column_names(), filter).await
}

/// [`read_table`] of only `columns`, in that order. The scan reads only
/// those columns' chunks of the data files, so a reader of a few columns
/// of a wide table (gold over the whole silver.odds history) neither
/// fetches nor holds the others. No columns read nothing: a frame without
/// columns or rows.
pub async fn read_columns(
    wh: &Warehouse,
    def: &TableDef,
    columns: &[&str],
    filter: &Filter,
) -> Result<DataFrame, IcebergError> {
    let name = def.full_name();
    if let Some(unknown) = columns.iter().find(|c| def.column(c).is_none()) {
        return Err(IcebergError::Column {
            table: name,
            column: (*unknown).to_owned(),
            message: "not a column of the table, cannot be read".to_owned(),
        });
    }
    let ident = def.ident();
    let exists = wh
        .table_exists(&ident)
        .await
        .map_err(ice("look up", &name))?;
    if !exists || columns.is_empty() {
        return to_data_frame(def, columns, &[]);
    }
    let table = wh.load_table(&ident).await.map_err(ice("load", &name))?;
    let mut scan = table.scan().select(columns.iter().copied());
    if let Some(p) = filter.predicate() {
        scan = scan.with_filter(p);
    }
    let scan = scan.build().map_err(ice("plan a scan of", &name))?;
    let batches: Vec<RecordBatch> = scan
        .to_arrow()
        .await
        .map_err(ice("scan", &name))?
        .try_collect()
        .await
        .map_err(ice("read", &name))?;
    to_data_frame(def, columns, &batches)
}

/// The data files holding `def`'s rows that match `filter`, as the paths
/// the table's metadata records (`s3://…`, or a local path): what an
/// outside engine (a Spark job) reads instead of the table. A file with
/// row-level deletes is refused: the reader would see deleted rows. BetFlow
/// writes none (it replaces whole partitions); another writer might.
pub async fn data_files(
    wh: &Warehouse,
    def: &TableDef,
    filter: &Filter,
) -> Result<Vec<String>, IcebergError> {
    let name = def.full_name();
    let ident = def.ident();
    let exists = wh
        .table_exists(&ident)
        .await
        .map_err(ice("look up", &name))?;
    if !exists {
        return Ok(Vec::new());
    }
    let table = wh.load_table(&ident).await.map_err(ice("load", &name))?;
    let mut scan = table.scan();
    if let Some(p) = filter.predicate() {
        scan = scan.with_filter(p);
    }
    let scan = scan.build().map_err(ice("plan a scan of", &name))?;
    let tasks: Vec<iceberg::scan::FileScanTask> = scan
        .plan_files()
        .await
        .map_err(ice("plan a scan of", &name))?
        .try_collect()
        .await
        .map_err(ice("plan a scan of", &name))?;
    let mut files: Vec<String> = Vec::with_capacity(tasks.len());
    for task in tasks {
        if !task.deletes.is_empty() {
            return Err(IcebergError::Staged {
                table: name,
                message: format!(
                    "data file {} has row-level deletes, which an outside engine would not apply",
                    task.data_file_path
                ),
            });
        }
        if !files.contains(&task.data_file_path) {
            files.push(task.data_file_path);
        }
    }
    Ok(files)
}
