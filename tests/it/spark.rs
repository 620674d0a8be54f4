//! BetFlow's Spark job scripts against the polars engine: the same raw
//! lake modelled by both, through the real binary, must give the same
//! tables (`BETFLOW_TRANSFORM_ENGINE=spark` runs the scripts under a
//! local `spark-submit`, pyspark from PyPI on the machine's Java 17).

use crate::common::{python_json, TestEnv};
use serde_json::Value;

const GAMES: &str = "historical_games_daily";
const ODDS: &str = "historical_odds_daily";
const WEATHER: &str = "weather_daily";
const NEWS: &str = "news_daily";
/// A college Saturday and an NFL Sunday of the replay captures: outdoor
/// venues of both leagues, and no weather at all for the indoor ones.
const DAYS: [&str; 2] = ["2024-09-07", "2024-09-08"];
/// `BETFLOW_SPARK_PARITY_DAYS=7` runs a replayed week from the Saturday
/// instead (each day is eight `spark-submit`s of several seconds, so the
/// default stays within the test budget).
const DAYS_VAR: &str = "BETFLOW_SPARK_PARITY_DAYS";

fn days() -> Vec<String> {
    let n: i64 = match std::env::var(DAYS_VAR) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{DAYS_VAR}={v:?} is not a number")),
        Err(_) => return DAYS.iter().map(|d| (*d).to_owned()).collect(),
    };
    let first: chrono::NaiveDate = DAYS[0].parse().unwrap();
    (0..n)
        .map(|i| (first + chrono::Duration::days(i)).to_string())
        .collect()
}

fn spark_submit() -> String {
    std::env::var("BETFLOW_SPARK_SUBMIT").expect(
        "BETFLOW_SPARK_SUBMIT is not set: run scripts/test (it installs pyspark into its venv \
         and needs a Java 17 runtime: Debian's openjdk-17-jre-headless)",
    )
}

fn run_day(env: &TestEnv, dag: &str, day: &str, engine: &[(&str, &str)]) {
    let mut cmd = env.cmd(&["dags", "trigger", dag, "--logical-date", day, "--wait"]);
    for (k, v) in engine {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run betflow");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("finished: success"),
        "{dag} {day} with {engine:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every row of `tables` as pyiceberg reads them, without the columns that
/// name the load (run, raw object, load time), sorted.
fn dump(env: &TestEnv, tables: &[&str]) -> Value {
    let script = r#"
import json, sys
from pyiceberg.catalog.sql import SqlCatalog
uri, warehouse = sys.argv[1], sys.argv[2]
cat = SqlCatalog("betflow", uri=uri.replace("postgres://", "postgresql+psycopg2://", 1), warehouse=warehouse)
out = {}
for name in sys.argv[3:]:
    rows = cat.load_table(name).scan().to_arrow().to_pylist()
    clean = []
    for r in rows:
        for k in ("run_id", "raw_key", "ingested_at"):
            r.pop(k, None)
        clean.append({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()})
    # Floats may differ in the last bits between engines: sort by the rest.
    clean.sort(key=lambda r: json.dumps({k: v for k, v in r.items() if not isinstance(v, float)}, sort_keys=True, default=str))
    out[name] = clean
print(json.dumps(out))
"#;
    let warehouse = format!(
        "file://{}",
        env.path("lake/warehouse").canonicalize().unwrap().display()
    );
    let mut args = vec![env.url.as_str(), warehouse.as_str()];
    args.extend(tables);
    python_json(script, &args)
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

/// Column by column, with floats within 1e-9 relative.
fn assert_same_tables(polars: &Value, spark: &Value, tables: &[&str]) {
    for table in tables {
        let p = polars[table].as_array().expect("rows");
        let s = spark[table].as_array().expect("rows");
        assert!(!p.is_empty(), "{table}: the polars engine wrote no rows");
        assert_eq!(p.len(), s.len(), "{table}: row counts");
        for (i, (pr, sr)) in p.iter().zip(s).enumerate() {
            let (pr, sr) = (pr.as_object().unwrap(), sr.as_object().unwrap());
            assert_eq!(
                pr.keys().collect::<Vec<_>>(),
                sr.keys().collect::<Vec<_>>(),
                "{table}: columns"
            );
            for (column, pv) in pr {
                assert!(
                    same_value(pv, &sr[column]),
                    "{table} row {i} column {column}: polars {pv}, spark {}\npolars row {pr:?}\nspark row {sr:?}",
                    sr[column]
                );
            }
        }
    }
}

#[test]
fn spark_scripts_model_the_same_tables_as_polars() {
    let env = TestEnv::start();
    env.ok(&["dags", "unpause", GAMES]);
    env.ok(&["dags", "unpause", ODDS]);
    env.ok(&["dags", "unpause", WEATHER]);
    env.ok(&["dags", "unpause", NEWS]);
    let tables = [
        "bronze.games",
        "silver.games",
        "silver.game_periods",
        "bronze.odds",
        "silver.odds",
        "bronze.weather",
        "silver.weather",
        "bronze.news",
        "silver.news",
    ];
    let days = days();
    // Every day's games first: silver odds map to the games modelled by
    // then, so both engines must see the same. Weather is fetched for the
    // outdoor venues of the day's games.
    for dag in [GAMES, ODDS, WEATHER, NEWS] {
        for day in &days {
            run_day(&env, dag, day, &[]);
        }
    }
    let polars = dump(&env, &tables);

    // The same days again on Spark, later in each day (a second run of the
    // day): each run replaces its partitions.
    let submit = spark_submit();
    let spark_engine = [
        ("BETFLOW_TRANSFORM_ENGINE", "spark"),
        ("BETFLOW_SPARK_SUBMIT", submit.as_str()),
        ("BETFLOW_SPARK_DRIVER_MEMORY", "1g"),
        (
            "BETFLOW_SPARK_JAVA_OPTIONS",
            "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        ),
    ];
    for dag in [GAMES, ODDS, WEATHER, NEWS] {
        for day in &days {
            run_day(&env, dag, &format!("{day}T12:00:00-04:00"), &spark_engine);
        }
    }
    let spark = dump(&env, &tables);
    assert_same_tables(&polars, &spark, &tables);

    // The Spark runs did run on Spark, and left no staged files behind.
    for (dag, task) in [
        (GAMES, "transform.silver_games"),
        (ODDS, "transform.silver_odds"),
        (WEATHER, "transform.silver_weather"),
        (NEWS, "transform.silver_news"),
    ] {
        let run = env.scalar(&format!(
            "SELECT value::text FROM xcom WHERE dag_id = '{dag}' AND task_id = '{task}' \
             ORDER BY run_id DESC LIMIT 1"
        ));
        assert!(run.contains("\"engine\": \"spark\""), "{task}: {run}");
    }
    let staged = walk(&env.path("lake/staging"));
    assert!(staged.is_empty(), "staged files left: {staged:?}");
    // The quality gates passed over Spark's silver as over polars'.
    let failed =
        env.scalar("SELECT count(*) FROM check_results WHERE severity = 'error' AND NOT passed");
    assert_eq!(failed, "0");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
