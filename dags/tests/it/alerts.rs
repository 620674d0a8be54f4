//! The alert webhook against a real receiver on loopback: alerts written
//! into `serving.market_alerts` as the odds consumer writes them, delivered
//! by `deliver_pending` to a local HTTP server that fails once before it
//! accepts, as a flaky webhook would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::serving_db::ServingDb;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use dags::live::notify::{deliver_pending, AlertWebhook, Delivered};
use serde_json::Value;

/// What the receiver saw, and how many requests it still fails.
#[derive(Default)]
struct Receiver {
    bodies: Vec<Value>,
    fail_next: u32,
    requests: u32,
}

async fn receive(State(r): State<Arc<Mutex<Receiver>>>, Json(body): Json<Value>) -> StatusCode {
    let mut r = r.lock().unwrap();
    r.requests += 1;
    if r.fail_next > 0 {
        r.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.bodies.push(body);
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_alerts_are_posted_once_retried_and_stale_ones_are_not_sent() {
    let db = ServingDb::start(4).await;
    let pool = db.pool.clone();
    sqlx::query(
        "INSERT INTO serving.odds_events (event_id, sport, home_team, away_team, commence_time, event_time)
         VALUES ('e-kc', 'nfl', 'Kansas City Chiefs', 'Baltimore Ravens', now() + interval '2 hours', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (kind, outcome, magnitude, first_seen) in [
        ("value", Some("away"), 0.0265, "now()"),
        ("arbitrage", None, 0.036, "now() - interval '3 hours'"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO serving.market_alerts (kind, sport, event_id, market, outcome, line,
                magnitude, bookmakers, detail, first_seen, last_seen)
             VALUES ($1, 'nfl', 'e-kc', 'h2h', $2, NULL, $3, ARRAY['b'], '{{}}', {first_seen}, now())"
        ))
        .bind(kind)
        .bind(outcome)
        .bind(magnitude)
        .execute(&pool)
        .await
        .unwrap();
    }

    let seen = Arc::new(Mutex::new(Receiver {
        fail_next: 1,
        ..Receiver::default()
    }));
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hook = AlertWebhook {
        url: format!("http://{addr}/hook"),
        max_age: Duration::from_secs(900),
        every: Duration::from_millis(100),
        backoff: Duration::from_millis(50),
    };
    let client = reqwest::Client::new();
    let first = deliver_pending(&pool, &client, &hook).await.unwrap();
    assert_eq!(
        first,
        Delivered {
            sent: 1,
            stale: 1,
            failed: 0
        }
    );
    {
        let r = seen.lock().unwrap();
        assert_eq!(r.requests, 2, "one 503, then the retry");
        assert_eq!(r.bodies.len(), 1);
        let body = &r.bodies[0];
        assert_eq!(
            body["text"],
            "value · NFL Baltimore Ravens @ Kansas City Chiefs · h2h away · edge +2.6% · b"
        );
        assert_eq!(body["alert"]["kind"], "value");
        assert_eq!(body["alert"]["bookmakers"], serde_json::json!(["b"]));
    }
    let marks: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT kind, notified_at IS NOT NULL, notify_error FROM serving.market_alerts ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(marks[0], ("value".to_owned(), true, None));
    assert!(
        marks[1].1 && marks[1].2.as_deref().unwrap_or("").contains("maximum age"),
        "{marks:?}"
    );

    // Nothing is sent twice.
    let again = deliver_pending(&pool, &client, &hook).await.unwrap();
    assert_eq!(again, Delivered::default());
    assert_eq!(seen.lock().unwrap().requests, 2);

    // A receiver that refuses (4xx) is not retried; the alert is given up
    // on with the reason, and the queue moves on.
    new_alert(&pool, "steam", "e-kc", "home").await;
    let refusing = AlertWebhook {
        url: format!("http://{addr}/no-such-path"),
        ..hook.clone()
    };
    let refused = deliver_pending(&pool, &client, &refusing).await.unwrap();
    assert_eq!(
        refused,
        Delivered {
            sent: 0,
            stale: 0,
            failed: 1
        }
    );
    let error: Option<String> =
        sqlx::query_scalar("SELECT notify_error FROM serving.market_alerts WHERE kind = 'steam'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(error.unwrap_or_default().contains("404"));
}

/// A new alert on an h2h market, first and last seen now; its id.
async fn new_alert(pool: &sqlx::PgPool, kind: &str, event: &str, outcome: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO serving.market_alerts (kind, sport, event_id, market, outcome, line,
            magnitude, bookmakers, detail, first_seen, last_seen)
         VALUES ($1, 'nfl', $2, 'h2h', $3, NULL, 0.02, ARRAY['a','b','c'], '{}', now(), now())
         RETURNING id",
    )
    .bind(kind)
    .bind(event)
    .bind(outcome)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A receiver that answers after `delay`, counting requests.
async fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Receiver>>) {
    let seen = Arc::new(Mutex::new(Receiver::default()));
    let app = Router::new()
        .route(
            "/slow",
            post(
                move |State(r): State<Arc<Mutex<Receiver>>>, Json(body): Json<Value>| async move {
                    r.lock().unwrap().requests += 1;
                    tokio::time::sleep(delay).await;
                    r.lock().unwrap().bodies.push(body);
                    StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/slow"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_times_out_and_never_holds_the_alerts_the_consumer_writes() {
    let db = ServingDb::start(4).await;
    let pool = db.pool.clone();
    let id = new_alert(&pool, "value", "e-slow", "home").await;

    let (url, seen) = slow_receiver(Duration::from_secs(30)).await;
    let hook = AlertWebhook {
        url,
        max_age: Duration::from_secs(900),
        every: Duration::from_millis(100),
        backoff: Duration::from_millis(50),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let delivery = tokio::spawn({
        let (pool, hook) = (pool.clone(), hook.clone());
        async move { deliver_pending(&pool, &client, &hook).await }
    });
    // While the receiver sits on the first request, the odds consumer
    // sees the alert again and updates its row: no lock is held on it.
    while seen.lock().unwrap().requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE serving.market_alerts SET last_seen = now(), times_seen = times_seen + 1 WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .expect("the consumer's update does not wait for the webhook");
    tx.commit().await.unwrap();

    let done = delivery.await.unwrap().unwrap();
    assert_eq!(
        done,
        Delivered {
            sent: 0,
            stale: 0,
            failed: 1
        }
    );
    assert_eq!(seen.lock().unwrap().requests, 3, "tried three times");
    let (error, times_seen): (Option<String>, i64) =
        sqlx::query_as("SELECT notify_error, times_seen FROM serving.market_alerts WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        error.as_deref(),
        Some("the webhook did not answer in time (after 3 tries)")
    );
    assert_eq!(times_seen, 2);

    // A slow receiver within the client's time is simply waited for.
    new_alert(&pool, "steam", "e-slow", "away").await;
    let (url, patient) = slow_receiver(Duration::from_millis(100)).await;
    let hook = AlertWebhook { url, ..hook };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let sent = deliver_pending(&pool, &client, &hook).await.unwrap();
    assert_eq!(sent.sent, 1, "{sent:?}");
    assert_eq!(patient.lock().unwrap().bodies.len(), 1);
}
