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

/// Distinct (event, market, bookmaker, outcome) of the replayed NFL odds of
/// 2024-09-08: the rows `serving.odds_latest` must end up with.
fn replayed_nfl_keys() -> usize {
    use dags::sources::odds_api;
    use std::collections::BTreeSet;
    let nfl = dags::sport("nfl").expect("nfl");
    let day = chrono::NaiveDate::from_ymd_opt(2024, 9, 8).expect("date");
    let minutes = dags::ingest::DEFAULT_ODDS_SNAPSHOT_MINUTES;
    let mut keys: BTreeSet<(String, String, String, &'static str)> = BTreeSet::new();
    for f in dags::ingest::odds::replay_day(nfl, day, minutes).expect("replay") {
        let body: serde_json::Value = serde_json::from_slice(&f.body).expect("json");
        let (times, checked) =
            odds_api::validate_historical(&body, OddsFormat::American).expect("snapshot");
        for event in checked.good {
            let payload = OddsPayload {
                odds_format: OddsFormat::American,
                event,
            };
            let (markets, _) = dags::stream::odds::book_markets(&payload, times.timestamp);
            for m in markets {
                for q in &m.quotes {
                    keys.insert((
                        m.event_id.clone(),
                        m.market.clone(),
                        m.bookmaker.clone(),
                        q.side.as_str(),
                    ));
                }
            }
        }
    }
    keys.len()
}

#[test]
fn stream_replay_publishes_a_day_of_odds_the_consumer_serves() {
    let mut env = TestEnv::start();

    // No brokers: a one-line usage error.
    let out = env.run(&[
        "stream",
        "replay",
        "--from",
        "2024-09-08",
        "--to",
        "2024-09-08",
        "--sport",
        "nfl",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("KAFKA_BROKERS"));

    let broker = Tansu::start(env.home.path());
    env.spawn(&["scheduler"], &[("KAFKA_BROKERS", &broker.bootstrap)]);
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE dag_id = 'live_streams' AND task_id = 'odds_consumer'",
        "running",
        60,
    );
    let out = env
        .cmd(&[
            "stream",
            "replay",
            "--from",
            "2024-09-08",
            "--to",
            "2024-09-08",
            "--sport",
            "nfl",
        ])
        .env("KAFKA_BROKERS", &broker.bootstrap)
        .output()
        .expect("run betflow");
    let stdout = common::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        common::stderr(&out)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let published: usize = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad summary {summary}"));
    assert!(published > 0, "{summary}");
    assert!(summary.contains(", 0 failed deliveries"), "{summary}");

    let expected = replayed_nfl_keys();
    assert!(expected > 0);
    env.wait_for(
        "SELECT count(*) FROM serving.odds_latest WHERE sport = 'nfl'",
        &expected.to_string(),
        90,
    );
    let events: usize = env
        .scalar("SELECT count(DISTINCT event_id) FROM serving.odds_latest WHERE sport = 'nfl'")
        .parse()
        .expect("count");
    assert!(events >= 10, "{events} distinct events");
    env.wait_for(
        "SELECT health->>'messages' FROM stream_tasks WHERE task_id = 'odds_consumer'",
        &published.to_string(),
        60,
    );
    drop(broker);
}
