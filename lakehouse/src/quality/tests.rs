//! Every check kind on small frames, passing and failing, with nulls; and
//! the gate's verdict without a database.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use orchestrator::schedule::DataInterval;
use orchestrator::task::TaskLogger;
use orchestrator::{TaskContext, TaskError};
use polars::prelude::*;
use tokio_util::sync::CancellationToken;

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ctx() -> Context {
    Context::new(at("2024-01-02T00:00:00Z"))
}

/// The single result of a one-check suite keyed by `game_id`.
fn one(check: Check, df: &DataFrame) -> CheckResult {
    one_with(check, df, &ctx())
}

fn one_with(check: Check, df: &DataFrame, ctx: &Context) -> CheckResult {
    let suite = Suite::new("silver.games").key(["game_id"]).error(check);
    let mut results = evaluate(&suite, df, ctx);
    assert_eq!(results.len(), 1);
    results.remove(0)
}

fn games() -> DataFrame {
    df![
        "game_id" => [1i64, 2, 3, 4],
        "sport" => [Some("nfl"), Some("nba"), None, Some("nhl")],
        "home_score" => [Some(21i64), Some(0), None, Some(3)],
        "away_score" => [Some(14i64), Some(7), Some(1), Some(2)],
        "p1" => [Some(10i64), Some(0), Some(1), None],
        "p2" => [Some(10i64), Some(0), None, Some(3)],
    ]
    .unwrap()
}

#[test]
fn schema_needs_each_column_with_its_type() {
    let ok = one(
        Check::schema([("game_id", DataType::Int64), ("sport", DataType::String)]),
        &games(),
    );
    assert!(ok.passed, "{}", ok.detail);
    assert_eq!(ok.observed, Some(0.0));

    let bad = one(
        Check::schema([
            ("game_id", DataType::String),
            ("venue", DataType::String),
            ("sport", DataType::String),
        ]),
        &games(),
    );
    assert!(!bad.passed);
    assert_eq!(bad.observed, Some(2.0));
    assert!(bad.detail.contains("venue missing"), "{}", bad.detail);
    assert!(
        bad.detail.contains("game_id is i64, not str"),
        "{}",
        bad.detail
    );
    assert!(bad.is_blocking());
}

#[test]
fn not_null_counts_rows_with_any_null_and_names_them_by_key() {
    let ok = one(Check::not_null(["game_id", "away_score"]), &games());
    assert!(ok.passed, "{}", ok.detail);
    assert_eq!(ok.observed, Some(0.0));

    let bad = one(Check::not_null(["sport", "home_score", "p1"]), &games());
    assert!(!bad.passed);
    assert_eq!(bad.observed, Some(2.0), "{}", bad.detail);
    assert_eq!(bad.sample, vec!["game_id=3", "game_id=4"]);
    assert_eq!(bad.facts["null_counts"]["sport"], 1);
    assert_eq!(bad.facts["null_counts"]["p1"], 1);
    assert_eq!(bad.facts["rows"], 4);
}

#[test]
fn failing_rows_are_named_by_row_number_without_a_key() {
    let suite = Suite::new("t").error(Check::not_null(["sport"]));
    let r = evaluate(&suite, &games(), &ctx()).remove(0);
    assert_eq!(r.sample, vec!["row 2"]);
}

#[test]
fn unique_reports_duplicated_keys_and_leaves_null_keys_alone() {
    let ok = one(Check::unique(["game_id"]), &games());
    assert!(ok.passed, "{}", ok.detail);

    let df = df![
        "game_id" => [Some(1i64), Some(1), Some(2), None, None, Some(3), Some(3), Some(3)],
        "book" => ["dk", "dk", "dk", "dk", "dk", "fd", "fd", "mgm"],
    ]
    .unwrap();
    let bad = one(Check::unique(["game_id", "book"]), &df);
    assert!(!bad.passed);
    assert_eq!(bad.observed, Some(4.0), "{}", bad.detail);
    assert_eq!(bad.facts["duplicate_keys"], 2);
    assert_eq!(
        bad.sample,
        vec!["game_id=1, book=dk (x2)", "game_id=3, book=fd (x2)"]
    );
    let single = one(Check::unique(["game_id"]), &df);
    assert_eq!(single.observed, Some(5.0), "{}", single.detail);
}

#[test]
fn accepted_values_compare_as_text_and_ignore_nulls() {
    let ok = one(
        Check::accepted_values("sport", ["nfl", "ncaaf", "nba", "nhl"]),
        &games(),
    );
    assert!(ok.passed, "{}", ok.detail);

    let bad = one(Check::accepted_values("sport", ["nfl", "nba"]), &games());
    assert!(!bad.passed);
    assert_eq!(bad.observed, Some(1.0));
    assert_eq!(bad.sample, vec!["game_id=4"]);
    assert_eq!(bad.facts["unexpected_values"], serde_json::json!(["nhl"]));
    assert!(bad.detail.contains("values: nhl"), "{}", bad.detail);

    let ints = one(
        Check::accepted_values("away_score", ["14", "7", "1", "2"]),
        &games(),
    );
    assert!(ints.passed, "{}", ints.detail);
}

#[test]
fn ranges_count_values_outside_and_nans_but_not_nulls() {
    let probs = df![
        "game_id" => [1i64, 2, 3, 4],
        "p" => [Some(0.0f64), Some(0.55), None, Some(1.0)],
    ]
    .unwrap();
    let ok = one(Check::between("p", 0.0, 1.0), &probs);
    assert!(ok.passed, "{}", ok.detail);
    assert_eq!(ok.check, "range(p in [0, 1])");

    let open = one(Check::between_exclusive("p", 0.0, 1.0), &probs);
    assert!(!open.passed);
    assert_eq!(open.observed, Some(2.0));
    assert_eq!(open.sample, vec!["game_id=1", "game_id=4"]);
    assert_eq!(open.check, "range(p in (0, 1))");
    assert!(open.detail.contains("observed 0 to 1"), "{}", open.detail);

    let nan = df![
        "game_id" => [1i64, 2, 3],
        "p" => [0.5f64, f64::NAN, 1.2],
    ]
    .unwrap();
    let bad = one(Check::between("p", 0.0, 1.0), &nan);
    assert_eq!(bad.observed, Some(2.0), "{}", bad.detail);
    assert_eq!(bad.sample, vec!["game_id=2", "game_id=3"]);

    let scores = one(Check::at_least("home_score", 0.0), &games());
    assert!(scores.passed, "{}", scores.detail);
    assert_eq!(scores.check, "range(home_score >= 0)");
    let negative = df!["game_id" => [1i64, 2], "home_score" => [-1i64, 3]].unwrap();
    let bad = one(Check::at_least("home_score", 0.0), &negative);
    assert!(!bad.passed);
    assert_eq!(bad.sample, vec!["game_id=1"]);

    let odds = df!["game_id" => [1i64, 2], "price" => [-110i64, 100_000]].unwrap();
    let bad = one(
        Check::between_exclusive("price", -100_000.0, 100_000.0),
        &odds,
    );
    assert_eq!(bad.observed, Some(1.0));

    let text = one(Check::between("sport", 0.0, 1.0), &games());
    assert!(!text.passed);
    assert!(text.detail.contains("not a number"), "{}", text.detail);
}

#[test]
fn referential_integrity_reports_unmapped_values_and_ignores_nulls() {
    let teams = df!["team_id" => [10i32, 11, 12]].unwrap();
    let odds = df![
        "game_id" => [1i64, 2, 3, 4],
        "team_id" => [Some(10i64), None, Some(99), Some(12)],
    ]
    .unwrap();
    let bad = one(
        Check::referential_to("team_id", "teams", &teams, "team_id").unwrap(),
        &odds,
    );
    assert!(!bad.passed);
    assert_eq!(bad.check, "referential(team_id -> teams)");
    assert_eq!(bad.observed, Some(1.0));
    assert_eq!(bad.sample, vec!["game_id=3"]);
    assert_eq!(bad.facts["unmapped_values"], serde_json::json!(["99"]));
    assert_eq!(bad.facts["dimension_keys"], 3);

    let all_known = odds
        .clone()
        .lazy()
        .filter(col("team_id").neq(lit(99i64)).or(col("team_id").is_null()))
        .collect()
        .unwrap();
    let ok = one(
        Check::referential("team_id", "teams", Series::new("k".into(), [10i64, 11, 12])),
        &all_known,
    );
    assert!(ok.passed, "{}", ok.detail);

    let wrong_type = one(
        Check::referential("team_id", "teams", Series::new("k".into(), ["x", "y"])),
        &odds,
    );
    assert!(!wrong_type.passed);
    assert!(
        wrong_type.detail.starts_with("could not evaluate"),
        "{}",
        wrong_type.detail
    );
}

#[test]
fn freshness_compares_the_newest_timestamp_with_the_reference_time() {
    let ts = Series::new(
        "updated_at".into(),
        [
            Some(at("2024-01-01T12:00:00Z").timestamp_micros()),
            None,
            Some(at("2024-01-01T20:00:00Z").timestamp_micros()),
        ],
    )
    .cast(&DataType::Datetime(
        TimeUnit::Microseconds,
        Some(TimeZone::UTC),
    ))
    .unwrap();
    let df = DataFrame::new_infer_height(vec![ts.into()]).unwrap();
    let ok = one(Check::freshness("updated_at", Duration::hours(6)), &df);
    assert!(ok.passed, "{}", ok.detail);
    assert_eq!(ok.observed, Some(4.0 * 3600.0));
    let stale = one(Check::freshness("updated_at", Duration::hours(3)), &df);
    assert!(!stale.passed);
    assert!(stale.detail.contains("4h 0m old"), "{}", stale.detail);

    let days = Series::new(
        "day".into(),
        [NaiveDate::from_ymd_opt(2023, 12, 31).unwrap()],
    );
    let df = DataFrame::new_infer_height(vec![days.into()]).unwrap();
    let r = one(Check::freshness("day", Duration::days(2)), &df);
    assert!(r.passed, "{}", r.detail);
    let r = one(Check::freshness("day", Duration::days(1)), &df);
    assert!(!r.passed, "{}", r.detail);

    let empty = df.clear();
    let r = one(Check::freshness("day", Duration::days(2)), &empty);
    assert!(!r.passed);
    assert!(r.detail.contains("empty or all null"), "{}", r.detail);

    let r = one(Check::freshness("sport", Duration::days(2)), &games());
    assert!(r.detail.contains("not a date"), "{}", r.detail);
}

#[test]
fn row_counts_compare_with_the_previous_observation() {
    let check = || Check::row_count_vs_previous(0.5, 2.0);
    let first = one(check(), &games());
    assert!(first.passed, "{}", first.detail);
    assert_eq!(first.observed, Some(4.0));
    assert!(first.detail.contains("baseline"), "{}", first.detail);

    let name = check().name();
    let similar = ctx().with_previous("silver.games", &name, 5.0);
    assert!(one_with(check(), &games(), &similar).passed);
    let other_table = ctx().with_previous("silver.odds", &name, 100.0);
    assert!(one_with(check(), &games(), &other_table).passed);

    let dropped = ctx().with_previous("silver.games", &name, 100.0);
    let r = one_with(check(), &games(), &dropped);
    assert!(!r.passed);
    assert_eq!(r.facts["ratio"], 0.04);
    assert!(r.detail.contains("4 rows vs 100"), "{}", r.detail);

    let from_zero = ctx().with_previous("silver.games", &name, 0.0);
    assert!(!one_with(check(), &games(), &from_zero).passed);
}

#[test]
fn expressions_must_hold_per_row_and_nulls_are_ignored() {
    let odds = df![
        "game_id" => [1i64, 2, 3],
        "decimal" => [Some(1.91f64), None, Some(1.0)],
    ]
    .unwrap();
    let r = one(
        Check::expression("decimal > 1", col("decimal").gt(lit(1.0))),
        &odds,
    );
    assert!(!r.passed);
    assert_eq!(r.check, "decimal > 1");
    assert_eq!(r.sample, vec!["game_id=3"]);
    assert!(r.detail.contains("`decimal > 1` false"), "{}", r.detail);

    let periods_sum = (col("p1") + col("p2")).eq(col("home_score"));
    let r = one(
        Check::expression("periods sum to home_score", periods_sum),
        &games(),
    );
    assert!(!r.passed);
    assert_eq!(r.observed, Some(1.0), "{}", r.detail);
    assert_eq!(r.sample, vec!["game_id=1"]);
}

#[test]
fn a_missing_column_fails_the_check_with_a_reason_and_others_still_run() {
    let suite = Suite::new("silver.games")
        .error(Check::not_null(["nope"]))
        .warn(Check::expression("ok", col("nope").gt(lit(0))))
        .error(Check::unique(["game_id"]));
    let results = evaluate(&suite, &games(), &ctx());
    assert_eq!(results.len(), 3);
    assert!(!results[0].passed);
    assert!(
        results[0]
            .detail
            .contains("column `nope` is not in the table"),
        "{}",
        results[0].detail
    );
    assert!(!results[1].passed);
    assert!(results[1].detail.starts_with("could not evaluate"));
    assert!(!results[1].is_blocking());
    assert!(results[2].passed);
}

fn task_ctx() -> TaskContext {
    TaskContext::new(
        "d".into(),
        "quality_gate".into(),
        "r".into(),
        DataInterval {
            start: at("2024-01-01T00:00:00Z"),
            end: at("2024-01-02T00:00:00Z"),
        },
        1,
        0,
        Default::default(),
        TaskLogger::stderr(),
        CancellationToken::new(),
        HashMap::new(),
    )
}

#[tokio::test]
async fn the_gate_fails_on_error_level_failures_only() {
    let warn_only = Suite::new("silver.games")
        .key(["game_id"])
        .error(Check::unique(["game_id"]))
        .warn(Check::not_null(["sport"]));
    let ctx = task_ctx();
    let context = Context::for_task(&ctx, &[&warn_only]).await.unwrap();
    assert_eq!(context.now, at("2024-01-02T00:00:00Z"));
    let results = evaluate_async(&warn_only, &games(), &context)
        .await
        .unwrap();
    let summary = gate(&ctx, &results).await.unwrap();
    assert_eq!(summary["checks"], 2);
    assert_eq!(summary["passed"], 1);
    assert_eq!(summary["warned"], 1);
    assert_eq!(summary["tables"], serde_json::json!(["silver.games"]));

    let blocking = warn_only.error(Check::at_least("home_score", 5.0));
    let err = check_table(&ctx, &blocking, &games()).await.unwrap_err();
    let TaskError::Failed(e) = &err else {
        panic!("not a failure: {err}")
    };
    let msg = e.to_string();
    assert!(
        msg.starts_with("quality gate failed: 1 error-level check(s) failed: silver.games range(home_score >= 5)"),
        "{msg}"
    );
    assert!(msg.contains("game_id=2"), "{msg}");
}

#[test]
fn records_keep_the_sample_beside_the_facts() {
    let r = one(Check::not_null(["sport"]), &games());
    let rec = r.to_record();
    assert_eq!(rec.asset, "silver.games");
    assert_eq!(rec.check_name, "not_null(sport)");
    assert_eq!(rec.severity, Severity::Error);
    assert_eq!(rec.observed_value, Some(1.0));
    assert_eq!(rec.observed["sample"], serde_json::json!(["game_id=3"]));
    assert_eq!(rec.observed["failing_rows"], 1);
}
