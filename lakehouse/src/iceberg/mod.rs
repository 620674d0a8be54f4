//! BetFlow's Iceberg tables: bronze, silver and gold, written with
//! iceberg-rust into the lake's `warehouse/` and registered in a SQL catalog
//! that lives in BetFlow's own Postgres, or in the AWS Glue Data Catalog
//! ([`catalog`]), so any engine that speaks Iceberg (pyiceberg, Spark,
//! Trino, DuckDB, Athena) reads what the DAGs wrote.
//!
//! Tables are declared once ([`TableDef`]) and created on first write.
//! Every load is one atomic commit that replaces the partitions it writes
//! (or the whole table), so re-running a date or a backfill never duplicates
//! rows ([`write`]).

pub mod arrow;
pub mod catalog;
pub mod commit;
mod evolve;
mod glue_catalog;
pub mod read;
pub mod table;
pub mod write;

pub use catalog::{Warehouse, CATALOG_NAME};
pub use read::{read_columns, read_table, Filter};
pub use table::{Column, Kind, TableDef};
pub use write::{write_table, Replace, WriteSummary};

/// What can go wrong between a DataFrame and a committed snapshot.
#[derive(Debug, thiserror::Error)]
pub enum IcebergError {
    #[error("iceberg {action} {table}: {source}")]
    Iceberg {
        action: &'static str,
        table: String,
        /// Boxed: iceberg's error is large, and every fallible function
        /// here returns this type.
        #[source]
        source: Box<iceberg::Error>,
    },
    #[error("table {table}: column `{column}`: {message}")]
    Column {
        table: String,
        column: String,
        message: String,
    },
    #[error("table {table}: {source}")]
    Polars {
        table: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("table {table}: arrow: {source}")]
    Arrow {
        table: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// Rows another engine staged for a table are not the table's.
    #[error("table {table}: staged file: {message}")]
    Staged { table: String, message: String },
    #[error("iceberg catalog: {0}")]
    Catalog(String),
    /// Settings that cannot work whatever is retried: an unknown catalog,
    /// Glue without an S3 lake, missing credentials.
    #[error("iceberg settings: {0}")]
    Config(String),
    #[error("table {table}: commit conflicted {attempts} times with concurrent writers")]
    Conflict { table: String, attempts: u32 },
    /// The warehouse's disk or quota is full: a retry cannot make room.
    #[error(
        "iceberg {action} {table}: the warehouse's disk is full ({message}); \
         free space, then clear the task"
    )]
    DiskFull {
        action: &'static str,
        table: String,
        message: String,
    },
}

impl IcebergError {
    /// As a task's failure: bad settings fail the task at once, anything
    /// else may pass on a retry.
    pub fn into_task_error(self) -> orchestrator::TaskError {
        match self {
            IcebergError::Config(_)
            | IcebergError::Staged { .. }
            | IcebergError::DiskFull { .. } => orchestrator::TaskError::fatal(self),
            other => other.into(),
        }
    }
}

/// Shorthand for mapping an iceberg error with its table and action.
pub(crate) fn ice(
    action: &'static str,
    table: &str,
) -> impl FnOnce(iceberg::Error) -> IcebergError {
    let table = table.to_owned();
    move |source| {
        if storage_full(&source) {
            return IcebergError::DiskFull {
                action,
                table,
                message: source.to_string(),
            };
        }
        IcebergError::Iceberg {
            action,
            table,
            source: Box::new(source),
        }
    }
}

/// Whether an error of iceberg-rust's file I/O is a full disk or quota
/// (ENOSPC, EDQUOT): by the `std::io::Error` in its source chain, or, as
/// its storage layer may keep the cause only as text, by the OS's message.
pub fn storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ) {
                return true;
            }
        }
        cause = err.source();
    }
    let text = format!("{e:?}");
    [
        "No space left on device",
        "os error 28)",
        "Disk quota exceeded",
        "os error 122)",
    ]
    .iter()
    .any(|m| text.contains(m))
}
