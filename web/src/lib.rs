//! The web server `betflow up` runs. For now: `/health`, reporting the
//! metadata database and the freshest scheduler heartbeat, in the shape of
//! Airflow's `/api/v2/monitor/health`. The UI and REST API grow here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use orchestrator::Store;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v2/monitor/health", get(health))
        .with_state(store)
}

/// Serve until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(store))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// A scheduler counts as healthy if it heartbeated within this many seconds.
const SCHEDULER_HEALTHY_SECS: i64 = 30;

async fn health(State(store): State<Store>) -> (StatusCode, Json<Value>) {
    let latest: Result<Option<DateTime<Utc>>, sqlx::Error> =
        sqlx::query_scalar("SELECT max(heartbeat_at) FROM workers WHERE stopped_at IS NULL")
            .fetch_one(store.pool())
            .await;
    match latest {
        Err(e) => {
            tracing::warn!("health check: metadata database unreachable: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"metadatabase": {"status": "unhealthy"}, "scheduler": {"status": "unknown"}}),
                ),
            )
        }
        Ok(beat) => {
            let fresh =
                beat.is_some_and(|b| (Utc::now() - b).num_seconds() <= SCHEDULER_HEALTHY_SECS);
            let status = if fresh { "healthy" } else { "unhealthy" };
            (
                StatusCode::OK,
                Json(json!({
                    "metadatabase": {"status": "healthy"},
                    "scheduler": {"status": status, "latest_scheduler_heartbeat": beat},
                })),
            )
        }
    }
}
