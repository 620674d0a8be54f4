//! The metadata database: connection, migrations and the queries the CLI,
//! the web server and sensors run. The scheduler's and executor's own
//! statements live beside them in `scheduler.rs` and `executor.rs`; tasks'
//! data-quality results in `checks.rs`.

pub mod assets;
pub mod checks;
pub mod embedded;
pub mod migrations;
pub mod read;
pub mod write;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::cpus::Cpus;

pub use assets::{
    AssetDagRef, AssetEventFilter, AssetEventRow, AssetFilter, AssetRow, AssetSort, AssetTaskRef,
    LastAssetEvent, QueuedAssetEventRow, TriggeredRunRow,
};
pub use checks::{CheckResultRow, CheckSeverity, CheckTry, NewCheckResult};
pub use migrations::{MigrationStatus, Migrations};
pub use read::{AlertDeliveryRow, PoolRow, ProcessRow};
pub use read::{
    DagPageFilter, DagRow, DagSort, DagVersionRow, LogRow, RunFilter, RunPageFilter, RunRow,
    RunSort, RunStateRow, RunTaskStateRow, TaskInstanceDetailRow, TaskInstancePageFilter,
    TaskInstanceRow, TaskInstanceSort, TryHistoryRow, TryRow, XcomRow,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the metadata database at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the metadata database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A batch of tries failed to record; each try's caller gets the error.
    #[error("recording finished tries failed: {0}")]
    Batch(std::sync::Arc<StoreError>),
    #[error("the process's try recorder stopped before recording this try")]
    RecorderStopped,
}

/// The longest list a statement joins against as a prepared statement. A
/// longer one is planned with the list itself (`persistent(false)`): a
/// prepared plan never knows a list's length, and with statistics behind a
/// burst of new rows it nested-looped a fan-out's 10,000 ids against the
/// run's 10,000 instances (over 15 s instead of 0.3 s). Short lists keep
/// the prepared plan, which saves planning on every task of a chain.
pub(crate) const LONG_LIST: usize = 64;

/// The text of a statement bound to a list of `len` items, and whether to
/// prepare it (see `LONG_LIST`). sqlx looks a statement up in its
/// connection's cache by text before it looks at `persistent`, so a long
/// list's statement gets text of its own: with the same text it would run
/// the plan prepared for a short list on that connection (a 10,000-task
/// fan-out's queueing took 22 s so, 0.3 s planned with its list).
pub(crate) fn list_statement(sql: &'static str, len: usize) -> (Cow<'static, str>, bool) {
    if len <= LONG_LIST {
        (Cow::Borrowed(sql), true)
    } else {
        (
            Cow::Owned(format!("{sql}\n-- planned with its list")),
            false,
        )
    }
}

impl StoreError {
    /// The database could not be reached or dropped the connection: the
    /// same statement may pass once it is back (a restart, a failover).
    /// Errors the database itself answered with are not.
    pub fn is_connection(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Sql(e) => is_connection_error(e),
            StoreError::Batch(e) => e.is_connection(),
            StoreError::Migrate(_) | StoreError::RecorderStopped => false,
        }
    }
}

/// See [`StoreError::is_connection`]: the database could not be reached or
/// dropped the connection (class 08, or shutting down / starting up).
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03"))
}

/// A handle on the metadata database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Ok(Self::new(connect_pool(url, max_connections).await?))
    }

    /// The engine's own pool: its sessions named [`ENGINE_APPLICATION`]
    /// (unless `url` names them), and the backend of each placed on
    /// `backends` when given: the database is this host's and its
    /// processes are ours to place (the embedded cluster).
    pub async fn connect_engine(
        url: &str,
        max_connections: u32,
        backends: Option<Cpus>,
    ) -> Result<Self, StoreError> {
        let placing = Placing {
            application: Some(ENGINE_APPLICATION),
            backends,
        };
        let pool = connect_pool_with(url, max_connections, Duration::from_secs(30), placing);
        Ok(Self::new(pool.await?))
    }

    /// The store over a pool its process shares with the tables other
    /// crates own (web's users, the `serving` schema). Orchestration tables
    /// are read and written only through the store's methods, so the pool
    /// itself stays inside this crate.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the store's connections (a pool the store owns alone).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A connection one loop keeps between its transactions: the executor's
/// claims and input reads. sqlx pings each connection given back to the
/// pool (a round trip) and hands it over through a task of its own; under
/// load every round trip and wake-up waits for a core, and each hop of a
/// chain gave two connections back for its claim. After an error the
/// connection is given back (the pool closes a broken one) and the next
/// use takes another, so a restarted database costs one failed statement.
pub struct KeptConnection {
    store: Store,
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
}

impl KeptConnection {
    pub fn new(store: Store) -> Self {
        Self { store, conn: None }
    }

    /// The kept connection, taken from the pool first if there is none.
    pub(crate) async fn get(&mut self) -> Result<&mut sqlx::PgConnection, StoreError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.store.pool().acquire().await?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Passes `result` on; an error gives the connection back first.
    pub(crate) fn checked<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// A connection pool to `url`, with the password masked in errors.
pub async fn connect_pool(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    connect_pool_waiting(url, max_connections, Duration::from_secs(30)).await
}

/// [`connect_pool`] whose callers wait at most `acquire_timeout` for a
/// connection: a web server answers 503 after a few seconds while the
/// database is down, rather than holding the request for half a minute.
pub async fn connect_pool_waiting(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, StoreError> {
    connect_pool_with(url, max_connections, acquire_timeout, Placing::default()).await
}

/// The `application_name` of the engine's sessions in `pg_stat_activity`.
pub const ENGINE_APPLICATION: &str = "betflow engine";

/// What a pool's sessions are named and where their backends run.
#[derive(Default)]
struct Placing {
    application: Option<&'static str>,
    backends: Option<Cpus>,
}

async fn connect_pool_with(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
    Placing {
        application,
        backends,
    }: Placing,
) -> Result<PgPool, StoreError> {
    let mut opts: PgConnectOptions = url.parse().map_err(|source| StoreError::Connect {
        url: mask_password(url),
        source,
    })?;
    if let Some(name) = application.filter(|_| opts.get_application_name().is_none()) {
        opts = opts.application_name(name);
    }
    let mut pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout);
    if let Some(cpus) = backends {
        pool = pool.after_connect(move |conn, _| {
            let cpus = cpus.clone();
            Box::pin(async move {
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut *conn)
                    .await?;
                // A backend left where the OS puts it is slower, not wrong.
                if let Err(e) = cpus.pin(pid, &format!("Postgres backend {pid}")) {
                    tracing::warn!("{e}");
                }
                Ok(())
            })
        });
    }
    pool.connect_with(opts)
        .await
        .map_err(|source| StoreError::Connect {
            url: mask_password(url),
            source,
        })
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, so URLs can be printed and logged.
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    // The user information ends at the last `@` before the path: a password
    // may itself hold an unescaped `@`, `?` or `#`. Without a path, a query
    // holding an `@` masks more than the password, never less.
    let mut end = rest.find('/').unwrap_or(rest.len());
    if !rest[..end].contains('@') {
        // No `@` before the first `/`: the password may hold the `/`.
        let before_query = rest.find('?').unwrap_or(rest.len());
        if let Some(at) = rest[..before_query].rfind('@') {
            end = rest[at..].find('/').map_or(rest.len(), |slash| at + slash);
        }
    }
    let (authority, path) = rest.split_at(end);
    let masked_authority = match authority.rfind('@') {
        Some(at) => {
            let creds = &authority[..at];
            match creds.find(':') {
                Some(colon) => format!("{}:***{}", &creds[..colon], &authority[at..]),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let after_scheme = format!("{masked_authority}{path}");
    let (before_query, query) = match after_scheme.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (after_scheme.as_str(), None),
    };
    let mut out = format!("{}://{before_query}", &url[..scheme_end]);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_lost_connections_are_worth_retrying() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(super::StoreError::Sql(sqlx::Error::Io(io)).is_connection());
        assert!(super::StoreError::Sql(sqlx::Error::PoolTimedOut).is_connection());
        assert!(!super::StoreError::Sql(sqlx::Error::RowNotFound).is_connection());
        assert!(!super::StoreError::Sql(sqlx::Error::ColumnNotFound("x".into())).is_connection());
    }

    #[test]
    fn passwords_are_masked_in_urls() {
        // Unescaped `@`, `?`, `#` and `/` in passwords, and `password=` parameters.
        for (url, masked) in [
            (
                "postgres://betflow:p@ss@w0rd@db.example:5432/betflow",
                "postgres://betflow:***@db.example:5432/betflow",
            ),
            (
                "postgres://db.example/betflow?user=betflow&password=s3cr3t&sslmode=require",
                "postgres://db.example/betflow?user=betflow&password=***&sslmode=require",
            ),
            (
                "postgres://u:pw@host/db?application_name=a@b",
                "postgres://u:***@host/db?application_name=a@b",
            ),
            (
                "postgres://betflow:s3cr3t@127.0.0.1:5432/betflow",
                "postgres://betflow:***@127.0.0.1:5432/betflow",
            ),
            ("postgres://localhost/db", "postgres://localhost/db"),
            (
                "postgres://u:p?x=1@host:5432/db?sslmode=require",
                "postgres://u:***@host:5432/db?sslmode=require",
            ),
            ("postgres://u:p#x@host/db", "postgres://u:***@host/db"),
            (
                "postgres://u:p/w+x@host:5432/db?sslmode=require",
                "postgres://u:***@host:5432/db?sslmode=require",
            ),
        ] {
            assert_eq!(super::mask_password(url), masked, "{url}");
        }
        for leaky in [
            "postgres://u:p?x@host",
            "postgres://u:pw@h?application_name=a@b",
        ] {
            let masked = super::mask_password(leaky);
            assert!(
                !masked.contains("p?x") && !masked.contains(":pw"),
                "{masked}"
            );
        }
    }
}
