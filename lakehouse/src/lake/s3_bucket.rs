//! S3 CreateBucket, signed by hand: OpenDAL works inside an existing bucket
//! and has no call for it, and the lake creates its bucket on a fresh
//! MinIO or moto.

use std::time::Duration;

use super::s3::S3Config;
use crate::aws::{AwsCredentials, AwsSigner};

/// One small request; a minute without an answer is a hung connection.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Everything a CreateBucket of the configured bucket needs.
#[derive(Debug, Clone)]
pub(super) struct CreateBucket {
    http: reqwest::Client,
    signer: AwsSigner,
    /// The bucket's own URL, addressed as the store addresses it.
    url: String,
    region: String,
}

impl CreateBucket {
    pub(super) fn new(
        config: &S3Config,
        credentials: &AwsCredentials,
        http: reqwest::Client,
    ) -> Self {
        CreateBucket {
            http,
            signer: AwsSigner::new("s3", &config.region, credentials),
            url: bucket_url(config),
            region: config.region.clone(),
        }
    }

    /// PUTs the bucket; one that this account already owns is fine. The
    /// error is a one-line description (status, S3's code and message).
    pub(super) async fn send(&self) -> Result<(), String> {
        let request = http::Request::put(&self.url)
            .body(location_constraint(&self.region).into_bytes())
            .map_err(|e| format!("bad bucket URL {}: {e}", self.url))?;
        let mut request: reqwest::Request =
            self.signer.sign(request).await.map_err(|e| e.to_string())?;
        *request.timeout_mut() = Some(TIMEOUT);
        let response: reqwest::Response = self
            .http
            .execute(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text: String = response.text().await.map_err(|e| e.to_string())?;
        let code: Option<&str> = xml_element(&text, "Code");
        // us-east-1 answers 200 to a re-create; the other regions 409.
        if status.is_success() || code == Some("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(format!(
            "HTTP {status}: {}: {}",
            code.unwrap_or("no error code"),
            xml_element(&text, "Message").unwrap_or(text.trim())
        ))
    }
}

/// The bucket's URL as OpenDAL's S3 service builds it: `{endpoint}/{bucket}`
/// path-style, `{scheme}://{bucket}.{host}` virtual-hosted; AWS's endpoint
/// is `https://s3.{region}.amazonaws.com`.
fn bucket_url(config: &S3Config) -> String {
    let endpoint: String = match &config.endpoint {
        Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
        None => format!("https://s3.{}.amazonaws.com", config.region),
    };
    if config.path_style {
        format!("{endpoint}/{}", config.bucket)
    } else {
        endpoint.replacen("://", &format!("://{}.", config.bucket), 1)
    }
}

/// The request body: empty in us-east-1, the one region that rejects an
/// explicit constraint; the region everywhere else.
fn location_constraint(region: &str) -> String {
    if region == "us-east-1" {
        return String::new();
    }
    format!(
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
    )
}

/// The text of the first `<name>…</name>` in an S3 error document.
fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open: String = format!("<{name}>");
    let start: usize = xml.find(&open)? + open.len();
    let end: usize = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::{bucket_url, location_constraint, xml_element};
    use crate::lake::S3Config;

    fn config(endpoint: Option<&str>, path_style: bool) -> S3Config {
        S3Config {
            endpoint: endpoint.map(str::to_owned),
            region: "eu-west-1".to_owned(),
            bucket: "lake".to_owned(),
            path_style,
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "secret".to_owned(),
            session_token: None,
        }
    }

    #[test]
    fn bucket_urls_follow_the_addressing_style() {
        assert_eq!(
            bucket_url(&config(None, false)),
            "https://lake.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            bucket_url(&config(Some("http://127.0.0.1:9000/"), true)),
            "http://127.0.0.1:9000/lake"
        );
        assert_eq!(
            bucket_url(&config(Some("https://s3.example.com"), false)),
            "https://lake.s3.example.com"
        );
    }

    #[test]
    fn only_us_east_1_goes_without_a_location_constraint() {
        assert_eq!(location_constraint("us-east-1"), "");
        assert!(location_constraint("eu-west-1")
            .contains("<LocationConstraint>eu-west-1</LocationConstraint>"));
    }

    #[test]
    fn error_codes_are_read_from_s3_error_documents() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>BucketAlreadyExists</Code>\
                   <Message>The requested bucket name is not available.</Message></Error>";
        assert_eq!(xml_element(xml, "Code"), Some("BucketAlreadyExists"));
        assert_eq!(
            xml_element(xml, "Message"),
            Some("The requested bucket name is not available.")
        );
        assert_eq!(xml_element(xml, "RequestId"), None);
        assert_eq!(xml_element("", "Code"), None);
    }
}
