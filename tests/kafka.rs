//! The odds consumer end to end: a real Kafka-API broker (tansu, in-memory),
//! `betflow scheduler` with `KAFKA_BROKERS` (the consumer runs as a stream
//! task of `live_streams`), the shared producer publishing envelopes, and the
//! serving tables in a throwaway Postgres.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Tansu, TestEnv};
use dags::sources::odds_api::{Bookmaker, Market, OddsEvent, OddsFormat, Outcome};
use dags::stream::envelope::{Envelope, Kind, Topic, SCHEMA_VERSION};
use dags::stream::kafka::producer::Producer;
use dags::stream::odds::OddsPayload;

const EVENT: &str = "evt-kafka-1";

fn market(book: &str, home: f64, away: f64) -> Bookmaker {
    Bookmaker {
        key: book.to_string(),
        title: None,
        last_update: None,
        markets: vec![Market {
            key: "h2h".to_string(),
            last_update: None,
            outcomes: vec![
                Outcome {
                    name: "Home Team".to_string(),
                    price: home,
                    point: None,
                    description: None,
                },
                Outcome {
                    name: "Away Team".to_string(),
                    price: away,
                    point: None,
                    description: None,
                },
            ],
        }],
    }
}

/// One poll of the event: both bookmakers' h2h prices (decimal) at `at`.
fn poll(at: DateTime<Utc>, a: (f64, f64), b: (f64, f64)) -> Envelope<OddsPayload> {
    Envelope {
        schema_version: SCHEMA_VERSION,
        source: "test".to_string(),
        sport: "nba".to_string(),
        kind: Kind::Odds,
        event_time: at,
        ingest_time: at + TimeDelta::seconds(2),
        payload: OddsPayload {
            odds_format: OddsFormat::Decimal,
            event: OddsEvent {
                id: EVENT.to_string(),
                sport_key: Some("basketball_nba".to_string()),
                sport_title: None,
                commence_time: at + TimeDelta::hours(3),
                home_team: "Home Team".to_string(),
                away_team: "Away Team".to_string(),
                bookmakers: vec![market("book_a", a.0, a.1), market("book_b", b.0, b.1)],
            },
        },
    }
}

#[test]
fn odds_consumer_upserts_serving_rows_dead_letters_and_arbitrage() {
    let mut env = TestEnv::start();
    let broker = Tansu::start(env.home.path());
    env.spawn(&["scheduler"], &[("KAFKA_BROKERS", &broker.bootstrap)]);
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE dag_id = 'live_streams' AND task_id = 'odds_consumer'",
        "running",
        60,
    );

    let topic = Topic::new(Kind::Odds, dags::sport("nba").expect("nba"));
    let name = topic.to_string();
    // A window boundary (5-minute windows), so the last poll closes the first window.
    let t0 = DateTime::from_timestamp(1_767_000_000 / 300 * 300, 0).expect("valid");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let malformed_offset: i64 = rt.block_on(async {
        let producer = Producer::new(&broker.bootstrap, 1).expect("producer");
        producer.ensure_topics(&[topic]).await.expect("topics");
        // No arbitrage: 1/1.9 + 1/1.95 > 1.
        producer
            .publish(topic, &poll(t0, (1.90, 1.90), (1.85, 1.95)))
            .await
            .expect("publish");
        let (_, bad) = producer
            .send_raw(&name, Some(EVENT.as_bytes()), b"{not an envelope")
            .await
            .expect("send malformed");
        // Arbitrage: best home 2.15 (book_a), best away 2.10 (book_b); 1/2.15 + 1/2.10 < 1.
        producer
            .publish(
                topic,
                &poll(t0 + TimeDelta::seconds(60), (2.15, 1.75), (1.80, 2.10)),
            )
            .await
            .expect("publish");
        // Past the first window plus the allowed lateness: closes it.
        producer
            .publish(
                topic,
                &poll(t0 + TimeDelta::minutes(11), (1.95, 1.90), (1.90, 1.95)),
            )
            .await
            .expect("publish");
        assert_eq!(
            producer
                .stats()
                .failed
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        bad
    });

    env.wait_for(
        &format!(
            "SELECT count(*) || ':' || min(price_decimal) || ':' || max(price_decimal)
             FROM serving.odds_latest WHERE event_id = '{EVENT}'"
        ),
        "4:1.9:1.95",
        60,
    );
    env.wait_for(
        &format!(
            "SELECT reason_code || ':' || \"offset\" FROM serving.dead_letter WHERE topic = '{name}'"
        ),
        &format!("bad_json:{malformed_offset}"),
        30,
    );
    // Opening lines survive later updates.
    assert_eq!(
        env.scalar(&format!(
            "SELECT open_decimal || '@' || extract(epoch FROM open_time)::bigint
             FROM serving.odds_latest
             WHERE event_id = '{EVENT}' AND bookmaker = 'book_a' AND outcome = 'home'"
        )),
        format!("1.9@{}", t0.timestamp())
    );
    let alert = env.sql(&format!(
        "SELECT market, margin > 0 AND margin < 0.1, jsonb_array_length(legs),
                extract(epoch FROM event_time)::bigint
         FROM serving.arbitrage_alerts WHERE event_id = '{EVENT}'"
    ));
    assert_eq!(
        alert,
        [format!(
            "h2h|t|2|{}",
            (t0 + TimeDelta::seconds(60)).timestamp()
        )]
    );
    env.wait_for(
        &format!(
            "SELECT count(DISTINCT bookmaker) FROM serving.odds_windows
             WHERE event_id = '{EVENT}' AND window_start = to_timestamp({})",
            t0.timestamp()
        ),
        "2",
        30,
    );
    // Offsets are committed after the upserts: the health counts every message.
    env.wait_for(
        "SELECT health->>'messages' FROM stream_tasks WHERE task_id = 'odds_consumer'",
        "4",
        30,
    );
    drop(broker);
}
