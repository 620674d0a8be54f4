//! Finding the metadata database the same way for every command:
//! `DATABASE_URL`, else the embedded cluster under the home directory
//! (attached to if `betflow up` runs, started on demand otherwise).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use orchestrator::cpus::Cpus;
use orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres, Health};
use orchestrator::store::write::SyncOptions;
use orchestrator::store::Migrations;
use orchestrator::{DagBag, Store};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Every crate's migrations, in the order they are applied: the engine's
/// metadata, the web's users, then the `serving` schema.
pub static MIGRATIONS: [&Migrations; 3] = [
    &orchestrator::store::migrations::ORCHESTRATOR,
    &web::MIGRATIONS,
    &dags::MIGRATIONS,
];

pub struct Database {
    pub store: Store,
    /// The same connections as the store's, for the tables other owners
    /// keep in this database (web's users and tokens, `serving`).
    pub pool: PgPool,
    pub url: String,
    /// Declared last so the pool is dropped before an owned cluster stops.
    /// Shared with [`Database::supervise`], which restarts it.
    embedded: Option<Arc<Mutex<EmbeddedPostgres>>>,
}

/// Connections of the web server's own pool ([`Database::web_pool`]): two
/// per worker thread of the runtime serving the web (`BETFLOW_WEB_THREADS`,
/// half the cores by default), at least 2 and at most 16. Each connection
/// is a backend that competes with the engine's for the same cores; beyond
/// that, a flood of page requests only queues inside Postgres instead of in
/// the pool, and every scheduling decision waits behind it. On 2 cores
/// under 200 clients (`betflow bench web --mixed-seconds 40`), a 1,000-task
/// chain's dispatch p99 was 4.7× idle with 2 web threads and 4 connections,
/// 3.2× with 1 thread and 4, and 2.6× with 1 thread and 2 (the pages then
/// served about 30 % fewer requests a second); with 16 connections it was
/// 17×.
pub fn web_pool_connections() -> u32 {
    let workers = tokio::runtime::Handle::try_current().map_or(2, |h| h.metrics().num_workers());
    u32::try_from(workers * 2).unwrap_or(u32::MAX).clamp(2, 16)
}

/// How long a page or API request waits for a connection before it
/// answers 503 (the database restarting or failing over).
pub const WEB_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Database {
    /// Connect, apply migrations and record the DAG definitions.
    pub async fn open(home: &Path, bag: &DagBag, paused_at_creation: bool) -> Result<Self> {
        let db = Self::connect(home).await?;
        db.store.migrate_all(&MIGRATIONS).await?;
        let opts = SyncOptions {
            mark_missing_stale: true,
            paused_at_creation,
        };
        db.store
            .sync_dags(bag, opts)
            .await
            .context("recording DAG definitions")?;
        Ok(db)
    }

    /// Like `open`, but leaves DAGs outside `bag` untouched (benchmarks).
    pub async fn open_isolated(home: &Path, bag: &DagBag) -> Result<Self> {
        let db = Self::connect(home).await?;
        db.store.migrate_all(&MIGRATIONS).await?;
        let opts = SyncOptions {
            mark_missing_stale: false,
            paused_at_creation: false,
        };
        db.store
            .sync_dags(bag, opts)
            .await
            .context("recording DAG definitions")?;
        Ok(db)
    }

    /// Connect without touching the schema (for `db status`, `db url`).
    pub async fn connect(home: &Path) -> Result<Self> {
        let (url, embedded) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => (url, None),
            _ => {
                let opts = EmbeddedOptions {
                    home: home.to_path_buf(),
                    durable: true,
                };
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&opts))
                    .await
                    .context("starting the embedded Postgres")??;
                (pg.url().to_owned(), Some(Arc::new(Mutex::new(pg))))
            }
        };
        let pool: PgPool = orchestrator::store::connect_pool(&url, 20).await?;
        Ok(Self {
            store: Store::new(pool.clone()),
            pool,
            url,
            embedded,
        })
    }

    /// A pool of its own for the web server, so page and API load waits
    /// for its own connections and never holds the engine's: with one
    /// shared pool, 200 busy clients held every connection and a 1,000-task
    /// chain's dispatch p99 went from 4.6 ms to 350 ms (`bench web
    /// --mixed-seconds`).
    pub async fn web_pool(&self) -> Result<PgPool> {
        Ok(orchestrator::store::connect_pool_waiting(
            &self.url,
            web_pool_connections(),
            WEB_ACQUIRE_TIMEOUT,
        )
        .await?)
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Runs the embedded cluster's processes on `cpus`: its postmaster, the
    /// servers it forked, and so every one it forks from now on (a backend
    /// the engine then places on its own CPUs excepted). Nothing to do with
    /// `DATABASE_URL`.
    pub fn place_cluster(&self, cpus: &Cpus) -> Result<()> {
        let Some(pg) = &self.embedded else {
            return Ok(());
        };
        let pid_file = {
            let pg = pg.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            pg.data_dir().join("postmaster.pid")
        };
        let text = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let pid: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("no postmaster pid in {}", pid_file.display()))?;
        cpus.pin_process_tree(pid, "the embedded Postgres")?;
        Ok(())
    }

    /// Stop an owned embedded cluster now (also happens on drop).
    pub async fn close(mut self) -> Result<()> {
        self.pool.close().await;
        if let Some(pg) = self.embedded.take() {
            tokio::task::spawn_blocking(move || {
                let mut pg = pg.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                pg.stop()
            })
            .await??;
        }
        Ok(())
    }

    /// The embedded cluster this process started has lost its postmaster.
    fn cluster_is_down(&self) -> bool {
        self.embedded.as_ref().is_some_and(|pg| {
            pg.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .is_down()
        })
    }

    /// Until `shutdown`, checks every `every` that the embedded cluster this
    /// process started still runs, and starts it again (same port, so the
    /// pool's URL stays right) when its postmaster is gone, spacing the
    /// restarts out after each failed start, and while it keeps dying soon
    /// after each start (up to a minute: [`crate::restarts`]), and saying
    /// why in the log.
    /// Connections in the pool fail meanwhile and reconnect after; the
    /// engine's tries survive as they do any database outage. Nothing to do
    /// with `DATABASE_URL` or a cluster another process owns.
    pub async fn supervise(&self, every: Duration, shutdown: CancellationToken) {
        let Some(pg) = self.embedded.clone() else {
            return;
        };
        let mut restarts = crate::restarts::Restarts::new(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(restarts.look_every()) => {}
            }
            // In a crash loop: seen dead now, started again once the
            // loop's spacing has passed.
            let hold = restarts.hold(std::time::Instant::now());
            if !hold.is_zero() && self.cluster_is_down() {
                tracing::warn!(
                    "the embedded PostgreSQL stopped again soon after its last start; \
                     starting it again in {}s",
                    hold.as_secs_f64().ceil()
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(hold) => {}
                }
            }
            let pg = pg.clone();
            let checked = tokio::task::spawn_blocking(move || {
                let mut pg = pg.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                pg.revive()
            })
            .await;
            let now = std::time::Instant::now();
            match checked {
                Ok(Ok(Health::Running)) => restarts.running(now),
                Ok(Ok(Health::Restarted { last_words })) => {
                    let looping = restarts.restarted(now);
                    let why = last_words.map_or_else(
                        || " (its log says nothing: killed from outside?)".to_owned(),
                        |line| format!("; its log's last words: {line}"),
                    );
                    tracing::warn!(
                        "the embedded PostgreSQL had stopped (its postmaster is gone){why}; \
                         started it again on the same port{}",
                        restarts.looping_note(looping)
                    );
                }
                Ok(Err(e)) => {
                    restarts.failed(now);
                    tracing::error!(
                        "the embedded PostgreSQL is down and did not start again: {e}; \
                         trying again in {}s",
                        restarts.wait().as_secs()
                    );
                }
                Err(e) => {
                    tracing::error!("the embedded PostgreSQL check panicked: {e}");
                }
            }
        }
    }
}
