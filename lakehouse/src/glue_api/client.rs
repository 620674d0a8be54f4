//! The signed JSON client: one `call` per Glue operation, with the
//! retries the AWS SDKs' standard mode makes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{service_error, GlueApiError};
use crate::aws::{self, AwsCredentials, AwsSigner};

/// Attempts per call when the failure is transient: the AWS SDKs'
/// standard retry mode, which the callers' own retry budgets assume.
const MAX_ATTEMPTS: u32 = 3;

/// Wait before the first retry; doubled for the next.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A Glue client for one region and set of keys; no request is made until
/// the first call. Cheap to clone (the task's stop-on-drop guard holds a
/// clone), and the HTTPS client is the process's one.
#[derive(Clone, Debug)]
pub struct GlueClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `https://glue.{region}.amazonaws.com/`, or the configured endpoint.
    url: http::Uri,
    signer: AwsSigner,
    /// Bounds one attempt, answer included.
    attempt_timeout: Duration,
}

impl GlueClient {
    /// `endpoint`: `None` for AWS's own (a VPC endpoint or moto otherwise);
    /// `attempt_timeout` bounds one request.
    pub fn new(
        endpoint: Option<&str>,
        region: &str,
        credentials: &AwsCredentials,
        attempt_timeout: Duration,
    ) -> Result<Self, GlueApiError> {
        let inner = Inner {
            http: aws::http_client()?,
            url: endpoint_url(endpoint, region)?,
            signer: AwsSigner::new("glue", region, credentials),
            attempt_timeout,
        };
        Ok(GlueClient {
            inner: Arc::new(inner),
        })
    }

    /// Calls `operation` (`"GetTable"`, …) with `request` as its JSON input,
    /// retrying transient failures ([`GlueApiError::is_transient`]) up to
    /// three times in all (`MAX_ATTEMPTS`) with a jittered, doubling backoff.
    ///
    /// Non-idempotent operations are retried too, as the SDKs do: a
    /// StartJobRun whose answer was lost may start a second run.
    pub async fn call<Req, Resp>(
        &self,
        operation: &'static str,
        request: &Req,
    ) -> Result<Resp, GlueApiError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body: Vec<u8> = serde_json::to_vec(request)
            .map_err(|source| GlueApiError::Encode { operation, source })?;
        let mut backoff: Duration = FIRST_BACKOFF;
        let mut attempt: u32 = 1;
        loop {
            match self.call_once(operation, body.clone()).await {
                Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!("Glue {operation} attempt {attempt} failed, retrying: {e}");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One signed POST; a fresh signature per attempt, since it covers the
    /// time of signing.
    async fn call_once<Resp: DeserializeOwned>(
        &self,
        operation: &'static str,
        body: Vec<u8>,
    ) -> Result<Resp, GlueApiError> {
        let inner: &Inner = &self.inner;
        let request: http::Request<Vec<u8>> = http::Request::post(inner.url.clone())
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AWSGlue.{operation}"))
            .body(body)
            .map_err(|source| GlueApiError::Build { operation, source })?;
        let mut request: reqwest::Request = inner
            .signer
            .sign(request)
            .await
            .map_err(|source| GlueApiError::Sign { operation, source })?;
        *request.timeout_mut() = Some(inner.attempt_timeout);
        let transport = |source: reqwest::Error| GlueApiError::Transport { operation, source };
        let response: reqwest::Response = inner.http.execute(request).await.map_err(transport)?;
        let status: u16 = response.status().as_u16();
        let header = |name: &str| -> Option<String> {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let error_type: Option<String> = header("x-amzn-errortype");
        let request_id: Option<String> = header("x-amzn-requestid");
        let bytes = response.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(service_error(
                operation,
                status,
                error_type.as_deref(),
                request_id,
                &bytes,
            ));
        }
        // Operations without output answer `{}`; take an empty body as that.
        let json: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(json).map_err(|source| GlueApiError::Decode {
            operation,
            status,
            body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            source,
        })
    }
}

/// Glue's regional endpoint (`amazonaws.com.cn` in the China regions), or
/// the configured one, which must be an absolute http(s) URL: the signature
/// covers its host.
fn endpoint_url(endpoint: Option<&str>, region: &str) -> Result<http::Uri, GlueApiError> {
    let url: String = match endpoint {
        Some(endpoint) => format!("{}/", endpoint.trim_end_matches('/')),
        None if region.starts_with("cn-") => format!("https://glue.{region}.amazonaws.com.cn/"),
        None => format!("https://glue.{region}.amazonaws.com/"),
    };
    let unusable = |reason: String| GlueApiError::Endpoint {
        endpoint: endpoint.map_or_else(|| url.clone(), str::to_owned),
        reason,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| unusable(e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(unusable("expected http(s)://host[:port]".to_owned()));
    }
    Ok(uri)
}

/// Between half and all of `backoff`, so clients throttled together do not
/// retry together. RandomState's keys are random per instance, which is
/// randomness enough here without a dependency.
fn jittered(backoff: Duration) -> Duration {
    let unit: u64 = RandomState::new().hash_one("glue-backoff") % 1_000;
    backoff / 2 + backoff.mul_f64(unit as f64 / 2_000.0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{endpoint_url, jittered};

    #[test]
    fn endpoints_are_regional_or_configured() {
        let url = |endpoint: Option<&str>, region: &str| {
            endpoint_url(endpoint, region).map(|u| u.to_string())
        };
        assert_eq!(
            url(None, "eu-west-1").unwrap(),
            "https://glue.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            url(None, "cn-north-1").unwrap(),
            "https://glue.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            url(Some("http://127.0.0.1:5000/"), "us-east-1").unwrap(),
            "http://127.0.0.1:5000/"
        );
        for bad in [
            "127.0.0.1:5000",
            "glue.internal",
            "ftp://x",
            "http://bad host",
        ] {
            let err = url(Some(bad), "us-east-1").expect_err(bad).to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn backoff_is_jittered_within_half_to_full() {
        let backoff = Duration::from_millis(400);
        for _ in 0..100 {
            let wait = jittered(backoff);
            assert!(wait >= backoff / 2 && wait <= backoff, "{wait:?}");
        }
    }
}
