//! moto with SigV4 checking on. moto accepts any signature unless told
//! otherwise, which would let a broken signer pass every other test; once
//! told, it recomputes each request's signature as botocore does and checks
//! the signer's IAM permissions, as AWS does.

use crate::support::MotoServer;
use lakehouse::aws::{AwsCredentials, AwsSigner};

/// Creates an IAM user allowed all of Glue and S3, then makes `moto` check
/// every later request's signature; returns the user's keys.
pub async fn require_signatures(moto: &MotoServer) -> AwsCredentials {
    let user = "betflow-signer";
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["glue:*","s3:*"],"Resource":"*"}]}"#;
    iam(moto, &[("Action", "CreateUser"), ("UserName", user)]).await;
    iam(
        moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", user),
            ("PolicyName", "betflow"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    let created = iam(moto, &[("Action", "CreateAccessKey"), ("UserName", user)]).await;
    let keys = AwsCredentials {
        access_key_id: xml_element(&created, "AccessKeyId"),
        secret_access_key: xml_element(&created, "SecretAccessKey"),
        session_token: None,
    };
    // moto's switch: check every request from the 0th on.
    let response = reqwest::Client::new()
        .post(format!("{}/moto-api/reset-auth", moto.endpoint))
        .body("0")
        .send()
        .await
        .expect("reset-auth");
    assert!(response.status().is_success(), "{}", response.status());
    keys
}

/// One IAM query-API call, made before signatures are checked; it is
/// signed all the same because moto routes by the signature's scope.
/// Returns the XML answer.
async fn iam(moto: &MotoServer, params: &[(&str, &str)]) -> String {
    let mut body: String = "Version=2010-05-08".to_owned();
    for (name, value) in params {
        body.push_str(&format!("&{name}={}", form_encode(value)));
    }
    let request = http::Request::post(format!("{}/", moto.endpoint))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into_bytes())
        .expect("IAM request");
    let anyone = AwsCredentials {
        access_key_id: "betflow-test".to_owned(),
        secret_access_key: "betflow-test-secret".to_owned(),
        session_token: None,
    };
    let request = AwsSigner::new("iam", "us-east-1", &anyone)
        .sign(request)
        .await
        .expect("signed");
    let response = reqwest::Client::new()
        .execute(request)
        .await
        .expect("IAM answers");
    let status = response.status();
    let text = response.text().await.expect("IAM body");
    assert!(status.is_success(), "IAM {params:?}: {status} {text}");
    text
}

fn xml_element(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + open.len();
    let end = start + xml[start..].find('<').expect("closing tag");
    xml[start..end].to_owned()
}

/// `application/x-www-form-urlencoded`, every byte but the unreserved ones
/// escaped.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
