//! Declarative data-quality checks on polars DataFrames, and the gate that
//! records their results per run and stops the pipeline on bad data.
//!
//! A [`Suite`] names a table and lists [`Check`]s, each with a [`Severity`].
//! [`evaluate`] runs them on a DataFrame (pure: no I/O, so unit tests and
//! `betflow tasks run` can use it; [`evaluate_async`] from async code, as
//! polars blocks its thread) and returns one [`CheckResult`] per check,
//! with the figure it observed, up to [`SAMPLE_SIZE`] failing keys and a
//! sentence for humans. [`gate`] stores the results through the task's store
//! (shown by `betflow runs show`, the run page and the REST API) and fails
//! the task when an error-level check failed; warn-level failures are only
//! recorded. A gate task has no retries, so its failure stops downstream
//! tasks through their trigger rules.
//!
//! ```ignore
//! let suite = Suite::new("silver.odds")
//!     .key(["event_id", "book", "market", "outcome"])
//!     .error(Check::not_null(["event_id", "price_decimal"]))
//!     .error(Check::unique(["event_id", "book", "market", "outcome", "captured_at"]))
//!     .error(Check::expression("decimal > 1", col("price_decimal").gt(lit(1.0))))
//!     .warn(Check::row_count_vs_previous(0.5, 2.0));
//! let summary = quality::check_table(&ctx, &suite, &df).await?;
//! ```

mod check;
mod evaluate;
mod record;
mod sample;

pub use check::{Check, Suite};
pub use evaluate::{evaluate, CheckResult, Context};
pub use orchestrator::store::CheckSeverity as Severity;
pub use record::{check_table, evaluate_async, gate, GateFailed};

/// Failing keys kept per check: enough to find the rows, not a data dump.
pub const SAMPLE_SIZE: usize = 5;

#[cfg(test)]
mod tests;
