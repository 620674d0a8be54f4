//! Data-quality check results, stored per task try (the generic half of
//! asset checks: the orchestrator keeps and shows them; what is checked and
//! how is the pipelines' business).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Store, StoreError};

/// How much a failed check matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSeverity {
    /// A failure fails the task, so downstream tasks do not run on bad data.
    Error,
    /// A failure is recorded and shown, nothing more.
    Warn,
}

impl CheckSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
        }
    }
}

impl fmt::Display for CheckSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown check severity `{0}`: use error or warn")]
pub struct UnknownSeverity(String);

impl FromStr for CheckSeverity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Self::Error),
            "warn" => Ok(Self::Warn),
            _ => Err(UnknownSeverity(s.to_owned())),
        }
    }
}

/// One check's outcome, as a task reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewCheckResult {
    /// The table or asset checked.
    pub asset: String,
    pub check_name: String,
    pub severity: CheckSeverity,
    pub passed: bool,
    /// The headline figure (failing rows, a row count, an age in seconds).
    pub observed_value: Option<f64>,
    /// Everything else measured, as a JSON object.
    pub observed: Value,
    pub detail: String,
}

/// A stored check result.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CheckResultRow {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: i32,
    pub logical_date: DateTime<Utc>,
    pub asset: String,
    pub check_name: String,
    /// `error` or `warn`.
    pub severity: String,
    pub passed: bool,
    pub observed_value: Option<f64>,
    pub observed: Value,
    pub detail: String,
    pub checked_at: DateTime<Utc>,
}

impl CheckResultRow {
    /// `passed`, `failed` (error level) or `warn` (a failed warn-level check):
    /// the word the CLI and the pages show.
    pub fn outcome(&self) -> &'static str {
        match (self.passed, self.severity.as_str()) {
            (true, _) => "passed",
            (false, "warn") => "warn",
            (false, _) => "failed",
        }
    }

    /// The headline figure for a table cell: whole numbers (row counts)
    /// without decimals, others to three places, `-` when none.
    pub fn observed_label(&self) -> String {
        match self.observed_value {
            None => "-".to_owned(),
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            Some(v) => format!("{v:.3}"),
        }
    }
}

/// Which task try the results belong to.
#[derive(Debug, Clone, Copy)]
pub struct CheckTry<'a> {
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub task_id: &'a str,
    pub try_number: i32,
}

const CHECK_COLUMNS: &str = "dag_id, run_id, task_id, try_number, logical_date, asset, check_name,
    severity, passed, observed_value, observed, detail, checked_at";
/// A run's results from the latest try of each task that recorded any: a
/// cleared and re-run gate replaces what the run shows, while the earlier
/// tries' rows stay in the table.
const RUN_RESULTS_WHERE: &str = "dag_id = $1 AND run_id = $2
    AND try_number = (SELECT max(c2.try_number) FROM check_results c2
                      WHERE c2.dag_id = c.dag_id AND c2.run_id = c.run_id AND c2.task_id = c.task_id)";

impl Store {
    /// Store the results of one task try, replacing whatever that try stored
    /// before (a task that checks twice keeps its last word). Returns the
    /// number of rows written.
    pub async fn record_check_results(
        &self,
        try_: CheckTry<'_>,
        results: &[NewCheckResult],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let logical_date: DateTime<Utc> = sqlx::query_scalar(
            "SELECT logical_date FROM dag_runs WHERE dag_id = $1 AND run_id = $2",
        )
        .bind(try_.dag_id)
        .bind(try_.run_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM check_results
             WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND try_number = $4",
        )
        .bind(try_.dag_id)
        .bind(try_.run_id)
        .bind(try_.task_id)
        .bind(try_.try_number)
        .execute(&mut *tx)
        .await?;
        let mut written = 0;
        for r in results {
            written += sqlx::query(
                "INSERT INTO check_results (dag_id, run_id, task_id, try_number, logical_date,
                     asset, check_name, severity, passed, observed_value, observed, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(try_.dag_id)
            .bind(try_.run_id)
            .bind(try_.task_id)
            .bind(try_.try_number)
            .bind(logical_date)
            .bind(&r.asset)
            .bind(&r.check_name)
            .bind(r.severity.as_str())
            .bind(r.passed)
            .bind(r.observed_value.filter(|v| v.is_finite()))
            .bind(&r.observed)
            .bind(&r.detail)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    /// A run's check results (latest try of each task), by task then in the
    /// order the task checked.
    pub async fn check_results(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<CheckResultRow>, StoreError> {
        let sql = format!(
            "SELECT {CHECK_COLUMNS} FROM check_results c WHERE {RUN_RESULTS_WHERE} ORDER BY task_id, id"
        );
        Ok(sqlx::query_as(&sql)
            .bind(dag_id)
            .bind(run_id)
            .fetch_all(self.pool())
            .await?)
    }

    /// One page of [`Store::check_results`], and how many there are in all.
    pub async fn check_results_page(
        &self,
        dag_id: &str,
        run_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<CheckResultRow>, i64), StoreError> {
        let sql = format!(
            "SELECT {CHECK_COLUMNS} FROM check_results c WHERE {RUN_RESULTS_WHERE}
             ORDER BY task_id, id LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query_as(&sql)
            .bind(dag_id)
            .bind(run_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.pool())
            .await?;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM check_results c WHERE {RUN_RESULTS_WHERE}"
        ))
        .bind(dag_id)
        .bind(run_id)
        .fetch_one(self.pool())
        .await?;
        Ok((rows, total))
    }

    /// The newest passed observation of `check_name` on `asset` from a run
    /// with a logical date before `before`, in any DAG: the baseline a
    /// day-over-day comparison uses. Failed observations are skipped so one
    /// bad day does not become the next day's yardstick.
    pub async fn previous_check_observation(
        &self,
        asset: &str,
        check_name: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<CheckResultRow>, StoreError> {
        let sql = format!(
            "SELECT {CHECK_COLUMNS} FROM check_results
             WHERE asset = $1 AND check_name = $2 AND passed AND logical_date < $3
             ORDER BY logical_date DESC, id DESC LIMIT 1"
        );
        Ok(sqlx::query_as(&sql)
            .bind(asset)
            .bind(check_name)
            .bind(before)
            .fetch_optional(self.pool())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_round_trip_and_outcomes_read_as_shown() {
        for s in [CheckSeverity::Error, CheckSeverity::Warn] {
            assert_eq!(s.as_str().parse::<CheckSeverity>().unwrap(), s);
        }
        assert!("fatal".parse::<CheckSeverity>().is_err());
        let mut row = CheckResultRow {
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            try_number: 1,
            logical_date: Utc::now(),
            asset: "a".into(),
            check_name: "c".into(),
            severity: "warn".into(),
            passed: true,
            observed_value: None,
            observed: Value::Null,
            detail: String::new(),
            checked_at: Utc::now(),
        };
        assert_eq!(row.outcome(), "passed");
        assert_eq!(row.observed_label(), "-");
        row.observed_value = Some(12.0);
        assert_eq!(row.observed_label(), "12");
        row.observed_value = Some(0.04);
        assert_eq!(row.observed_label(), "0.040");
        row.passed = false;
        assert_eq!(row.outcome(), "warn");
        row.severity = "error".into();
        assert_eq!(row.outcome(), "failed");
    }
}
