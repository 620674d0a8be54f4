//! Running a suite's checks on a DataFrame. Pure: the previous observations
//! and the reference time come in a [`Context`], so this needs no database.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::check::{bounds, Check, Suite};
use super::sample::{distinct_values, failing_rows, key_rows};
use super::{Severity, SAMPLE_SIZE};

/// What one check saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub table: String,
    /// [`Check::name`].
    pub check: String,
    pub severity: Severity,
    pub passed: bool,
    /// The headline figure: failing rows for row rules, schema problems,
    /// the age in seconds for freshness, the row count for row-count checks.
    pub observed: Option<f64>,
    /// Up to [`SAMPLE_SIZE`] failing rows by key (`game_id=7`), or problems.
    pub sample: Vec<String>,
    /// Everything else measured (row counts, bounds, unexpected values).
    pub facts: Map<String, Value>,
    /// One sentence for people reading the run.
    pub detail: String,
}

impl CheckResult {
    /// Failed at error level: the gate fails.
    pub fn is_blocking(&self) -> bool {
        !self.passed && self.severity == Severity::Error
    }
}

/// What checks compare against beyond the data itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// The reference time of freshness checks. For a task, the end of the
    /// run's data interval, so a backfill judges last year's data by last
    /// year's clock.
    pub now: DateTime<Utc>,
    /// Previous observed values by (table, check name).
    previous: HashMap<(String, String), f64>,
}

impl Context {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            previous: HashMap::new(),
        }
    }

    /// Give the value `check` observed on `table` in an earlier run.
    pub fn with_previous(mut self, table: &str, check: &str, value: f64) -> Self {
        self.set_previous(table, check, value);
        self
    }

    pub fn set_previous(&mut self, table: &str, check: &str, value: f64) {
        self.previous
            .insert((table.to_owned(), check.to_owned()), value);
    }

    pub fn previous(&self, table: &str, check: &str) -> Option<f64> {
        self.previous
            .get(&(table.to_owned(), check.to_owned()))
            .copied()
    }
}

/// Run every check of `suite` on `df`. A check that cannot run (a missing
/// column, a wrong type) is a failed result saying why, never a panic or an
/// early return, so one broken rule does not hide the others' results.
pub fn evaluate(suite: &Suite, df: &DataFrame, ctx: &Context) -> Vec<CheckResult> {
    suite
        .checks
        .iter()
        .map(|(check, severity)| {
            let name = check.name();
            let o = run(check, &name, suite, df, ctx).unwrap_or_else(|e| Outcome {
                passed: false,
                observed: None,
                sample: Vec::new(),
                facts: facts([("error", json!(e.to_string()))]),
                detail: format!("could not evaluate: {e}"),
            });
            CheckResult {
                table: suite.table.clone(),
                check: name,
                severity: *severity,
                passed: o.passed,
                observed: o.observed,
                sample: o.sample,
                facts: o.facts,
                detail: o.detail,
            }
        })
        .collect()
}

struct Outcome {
    passed: bool,
    observed: Option<f64>,
    sample: Vec<String>,
    facts: Map<String, Value>,
    detail: String,
}

fn facts<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn run(
    check: &Check,
    name: &str,
    suite: &Suite,
    df: &DataFrame,
    ctx: &Context,
) -> PolarsResult<Outcome> {
    let key = &suite.key;
    match check {
        Check::Schema(cols) => Ok(schema(df, cols)),
        Check::NotNull(cols) => {
            need(df, cols)?;
            let mask = any_of(cols.iter().map(|c| col(c.as_str()).is_null()));
            let mut o = row_rule(df, mask, key, &format!("a null in {}", cols.join(", ")))?;
            let nulls = cols
                .iter()
                .map(|c| Ok((c.clone(), json!(df.column(c)?.null_count()))))
                .collect::<PolarsResult<Map<_, _>>>()?;
            o.facts.insert("null_counts".into(), Value::Object(nulls));
            Ok(o)
        }
        Check::Unique(cols) => unique(df, cols),
        Check::AcceptedValues { column, values } => {
            need(df, std::slice::from_ref(column))?;
            let allowed = lit(Series::new(PlSmallStr::EMPTY, values.as_slice())).implode(true);
            let c = col(column.as_str());
            let mask = c
                .clone()
                .is_not_null()
                .and(c.cast(DataType::String).is_in(allowed, false).not());
            let unexpected = distinct_values(df, mask.clone(), column)?;
            let what = format!("{column} not in [{}]", values.join(", "));
            let mut o = row_rule(df, mask, key, &what)?;
            with_values(&mut o, "unexpected_values", unexpected);
            Ok(o)
        }
        Check::Range {
            column,
            min,
            max,
            min_inclusive,
            max_inclusive,
        } => range(df, key, column, *min, *max, *min_inclusive, *max_inclusive),
        Check::Referential {
            column,
            dimension,
            keys,
        } => {
            need(df, std::slice::from_ref(column))?;
            let dtype = df.column(column)?.dtype().clone();
            let keys = keys.strict_cast(&dtype).map_err(|_| {
                polars_err!(SchemaMismatch: "the keys of {dimension} are {}, {column} is {dtype}", keys.dtype())
            })?;
            let n_keys = keys.len();
            let c = col(column.as_str());
            let mask = c
                .clone()
                .is_not_null()
                .and(c.is_in(lit(keys).implode(true), false).not());
            let unmapped = distinct_values(df, mask.clone(), column)?;
            let mut o = row_rule(df, mask, key, &format!("{column} not in {dimension}"))?;
            o.facts.insert("dimension_keys".into(), json!(n_keys));
            with_values(&mut o, "unmapped_values", unmapped);
            Ok(o)
        }
        Check::Freshness { column, max_age } => freshness(df, column, *max_age, ctx.now),
        Check::RowCountVsPrevious {
            min_ratio,
            max_ratio,
        } => Ok(row_count(
            df.height(),
            ctx.previous(&suite.table, name),
            *min_ratio,
            *max_ratio,
        )),
        Check::Expression { name, expr } => {
            row_rule(df, expr.clone().not(), key, &format!("`{name}` false"))
        }
    }
}

/// A missing column as an error naming it (polars' own message is about
/// plans, not tables).
fn need(df: &DataFrame, cols: &[String]) -> PolarsResult<()> {
    let schema = df.schema();
    match cols.iter().find(|c| !schema.contains(c)) {
        Some(c) => Err(polars_err!(ColumnNotFound: "column `{c}` is not in the table")),
        None => Ok(()),
    }
}

fn any_of(exprs: impl Iterator<Item = Expr>) -> Expr {
    exprs.reduce(Expr::or).unwrap_or_else(|| lit(false))
}

/// A rule that rejects rows: passed when `mask` selects none.
fn row_rule(df: &DataFrame, mask: Expr, key: &[String], problem: &str) -> PolarsResult<Outcome> {
    let (n, sample) = failing_rows(df, mask, key)?;
    let rows = df.height();
    let detail = if n == 0 {
        format!("0 of {rows} rows with {problem}")
    } else {
        format!(
            "{n} of {rows} rows with {problem}; e.g. {}",
            sample.join("; ")
        )
    };
    Ok(Outcome {
        passed: n == 0,
        observed: Some(n as f64),
        sample,
        facts: facts([("failing_rows", json!(n)), ("rows", json!(rows))]),
        detail,
    })
}

/// Add the distinct offending values to the facts and the detail.
fn with_values(o: &mut Outcome, name: &str, values: Vec<String>) {
    if !values.is_empty() {
        o.detail
            .push_str(&format!(" (values: {})", values.join(", ")));
    }
    o.facts.insert(name.into(), json!(values));
}

fn schema(df: &DataFrame, cols: &[(String, DataType)]) -> Outcome {
    let schema = df.schema();
    let problems: Vec<String> = cols
        .iter()
        .filter_map(|(c, want)| match schema.get(c) {
            None => Some(format!("{c} missing")),
            Some(got) if got != want => Some(format!("{c} is {got}, not {want}")),
            Some(_) => None,
        })
        .collect();
    let detail = if problems.is_empty() {
        format!(
            "all {} required columns present with their types",
            cols.len()
        )
    } else {
        problems.join("; ")
    };
    Outcome {
        passed: problems.is_empty(),
        observed: Some(problems.len() as f64),
        sample: problems.iter().take(SAMPLE_SIZE).cloned().collect(),
        facts: facts([
            ("problems", json!(problems)),
            ("required", json!(cols.len())),
        ]),
        detail,
    }
}

const GROUP_LEN: &str = "__quality_n";

fn unique(df: &DataFrame, cols: &[String]) -> PolarsResult<Outcome> {
    need(df, cols)?;
    let keys: Vec<Expr> = cols.iter().map(|c| col(c.as_str())).collect();
    let complete = cols
        .iter()
        .map(|c| col(c.as_str()).is_not_null())
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(true));
    let dups = df
        .clone()
        .lazy()
        .filter(complete)
        .group_by_stable(keys)
        .agg([len().alias(GROUP_LEN)])
        .filter(col(GROUP_LEN).gt(lit(1)));
    let totals = dups
        .clone()
        .select([
            len().alias("keys"),
            col(GROUP_LEN).cast(DataType::UInt64).sum().alias("rows"),
        ])
        .collect()?;
    let dup_keys = totals.column("keys")?.get(0)?.extract::<u64>().unwrap_or(0);
    let dup_rows = totals.column("rows")?.get(0)?.extract::<u64>().unwrap_or(0);
    let first = dups.limit(SAMPLE_SIZE as IdxSize).collect()?;
    let counts = first.column(GROUP_LEN)?.clone();
    let sample = key_rows(&first, cols)?
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let n = counts.get(i).map(|v| v.to_string()).unwrap_or_default();
            format!("{k} (x{n})")
        })
        .collect::<Vec<_>>();
    let rows = df.height();
    let detail = if dup_keys == 0 {
        format!("all {rows} rows have distinct ({})", cols.join(", "))
    } else {
        format!(
            "{dup_rows} of {rows} rows share {dup_keys} duplicated ({}) values; e.g. {}",
            cols.join(", "),
            sample.join("; ")
        )
    };
    Ok(Outcome {
        passed: dup_keys == 0,
        observed: Some(dup_rows as f64),
        sample,
        facts: facts([
            ("failing_rows", json!(dup_rows)),
            ("duplicate_keys", json!(dup_keys)),
            ("rows", json!(rows)),
        ]),
        detail,
    })
}

#[allow(clippy::too_many_arguments)]
fn range(
    df: &DataFrame,
    key: &[String],
    column: &str,
    min: Option<f64>,
    max: Option<f64>,
    min_inclusive: bool,
    max_inclusive: bool,
) -> PolarsResult<Outcome> {
    need(df, &[column.to_owned()])?;
    let dtype = df.column(column)?.dtype();
    if !dtype.is_primitive_numeric() {
        polars_bail!(SchemaMismatch: "column `{column}` is {dtype}, not a number");
    }
    let x = col(column).cast(DataType::Float64);
    let below = min.map(|lo| {
        if min_inclusive {
            x.clone().lt(lit(lo))
        } else {
            x.clone().lt_eq(lit(lo))
        }
    });
    let above = max.map(|hi| {
        if max_inclusive {
            x.clone().gt(lit(hi))
        } else {
            x.clone().gt_eq(lit(hi))
        }
    });
    let outside = any_of(
        [Some(x.clone().is_nan()), below, above]
            .into_iter()
            .flatten(),
    );
    let mask = x.clone().is_not_null().and(outside);
    let stats = df
        .clone()
        .lazy()
        .select([x.clone().min().alias("min"), x.max().alias("max")])
        .collect()?;
    let seen_min = stats.column("min")?.get(0)?.extract::<f64>();
    let seen_max = stats.column("max")?.get(0)?.extract::<f64>();
    let allowed = bounds(min, max, min_inclusive, max_inclusive);
    let mut o = row_rule(df, mask, key, &format!("{column} not {allowed}"))?;
    if let (Some(lo), Some(hi)) = (seen_min, seen_max) {
        o.detail.push_str(&format!(" (observed {lo} to {hi})"));
    }
    o.facts.insert("min".into(), json!(seen_min));
    o.facts.insert("max".into(), json!(seen_max));
    o.facts.insert("allowed".into(), json!(allowed));
    Ok(o)
}

fn freshness(
    df: &DataFrame,
    column: &str,
    max_age: chrono::Duration,
    now: DateTime<Utc>,
) -> PolarsResult<Outcome> {
    need(df, &[column.to_owned()])?;
    let ts = match df.column(column)?.dtype() {
        DataType::Datetime(_, _) => col(column),
        DataType::Date => col(column).cast(DataType::Datetime(TimeUnit::Microseconds, None)),
        other => {
            polars_bail!(SchemaMismatch: "column `{column}` is {other}, not a date or datetime")
        }
    };
    let out = df
        .clone()
        .lazy()
        .select([ts
            .dt()
            .timestamp(TimeUnit::Microseconds)
            .max()
            .alias("latest")])
        .collect()?;
    let latest = out
        .column("latest")?
        .get(0)?
        .extract::<i64>()
        .and_then(DateTime::from_timestamp_micros);
    let limit = max_age.num_seconds();
    let Some(latest) = latest else {
        return Ok(Outcome {
            passed: false,
            observed: None,
            sample: Vec::new(),
            facts: facts([("reference", json!(now)), ("max_age_secs", json!(limit))]),
            detail: format!("no {column} value: the table is empty or all null"),
        });
    };
    let age = now - latest;
    let passed = age <= max_age;
    let detail = format!(
        "newest {column} {} is {} old at {} ({} {})",
        latest.to_rfc3339(),
        human_age(age.num_seconds()),
        now.to_rfc3339(),
        if passed { "within" } else { "over" },
        human_age(limit),
    );
    Ok(Outcome {
        passed,
        observed: Some(age.num_milliseconds() as f64 / 1000.0),
        sample: Vec::new(),
        facts: facts([
            ("latest", json!(latest)),
            ("reference", json!(now)),
            ("max_age_secs", json!(limit)),
        ]),
        detail,
    })
}

/// `2d 3h`, `5h 10m`, `4m 2s`, `-1h 0m` (a timestamp after the reference time).
fn human_age(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let body = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {sec}s")
    };
    format!("{sign}{body}")
}

fn row_count(rows: usize, previous: Option<f64>, min_ratio: f64, max_ratio: f64) -> Outcome {
    let allowed = format!("x{min_ratio} to x{max_ratio}");
    let Some(prev) = previous else {
        return Outcome {
            passed: true,
            observed: Some(rows as f64),
            sample: Vec::new(),
            facts: facts([("rows", json!(rows)), ("previous", Value::Null)]),
            detail: format!(
                "{rows} rows; no earlier observation to compare with, so this is the baseline"
            ),
        };
    };
    let ratio = if prev > 0.0 {
        rows as f64 / prev
    } else if rows == 0 {
        1.0
    } else {
        f64::INFINITY
    };
    let passed = (min_ratio..=max_ratio).contains(&ratio);
    Outcome {
        passed,
        observed: Some(rows as f64),
        sample: Vec::new(),
        facts: facts([
            ("rows", json!(rows)),
            ("previous", json!(prev)),
            ("ratio", json!(ratio.is_finite().then_some(ratio))),
            ("min_ratio", json!(min_ratio)),
            ("max_ratio", json!(max_ratio)),
        ]),
        detail: format!(
            "{rows} rows vs {prev} in the previous observation (x{:.2}; allowed {allowed})",
            ratio
        ),
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(super::human_age(45), "0m 45s");
        assert_eq!(super::human_age(3 * 3600 + 300), "3h 5m");
        assert_eq!(super::human_age(2 * 86_400 + 7200), "2d 2h");
        assert_eq!(super::human_age(-3600), "-1h 0m");
    }
}
