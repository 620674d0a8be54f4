//! What BetFlow's AWS clients share: the region and static keys from the
//! settings, SigV4 signing and one HTTPS client.
//!
//! BetFlow makes a handful of S3 and Glue calls, so it signs them itself
//! with reqsign (the signer OpenDAL's S3 service uses) rather than pulling
//! in the AWS SDKs and their ~1M lines of generated code. Nothing here reads
//! the environment, `~/.aws` or the instance metadata service: the keys and
//! region come from BetFlow's settings, so the S3 lake and the Glue clients
//! cannot disagree about them.

use std::sync::OnceLock;
use std::time::Duration;

use orchestrator::setting::{Lookup, SettingError};
use reqsign_aws_v4::{Credential, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};

/// Region when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set: SigV4
/// has no default of its own and every signature names one.
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

    /// reqsign's provider for exactly these keys: unlike its default chain,
    /// it never looks at the environment, files or IMDS.
    pub fn provider(&self) -> StaticCredentialProvider {
        let provider = StaticCredentialProvider::new(&self.access_key_id, &self.secret_access_key);
        match &self.session_token {
            Some(token) => provider.with_session_token(token),
            None => provider,
        }
    }
}

/// SigV4 for one service (`glue`, `s3`) in one region with fixed keys.
#[derive(Clone, Debug)]
pub struct AwsSigner {
    signer: Signer<Credential>,
}

impl AwsSigner {
    pub fn new(service: &str, region: &str, credentials: &AwsCredentials) -> Self {
        // Context::new() has no file system, HTTP client or environment: a
        // static provider and RequestSigner need none of them.
        let signer: Signer<Credential> = Signer::new(
            Context::new(),
            credentials.provider(),
            RequestSigner::new(service, region),
        );
        AwsSigner { signer }
    }

    /// Signs `request` (Authorization, X-Amz-Date, X-Amz-Security-Token,
    /// x-amz-content-sha256) and turns it into a reqwest request.
    ///
    /// The payload hash is set from the body before signing: without the
    /// header reqsign signs `UNSIGNED-PAYLOAD`, which S3 accepts but Glue
    /// and every other service reject.
    pub async fn sign(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<reqwest::Request, SignError> {
        let (mut parts, body) = request.into_parts();
        let hash = http::HeaderValue::from_str(&reqsign_core::hash::hex_sha256(&body))
            .map_err(|e| SignError::Sign(e.into()))?;
        parts.headers.insert("x-amz-content-sha256", hash);
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(SignError::Sign)?;
        // reqsign adds Host (the URI's authority); reqwest sets the same one
        // itself, as OpenDAL's S3 service relies on too.
        parts.headers.remove(http::header::HOST);
        reqwest::Request::try_from(http::Request::from_parts(parts, body)).map_err(SignError::Url)
    }
}

/// Why a request could not be signed; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing the request failed: {0}")]
    Sign(#[source] reqsign_core::Error),
    #[error("the request URL is not usable: {0}")]
    Url(#[source] reqwest::Error),
}

/// The HTTPS client could not be built (rustls found no usable setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTPS client for AWS: {0}")]
pub struct HttpsError(#[source] reqwest::Error);

/// The process's one HTTPS client for AWS (rustls on aws-lc-rs, like every
/// reqwest 0.13 in the workspace), built on first use: a client per Glue
/// task or lake would set up TLS and connection pools again each time.
///
/// Only the connect timeout is set (an unreachable endpoint fails fast);
/// each API bounds its own requests, a Glue poll far tighter than a
/// raw-day PutObject.
pub fn http_client() -> Result<reqwest::Client, HttpsError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client: reqwest::Client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(HttpsError)?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

#[cfg(test)]
mod tests {
    use super::{AwsCredentials, AwsSigner};

    fn credentials(session_token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn header<'a>(request: &'a reqwest::Request, name: &str) -> &'a str {
        request
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("ASCII header")
    }

    /// Glue rejects a signature over `UNSIGNED-PAYLOAD`, and moto does not
    /// check: the body hash must be there, and signed, with the target.
    #[tokio::test]
    async fn signatures_cover_the_body_hash_and_the_target() {
        let signer = AwsSigner::new("glue", "eu-west-1", &credentials(Some("session")));
        let request = http::Request::post("https://glue.eu-west-1.amazonaws.com/")
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSGlue.GetTable")
            .body(b"{}".to_vec())
            .expect("request");
        let signed = signer.sign(request).await.expect("signed");
        // sha256("{}")
        assert_eq!(
            header(&signed, "x-amz-content-sha256"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(header(&signed, "x-amz-security-token"), "session");
        let authorization = header(&signed, "authorization");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert!(
            authorization.contains("/eu-west-1/glue/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains(
                "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-security-token;x-amz-target"
            ),
            "{authorization}"
        );
        // reqwest sets Host itself, from the same URL.
        assert!(signed.headers().get("host").is_none());
        assert_eq!(signed.body().and_then(|b| b.as_bytes()), Some(&b"{}"[..]));
    }

    #[test]
    fn debug_hides_the_secret_and_token() {
        let text = format!("{:?}", credentials(Some("session-secret")));
        assert!(text.contains("AKIDEXAMPLE"), "{text}");
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
        assert!(!text.contains("session-secret"), "{text}");
    }
}
