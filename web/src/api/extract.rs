//! Extractors that answer bad input with problem details, as Airflow's API
//! does, instead of axum's plain-text rejections.
//!
//! Query strings are parsed with `serde_html_form` because Airflow's clients
//! send list parameters as repeated keys (`state=failed&state=success`),
//! which axum's `Query` cannot read into a `Vec`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Query parameters; a malformed or mistyped one is a 422.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_html_form::from_str(query)
            .map(Self)
            .map_err(|e| Problem::unprocessable(format!("invalid query parameters: {e}")))
    }
}

/// Path parameters; one of the wrong type (a try number that is not a number) is a 422.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(e) if e.status().is_server_error() => Err(Problem::internal(e.body_text())),
            Err(e) => Err(Problem::unprocessable(format!(
                "invalid path parameters: {}",
                e.body_text()
            ))),
        }
    }
}

/// A JSON request body. Invalid JSON or a body of the wrong shape is a 422
/// (as in Airflow); a body that does not say it is JSON is a 415.
///
/// Handlers take `Result<ApiJson<T>, Problem>` so they can check the
/// caller's role first: a viewer gets 403 even for a malformed body.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(e @ JsonRejection::MissingJsonContentType(_)) => Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                e.body_text(),
            )),
            Err(e @ (JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_))) => Err(
                Problem::unprocessable(format!("invalid request body: {}", e.body_text())),
            ),
            Err(e) => Err(Problem::new(e.status(), e.body_text())),
        }
    }
}
