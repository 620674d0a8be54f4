//! polars ↔ arrow-rs, column by column.
//!
//! polars carries its own Arrow implementation and iceberg-rust writes and
//! reads arrow-rs batches; the two do not share types. The tables use seven
//! plain types ([`Kind`]), so a typed copy per column is short, checked by
//! the compiler and independent of either crate's FFI details.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType as ArrowType, SchemaRef as ArrowSchemaRef};
use polars::prelude::{Column as PlColumn, DataFrame, DataType, IntoColumn, NamedFrom, Series};

use super::table::{Kind, TableDef};
use super::IcebergError;

/// Iceberg's zone for `timestamptz` in Arrow.
const UTC: &str = "+00:00";

/// `df`'s columns of `def`, cast to their kinds, as one batch of `schema`
/// (the Arrow form of the table's Iceberg schema, field ids included).
/// Extra DataFrame columns are ignored; a missing one is an error.
pub fn to_record_batch(
    def: &TableDef,
    df: &DataFrame,
    schema: ArrowSchemaRef,
) -> Result<RecordBatch, IcebergError> {
    let table = def.full_name();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(def.columns.len());
    for c in def.columns {
        let column_err = |message: String| IcebergError::Column {
            table: table.clone(),
            column: c.name.to_owned(),
            message,
        };
        let col = df
            .column(c.name)
            .map_err(|_| column_err("missing from the data".to_owned()))?;
        let cast = |dtype: &DataType| -> Result<PlColumn, IcebergError> {
            col.cast(dtype)
                .map_err(|e| column_err(format!("cannot be read as {dtype}: {e}")))
        };
        let polars_err = |e: polars::error::PolarsError| column_err(e.to_string());
        let array: ArrayRef = match c.kind {
            Kind::Str => {
                let s = cast(&DataType::String)?;
                Arc::new(StringArray::from_iter(s.str().map_err(polars_err)?.iter()))
            }
            Kind::Int => {
                let s = cast(&DataType::Int32)?;
                Arc::new(Int32Array::from_iter(s.i32().map_err(polars_err)?.iter()))
            }
            Kind::Long => {
                let s = cast(&DataType::Int64)?;
                Arc::new(Int64Array::from_iter(s.i64().map_err(polars_err)?.iter()))
            }
            Kind::Double => {
                let s = cast(&DataType::Float64)?;
                Arc::new(Float64Array::from_iter(s.f64().map_err(polars_err)?.iter()))
            }
            Kind::Bool => {
                let s = cast(&DataType::Boolean)?;
                Arc::new(BooleanArray::from_iter(
                    s.bool().map_err(polars_err)?.iter(),
                ))
            }
            Kind::Date => {
                let days = cast(&Kind::Date.polars())?;
                let days = days.cast(&DataType::Int32).map_err(polars_err)?;
                Arc::new(Date32Array::from_iter(
                    days.i32().map_err(polars_err)?.iter(),
                ))
            }
            Kind::Timestamp => {
                let ts = cast(&Kind::Timestamp.polars())?;
                let micros = ts.cast(&DataType::Int64).map_err(polars_err)?;
                Arc::new(
                    TimestampMicrosecondArray::from_iter(micros.i64().map_err(polars_err)?.iter())
                        .with_timezone(UTC),
                )
            }
        };
        if c.required && array.null_count() > 0 {
            return Err(column_err(format!(
                "is required but {} of {} rows are null",
                array.null_count(),
                array.len()
            )));
        }
        arrays.push(array);
    }
    RecordBatch::try_new(schema, arrays).map_err(|source| IcebergError::Arrow { table, source })
}

/// Arrow batches (as read back from a table) as one DataFrame with the
/// polars dtypes of [`Kind::polars`].
pub fn to_data_frame(
    def: &TableDef,
    columns: &[&str],
    batches: &[RecordBatch],
) -> Result<DataFrame, IcebergError> {
    let table = def.full_name();
    let mut out: Vec<PlColumn> = Vec::with_capacity(columns.len());
    for name in columns {
        let column_err = |message: String| IcebergError::Column {
            table: table.clone(),
            column: (*name).to_owned(),
            message,
        };
        let kind = def
            .column(name)
            .ok_or_else(|| column_err("not a column of the table".to_owned()))?
            .kind;
        let parts: Vec<ArrayRef> = batches
            .iter()
            .map(|b| {
                b.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| column_err("missing from the scan".to_owned()))
            })
            .collect::<Result<_, _>>()?;
        let series = series_of(name, kind, &parts).map_err(column_err)?;
        out.push(series.into_column());
    }
    DataFrame::new_infer_height(out).map_err(|source| IcebergError::Polars { table, source })
}

fn series_of(name: &str, kind: Kind, parts: &[ArrayRef]) -> Result<Series, String> {
    let name = name.into();
    macro_rules! collect {
        ($arr:ty) => {{
            let mut v = Vec::new();
            for p in parts {
                let a = p
                    .as_any()
                    .downcast_ref::<$arr>()
                    .ok_or_else(|| format!("unexpected Arrow type {}", p.data_type()))?;
                v.extend(a.iter());
            }
            v
        }};
    }
    let series = match kind {
        Kind::Str => {
            let mut v: Vec<Option<String>> = Vec::new();
            for p in parts {
                match p.data_type() {
                    ArrowType::Utf8 => extend_str(&mut v, p.as_any().downcast_ref::<StringArray>()),
                    ArrowType::LargeUtf8 => {
                        extend_str(&mut v, p.as_any().downcast_ref::<LargeStringArray>())
                    }
                    ArrowType::Utf8View => {
                        extend_str(&mut v, p.as_any().downcast_ref::<StringViewArray>())
                    }
                    other => return Err(format!("unexpected Arrow type {other}")),
                }
            }
            Series::new(name, v)
        }
        Kind::Int => Series::new(name, collect!(Int32Array)),
        Kind::Long => Series::new(name, collect!(Int64Array)),
        Kind::Double => Series::new(name, collect!(Float64Array)),
        Kind::Bool => Series::new(name, collect!(BooleanArray)),
        Kind::Date => Series::new(name, collect!(Date32Array))
            .cast(&DataType::Date)
            .map_err(|e| e.to_string())?,
        Kind::Timestamp => Series::new(name, collect!(TimestampMicrosecondArray))
            .cast(&Kind::Timestamp.polars())
            .map_err(|e| e.to_string())?,
    };
    Ok(series)
}

fn extend_str<'a, A>(out: &mut Vec<Option<String>>, array: Option<&'a A>)
where
    &'a A: IntoIterator<Item = Option<&'a str>>,
{
    if let Some(a) = array {
        out.extend(a.into_iter().map(|s| s.map(str::to_owned)));
    }
}

/// A Parquet file written by another engine (a Spark job's staged output)
/// as a DataFrame of `def`'s columns, checked on the way: the file must
/// hold exactly the table's columns (by name), each in the Arrow type the
/// table's kind reads as (a Spark `int` for an `int`, microsecond
/// timestamps, …). Anything else is refused, naming the column.
pub fn parquet_to_data_frame(def: &TableDef, bytes: Vec<u8>) -> Result<DataFrame, IcebergError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let table = def.full_name();
    let parquet_err = |message: String| IcebergError::Staged {
        table: table.clone(),
        message,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(|e| parquet_err(format!("not a readable Parquet file: {e}")))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let expected: Vec<&str> = def.column_names();
    let extra: Vec<&String> = names
        .iter()
        .filter(|n| !expected.contains(&n.as_str()))
        .collect();
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|c| !names.iter().any(|n| n == *c))
        .collect();
    if !extra.is_empty() || !missing.is_empty() {
        return Err(parquet_err(format!(
            "the file's columns are not the table's: missing {missing:?}, not in the table {extra:?}"
        )));
    }
    let reader = builder
        .build()
        .map_err(|e| parquet_err(format!("cannot read the Parquet file: {e}")))?;
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| parquet_err(format!("cannot read the Parquet file: {e}")))?;
    to_data_frame(def, &expected, &batches)
}
