//! `betflow up` and `betflow scheduler`: the long-running processes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use orchestrator::cpus::{EngineCpus, Keep, Placement};
use services::database::Database;

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot watch SIGTERM: {e}");
                    let _ = tokio::signal::ctrl_c().await;
                    t.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("shutting down: finishing running tasks (Ctrl-C again to force)");
        t.cancel();
        // A second signal stops at once; unfinished tries go back to the queue via zombie detection.
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
    token
}

pub async fn up(settings: &Settings, host: std::net::IpAddr, port: u16) -> Result<ExitCode> {
    let home: &Path = &settings.home;
    let placement = place_this_process(settings, true)?;
    let broker = services::broker::EmbeddedBroker::start_or_provision(
        home,
        services::broker::BrokerLog::Durable,
    )?;
    let brokers: Option<String> = broker.as_ref().map(|b| b.bootstrap().to_owned());
    let bag = super::dag_bag_with_brokers(settings, brokers.as_deref())?;
    let mut config = settings.engine_config();
    // The grace is the whole stop's: the engine gets it less what closing
    // the web server, the pools and the embedded cluster takes.
    let grace: std::time::Duration = config.shutdown_grace;
    config.shutdown_grace = grace.saturating_sub(UP_STOP_RESERVE.min(grace / 4));
    let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
    config.cpus = place_engine(settings, &db, placement)?;
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}; pick another with --port"))?;
    let shutdown = shutdown_on_signals();
    // The bound address, so `--port 0` (any free port) says which it got.
    let addr = listener.local_addr().context("the web server's address")?;
    outln!("BetFlow is up: http://{addr}");
    outln!("  markets: http://{addr}/markets   analytics: http://{addr}/analytics");
    outln!(
        "  DAGs: http://{addr}/dags   streams: http://{addr}/streams   API: http://{addr}/api/v2"
    );
    outln!(
        "metadata database: {}",
        orchestrator::store::mask_password(&db.url)
    );
    if db.is_embedded() {
        outln!("home: {}", home.display());
    }
    say_where_the_engine_runs(settings, &config)?;
    match &broker {
        Some(services::broker::Broker::Provisioning { bootstrap, .. }) => {
            outln!("Kafka broker (embedded tansu): installing, then listening on {bootstrap}")
        }
        Some(b) => match b.log_file() {
            Some(log) => outln!(
                "Kafka broker (embedded tansu, log in {}): {}",
                log.display(),
                b.bootstrap()
            ),
            None => outln!(
                "Kafka broker (embedded tansu, in memory): {}",
                b.bootstrap()
            ),
        },
        None => {}
    }
    outln!("press Ctrl-C to stop");
    // From here a thread of its own keeps the broker running: started again
    // whenever it exits, stopped when `up` returns.
    let _broker_watch = broker.map(services::broker::Broker::watch).transpose()?;
    if let Some(password) = web::auth::ensure_admin(&db.pool, home).await? {
        outln!("created user `admin` with password {password}");
        outln!(
            "(shown once; also saved to {} with mode 0600)",
            home.join("admin-password").display()
        );
    }
    let pipelines = super::pipeline_settings(settings, brokers.as_deref())?;
    let web_pool = db.web_pool().await?;
    let state = web::AppState::new(
        orchestrator::Store::new(web_pool.clone()),
        web_pool.clone(),
        bag.clone(),
    )
    .with_sports(::dags::SPORTS.iter().map(|s| s.key))
    .with_rules(pipelines.rules.clone())
    .with_kafka(pipelines.live.kafka.as_ref().map(|k| k.brokers.as_str()))
    .with_config(exposed_config(settings, &pipelines))
    .with_trusted_proxies(settings.trusted_proxies.clone());
    let mut web = tokio::spawn(web::serve(listener, state, shutdown.clone()));
    run_supervised(&db, bag, config, Runtime::Dedicated, shutdown.clone()).await?;
    shutdown.cancel();
    // Responses still open (a slow client, a stream) are cut rather than
    // holding the stop past its grace.
    match tokio::time::timeout(WEB_STOP_WAIT, &mut web).await {
        Ok(served) => served.context("web server task")??,
        Err(_) => {
            tracing::warn!("connections still open {WEB_STOP_WAIT:?} after shutdown; closed");
            web.abort();
        }
    }
    let _ = tokio::time::timeout(WEB_STOP_WAIT, web_pool.close()).await;
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Of `up`'s shutdown grace, what is kept for closing the web server, the
/// pools and the embedded cluster after the engine stopped (at most a
/// quarter of the grace).
const UP_STOP_RESERVE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long in-flight responses may take to end once the engine stopped.
const WEB_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn scheduler(settings: &Settings) -> Result<ExitCode> {
    let placement = place_this_process(settings, false)?;
    let bag = super::dag_bag(settings)?;
    let mut config = settings.engine_config();
    let db = Database::open(&settings.home, &bag, settings.paused_at_creation).await?;
    config.cpus = place_engine(settings, &db, placement)?;
    let shutdown = shutdown_on_signals();
    eprintln!(
        "scheduler running on {}",
        orchestrator::store::mask_password(&db.url)
    );
    say_where_the_engine_runs(settings, &config)?;
    // Kept cores are the engine's own runtime's to hold.
    let runtime = match config.cpus {
        Some(_) => Runtime::Dedicated,
        None => Runtime::Shared,
    };
    run_supervised(&db, bag, config, runtime, shutdown).await?;
    db.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Where `BETFLOW_ENGINE_CPUS` keeps the engine (`auto` as for a process
/// that `serves_pages`), every thread of this process moved off its CPUs:
/// before the broker and the embedded cluster start, so what this process
/// spawns starts on the other CPUs too. A list that cannot be used is a
/// usage error, before anything starts; under `auto`, a host that will not
/// place threads runs the engine on every CPU, with a warning.
fn place_this_process(settings: &Settings, serves_pages: bool) -> Result<Option<Placement>> {
    let Some(placed) = settings.placement(serves_pages).map_err(super::usage)? else {
        return Ok(None);
    };
    match placed.rest.pin_this_process() {
        Ok(()) => Ok(Some(placed)),
        Err(e) if settings.engine_cpus == Keep::Auto => {
            tracing::warn!("{e}; the engine shares every CPU (BETFLOW_ENGINE_CPUS)");
            if let Err(e) = placed.all().pin_this_process() {
                tracing::warn!("{e}");
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The engine's CPUs, and the embedded cluster (when `db` is one) moved
/// off them, had it been running before this process. Under `auto`, a
/// cluster that cannot be moved stays where it is, with a warning.
fn place_engine(
    settings: &Settings,
    db: &Database,
    placement: Option<Placement>,
) -> Result<Option<EngineCpus>> {
    let Some(placement) = placement else {
        return Ok(None);
    };
    match db.place_cluster(&placement.rest) {
        Err(e) if settings.engine_cpus == Keep::Auto => tracing::warn!("{e:#}"),
        placed => placed?,
    }
    Ok(Some(EngineCpus {
        placement,
        backends: db.is_embedded(),
    }))
}

fn say_where_the_engine_runs(
    settings: &Settings,
    config: &orchestrator::EngineConfig,
) -> Result<()> {
    if let Some(placed) = &config.cpus {
        outln!(
            "engine on CPUs {}{}; the rest on CPUs {}{}",
            placed.placement.engine,
            if placed.backends {
                " with its Postgres backends"
            } else {
                " (its backends are the external database's)"
            },
            placed.placement.rest,
            if settings.engine_cpus == Keep::Auto {
                " (BETFLOW_ENGINE_CPUS=none shares every CPU)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Where the engine runs: on the process's runtime (`scheduler`, which
/// serves no pages), or on a thread, runtime and pool of its own (`up`:
/// page and API load must not delay scheduling, see
/// `orchestrator::engine::spawn_dedicated`).
enum Runtime {
    Shared,
    Dedicated,
}

/// Connections of the engine's own pool under `up`, as the shared one has.
const ENGINE_POOL_CONNECTIONS: u32 = 20;

/// How often a daemon checks that the embedded cluster it started runs.
const SUPERVISE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The engine until `shutdown`, with the embedded cluster (if this process
/// started it) restarted whenever it dies.
async fn run_supervised(
    db: &Database,
    bag: orchestrator::DagBag,
    config: orchestrator::EngineConfig,
    runtime: Runtime,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let supervising = shutdown.child_token();
    let engine = async {
        let ran: Result<()> = async {
            match runtime {
                Runtime::Shared => {
                    orchestrator::engine::run(db.store.clone(), bag, config, shutdown.clone())
                        .await
                        .map_err(Into::into)
                }
                Runtime::Dedicated => {
                    let thread = orchestrator::engine::spawn_dedicated(
                        db.url.clone(),
                        ENGINE_POOL_CONNECTIONS,
                        bag,
                        config,
                        shutdown.clone(),
                    )
                    .context("starting the engine's thread")?;
                    match tokio::task::spawn_blocking(move || thread.join()).await {
                        Ok(Ok(ran)) => ran.map_err(Into::into),
                        Ok(Err(_)) => Err(anyhow::anyhow!("the engine's thread panicked")),
                        Err(e) => Err(e.into()),
                    }
                }
            }
        }
        .await;
        // Whatever ended the engine (shutdown, an error), supervision ends too.
        supervising.cancel();
        ran
    };
    let (ran, ()) = tokio::join!(engine, db.supervise(SUPERVISE_EVERY, supervising.clone()));
    ran
}

/// What `/api/v2/config` shows: the effective settings, and the variables
/// BetFlow reads as they were set (each masked by `ConfigEntry::new`).
fn exposed_config(
    settings: &Settings,
    pipelines: &::dags::settings::Settings,
) -> Vec<web::api::config::ConfigEntry> {
    use web::api::config::ConfigEntry;
    let lake = match &pipelines.lake.s3 {
        Some(s3) => format!("s3://{}", s3.bucket),
        None => pipelines.lake.local_dir.display().to_string(),
    };
    let mut out = vec![
        ConfigEntry::new("betflow", "version", env!("CARGO_PKG_VERSION")),
        ConfigEntry::new("betflow", "home", &settings.home.display().to_string()),
        ConfigEntry::new("betflow", "parallelism", &settings.parallelism.to_string()),
        ConfigEntry::new(
            "betflow",
            "transform_engine",
            &format!("{:?}", pipelines.engine).to_lowercase(),
        ),
        ConfigEntry::new("betflow", "lake", &lake),
        ConfigEntry::new(
            "betflow",
            "kafka_brokers",
            pipelines
                .live
                .kafka
                .as_ref()
                .map_or("", |k| k.brokers.as_str()),
        ),
    ];
    const READ: [&str; 6] = [
        "BETFLOW_",
        "KAFKA_",
        "AWS_",
        "DATABASE_URL",
        "ODDS_API_KEY",
        "OPENWEATHER_API_KEY",
    ];
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| READ.iter().any(|p| k.starts_with(p)))
        .collect();
    vars.sort();
    out.extend(
        vars.iter()
            .map(|(k, v)| ConfigEntry::new("environment", k, v)),
    );
    out
}
