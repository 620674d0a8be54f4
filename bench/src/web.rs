//! `betflow bench web`: seed many DAGs and runs into a benchmark database,
//! serve the real web app, and load its heaviest pages with wrk. Reports
//! wrk's latency percentiles (on loopback, close to server time).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use orchestrator::{task_fn, Dag, DagBag, Node, TaskSpec};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use services::database::Database;

/// Tasks of the DAG whose grid is measured; it holds a tenth of the runs
/// (10,000 at the default 100,000), the grid shows the latest 25.
const GRID_TASKS: usize = 50;
const GRID_RUNS: usize = 25;
const GRID_DAG: &str = "bench_web_grid";
/// Tasks of every other DAG: with the grid DAG's, 100,000 runs hold about
/// 1,040,000 task instances.
const CHAIN_TASKS: usize = 6;

fn chain_dag(id: &str, tasks: usize, tags: &[&str]) -> Result<Dag> {
    let mut b = Dag::builder(id)
        .schedule("@daily", "UTC")
        .tags(tags)
        .description("benchmark DAG");
    let nodes: Vec<Node> = (0..tasks)
        .map(|i| {
            b.task(TaskSpec::new(
                format!("task_{i:02}"),
                task_fn(|_| async { Ok(Value::Null) }),
            ))
        })
        .collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    b.chain(&refs);
    Ok(b.build()?)
}

/// Odds events for the markets page: 2,000 over 20 sports days (100 a
/// day) from 2024-10-01, each with 17 bookmakers × (moneyline, spread,
/// total) × 2 sides in `serving.odds_latest`: 204,000 rows.
const BENCH_DAY: &str = "2024-10-01";
const SEED_EVENTS: &str = "
    INSERT INTO serving.odds_events (event_id, sport, home_team, away_team, commence_time, event_time)
    SELECT 'bench-' || i, (ARRAY['nfl', 'nba', 'nhl', 'ncaaf'])[1 + i % 4], 'Home team ' || i,
           'Away team ' || i,
           timestamptz '2024-10-01 16:00+00' + (i / 100) * interval '1 day' + (i % 100) * interval '3 minutes',
           now()
    FROM generate_series(0, 1999) AS i
    ON CONFLICT DO NOTHING";
const SEED_PRICES: &str = "
    INSERT INTO serving.odds_latest (sport, event_id, market, bookmaker, outcome, point, price_decimal,
        price_american, implied_probability, no_vig_probability, overround, open_decimal, open_point,
        open_time, event_time, ingest_time)
    SELECT e.sport, e.event_id, m.market, 'book_' || b, o.outcome,
           CASE m.market WHEN 'h2h' THEN NULL WHEN 'totals' THEN 44.5
                ELSE CASE o.outcome WHEN 'home' THEN -3.5 ELSE 3.5 END END,
           p.price, NULL, 1 / p.price, 0.5, 0.045, p.price + 0.05,
           CASE m.market WHEN 'h2h' THEN NULL WHEN 'totals' THEN 44.5
                ELSE CASE o.outcome WHEN 'home' THEN -3.5 ELSE 3.5 END END,
           e.commence_time - interval '1 day', now(), now()
    FROM serving.odds_events e,
         (VALUES ('h2h', 'home'), ('h2h', 'away'), ('spreads', 'home'), ('spreads', 'away'),
                 ('totals', 'over'), ('totals', 'under')) AS o(market_key, outcome),
         LATERAL (SELECT o.market_key AS market) m,
         generate_series(1, 17) AS b,
         LATERAL (SELECT 1.80 + ((hashtext(e.event_id || b || o.outcome) & 255) / 1275.0) AS price) p
    WHERE e.event_id LIKE 'bench-%'
    ON CONFLICT DO NOTHING";
/// A season's worth of the gold marts the analytics page reads.
const SEED_GOLD: &str = "
    INSERT INTO serving.gold_market_efficiency (sport, game_id, bookmaker, market, snapshots,
        avg_vig_pct, min_vig_pct, max_vig_pct, efficiency_rating, favourite_flips, updates,
        first_snapshot, last_snapshot, run_id)
    SELECT (ARRAY['nfl', 'nba', 'nhl', 'ncaaf'])[1 + g % 4], 'bench:' || g, 'book_' || b, m, 24,
           4 + (g % 7) / 7.0, 3.5, 6.5, 'efficient', 0, 6,
           timestamptz '2024-09-01' + (g % 120) * interval '1 day',
           timestamptz '2024-09-01' + (g % 120) * interval '1 day' + interval '6 hours', 'bench'
    FROM generate_series(0, 1199) AS g, generate_series(1, 17) AS b,
         unnest(ARRAY['h2h', 'spreads', 'totals']) AS m;
    INSERT INTO serving.gold_closing_line_value (sport, game_id, bookmaker, market, outcome,
        opening_time, opening_decimal, opening_point, consensus_bookmakers, close_fair_prob,
        close_fair_decimal, clv, run_id)
    SELECT (ARRAY['nfl', 'nba', 'nhl', 'ncaaf'])[1 + g % 4], 'bench:' || g, 'book_' || b, 'h2h', o,
           timestamptz '2024-09-01' + (g % 120) * interval '1 day', 1.9, NULL, 17, 0.5, 2.0,
           ((hashtext(g::text || '-' || b::text || o) & 255) - 128) / 4000.0, 'bench'
    FROM generate_series(0, 1199) AS g, generate_series(1, 17) AS b, unnest(ARRAY['home', 'away']) AS o";

/// `$2` runs of each DAG in `$1`, one a day, newest logical dates last,
/// most finished.
const SEED_RUNS: &str = "
    INSERT INTO dag_runs (dag_id, run_id, logical_date, data_interval_start, data_interval_end, run_type, state,
                          queued_at, start_date, end_date)
    SELECT d.dag_id, 'scheduled__' || n, ts, ts, ts + interval '1 day', 'scheduled',
           (ARRAY['success', 'success', 'success', 'failed'])[1 + n % 4],
           ts + interval '1 day', ts + interval '1 day', ts + interval '1 day 10 minutes'
    FROM unnest($1::text[]) AS d(dag_id),
         generate_series(0, $2 - 1) AS n,
         LATERAL (SELECT timestamptz '2000-01-01' + (n * interval '1 day') AS ts) t
    ON CONFLICT DO NOTHING";

/// One task instance per task in `$2` for every run of the DAGs in `$1`,
/// in the run's state.
const SEED_TIS: &str = "
    INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number, start_date, end_date, duration)
    SELECT r.dag_id, r.run_id, t.task_id, r.state, 1, r.start_date, r.end_date, 600
    FROM dag_runs r, unnest($2::text[]) AS t(task_id)
    WHERE r.dag_id = ANY($1)
    ON CONFLICT DO NOTHING";

/// The mixed phase's settings (`--mixed-seconds`, `--mixed-clients`,
/// `--mixed-paths`, `--mixed-async-commit`).
pub struct Mixed {
    pub seconds: u64,
    pub clients: usize,
    /// What the load requests; the default pages when empty.
    pub paths: Vec<String>,
    /// The engine's sessions commit with `synchronous_commit = off`.
    pub async_commit: bool,
    pub engine: orchestrator::EngineConfig,
}

pub async fn run(
    home: &Path,
    dags: usize,
    runs: usize,
    seconds: u64,
    connections: usize,
    mixed: Mixed,
) -> Result<ExitCode> {
    if which("wrk").is_none() {
        bail!(
            "wrk is not installed; install it (Debian/Ubuntu: apt-get install wrk) and run again"
        );
    }
    if let Some(bad) = mixed.paths.iter().find(|p| !p.starts_with('/')) {
        bail!("--mixed-paths takes paths on the server, each starting with `/`; got `{bad}`");
    }
    let dags = dags.max(1);
    let mut bag = DagBag::new();
    for i in 0..dags.saturating_sub(1) {
        let tag = ["games", "odds", "weather", "gold"][i % 4];
        bag.add(chain_dag(
            &format!("bench_web_{i:03}"),
            CHAIN_TASKS,
            &["bench", tag],
        )?);
    }
    bag.add(chain_dag(GRID_DAG, GRID_TASKS, &["bench"])?);
    if mixed.seconds > 0 {
        bag.add(crate::scheduler::chain(
            crate::mixed::CHAIN_DAG,
            crate::mixed::CHAIN_TASKS,
        )?);
    }

    let bench_home = home.join("bench");
    std::fs::create_dir_all(&bench_home)
        .with_context(|| format!("creating {}", bench_home.display()))?;
    let db = Database::open_isolated(&bench_home, &bag).await?;
    // Placed as `betflow up` places its threads and the cluster
    // (`BETFLOW_ENGINE_CPUS`, `auto` by default): the pages are served on
    // the CPUs `up` leaves the web. wrk, which stands for clients
    // elsewhere, keeps every CPU.
    let wrk_cpus = match &mixed.engine.cpus {
        Some(placed) => {
            placed.placement.rest.pin_this_process()?;
            db.place_cluster(&placed.placement.rest)?;
            Some(placed.placement.all())
        }
        None => None,
    };
    let pool = db.pool.clone();
    let ids: Vec<String> = bag.dags().map(|d| d.id.clone()).collect();
    // A tenth of the runs are the grid DAG's; the others share the rest.
    let grid_runs = (runs / 10).max(GRID_RUNS) as i32;
    let chain_ids: Vec<String> = ids
        .iter()
        .filter(|id| id.starts_with("bench_web_") && *id != GRID_DAG)
        .cloned()
        .collect();
    let per_dag = (runs.saturating_sub(grid_runs as usize) / chain_ids.len().max(1)).max(1) as i32;
    eprintln!(
        "seeding {} DAGs with {per_dag} runs of {CHAIN_TASKS} tasks each, and {GRID_DAG} with {grid_runs} runs of {GRID_TASKS} tasks …",
        chain_ids.len()
    );
    sqlx::query("DELETE FROM dag_runs WHERE dag_id = ANY($1)")
        .bind(&ids)
        .execute(&pool)
        .await?;
    let task_ids = |n: usize| -> Vec<String> { (0..n).map(|i| format!("task_{i:02}")).collect() };
    for (dag_ids, runs, tasks) in [
        (chain_ids.clone(), per_dag, task_ids(CHAIN_TASKS)),
        (vec![GRID_DAG.to_owned()], grid_runs, task_ids(GRID_TASKS)),
    ] {
        sqlx::query(SEED_RUNS)
            .bind(&dag_ids)
            .bind(runs)
            .execute(&pool)
            .await?;
        sqlx::query(SEED_TIS)
            .bind(&dag_ids)
            .bind(&tasks)
            .execute(&pool)
            .await?;
    }
    eprintln!("seeding 2,000 odds events, 204,000 latest prices and a season of gold marts …");
    for table in [
        "odds_latest",
        "odds_events",
        "gold_market_efficiency",
        "gold_closing_line_value",
    ] {
        sqlx::query(&format!(
            "DELETE FROM serving.{table} WHERE {}",
            match table {
                "odds_latest" | "odds_events" => "event_id LIKE 'bench-%'",
                _ => "run_id = 'bench'",
            }
        ))
        .execute(&pool)
        .await?;
    }
    sqlx::query(SEED_EVENTS).execute(&pool).await?;
    sqlx::query(SEED_PRICES).execute(&pool).await?;
    sqlx::raw_sql(SEED_GOLD).execute(&pool).await?;
    // A long-lived database has been vacuumed by now: without it the
    // measurement would race autovacuum over the million fresh rows (and
    // the mixed run's idle figure would be taken while it works).
    sqlx::raw_sql("VACUUM (ANALYZE)").execute(&pool).await?;
    // Nor would the seed's dirty pages still be written out by a
    // checkpoint while the pages, or the idle chain's commits, are timed.
    if let Err(e) = sqlx::query("CHECKPOINT").execute(&pool).await {
        outln!("(no CHECKPOINT after seeding: {e}; figures may include its writes)");
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM dag_runs WHERE dag_id = ANY($1)")
        .bind(&ids)
        .fetch_one(&pool)
        .await?;
    let total_tis: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_instances WHERE dag_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&pool)
            .await?;

    let user = match web::auth::create_user(
        &pool,
        "bench",
        web::auth::Role::Viewer,
        &web::auth::random_hex(12),
    )
    .await
    {
        Ok(u) => u,
        Err(web::auth::AuthError::UserExists(_)) => {
            let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bench'")
                .fetch_one(&pool)
                .await?;
            web::auth::User {
                id,
                username: "bench".into(),
                role: web::auth::Role::Viewer,
            }
        }
        Err(e) => return Err(e.into()),
    };
    let (session, _) = web::auth::create_session(&pool, &user).await?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let token = CancellationToken::new();
    // As `betflow up` does: the web server on a pool of its own.
    let web_pool = db.web_pool().await?;
    let state = web::AppState::new(
        orchestrator::Store::new(web_pool.clone()),
        web_pool.clone(),
        bag.clone(),
    )
    .with_sports(dags::SPORTS.iter().map(|s| s.key));
    // wrk's `Cookie` header: the session under the name this server reads.
    let cookie = format!(
        "Cookie: {}={session}",
        web::auth::extract::session_cookie(state.secure_cookies)
    );
    let server = tokio::spawn(web::serve(listener, state.clone(), token.clone()));
    // The same pages without the markets board's half-second cache: what
    // one board costs when no other viewer of its day asked just before.
    let uncached_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let uncached_port = uncached_listener.local_addr()?.port();
    let uncached = tokio::spawn(web::serve(
        uncached_listener,
        state.with_board_cache(std::time::Duration::ZERO),
        token.clone(),
    ));

    outln!("web bench: {dags} DAGs, {total} runs, {total_tis} task instances; grid of {GRID_TASKS} tasks × the latest {GRID_RUNS} of {grid_runs} runs; wrk {seconds}s, {connections} connections");
    if let Some(placed) = &mixed.engine.cpus {
        outln!(
            "the web and the database on CPUs {}, CPUs {} kept for the engine, as `up` places them (BETFLOW_ENGINE_CPUS); wrk on any",
            placed.placement.rest,
            placed.placement.engine
        );
    }
    for (label, port, path, target) in [
        ("DAGs page", port, "/dags".to_owned(), "p99 < 100 ms"),
        ("grid", port, format!("/dags/{GRID_DAG}"), "p99 < 100 ms"),
        (
            "runs API",
            port,
            "/api/v2/dags/~/dagRuns?limit=50&order_by=-logical_date".to_owned(),
            "p99 < 100 ms",
        ),
        (
            "a DAG's runs API",
            port,
            format!("/api/v2/dags/{GRID_DAG}/dagRuns?limit=50&order_by=-logical_date"),
            "p99 < 100 ms",
        ),
        (
            "task inst. API",
            port,
            format!("/api/v2/dags/{GRID_DAG}/dagRuns/~/taskInstances?limit=50"),
            "none; counts 500,000",
        ),
        (
            "markets",
            port,
            format!("/markets/live?date={BENCH_DAY}"),
            "p99 < 50 ms",
        ),
        (
            "markets, uncached",
            uncached_port,
            format!("/markets/live?date={BENCH_DAY}"),
            "p99 < 50 ms",
        ),
        ("analytics", port, "/analytics".to_owned(), "p99 < 50 ms"),
    ] {
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut wrk = std::process::Command::new("wrk");
        wrk.args([
            "-t",
            "2",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
        ])
        .args(["-H", &cookie, &url]);
        let out = crate::mixed::spawn_load(wrk, wrk_cpus.clone())
            .await?
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pick = |key: &str| -> String {
            text.lines()
                .find(|l| l.trim_start().starts_with(key))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
                .unwrap_or_else(|| "?".into())
        };
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?");
        let non_2xx = text.lines().find(|l| l.contains("Non-2xx")).unwrap_or("");
        outln!(
            "{label:<17} {path:<32} p50 {:>9}  p90 {:>9}  p99 {:>9}  {rps:>8} req/s  (target {target}) {non_2xx}",
            pick("50%"),
            pick("90%"),
            pick("99%")
        );
    }
    if mixed.seconds > 0 {
        let paths: Vec<String> = if mixed.paths.is_empty() {
            vec![
                "/dags".to_owned(),
                format!("/dags/{GRID_DAG}"),
                "/api/v2/dags/~/dagRuns?limit=50".to_owned(),
                format!("/markets/live?date={BENCH_DAY}"),
            ]
        } else {
            mixed.paths.clone()
        };
        crate::mixed::run(&db, &bag, &mixed, port, &cookie, &paths, &bench_home).await?;
    }
    token.cancel();
    server.await??;
    uncached.await??;
    web_pool.close().await;
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

fn which(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}
