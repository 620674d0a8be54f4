//! Errors as RFC 9457 problem details (`application/problem+json`), the
//! shape Airflow's REST API answers with.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// A server-side failure: logged in full, answered without internals.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("request failed: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl Problem {
    /// The metadata database cannot be reached (a restart, a failover):
    /// 503, so clients retry, instead of a 500 that reads as a bug.
    pub fn database_unreachable(e: impl std::fmt::Display) -> Self {
        tracing::warn!("request failed, the metadata database is unreachable: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the metadata database cannot be reached right now (restarting or failing over); try again in a few seconds",
        )
    }

    /// A database error: 503 when the database is unreachable, else 500.
    pub fn database(e: sqlx::Error) -> Self {
        if orchestrator::store::is_connection_error(&e) {
            Self::database_unreachable(e)
        } else {
            Self::internal(e)
        }
    }
}

impl From<orchestrator::store::StoreError> for Problem {
    fn from(e: orchestrator::store::StoreError) -> Self {
        if e.is_connection() {
            Self::database_unreachable(e)
        } else {
            Self::internal(e)
        }
    }
}

impl From<crate::auth::AuthError> for Problem {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::Sql(e) => Self::database(e),
            other => Self::internal(other),
        }
    }
}

/// A refused backfill request or change: 404 for an unknown backfill, 409
/// when it has completed or the DAG has another one active, 422 for a bad
/// request.
impl From<orchestrator::backfill::BackfillError> for Problem {
    fn from(e: orchestrator::backfill::BackfillError) -> Self {
        use orchestrator::backfill::BackfillError;
        match e {
            BackfillError::Store(e) => e.into(),
            BackfillError::NotFound(_) => Problem::not_found(e.to_string()),
            BackfillError::Completed(_) | BackfillError::AlreadyActive { .. } => {
                Problem::conflict(e.to_string())
            }
            other => Problem::unprocessable(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Self::database(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
