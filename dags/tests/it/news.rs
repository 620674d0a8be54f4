//! The news source: the feed parser on hand-written RSS and Atom fixtures
//! (sources/fixtures/handwritten, no real RSS capture exists) and on the real
//! NewsAPI captures, and the feed client against a local HTTP server that
//! serves them, failing the ways real servers do.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sources::news::parse::{NEWSAPI_SOURCE, RSS_SOURCE};
use sources::news::{item_id, parse_feed, parse_newsapi, NewsClient, TeamMatcher};
use sources::replay::Replay;
use sources::{HttpConfig, SourceError};

const RSS: &str = "espn_style_nfl_news.rss.xml";
const ATOM: &str = "sample_news.atom.xml";

fn handwritten(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sources/fixtures/handwritten")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn real(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sources/fixtures/real")
        .join(file);
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("json")
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

#[test]
fn rss_items_parse_and_broken_ones_are_rejected_with_a_reason() {
    let v = parse_feed(&handwritten(RSS), "https://www.espn.com/espn/rss/nfl/news").unwrap();
    assert_eq!(v.good.len(), 3, "{:?}", v.good);
    let first = &v.good[0];
    assert_eq!(
        first.title,
        "Eagles rally late for dominant victory over Packers"
    );
    assert_eq!(
        first.summary.as_deref(),
        Some("Philadelphia's comeback in the fourth quarter clinches a week 1 win.")
    );
    assert_eq!(
        first.url,
        "https://www.espn.com/nfl/story/_/id/90000001/eagles-rally-late"
    );
    assert_eq!(first.item_id, item_id(&first.url));
    assert_eq!(first.published_at, utc("2024-09-08T23:40:12Z"));
    assert_eq!(first.source, "www.espn.com - NFL");
    // RFC 822 zone names: EST is UTC−5.
    assert_eq!(v.good[1].published_at, utc("2024-09-08T19:12:37Z"));
    assert_eq!(v.good[2].summary, None);

    let reasons: Vec<&str> = v.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "no link");
    assert!(reasons[1].starts_with("no date"), "{reasons:?}");
    assert!(v.rejected.iter().all(|r| r.source == RSS_SOURCE));
    assert_eq!(v.rejected[0].raw["title"], "Broken item: no link");
}

#[test]
fn atom_entries_parse_with_published_or_updated_dates() {
    let v = parse_feed(&handwritten(ATOM), "https://hockey.example.org/feed.atom").unwrap();
    assert_eq!(v.good.len(), 2);
    assert_eq!(v.good[0].title, "Capitals & Penguins trade wins");
    assert_eq!(
        v.good[0].summary.as_deref(),
        Some("Washington returns the favour in a strong second period.")
    );
    // `published` wins over `updated`; offsets are normalised to UTC.
    assert_eq!(v.good[0].published_at, utc("2024-10-13T00:15:00Z"));
    assert_eq!(v.good[0].source, "Hockey Desk");
    // No `published`: `updated` dates it; no summary: the content does.
    assert_eq!(v.good[1].published_at, utc("2024-10-12T18:30:00Z"));
    assert!(v.good[1]
        .summary
        .as_deref()
        .is_some_and(|s| s.contains("concussion")));
    assert_eq!(v.rejected.len(), 1);
    assert_eq!(v.rejected[0].reason, "no link");

    // Teams are matched in headline and summary; sentiment reads both.
    let nhl = TeamMatcher::for_sport("nhl").unwrap();
    let teams: Vec<String> = nhl
        .matches(&v.good[0].text())
        .into_iter()
        .map(|t| t.team_name)
        .collect();
    assert_eq!(teams, ["Washington Capitals", "Pittsburgh Penguins"]);
    assert!(dags::live::news::sentiment(&v.good[1].text()) < 0.0);
}

#[test]
fn a_document_that_is_not_a_feed_is_one_decode_error() {
    let e = parse_feed(b"<html><body>maintenance</body></html>", "https://x/feed").unwrap_err();
    assert!(matches!(e, SourceError::Decode { .. }), "{e}");
    assert!(parse_feed(b"not xml at all", "https://x/feed").is_err());
}

#[test]
fn the_newsapi_captures_parse_whole() {
    let sports = parse_newsapi(
        &real("newsapi_top-headlines_sports_softdev629.json"),
        "replay://a",
    )
    .unwrap();
    assert_eq!(sports.good.len(), 20);
    assert!(sports.rejected.is_empty());
    let cnn = sports
        .good
        .iter()
        .find(|i| i.source == "CNN")
        .expect("the CNN article");
    assert_eq!(
        cnn.title,
        "Memphis Grizzlies' Ja Morant apologizes after video appears to show him holding a gun"
    );
    let football = parse_newsapi(
        &real("newsapi_top-headlines_football_Arpana-Sitoula.json"),
        "replay://b",
    )
    .unwrap();
    assert_eq!(football.good.len(), 14);
    assert!(football.rejected.iter().all(|r| r.source == NEWSAPI_SOURCE));
}

#[test]
fn replay_moves_every_article_onto_the_requested_day() {
    let day = NaiveDate::from_ymd_opt(2024, 11, 3).expect("DST end day");
    let feeds = Replay.news(day).unwrap();
    assert_eq!(feeds.len(), 2);
    let mut n = 0;
    for f in &feeds {
        assert!(f.url.starts_with("replay://newsapi/"), "{}", f.url);
        let v = parse_newsapi(&serde_json::from_slice(&f.body).unwrap(), &f.url).unwrap();
        for item in &v.good {
            assert_eq!(dags::sports_day(item.published_at), day, "{item:?}");
        }
        n += v.good.len();
    }
    assert_eq!(n, 34);
    // Same day, same bytes.
    assert_eq!(Replay.news(day).unwrap()[0].body, feeds[0].body);
    // 2023-03-05T13:00:00Z was 08:00 in New York: it stays 08:00.
    let moved = sources::replay::onto_day(utc("2023-03-05T13:00:00Z"), day);
    assert_eq!(moved, utc("2024-11-03T13:00:00Z"));
}

/// `/nfl.xml` and `/nhl.atom` serve the fixtures; `/flaky.xml` answers 429
/// (Retry-After: 1) twice before the feed; `/down.xml` is a 503;
/// `/page.html` is not a feed.
async fn feed_server(flaky_hits: Arc<AtomicU32>) -> String {
    let rss = handwritten(RSS);
    let rss2 = rss.clone();
    let atom = handwritten(ATOM);
    let app = Router::new()
        .route("/nfl.xml", get(move || async move { rss }))
        .route("/nhl.atom", get(move || async move { atom }))
        .route(
            "/flaky.xml",
            get(move || {
                let hits = flaky_hits.clone();
                let body = rss2.clone();
                async move {
                    if hits.fetch_add(1, Ordering::SeqCst) < 2 {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "1")],
                            Vec::new(),
                        )
                            .into_response()
                    } else {
                        body.into_response()
                    }
                }
            }),
        )
        .route(
            "/down.xml",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route("/page.html", get(|| async { "<html>hello</html>" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

fn client() -> NewsClient {
    let mut c = HttpConfig::new(String::new(), 1000.0);
    c.backoff_base = Duration::from_millis(10);
    c.max_attempts = 3;
    NewsClient::new(c)
}

#[tokio::test]
async fn the_client_reads_rss_and_atom_over_http() {
    let base = feed_server(Arc::new(AtomicU32::new(0))).await;
    let rss = client()
        .fetch_items(&format!("{base}/nfl.xml"))
        .await
        .unwrap();
    assert_eq!((rss.good.len(), rss.rejected.len()), (3, 2));
    let atom = client()
        .fetch_items(&format!("{base}/nhl.atom"))
        .await
        .unwrap();
    assert_eq!((atom.good.len(), atom.rejected.len()), (2, 1));
    // The bytes stored in the lake are the server's, untouched.
    let fetched = client()
        .fetch_feed(&format!("{base}/nfl.xml"))
        .await
        .unwrap();
    assert_eq!(fetched.body, handwritten(RSS));
}

#[tokio::test]
async fn the_client_honours_retry_after_and_reports_what_failed() {
    let hits = Arc::new(AtomicU32::new(0));
    let base = feed_server(hits.clone()).await;
    let started = Instant::now();
    let v = client()
        .fetch_items(&format!("{base}/flaky.xml"))
        .await
        .unwrap();
    assert_eq!(v.good.len(), 3);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "two Retry-After: 1 waits, not the 10 ms backoff"
    );

    let e = client()
        .fetch_items(&format!("{base}/down.xml"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SourceError::RetriesExhausted { attempts: 3, .. }),
        "{e}"
    );
    let e = client()
        .fetch_items(&format!("{base}/page.html"))
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("/page.html"), "{e}");
}
