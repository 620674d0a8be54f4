//! The production backend: any S3 API (AWS, MinIO, moto) through OpenDAL's
//! S3 service, the one iceberg's S3 file IO already uses.
//!
//! The operator is built from [`S3Config`] alone (static keys, region,
//! optional endpoint and path-style addressing): OpenDAL's own loading of
//! `AWS_*` variables, `~/.aws` files and instance metadata is switched off,
//! so the settings are the only source. OpenDAL has no CreateBucket; that
//! one request is signed by hand (`s3_bucket.rs`).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use opendal::layers::{HttpClientLayer, RetryEvent, RetryLayer, TimeoutLayer};
use opendal::raw::HttpClient;
use opendal::services::S3;
use opendal::{Entry, ErrorKind, Operator};
use reqsign_core::ProvideCredentialChain;

use super::s3_bucket::CreateBucket;
use super::{validate_key, LakeError, ObjectMeta, ObjectStore};
use crate::aws::{self, AwsCredentials};
use orchestrator::setting::{self, Lookup, SettingError};

/// Bounds requests without a body to stream: stat, delete, the start of a
/// read or listing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Bounds each body transfer, the PutObject of a whole raw day included.
const IO_TIMEOUT: Duration = Duration::from_secs(300);

/// Retries of a failed request (5xx, throttling, timeouts, broken
/// connections), after the first attempt.
const RETRIES: usize = 3;

/// Where the S3 lake is and how to reach it.
#[derive(Clone)]
pub struct S3Config {
    /// Custom endpoint (`http://127.0.0.1:9000` for MinIO); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key`;
    /// MinIO and most self-hosted S3 APIs need this.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// For temporary (STS) credentials.
    pub session_token: Option<String>,
}

/// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Config {
    /// `BETFLOW_S3_BUCKET` (unset → `None`: use the local lake),
    /// `BETFLOW_S3_ENDPOINT`, `BETFLOW_S3_PATH_STYLE` (`1`/`true`/`yes`;
    /// defaults to on when an endpoint is set, since self-hosted S3 APIs
    /// rarely have per-bucket DNS), `AWS_REGION` or `AWS_DEFAULT_REGION`
    /// (default `us-east-1`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and `AWS_SESSION_TOKEN`.
    pub fn resolve(env: &impl Lookup) -> Result<Option<Self>, SettingError> {
        let Some(bucket) = env.get("BETFLOW_S3_BUCKET") else {
            return Ok(None);
        };
        let endpoint = env.get("BETFLOW_S3_ENDPOINT");
        let path_style: bool =
            setting::flag(env, "BETFLOW_S3_PATH_STYLE")?.unwrap_or(endpoint.is_some());
        let credentials = AwsCredentials::resolve(
            env,
            "BETFLOW_S3_BUCKET is set and needs it (or unset BETFLOW_S3_BUCKET to use the local lake)",
        )?;
        Ok(Some(S3Config {
            endpoint,
            region: aws::region(env),
            bucket,
            path_style,
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
            session_token: credentials.session_token,
        }))
    }

    fn credentials(&self) -> AwsCredentials {
        AwsCredentials {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
        }
    }
}

/// A lake in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    op: Operator,
    bucket: String,
    create: CreateBucket,
}

impl S3Store {
    /// Builds the operator; no request is made until the first operation.
    pub fn new(config: &S3Config) -> Result<Self, LakeError> {
        if config.bucket.is_empty() {
            return Err(LakeError::Config("empty bucket name".to_owned()));
        }
        let credentials: AwsCredentials = config.credentials();
        let mut builder: S3 = S3::default()
            .bucket(&config.bucket)
            // Always given: without it OpenDAL reads AWS_REGION itself.
            .region(&config.region)
            .disable_config_load()
            .disable_ec2_metadata()
            .credential_provider_chain(ProvideCredentialChain::new().push(credentials.provider()));
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        // OpenDAL addresses buckets path-style unless told otherwise.
        if !config.path_style {
            builder = builder.enable_virtual_host_style();
        }
        let http: reqwest::Client =
            aws::http_client().map_err(|e| LakeError::Config(e.to_string()))?;
        let bucket: String = config.bucket.clone();
        let op: Operator = Operator::new(builder)
            .map_err(|e| LakeError::Config(format!("S3 bucket {bucket}: {}", describe(&e))))?
            .layer(HttpClientLayer::new(HttpClient::with(http.clone())))
            .layer(
                TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            // Outside the timeouts, so a timed-out attempt is retried too.
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_max_times(RETRIES)
                    .with_notify(move |event: RetryEvent<'_>| {
                        tracing::warn!(
                            "S3 {} in s3://{bucket} failed (attempt {}), retrying in {:.1}s: {}",
                            event.op,
                            event.attempt,
                            event.retry_after.as_secs_f64(),
                            describe(event.err)
                        );
                    }),
            )
            .finish();
        Ok(S3Store {
            op,
            bucket: config.bucket.clone(),
            create: CreateBucket::new(config, &credentials, http),
        })
    }

    /// The bucket this store writes to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it does not exist yet (first start against a
    /// fresh MinIO, tests against moto); an already-owned bucket is fine.
    pub async fn ensure_bucket(&self) -> Result<(), LakeError> {
        self.create
            .send()
            .await
            .map_err(|message| self.error("create bucket", "", message))
    }

    fn error(&self, op: &'static str, key: &str, message: String) -> LakeError {
        LakeError::S3 {
            op,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message,
            refused: false,
        }
    }

    /// An OpenDAL error of `op` on `key`, refused when S3 said no for good
    /// (OpenDAL retried what was temporary already).
    fn failed(&self, op: &'static str, key: &str, e: &opendal::Error) -> LakeError {
        let refused = matches!(
            e.kind(),
            opendal::ErrorKind::PermissionDenied
                | opendal::ErrorKind::ConfigInvalid
                | opendal::ErrorKind::NotFound
                | opendal::ErrorKind::Unsupported
        );
        LakeError::S3 {
            op,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message: describe(e),
            refused,
        }
    }
}

/// An OpenDAL error in one line: its kind, S3's answer, and the cause
/// (connection refused, timeout, …). Its own Display would add every
/// response header.
fn describe(e: &opendal::Error) -> String {
    let mut text: String = format!("{}: {}", e.kind(), e.message());
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn object_meta(entry: &Entry) -> ObjectMeta {
    let meta = entry.metadata();
    ObjectMeta {
        key: entry.path().to_owned(),
        size: meta.content_length(),
        last_modified: meta
            .last_modified()
            .map(|t| DateTime::<Utc>::from(SystemTime::from(t)))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// One PutObject (a single write is sent whole on close): S3 makes the
    /// object visible whole or not at all.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        validate_key(key, false)?;
        self.op
            .write(key, bytes)
            .await
            .map_err(|e| self.failed("put", key, &e))?;
        Ok(())
    }

    /// One GetObject. A missing key is `None`; a missing bucket is an error
    /// (OpenDAL reports NoSuchBucket as a configuration problem).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        validate_key(key, false)?;
        match self.op.read(key).await {
            Ok(buffer) => Ok(Some(buffer.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed("get", key, &e)),
        }
    }

    /// ListObjectsV2 with the prefix as given and no delimiter, following
    /// continuation tokens past the 1000-key pages. "Folder" marker objects
    /// (keys ending in `/`) are not objects of the lake and are left out.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, LakeError> {
        validate_key(prefix, true)?;
        let entries: Vec<Entry> = self
            .op
            .list_with(prefix)
            .recursive(true)
            .await
            .map_err(|e| self.failed("list", prefix, &e))?;
        let mut out: Vec<ObjectMeta> = entries
            .iter()
            .filter(|entry| entry.metadata().mode().is_file())
            .map(object_meta)
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// DeleteObject; S3 (and OpenDAL) take a missing key as deleted.
    async fn delete(&self, key: &str) -> Result<(), LakeError> {
        validate_key(key, false)?;
        self.op
            .delete(key)
            .await
            .map_err(|e| self.failed("delete", key, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::{S3Config, S3Store};

    /// Stores end up in task contexts and error logs; their keys must not.
    #[test]
    fn debug_output_hides_the_keys() {
        let store = S3Store::new(&S3Config {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            region: "eu-west-1".to_owned(),
            bucket: "lake".to_owned(),
            path_style: true,
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI-secret".to_owned(),
            session_token: Some("session-secret".to_owned()),
        })
        .expect("store");
        let text = format!("{store:?}");
        assert!(text.contains("lake"), "{text}");
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
        assert!(!text.contains("session-secret"), "{text}");
    }
}
