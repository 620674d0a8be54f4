//! The web server `betflow up` runs: login, the UI pages, the REST API
//! under `/api/v2` (shaped after Airflow's), `/health` and `/metrics`.
//!
//! Reads and writes go through the orchestrator's store; the DAG definitions
//! come from the binary as a `DagBag`. This crate never depends on `dags`.

pub mod auth;
pub mod problem;

pub mod api;
pub mod audit;
mod headers;
mod health;
mod metrics;
mod pages;
pub mod proxy;
mod static_files;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use orchestrator::{DagBag, Store};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::limiter::LoginLimiter;

/// The web's tables: users, sessions and API tokens (`migrations/web`).
pub static MIGRATIONS: orchestrator::store::Migrations = orchestrator::store::Migrations {
    owner: "web",
    migrator: sqlx::migrate!("../migrations/web"),
};

/// How long a rendered markets board is reused: half the board's refresh,
/// so a price reaches an open page within about 1.5 s of its serving row.
const BOARD_CACHE_FOR: std::time::Duration = std::time::Duration::from_millis(500);
/// Filters whose boards are kept at most; more and the cache starts over.
const BOARD_CACHE_ENTRIES: usize = 256;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The deployment's database, for web's own tables (users, sessions,
    /// tokens) and the `serving` read models; orchestration goes through `store`.
    pub db: PgPool,
    pub bag: Arc<DagBag>,
    pub limiter: Arc<LoginLimiter>,
    /// Mark cookies `Secure`; browsers accept that on http://localhost and 127.0.0.1 too.
    pub secure_cookies: bool,
    /// The sport keys the markets and analytics pages accept, in the order
    /// their filters list them (the binary's sports table).
    pub sports: Arc<[String]>,
    /// How prices are judged: de-vig method, steam, value, Kelly share.
    pub rules: pricing::Rules,
    /// The rendered markets board per filter, kept half a second: every
    /// open board asks every second, so viewers of one day share a read.
    pub(crate) board_cache: Arc<pages::ttl_cache::TtlCache<Arc<str>>>,
    /// `BETFLOW_METRICS_TOKEN`: when set, `/metrics` answers only requests
    /// that send it as a bearer token.
    pub metrics_token: Option<Arc<str>>,
    /// The Kafka bootstrap servers the stream tasks use, if any: `/health`
    /// and the streams page say whether they answer.
    pub kafka_bootstrap: Option<Arc<str>>,
    /// The rendered `/metrics`, kept a few seconds.
    pub(crate) metrics_cache: Arc<pages::ttl_cache::TtlCache<Arc<str>>>,
    /// Live log follows per user.
    pub(crate) follows: Arc<pages::follows::Follows>,
    /// What `/api/v2/config` shows, secrets already masked.
    pub config: Arc<[api::config::ConfigEntry]>,
    /// Proxies whose `X-Forwarded-For` names the client (`BETFLOW_TRUSTED_PROXIES`).
    pub proxies: proxy::TrustedProxies,
}

/// How long a rendered `/metrics` is served again (Prometheus scrapes
/// every 15 s or more).
const METRICS_CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl AppState {
    pub fn new(store: Store, db: PgPool, bag: DagBag) -> Self {
        Self {
            store,
            db,
            bag: Arc::new(bag),
            limiter: Arc::new(LoginLimiter::default()),
            secure_cookies: std::env::var("BETFLOW_INSECURE_COOKIES").is_err(),
            sports: Arc::from(Vec::new()),
            rules: pricing::Rules::default(),
            board_cache: Arc::new(pages::ttl_cache::TtlCache::new(
                BOARD_CACHE_FOR,
                BOARD_CACHE_ENTRIES,
            )),
            metrics_token: std::env::var("BETFLOW_METRICS_TOKEN")
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            kafka_bootstrap: None,
            metrics_cache: Arc::new(pages::ttl_cache::TtlCache::new(METRICS_CACHE_FOR, 1)),
            follows: Arc::default(),
            config: Arc::from(Vec::new()),
            proxies: proxy::TrustedProxies::default(),
        }
    }

    /// Believe `X-Forwarded-For` from these proxies (the login limiter
    /// and the audit log then see each client behind them).
    pub fn with_trusted_proxies(mut self, proxies: proxy::TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The configuration `/api/v2/config` shows (entries mask their secrets).
    pub fn with_config(mut self, entries: Vec<api::config::ConfigEntry>) -> Self {
        self.config = Arc::from(entries);
        self
    }

    /// The Kafka bootstrap servers to report on (`host:port`, comma separated).
    pub fn with_kafka(mut self, bootstrap: Option<&str>) -> Self {
        self.kafka_bootstrap = bootstrap.map(Arc::from);
        self
    }

    /// How long a rendered markets board is reused (zero: never), for
    /// benchmarks that measure the uncached board.
    pub fn with_board_cache(mut self, keep_for: std::time::Duration) -> Self {
        self.board_cache = Arc::new(pages::ttl_cache::TtlCache::new(
            keep_for,
            BOARD_CACHE_ENTRIES,
        ));
        self
    }

    /// The deployment's price rules (its `BETFLOW_DEVIG` and the like).
    pub fn with_rules(mut self, rules: pricing::Rules) -> Self {
        self.rules = rules;
        self
    }

    /// The sports the markets and analytics pages offer.
    pub fn with_sports(mut self, sports: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sports = sports.into_iter().map(Into::into).collect();
        self
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/api/v2/monitor/health", get(health::health))
        // For scrapers, without login like /health; see metrics.rs.
        .route("/metrics", get(metrics::metrics))
        .route("/static/{file}", get(static_files::serve))
        .nest("/api/v2", api::routes())
        .merge(pages::routes(state.clone()))
        .layer(axum::middleware::from_fn(headers::add))
        .with_state(state)
}

/// Serve until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
