//! The S3 lake when S3 misbehaves, through a proxy in front of moto that
//! answers some requests itself: a write that meets 503 SlowDown a few
//! times is retried with backoff and lands; a write refused with 403
//! AccessDenied fails at once, naming the bucket and the key.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::support::{moto_lake, MotoServer};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use dags::lake::{S3Config, S3Store};
use lakehouse::lake::{LakeError, ObjectStore};

/// What the proxy does to PUTs.
#[derive(Clone, Copy)]
enum Fault {
    /// Answer this many PUTs with 503 SlowDown, then pass them on.
    SlowDown(u32),
    /// Answer this many PUTs with 500 InternalError, then pass them on.
    Internal(u32),
    /// Answer every PUT with 403 AccessDenied.
    Denied,
}

struct Faulty {
    moto: String,
    http: reqwest::Client,
    fault: Fault,
    /// PUTs seen, answered or passed on.
    puts: AtomicU32,
}

async fn proxy(State(s): State<Arc<Faulty>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    if parts.method == Method::PUT {
        let n = s.puts.fetch_add(1, Ordering::SeqCst);
        let refuse = match s.fault {
            Fault::SlowDown(times) if n < times => Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            )),
            Fault::Internal(times) if n < times => Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            )),
            Fault::Denied => Some((StatusCode::FORBIDDEN, "AccessDenied", "Access Denied")),
            Fault::SlowDown(_) | Fault::Internal(_) => None,
        };
        if let Some((status, code, message)) = refuse {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            );
            return Response::builder()
                .status(status)
                .header("content-type", "application/xml")
                .body(Body::from(xml))
                .expect("response");
        }
    }
    let url = format!(
        "{}{}",
        s.moto,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut forward = s
        .http
        .request(parts.method.clone(), url)
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = forward.send().await.expect("moto answers");
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let bytes = answer.bytes().await.expect("moto body");
    response.body(Body::from(bytes)).expect("response")
}

/// A store whose requests go through a faulty proxy to `moto`, and the
/// proxy's state.
async fn faulty_store(moto: &MotoServer, fault: Fault) -> (S3Store, Arc<Faulty>) {
    let direct: S3Config = moto_lake(moto).await;
    let state = Arc::new(Faulty {
        moto: moto.endpoint.clone(),
        http: reqwest::Client::new(),
        fault,
        puts: AtomicU32::new(0),
    });
    let app: Router = Router::new().fallback(proxy).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let store = S3Store::new(&S3Config {
        endpoint: Some(endpoint),
        ..direct
    })
    .expect("S3 client");
    (store, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_meets_slowdown_is_retried_and_lands() {
    let moto = MotoServer::start();
    let (store, proxy) = faulty_store(&moto, Fault::SlowDown(2)).await;
    store
        .put("raw/nfl/odds/a.json.gz", b"{\"ok\":true}".to_vec())
        .await
        .expect("the write lands after the throttling passes");
    assert_eq!(
        proxy.puts.load(Ordering::SeqCst),
        3,
        "two refused, one passed"
    );
    let back = store.get("raw/nfl/odds/a.json.gz").await.expect("get");
    assert_eq!(back.as_deref(), Some(&b"{\"ok\":true}"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_meets_internal_errors_is_retried_and_lands() {
    let moto = MotoServer::start();
    let (store, proxy) = faulty_store(&moto, Fault::Internal(2)).await;
    store
        .put("raw/nfl/odds/c.json.gz", b"{\"ok\":1}".to_vec())
        .await
        .expect("the write lands once the server recovers");
    assert_eq!(proxy.puts.load(Ordering::SeqCst), 3, "two 500s, one passed");
    let back = store.get("raw/nfl/odds/c.json.gz").await.expect("get");
    assert_eq!(back.as_deref(), Some(&b"{\"ok\":1}"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_with_403_fails_at_once_naming_bucket_and_key() {
    let moto = MotoServer::start();
    let (store, proxy) = faulty_store(&moto, Fault::Denied).await;
    let err = store
        .put("raw/nfl/odds/b.json.gz", b"x".to_vec())
        .await
        .expect_err("access denied");
    assert!(matches!(err, LakeError::S3 { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("s3://betflow-lake/raw/nfl/odds/b.json.gz"),
        "{text}"
    );
    assert!(
        text.contains("PermissionDenied") || text.contains("AccessDenied"),
        "{text}"
    );
    assert_eq!(proxy.puts.load(Ordering::SeqCst), 1, "no retry can help");
    assert!(!err.retry_can_help(), "{err}");
    assert_eq!(
        store.get("raw/nfl/odds/b.json.gz").await.expect("get"),
        None
    );
}
