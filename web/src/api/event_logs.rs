//! `/eventLogs`: the audit trail in Airflow 3's `EventLogResponse` shape
//! (admins only: it names users and their addresses).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use super::pagination::Page;
use super::parse_query_date;
use crate::audit::{self, EventFilter, EventRow};
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventLogResponse {
    pub event_log_id: i64,
    pub when: DateTime<Utc>,
    pub dag_id: Option<String>,
    pub dag_display_name: Option<String>,
    pub task_id: Option<String>,
    pub task_display_name: Option<String>,
    pub run_id: Option<String>,
    pub map_index: Option<i32>,
    pub try_number: Option<i32>,
    pub event: String,
    pub logical_date: Option<DateTime<Utc>>,
    /// The user or token owner who acted.
    pub owner: Option<String>,
    /// JSON text: the action's details and the client address.
    pub extra: Option<String>,
}

fn response(e: EventRow) -> EventLogResponse {
    let mut extra = e.extra;
    if let (Some(map), Some(client)) = (extra.as_object_mut(), e.client) {
        map.insert("client".to_owned(), client.into());
    }
    EventLogResponse {
        event_log_id: e.id,
        when: e.when,
        dag_display_name: e.dag_id.clone(),
        dag_id: e.dag_id,
        task_display_name: e.task_id.clone(),
        task_id: e.task_id,
        run_id: e.run_id,
        map_index: None,
        try_number: None,
        event: e.event,
        logical_date: None,
        owner: e.owner,
        extra: Some(extra.to_string()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventLogCollectionResponse {
    pub event_logs: Vec<EventLogResponse>,
    pub total_entries: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventLogQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub owner: Option<String>,
    pub event: Option<String>,
    /// Only events before / after this time (RFC 3339).
    pub before: Option<String>,
    pub after: Option<String>,
    /// `when` or `-when` (default, newest first); also `event_log_id`.
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// The audit trail, newest first (admin).
#[utoipa::path(
    operation_id = "get_event_logs",
    get,
    path = "/eventLogs",
    tag = "EventLog",
    params(EventLogQuery),
    responses(
        (status = 200, description = "A page of the audit trail", body = EventLogCollectionResponse),
        (status = 400, description = "Unsupported `order_by`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid query parameters", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    user: ApiUser,
    ApiQuery(q): ApiQuery<EventLogQuery>,
) -> Result<Json<EventLogCollectionResponse>, Problem> {
    user.require(Role::Admin)?;
    let page = Page::new(q.limit, q.offset)?;
    let newest_first = match q.order_by.first().map(String::as_str) {
        None | Some("-when" | "-event_log_id" | "-id") => true,
        Some("when" | "event_log_id" | "id") => false,
        Some(other) => {
            return Err(Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("cannot order event logs by `{other}`; use `when` or `-when`"),
            ))
        }
    };
    let filter = EventFilter {
        dag_id: q.dag_id,
        run_id: q.run_id,
        task_id: q.task_id,
        owner: q.owner,
        event: q.event,
        before: parse_query_date("before", q.before.as_deref())?,
        after: parse_query_date("after", q.after.as_deref())?,
        newest_first,
        limit: page.limit,
        offset: page.offset,
    };
    let (rows, total) = audit::list(&state.db, &filter)
        .await
        .map_err(Problem::from)?;
    Ok(Json(EventLogCollectionResponse {
        event_logs: rows.into_iter().map(response).collect(),
        total_entries: total,
    }))
}

/// One event of the audit trail (admin).
#[utoipa::path(
    operation_id = "get_event_log",
    get,
    path = "/eventLogs/{event_log_id}",
    tag = "EventLog",
    params(("event_log_id" = i64, Path)),
    responses(
        (status = 200, description = "The event", body = EventLogResponse),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<EventLogResponse>, Problem> {
    user.require(Role::Admin)?;
    audit::get(&state.db, id)
        .await
        .map_err(Problem::from)?
        .map(|e| Json(response(e)))
        .ok_or_else(|| Problem::not_found(format!("no event log {id}")))
}
