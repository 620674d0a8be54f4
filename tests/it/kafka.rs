//! The stream consumers end to end: a real Kafka-API broker (tansu,
//! in-memory), `betflow scheduler` with `KAFKA_BROKERS` (the consumers run as
//! stream tasks of `live_streams`), the shared producer or `betflow stream
//! replay` publishing envelopes, and the serving tables in a throwaway
//! Postgres: odds, games, weather and news rows, dead letters for malformed,
//! oversized and rejected messages, and a consumer killed mid-stream that
//! restarts to the same tables as a clean run.

use crate::common::{children_named, Tansu, TestEnv};
use chrono::{DateTime, TimeDelta, Utc};
use dags::live::envelope::{Envelope, Kind, Topic, SCHEMA_VERSION};
use dags::live::games::{GameStatus, GameUpdate, Matchup};
use dags::live::news::NewsItem;
use dags::live::odds::OddsPayload;
use dags::live::weather::WeatherUpdate;
use sources::odds_api::{Bookmaker, Market, OddsEvent, OddsFormat, Outcome};
use streaming::kafka::producer::{ProduceError, Producer};
use streaming::kafka::KafkaSettings;

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
    poll_of(EVENT, at, a, b)
}

pub(crate) fn poll_of(
    event: &str,
    at: DateTime<Utc>,
    a: (f64, f64),
    b: (f64, f64),
) -> Envelope<OddsPayload> {
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
                id: event.to_string(),
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
    // Sliding windows: 10 minutes long, one starting every 5.
    env.spawn(
        &["scheduler"],
        &[
            ("KAFKA_BROKERS", &broker.bootstrap),
            ("BETFLOW_ODDS_WINDOW", "10m/5m"),
        ],
    );
    wait_until_assigned(&env, "odds_consumer", "betflow.odds.nba", 0);

    let topic = Topic::new(Kind::Odds, dags::sport("nba").expect("nba"));
    let name = topic.to_string();
    // A window boundary, so the last poll closes both windows holding the first two.
    let t0 = DateTime::from_timestamp(1_767_000_000 / 300 * 300, 0).expect("valid");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let malformed_offset: i64 = rt.block_on(async {
        let producer = Producer::new(&KafkaSettings::new(&broker.bootstrap).with_partitions(1))
            .expect("producer");
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
    // The best price of each outcome across bookmakers, at their latest polls.
    assert_eq!(
        env.sql(&format!(
            "SELECT outcome || ':' || best_bookmaker || ':' || best_decimal || ':' || bookmakers
             FROM serving.odds_best WHERE event_id = '{EVENT}' ORDER BY outcome"
        )),
        ["away:book_b:1.95:2", "home:book_a:1.95:2"]
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
    // The first two polls fall in the windows starting 5 minutes before
    // t0 and at t0; each window has both bookmakers' prices.
    env.wait_for(
        &format!(
            "SELECT string_agg(DISTINCT (extract(epoch FROM window_start)::bigint - {t})
                               || '+' || extract(epoch FROM window_end - window_start)::bigint
                               || ':' || events, ',')
             FROM serving.odds_windows
             WHERE event_id = '{EVENT}' AND window_start < to_timestamp({t} + 300)",
            t = t0.timestamp()
        ),
        "-300+600:2,0+600:2",
        30,
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
    // Lag per partition is measured against the broker: nothing left behind.
    env.wait_for(
        "SELECT health->>'lag_total' FROM stream_tasks WHERE task_id = 'odds_consumer' AND health ? 'lag' AND health->'lag' <> '{}'::jsonb",
        "0",
        30,
    );

    // A producer with a broken clock stamps one poll 2099: it is
    // dead-lettered as `future` and moves no watermark, so the true poll
    // after it is applied, not refused as late.
    let bogus = DateTime::parse_from_rfc3339("2099-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    rt.block_on(async {
        let producer = Producer::new(&KafkaSettings::new(&broker.bootstrap).with_partitions(1))
            .expect("producer");
        let mut from_2099 = poll(bogus, (3.00, 1.40), (3.00, 1.40));
        from_2099.ingest_time = t0 + TimeDelta::minutes(12);
        producer.publish(topic, &from_2099).await.expect("publish");
        producer
            .publish(
                topic,
                &poll(t0 + TimeDelta::minutes(13), (2.05, 1.85), (1.90, 1.95)),
            )
            .await
            .expect("publish");
    });
    env.wait_for(
        &format!(
            "SELECT string_agg(reason_code, ',' ORDER BY \"offset\") FROM serving.dead_letter WHERE topic = '{name}'"
        ),
        "bad_json,future",
        30,
    );
    env.wait_for(
        &format!(
            "SELECT price_decimal FROM serving.odds_latest
             WHERE event_id = '{EVENT}' AND bookmaker = 'book_a' AND outcome = 'home'"
        ),
        "2.05",
        30,
    );
    drop(broker);
}

/// Waits until the stream task `task_id`, restarted at least `restarts`
/// times, is assigned partitions of `topic` (its health lists their lag).
///
/// tansu's in-memory broker registers a new topic before it resets the
/// topic's partitions, so a record produced into a topic that a starting
/// consumer is still creating can vanish. A consumer is assigned only after
/// its topics exist: publishing after that is safe.
pub(crate) fn wait_until_assigned(env: &TestEnv, task_id: &str, topic: &str, restarts: i32) {
    env.wait_for(
        &format!(
            "SELECT count(*) FROM stream_tasks
             WHERE task_id = '{task_id}' AND state = 'running' AND restarts >= {restarts}
               AND EXISTS (SELECT 1 FROM jsonb_object_keys(health->'lag') k
                           WHERE k LIKE '{topic}/%')"
        ),
        "1",
        60,
    );
}

#[test]
fn a_broker_that_lost_its_log_is_consumed_afresh_not_skipped() {
    let mut env = TestEnv::start();
    let mut broker = Tansu::start(env.home.path());
    env.spawn(&["scheduler"], &[("KAFKA_BROKERS", &broker.bootstrap)]);
    wait_until_assigned(&env, "odds_consumer", "betflow.odds.nba", 0);
    let topic = Topic::new(Kind::Odds, dags::sport("nba").expect("nba"));
    let t0 = DateTime::from_timestamp(1_767_000_000, 0).expect("valid");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let publish = |bootstrap: &str, polls: &[Envelope<OddsPayload>]| {
        rt.block_on(async {
            let producer = Producer::new(
                &KafkaSettings::new(bootstrap)
                    .with_partitions(streaming::kafka::DEFAULT_PARTITIONS),
            )
            .expect("producer");
            producer.ensure_topics(&[topic]).await.expect("topics");
            for poll in polls {
                producer.publish(topic, poll).await.expect("publish");
            }
        });
    };
    let before: Vec<Envelope<OddsPayload>> = (0..5)
        .map(|i| poll(t0 + TimeDelta::seconds(i), (1.9, 1.9), (1.9, 1.9)))
        .collect();
    publish(&broker.bootstrap, &before);
    env.wait_for(
        "SELECT max(next_offset) FROM serving.consumer_checkpoints
         WHERE topic = 'betflow.odds.nba' AND group_id LIKE '%-odds'",
        "5",
        60,
    );

    // An in-memory broker restarted: the event's partition starts again at
    // offset 0, below its checkpoint, which must not make the new log look
    // applied.
    broker.kill();
    env.wait_for(
        "SELECT restarts > 0 FROM stream_tasks WHERE task_id = 'odds_consumer'",
        "t",
        60,
    );
    broker.start_empty_again();
    wait_until_assigned(&env, "odds_consumer", "betflow.odds.nba", 1);
    publish(
        &broker.bootstrap,
        &[poll(t0 + TimeDelta::minutes(1), (2.0, 1.8), (1.9, 1.9))],
    );
    env.wait_for(
        &format!(
            "SELECT price_decimal FROM serving.odds_latest
             WHERE event_id = '{EVENT}' AND bookmaker = 'book_a' AND outcome = 'home'"
        ),
        "2",
        120,
    );
    env.wait_for(
        "SELECT sum((health->>'log_restarts')::int) FROM stream_tasks
         WHERE task_id = 'odds_consumer'",
        "1",
        30,
    );
    env.wait_for(
        "SELECT max(next_offset) FROM serving.consumer_checkpoints
         WHERE topic = 'betflow.odds.nba' AND group_id LIKE '%-odds'",
        "1",
        30,
    );
}

#[test]
fn up_keeps_its_embedded_brokers_log_across_restarts() {
    let mut env = TestEnv::start();
    let up = |env: &mut TestEnv| -> u32 {
        let pid = env.spawn(
            &["up", "--port", "0"],
            &[("BETFLOW_EMBEDDED_KAFKA", "true")],
        );
        env.wait_for(
            "SELECT count(*) FROM stream_tasks
             WHERE task_id = 'odds_consumer' AND state = 'running'
               AND heartbeat_at > now() - interval '3 seconds'",
            "1",
            60,
        );
        pid
    };
    // `stream replay` finds the broker of the `up` running on its home.
    let replay = |env: &TestEnv| -> usize { published_by_kind(&replay_nfl_day(env, None))["odds"] };
    // Every partition's checkpoint: the odds messages applied in all.
    let applied = "SELECT coalesce(sum(next_offset), 0) FROM serving.consumer_checkpoints
                   WHERE topic = 'betflow.odds.nfl'";

    let first = up(&mut env);
    let odds: usize = replay(&env);
    assert!(odds > 0);
    env.wait_for(applied, &odds.to_string(), 90);
    assert!(
        env.path("kafka/tansu.db").is_file(),
        "no durable broker log: this tansu lacks SQLite support \
         (cargo install tansu --locked --features dynostore,postgres,libsql)"
    );
    let status = env.signal(first, nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{status:?}");

    // The log, the topics and the group's offsets are still there: the
    // second replay's messages continue the offsets instead of starting
    // over below the checkpoints.
    up(&mut env);
    assert_eq!(replay(&env), odds);
    env.wait_for(applied, &(2 * odds).to_string(), 90);
    assert_eq!(
        env.scalar(
            "SELECT coalesce(sum((health->>'log_restarts')::int), 0) FROM stream_tasks
             WHERE task_id = 'odds_consumer'"
        ),
        "0"
    );
}

/// `betflow stream replay` of the NFL's 2024-09-08 to `brokers` (else the
/// embedded broker of the `up` on the home); its output.
fn replay_nfl_day(env: &TestEnv, brokers: Option<&str>) -> String {
    let mut cmd = env.cmd(&[
        "stream",
        "replay",
        "--from",
        "2024-09-08",
        "--to",
        "2024-09-08",
        "--sport",
        "nfl",
    ]);
    if let Some(brokers) = brokers {
        cmd.env("KAFKA_BROKERS", brokers);
    }
    let out = cmd.output().expect("run betflow");
    let stdout = crate::common::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        crate::common::stderr(&out)
    );
    stdout
}

/// Distinct (event, market, bookmaker, outcome) of the replayed NFL odds of
/// 2024-09-08: the rows `serving.odds_latest` must end up with.
fn replayed_nfl_keys() -> usize {
    use sources::odds_api;
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
            let (markets, _) = dags::live::odds::book_markets(&payload, times.timestamp);
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

/// The replayed NFL day of the replay test: a generated Sunday (no capture),
/// so every game goes from scheduled to final.
fn replay_day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2024, 9, 8).expect("date")
}

/// `published N message(s) of T (games G, odds O, weather W), …` → kind → count.
fn published_by_kind(stdout: &str) -> std::collections::BTreeMap<String, usize> {
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    assert!(summary.contains(", 0 failed deliveries"), "{summary}");
    let inner = summary
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inner, _)| inner)
        .unwrap_or_else(|| panic!("no breakdown in {summary}"));
    inner
        .split(", ")
        .map(|part| {
            let (kind, n) = part.split_once(' ').expect("`kind n`");
            (kind.to_string(), n.parse().expect("count"))
        })
        .collect()
}

/// Waits until the newest health report of stream task `task` has `field` = `want`.
fn wait_for_health(env: &TestEnv, task: &str, field: &str, want: usize, secs: u64) {
    env.wait_for(
        &format!(
            "SELECT health->>'{field}' FROM stream_tasks WHERE task_id = '{task}'
             ORDER BY heartbeat_at DESC LIMIT 1"
        ),
        &want.to_string(),
        secs,
    );
}

#[test]
fn stream_replay_publishes_odds_games_weather_and_news_the_consumers_serve() {
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
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        crate::common::stderr(&out)
    );
    assert!(crate::common::stderr(&out).contains("KAFKA_BROKERS"));

    let broker = Tansu::start(env.home.path());
    env.spawn(&["scheduler"], &[("KAFKA_BROKERS", &broker.bootstrap)]);
    for task in [
        "odds_consumer",
        "games_consumer",
        "weather_consumer",
        "news_consumer",
    ] {
        env.wait_for(
            &format!(
                "SELECT state FROM stream_tasks WHERE dag_id = 'live_streams' AND task_id = '{task}'"
            ),
            "running",
            60,
        );
    }
    let stdout: String = replay_nfl_day(&env, Some(&broker.bootstrap));
    let published = published_by_kind(&stdout);
    for kind in ["odds", "games", "weather"] {
        assert!(published[kind] > 0, "no {kind} in {stdout}");
    }

    // Odds: every replayed (event, market, bookmaker, outcome).
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

    // Games: every game of the day ends final with the scoreboard's score,
    // its points by period summing to it.
    let nfl = dags::sport("nfl").expect("nfl");
    let games = dags::live::replay::games::replay(nfl, replay_day()).expect("games");
    assert!(games.records.len() >= 10, "{} games", games.records.len());
    let mut want: Vec<String> = games
        .records
        .iter()
        .map(|g| {
            format!(
                "{}|final|{}|{}|{}|t",
                g.game_id,
                g.home.score.unwrap_or(0),
                g.away.score.unwrap_or(0),
                g.home.linescores.len()
            )
        })
        .collect();
    want.sort();
    let query = "SELECT game_id, status, home_score, away_score, period,
            (SELECT sum((v->>0)::int + (v->>1)::int) FROM jsonb_each(period_points) AS p(k, v))
                = home_score + away_score
         FROM serving.game_state WHERE sport = 'nfl' ORDER BY game_id";
    env.wait_for(
        "SELECT count(*) FROM serving.game_state WHERE sport = 'nfl' AND status = 'final'",
        &want.len().to_string(),
        60,
    );
    assert_eq!(env.sql(query), want);
    // Box scores: each game's yardage leaders and both teams' records, as
    // the final poll had them.
    let mut leaders: Vec<String> = games
        .records
        .iter()
        .flat_map(|g| {
            g.box_score.leaders.iter().map(move |l| {
                format!(
                    "{}|{}|{}|{}|{}",
                    g.game_id, l.category, l.team_id, l.athlete, l.value
                )
            })
        })
        .collect();
    leaders.sort();
    assert!(!leaders.is_empty());
    env.wait_for(
        "SELECT count(*) FROM serving.game_leaders WHERE sport = 'nfl'",
        &leaders.len().to_string(),
        30,
    );
    assert_eq!(
        env.sql(
            "SELECT game_id, category, team_id, athlete, value FROM serving.game_leaders
             WHERE sport = 'nfl' ORDER BY 1, 2, 3"
        ),
        leaders
    );
    let mut records: Vec<String> = games
        .records
        .iter()
        .map(|g| {
            let r = |t: &sources::espn::TeamBox| t.record.clone().unwrap_or_default();
            format!(
                "{}|{}|{}",
                g.game_id,
                r(&g.box_score.home),
                r(&g.box_score.away)
            )
        })
        .collect();
    records.sort();
    assert_eq!(
        env.sql(
            "SELECT game_id, home_record, away_record FROM serving.game_state
             WHERE sport = 'nfl' ORDER BY game_id"
        ),
        records
    );

    // Weather: each outdoor venue's latest reading is its last replayed one.
    let weather =
        dags::live::replay::weather::replay(nfl, replay_day(), &games.records).expect("weather");
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    let mut sorted = weather.clone();
    sorted.sort_by_key(|m| m.time);
    for m in &sorted {
        let dags::live::replay::Replayed::Weather(w) = &m.payload else {
            panic!("not weather");
        };
        let num = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
        last.insert(
            w.venue_id.clone(),
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                w.venue_id,
                w.game_id,
                num(w.temperature_c),
                num(w.wind_speed_ms),
                num(w.precipitation_mm),
                num(w.humidity_pct),
                m.time.timestamp()
            ),
        );
    }
    assert!(last.len() >= 5, "{} outdoor venues", last.len());
    wait_for_health(
        &env,
        "weather_consumer",
        "messages",
        published["weather"],
        60,
    );
    assert_eq!(
        env.sql(
            "SELECT venue_id, game_id, temperature_c, wind_speed_ms, precipitation_mm,
                    humidity_pct, extract(epoch FROM event_time)::bigint
             FROM serving.weather_latest WHERE sport = 'nfl' ORDER BY venue_id"
        ),
        last.into_values().collect::<Vec<_>>()
    );

    // Every message was applied once by its consumer, none dead-lettered.
    wait_for_health(&env, "odds_consumer", "messages", published["odds"], 60);
    wait_for_health(&env, "games_consumer", "messages", published["games"], 60);
    // News: the recorded headlines naming NFL teams, each applied once.
    assert!(published["news"] > 0, "no news in {stdout}");
    wait_for_health(&env, "news_consumer", "messages", published["news"], 60);
    assert_ne!(
        env.scalar("SELECT count(*) FROM serving.news_sentiment WHERE sport = 'nfl'"),
        "0"
    );
    // Quotes a snapshot repeats unchanged are skipped, not reported late.
    assert_eq!(
        env.sql("SELECT topic || ' ' || reason FROM serving.dead_letter LIMIT 3"),
        Vec::<String>::new()
    );
    drop(broker);
}

fn envelope<P>(sport: &str, kind: Kind, at: DateTime<Utc>, payload: P) -> Envelope<P> {
    Envelope {
        schema_version: SCHEMA_VERSION,
        source: "test".to_string(),
        sport: sport.to_string(),
        kind,
        event_time: at,
        ingest_time: at + TimeDelta::seconds(1),
        payload,
    }
}

fn game(id: &str, status: GameStatus, period: u32, home: u32, away: u32) -> GameUpdate {
    GameUpdate {
        game_id: id.to_string(),
        status,
        period,
        clock: Some("0:00".to_string()),
        home_team_id: "h".to_string(),
        away_team_id: "a".to_string(),
        home_score: home,
        away_score: away,
        matchup: None,
        box_score: None,
    }
}

fn reading(wind: f64, humidity: f64) -> WeatherUpdate {
    WeatherUpdate {
        game_id: "wg-1".to_string(),
        venue_id: "v-1".to_string(),
        temperature_c: Some(10.5),
        wind_speed_ms: Some(wind),
        wind_deg: Some(200.0),
        precipitation_mm: Some(0.0),
        humidity_pct: Some(humidity),
        condition: Some("Clouds".to_string()),
    }
}

fn article(id: &str, team: &str, title: &str) -> NewsItem {
    NewsItem {
        item_id: id.to_string(),
        team_id: team.to_string(),
        source: Some("test".to_string()),
        title: title.to_string(),
        description: None,
    }
}

#[test]
fn games_weather_and_news_consumers_serve_rows_and_dead_letter_bad_messages() {
    let mut env = TestEnv::start();
    let broker = Tansu::start(env.home.path());
    env.spawn(&["scheduler"], &[("KAFKA_BROKERS", &broker.bootstrap)]);
    for (task, topic) in [
        ("games_consumer", "betflow.games.nba"),
        ("weather_consumer", "betflow.weather.nfl"),
        ("news_consumer", "betflow.news.nba"),
    ] {
        wait_until_assigned(&env, task, topic, 0);
    }
    let nba = dags::sport("nba").expect("nba");
    let nfl = dags::sport("nfl").expect("nfl");
    let (games, weather, news) = (
        Topic::new(Kind::Games, nba),
        Topic::new(Kind::Weather, nfl),
        Topic::new(Kind::News, nba),
    );
    // On a boundary of the 3- and 5-minute windows.
    let t0 = DateTime::from_timestamp(1_767_000_000 / 900 * 900, 0).expect("valid");
    let min = |m: i64| t0 + TimeDelta::minutes(m);
    let headlines = [
        ("n1", "t-1", 1, "Star guard injury, out for season"),
        (
            "n2",
            "t-1",
            2,
            "Celtics win fifth straight, dominant victory",
        ),
        ("n3", "t-2", 3, "Coach fired after slump"),
        ("n1", "t-1", 4, "Star guard injury, out for season"),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (bad_json, oversized, bad_text, late) = rt.block_on(async {
        let producer = Producer::new(&KafkaSettings::new(&broker.bootstrap).with_partitions(3))
            .expect("producer");
        producer
            .ensure_topics(&[games, weather, news])
            .await
            .expect("topics");
        use GameStatus::{Final, InProgress, Scheduled};
        for (m, u) in [
            (0, game("g-1", Scheduled, 0, 0, 0)),
            (10, game("g-1", InProgress, 1, 10, 8)),
            (20, game("g-1", InProgress, 2, 30, 35)),
            (30, game("g-1", InProgress, 3, 60, 58)),
            // Older than the game's latest: stale, not applied.
            (15, game("g-1", InProgress, 1, 20, 20)),
            (40, game("g-1", Final, 4, 100, 98)),
        ] {
            producer
                .publish(games, &envelope("nba", Kind::Games, min(m), u))
                .await
                .expect("publish");
        }
        let (_, bad_json) = producer
            .send_raw(&games.to_string(), Some(b"g-1"), b"{\"schema_version\": 1,")
            .await
            .expect("send malformed");
        // Over the default 256 KiB limit: never parsed.
        let huge = format!("{{\"padding\": \"{}\"}}", "x".repeat(300_000));
        let (_, oversized) = producer
            .send_raw(&games.to_string(), Some(b"g-1"), huge.as_bytes())
            .await
            .expect("send oversized");
        // A team name holding a NUL, which Postgres refuses: were it
        // upserted, the batch would fail and the partition with it.
        let mut spoiled = game("g-3", Scheduled, 0, 0, 0);
        spoiled.matchup = Some(Matchup {
            home_team: "Li\0ons".to_string(),
            away_team: "Bears".to_string(),
            start_time: min(0),
        });
        let (_, bad_text) = producer
            .publish(games, &envelope("nba", Kind::Games, min(41), spoiled))
            .await
            .expect("publish a NUL");
        // Processing continues after all three.
        producer
            .publish(
                games,
                &envelope("nba", Kind::Games, min(41), game("g-2", Scheduled, 0, 0, 0)),
            )
            .await
            .expect("publish");

        for (m, r) in [
            (0, reading(2.0, 60.0)),
            (60, reading(9.5, 65.0)),
            (120, reading(9.0, 150.0)),
        ] {
            producer
                .publish(weather, &envelope("nfl", Kind::Weather, min(m), r))
                .await
                .expect("publish");
        }

        for (id, team, m, title) in headlines {
            producer
                .publish(
                    news,
                    &envelope("nba", Kind::News, min(m), article(id, team, title)),
                )
                .await
                .expect("publish");
        }
        // Each team's partition moves past the window, closing it …
        for team in ["t-1", "t-2"] {
            producer
                .publish(
                    news,
                    &envelope(
                        "nba",
                        Kind::News,
                        min(20),
                        article(&format!("close-{team}"), team, "Returns healthy"),
                    ),
                )
                .await
                .expect("publish");
        }
        // … after which an article of the first window is late.
        let (_, late) = producer
            .publish(
                news,
                &envelope("nba", Kind::News, min(2), article("n9", "t-1", "Too late")),
            )
            .await
            .expect("publish");
        (bad_json, oversized, bad_text, late)
    });

    // Games: the final state, lead changes through a tie-free swing, points per period.
    env.wait_for(
        "SELECT count(*) FROM serving.game_state WHERE game_id = 'g-2'",
        "1",
        60,
    );
    assert_eq!(
        env.sql(
            "SELECT status, period, home_score, away_score, leader, lead_changes, pace_per_period,
                    period_points::text, jsonb_array_length(progression)
             FROM serving.game_state WHERE game_id = 'g-1'"
        ),
        [
            r#"final|4|100|98|home|2|49.5|{"1": [10, 8], "2": [20, 27], "3": [30, 23], "4": [40, 40]}|4"#
        ]
    );
    assert_eq!(
        env.scalar("SELECT status FROM serving.game_state WHERE game_id = 'g-2'"),
        "scheduled"
    );
    // Status transitions, each with its event time.
    assert_eq!(
        env.scalar(
            "SELECT string_agg(c->>'status', ' → ' ORDER BY (c->>'event_time')::timestamptz)
             FROM serving.game_state, jsonb_array_elements(status_history) AS c
             WHERE game_id = 'g-1'"
        ),
        "scheduled → in_progress → final"
    );
    assert_eq!(
        env.sql(&format!(
            "SELECT reason_code, \"offset\", length(payload) FROM serving.dead_letter
             WHERE topic = '{games}' AND reason_code IN ('bad_json', 'oversized') ORDER BY \"offset\""
        )),
        [
            format!("bad_json|{bad_json}|21"),
            format!("oversized|{oversized}|4096")
        ]
    );
    assert_eq!(
        env.sql(&format!(
            "SELECT \"offset\", reason FROM serving.dead_letter
             WHERE topic = '{games}' AND reason_code = 'bad_text'"
        )),
        [format!(
            "{bad_text}|payload text cannot be kept: home team name holds a NUL character"
        )]
    );
    assert_eq!(
        env.scalar("SELECT count(*) FROM serving.game_state WHERE game_id = 'g-3'"),
        "0"
    );
    assert_eq!(
        env.scalar(&format!(
            "SELECT reason_code || ':' || (event_time = to_timestamp({})) FROM serving.dead_letter
             WHERE topic = '{games}' AND reason_code NOT IN ('bad_json', 'oversized', 'bad_text')",
            min(15).timestamp()
        )),
        "stale:true"
    );

    // Weather: the latest valid reading and one wind alert; the invalid one dead-lettered.
    env.wait_for(
        &format!("SELECT count(*) FROM serving.dead_letter WHERE topic = '{weather}'"),
        "1",
        60,
    );
    assert_eq!(
        env.sql(
            "SELECT wind_speed_ms, wind_cardinal, humidity_pct, extract(epoch FROM event_time)::bigint
             FROM serving.weather_latest WHERE venue_id = 'v-1'"
        ),
        [format!("9.5|SW|65|{}", min(60).timestamp())]
    );
    assert_eq!(
        env.sql(
            "SELECT field, from_value, to_value FROM serving.weather_alerts WHERE venue_id = 'v-1'"
        ),
        ["wind_speed_ms|2|9.5"]
    );
    assert_eq!(
        env.scalar(&format!(
            "SELECT reason_code FROM serving.dead_letter WHERE topic = '{weather}'"
        )),
        "invalid"
    );

    // News: the first window per team, a re-sent article counted once
    // (lexicon scores computed the way the processor does).
    env.wait_for(
        &format!(
            "SELECT reason_code || ':' || \"offset\" FROM serving.dead_letter WHERE topic = '{news}'"
        ),
        &format!("late:{late}"),
        60,
    );
    let s = |t: &str| dags::live::news::sentiment(t);
    let want = [
        ("t-1", 2, (s(headlines[0].3) + s(headlines[1].3)) / 2.0),
        ("t-2", 1, s(headlines[2].3)),
    ];
    let rows = env.sql(&format!(
        "SELECT team_id, article_count, mean_sentiment FROM serving.news_sentiment
         WHERE window_start = to_timestamp({}) ORDER BY team_id",
        t0.timestamp()
    ));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, (team, count, mean)) in rows.iter().zip(want) {
        let cols: Vec<&str> = row.split('|').collect();
        assert_eq!(
            (cols[0], cols[1]),
            (team, count.to_string().as_str()),
            "{row}"
        );
        let got: f64 = cols[2].parse().expect("float");
        assert_eq!(got.to_bits(), mean.to_bits(), "{row} vs {mean}");
    }
    drop(broker);
}

/// Serving tables as compared between runs: every column but the sink's
/// own clock (`write_time`, `received_at`) and surrogate ids.
const COMPARED: &[&str] = &[
    "odds_latest",
    "odds_windows",
    "arbitrage_alerts",
    "game_state",
    "game_windows",
    "weather_latest",
    "weather_alerts",
    "news_sentiment",
    "dead_letter",
];

fn dump(env: &TestEnv) -> Vec<(String, Vec<String>)> {
    COMPARED
        .iter()
        .map(|t| {
            let rows = env.sql(&format!(
                "SELECT (to_jsonb(r) - 'write_time' - 'received_at' - 'id')::text AS row
                 FROM serving.{t} r ORDER BY row"
            ));
            (t.to_string(), rows)
        })
        .collect()
}

/// Empties the compared tables and the checkpoints, for a second run.
fn empty_serving_tables(env: &TestEnv) {
    let tables: Vec<String> = COMPARED.iter().map(|t| format!("serving.{t}")).collect();
    env.sql(&format!(
        "TRUNCATE {}, serving.consumer_checkpoints",
        tables.join(", ")
    ));
}

/// (topic, key, value) of one message to publish.
type Raw = (String, Vec<u8>, Vec<u8>);

/// (topic, partition) → next offset after what was published.
type Ends = std::collections::BTreeMap<(String, i32), i64>;

/// A producer whose delivery failed for good (its broker gone past the
/// message timeout, every attempt) starts over as a new producer, with a
/// new producer id, and publishes once its broker is back, here one that
/// came back empty, without the state of the old id.
#[test]
fn a_producer_whose_delivery_failed_starts_over_and_publishes_once_its_broker_is_back() {
    use std::sync::atomic::Ordering::Relaxed;
    let env = TestEnv::start();
    let mut broker = Tansu::start(env.home.path());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let topic = "betflow.test.start_over";
    let producer =
        Producer::new(&KafkaSettings::new(&broker.bootstrap).with_partitions(1)).expect("producer");
    rt.block_on(producer.ensure_topics(&[topic]))
        .expect("topic");
    rt.block_on(producer.send_raw(topic, Some(b"k"), b"1"))
        .expect("delivered");
    assert_eq!(producer.stats().started_over.load(Relaxed), 0);

    broker.kill();
    let failed = rt.block_on(producer.send_raw(topic, Some(b"k"), b"2"));
    assert!(
        matches!(failed, Err(ProduceError::Delivery { attempts: 3, .. })),
        "{failed:?}"
    );
    assert_eq!(producer.stats().started_over.load(Relaxed), 1);

    broker.start_empty_again();
    rt.block_on(producer.ensure_topics(&[topic]))
        .expect("topic");
    let delivered = rt
        .block_on(producer.send_raw(topic, Some(b"k"), b"3"))
        .unwrap_or_else(|e| panic!("{e}\n{}", broker.log()));
    assert_eq!(delivered, (0, 0), "the first record of the empty broker");
    assert_eq!(producer.stats().started_over.load(Relaxed), 1);
}

/// Publishes `messages` one at a time, in order, recording end offsets.
async fn publish_in_order(producer: &Producer, messages: &[Raw], ends: &mut Ends) {
    for (topic, key, value) in messages {
        let (partition, offset) = producer
            .send_raw(topic, Some(key), value)
            .await
            .expect("publish");
        ends.insert((topic.clone(), partition), offset + 1);
    }
}

/// A broker the stream tests run against: one of their own ([`Tansu`]),
/// or the one `betflow up` runs, under its watch ([`Supervised`]).
trait TestBroker {
    fn bootstrap(&self) -> &str;
    /// What it logged, for a failure's message.
    fn log(&self) -> String;
}

impl TestBroker for Tansu {
    fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn log(&self) -> String {
        Tansu::log(self)
    }
}

/// The broker `betflow up` embeds (tansu, its log in SQLite under the
/// home), watched by `up`'s own watch: started again when it exits or its
/// log shows a panic. Stopped when dropped.
struct Supervised {
    bootstrap: String,
    log: std::path::PathBuf,
    _watch: services::broker::BrokerWatch,
}

impl Supervised {
    fn start(home: &std::path::Path) -> Supervised {
        use services::broker::{Broker, BrokerLog, EmbeddedBroker};
        assert!(
            std::env::var("KAFKA_BROKERS").is_err()
                && std::env::var("BETFLOW_EMBEDDED_KAFKA").is_err(),
            "unset KAFKA_BROKERS and BETFLOW_EMBEDDED_KAFKA: this test runs `up`'s embedded broker"
        );
        let broker = EmbeddedBroker::start_if_wanted(home, BrokerLog::Durable)
            .expect("the embedded broker starts")
            .expect("tansu is installed (scripts/test installs it)");
        let bootstrap = broker.bootstrap.clone();
        let dir = broker
            .log_file
            .as_deref()
            .and_then(std::path::Path::parent)
            .expect("a durable broker's directory")
            .to_path_buf();
        let watch = Broker::Running(broker)
            .watch()
            .expect("the watch starts")
            .expect("a running broker is watched");
        Supervised {
            bootstrap,
            log: dir.join("tansu.log"),
            _watch: watch,
        }
    }

    /// The pid of the tansu child of this process listening on its
    /// address, once there is one that is not `not` (a broker the watch is
    /// replacing); other tests' brokers may be children too.
    fn pid_other_than(&self, not: Option<u32>) -> u32 {
        let url = format!("tcp://{}", self.bootstrap);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let ours: Vec<u32> = children_named(std::process::id(), "tansu")
                .into_iter()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&url))
                })
                .filter(|pid| Some(*pid) != not)
                .collect();
            if let [pid] = ours[..] {
                return pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no single broker on {url}: {ours:?}\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl TestBroker for Supervised {
    fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits until group `{prefix}-*` has checkpointed everything in `ends`;
/// on timeout, fails with the consumers' health and checkpoints.
fn wait_for_checkpoints(
    env: &TestEnv,
    broker: &dyn TestBroker,
    prefix: &str,
    ends: &Ends,
    secs: u64,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    env.wait_for(
        "SELECT to_regclass('serving.consumer_checkpoints') IS NOT NULL",
        "t",
        secs,
    );
    for ((topic, partition), next) in ends {
        let kind = topic.split('.').nth(1).expect("betflow.{kind}.{sport}");
        let query = format!(
            "SELECT coalesce(max(next_offset), -1) FROM serving.consumer_checkpoints
             WHERE group_id = '{prefix}-{kind}' AND topic = '{topic}' AND partition = {partition}"
        );
        loop {
            let got: i64 = env.scalar(&query).parse().unwrap_or(-1);
            if got == *next {
                break;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{prefix}: {topic}/{partition} checkpointed at {got}, want {next}\nhealth:\n{}\ncheckpoints:\n{}\nlog:\n{}\n--- proc 1:\n{}\nbroker on {prefix}-{kind}:\n{}",
                    env.sql("SELECT task_id, worker_id, state, health FROM stream_tasks ORDER BY task_id")
                        .join("\n"),
                    env.sql("SELECT group_id, topic, partition, next_offset, written_at FROM serving.consumer_checkpoints ORDER BY 1, 2, 3")
                        .join("\n"),
                    env.proc_log(0),
                    env.proc_log(1),
                    broker
                        .log()
                        .lines()
                        .filter(|l| l.contains(&format!("{prefix}-{kind}")))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Waits until the newest process's consumers have applied everything in `ends`.
fn wait_for_positions(env: &TestEnv, ends: &Ends, secs: u64) {
    for ((topic, partition), next) in ends {
        let kind = topic.split('.').nth(1).expect("betflow.{kind}.{sport}");
        env.wait_for(
            &format!(
                "SELECT health->'positions'->>'{topic}/{partition}' FROM stream_tasks
                 WHERE task_id = '{kind}_consumer' ORDER BY heartbeat_at DESC LIMIT 1"
            ),
            &next.to_string(),
            secs,
        );
    }
}

/// A replayed NFL Sunday (odds, score progressions, weather) and a day of
/// headlines, in event-time order.
fn replayed_sunday() -> Vec<Raw> {
    let nfl = dags::sport("nfl").expect("nfl");
    let day = dags::live::replay::replay_day(nfl, replay_day(), 60).expect("replay");
    let mut timed: Vec<(DateTime<Utc>, Raw)> = Vec::new();
    for m in &day.messages {
        let (key, value) = m.encode(m.time + TimeDelta::seconds(1)).expect("encode");
        timed.push((m.time, (m.topic().to_string(), key, value)));
    }
    let news = Topic::new(Kind::News, nfl);
    let titles = [
        "Quarterback injury, ruled out",
        "Defense dominant in victory",
        "Coach fired after slump",
        "Star receiver returns healthy",
        "Kicker struggles in loss",
    ];
    let start = day.messages.iter().map(|m| m.time).min().expect("messages");
    for i in 0..120_i64 {
        let team = format!("team-{}", i % 6);
        let at = start + TimeDelta::minutes(11 * i);
        let e = envelope(
            "nfl",
            Kind::News,
            at,
            article(&format!("a-{i}"), &team, titles[(i % 5) as usize]),
        );
        let (key, value) = dags::live::envelope::encode(&e).expect("encode");
        timed.push((at, (news.to_string(), key, value)));
    }
    timed.sort_by_key(|t| t.0);
    timed.into_iter().map(|(_, raw)| raw).collect()
}

/// The compared tables as a consumer group of its own (`clean`) leaves
/// them after consuming everything in `ends` from empty tables.
fn clean_run(
    env: &mut TestEnv,
    broker: &dyn TestBroker,
    ends: &Ends,
) -> Vec<(String, Vec<String>)> {
    empty_serving_tables(env);
    env.spawn(
        &["scheduler"],
        &[
            ("KAFKA_BROKERS", broker.bootstrap()),
            ("KAFKA_GROUP_PREFIX", "clean"),
        ],
    );
    wait_for_checkpoints(env, broker, "clean", ends, 120);
    dump(env)
}

/// Fails naming the first rows that differ when `got` (after a fault) is
/// not what the clean run left (`want`).
fn assert_same_tables(got: &[(String, Vec<String>)], want: &[(String, Vec<String>)], fault: &str) {
    for ((table, got), (_, want)) in got.iter().zip(want) {
        assert!(
            !want.is_empty() || table.ends_with("alerts") || table == "dead_letter",
            "clean run wrote no {table}"
        );
        if got != want {
            let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
            let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
            panic!(
                "serving.{table}: {} rows after {fault}, {} in the clean run\nmissing: {missing:#?}\nextra: {extra:#?}",
                got.len(),
                want.len()
            );
        }
    }
}

#[test]
fn a_consumer_killed_mid_stream_restarts_to_the_same_tables_as_a_clean_run() {
    use nix::sys::signal::Signal;

    let mut env = TestEnv::start();
    let broker = Tansu::start(env.home.path());
    let bootstrap: String = broker.bootstrap.clone();

    let messages: Vec<Raw> = replayed_sunday();
    let nfl = dags::sport("nfl").expect("nfl");
    let third = messages.len() / 3;
    assert!(third > 100, "{} messages", messages.len());

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let producer =
        Producer::new(&KafkaSettings::new(&bootstrap).with_partitions(3)).expect("producer");
    let topics: Vec<Topic> = [Kind::Odds, Kind::Games, Kind::Weather, Kind::News]
        .into_iter()
        .map(|k| Topic::new(k, nfl))
        .collect();
    rt.block_on(producer.ensure_topics(&topics))
        .expect("topics");
    let mut ends = Ends::new();

    // Crashed run: phase 1 applied and checkpointed; phase 2 applied but not
    // checkpointed (checkpoints 10 s apart) when the process is killed -9.
    rt.block_on(publish_in_order(&producer, &messages[..third], &mut ends));
    let crashed = env.spawn(
        &["scheduler"],
        &[
            ("KAFKA_BROKERS", &bootstrap),
            ("KAFKA_GROUP_PREFIX", "crash"),
            ("KAFKA_CHECKPOINT_MS", "10000"),
        ],
    );
    wait_for_checkpoints(&env, &broker, "crash", &ends, 90);
    rt.block_on(publish_in_order(
        &producer,
        &messages[third..2 * third],
        &mut ends,
    ));
    wait_for_positions(&env, &ends, 60);
    env.signal(crashed, Signal::SIGKILL);
    let behind: i64 = env
        .scalar("SELECT count(*) FROM serving.consumer_checkpoints WHERE group_id LIKE 'crash-%'")
        .parse()
        .expect("count");
    assert!(behind > 0);
    let replayed_from: Ends = env
        .sql("SELECT topic, partition, next_offset FROM serving.consumer_checkpoints WHERE group_id LIKE 'crash-%'")
        .iter()
        .map(|r| {
            let c: Vec<&str> = r.split('|').collect();
            ((c[0].to_string(), c[1].parse().expect("p")), c[2].parse().expect("o"))
        })
        .collect();
    assert!(
        replayed_from.iter().any(|(k, o)| ends.get(k).is_some_and(|e| o < e)),
        "the kill should leave applied messages past the checkpoints: {replayed_from:?} vs {ends:?}"
    );

    // Restarted: restores the checkpoints, re-applies phase 2, then phase 3.
    let restarted = env.spawn(
        &["scheduler"],
        &[
            ("KAFKA_BROKERS", &bootstrap),
            ("KAFKA_GROUP_PREFIX", "crash"),
        ],
    );
    rt.block_on(publish_in_order(
        &producer,
        &messages[2 * third..],
        &mut ends,
    ));
    wait_for_checkpoints(&env, &broker, "crash", &ends, 120);
    env.signal(restarted, Signal::SIGTERM);
    let after_crash = dump(&env);

    // Clean run over the same partitions, from empty tables.
    let clean = clean_run(&mut env, &broker, &ends);

    assert_same_tables(&after_crash, &clean, "the crash");
    let windows: usize = clean
        .iter()
        .filter(|(t, _)| t.ends_with("windows") || t == "news_sentiment")
        .map(|(_, rows)| rows.len())
        .sum();
    assert!(windows > 50, "{windows} window rows compared");
    drop(broker);
}

/// The broker dies mid-stream (killed -9) and `up`'s watch starts it again
/// with its log (tansu on SQLite, as `betflow up` runs and watches it):
/// the publisher's sends wait for it and the consumers reconnect; the log
/// holds every message once and the serving tables end as a clean run over
/// that log leaves them. tansu 0.6's SQLite storage has been seen to
/// panic on an idempotent producer's first send after such a restart and
/// then fail every produce; the watch starts a panicked broker again too.
#[test]
fn a_broker_killed_mid_stream_leaves_the_tables_of_a_clean_run() {
    use nix::sys::signal::Signal;

    let mut env = TestEnv::start();
    let broker = Supervised::start(env.home.path());
    let bootstrap: String = broker.bootstrap.clone();
    let messages: Vec<Raw> = replayed_sunday();
    let nfl = dags::sport("nfl").expect("nfl");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let producer =
        Producer::new(&KafkaSettings::new(&bootstrap).with_partitions(3)).expect("producer");
    let topics: Vec<Topic> = [Kind::Odds, Kind::Games, Kind::Weather, Kind::News]
        .into_iter()
        .map(|k| Topic::new(k, nfl))
        .collect();
    rt.block_on(producer.ensure_topics(&topics))
        .expect("topics");
    let live = env.spawn(
        &["scheduler"],
        &[
            ("KAFKA_BROKERS", &bootstrap),
            ("KAFKA_GROUP_PREFIX", "live"),
        ],
    );
    wait_until_assigned(&env, "odds_consumer", "betflow.odds.nfl", 0);

    // Half the day, then the broker is killed -9; the other half is sent
    // while it is down (each send waits for it) and after the watch has
    // started it again.
    let half = messages.len() / 2;
    let mut ends = Ends::new();
    rt.block_on(publish_in_order(&producer, &messages[..half], &mut ends));
    let killed: u32 = broker.pid_other_than(None);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(killed as i32), Signal::SIGKILL)
        .expect("kill tansu");
    rt.block_on(publish_in_order(&producer, &messages[half..], &mut ends));
    // The watch started another broker (or this waits for it, and fails).
    broker.pid_other_than(Some(killed));
    let in_log: i64 = ends.values().sum();
    assert_eq!(
        in_log,
        messages.len() as i64,
        "every message in the log once: {ends:?}"
    );
    wait_for_checkpoints(&env, &broker, "live", &ends, 120);
    env.signal(live, Signal::SIGTERM);
    let after_kill = dump(&env);

    // Clean run over the same log, from empty tables.
    let clean = clean_run(&mut env, &broker, &ends);
    assert_same_tables(&after_kill, &clean, "the broker was killed");
    drop(broker);
}

/// A member that gets a partition in a rebalance starts from the group's
/// last checkpoint. With tansu that offset often lies inside a record batch,
/// and tansu answers such a fetch from the next batch on; the consumer then
/// seeks back and skips what it applied, so no offset is lost.
#[test]
fn a_consumer_joining_during_catch_up_changes_nothing_in_the_serving_tables() {
    let mut env = TestEnv::start();
    let broker = Tansu::start(env.home.path());
    let bootstrap: String = broker.bootstrap.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let producer =
        Producer::new(&KafkaSettings::new(&bootstrap).with_partitions(3)).expect("producer");
    let topic = Topic::new(Kind::Odds, dags::sport("nba").expect("nba"));
    rt.block_on(producer.ensure_topics(std::slice::from_ref(&topic)))
        .expect("topic");

    // A backlog of 12 hours of polls of 60 events, a poll every second:
    // minutes of event time per batch, so re-applying even one batch of
    // a partition after a rebalance would put its polls behind the watermark.
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-10T12:00:00Z")
        .expect("time")
        .to_utc();
    let messages: Vec<Raw> = (0..43_200_i64)
        .map(|i| {
            let tick = (i % 17) as f64 / 100.0;
            let e = poll_of(
                &format!("evt-{}", i % 60),
                start + TimeDelta::seconds(i),
                (1.8 + tick, 2.1 - tick),
                (1.85 - tick, 2.0 + tick),
            );
            let (key, value) = dags::live::envelope::encode(&e).expect("encode");
            (topic.to_string(), key, value)
        })
        .collect();
    let mut ends = Ends::new();
    rt.block_on(async {
        use futures_util::StreamExt;
        let sent: Vec<(i32, i64)> = futures_util::stream::iter(&messages)
            .map(|(t, k, v)| async { producer.send_raw(t, Some(k), v).await.expect("publish") })
            .buffered(5_000)
            .collect()
            .await;
        for (partition, offset) in sent {
            let end = ends.entry((topic.to_string(), partition)).or_default();
            *end = (*end).max(offset + 1);
        }
    });

    // One consumer starts the catch-up; a second joins while it runs.
    // Small transactions keep the catch-up going for many seconds, so the
    // second member's join lands in the middle of it.
    let joins = |env: &mut TestEnv, prefix: &str| {
        env.spawn(
            &["scheduler"],
            &[
                ("KAFKA_BROKERS", &bootstrap),
                ("KAFKA_GROUP_PREFIX", prefix),
                ("KAFKA_BATCH_MAX", "10"),
                ("KAFKA_CHECKPOINT_MS", "200"),
            ],
        )
    };
    let first: u32 = joins(&mut env, "shared");
    env.wait_for(
        "SELECT (health->>'messages')::int > 1000 FROM stream_tasks
         WHERE task_id = 'odds_consumer'",
        "t",
        90,
    );
    let second: u32 = joins(&mut env, "shared");
    wait_for_checkpoints(&env, &broker, "shared", &ends, 240);
    let workers: Vec<String> = env.sql(
        "SELECT worker_id FROM stream_tasks
         WHERE task_id = 'odds_consumer' AND (health->>'messages')::int > 0",
    );
    assert_eq!(
        workers.len(),
        2,
        "both processes applied messages: {workers:?}"
    );
    let late: String =
        env.scalar("SELECT count(*) FROM serving.dead_letter WHERE reason_code = 'late'");
    assert_eq!(late, "0", "polls dead-lettered as late after the rebalance");
    let holes: String = env.scalar(
        "SELECT coalesce(sum((health->>'holes')::int), 0) FROM stream_tasks
         WHERE task_id = 'odds_consumer'",
    );
    assert_eq!(holes, "0", "offsets never applied after the rebalance");
    let shared = dump(&env);
    let health: Vec<String> = env.sql(
        "SELECT worker_id || ' ' || health::text FROM stream_tasks WHERE task_id = 'odds_consumer'",
    );
    for pid in [first, second] {
        env.signal(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let offsets_noted: Vec<String> = (0..2)
        .flat_map(|n| {
            env.proc_log(n)
                .lines()
                .filter(|l| l.contains("offset") && l.contains("odds"))
                .map(|l| format!("proc {n}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect();

    // The same backlog through one consumer, from empty tables.
    empty_serving_tables(&env);
    joins(&mut env, "alone");
    wait_for_checkpoints(&env, &broker, "alone", &ends, 240);
    let alone = dump(&env);
    for ((table, got), (_, want)) in shared.iter().zip(&alone) {
        let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
        let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
        assert!(
            got == want,
            "serving.{table}: {} rows with two consumers, {} with one\nmissing: {missing:#?}\nextra: {extra:#?}\nconsumers: {health:#?}\n{offsets_noted:#?}",
            got.len(),
            want.len()
        );
    }
    let windows: usize = alone
        .iter()
        .filter(|(t, _)| t == "odds_windows")
        .map(|(_, rows)| rows.len())
        .sum();
    assert!(windows > 1000, "{windows} window rows compared");
    drop(broker);
}

/// Every archived record in the lake, as (topic, partition, offset) → (key, value),
/// checking each object's key against its records on the way.
type Archived = std::collections::BTreeMap<(String, i32, i64), (Option<Vec<u8>>, Option<Vec<u8>>)>;

fn read_archive(env: &TestEnv, rt: &tokio::runtime::Runtime) -> (Archived, usize) {
    use dags::lake::ObjectStore;
    use streaming::kafka::archive::{archive_key, ArchivedRecord};
    let store = dags::lake::LocalStore::new(env.path("lake"));
    let objects = rt.block_on(store.list("raw/topics/")).expect("list");
    let mut archived = Archived::new();
    for meta in &objects {
        let gz = rt
            .block_on(store.get(&meta.key))
            .expect("get")
            .expect("listed object exists");
        let text = dags::lake::gunzip(&meta.key, &gz).expect("gzip");
        let records: Vec<ArchivedRecord> = std::str::from_utf8(&text)
            .expect("utf-8 ndjson")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect();
        let first = records.first().expect("no empty objects");
        let at =
            DateTime::from_timestamp_millis(first.timestamp_ms.expect("timestamp")).expect("valid");
        assert_eq!(
            meta.key,
            archive_key(
                &first.topic,
                at.date_naive(),
                chrono::Timelike::hour(&at),
                first.partition,
                first.offset
            )
        );
        for r in &records {
            assert_eq!((&r.topic, r.partition), (&first.topic, first.partition));
            let t = DateTime::from_timestamp_millis(r.timestamp_ms.expect("ts")).expect("valid");
            assert_eq!(
                t.format("%F %H").to_string(),
                at.format("%F %H").to_string()
            );
            let previous = archived.insert(
                (r.topic.clone(), r.partition, r.offset),
                (r.key_bytes(), r.value_bytes()),
            );
            assert!(
                previous.is_none(),
                "{}/{}@{} archived twice",
                r.topic,
                r.partition,
                r.offset
            );
        }
    }
    (archived, objects.len())
}

#[test]
fn the_topic_archive_holds_every_produced_record_exactly_once() {
    use nix::sys::signal::Signal;

    let mut env = TestEnv::start();
    let broker = Tansu::start(env.home.path());
    // The first process writes only full batches, so it commits offsets
    // inside the producer's record batches and dies with open batches.
    let brokers: &str = &broker.bootstrap;
    let archive_env = |flush_ms: &'static str| -> [(&str, &str); 3] {
        [
            ("KAFKA_BROKERS", brokers),
            ("KAFKA_ARCHIVE_FLUSH_MS", flush_ms),
            ("KAFKA_ARCHIVE_MAX_BYTES", "3000"),
        ]
    };
    let first = env.spawn(&["scheduler"], &archive_env("600000"));
    env.wait_for(
        "SELECT state FROM stream_tasks WHERE task_id = 'archive_consumer'",
        "running",
        60,
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let producer =
        Producer::new(&KafkaSettings::new(&broker.bootstrap).with_partitions(3)).expect("producer");
    let nba = dags::sport("nba").expect("nba");
    let topics: Vec<Topic> = [Kind::Odds, Kind::Games, Kind::News]
        .into_iter()
        .map(|k| Topic::new(k, nba))
        .collect();
    rt.block_on(producer.ensure_topics(&topics))
        .expect("topics");

    // Whatever arrives is archived as it came: envelopes, malformed text,
    // pretty-printed or padded JSON, binary keys and values, no key.
    let record = |i: usize| -> (String, Option<Vec<u8>>, Vec<u8>) {
        let topic = topics[i % topics.len()].to_string();
        let key: Option<Vec<u8>> = match i % 7 {
            0 => None,
            1 => Some(vec![0xff, 0xfe, i as u8]),
            _ => Some(format!("key-{}", i % 11).into_bytes()),
        };
        let value: Vec<u8> = match i % 5 {
            0 => format!("not json {i}").into_bytes(),
            1 => format!("{{\n  \"pretty\": {i}\n}}").into_bytes(),
            2 => vec![0xc3, 0x28, i as u8],
            3 => format!(" {{\"i\":{i}}}\r").into_bytes(),
            _ => format!(r#"{{"i":{i},"price":1.50,"name":"é"}}"#).into_bytes(),
        };
        (topic, key, value)
    };
    let mut produced: Archived = Archived::new();
    // A hundred in flight at a time: records share broker record batches.
    let mut publish = |from: usize, to: usize| {
        let (producer, record) = (&producer, &record);
        rt.block_on(async {
            use futures_util::StreamExt;
            let sent: Archived = futures_util::stream::iter(from..to)
                .map(|i| async move {
                    let (topic, key, value) = record(i);
                    let (partition, offset) = producer
                        .send_raw(&topic, key.as_deref(), &value)
                        .await
                        .expect("publish");
                    ((topic, partition, offset), (key, Some(value)))
                })
                .buffered(100)
                .collect()
                .await;
            produced.extend(sent);
        });
    };

    // Killed -9 while batches of both phases are open or being written.
    publish(0, 300);
    env.wait_for(
        "SELECT (health->>'records')::int >= 100 FROM stream_tasks
         WHERE task_id = 'archive_consumer' ORDER BY heartbeat_at DESC LIMIT 1",
        "t",
        60,
    );
    publish(300, 450);
    env.signal(first, Signal::SIGKILL);
    env.spawn(&["scheduler"], &archive_env("300"));
    publish(450, 600);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (archived, objects) = read_archive(&env, &rt);
        if archived.len() >= produced.len() {
            assert_eq!(archived, produced);
            assert!(objects > 20, "{objects} objects: batches are size-bounded");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} records archived; health: {:?}",
            archived.len(),
            produced.len(),
            env.sql(
                "SELECT worker_id, health FROM stream_tasks WHERE task_id = 'archive_consumer'"
            )
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    drop(broker);
}

/// Leader of `replay_publisher` among the processes: (worker, health).
fn publisher_roles(env: &TestEnv) -> Vec<String> {
    env.sql(
        "SELECT health->>'role' FROM stream_tasks
         WHERE task_id = 'replay_publisher' AND state = 'running'
           AND heartbeat_at > now() - interval '10 seconds'
         ORDER BY health->>'role'",
    )
}

#[test]
fn the_replay_publisher_feeds_the_consumers_live_and_one_process_leads() {
    use dags::live::publish::replay::day_start;
    let mut env = TestEnv::start();
    let broker = Tansu::start(env.home.path());
    // Two days back, so every game of that day is final by now.
    let today = dags::sports_day(Utc::now());
    let day = today - chrono::Days::new(2);
    let from = day_start(day).to_rfc3339();
    let publishing: [(&str, &str); 3] = [
        ("KAFKA_BROKERS", &broker.bootstrap),
        ("BETFLOW_LIVE_PUBLISH", "auto"),
        ("BETFLOW_REPLAY_FROM", &from),
    ];
    let leader = env.spawn(&["scheduler"], &publishing);
    // Generous: on a loaded 2-core machine the first publisher's start
    // (building the day's replay) has taken over a minute.
    env.wait_for(
        "SELECT health->>'role' FROM stream_tasks WHERE task_id = 'replay_publisher'",
        "leader",
        180,
    );
    // Every game of that day ends final, as the replay source played it.
    let mut want: Vec<String> = Vec::new();
    for sport in dags::SPORTS {
        let games = dags::live::replay::games::replay(sport, day).expect("games");
        want.extend(games.records.iter().map(|g| {
            format!(
                "{}|final|{}|{}",
                g.game_id,
                g.home.score.unwrap_or(0),
                g.away.score.unwrap_or(0)
            )
        }));
    }
    assert!(!want.is_empty(), "no games on {day}");
    want.sort();
    let ids: Vec<String> = want
        .iter()
        .map(|w| format!("'{}'", w.split('|').next().expect("id")))
        .collect();
    let finals = format!(
        "SELECT game_id, status, home_score, away_score FROM serving.game_state
         WHERE game_id IN ({}) AND status = 'final' ORDER BY game_id",
        ids.join(",")
    );
    // A whole day's odds go through the odds processor meanwhile (upserts
    // of 70,000 window rows took 2-3.5 s each beside the suite's Spark
    // test): the games' finals may take minutes to be served.
    env.wait_for(
        &format!("SELECT count(*) FROM ({finals}) f"),
        &want.len().to_string(),
        480,
    );
    assert_eq!(env.sql(&finals), want);
    // Odds of the day's events reached the odds processor with their ingest time.
    let odds: i64 = env
        .scalar(&format!(
            "SELECT count(*) FROM serving.odds_latest
             WHERE event_time >= '{from}' AND ingest_time >= event_time"
        ))
        .parse()
        .expect("count");
    assert!(odds > 0, "no odds served");

    // A second process joins once the catch-up is served: it waits on standby.
    let standby = env.spawn(&["scheduler"], &publishing);
    let mut roles = Vec::new();
    for _ in 0..60 {
        roles = publisher_roles(&env);
        if roles == ["leader", "standby"] {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_eq!(roles, ["leader", "standby"], "one publisher leads");

    // The leader dies: the standby takes over and resumes after the cursor.
    let cursor_before = env.scalar("SELECT published_through FROM serving.publisher_cursors");
    assert!(!cursor_before.is_empty(), "the leader saved its cursor");
    env.signal(leader, nix::sys::signal::Signal::SIGKILL);
    // As generous as the first start: the new leader builds the day's
    // replay too, which on a loaded machine has taken over a minute.
    let mut took_over = false;
    for _ in 0..180 {
        if publisher_roles(&env) == ["leader"] {
            took_over = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert!(
        took_over,
        "the standby took the lease: {:?}",
        publisher_roles(&env)
    );
    // It prepared the day's replay from the saved cursor and is publishing.
    env.wait_for(
        "SELECT count(*) FROM stream_tasks WHERE task_id = 'replay_publisher'
           AND state = 'running' AND health ? 'day_messages'
           AND heartbeat_at > now() - interval '10 seconds'",
        "1",
        180,
    );
    let late: i64 = env
        .scalar("SELECT count(*) FROM serving.dead_letter WHERE reason_code = 'late'")
        .parse()
        .expect("count");
    assert_eq!(
        late,
        0,
        "a takeover re-sends nothing behind the watermarks: {:?}",
        env.sql(
            "SELECT topic || ' ' || processor || ' ' || count(*) || ' ' || min(reason)
             FROM serving.dead_letter WHERE reason_code = 'late' GROUP BY topic, processor"
        )
    );
    let _ = standby;
    drop(broker);
}
