//! The REST API under `/api/v2`, shaped after Airflow 3's stable REST API.

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
