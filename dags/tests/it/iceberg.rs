//! Iceberg tables written through the SQL catalog in a real Postgres, or
//! the Glue Data Catalog of a real Glue API server (moto), and read back by
//! BetFlow and by pyiceberg.

use std::collections::HashMap;
use std::process::Command;

use crate::support::{moto_lake, MotoServer};
use chrono::NaiveDate;
use lakehouse::aws::AwsCredentials;
use lakehouse::glue_api::tables::{GetTableRequest, GetTableResponse};
use lakehouse::iceberg::catalog::GlueCatalogConfig;
use lakehouse::iceberg::commit::CommitTurn;
use lakehouse::iceberg::table::{opt, req};
use lakehouse::iceberg::write::PartValue;
use lakehouse::iceberg::{
    read_columns, read_table, write_table, Column, Filter, Kind, Replace, TableDef, Warehouse,
};
use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres};
use polars::prelude::*;

const SCORE_COLUMNS: [Column; 8] = [
    req("sport", Kind::Str, "league key"),
    req("sports_date", Kind::Date, "sports day"),
    req("game_id", Kind::Str, "game"),
    opt("points", Kind::Int, "points"),
    opt("price", Kind::Double, "a price"),
    opt("final", Kind::Bool, "over"),
    opt("start_time", Kind::Timestamp, "kickoff"),
    opt("attendance", Kind::Long, "fans"),
];

static SCORES: TableDef = scores(&SCORE_COLUMNS);

const fn scores(columns: &'static [Column]) -> TableDef {
    TableDef {
        namespace: "bronze",
        name: "scores_test",
        columns,
        partition_by: &["sport", "sports_date"],
        doc: "test table",
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 9, d).unwrap()
}

fn frame(rows: &[(&str, u32, &str, i32)]) -> DataFrame {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let days: Vec<i32> = rows
        .iter()
        .map(|r| (day(r.1) - epoch).num_days() as i32)
        .collect();
    let micros: Vec<i64> = rows
        .iter()
        .map(|r| (day(r.1) - epoch).num_days() * 86_400_000_000 + 3_600_000_000)
        .collect();
    df!(
        "sport" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "sports_date" => Series::new("d".into(), days).cast(&DataType::Date).unwrap(),
        "game_id" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        "points" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "price" => rows.iter().map(|r| Some(1.5 + r.3 as f64)).collect::<Vec<_>>(),
        "final" => rows.iter().map(|_| true).collect::<Vec<_>>(),
        "start_time" => Series::new("t".into(), micros).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap(),
        "attendance" => rows.iter().map(|r| r.3 as i64 * 1000).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// A Postgres cluster under `home` for the SQL catalog, with a pool on it.
async fn throwaway_postgres(home: &std::path::Path) -> (EmbeddedPostgres, sqlx::PgPool) {
    let pg = EmbeddedPostgres::start(&EmbeddedOptions {
        home: home.join("pg"),
        durable: false,
    })
    .expect("start a throwaway Postgres");
    let pool = sqlx::PgPool::connect(pg.url()).await.unwrap();
    (pg, pool)
}

fn run_props(run: &str) -> HashMap<String, String> {
    HashMap::from([("betflow.run-id".to_owned(), run.to_owned())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_replaced_not_duplicated_and_pyiceberg_reads_them() {
    let home = tempfile::tempdir().unwrap();
    let (pg, pool) = throwaway_postgres(home.path()).await;
    let dir = home.path().join("warehouse");
    let wh = Warehouse::open(&pool, &dir)
        .await
        .expect("open the catalog");

    let first = frame(&[
        ("nfl", 1, "a", 10),
        ("nfl", 1, "b", 20),
        ("nba", 1, "c", 30),
    ]);
    let s = write_table(
        &wh,
        &SCORES,
        &first,
        Replace::Partitions(vec![]),
        run_props("r1"),
    )
    .await
    .expect("first write");
    assert_eq!(
        (s.operation.as_str(), s.added_rows, s.total_rows),
        ("append", 3, 3)
    );

    // Re-running day 1 for nfl replaces nfl's day 1 only.
    let rerun = frame(&[("nfl", 1, "a", 11)]);
    let s = write_table(
        &wh,
        &SCORES,
        &rerun,
        Replace::Partitions(vec![]),
        run_props("r2"),
    )
    .await
    .expect("rerun");
    assert_eq!(s.operation, "overwrite");
    assert_eq!((s.deleted_rows, s.total_rows), (2, 2));

    // A day that became empty is cleared when named.
    let empty = frame(&[]);
    let nba_day1 = vec![PartValue::Str("nba".into()), PartValue::Date(day(1))];
    let s = write_table(
        &wh,
        &SCORES,
        &empty,
        Replace::Partitions(vec![nba_day1]),
        run_props("r3"),
    )
    .await
    .expect("clear nba day 1");
    assert_eq!((s.deleted_rows, s.total_rows), (1, 1));

    let next = frame(&[("nfl", 2, "d", 40), ("nba", 2, "e", 50)]);
    write_table(
        &wh,
        &SCORES,
        &next,
        Replace::Partitions(vec![]),
        run_props("r4"),
    )
    .await
    .expect("day 2");

    let all = read_table(&wh, &SCORES, &Filter::All)
        .await
        .expect("read all");
    assert_eq!(all.height(), 3);
    let day2 = read_table(
        &wh,
        &SCORES,
        &Filter::In("sports_date", vec![PartValue::Date(day(2))]),
    )
    .await
    .expect("read day 2");
    assert_eq!(day2.height(), 2);
    let a = all
        .lazy()
        .filter(col("game_id").eq(lit("a")))
        .collect()
        .unwrap();
    assert_eq!(a.column("points").unwrap().i32().unwrap().get(0), Some(11));
    assert_eq!(
        a.column("attendance").unwrap().i64().unwrap().get(0),
        Some(11_000)
    );
    assert_eq!(a.column("sports_date").unwrap().dtype(), &DataType::Date);

    // Another engine reads the same tables through the same catalog.
    let Some(python) = python() else {
        panic!("BETFLOW_PYTHON is not set: run scripts/test (it provides a venv with pyiceberg)");
    };
    let script = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
uri, warehouse = sys.argv[1], sys.argv[2]
cat = SqlCatalog("betflow", uri=uri.replace("postgres://", "postgresql+psycopg2://", 1), warehouse=warehouse)
t = cat.load_table("bronze.scores_test")
rows = t.scan().to_arrow().sort_by("game_id").to_pylist()
print(len(rows), ",".join(r["game_id"] for r in rows), rows[0]["points"], rows[0]["sports_date"].isoformat())
print(t.current_snapshot().summary["betflow.run-id"], len(t.history()))
"#;
    let out = Command::new(python)
        .args(["-c", script, pg.url(), &wh.location])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyiceberg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "3 a,d,e 11 2024-09-01");
    assert_eq!(lines[1], "r4 4");
    pool.close().await;
}

/// The catch-up of a deployment commits many days to one table at once:
/// the commits take turns (a lock per table in the deployment's Postgres)
/// instead of racing and redoing their work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_to_one_table_wait_their_turn_and_all_land() {
    let home = tempfile::tempdir().unwrap();
    let (_pg, pool) = throwaway_postgres(home.path()).await;
    let wh = Warehouse::open(&pool, &home.path().join("warehouse"))
        .await
        .expect("open the catalog");
    let first = frame(&[("nfl", 1, "a", 1)]);
    write_table(
        &wh,
        &SCORES,
        &first,
        Replace::Partitions(vec![]),
        run_props("r0"),
    )
    .await
    .expect("create the table");

    // Another writer of the deployment holds the table's turn.
    let turn = CommitTurn::wait(&pool, &SCORES.full_name())
        .await
        .expect("take the turn");
    let waiting = {
        let wh = wh.clone();
        tokio::spawn(async move {
            let day2 = frame(&[("nfl", 2, "b", 2)]);
            write_table(
                &wh,
                &SCORES,
                &day2,
                Replace::Partitions(vec![]),
                run_props("r1"),
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the commit waits for the turn");
    turn.end().await;
    waiting
        .await
        .unwrap()
        .expect("commits once the turn is free");

    // Many days at once, as a catch-up writes them: every one lands.
    let writers: Vec<_> = (3..=8)
        .map(|d| {
            let wh = wh.clone();
            tokio::spawn(async move {
                let rows = frame(&[("nba", d, "g", d as i32)]);
                write_table(
                    &wh,
                    &SCORES,
                    &rows,
                    Replace::Partitions(vec![]),
                    run_props("rn"),
                )
                .await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().expect("every concurrent commit succeeds");
    }
    let all = read_table(&wh, &SCORES, &Filter::All).await.expect("read");
    assert_eq!(all.height(), 2 + 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_read_returns_only_the_columns_asked_for() {
    let home = tempfile::tempdir().unwrap();
    let (_pg, pool) = throwaway_postgres(home.path()).await;
    let wh = Warehouse::open(&pool, &home.path().join("warehouse"))
        .await
        .expect("open the catalog");

    // Before the table exists: empty, with just those columns.
    let none = read_columns(&wh, &SCORES, &["game_id", "points"], &Filter::All)
        .await
        .expect("read a missing table");
    assert_eq!(none.height(), 0);
    assert_eq!(column_names(&none), ["game_id", "points"]);

    let rows = frame(&[
        ("nfl", 1, "a", 10),
        ("nfl", 2, "b", 20),
        ("nba", 2, "c", 30),
    ]);
    write_table(
        &wh,
        &SCORES,
        &rows,
        Replace::Partitions(vec![]),
        run_props("p1"),
    )
    .await
    .expect("write");

    // In the order asked, with the table's dtypes, filtered as usual.
    let day2 = read_columns(
        &wh,
        &SCORES,
        &["attendance", "game_id"],
        &Filter::In("sports_date", vec![PartValue::Date(day(2))]),
    )
    .await
    .expect("projected read");
    assert_eq!(column_names(&day2), ["attendance", "game_id"]);
    let day2 = day2
        .sort(["game_id"], SortMultipleOptions::default())
        .unwrap();
    let attendance: Vec<Option<i64>> = day2
        .column("attendance")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(attendance, [Some(20_000), Some(30_000)]);

    // Every column: the same rows as the full read.
    let by_game = |df: DataFrame| {
        df.sort(["game_id"], SortMultipleOptions::default())
            .unwrap()
    };
    let all = by_game(read_table(&wh, &SCORES, &Filter::All).await.unwrap());
    let names: Vec<&str> = SCORES.column_names();
    let same = by_game(
        read_columns(&wh, &SCORES, &names, &Filter::All)
            .await
            .unwrap(),
    );
    assert!(all.equals_missing(&same));

    // A column the table does not have is named in the error.
    let err = read_columns(&wh, &SCORES, &["game_id", "venue"], &Filter::All)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "table bronze.scores_test: column `venue`: not a column of the table, cannot be read"
    );
    pool.close().await;
}

fn column_names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .into_iter()
        .map(|n| n.to_string())
        .collect()
}

fn python() -> Option<String> {
    std::env::var("BETFLOW_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
}

/// A first load, then a re-run that replaces one of its partitions; the
/// table read back holds the re-run's rows and the untouched partition's.
async fn write_then_replace_a_partition(wh: &Warehouse) {
    let first = frame(&[("nfl", 1, "a", 10), ("nba", 1, "c", 30)]);
    write_table(
        wh,
        &SCORES,
        &first,
        Replace::Partitions(vec![]),
        run_props("s1"),
    )
    .await
    .expect("first load");
    let rerun = frame(&[("nfl", 1, "a", 12), ("nfl", 1, "b", 13)]);
    let s = write_table(
        wh,
        &SCORES,
        &rerun,
        Replace::Partitions(vec![]),
        run_props("s2"),
    )
    .await
    .expect("replacing load");
    assert_eq!((s.deleted_rows, s.total_rows), (1, 3));
    let all = read_table(wh, &SCORES, &Filter::All)
        .await
        .expect("read back");
    assert_eq!(all.height(), 3);
}

/// pyiceberg's S3 settings for moto at `endpoint`, as Python keyword arguments.
const PY_MOTO_S3: &str = r#"{"s3.endpoint": endpoint, "s3.access-key-id": "betflow-test",
    "s3.secret-access-key": "betflow-test-secret", "s3.region": "us-east-1",
    "s3.force-virtual-addressing": "false"}"#;

/// Runs `open_catalog` (Python binding `cat`, with `endpoint` and `arg`
/// from the command line) and prints what pyiceberg reads of the table:
/// row count, game ids and the run id of the current snapshot.
fn pyiceberg_reads(open_catalog: &str, endpoint: &str, arg: &str) -> String {
    let python = python().expect("BETFLOW_PYTHON (scripts/test provides pyiceberg)");
    let script = format!(
        r#"
import sys
endpoint, arg = sys.argv[1], sys.argv[2]
s3 = {PY_MOTO_S3}
{open_catalog}
t = cat.load_table("bronze.scores_test")
rows = t.scan().to_arrow().sort_by("game_id").to_pylist()
print(len(rows), ",".join(r["game_id"] for r in rows), t.current_snapshot().summary["betflow.run-id"])
"#
    );
    let out = Command::new(python)
        .args(["-c", &script, endpoint, arg])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyiceberg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warehouse_in_s3_is_written_replaced_and_read_by_pyiceberg() {
    let home = tempfile::tempdir().unwrap();
    let (pg, pool) = throwaway_postgres(home.path()).await;
    let moto = MotoServer::start();
    let s3 = moto_lake(&moto).await;
    let wh = Warehouse::open_s3(&pool, &s3)
        .await
        .expect("open the catalog");
    assert_eq!(wh.location, "s3://betflow-lake/warehouse");
    write_then_replace_a_partition(&wh).await;

    let sql_catalog = r#"
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("betflow", uri=arg.replace("postgres://", "postgresql+psycopg2://", 1),
                 warehouse="s3://betflow-lake/warehouse", **s3)
"#;
    assert_eq!(
        pyiceberg_reads(sql_catalog, &moto.endpoint, pg.url()),
        "3 a,b,c s2"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_in_the_glue_catalog_are_written_replaced_and_read_by_pyiceberg() {
    let moto = MotoServer::start();
    let s3 = moto_lake(&moto).await;
    let glue = GlueCatalogConfig {
        endpoint: Some(moto.endpoint.clone()),
        region: "us-east-1".to_owned(),
        credentials: AwsCredentials {
            access_key_id: "betflow-test".to_owned(),
            secret_access_key: "betflow-test-secret".to_owned(),
            session_token: None,
        },
        catalog_id: None,
    };
    let wh = Warehouse::open_glue(&s3, &glue)
        .await
        .expect("open the Glue catalog");
    write_then_replace_a_partition(&wh).await;

    // The table is a Glue table other engines find: an Iceberg table whose
    // parameters point at the replacing load's metadata.
    let request = GetTableRequest {
        catalog_id: None,
        database_name: "bronze",
        name: "scores_test",
    };
    let table: GetTableResponse = glue
        .client()
        .expect("Glue client")
        .call("GetTable", &request)
        .await
        .expect("Glue has the table");
    let params = table.table.and_then(|t| t.parameters).unwrap_or_default();
    assert_eq!(
        params.get("table_type").map(String::as_str),
        Some("ICEBERG")
    );
    let pointer = params.get("metadata_location").expect("metadata_location");
    assert!(
        pointer.starts_with("s3://betflow-lake/warehouse/") && pointer.contains("/00002-"),
        "{pointer}"
    );

    let glue_catalog = r#"
from pyiceberg.catalog.glue import GlueCatalog
cat = GlueCatalog("betflow", **{"glue.endpoint": endpoint, "glue.region": "us-east-1",
                  "glue.access-key-id": "betflow-test", "glue.secret-access-key": "betflow-test-secret"},
                  **s3)
"#;
    assert_eq!(
        pyiceberg_reads(glue_catalog, &moto.endpoint, ""),
        "3 a,b,c s2"
    );
}

/// [`SCORES`] with one optional column appended.
static SCORES_WITH_OVERTIME: TableDef = scores(&OVERTIME_COLUMNS);

const OVERTIME_COLUMNS: [Column; 9] = {
    let mut c = [SCORE_COLUMNS[0]; 9];
    let mut i = 0;
    while i < SCORE_COLUMNS.len() {
        c[i] = SCORE_COLUMNS[i];
        i += 1;
    }
    c[8] = opt("overtime", Kind::Bool, "went to overtime");
    c
};

/// [`SCORES`] with a column renamed: not something Iceberg ids allow.
static SCORES_RENAMED: TableDef = scores(&RENAMED_COLUMNS);

const RENAMED_COLUMNS: [Column; 8] = {
    let mut c = SCORE_COLUMNS;
    c[3] = opt("score", Kind::Int, "points");
    c
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_that_appends_a_column_evolves_the_table_and_keeps_its_rows() {
    let home = tempfile::tempdir().unwrap();
    let (_pg, pool) = throwaway_postgres(home.path()).await;
    let wh = Warehouse::open(&pool, &home.path().join("warehouse"))
        .await
        .expect("open the catalog");
    write_table(
        &wh,
        &SCORES,
        &frame(&[("nfl", 1, "a", 10), ("nfl", 1, "b", 20)]),
        Replace::Partitions(vec![]),
        run_props("v1"),
    )
    .await
    .expect("write with the first definition");

    // The grown definition writes another day; the old rows stay, with
    // the new column null.
    let mut day2 = frame(&[("nfl", 2, "c", 30)]);
    day2.with_column(Series::new("overtime".into(), [Some(true)]).into_column())
        .unwrap();
    write_table(
        &wh,
        &SCORES_WITH_OVERTIME,
        &day2,
        Replace::Partitions(vec![]),
        run_props("v2"),
    )
    .await
    .expect("write with a column appended");
    let all = read_table(&wh, &SCORES_WITH_OVERTIME, &Filter::All)
        .await
        .expect("read both days")
        .sort(["game_id"], SortMultipleOptions::default())
        .unwrap();
    let overtime: Vec<Option<bool>> = all
        .column("overtime")
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(overtime, [None, None, Some(true)]);

    // A renamed column is refused, naming it, and nothing is written.
    let err = write_table(
        &wh,
        &SCORES_RENAMED,
        &frame(&[("nfl", 3, "d", 40)])
            .rename("points", "score".into())
            .unwrap()
            .clone(),
        Replace::Partitions(vec![]),
        run_props("v3"),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("table bronze.scores_test: column `points`:"),
        "{err}"
    );
    let after = read_table(&wh, &SCORES_WITH_OVERTIME, &Filter::All)
        .await
        .unwrap();
    assert_eq!(after.height(), 3);
    pool.close().await;
}

/// Unmounts a test's tmpfs however the test ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn parquet_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            n += parquet_files(&path);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            n += 1;
        }
    }
    n
}

/// A warehouse on a 2 MiB tmpfs: a load too big for it fails at once as a
/// full disk (no retry), leaves no data file behind and the table as it
/// was; once there is room the same load lands. Mounting needs root, as
/// the lake's full-disk test does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_warehouse_disk_fails_the_write_at_once_and_the_table_is_untouched() {
    let home = tempfile::tempdir().unwrap();
    let (pg, pool) = throwaway_postgres(home.path()).await;
    let dir = home.path().join("warehouse");
    std::fs::create_dir(&dir).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mounting a 2 MiB tmpfs as a full warehouse needs root (scripts/test runs as root in CI)"
    );
    let _unmount = Unmount(dir.clone());
    let wh = Warehouse::open(&pool, &dir)
        .await
        .expect("open the catalog");
    write_table(
        &wh,
        &SCORES,
        &frame(&[("nfl", 1, "a", 10), ("nfl", 2, "b", 20)]),
        Replace::Partitions(vec![]),
        run_props("small"),
    )
    .await
    .expect("a small load fits");
    let files_before = parquet_files(&dir);

    // Incompressible game ids: about 4 MiB of Parquet for day 2.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let ids: Vec<String> = (0..60_000)
        .map(|_| {
            (0..4)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect()
        })
        .collect();
    let rows: Vec<(&str, u32, &str, i32)> =
        ids.iter().map(|id| ("nfl", 2, id.as_str(), 1)).collect();
    let big = frame(&rows);
    let err = write_table(
        &wh,
        &SCORES,
        &big,
        Replace::Partitions(vec![]),
        run_props("big"),
    )
    .await
    .expect_err("4 MiB do not fit in 2 MiB");
    assert!(
        matches!(err, lakehouse::iceberg::IcebergError::DiskFull { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert!(
        !err.into_task_error().is_retryable(),
        "a retry cannot make room"
    );
    assert_eq!(
        parquet_files(&dir),
        files_before,
        "the failed write left no data file"
    );
    let table = read_table(&wh, &SCORES, &Filter::All).await.expect("read");
    assert_eq!(table.height(), 2, "the table is as the small load left it");

    // Room again: the same load lands and replaces day 2.
    let status = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let s = write_table(
        &wh,
        &SCORES,
        &big,
        Replace::Partitions(vec![]),
        run_props("big"),
    )
    .await
    .expect("the load fits now");
    assert_eq!((s.added_rows, s.total_rows), (60_000, 60_001));
    drop(pg);
}
