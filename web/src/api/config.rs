//! `/config`: the deployment's configuration, read-only, for admins only
//! (Airflow hides it unless `expose_config` is set). Two sections: the
//! effective `betflow` settings, and the `environment` variables BetFlow
//! reads as they were set. Secrets never reach this module unmasked:
//! [`ConfigEntry::new`] masks them when the binary hands them over.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiPath, ApiQuery};
use super::openapi::ProblemDetails;
use crate::auth::extract::ApiUser;
use crate::auth::Role;
use crate::problem::Problem;
use crate::AppState;

/// What a secret's value is shown as.
pub const HIDDEN: &str = "< hidden >";

/// One option of one section, its value masked if it is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub section: String,
    pub key: String,
    pub value: String,
}

impl ConfigEntry {
    pub fn new(section: &str, key: &str, value: &str) -> Self {
        ConfigEntry {
            section: section.to_owned(),
            key: key.to_owned(),
            value: masked(key, value),
        }
    }
}

/// `value` as `/config` may show it: hidden for names that hold secrets
/// (passwords, tokens, keys, webhook URLs, which carry their token in the
/// path), URLs with the password masked, the rest as set.
pub fn masked(key: &str, value: &str) -> String {
    let k = key.to_ascii_uppercase();
    let secret = [
        "SECRET",
        "PASSWORD",
        "TOKEN",
        "WEBHOOK",
        "API_KEY",
        "ACCESS_KEY",
    ]
    .iter()
    .any(|s| k.contains(s))
        || k.ends_with("_KEY");
    if secret {
        HIDDEN.to_owned()
    } else if value.contains("://") {
        orchestrator::store::mask_password(value)
    } else {
        value.to_owned()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigOption {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigSection {
    pub name: String,
    pub options: Vec<ConfigOption>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Config {
    pub sections: Vec<ConfigSection>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// Only this section.
    pub section: Option<String>,
}

fn sections(state: &AppState, only: Option<&str>) -> Vec<ConfigSection> {
    let mut out: Vec<ConfigSection> = Vec::new();
    for e in state.config.iter() {
        if only.is_some_and(|s| s != e.section) {
            continue;
        }
        let option = ConfigOption {
            key: e.key.clone(),
            value: e.value.clone(),
        };
        match out.iter_mut().find(|s| s.name == e.section) {
            Some(section) => section.options.push(option),
            None => out.push(ConfigSection {
                name: e.section.clone(),
                options: vec![option],
            }),
        }
    }
    out
}

/// The configuration (admins).
#[utoipa::path(
    operation_id = "get_config",
    get,
    path = "/config",
    tag = "Config",
    params(ConfigQuery),
    responses(
        (status = 200, description = "The configuration, secrets masked", body = Config),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such section", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    user: ApiUser,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> Result<Json<Config>, Problem> {
    user.require(Role::Admin)?;
    let found = sections(&state, q.section.as_deref());
    if let (Some(s), true) = (&q.section, found.is_empty()) {
        return Err(Problem::not_found(format!(
            "no configuration section `{s}`: the sections are betflow and environment"
        )));
    }
    Ok(Json(Config { sections: found }))
}

/// One option (admins).
#[utoipa::path(
    operation_id = "get_config_value",
    get,
    path = "/config/section/{section}/option/{option}",
    tag = "Config",
    params(("section" = String, Path), ("option" = String, Path)),
    responses(
        (status = 200, description = "The option, masked if a secret", body = Config),
        (status = 401, description = "Missing, invalid or revoked credentials", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such option", body = ProblemDetails, content_type = "application/problem+json"),
    ),
)]
pub async fn value(
    State(state): State<AppState>,
    user: ApiUser,
    ApiPath((section, option)): ApiPath<(String, String)>,
) -> Result<Json<Config>, Problem> {
    user.require(Role::Admin)?;
    let entry = state
        .config
        .iter()
        .find(|e| e.section == section && e.key == option)
        .ok_or_else(|| {
            Problem::not_found(format!("no option `{option}` in section `{section}`"))
        })?;
    Ok(Json(Config {
        sections: vec![ConfigSection {
            name: section,
            options: vec![ConfigOption {
                key: entry.key.clone(),
                value: entry.value.clone(),
            }],
        }],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_and_url_passwords_masked() {
        for key in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "ODDS_API_KEY",
            "BETFLOW_METRICS_TOKEN",
            "BETFLOW_NOTIFY_WEBHOOK_URL",
            "AWS_SESSION_TOKEN",
        ] {
            assert_eq!(masked(key, "s3cr3t"), HIDDEN, "{key}");
        }
        assert_eq!(
            masked("DATABASE_URL", "postgres://u:pw@db:5432/betflow"),
            "postgres://u:***@db:5432/betflow"
        );
        assert_eq!(masked("BETFLOW_S3_BUCKET", "lake"), "lake");
        assert_eq!(
            ConfigEntry::new("environment", "ODDS_API_KEY", "k").value,
            HIDDEN
        );
    }
}
