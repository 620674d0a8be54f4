//! `/version`: which BetFlow answers, as Airflow's `VersionInfo`.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = VersionInfo)]
pub struct VersionInfo {
    pub version: String,
    /// Null: builds do not record their commit.
    pub git_version: Option<String>,
}

/// The BetFlow version. No login needed, so clients can check what they talk to.
#[utoipa::path(
    operation_id = "get_version",
    get,
    path = "/version",
    tag = "Version",
    security(()),
    responses((status = 200, description = "The version", body = VersionInfo)),
)]
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_version: None,
    })
}
