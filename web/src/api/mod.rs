//! The REST API under `/api/v2`, shaped after Airflow 3's stable REST API:
//! same paths, field names, paging (`limit`, `offset`, `total_entries`) and
//! status codes, so Airflow's clients and scripts work against BetFlow.
//!
//! Every endpoint but `/version` and `/openapi.json` needs a caller
//! ([`ApiUser`](crate::auth::extract::ApiUser)); writes need the operator
//! role. Errors, including unknown routes and bad parameters, are problem
//! details. `/monitor/health` is served by `health.rs`.

mod absent;
mod assets;
mod backfills;
mod clear;
pub mod config;
mod dag_details;
mod dag_runs;
mod dag_versions;
mod dags;
mod event_logs;
mod extract;
mod monitoring;
mod openapi;
mod pagination;
mod quality_checks;
mod task_instance_patch;
mod task_instances;
mod task_tries;
mod tasks;
mod version;
mod xcom;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::Problem;
use crate::AppState;

/// Airflow's wildcard path segment: `~` as a DAG or run id means "all".
pub const ALL: &str = "~";

pub fn routes() -> Router<AppState> {
    let (router, paths) = OpenApiRouter::with_openapi(utoipa::openapi::OpenApi::default())
        .routes(routes!(dags::list))
        .routes(routes!(dags::get, dags::patch))
        .routes(routes!(dag_runs::list, dag_runs::trigger))
        .routes(routes!(dag_runs::get, dag_runs::patch, dag_runs::delete))
        .routes(routes!(dag_runs::list_batch))
        .routes(routes!(task_instances::list))
        .routes(routes!(task_instances::list_batch))
        .routes(routes!(task_instances::get, task_instance_patch::patch))
        .routes(routes!(task_instances::list_mapped))
        .routes(routes!(task_instances::get_mapped))
        .routes(routes!(task_instance_patch::dry_run))
        .routes(routes!(task_instances::log))
        .routes(routes!(quality_checks::list))
        .routes(routes!(clear::clear))
        .routes(routes!(version::version))
        .routes(routes!(tasks::list))
        .routes(routes!(tasks::get))
        .routes(routes!(monitoring::dag_stats))
        .routes(routes!(monitoring::pools))
        .routes(routes!(monitoring::pool))
        .routes(routes!(monitoring::jobs))
        .routes(routes!(absent::connections))
        .routes(routes!(absent::connection))
        .routes(routes!(absent::variables))
        .routes(routes!(absent::variable))
        .routes(routes!(absent::import_errors))
        .routes(routes!(absent::dag_warnings))
        .routes(routes!(absent::plugins))
        .routes(routes!(absent::providers))
        .routes(routes!(event_logs::list))
        .routes(routes!(event_logs::get))
        .routes(routes!(dag_versions::list))
        .routes(routes!(dag_versions::get))
        .routes(routes!(dag_details::details))
        .routes(routes!(dag_details::source))
        .routes(routes!(config::get))
        .routes(routes!(config::value))
        .routes(routes!(task_tries::list))
        .routes(routes!(task_tries::get))
        .routes(routes!(xcom::list))
        .routes(routes!(xcom::get))
        .routes(routes!(backfills::list, backfills::create))
        .routes(routes!(backfills::dry_run))
        .routes(routes!(backfills::get))
        .routes(routes!(backfills::pause))
        .routes(routes!(backfills::unpause))
        .routes(routes!(backfills::cancel))
        .routes(routes!(assets::list))
        .routes(routes!(assets::get))
        .routes(routes!(assets::events, assets::create_event))
        .routes(routes!(assets::aliases))
        .routes(routes!(assets::alias))
        .routes(routes!(assets::upstream_events))
        .routes(routes!(assets::queued_events, assets::delete_queued_events))
        .split_for_parts();
    let doc = openapi::document(paths);
    // Rendered once: the document is fixed for the life of the process.
    let json: Arc<str> = match doc.to_json() {
        Ok(s) => s.into(),
        Err(e) => {
            tracing::error!("cannot render the OpenAPI document: {e}");
            Arc::from("{}")
        }
    };
    router
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { openapi::serve(&json) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> Problem {
    Problem::not_found("no such API endpoint; see /api/v2/openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not accept that method; see /api/v2/openapi.json",
    )
}

/// A date-time query parameter: RFC 3339, or ISO 8601 with a `+hhmm`
/// offset as Python's `strftime("%z")` writes it. 422 otherwise.
pub fn parse_query_date(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    let Some(v) = value else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(v)
        .or_else(|_| DateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| Some(d.with_timezone(&Utc)))
        .map_err(|_| {
            Problem::unprocessable(format!(
                "{name}: `{v}` is not a date-time with a timezone (e.g. 2024-01-31T06:00:00Z)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_dates_accept_rfc3339_and_pythons_offsets() {
        let want = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for s in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T01:00:00+01:00",
            "2024-01-01T00:00:00.000000+0000",
        ] {
            assert_eq!(parse_query_date("d", Some(s)).unwrap(), Some(want), "{s}");
        }
        assert_eq!(parse_query_date("d", None).unwrap(), None);
        assert_eq!(
            parse_query_date("d", Some("2024-01-01"))
                .unwrap_err()
                .status,
            422
        );
    }
}
