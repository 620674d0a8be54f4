//! Why a Glue call failed, and whether trying again can help.

use crate::aws::{HttpsError, SignError};

/// What a Glue refusal means for the caller. Glue names its refusals by
/// exception (`__type`); the few BetFlow acts on get a kind of their own,
/// so callers match on this rather than on strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlueErrorKind {
    /// `EntityNotFoundException`: no such job, database or table.
    EntityNotFound,
    /// `AlreadyExistsException`: a create lost to an earlier one.
    AlreadyExists,
    /// `ConcurrentModificationException`: an update whose VersionId is no
    /// longer current, i.e. another writer came first.
    ConcurrentModification,
    /// Throttling codes or HTTP 429: slow down and try again.
    Throttled,
    /// Glue's own failures (InternalServiceException, timeouts, any 5xx):
    /// the same call may pass later.
    ServerError,
    /// Anything else (validation, access denied, limits): the call is
    /// wrong as it is, and repeating it will not help.
    Refused,
}

/// Exception names that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Exception names that mean "Glue failed, not the request".
const SERVER_CODES: &[&str] = &[
    "InternalServiceException",
    "OperationTimeoutException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

impl GlueErrorKind {
    /// The kind of an error answer with this status and exception name.
    pub fn of(status: u16, code: &str) -> GlueErrorKind {
        match code {
            "EntityNotFoundException" => GlueErrorKind::EntityNotFound,
            "AlreadyExistsException" => GlueErrorKind::AlreadyExists,
            "ConcurrentModificationException" => GlueErrorKind::ConcurrentModification,
            code if status == 429 || THROTTLING_CODES.contains(&code) => GlueErrorKind::Throttled,
            code if status >= 500 || SERVER_CODES.contains(&code) => GlueErrorKind::ServerError,
            _ => GlueErrorKind::Refused,
        }
    }
}

/// Why a Glue call failed. Every message starts with the operation.
#[derive(Debug, thiserror::Error)]
pub enum GlueApiError {
    /// Glue answered with an error. `code` is its exception name
    /// (`EntityNotFoundException`, …), `message` its own explanation.
    #[error(
        "{operation} failed: {code}: {message} (HTTP {status}{})",
        request_id.as_ref().map(|id| format!(", request id {id}")).unwrap_or_default()
    )]
    Service {
        operation: &'static str,
        kind: GlueErrorKind,
        status: u16,
        code: String,
        message: String,
        /// `x-amzn-RequestId`, what AWS support asks for.
        request_id: Option<String>,
    },
    /// No complete answer: connect failure, timeout, connection broken.
    #[error("{operation} failed: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("{operation}: unexpected answer (HTTP {status}): {source}; body: {body}")]
    Decode {
        operation: &'static str,
        status: u16,
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{operation}: the request could not be encoded: {source}")]
    Encode {
        operation: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{operation}: the request could not be built: {source}")]
    Build {
        operation: &'static str,
        #[source]
        source: http::Error,
    },
    #[error("{operation}: {source}")]
    Sign {
        operation: &'static str,
        #[source]
        source: SignError,
    },
    /// The configured endpoint is not an absolute http(s) URL.
    #[error("Glue endpoint {endpoint:?} is not usable: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error(transparent)]
    Https(#[from] HttpsError),
}

impl GlueApiError {
    /// The kind of Glue's refusal; `None` when Glue did not answer one.
    pub fn kind(&self) -> Option<GlueErrorKind> {
        match self {
            GlueApiError::Service { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Glue's exception name, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GlueApiError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Failures that say nothing about the request itself: throttling,
    /// Glue's own errors, timeouts and broken connections.
    pub fn is_transient(&self) -> bool {
        match self {
            GlueApiError::Transport { source, .. } => !source.is_builder(),
            GlueApiError::Service { kind, .. } => {
                matches!(kind, GlueErrorKind::Throttled | GlueErrorKind::ServerError)
            }
            _ => false,
        }
    }
}

/// The error of a non-2xx answer. The exception name is taken as the SDKs
/// do: the `X-Amzn-ErrorType` header, else the body's `code` or `__type`;
/// the message from `message`, `Message` or `errorMessage`.
pub(super) fn service_error(
    operation: &'static str,
    status: u16,
    header_code: Option<&str>,
    request_id: Option<String>,
    body: &[u8],
) -> GlueApiError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |names: &[&str]| -> Option<String> {
        names
            .iter()
            .find_map(|name| json.get(*name).and_then(serde_json::Value::as_str))
            .map(str::to_owned)
    };
    let code: String = header_code
        .map(str::to_owned)
        .or_else(|| field(&["code", "__type"]))
        .map(|code| sanitize_code(&code).to_owned())
        .filter(|code| !code.is_empty())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message: String = field(&["message", "Message", "errorMessage"]).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            "no message".to_owned()
        } else {
            text.chars().take(500).collect()
        }
    });
    GlueApiError::Service {
        operation,
        kind: GlueErrorKind::of(status, &code),
        status,
        code,
        message,
        request_id,
    }
}

/// `com.amazonaws.glue#EntityNotFoundException` and
/// `ThrottlingException:http://internal.amazon.com/…` are both spelled on
/// the wire; the name is the part after `#` and before `:`.
fn sanitize_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code)
}

#[cfg(test)]
mod tests {
    use super::{sanitize_code, service_error, GlueApiError, GlueErrorKind};

    fn kind_of(status: u16, header: Option<&str>, body: &str) -> (GlueErrorKind, String) {
        let err = service_error("GetTable", status, header, None, body.as_bytes());
        (err.kind().expect("a service error"), err.to_string())
    }

    #[test]
    fn exception_names_are_sanitized() {
        assert_eq!(
            sanitize_code("EntityNotFoundException"),
            "EntityNotFoundException"
        );
        assert_eq!(
            sanitize_code("com.amazonaws.glue#EntityNotFoundException"),
            "EntityNotFoundException"
        );
        assert_eq!(
            sanitize_code("ThrottlingException:http://internal.amazon.com/coral/"),
            "ThrottlingException"
        );
    }

    #[test]
    fn answers_are_classified_by_exception_and_status() {
        let (kind, text) = kind_of(
            400,
            None,
            r#"{"__type":"EntityNotFoundException","message":"Table t not found."}"#,
        );
        assert_eq!(kind, GlueErrorKind::EntityNotFound);
        assert_eq!(
            text,
            "GetTable failed: EntityNotFoundException: Table t not found. (HTTP 400)"
        );
        // The header wins over the body, and Glue's newer `Message`.
        let (kind, text) = kind_of(
            400,
            Some("AlreadyExistsException:http://internal.amazon.com/coral/com.amazonaws.glue/"),
            r#"{"__type":"com.amazonaws.glue#Other","Message":"Database bronze exists."}"#,
        );
        assert_eq!(kind, GlueErrorKind::AlreadyExists);
        assert!(
            text.contains("AlreadyExistsException: Database bronze exists."),
            "{text}"
        );
        let (kind, _) = kind_of(
            400,
            None,
            r#"{"__type":"com.amazonaws.glue#ConcurrentModificationException"}"#,
        );
        assert_eq!(kind, GlueErrorKind::ConcurrentModification);
        assert_eq!(
            kind_of(400, None, r#"{"__type":"ThrottlingException"}"#).0,
            GlueErrorKind::Throttled
        );
        assert_eq!(kind_of(429, None, "").0, GlueErrorKind::Throttled);
        assert_eq!(
            kind_of(400, None, r#"{"__type":"OperationTimeoutException"}"#).0,
            GlueErrorKind::ServerError
        );
        // moto's unimplemented operations answer an HTML 500.
        let (kind, text) = kind_of(500, None, "<html>Internal Server Error</html>");
        assert_eq!(kind, GlueErrorKind::ServerError);
        assert!(
            text.contains("HTTP 500: <html>Internal Server Error</html>"),
            "{text}"
        );
        let (kind, _) = kind_of(
            400,
            None,
            r#"{"__type":"AccessDeniedException","message":"no"}"#,
        );
        assert_eq!(kind, GlueErrorKind::Refused);
    }

    #[test]
    fn only_throttling_and_server_errors_are_transient() {
        let err =
            |status: u16, code: &str| service_error("GetJobRun", status, Some(code), None, b"{}");
        assert!(err(400, "ThrottlingException").is_transient());
        assert!(err(500, "InternalServiceException").is_transient());
        assert!(err(503, "Whatever").is_transient());
        assert!(!err(400, "EntityNotFoundException").is_transient());
        assert!(!err(400, "ConcurrentModificationException").is_transient());
        assert!(!err(400, "ValidationException").is_transient());
        let with_id = GlueApiError::Service {
            operation: "StartJobRun",
            kind: GlueErrorKind::Refused,
            status: 400,
            code: "ResourceNumberLimitExceededException".to_owned(),
            message: "too many runs".to_owned(),
            request_id: Some("abc-123".to_owned()),
        };
        assert!(!with_id.is_transient());
        assert!(
            with_id
                .to_string()
                .ends_with("(HTTP 400, request id abc-123)"),
            "{with_id}"
        );
    }
}
