//! The OpenAPI document for `/api/v2`, generated from the handlers'
//! `#[utoipa::path]` annotations and the response types' `ToSchema`
//! derives, so it cannot drift from what the code serves.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the API is mounted; the document's paths are absolute, as Airflow's are.
pub const PREFIX: &str = "/api/v2";

/// An error: RFC 9457 problem details (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDetails {
    /// Always `about:blank`: the status code says what kind of error it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
}

/// Bearer tokens from `betflow tokens create`; a browser session cookie also
/// works, with an `X-CSRF-Token` header on writes.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "HTTPBearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BetFlow API",
        description = "BetFlow's REST API, shaped after Airflow 3's stable REST API: same paths under /api/v2, same field names, so Airflow clients work against it. Errors are RFC 9457 problem details.",
    ),
    components(schemas(ProblemDetails)),
    modifiers(&BearerAuth),
    security(("HTTPBearer" = [])),
    tags(
        (name = "DAG"),
        (name = "DagRun"),
        (name = "TaskInstance"),
        (name = "QualityCheck", description = "BetFlow's own: data-quality check results per run"),
        (name = "Version"),
    ),
)]
pub struct ApiDoc;

/// The served document: the handlers' paths (relative to the API router)
/// put under [`PREFIX`], with the document's info and security.
pub fn document(routes: OpenApiDoc) -> OpenApiDoc {
    let mut doc = ApiDoc::openapi().nest(PREFIX, routes);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `application/json` of a document rendered once at start-up.
pub fn serve(json: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.to_owned(),
    )
        .into_response()
}
