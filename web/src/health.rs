//! `/health`: the metadata database, the freshest scheduler heartbeat and
//! the Kafka broker, in the shape of Airflow's `/api/v2/monitor/health`
//! (plus `kafka`: up or not, without its address). No login needed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::AppState;

/// A scheduler counts as healthy if it heartbeated within this many seconds.
const SCHEDULER_HEALTHY_SECS: i64 = 30;

/// Whether any of the bootstrap servers accepts a connection within half
/// a second: `{"status": "healthy"|"unhealthy", "bootstrap": …}`, or null
/// when this process has no Kafka.
pub async fn kafka_status(bootstrap: Option<&str>) -> Value {
    let Some(servers) = bootstrap else {
        return Value::Null;
    };
    let mut up = false;
    for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let connect = tokio::net::TcpStream::connect(server);
        if matches!(
            tokio::time::timeout(std::time::Duration::from_millis(500), connect).await,
            Ok(Ok(_))
        ) {
            up = true;
            break;
        }
    }
    json!({"status": if up { "healthy" } else { "unhealthy" }, "bootstrap": servers})
}

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut kafka = kafka_status(state.kafka_bootstrap.as_deref()).await;
    // `/health` answers anyone: the broker's address is for the streams
    // page, behind the login.
    if let Some(k) = kafka.as_object_mut() {
        k.remove("bootstrap");
    }
    let latest: Result<Option<DateTime<Utc>>, sqlx::Error> =
        sqlx::query_scalar("SELECT max(heartbeat_at) FROM workers WHERE stopped_at IS NULL")
            .fetch_one(&state.db)
            .await;
    match latest {
        Err(e) => {
            tracing::warn!("health check: metadata database unreachable: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"metadatabase": {"status": "unhealthy"}, "scheduler": {"status": "unknown"}, "kafka": kafka}),
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
                    // No triggerer or DAG processor exists here (DAGs are compiled in);
                    // the fields are present so Airflow's client validates the response.
                    "triggerer": {"status": null, "latest_triggerer_heartbeat": null},
                    "dag_processor": null,
                    // BetFlow's own: the Kafka broker the stream tasks use.
                    "kafka": kafka,
                })),
            )
        }
    }
}
