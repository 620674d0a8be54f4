//! `betflow bench batch`: a generated season of odds through the batch
//! transforms (raw → bronze → silver → gold) with the code the nightly DAGs
//! run, timed per layer, with peak RSS, and the comparable part re-run in
//! DuckDB (`scripts/bench_duckdb.py`) for a ratio. Prints figures; asserts
//! nothing.
//!
//! Raw objects come from a seeded [`SeasonGenerator`], shaped as the
//! ingest tasks store them: one ESPN scoreboard and one JSON array of Odds
//! API historical snapshots per sport and sports day. Generation is setup:
//! timed and printed, but not part of any layer. The season is processed
//! day by day as production does (bronze and silver per sports day, gold
//! once over the whole silver history), and only silver is kept between
//! days, so memory follows the silver history, not the raw season.
//!
//! Silver odds of a day map events to the games modelled by then (that day
//! and the one before, as in the nightly order: later days are not in yet);
//! gold maps every event again over the whole history, as
//! `gold_marts_nightly` does, and the report gives both mapped shares.
//!
//! Bronze parses a day's raw objects on one thread per core, unlike the
//! task's sequential loop (`--bronze-threads 1`; a backfill gets the same
//! parallelism by running days side by side). The silver history handed to
//! gold holds what the gold tasks scan: only the columns gold reads, with
//! the odds' events reduced apart (`--silver-columns gold`, the default);
//! `--silver-columns all` holds every silver column instead, as gold read
//! them before it scanned only its own, for comparison.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use clap::ValueEnum;
use dags::ingest::odds::snapshot_times;
use dags::transform::bronze::{self, Origin};
use dags::transform::bronze_odds::OddsColumns;
use dags::transform::gold::{self, SilverInputs};
use dags::transform::{event_games, silver, silver_tables};
use dags::{Sport, SPORTS};
use lakehouse::iceberg::TableDef;
use orchestrator::cpus::EngineCpus;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sources::generator::SeasonGenerator;
use sources::odds_api::OddsFormat;

use super::process::{peak_rss, rss};
use polars::prelude::{
    col, ChunkAgg, DataFrame, DataType, IntoLazy, JoinArgs, JoinType, UniqueKeepStrategy,
};
use serde::Serialize;
use serde_json::{json, Value};

/// Seed of the generated season (any fixed value: figures must be comparable across runs).
const SEED: u64 = 20_240_824;
/// The 2024-25 season of the four leagues as the generator schedules them:
/// college football's first Saturday to the NHL's last regular-season day.
const SEASON: (u32, u32, u32, u32) = (8, 24, 4, 16);
const SEASON_YEAR: i32 = 2024;
/// Run id stamped on silver and gold rows.
const RUN_ID: &str = "bench_batch";
/// Markets open this long before kickoff in the generator (its
/// `OPENING_HOURS`); only used to pick the snapshot spacing, the row count
/// printed is the one generated.
const MARKET_OPEN_HOURS: i64 = 72;
/// Spacings tried, finest last: the coarsest that yields the wanted rows wins.
const SPACINGS: &[u32] = &[
    1440, 720, 480, 360, 240, 180, 120, 90, 60, 55, 50, 45, 40, 35, 30, 25, 20, 15, 10, 5,
];
/// The DuckDB side, embedded so the bench runs from any directory.
const DUCKDB_SCRIPT: &str = include_str!("../../scripts/bench_duckdb.py");

/// `--compare`: the engine the comparable part is re-run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compare {
    Duckdb,
    /// BetFlow's Spark scripts under a local spark-submit (games and odds,
    /// bronze and silver), with a Glue cost model.
    Spark,
    None,
}

/// What `betflow bench batch` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub json: bool,
    pub odds_rows: usize,
    pub snapshot_minutes: Option<u32>,
    pub compare: Compare,
    /// Where to write the Parquet files for the other engine and keep them
    /// (to re-run the script by hand); default a temporary directory.
    pub export_dir: Option<PathBuf>,
    /// Threads parsing a day's raw odds objects (1 = as the DAG task does);
    /// default: as many as polars uses.
    pub bronze_threads: Option<usize>,
    pub silver_columns: SilverColumns,
    /// `BETFLOW_ENGINE_CPUS`: the pipeline run as a task of `up`'s engine
    /// placed there would run.
    pub cpus: Option<EngineCpus>,
}

/// `--silver-columns`: what the silver history handed to gold holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SilverColumns {
    /// Only the silver columns gold reads, the odds' events reduced apart:
    /// what the `gold_marts_nightly` tasks scan.
    Gold,
    /// Every silver column (events taken from the odds rows): what gold
    /// held before it scanned only its columns, for comparison.
    All,
}

/// One layer's figures.
#[derive(Debug, Default, Serialize)]
struct Layer {
    rows_in: usize,
    rows_out: usize,
    seconds: f64,
    rows_per_sec: f64,
}

impl Layer {
    /// Throughput counts the rows the layer reads (bronze: the rows it makes,
    /// since its input is JSON).
    fn finish(&mut self, basis: usize) {
        self.rows_per_sec = basis as f64 / self.seconds.max(1e-9);
    }
}

/// Figures of the comparable part: silver odds and two gold marts.
#[derive(Debug, Default, Serialize)]
struct Comparable {
    silver_odds_secs: f64,
    market_efficiency_secs: f64,
    odds_movement_secs: f64,
    total_secs: f64,
    checks: Value,
}

/// Rows one gold table came out with.
#[derive(Debug, Serialize)]
struct GoldTable {
    table: &'static str,
    rows: usize,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    season_from: String,
    season_to: String,
    sports_days: usize,
    sports: Vec<&'static str>,
    threads: usize,
    bronze_threads: usize,
    snapshot_minutes: u32,
    snapshot_minutes_chosen: bool,
    odds_rows_wanted: usize,
    odds_rows_estimated: usize,
    games: usize,
    raw_objects: usize,
    raw_bytes: usize,
    generate_secs: f64,
    export_secs: f64,
    bronze: Layer,
    silver: Layer,
    /// Of `silver.seconds`, the part spent on games (the rest is odds).
    silver_games_secs: f64,
    gold: Layer,
    total_secs: f64,
    bronze_odds_rows: usize,
    bronze_games_rows: usize,
    silver_odds_rows: usize,
    /// Rows silver mapped to a game (games modelled by their night only).
    silver_odds_mapped: usize,
    /// Rows gold maps to a game (every game of the season modelled).
    gold_odds_mapped: usize,
    /// Odds events of the season, and those gold maps to a game.
    odds_events: usize,
    odds_events_mapped: usize,
    /// Silver odds columns the history for gold holds.
    silver_history_columns: usize,
    /// Of `gold.seconds`, the part spent reducing the odds' events day by
    /// day (the gold tasks' event scan; 0 with `--silver-columns all`).
    gold_events_secs: f64,
    notes: Vec<String>,
    silver_games_rows: usize,
    silver_periods_rows: usize,
    gold_tables: Vec<GoldTable>,
    peak_rss_after_silver_bytes: u64,
    /// RSS with the silver history built, just before gold.
    rss_before_gold_bytes: u64,
    /// polars' estimate of the silver odds history's own size (shared
    /// string buffers counted once per chunk that uses them).
    silver_history_bytes: u64,
    peak_rss_bytes: u64,
    comparable: Comparable,
    duckdb: Option<Value>,
    duckdb_skipped: Option<String>,
    spark: Option<Value>,
    spark_skipped: Option<String>,
}

pub async fn run(opts: Options) -> Result<ExitCode> {
    // Polars blocks the thread it runs on: keep it off the async workers.
    let job = opts.clone();
    let report = match &opts.cpus {
        None => tokio::task::spawn_blocking(move || bench(&job)).await??,
        // As a task of `up`'s engine runs it: on the blocking pool of a
        // runtime placed as the engine's, the rest of the process off the
        // kept CPUs.
        Some(placed) => {
            placed.placement.rest.pin_this_process()?;
            let engine = placed.runtime()?;
            let report = engine.spawn_blocking(move || bench(&job)).await??;
            if !opts.json {
                outln!(
                    "placed as `up` places a task under BETFLOW_ENGINE_CPUS: its blocking work on CPUs {}, the engine's workers on {}, the rest of the process on {}",
                    placed.placement.all(),
                    placed.placement.engine,
                    placed.placement.rest
                );
            }
            tokio::task::spawn_blocking(move || drop(engine)).await?;
            report
        }
    };
    if opts.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The season's sports days.
fn season_days() -> Result<Vec<NaiveDate>> {
    let (fm, fd, tm, td) = SEASON;
    let from = NaiveDate::from_ymd_opt(SEASON_YEAR, fm, fd).context("season start")?;
    let to = NaiveDate::from_ymd_opt(SEASON_YEAR + 1, tm, td).context("season end")?;
    Ok(from.iter_days().take_while(|d| *d <= to).collect())
}

fn origin(sport: &Sport, date: NaiveDate, kind: &str, at: DateTime<Utc>) -> Origin {
    Origin {
        sport: sport.key.to_owned(),
        sports_date: date,
        source: "replay".to_owned(),
        raw_key: format!(
            "raw/historical/{}/{kind}/date={date}/replay-{RUN_ID}.json",
            sport.key
        ),
        run_id: RUN_ID.to_owned(),
        ingested_at: at,
    }
}

/// The raw odds object of `sport` on `date`: every snapshot of the day as
/// one JSON array of untouched bodies, as a `sport.fetch_odds_snapshots` instance stores it.
fn odds_object(
    generator: &SeasonGenerator,
    sport: &Sport,
    date: NaiveDate,
    minutes: u32,
) -> Result<Vec<u8>> {
    let mut out = vec![b'['];
    for (i, t) in snapshot_times(date, minutes).into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&generator.historical_odds(sport, t)?.body);
    }
    out.push(b']');
    Ok(out)
}

/// Odds rows one event yields per snapshot, per sport, from one generated
/// snapshot an hour before each sport's first game.
fn rows_per_event(
    generator: &SeasonGenerator,
    first_start: &[(usize, DateTime<Utc>)],
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; SPORTS.len()];
    for (sport, start) in first_start {
        let body = generator
            .historical_odds(&SPORTS[*sport], *start - Duration::hours(1))?
            .body;
        let snapshot: Value = serde_json::from_slice(&body)?;
        let events = snapshot
            .get("data")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let o = origin(&SPORTS[*sport], start.date_naive(), "odds", *start);
        let rows = OddsColumns::default().add_payload(
            &Value::Array(vec![snapshot]),
            &o,
            OddsFormat::American,
        );
        if events > 0 {
            out[*sport] = rows as f64 / events as f64;
        }
    }
    Ok(out)
}

/// Odds rows a season at `minutes` spacing yields: each game is quoted in
/// every snapshot of the hours before kickoff that markets are open.
fn estimate_rows(
    days: &[NaiveDate],
    starts: &[(usize, DateTime<Utc>)],
    per_event: &[f64],
    minutes: u32,
) -> usize {
    let times: Vec<DateTime<Utc>> = days
        .iter()
        .flat_map(|d| snapshot_times(*d, minutes))
        .collect();
    let rows: f64 = starts
        .iter()
        .map(|(sport, s)| {
            let from = times.partition_point(|t| *t < *s - Duration::hours(MARKET_OPEN_HOURS));
            let to = times.partition_point(|t| t < s);
            (to - from) as f64 * per_event[*sport]
        })
        .sum();
    rows as usize
}

/// Appends `part` to `acc` without copying (polars shares the chunks).
fn append(acc: &mut Option<DataFrame>, part: DataFrame) -> Result<()> {
    if part.height() == 0 {
        return Ok(());
    }
    match acc {
        Some(df) => {
            df.vstack_mut(&part)?;
        }
        None => *acc = Some(part),
    }
    Ok(())
}

/// bronze.games and bronze.odds of one sports day from its raw objects
/// (one per sport, in [`SPORTS`] order).
fn bronze_day(
    date: NaiveDate,
    boards: &[Vec<u8>],
    odds_raw: &[Vec<u8>],
    threads: usize,
    ingested_at: DateTime<Utc>,
) -> Result<(DataFrame, DataFrame)> {
    let game_origins: Vec<Origin> = SPORTS
        .iter()
        .map(|s| origin(s, date, "games", ingested_at))
        .collect();
    let odds_origins: Vec<Origin> = SPORTS
        .iter()
        .map(|s| origin(s, date, "odds", ingested_at))
        .collect();
    let mut game_rows = Vec::new();
    for (raw, o) in boards.iter().zip(&game_origins) {
        let payload: Value = serde_json::from_slice(raw)?;
        let games = bronze::games(&payload, o).map_err(anyhow::Error::msg)?;
        game_rows.extend(games.into_iter().map(|g| (g, o)));
    }
    let games = bronze::games_frame(&game_rows)?;
    drop(game_rows);
    let odds = bronze_odds(odds_raw, &odds_origins, threads)?;
    Ok((games, odds))
}

/// `odds` (the silver history gold read) with `game_id` as silver set it
/// day by day, from `maps` (sport, sports_date, event_id, game_id): what the
/// comparable part and the DuckDB script start from.
fn with_silver_games(odds: DataFrame, maps: DataFrame) -> Result<DataFrame> {
    let on = || [col("sport"), col("sports_date"), col("event_id")];
    let odds = if odds.column("game_id").is_ok() {
        odds.drop("game_id")?
    } else {
        odds
    };
    Ok(odds
        .lazy()
        .join(maps.lazy(), on(), on(), JoinArgs::new(JoinType::Left))
        .collect()?)
}

/// Rows of `odds` whose event `map` ([`event_games::event_games`]) maps to a game.
fn mapped_rows(odds: &DataFrame, map: &DataFrame) -> Result<usize> {
    let mapped = event_games::with_games(odds.clone().lazy(), map.clone().lazy())
        .select([col("game_id").is_not_null().sum()])
        .collect()?;
    let n = mapped.column("game_id")?.cast(&DataType::UInt64)?;
    Ok(n.u64()?.get(0).unwrap_or(0) as usize)
}

/// The silver odds checks, summed day by day over the full rows (before
/// any column is dropped).
#[derive(Debug, Default)]
struct SilverSums {
    rows: usize,
    mapped: usize,
    opening: f64,
    closing: f64,
    no_vig_prob: f64,
}

impl SilverSums {
    fn add(&mut self, df: &DataFrame) -> Result<()> {
        if df.height() == 0 {
            return Ok(());
        }
        self.rows += df.height();
        self.mapped += count(df, "game_id")?;
        self.opening += sum(df, "is_opening")?;
        self.closing += sum(df, "is_closing")?;
        self.no_vig_prob += sum(df, "no_vig_prob")?;
        Ok(())
    }

    fn checks(&self) -> Value {
        json!({
            "rows": self.rows,
            "mapped": self.mapped,
            "opening": self.opening,
            "closing": self.closing,
            "no_vig_prob": self.no_vig_prob,
        })
    }
}

/// bronze.odds of one sports day: each raw object parsed into rows and a
/// frame with the DAG's functions, on up to `threads` threads (largest
/// objects first), the frames stacked in sport order — the rows
/// `transform.bronze_odds` builds in one pass over the same objects.
fn bronze_odds(raws: &[Vec<u8>], origins: &[Origin], threads: usize) -> Result<DataFrame> {
    let one = |i: usize| -> Result<DataFrame> {
        let mut columns = OddsColumns::default();
        columns.add_object(&raws[i], &origins[i], OddsFormat::American)?;
        Ok(columns.finish()?)
    };
    let mut order: Vec<usize> = (0..raws.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(raws[*i].len()));
    let next = AtomicUsize::new(0);
    let work = || -> Result<Vec<(usize, DataFrame)>> {
        let mut done = Vec::new();
        while let Some(i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
            done.push((*i, one(*i)?));
        }
        Ok(done)
    };
    let mut frames: Vec<(usize, DataFrame)> = if threads <= 1 {
        work()?
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.min(raws.len()))
                .map(|_| scope.spawn(work))
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(
                    w.join()
                        .map_err(|_| anyhow::anyhow!("a bronze worker panicked"))??,
                );
            }
            Ok::<_, anyhow::Error>(all)
        })?
    };
    frames.sort_by_key(|(i, _)| *i);
    let mut out: Option<DataFrame> = None;
    for (_, df) in frames {
        append(&mut out, df)?;
    }
    match out {
        Some(df) => Ok(df),
        None => Ok(OddsColumns::default().finish()?),
    }
}

/// Parquet files of the bronze tables for the other engine, one row group
/// per sports day (written outside every timed section).
struct Export {
    dir: PathBuf,
    odds: ArrowWriter<File>,
    games: ArrowWriter<File>,
    odds_schema: arrow_schema::SchemaRef,
    games_schema: arrow_schema::SchemaRef,
}

impl Export {
    fn create(dir: &Path) -> Result<Export> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build()
        };
        let writer = |def: &TableDef| -> Result<(ArrowWriter<File>, arrow_schema::SchemaRef)> {
            let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&*def.schema()?)?);
            let path = dir.join(format!("bronze_{}.parquet", def.name));
            let file =
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            Ok((
                ArrowWriter::try_new(file, schema.clone(), Some(props()))?,
                schema,
            ))
        };
        let (odds, odds_schema) = writer(&bronze::ODDS)?;
        let (games, games_schema) = writer(&bronze::GAMES)?;
        Ok(Export {
            dir: dir.to_owned(),
            odds,
            games,
            odds_schema,
            games_schema,
        })
    }

    fn day(&mut self, odds: &DataFrame, games: &DataFrame) -> Result<()> {
        if odds.height() > 0 {
            let batch = lakehouse::iceberg::arrow::to_record_batch(
                &bronze::ODDS,
                odds,
                self.odds_schema.clone(),
            )?;
            self.odds.write(&batch)?;
        }
        if games.height() > 0 {
            let batch = lakehouse::iceberg::arrow::to_record_batch(
                &bronze::GAMES,
                games,
                self.games_schema.clone(),
            )?;
            self.games.write(&batch)?;
        }
        Ok(())
    }

    fn close(self) -> Result<PathBuf> {
        self.odds.close()?;
        self.games.close()?;
        Ok(self.dir)
    }
}

/// The export directory, removed however the bench ends unless the user chose it.
struct ExportDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for ExportDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn bench(opts: &Options) -> Result<Report> {
    let days = season_days()?;
    let threads = std::env::var("POLARS_MAX_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut report = Report {
        season_from: days.first().map(ToString::to_string).unwrap_or_default(),
        season_to: days.last().map(ToString::to_string).unwrap_or_default(),
        sports_days: days.len(),
        sports: SPORTS.iter().map(|s| s.key).collect(),
        threads,
        bronze_threads: opts.bronze_threads.unwrap_or(threads).max(1),
        odds_rows_wanted: opts.odds_rows,
        ..Report::default()
    };
    let ingested_at = Utc
        .with_ymd_and_hms(SEASON_YEAR + 1, 6, 1, 0, 0, 0)
        .single()
        .context("load time")?;

    // Setup: every scoreboard (small), then the spacing that yields the rows wanted.
    let started = Instant::now();
    let generator = SeasonGenerator::new(SEED)?;
    let mut scoreboards: Vec<Vec<Vec<u8>>> = Vec::with_capacity(days.len());
    let mut starts: Vec<(usize, DateTime<Utc>)> = Vec::new();
    for date in &days {
        let mut day = Vec::with_capacity(SPORTS.len());
        for (i, sport) in SPORTS.iter().enumerate() {
            let body = generator.scoreboard(sport, *date)?.body;
            let payload: Value = serde_json::from_slice(&body)?;
            let o = origin(sport, *date, "games", ingested_at);
            let games = bronze::games(&payload, &o).map_err(anyhow::Error::msg)?;
            starts.extend(games.iter().map(|g| (i, g.start_time)));
            day.push(body);
        }
        scoreboards.push(day);
    }
    report.games = starts.len();
    let mut first_start: Vec<(usize, DateTime<Utc>)> = Vec::new();
    for (sport, start) in &starts {
        if !first_start.iter().any(|(s, _)| s == sport) {
            first_start.push((*sport, *start));
        }
    }
    let per_event = rows_per_event(&generator, &first_start)?;
    let minutes = match opts.snapshot_minutes {
        Some(m) => m.max(1),
        None => {
            report.snapshot_minutes_chosen = true;
            SPACINGS
                .iter()
                .copied()
                .find(|m| estimate_rows(&days, &starts, &per_event, *m) >= opts.odds_rows)
                .unwrap_or(SPACINGS[SPACINGS.len() - 1])
        }
    };
    report.snapshot_minutes = minutes;
    report.odds_rows_estimated = estimate_rows(&days, &starts, &per_event, minutes);
    let mut generate_secs = started.elapsed().as_secs_f64();

    let export_dir = match &opts.export_dir {
        Some(path) => ExportDir {
            path: path.clone(),
            keep: true,
        },
        None => ExportDir {
            path: std::env::temp_dir().join(format!("betflow-bench-batch-{}", std::process::id())),
            keep: false,
        },
    };
    let mut export = match opts.compare {
        Compare::Duckdb => Some(Export::create(&export_dir.path)?),
        Compare::Spark | Compare::None => None,
    };
    let mut spark_lake = match opts.compare {
        Compare::Spark => Some(super::spark::SparkLake::create(&export_dir.path)?),
        Compare::Duckdb | Compare::None => None,
    };

    let mut silver_odds: Option<DataFrame> = None;
    let mut silver_games: Option<DataFrame> = None;
    let mut silver_periods: Option<DataFrame> = None;
    let mut silver_games_secs = 0.0;
    let mut silver_sums = SilverSums::default();
    let project = opts.silver_columns == SilverColumns::Gold;
    let history_columns: Vec<&str> = if project {
        gold::reads_any(&silver_tables::ODDS)
    } else {
        silver_tables::ODDS.column_names()
    };
    report.silver_history_columns = history_columns.len();
    let mut odds_events: Option<DataFrame> = None;
    let mut silver_maps: Option<DataFrame> = None;
    let mut gold_events_secs = 0.0;
    let mut previous_games: Option<DataFrame> = None;
    for (date, boards) in days.iter().zip(scoreboards) {
        // Raw (setup): the day's odds objects.
        let t = Instant::now();
        let mut odds_raw: Vec<Vec<u8>> = Vec::with_capacity(SPORTS.len());
        for sport in SPORTS {
            odds_raw.push(odds_object(&generator, sport, *date, minutes)?);
        }
        report.raw_objects += boards.len() + odds_raw.len();
        report.raw_bytes += boards.iter().chain(&odds_raw).map(Vec::len).sum::<usize>();
        generate_secs += t.elapsed().as_secs_f64();
        if let Some(lake) = spark_lake.as_mut() {
            let t = Instant::now();
            for (i, sport) in SPORTS.iter().enumerate() {
                lake.add("games", sport.key, *date, &boards[i])?;
                lake.add("odds", sport.key, *date, &odds_raw[i])?;
            }
            report.export_secs += t.elapsed().as_secs_f64();
        }

        // raw → bronze, as `transform.bronze_{games,odds}` do for all sports of the day.
        let t = Instant::now();
        let (bronze_games, bronze_odds) = bronze_day(
            *date,
            &boards,
            &odds_raw,
            report.bronze_threads,
            ingested_at,
        )?;
        report.bronze.seconds += t.elapsed().as_secs_f64();
        drop(odds_raw);
        drop(boards);
        report.bronze_odds_rows += bronze_odds.height();
        report.bronze_games_rows += bronze_games.height();

        // bronze → silver, per sports day as `transform.silver_{games,odds}`
        // do; the odds map to the games modelled by that night (this day's
        // and the day before's: later days are not in silver yet).
        let t = Instant::now();
        let (games, periods) = silver::games(bronze_games.clone().lazy(), RUN_ID)?;
        let games_secs = t.elapsed().as_secs_f64();
        let mut modelled = games.clone();
        if let Some(before) = &previous_games {
            modelled.vstack_mut(before)?;
        }
        let t = Instant::now();
        let odds = silver::odds(bronze_odds.clone().lazy(), modelled.lazy(), RUN_ID)?;
        let odds_secs = t.elapsed().as_secs_f64();
        silver_games_secs += games_secs;
        report.comparable.silver_odds_secs += odds_secs;
        report.silver.seconds += games_secs + odds_secs;

        if let Some(export) = export.as_mut() {
            let t = Instant::now();
            export.day(&bronze_odds, &bronze_games)?;
            report.export_secs += t.elapsed().as_secs_f64();
        }
        silver_sums.add(&odds)?;
        if project {
            // The gold tasks' scan of the events, one day at a time.
            let t = Instant::now();
            let day_events = event_games::events(odds.clone().lazy()).collect()?;
            gold_events_secs += t.elapsed().as_secs_f64();
            append(&mut odds_events, day_events)?;
            let day_map = odds.select(["sport", "sports_date", "event_id", "game_id"])?;
            let day_map = day_map
                .lazy()
                .unique_stable(None, UniqueKeepStrategy::First)
                .collect()?;
            append(&mut silver_maps, day_map)?;
        }
        append(
            &mut silver_odds,
            odds.select(history_columns.iter().copied())?,
        )?;
        previous_games = Some(games.clone());
        append(&mut silver_games, games)?;
        append(&mut silver_periods, periods)?;
    }
    report.silver_games_secs = silver_games_secs;
    report.generate_secs = generate_secs;
    report.peak_rss_after_silver_bytes = peak_rss();
    report.rss_before_gold_bytes = rss();
    report.silver_history_bytes = silver_odds
        .as_ref()
        .map_or(0, |df| df.estimated_size() as u64);

    // silver → gold over the whole silver history, as `gold_marts_nightly`
    // does (gold maps the odds events to games again, over every game).
    let t = Instant::now();
    let odds_events = match odds_events {
        Some(parts) => Some(event_games::events(parts.lazy()).collect()?),
        None => None,
    };
    gold_events_secs += t.elapsed().as_secs_f64();
    report.gold_events_secs = gold_events_secs;
    let inputs = SilverInputs {
        games: silver_games.unwrap_or_default(),
        game_periods: silver_periods.unwrap_or_default(),
        odds: silver_odds.unwrap_or_default(),
        odds_events,
        ..SilverInputs::default()
    };
    report.silver_odds_rows = silver_sums.rows;
    report.silver_odds_mapped = silver_sums.mapped;
    report.silver_games_rows = inputs.games.height();
    report.silver_periods_rows = inputs.game_periods.height();
    let t = Instant::now();
    let tables = gold::build_all(&inputs, &pricing::Rules::default(), RUN_ID)?;
    report.gold.seconds = t.elapsed().as_secs_f64() + gold_events_secs;
    report.gold_tables = tables
        .iter()
        .map(|(def, df)| GoldTable {
            table: def.name,
            rows: df.height(),
        })
        .collect();
    drop(tables);
    report.peak_rss_bytes = peak_rss();

    report.bronze.rows_in = report.bronze_odds_rows + report.bronze_games_rows;
    report.bronze.rows_out = report.bronze.rows_in;
    let rows = report.bronze.rows_out;
    report.bronze.finish(rows);
    report.silver.rows_in = report.bronze.rows_out;
    report.silver.rows_out =
        report.silver_odds_rows + report.silver_games_rows + report.silver_periods_rows;
    let rows = report.silver.rows_in;
    report.silver.finish(rows);
    report.gold.rows_in = report.silver.rows_out;
    report.gold.rows_out = report.gold_tables.iter().map(|g| g.rows).sum();
    let rows = report.gold.rows_in;
    report.gold.finish(rows);
    report.total_secs = report.bronze.seconds + report.silver.seconds + report.gold.seconds;

    // Gold's map, for the mapped share (outside the figures above).
    let events = match &inputs.odds_events {
        Some(events) => events.clone(),
        None => event_games::events(inputs.odds.clone().lazy()).collect()?,
    };
    let map = event_games::event_games(events.lazy(), inputs.games.clone().lazy())?.collect()?;
    report.odds_events = map.height();
    report.odds_events_mapped = map.column("game_id")?.len() - map.column("game_id")?.null_count();
    report.gold_odds_mapped = mapped_rows(&inputs.odds, &map)?;
    drop(map);

    // The comparable part on our side: each mart on its own from silver as
    // silver mapped it, as each DuckDB statement is (outside the layer
    // figures above; the DuckDB script maps events like silver does).
    report.notes.push(
        "the comparable part maps events as silver did, to the games of each night, as the \
         DuckDB script does; the gold layer above maps them over the whole season"
            .to_owned(),
    );
    let silver_mapped = match silver_maps {
        Some(maps) => with_silver_games(inputs.odds.clone(), maps)?,
        None => inputs.odds.clone(),
    };
    let t = Instant::now();
    let efficiency = gold::market_efficiency(silver_mapped.clone().lazy(), RUN_ID)?;
    report.comparable.market_efficiency_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let movement = gold::odds_movement(silver_mapped.clone().lazy(), RUN_ID)?;
    report.comparable.odds_movement_secs = t.elapsed().as_secs_f64();
    report.comparable.total_secs = report.comparable.silver_odds_secs
        + report.comparable.market_efficiency_secs
        + report.comparable.odds_movement_secs;
    report.comparable.checks = json!({
        "silver_odds": silver_sums.checks(),
        "market_efficiency": efficiency_checks(&efficiency)?,
        "odds_movement": movement_checks(&movement)?,
    });
    drop((inputs, silver_mapped, efficiency, movement));

    if let Some(export) = export {
        let t = Instant::now();
        let dir = export.close()?;
        report.export_secs += t.elapsed().as_secs_f64();
        match run_duckdb(&dir, threads) {
            Ok(v) => report.duckdb = Some(v),
            Err(e) => report.duckdb_skipped = Some(format!("{e:#}")),
        }
    }
    if let Some(lake) = spark_lake {
        match super::spark::run(lake, &report.sports, report.bronze_odds_rows) {
            Ok(v) => report.spark = Some(v),
            Err(e) => report.spark_skipped = Some(format!("{e:#}")),
        }
    }
    drop(export_dir);
    Ok(report)
}

/// Sum of a column as f64 (nulls ignored).
fn sum(df: &DataFrame, name: &str) -> Result<f64> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    Ok(c.f64()?.sum().unwrap_or(0.0))
}

/// Non-null values of a column.
fn count(df: &DataFrame, name: &str) -> Result<usize> {
    let c = df.column(name)?;
    Ok(c.len() - c.null_count())
}

// The checks below are computed identically by scripts/bench_duckdb.py, so
// the two engines are shown to have built the same tables.

fn efficiency_checks(df: &DataFrame) -> Result<Value> {
    Ok(json!({
        "rows": df.height(),
        "snapshots": sum(df, "snapshots")?,
        "updates": sum(df, "updates")?,
        "favourite_flips": sum(df, "favourite_flips")?,
        "avg_vig_pct": sum(df, "avg_vig_pct")?,
        "closing_favourite": count(df, "closing_favourite")?,
    }))
}

fn movement_checks(df: &DataFrame) -> Result<Value> {
    Ok(json!({
        "rows": df.height(),
        "pre_game_snapshots": sum(df, "pre_game_snapshots")?,
        "closing_time": count(df, "closing_time")?,
        "movement_prob": sum(df, "movement_prob")?,
        "volatility": sum(df, "volatility")?,
        "biggest_move_time": count(df, "biggest_move_time")?,
    }))
}

/// `$BETFLOW_PYTHON`, else the project's venv, else `python3`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("BETFLOW_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let venv = Path::new(&home).join(".cache/betflow-venv/bin/python");
        if venv.exists() {
            return venv;
        }
    }
    PathBuf::from("python3")
}

/// Exit status of the script when `import duckdb` fails.
const NO_DUCKDB: i32 = 3;

/// Runs the DuckDB side over the exported Parquet files; its JSON report.
fn run_duckdb(dir: &Path, threads: usize) -> Result<Value> {
    let script = dir.join("bench_duckdb.py");
    std::fs::write(&script, DUCKDB_SCRIPT)
        .with_context(|| format!("writing {}", script.display()))?;
    let python = python();
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .arg("--threads")
        .arg(threads.to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if out.status.code() == Some(NO_DUCKDB) {
        bail!(
            "{} cannot import duckdb; install it with `python3 -m venv ~/.cache/betflow-venv && \
             ~/.cache/betflow-venv/bin/pip install duckdb` (or point BETFLOW_PYTHON at a Python \
             that has it), or pass --compare none",
            python.display()
        );
    }
    if !out.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the DuckDB script printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Whether two check values agree: counts exactly, float sums to 1e-9
/// relative (the engines add in different orders).
fn agree(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

fn print_report(r: &Report) -> Result<()> {
    outln!(
        "season {} … {} ({} sports days), {}; odds snapshot every {} min{}; polars on {} thread(s)",
        r.season_from,
        r.season_to,
        r.sports_days,
        r.sports.join("/"),
        r.snapshot_minutes,
        if r.snapshot_minutes_chosen {
            format!(
                " (chosen for ≥ {} odds rows; estimate {})",
                thousands(r.odds_rows_wanted),
                thousands(r.odds_rows_estimated)
            )
        } else {
            String::new()
        },
        r.threads
    );
    outln!(
        "setup (not timed below): generated {} games and {} odds rows in {} raw objects ({:.0} MB of JSON) in {:.1} s",
        thousands(r.games),
        thousands(r.bronze_odds_rows),
        thousands(r.raw_objects),
        r.raw_bytes as f64 / 1e6,
        r.generate_secs
    );
    outln!(
        "{:<16} {:>14} {:>14} {:>9} {:>12}",
        "layer",
        "rows in",
        "rows out",
        "seconds",
        "rows/s"
    );
    let gold_note = format!("rows in/s; {} tables at once", r.gold_tables.len());
    let bronze_note = format!(
        "rows out/s; per sports day, its raw objects on {} thread(s)",
        r.bronze_threads
    );
    for (name, l, note) in [
        ("raw → bronze", &r.bronze, bronze_note.as_str()),
        ("bronze → silver", &r.silver, "rows in/s; per sports day"),
        ("silver → gold", &r.gold, gold_note.as_str()),
    ] {
        outln!(
            "{:<16} {:>14} {:>14} {:>9.2} {:>12}  ({note})",
            name,
            thousands(l.rows_in),
            thousands(l.rows_out),
            l.seconds,
            thousands(l.rows_per_sec as usize)
        );
    }
    outln!(
        "{:<16} {:>14} {:>14} {:>9.2}  (target < 60 s: {})",
        "total",
        "",
        "",
        r.total_secs,
        if r.total_secs < 60.0 { "met" } else { "missed" }
    );
    outln!(
        "peak RSS {:.2} GiB (target < 4 GiB: {}); through silver {:.2} GiB, {:.2} GiB resident with the silver history ({:.2} GiB of frames) before gold",
        gib(r.peak_rss_bytes),
        if r.peak_rss_bytes < 4 << 30 {
            "met"
        } else {
            "missed"
        },
        gib(r.peak_rss_after_silver_bytes),
        gib(r.rss_before_gold_bytes),
        gib(r.silver_history_bytes)
    );
    let share = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    outln!(
        "bronze: {} odds + {} games; silver: {} odds ({} mapped to a game by silver, {:.0} %: games of their night only), {} games, {} periods",
        thousands(r.bronze_odds_rows),
        thousands(r.bronze_games_rows),
        thousands(r.silver_odds_rows),
        thousands(r.silver_odds_mapped),
        share(r.silver_odds_mapped, r.silver_odds_rows),
        thousands(r.silver_games_rows),
        thousands(r.silver_periods_rows)
    );
    outln!(
        "gold maps {} odds rows to a game ({:.1} %): {} of {} events ({:.1} %)",
        thousands(r.gold_odds_mapped),
        share(r.gold_odds_mapped, r.silver_odds_rows),
        thousands(r.odds_events_mapped),
        thousands(r.odds_events),
        share(r.odds_events_mapped, r.odds_events)
    );
    outln!(
        "silver odds history for gold: {} of {} columns ({})",
        r.silver_history_columns,
        silver_tables::ODDS.columns.len(),
        if r.silver_history_columns < silver_tables::ODDS.columns.len() {
            format!(
                "the ones gold reads, as its tasks scan them; the events reduced apart in {:.2} s of gold's; --silver-columns all for every one",
                r.gold_events_secs
            )
        } else {
            "every one, as gold read them before scanning only its own".to_owned()
        }
    );
    outln!(
        "gold rows: {}",
        r.gold_tables
            .iter()
            .map(|g| format!("{} {}", g.table, thousands(g.rows)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let c = &r.comparable;
    outln!(
        "comparable part (silver odds per day + gold market_efficiency + odds_movement, each mart from silver):"
    );
    outln!(
        "  betflow/polars {:>7.2} s  (silver odds {:.2} + market_efficiency {:.2} + odds_movement {:.2})",
        c.total_secs,
        c.silver_odds_secs,
        c.market_efficiency_secs,
        c.odds_movement_secs
    );
    if let Some(reason) = &r.duckdb_skipped {
        outln!("  duckdb: skipped: {reason}");
    }
    if let Some(d) = &r.duckdb {
        let secs = |k: &str| {
            d.pointer(&format!("/steps/{k}/seconds"))
                .and_then(Value::as_f64)
        };
        let total = d
            .get("total_secs")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        outln!(
            "  duckdb {} {:>7.2} s  (silver odds {:.2} + market_efficiency {:.2} + odds_movement {:.2}; {} threads, whole season per statement, peak RSS {:.2} GiB, load {:.1} s not timed)",
            d.get("version").and_then(Value::as_str).unwrap_or("?"),
            total,
            secs("silver_odds").unwrap_or(f64::NAN),
            secs("market_efficiency").unwrap_or(f64::NAN),
            secs("odds_movement").unwrap_or(f64::NAN),
            d.get("threads").and_then(Value::as_u64).unwrap_or(0),
            gib(d.get("peak_rss_bytes").and_then(Value::as_u64).unwrap_or(0)),
            d.get("load_secs").and_then(Value::as_f64).unwrap_or(f64::NAN)
        );
        let ratio = total / c.total_secs;
        outln!(
            "  ratio duckdb ÷ betflow = {ratio:.2} ({})",
            if ratio >= 1.0 {
                format!("betflow {ratio:.2}× faster")
            } else {
                format!("DuckDB {:.2}× faster", 1.0 / ratio)
            }
        );
        let mut disagreements = Vec::new();
        let mut compared = 0;
        if let (Some(ours), Some(theirs)) = (c.checks.as_object(), d.get("checks")) {
            for (table, fields) in ours {
                for (field, v) in fields.as_object().into_iter().flatten() {
                    compared += 1;
                    let other = theirs.get(table).and_then(|t| t.get(field));
                    if !other.is_some_and(|o| agree(v, o)) {
                        disagreements.push(format!(
                            "{table}.{field}: betflow {v}, duckdb {}",
                            other.map_or("missing".to_owned(), Value::to_string)
                        ));
                    }
                }
            }
        }
        if disagreements.is_empty() {
            outln!("  outputs agree on all {compared} checks (row counts, flag counts, sums)");
        } else {
            outln!("  outputs DISAGREE: {}", disagreements.join("; "));
        }
    }
    print_spark(r)?;
    outln!(
        "export of the inputs for the comparison: {:.1} s (not timed above)",
        r.export_secs
    );
    for note in &r.notes {
        outln!("note: {note}");
    }
    Ok(())
}

/// The Spark side of `--compare spark`, beside polars' bronze and silver.
fn print_spark(r: &Report) -> Result<()> {
    if let Some(reason) = &r.spark_skipped {
        outln!("spark: skipped: {reason}");
    }
    let Some(s) = &r.spark else {
        return Ok(());
    };
    let f = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    outln!(
        "spark ({}), whole season per run: bronze {:.1} s, silver {:.1} s (each run's JVM and session start included); polars day by day: bronze {:.1} s, silver {:.1} s",
        s.get("master").and_then(Value::as_str).unwrap_or("?"),
        f("bronze_secs"),
        f("silver_secs"),
        r.bronze.seconds,
        r.silver.seconds
    );
    for run in s
        .get("runs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        outln!(
            "  {:<13} {:>7.1} s  {}",
            run.get("job").and_then(Value::as_str).unwrap_or("?"),
            run.get("seconds")
                .and_then(Value::as_f64)
                .unwrap_or(f64::NAN),
            run.get("rows").map(Value::to_string).unwrap_or_default()
        );
    }
    outln!(
        "  bronze.odds rows: spark {}, polars {} ({})",
        thousands(s.get("odds_rows").and_then(Value::as_u64).unwrap_or(0) as usize),
        thousands(r.bronze_odds_rows),
        if s.get("odds_rows_agree") == Some(&Value::Bool(true)) {
            "agree"
        } else {
            "DISAGREE"
        }
    );
    outln!(
        "Glue cost model (6 runs a night, 2 × G.1X, 1-minute minimum, ${}/DPU-hour):",
        f("usd_per_dpu_hour")
    );
    for c in s
        .get("glue_cost")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let g = |k: &str| c.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        outln!(
            "  {:>4}× season: {:>12} odds rows a night, games/odds runs {:.0} s, {:.3} DPU-hours (${:.2}) a night, ${:.0} a season",
            g("scale"),
            thousands(g("odds_rows_per_night") as usize),
            g("games_odds_run_secs"),
            g("dpu_hours_per_night"),
            g("usd_per_night"),
            g("usd_per_season")
        );
    }
    Ok(())
}
