//! The production backend: any S3 API (AWS, MinIO, moto) through aws-sdk-s3.
//!
//! The client is built directly from [`S3Config`] (static credentials, region,
//! optional endpoint and path-style addressing) rather than through
//! aws-config's provider chain: BetFlow's settings come from a handful of
//! variables, and skipping aws-config keeps the build small. The pieces
//! every BetFlow AWS client shares (credentials, HTTPS on rustls/aws-lc-rs,
//! timeouts, region variables) live in [`crate::aws`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};

use super::{validate_key, LakeError, ObjectMeta, ObjectStore};
use crate::aws::{self, AwsCredentials};
use orchestrator::setting::{self, Lookup, SettingError};

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
}

/// A lake in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    region: String,
}

impl S3Store {
    /// Builds the client; no request is made until the first operation.
    pub fn new(config: &S3Config) -> Result<Self, LakeError> {
        if config.bucket.is_empty() {
            return Err(LakeError::Config("empty bucket name".to_owned()));
        }
        let credentials = aws::static_credentials(
            &config.access_key_id,
            &config.secret_access_key,
            config.session_token.as_deref(),
        );
        let mut builder = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .http_client(aws::https_client())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.path_style)
            // Whole raw-day objects go up in one PutObject.
            .timeout_config(aws::timeouts(Duration::from_secs(300)));
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            region: config.region.clone(),
        })
    }

    /// The bucket this store writes to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it does not exist yet (first start against a
    /// fresh MinIO, tests against moto); an already-owned bucket is fine.
    pub async fn ensure_bucket(&self) -> Result<(), LakeError> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region that rejects an explicit constraint.
        if self.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error("create bucket", "", e)),
        }
    }

    fn error<E, R>(&self, op: &'static str, key: &str, err: SdkError<E, R>) -> LakeError
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        LakeError::S3 {
            op,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message: DisplayErrorContext(&err).to_string(),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// One PutObject: S3 makes the object visible whole or not at all.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        validate_key(key, false)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("put", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        validate_key(key, false)?;
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let output = match response {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None)
            }
            Err(e) => return Err(self.error("get", key, e)),
        };
        let body = output.body.collect().await.map_err(|e| LakeError::S3 {
            op: "get (reading body)",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    /// ListObjectsV2, following continuation tokens past the 1000-key pages.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, LakeError> {
        validate_key(prefix, true)?;
        let mut out: Vec<ObjectMeta> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("list", prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let last_modified = object
                    .last_modified()
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                    last_modified,
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated().unwrap_or(false) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), LakeError> {
        validate_key(key, false)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("delete", key, e))?;
        Ok(())
    }
}
