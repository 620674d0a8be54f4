//! Gold marts copied into Postgres `serving.gold_{name}`
//! (`migrations/…_gold_serving.sql`), where the dashboards read them: the
//! web pages query Postgres, not Iceberg.
//!
//! A load replaces the whole table in one transaction — `DELETE`, then
//! batched `INSERT … SELECT * FROM UNNEST(…)` with one array per column —
//! so a dashboard sees either the previous build or the new one, never a
//! half-loaded mart, and a failed load leaves the previous build in place.
//! `DELETE` rather than `TRUNCATE`: TRUNCATE's exclusive lock would make
//! readers wait for the whole load instead of reading the old rows.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use polars::prelude::{
    BooleanChunked, DataFrame, DataType, Float64Chunked, Int32Chunked, Int64Chunked, StringChunked,
};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

use lakehouse::iceberg::{Kind, TableDef};

/// Rows per INSERT: ~10k rows × ~25 arrays keeps a statement to a few MB
/// while paying the round trip rarely.
pub const CHUNK_ROWS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ServingLoadError {
    #[error("{table}: column `{column}`: {message}")]
    Column {
        table: String,
        column: &'static str,
        message: String,
    },
    #[error("{table}: {action}: {source}")]
    Sql {
        table: String,
        action: String,
        #[source]
        source: sqlx::Error,
    },
}

/// `serving.gold_{name}`: the table a gold mart is copied into.
pub fn serving_table(def: &TableDef) -> String {
    format!("serving.gold_{}", def.name)
}

/// Replaces every row of `serving.gold_{def.name}` with `df`'s rows (its
/// columns of `def`, cast to their kinds; extra columns are ignored), in
/// one transaction. Returns the rows inserted.
pub async fn replace_serving(
    pool: &PgPool,
    def: &TableDef,
    df: &DataFrame,
) -> Result<u64, ServingLoadError> {
    let table = serving_table(def);
    // Every column is checked and converted before anything is deleted.
    let columns = def
        .columns
        .iter()
        .map(|c| Values::of(df, c.name, c.kind, &table))
        .collect::<Result<Vec<_>, _>>()?;
    let insert = insert_sql(def, &table);
    let sql_err = |action: String| {
        let table = table.clone();
        move |source| ServingLoadError::Sql {
            table,
            action,
            source,
        }
    };

    let mut tx = pool.begin().await.map_err(sql_err("begin".into()))?;
    sqlx::query(&format!("DELETE FROM {table}"))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("delete the previous rows".into()))?;
    let mut inserted = 0;
    let height = df.height();
    for offset in (0..height).step_by(CHUNK_ROWS) {
        let len = CHUNK_ROWS.min(height - offset);
        let query = columns
            .iter()
            .fold(sqlx::query(&insert), |q, v| v.bind(q, offset, len));
        inserted += query
            .execute(&mut *tx)
            .await
            .map_err(sql_err(format!("insert rows {offset}..{}", offset + len)))?
            .rows_affected();
    }
    tx.commit().await.map_err(sql_err("commit".into()))?;
    Ok(inserted)
}

/// `INSERT INTO serving.gold_x ("a", "b") SELECT * FROM UNNEST($1::text[], $2::int8[])`.
fn insert_sql(def: &TableDef, table: &str) -> String {
    let names: Vec<String> = def
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    let arrays: Vec<String> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, pg_type(c.kind)))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM UNNEST({})",
        names.join(", "),
        arrays.join(", ")
    )
}

/// The Postgres type of a column of this kind (the migration's types).
fn pg_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "text",
        Kind::Int => "int4",
        Kind::Long => "int8",
        Kind::Double => "float8",
        Kind::Bool => "bool",
        Kind::Date => "date",
        Kind::Timestamp => "timestamptz",
    }
}

/// One column, cast to its kind's physical polars type.
enum Values {
    Str(StringChunked),
    Int(Int32Chunked),
    Long(Int64Chunked),
    Double(Float64Chunked),
    Bool(BooleanChunked),
    /// Days since the epoch.
    Date(Int32Chunked),
    /// Microseconds since the epoch, UTC.
    Timestamp(Int64Chunked),
}

impl Values {
    fn of(
        df: &DataFrame,
        name: &'static str,
        kind: Kind,
        table: &str,
    ) -> Result<Self, ServingLoadError> {
        let err = |message: String| ServingLoadError::Column {
            table: table.to_owned(),
            column: name,
            message,
        };
        let column = df
            .column(name)
            .map_err(|_| err("missing from the frame".to_owned()))?;
        let cast = |dtype: &DataType| {
            column
                .cast(&kind.polars())
                .and_then(|c| c.cast(dtype))
                .map_err(|e| err(format!("cannot be read as {dtype}: {e}")))
        };
        let polars_err = |e: polars::error::PolarsError| err(e.to_string());
        Ok(match kind {
            Kind::Str => Values::Str(cast(&DataType::String)?.str().map_err(polars_err)?.clone()),
            Kind::Int => Values::Int(cast(&DataType::Int32)?.i32().map_err(polars_err)?.clone()),
            Kind::Long => Values::Long(cast(&DataType::Int64)?.i64().map_err(polars_err)?.clone()),
            Kind::Double => {
                Values::Double(cast(&DataType::Float64)?.f64().map_err(polars_err)?.clone())
            }
            Kind::Bool => Values::Bool(
                cast(&DataType::Boolean)?
                    .bool()
                    .map_err(polars_err)?
                    .clone(),
            ),
            Kind::Date => Values::Date(cast(&DataType::Int32)?.i32().map_err(polars_err)?.clone()),
            Kind::Timestamp => {
                Values::Timestamp(cast(&DataType::Int64)?.i64().map_err(polars_err)?.clone())
            }
        })
    }

    /// Binds rows `offset..offset + len` as one Postgres array.
    fn bind<'q>(
        &self,
        query: Query<'q, Postgres, PgArguments>,
        offset: usize,
        len: usize,
    ) -> Query<'q, Postgres, PgArguments> {
        let at = offset as i64;
        match self {
            Values::Str(ca) => query.bind(
                ca.slice(at, len)
                    .iter()
                    .map(|v| v.map(str::to_owned))
                    .collect::<Vec<Option<String>>>(),
            ),
            Values::Int(ca) => query.bind(ca.slice(at, len).iter().collect::<Vec<_>>()),
            Values::Long(ca) => query.bind(ca.slice(at, len).iter().collect::<Vec<_>>()),
            Values::Double(ca) => query.bind(ca.slice(at, len).iter().collect::<Vec<_>>()),
            Values::Bool(ca) => query.bind(ca.slice(at, len).iter().collect::<Vec<_>>()),
            Values::Date(ca) => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                query.bind(
                    ca.slice(at, len)
                        .iter()
                        .map(|v| v.map(|d| epoch + Duration::days(i64::from(d))))
                        .collect::<Vec<Option<NaiveDate>>>(),
                )
            }
            Values::Timestamp(ca) => query.bind(
                ca.slice(at, len)
                    .iter()
                    .map(|v| v.and_then(DateTime::<Utc>::from_timestamp_micros))
                    .collect::<Vec<Option<DateTime<Utc>>>>(),
            ),
        }
    }
}
