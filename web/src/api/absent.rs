//! Airflow concepts BetFlow does not have, answered in Airflow's shapes so
//! tools that list them work: connections and variables (settings come
//! from the environment, resolved at start), import errors (a DAG that
//! fails to build stops the binary), DAG warnings, plugins and providers.
//! Collections are empty; a single id is a problem-details 404 saying why.

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::ApiPath;
use super::openapi::ProblemDetails;
use crate::auth::extract::ApiUser;
use crate::problem::Problem;

macro_rules! empty_collection {
    ($name:ident, $field:ident) => {
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            #[schema(value_type = Vec<Object>)]
            pub $field: Vec<Value>,
            pub total_entries: i64,
        }

        impl $name {
            fn empty() -> Json<Self> {
                Json(Self {
                    $field: Vec::new(),
                    total_entries: 0,
                })
            }
        }
    };
}

empty_collection!(ConnectionCollectionResponse, connections);
empty_collection!(VariableCollectionResponse, variables);
empty_collection!(ImportErrorCollectionResponse, import_errors);
empty_collection!(DAGWarningCollectionResponse, dag_warnings);
empty_collection!(PluginCollectionResponse, plugins);
empty_collection!(ProviderCollectionResponse, providers);

const NO_CONNECTIONS: &str = "BetFlow has no connections: credentials and endpoints are environment variables resolved at start (README, Configuration)";
const NO_VARIABLES: &str = "BetFlow has no variables: settings are environment variables resolved at start (README, Configuration)";

/// Always empty (see the module docs).
#[utoipa::path(operation_id = "get_connections", get, path = "/connections", tag = "Connection",
    responses((status = 200, description = "No connections", body = ConnectionCollectionResponse),
              (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn connections(_user: ApiUser) -> Json<ConnectionCollectionResponse> {
    ConnectionCollectionResponse::empty()
}

/// Always 404 (see the module docs).
#[utoipa::path(operation_id = "get_connection", get, path = "/connections/{connection_id}", tag = "Connection",
    params(("connection_id" = String, Path)),
    responses((status = 404, description = "BetFlow has no connections", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn connection(_user: ApiUser, ApiPath(id): ApiPath<String>) -> Problem {
    Problem::not_found(format!("no connection `{id}`: {NO_CONNECTIONS}"))
}

/// Always empty (see the module docs).
#[utoipa::path(operation_id = "get_variables", get, path = "/variables", tag = "Variable",
    responses((status = 200, description = "No variables", body = VariableCollectionResponse),
              (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn variables(_user: ApiUser) -> Json<VariableCollectionResponse> {
    VariableCollectionResponse::empty()
}

/// Always 404 (see the module docs).
#[utoipa::path(operation_id = "get_variable", get, path = "/variables/{variable_key}", tag = "Variable",
    params(("variable_key" = String, Path)),
    responses((status = 404, description = "BetFlow has no variables", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn variable(_user: ApiUser, ApiPath(key): ApiPath<String>) -> Problem {
    Problem::not_found(format!("no variable `{key}`: {NO_VARIABLES}"))
}

/// Always empty: a DAG that fails to build stops the binary at start.
#[utoipa::path(operation_id = "get_import_errors", get, path = "/importErrors", tag = "ImportError",
    responses((status = 200, description = "No import errors", body = ImportErrorCollectionResponse),
              (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn import_errors(_user: ApiUser) -> Json<ImportErrorCollectionResponse> {
    ImportErrorCollectionResponse::empty()
}

/// Always empty.
#[utoipa::path(operation_id = "list_dag_warnings", get, path = "/dagWarnings", tag = "DagWarning",
    responses((status = 200, description = "No DAG warnings", body = DAGWarningCollectionResponse),
              (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn dag_warnings(_user: ApiUser) -> Json<DAGWarningCollectionResponse> {
    DAGWarningCollectionResponse::empty()
}

/// Always empty: BetFlow is one binary without plugins.
#[utoipa::path(operation_id = "get_plugins", get, path = "/plugins", tag = "Plugin",
    responses((status = 200, description = "No plugins", body = PluginCollectionResponse),
              (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn plugins(_user: ApiUser) -> Json<PluginCollectionResponse> {
    PluginCollectionResponse::empty()
}

/// Always empty: BetFlow is one binary without providers.
#[utoipa::path(operation_id = "get_providers", get, path = "/providers", tag = "Provider",
    responses((status = 200, description = "No providers", body = ProviderCollectionResponse),
              (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json")))]
pub async fn providers(_user: ApiUser) -> Json<ProviderCollectionResponse> {
    ProviderCollectionResponse::empty()
}
