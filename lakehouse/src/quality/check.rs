//! What can be checked about a table, and a table's list of checks.

use polars::prelude::{DataFrame, DataType, Expr, PolarsResult, Series};

use super::Severity;

/// One declarative rule about a table. Row-level rules ignore nulls (as
/// dbt's tests do): whether a column may be null is [`Check::NotNull`]'s
/// business alone, so one missing value is reported once, not by every rule.
#[derive(Debug, Clone)]
pub enum Check {
    /// The columns exist with exactly these types (extra columns are fine).
    Schema(Vec<(String, DataType)>),
    /// No null in any of these columns.
    NotNull(Vec<String>),
    /// No two rows share a value of these columns; rows with a null in the
    /// key are left to [`Check::NotNull`].
    Unique(Vec<String>),
    /// Every value, compared as text, is one of `values`.
    AcceptedValues { column: String, values: Vec<String> },
    /// Every numeric value (NaN fails) is within the bounds; a `None` bound
    /// is open-ended.
    Range {
        column: String,
        min: Option<f64>,
        max: Option<f64>,
        min_inclusive: bool,
        max_inclusive: bool,
    },
    /// Every value is a key of the dimension `dimension` (`keys`).
    Referential {
        column: String,
        dimension: String,
        keys: Series,
    },
    /// The newest timestamp (Datetime or Date; naive ones read as UTC) is at
    /// most `max_age` older than the context's reference time.
    Freshness {
        column: String,
        max_age: chrono::Duration,
    },
    /// The row count is within `[min_ratio, max_ratio]` times the last
    /// passed observation of this check on this table in an earlier run.
    RowCountVsPrevious { min_ratio: f64, max_ratio: f64 },
    /// A boolean expression true for every row (null results are ignored),
    /// for rules the other checks cannot say: "decimal > 1", "period scores
    /// sum to the final score".
    Expression { name: String, expr: Expr },
}

fn owned<I, S>(columns: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    columns.into_iter().map(Into::into).collect()
}

impl Check {
    pub fn schema<I, S>(columns: I) -> Self
    where
        I: IntoIterator<Item = (S, DataType)>,
        S: Into<String>,
    {
        Self::Schema(columns.into_iter().map(|(c, t)| (c.into(), t)).collect())
    }

    pub fn not_null<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        Self::NotNull(owned(columns))
    }

    pub fn unique<I: IntoIterator<Item = S>, S: Into<String>>(key: I) -> Self {
        Self::Unique(owned(key))
    }

    pub fn accepted_values<I, S>(column: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::AcceptedValues {
            column: column.into(),
            values: owned(values),
        }
    }

    /// `min <= value <= max`.
    pub fn between(column: impl Into<String>, min: f64, max: f64) -> Self {
        Self::range(column, Some(min), Some(max), true, true)
    }

    /// `min < value < max` (odds prices, implied probabilities).
    pub fn between_exclusive(column: impl Into<String>, min: f64, max: f64) -> Self {
        Self::range(column, Some(min), Some(max), false, false)
    }

    /// `value >= min` (scores).
    pub fn at_least(column: impl Into<String>, min: f64) -> Self {
        Self::range(column, Some(min), None, true, true)
    }

    pub fn range(
        column: impl Into<String>,
        min: Option<f64>,
        max: Option<f64>,
        min_inclusive: bool,
        max_inclusive: bool,
    ) -> Self {
        Self::Range {
            column: column.into(),
            min,
            max,
            min_inclusive,
            max_inclusive,
        }
    }

    pub fn referential(
        column: impl Into<String>,
        dimension: impl Into<String>,
        keys: Series,
    ) -> Self {
        Self::Referential {
            column: column.into(),
            dimension: dimension.into(),
            keys,
        }
    }

    /// [`Check::Referential`] against column `key_column` of a dimension table.
    pub fn referential_to(
        column: impl Into<String>,
        dimension: impl Into<String>,
        table: &DataFrame,
        key_column: &str,
    ) -> PolarsResult<Self> {
        let keys = table.column(key_column)?.as_materialized_series().clone();
        Ok(Self::referential(column, dimension, keys))
    }

    pub fn freshness(column: impl Into<String>, max_age: chrono::Duration) -> Self {
        Self::Freshness {
            column: column.into(),
            max_age,
        }
    }

    pub fn row_count_vs_previous(min_ratio: f64, max_ratio: f64) -> Self {
        Self::RowCountVsPrevious {
            min_ratio,
            max_ratio,
        }
    }

    pub fn expression(name: impl Into<String>, expr: Expr) -> Self {
        Self::Expression {
            name: name.into(),
            expr,
        }
    }

    /// The check's name in results: stable across runs (it keys the
    /// previous-observation lookup) and readable in a table of results.
    pub fn name(&self) -> String {
        match self {
            Self::Schema(_) => "schema".to_owned(),
            Self::NotNull(cols) => format!("not_null({})", cols.join(", ")),
            Self::Unique(cols) => format!("unique({})", cols.join(", ")),
            Self::AcceptedValues { column, .. } => format!("accepted_values({column})"),
            Self::Range {
                column,
                min,
                max,
                min_inclusive,
                max_inclusive,
            } => format!(
                "range({column} {})",
                bounds(*min, *max, *min_inclusive, *max_inclusive)
            ),
            Self::Referential {
                column, dimension, ..
            } => format!("referential({column} -> {dimension})"),
            Self::Freshness { column, .. } => format!("freshness({column})"),
            Self::RowCountVsPrevious { .. } => "row_count_vs_previous".to_owned(),
            Self::Expression { name, .. } => name.clone(),
        }
    }
}

/// `in [0, 1]`, `in (-100000, 100000)`, `>= 0`, `< 5`, or `any` without bounds.
pub(super) fn bounds(
    min: Option<f64>,
    max: Option<f64>,
    min_inclusive: bool,
    max_inclusive: bool,
) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!(
            "in {}{lo}, {hi}{}",
            if min_inclusive { '[' } else { '(' },
            if max_inclusive { ']' } else { ')' }
        ),
        (Some(lo), None) => format!("{} {lo}", if min_inclusive { ">=" } else { ">" }),
        (None, Some(hi)) => format!("{} {hi}", if max_inclusive { "<=" } else { "<" }),
        (None, None) => "any".to_owned(),
    }
}

/// The checks of one table. `key` names the columns that identify a row, so
/// failing rows can be shown by key (by row number without one).
#[derive(Debug, Clone)]
pub struct Suite {
    pub table: String,
    pub key: Vec<String>,
    pub checks: Vec<(Check, Severity)>,
}

impl Suite {
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            key: Vec::new(),
            checks: Vec::new(),
        }
    }

    pub fn key<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.key = owned(columns);
        self
    }

    pub fn check(mut self, check: Check, severity: Severity) -> Self {
        self.checks.push((check, severity));
        self
    }

    /// Add a check whose failure fails the gate.
    pub fn error(self, check: Check) -> Self {
        self.check(check, Severity::Error)
    }

    /// Add a check whose failure is only recorded.
    pub fn warn(self, check: Check) -> Self {
        self.check(check, Severity::Warn)
    }
}
