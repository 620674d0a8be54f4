//! The gate: results into the metadata database and the task's log, and
//! the task's verdict.

use orchestrator::store::{CheckTry, NewCheckResult};
use orchestrator::{TaskContext, TaskError};
use polars::prelude::DataFrame;
use serde_json::{json, Value};

use super::check::{Check, Suite};
use super::evaluate::{evaluate, CheckResult, Context};

/// Error-level checks failed; the message lists each with its detail.
#[derive(Debug, thiserror::Error)]
#[error(
    "quality gate failed: {} error-level check(s) failed: {}",
    .failed.len(),
    .failed.join(" | ")
)]
pub struct GateFailed {
    /// `table check: detail`, one per failed error-level check.
    pub failed: Vec<String>,
}

impl CheckResult {
    /// The row the store keeps: the facts plus the sample under `sample`.
    pub fn to_record(&self) -> NewCheckResult {
        let mut observed = self.facts.clone();
        observed.insert("sample".into(), json!(self.sample));
        NewCheckResult {
            asset: self.table.clone(),
            check_name: self.check.clone(),
            severity: self.severity,
            passed: self.passed,
            observed_value: self.observed,
            observed: Value::Object(observed),
            detail: self.detail.clone(),
        }
    }

    fn line(&self) -> String {
        let outcome = match (self.passed, self.is_blocking()) {
            (true, _) => "passed",
            (false, true) => "FAILED",
            (false, false) => "WARN",
        };
        format!(
            "quality check {outcome}: {} {} [{}]: {}",
            self.table, self.check, self.severity, self.detail
        )
    }
}

impl Context {
    /// The context of a task's checks: the run's data-interval end as the
    /// reference time, and from the store (when the try is recorded) the
    /// last passed observation before this run of every check that compares
    /// with one.
    pub async fn for_task(ctx: &TaskContext, suites: &[&Suite]) -> Result<Self, TaskError> {
        let mut out = Self::new(ctx.data_interval.end);
        let Some(store) = ctx.store() else {
            return Ok(out);
        };
        for suite in suites {
            for (check, _) in &suite.checks {
                if !matches!(check, Check::RowCountVsPrevious { .. }) {
                    continue;
                }
                let name = check.name();
                let prev = store
                    .previous_check_observation(&suite.table, &name, ctx.logical_date)
                    .await?;
                if let Some(v) = prev.and_then(|r| r.observed_value) {
                    out.set_previous(&suite.table, &name, v);
                }
            }
        }
        Ok(out)
    }
}

/// Record `results` for this task try (replacing what the try recorded
/// before), log one line per check, and decide: a JSON summary when no
/// error-level check failed, else [`GateFailed`]. Without a store (`betflow
/// tasks run`, unit tests) the results are only logged.
pub async fn gate(ctx: &TaskContext, results: &[CheckResult]) -> Result<Value, TaskError> {
    if let Some(store) = ctx.store() {
        let records: Vec<NewCheckResult> = results.iter().map(CheckResult::to_record).collect();
        let try_ = CheckTry {
            dag_id: &ctx.dag_id,
            run_id: &ctx.run_id,
            task_id: &ctx.task_id,
            try_number: ctx.try_number,
        };
        store.record_check_results(try_, &records).await?;
    } else {
        ctx.log
            .info("no metadata database: check results are logged, not stored");
    }
    for r in results {
        match (r.passed, r.is_blocking()) {
            (true, _) => ctx.log.info(r.line()),
            (false, true) => ctx.log.error(r.line()),
            (false, false) => ctx.log.warn(r.line()),
        }
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.is_blocking())
        .map(|r| format!("{} {}: {}", r.table, r.check, r.detail))
        .collect();
    if !failed.is_empty() {
        return Err(TaskError::from(GateFailed { failed }));
    }
    Ok(summary(results))
}

/// `{"checks": n, "passed": n, "warned": n, "tables": [...], "warnings": [...]}`.
fn summary(results: &[CheckResult]) -> Value {
    let mut tables: Vec<&str> = Vec::new();
    for r in results {
        if !tables.contains(&r.table.as_str()) {
            tables.push(&r.table);
        }
    }
    let warnings: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} {}: {}", r.table, r.check, r.detail))
        .collect();
    json!({
        "checks": results.len(),
        "passed": results.iter().filter(|r| r.passed).count(),
        "warned": warnings.len(),
        "tables": tables,
        "warnings": warnings,
    })
}

/// [`evaluate`] on tokio's blocking pool. Polars' engine blocks the thread
/// it runs on (and panics on a current-thread runtime's), so async tasks
/// must not call [`evaluate`] directly.
pub async fn evaluate_async(
    suite: &Suite,
    df: &DataFrame,
    ctx: &Context,
) -> Result<Vec<CheckResult>, TaskError> {
    let (suite, df, ctx) = (suite.clone(), df.clone(), ctx.clone());
    Ok(tokio::task::spawn_blocking(move || evaluate(&suite, &df, &ctx)).await?)
}

/// Check one table in a task: [`Context::for_task`], [`evaluate_async`], [`gate`].
pub async fn check_table(
    ctx: &TaskContext,
    suite: &Suite,
    df: &DataFrame,
) -> Result<Value, TaskError> {
    let context = Context::for_task(ctx, &[suite]).await?;
    let results = evaluate_async(suite, df, &context).await?;
    gate(ctx, &results).await
}
