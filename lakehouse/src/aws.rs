//! What every AWS SDK client BetFlow builds has in common: static
//! credentials and a region from the settings, the HTTPS stack and the
//! timeouts.
//!
//! The clients are built without aws-config's provider chain (see
//! [`crate::lake::s3`]): BetFlow's settings are a handful of variables, and
//! skipping aws-config keeps the build small. Each SDK has its own config
//! builder type, but the pieces plugged into it are the same smithy types,
//! so they are made here once and the S3 lake and the Glue task cannot drift
//! apart (one reading `AWS_DEFAULT_REGION`, the other not; one crypto
//! provider here, another there).

use std::time::Duration;

use aws_sdk_glue::config::timeout::TimeoutConfig;
use aws_sdk_glue::config::{Credentials, SharedHttpClient};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use orchestrator::setting::{Lookup, SettingError};

/// Region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set: the
/// SDKs have no default of their own and refuse to sign without one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `AWS_REGION`, else `AWS_DEFAULT_REGION` (the older CLI's name, still
/// what many deployments set), else [`DEFAULT_REGION`].
pub fn region(env: &impl Lookup) -> String {
    env.get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// Static keys: long-lived IAM user keys, or STS keys with their session token.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For temporary (STS) credentials.
    pub session_token: Option<String>,
}

/// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional
    /// `AWS_SESSION_TOKEN`; `why` says what needed them when one is missing.
    pub fn resolve(env: &impl Lookup, why: &str) -> Result<Self, SettingError> {
        let required = |name: &str| {
            env.get(name)
                .ok_or_else(|| SettingError::missing(name, why))
        };
        Ok(AwsCredentials {
            access_key_id: required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: env.get("AWS_SESSION_TOKEN"),
        })
    }

    /// The SDKs' credentials provider for these keys.
    pub fn provider(&self) -> Credentials {
        static_credentials(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.as_deref(),
        )
    }
}

/// The SDKs' credentials provider for fixed keys.
pub fn static_credentials(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Credentials {
    Credentials::new(
        access_key_id,
        secret_access_key,
        session_token.map(str::to_owned),
        None,
        "betflow",
    )
}

/// HTTPS through rustls on aws-lc-rs: the provider the sources' reqwest
/// clients use too, so the workspace builds one crypto library (aws-lc-sys
/// needs only cc).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}

/// A short connect timeout so an unreachable endpoint fails fast (and the
/// SDK retries) instead of hanging a task; `attempt` bounds one request,
/// which differs per API (a large S3 object against a small Glue poll).
pub fn timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(attempt)
        .build()
}

/// A Glue client; no request is made until the first call. `attempt`
/// bounds one request ([`timeouts`]).
pub fn glue_client(
    endpoint: Option<&str>,
    region: &str,
    credentials: &AwsCredentials,
    attempt: Duration,
) -> aws_sdk_glue::Client {
    let mut builder = aws_sdk_glue::config::Builder::new()
        .behavior_version(aws_sdk_glue::config::BehaviorVersion::latest())
        .http_client(https_client())
        .region(aws_sdk_glue::config::Region::new(region.to_owned()))
        .credentials_provider(credentials.provider())
        .timeout_config(timeouts(attempt));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_glue::Client::from_conf(builder.build())
}
