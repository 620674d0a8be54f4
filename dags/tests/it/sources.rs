//! The source clients against a local HTTP server that serves the real
//! recorded payloads (sources/fixtures/real) at the real API paths, plus routes
//! that fail the ways real APIs do (429, 5xx, malformed JSON, slowness).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::Value;
use sources::espn::{EspnClient, GameState};
use sources::odds_api::{OddsApiClient, OddsFormat, Side};
use sources::replay::Replay;
use sources::weather::{CurrentWeather, OpenMeteoClient, OpenWeatherClient, Units};
use sources::{ApiKey, HttpConfig, RateLimiter, SourceError};

const SECRET: &str = "sekret-key-123";

fn fixture_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sources/fixtures/real")
        .join(file)
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(fixture_path(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

#[derive(Default)]
struct Server {
    /// Requests per capture name.
    hits: Mutex<HashMap<String, u32>>,
    /// Every request's path and query, in order.
    requests: Mutex<Vec<String>>,
}

fn respond(status: u16, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
    let mut b = Response::builder().status(StatusCode::from_u16(status).expect("status"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body)).expect("response")
}

/// The path suffix a fixture must be requested at: the real API's.
fn expected_suffix(file: &str) -> &'static str {
    if file.contains("_scoreboard_") {
        "/scoreboard"
    } else if file.contains("_summary_") {
        "/summary"
    } else if file.contains("_odds") {
        "/odds"
    } else if file.contains("_scores_") {
        "/scores"
    } else if file.starts_with("openweather") {
        "/data/2.5/weather"
    } else {
        "/v1/archive"
    }
}

/// `/{capture}/{real API path}`: the base URL's first segment picks what to
/// serve, so each client can be pointed at one capture.
async fn serve(State(state): State<Arc<Server>>, uri: Uri) -> Response {
    let path: &str = uri.path();
    let (capture, api_path) = path[1..]
        .split_once('/')
        .map(|(c, r)| (c, format!("/{r}")))
        .unwrap_or((&path[1..], String::new()));
    let capture: String = capture.to_string();
    let hit: u32 = {
        let mut hits = state.hits.lock().expect("lock");
        let n = hits.entry(capture.clone()).or_insert(0);
        *n += 1;
        *n
    };
    state
        .requests
        .lock()
        .expect("lock")
        .push(format!("{api_path}?{}", uri.query().unwrap_or("")));
    let quota: [(&str, &str); 3] = [
        ("x-requests-remaining", "480"),
        ("x-requests-used", "20"),
        ("x-requests-last", "3"),
    ];
    match capture.as_str() {
        "flaky429" if hit == 1 => respond(429, &[("retry-after", "1")], b"slow down".to_vec()),
        "flaky500" if hit <= 2 => respond(500, &[], b"internal error".to_vec()),
        "flaky429" | "flaky500" => respond(200, &[], fixture("espn_nfl_scoreboard_vasqued2.json")),
        "down" => respond(
            503,
            &[],
            format!("unavailable, {}", "x".repeat(2000)).into_bytes(),
        ),
        "forbidden" => respond(401, &[], br#"{"message":"Invalid API key"}"#.to_vec()),
        "malformed" => respond(
            200,
            &[],
            br#"{"events": [ {"id": "1", "competitions": "#.to_vec(),
        ),
        // A body past the client's limit, sent in one piece and in many.
        "huge" => respond(200, &[], vec![b' '; 64 * 1024]),
        "huge-chunked" => {
            let chunks = futures_util::stream::iter(
                (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])),
            );
            Response::new(Body::from_stream(chunks))
        }
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            respond(200, &[], b"{}".to_vec())
        }
        "corrupt-espn" => {
            let mut v: Value =
                serde_json::from_slice(&fixture("espn_nfl_scoreboard_vasqued2.json"))
                    .expect("json");
            v["events"][3]["competitions"][0]["competitors"] = Value::Array(Vec::new());
            respond(200, &[], serde_json::to_vec(&v).expect("json"))
        }
        "corrupt-odds" => {
            let mut v: Value =
                serde_json::from_slice(&fixture("theoddsapi_nfl_odds_jonathaanh.json"))
                    .expect("json");
            v[2]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = Value::from("abc");
            v[5]["bookmakers"][1]["markets"][0]["outcomes"]
                .as_array_mut()
                .expect("outcomes")
                .truncate(1);
            respond(200, &quota, serde_json::to_vec(&v).expect("json"))
        }
        file => {
            let file: String = format!("{file}.json");
            if !fixture_path(&file).exists() || !api_path.ends_with(expected_suffix(&file)) {
                return respond(404, &[], format!("no {file} at {api_path}").into_bytes());
            }
            let headers: &[(&str, &str)] = if api_path.starts_with("/v4/") {
                &quota
            } else {
                &[]
            };
            respond(200, headers, fixture(&file))
        }
    }
}

struct TestServer {
    base: String,
    state: Arc<Server>,
}

impl TestServer {
    async fn start() -> Self {
        let state: Arc<Server> = Arc::new(Server::default());
        let app: Router = Router::new().fallback(serve).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            base: format!("http://{addr}"),
            state,
        }
    }

    /// Fast-retrying settings against capture `capture`.
    fn config(&self, capture: &str) -> HttpConfig {
        let mut c: HttpConfig = HttpConfig::new(format!("{}/{capture}", self.base), 1000.0);
        c.backoff_base = Duration::from_millis(10);
        c.max_attempts = 3;
        c
    }

    fn hits(&self, capture: &str) -> u32 {
        self.state
            .hits
            .lock()
            .expect("lock")
            .get(capture)
            .copied()
            .unwrap_or(0)
    }

    fn last_request(&self) -> String {
        self.state
            .requests
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn sport(key: &str) -> &'static dags::Sport {
    dags::sport(key).expect("sport")
}

#[tokio::test]
async fn every_espn_scoreboard_fixture_parses_with_expected_counts() {
    let server = TestServer::start().await;
    // (capture, sport, events, pre, in, post) from SOURCES.md.
    let cases: &[(&str, &str, usize, usize, usize, usize)] = &[
        ("espn_nfl_scoreboard_vasqued2", "nfl", 16, 6, 8, 2),
        ("espn_nfl_scoreboard_smythmyke", "nfl", 16, 15, 0, 1),
        (
            "espn_nfl_scoreboard_2023_week5_pregame",
            "nfl",
            14,
            14,
            0,
            0,
        ),
        ("espn_nba_scoreboard_andrewscheiner", "nba", 11, 11, 0, 0),
        ("espn_nba_scoreboard_JoeyG1973", "nba", 1, 0, 1, 0),
        ("espn_nhl_scoreboard_vasqued2", "nhl", 10, 2, 5, 3),
        (
            "espn_college-football_scoreboard_vasqued2",
            "ncaaf",
            25,
            7,
            17,
            1,
        ),
        (
            "espn_college-football_scoreboard_herumph",
            "ncaaf",
            3,
            0,
            0,
            3,
        ),
    ];
    let date = NaiveDate::from_ymd_opt(2022, 9, 11).expect("date");
    for &(capture, key, total, pre, live, post) in cases {
        let client = EspnClient::new(server.config(capture)).expect("client");
        let games = client.games(sport(key), Some(date)).await.expect(capture);
        assert_eq!(
            server.last_request(),
            format!(
                "/apis/site/v2/sports/{}/scoreboard?dates=20220911",
                sport(key).espn_path
            )
        );
        assert!(
            games.rejected.is_empty(),
            "{capture}: {:?}",
            games.rejected.first().map(|r| &r.reason)
        );
        let count = |s: GameState| games.good.iter().filter(|g| g.state == s).count();
        assert_eq!(
            (
                games.good.len(),
                count(GameState::Pre),
                count(GameState::In),
                count(GameState::Post)
            ),
            (total, pre, live, post),
            "{capture}"
        );
        for g in games.good.iter().filter(|g| g.state == GameState::Post) {
            let sum = |l: &[u32]| l.iter().sum::<u32>();
            if !g.home.linescores.is_empty() {
                assert_eq!(
                    Some(sum(&g.home.linescores)),
                    g.home.score,
                    "{capture} {}",
                    g.game_id
                );
                assert_eq!(
                    Some(sum(&g.away.linescores)),
                    g.away.score,
                    "{capture} {}",
                    g.game_id
                );
            }
        }
        let typed = client.scoreboard(sport(key), None).await.expect(capture);
        assert_eq!(typed.events.len(), total);
    }
}

#[tokio::test]
async fn espn_scoreboard_details() {
    let server = TestServer::start().await;
    let client = EspnClient::new(server.config("espn_nfl_scoreboard_smythmyke")).expect("client");
    let games = client.games(sport("nfl"), None).await.expect("games");
    let final_game = games
        .good
        .iter()
        .find(|g| g.state == GameState::Post)
        .expect("post game");
    assert_eq!(final_game.home.abbreviation.as_deref(), Some("PHI"));
    assert_eq!(final_game.away.abbreviation.as_deref(), Some("DAL"));
    assert_eq!(
        (final_game.home.score, final_game.away.score),
        (Some(24), Some(20))
    );
    assert_eq!(final_game.season, Some(2025));
    assert_eq!(final_game.week, Some(1));
    assert!(final_game.venue.as_ref().is_some_and(|v| v.city.is_some()));

    let client = EspnClient::new(server.config("espn_nba_scoreboard_JoeyG1973")).expect("client");
    let live = &client.games(sport("nba"), None).await.expect("games").good[0];
    assert_eq!(live.state, GameState::In);
    assert_eq!((live.period, live.clock.as_str()), (4, "8:41"));
    assert_eq!(
        (
            live.home.abbreviation.as_deref(),
            live.home.score,
            live.away.score
        ),
        (Some("BOS"), Some(87), Some(92))
    );

    let client =
        EspnClient::new(server.config("espn_college-football_scoreboard_herumph")).expect("client");
    let games = client.games(sport("ncaaf"), None).await.expect("games");
    // SOURCES.md says all three have overtime linescores, but TCU @ ASU
    // ended in regulation (4 quarters); the other two went to OT / 2OT.
    let overtime: Vec<(usize, bool)> = games
        .good
        .iter()
        .map(|g| (g.home.linescores.len(), g.overtime(4)))
        .collect();
    assert_eq!(overtime, vec![(6, true), (4, false), (5, true)]);
}

#[tokio::test]
async fn espn_summaries_parse() {
    let server = TestServer::start().await;
    // (capture, sport, event id, state)
    let cases: &[(&str, &str, &str, GameState)] = &[
        (
            "espn_nfl_summary_smythmyke",
            "nfl",
            "401547505",
            GameState::Post,
        ),
        (
            "espn_nba_summary_smythmyke",
            "nba",
            "401585135",
            GameState::Post,
        ),
        (
            "espn_nba_summary_cwhitelam",
            "nba",
            "401705066",
            GameState::In,
        ),
        (
            "espn_nhl_summary_smythmyke",
            "nhl",
            "401559489",
            GameState::Post,
        ),
        (
            "espn_college-football_summary_herumph",
            "ncaaf",
            "401760379",
            GameState::In,
        ),
    ];
    for &(capture, key, id, state) in cases {
        let client = EspnClient::new(server.config(capture)).expect("client");
        let raw = client.fetch_summary(sport(key), id).await.expect(capture);
        assert!(server
            .last_request()
            .ends_with(&format!("/summary?event={id}")));
        let payload: Value = raw.decode("espn").expect("json");
        let games = sources::espn::validate_summary(key, &payload);
        assert!(
            games.rejected.is_empty(),
            "{capture}: {:?}",
            games.rejected.first().map(|r| &r.reason)
        );
        let game = &games.good[0];
        assert_eq!(
            (game.game_id.as_str(), game.state),
            (id, state),
            "{capture}"
        );
        assert!(game.venue.is_some(), "{capture} venue from gameInfo");
        client.summary(sport(key), id).await.expect(capture);
    }
    let client = EspnClient::new(server.config("espn_nfl_summary_smythmyke")).expect("client");
    let payload: Value = client
        .fetch_summary(sport("nfl"), "401547505")
        .await
        .expect("s")
        .decode("espn")
        .expect("json");
    let game = &sources::espn::validate_summary("nfl", &payload).good[0];
    assert_eq!((game.home.score, game.away.score), (Some(43), Some(20)));
    assert_eq!(game.attendance, Some(93448));
    assert_eq!(game.week, Some(8));
}

#[tokio::test]
async fn odds_fixtures_parse_in_both_formats() {
    let server = TestServer::start().await;
    // (capture, sport, format, events, distinct bookmakers)
    let cases: &[(&str, &str, OddsFormat, usize, usize)] = &[
        (
            "theoddsapi_nfl_odds_jonathaanh",
            "nfl",
            OddsFormat::American,
            16,
            21,
        ),
        (
            "theoddsapi_nba_odds_jonathaanh",
            "nba",
            OddsFormat::American,
            14,
            21,
        ),
        (
            "odds_api_v4_nfl_odds_h2h_american_2023-02-06",
            "nfl",
            OddsFormat::American,
            1,
            19,
        ),
        (
            "theoddsapi_nfl_odds_5050club",
            "nfl",
            OddsFormat::Decimal,
            24,
            1,
        ),
    ];
    for &(capture, key, format, events, books) in cases {
        let client = OddsApiClient::new(server.config(capture), ApiKey::new(SECRET))
            .expect("client")
            .with_odds_format(format);
        let got = client.odds(sport(key)).await.expect(capture);
        let request: String = server.last_request();
        assert!(
            request.starts_with(&format!("/v4/sports/{}/odds?", sport(key).odds_api_key)),
            "{request}"
        );
        assert!(
            request.contains("regions=us") && request.contains("markets=h2h%2Cspreads%2Ctotals"),
            "{request}"
        );
        assert!(request.contains(&format!("apiKey={SECRET}")), "{request}");
        let odds = got.value;
        assert!(
            odds.rejected.is_empty(),
            "{capture}: {:?}",
            odds.rejected.first().map(|r| &r.reason)
        );
        assert_eq!(odds.good.len(), events, "{capture}");
        let distinct: std::collections::BTreeSet<&str> = odds
            .good
            .iter()
            .flat_map(|e| e.bookmakers.iter().map(|b| b.key.as_str()))
            .collect();
        assert_eq!(distinct.len(), books, "{capture}");
        let quotes = odds
            .good
            .iter()
            .flat_map(|e| e.quotes(format))
            .collect::<Vec<_>>();
        assert!(!quotes.is_empty());
        assert!(quotes
            .iter()
            .all(|q| q.price_decimal > 1.0 && q.price_american.abs() >= 100.0));
        assert!(
            quotes.iter().all(|q| q.last_update.is_some()),
            "{capture}: market or bookmaker time"
        );
        assert_eq!(got.quota.and_then(|q| q.remaining), Some(480.0));
    }
    // Super Bowl LVII: the Eagles are the home side by name, not by position.
    let client = OddsApiClient::new(
        server.config("odds_api_v4_nfl_odds_h2h_american_2023-02-06"),
        ApiKey::new(SECRET),
    )
    .expect("client");
    let event = client
        .odds(sport("nfl"))
        .await
        .expect("odds")
        .value
        .good
        .remove(0);
    let quotes = event.quotes(OddsFormat::American);
    assert_eq!(quotes.len(), 38);
    assert!(quotes
        .iter()
        .filter(|q| q.outcome == Side::Home)
        .all(|q| q.outcome_name == "Philadelphia Eagles"));
    // The decimal capture uses Unix times.
    let client = OddsApiClient::new(
        server.config("theoddsapi_nfl_odds_5050club"),
        ApiKey::new(SECRET),
    )
    .expect("client")
    .with_odds_format(OddsFormat::Decimal);
    let first = client
        .odds(sport("nfl"))
        .await
        .expect("odds")
        .value
        .good
        .remove(0);
    assert_eq!(
        first.commence_time,
        Utc.timestamp_opt(1_732_843_320, 0).single().expect("time")
    );
}

#[tokio::test]
async fn scores_fixtures_parse() {
    let server = TestServer::start().await;
    let client = OddsApiClient::new(
        server.config("theoddsapi_nfl_scores_5050club"),
        ApiKey::new(SECRET),
    )
    .expect("client");
    let scores = client.scores(sport("nfl"), Some(3)).await.expect("scores");
    assert!(server.last_request().contains("daysFrom=3"));
    assert_eq!(scores.quota.and_then(|q| q.used), Some(20.0));
    assert_eq!(scores.value.good.len(), 27);
    let done: Vec<_> = scores.value.good.iter().filter(|e| e.completed).collect();
    assert_eq!(done.len(), 1);
    assert_eq!(
        (
            done[0].score_of(&done[0].home_team),
            done[0].score_of(&done[0].away_team)
        ),
        (Some(26), Some(18))
    );

    let client = OddsApiClient::new(
        server.config("theoddsapi_nba_scores_trenod"),
        ApiKey::new(SECRET),
    )
    .expect("client");
    let scores = client
        .scores(sport("nba"), None)
        .await
        .expect("scores")
        .value;
    assert_eq!(scores.good.len(), 13);
    assert_eq!(scores.good.iter().filter(|e| e.completed).count(), 9);
}

#[tokio::test]
async fn weather_fixtures_parse() {
    let server = TestServer::start().await;
    let client = OpenWeatherClient::new(
        server.config("openweather_current_camtjohn"),
        ApiKey::new(SECRET),
    )
    .expect("client");
    let (reading, observation) = client.current(42.064, -86.4783).await.expect("weather");
    let request: String = server.last_request();
    assert!(
        request.starts_with("/data/2.5/weather?lat=42.064&lon=-86.4783&units=metric&appid="),
        "{request}"
    );
    assert_eq!(reading.name.as_deref(), Some("Saint Joseph"));
    let observation = observation.expect("observation");
    assert_eq!(observation.condition.as_deref(), Some("Clouds"));
    assert_eq!(
        (observation.wind_deg, observation.humidity_pct),
        (Some(190.0), Some(64.0))
    );
    // That capture was taken in imperial units.
    let imperial = reading.observation(Units::Imperial).expect("observation");
    assert!((imperial.temperature_c.unwrap_or(0.0) - (-18.877_777)).abs() < 1e-3);
    let kelvin: CurrentWeather =
        serde_json::from_slice(&fixture("openweather_current_HarrisonLeece.json")).expect("json");
    let t = kelvin
        .observation(Units::Standard)
        .and_then(|o| o.temperature_c)
        .expect("temp");
    assert!((-30.0..50.0).contains(&t), "{t}");

    for capture in [
        "openmeteo_forecast_ZennoFact",
        "openmeteo_forecast_TheLuck1987",
    ] {
        let client = OpenMeteoClient::new(server.config(capture)).expect("client");
        let day = NaiveDate::from_ymd_opt(2023, 8, 9).expect("date");
        let (_, observations) = client.archive(34.9, 135.75, day, day).await.expect(capture);
        assert!(server.last_request().contains(
            "hourly=temperature_2m%2Cprecipitation%2Cwind_speed_10m%2Crelative_humidity_2m"
        ));
        assert_eq!(observations.len(), 168, "{capture}");
        assert!(
            observations.iter().all(|o| o.temperature_c.is_some()),
            "{capture}"
        );
        assert!(
            observations.iter().any(|o| o.wind_speed_ms.is_some()),
            "{capture}"
        );
    }
}

#[tokio::test]
async fn retry_honours_retry_after() {
    let server = TestServer::start().await;
    let client = EspnClient::new(server.config("flaky429")).expect("client");
    let started = Instant::now();
    let games = client
        .games(sport("nfl"), None)
        .await
        .expect("second attempt succeeds");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(games.good.len(), 16);
    assert_eq!(server.hits("flaky429"), 2);
}

#[tokio::test]
async fn retry_on_server_errors_then_give_up() {
    let server = TestServer::start().await;
    let client = EspnClient::new(server.config("flaky500")).expect("client");
    assert_eq!(
        client
            .games(sport("nfl"), None)
            .await
            .expect("third attempt")
            .good
            .len(),
        16
    );
    assert_eq!(server.hits("flaky500"), 3);

    let client = EspnClient::new(server.config("down")).expect("client");
    let err = client
        .games(sport("nfl"), None)
        .await
        .expect_err("always 503");
    let text: String = err.to_string();
    assert!(text.contains("failed after 3 attempts"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    assert!(text.len() < 800, "body excerpt is bounded: {}", text.len());
    assert_eq!(server.hits("down"), 3);

    let client =
        OddsApiClient::new(server.config("forbidden"), ApiKey::new(SECRET)).expect("client");
    let err = client.odds(sport("nfl")).await.expect_err("401");
    assert!(
        matches!(err, SourceError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(
        server.hits("forbidden"),
        1,
        "4xx other than 429 is not retried"
    );
}

#[tokio::test]
async fn timeouts_are_typed() {
    let server = TestServer::start().await;
    let mut config = server.config("slow");
    config.timeout = Duration::from_millis(200);
    config.max_attempts = 1;
    let client = EspnClient::new(config).expect("client");
    let err = client
        .scoreboard(sport("nfl"), None)
        .await
        .expect_err("timeout");
    let SourceError::RetriesExhausted { last, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(**last, SourceError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_past_the_limit_is_refused_for_a_later_try() {
    let server = TestServer::start().await;
    for capture in ["huge", "huge-chunked"] {
        let mut config = server.config(capture);
        config.max_body_bytes = 16 * 1024;
        let client = EspnClient::new(config).expect("client");
        let err = client
            .fetch_scoreboard(sport("nfl"), None)
            .await
            .expect_err(capture);
        assert!(
            matches!(err, SourceError::TooLarge { limit: 16384, .. }),
            "{capture}: {err:?}"
        );
        assert!(
            err.retry_can_help(),
            "{capture}: the task's next try may do"
        );
        assert_eq!(
            server.hits(capture),
            1,
            "{capture}: not downloaded again at once"
        );
        assert!(err.to_string().contains("larger than 16384 bytes"), "{err}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_decode_error() {
    let server = TestServer::start().await;
    let client = EspnClient::new(server.config("malformed")).expect("client");
    let err = client
        .scoreboard(sport("nfl"), None)
        .await
        .expect_err("malformed");
    assert!(
        matches!(err, SourceError::Decode { api: "espn", .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("espn")
            && text.contains("/malformed/apis/site/v2/sports/football/nfl/scoreboard"),
        "{text}"
    );
}

#[tokio::test]
async fn api_key_is_sent_but_never_shown() {
    let server = TestServer::start().await;
    let client = OddsApiClient::new(server.config("down"), ApiKey::new(SECRET)).expect("client");
    let err = client.odds(sport("nfl")).await.expect_err("503");
    assert!(server.last_request().contains(&format!("apiKey={SECRET}")));
    assert!(!err.to_string().contains(SECRET), "{err}");
    assert!(!format!("{err:?}").contains(SECRET));
    assert!(err.to_string().contains("apiKey=***"), "{err}");
    assert!(!format!("{client:?}").contains(SECRET));

    // A transport error (nothing listening) must not leak it either.
    let mut config = HttpConfig::new("http://127.0.0.1:9", 1000.0);
    config.max_attempts = 1;
    let client = OpenWeatherClient::new(config, ApiKey::new(SECRET)).expect("client");
    let err = client.current(1.0, 2.0).await.expect_err("refused");
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
}

#[tokio::test]
async fn one_corrupted_event_does_not_lose_the_batch() {
    let server = TestServer::start().await;
    let client = EspnClient::new(server.config("corrupt-espn")).expect("client");
    let games = client.games(sport("nfl"), None).await.expect("games");
    assert_eq!((games.good.len(), games.rejected.len()), (15, 1));
    assert!(
        games.rejected[0].reason.contains("no competitors"),
        "{}",
        games.rejected[0].reason
    );
    assert_eq!(games.rejected[0].source, "espn.scoreboard");

    let client =
        OddsApiClient::new(server.config("corrupt-odds"), ApiKey::new(SECRET)).expect("client");
    let odds = client.odds(sport("nfl")).await.expect("odds").value;
    // A price that is text and an h2h market cut to one outcome each cost
    // their bookmaker's market; both events are kept with the rest.
    assert_eq!((odds.good.len(), odds.rejected.len()), (16, 2));
    let reasons: Vec<&str> = odds.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons[0].contains("price NaN outside"), "{reasons:?}");
    assert!(
        reasons[1].contains("h2h market has 1 outcomes"),
        "{reasons:?}"
    );
    let fixture: Value =
        serde_json::from_slice(&fixture("theoddsapi_nfl_odds_jonathaanh.json")).expect("json");
    assert_eq!(
        odds.rejected[0].raw["market"]["outcomes"][0]["price"],
        "abc"
    );
    assert_eq!(odds.rejected[1].raw["event_id"], fixture[5]["id"]);
    let kept = odds
        .good
        .iter()
        .find(|e| e.id == fixture[2]["id"])
        .expect("kept");
    assert_eq!(
        kept.bookmakers[0].markets.len() + 1,
        fixture[2]["bookmakers"][0]["markets"]
            .as_array()
            .expect("markets")
            .len()
    );
}

#[tokio::test]
async fn rate_limiter_allows_a_burst_then_spaces_calls() {
    let limiter = RateLimiter::new(2.0);
    let started = Instant::now();
    limiter.acquire().await;
    limiter.acquire().await;
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "two immediate calls"
    );
    limiter.acquire().await;
    let third = started.elapsed();
    assert!(
        third >= Duration::from_millis(400) && third < Duration::from_millis(1500),
        "{third:?}"
    );
    limiter.acquire().await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "fourth ~1 s"
    );
}

#[test]
fn replay_serves_every_capture_offline() {
    let replay = Replay;
    let mut nfl_games = 0;
    for date in replay.scoreboard_dates("nfl").expect("dates") {
        let payload: Value = replay
            .scoreboard("nfl", date)
            .expect("scoreboard")
            .decode("replay")
            .expect("json");
        let games = sources::espn::validate_scoreboard("nfl", &payload).expect("events");
        assert!(games.rejected.is_empty());
        assert!(games
            .good
            .iter()
            .all(|g| dags::sports_day(g.start_time) == date));
        nfl_games += games.good.len();
    }
    assert_eq!(nfl_games, 16 + 16 + 14);
    let off_day = NaiveDate::from_ymd_opt(2021, 1, 1).expect("date");
    let empty: Value = replay
        .scoreboard("nba", off_day)
        .expect("sb")
        .decode("replay")
        .expect("json");
    assert_eq!(empty["events"].as_array().map(Vec::len), Some(0));

    assert!(replay
        .summary("nfl", "401547505")
        .expect("summary")
        .is_some());
    let odds = replay.odds("nba", None).expect("odds");
    assert_eq!(odds.len(), 1);
    let payload: Value = odds[0].1.decode("replay").expect("json");
    assert_eq!(
        sources::odds_api::validate_odds(&payload, odds[0].0)
            .expect("list")
            .good
            .len(),
        14
    );

    let at = Utc
        .with_ymd_and_hms(2023, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let snapshot: Value = replay
        .historical_odds("nfl", at)
        .expect("hist")
        .expect("some")
        .decode("replay")
        .expect("json");
    let (times, events) =
        sources::odds_api::validate_historical(&snapshot, OddsFormat::American).expect("snapshot");
    assert!(times.timestamp <= at && times.next_timestamp.is_some_and(|n| n > at));
    assert_eq!(events.good.len(), 16);
    assert_eq!(replay.scores("nfl").len(), 1);
    assert_eq!(replay.openweather_current().len(), 2);
    assert_eq!(replay.open_meteo().len(), 2);
}

#[test]
fn generated_seasons_are_deterministic_consistent_and_valid() {
    use sources::generator::SeasonGenerator;
    use sources::odds_api::validate_historical;

    let generator = SeasonGenerator::new(7).expect("generator");
    let sunday = NaiveDate::from_ymd_opt(2024, 10, 6).expect("date");
    let nfl = sport("nfl");
    let board = generator.scoreboard(nfl, sunday).expect("scoreboard");
    assert_eq!(
        board.body,
        SeasonGenerator::new(7)
            .expect("g")
            .scoreboard(nfl, sunday)
            .expect("sb")
            .body
    );
    assert_ne!(
        board.body,
        SeasonGenerator::new(8)
            .expect("g")
            .scoreboard(nfl, sunday)
            .expect("sb")
            .body
    );
    let payload: Value = board.decode("generator").expect("json");
    let games = sources::espn::validate_scoreboard("nfl", &payload).expect("games");
    assert!(games.rejected.is_empty(), "{:?}", games.rejected.first());
    assert_eq!(games.good.len(), 13);
    for g in &games.good {
        assert_eq!(g.state, GameState::Post);
        assert_eq!(dags::sports_day(g.start_time), sunday);
        assert_eq!(Some(g.home.linescores.iter().sum::<u32>()), g.home.score);
        assert_ne!(g.home.score, g.away.score, "no ties: overtime decides");
    }
    let tuesday = NaiveDate::from_ymd_opt(2024, 10, 8).expect("date");
    let off: Value = generator
        .scoreboard(nfl, tuesday)
        .expect("sb")
        .decode("g")
        .expect("json");
    assert_eq!(off["events"].as_array().map(Vec::len), Some(0));

    // Odds the morning before: the same teams, valid prices, lines moving.
    let at = Utc
        .with_ymd_and_hms(2024, 10, 5, 14, 2, 0)
        .single()
        .expect("time");
    let snapshot: Value = generator
        .historical_odds(nfl, at)
        .expect("odds")
        .decode("g")
        .expect("json");
    let (times, events) = validate_historical(&snapshot, OddsFormat::American).expect("snapshot");
    assert_eq!(
        times.timestamp,
        Utc.with_ymd_and_hms(2024, 10, 5, 14, 0, 0)
            .single()
            .expect("t")
    );
    assert!(events.rejected.is_empty(), "{:?}", events.rejected.first());
    let sunday_events: Vec<_> = events
        .good
        .iter()
        .filter(|e| dags::sports_day(e.commence_time) == sunday)
        .collect();
    assert_eq!(sunday_events.len(), 13);
    let home_names: std::collections::BTreeSet<&str> =
        games.good.iter().map(|g| g.home.name.as_str()).collect();
    assert!(sunday_events
        .iter()
        .all(|e| home_names.contains(e.home_team.as_str())));
    assert!(sunday_events.iter().all(|e| e.bookmakers.len() >= 5));
    let later = generator
        .historical_odds(nfl, at + chrono::Duration::hours(12))
        .expect("odds");
    let (_, later) = validate_historical(
        &later.decode::<Value>("g").expect("json"),
        OddsFormat::American,
    )
    .expect("later");
    let price = |events: &[sources::odds_api::OddsEvent], id: &str| {
        events
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.bookmakers[0].markets[0].outcomes[0].price)
    };
    let moved = sunday_events
        .iter()
        .filter(|e| price(&events.good, &e.id) != price(&later.good, &e.id))
        .count();
    assert!(moved > 0, "prices move over time");

    for key in ["nba", "nhl", "ncaaf"] {
        let day = NaiveDate::from_ymd_opt(2024, 11, 16).expect("date");
        let payload: Value = generator
            .scoreboard(sport(key), day)
            .expect("sb")
            .decode("g")
            .expect("json");
        let games = sources::espn::validate_scoreboard(key, &payload).expect("games");
        assert!(games.rejected.is_empty() && !games.good.is_empty(), "{key}");
    }
}

/// The live pollers' polls, against the same fixture server.
mod live_pollers {
    use super::*;
    use dags::live::envelope::Kind;
    use dags::live::publish::poll::{GamesSource, LiveSource, OddsSource};
    use dags::live::replay::Replayed;

    #[tokio::test]
    async fn an_odds_poll_publishes_every_valid_event_at_the_poll_time() {
        let server = TestServer::start().await;
        let client = OddsApiClient::new(
            server.config("theoddsapi_nba_odds_jonathaanh"),
            ApiKey::new("test-key"),
        )
        .expect("client");
        let source = OddsSource { client };
        let at = Utc::now();
        let polled = source.poll(&[sport("nba")], at).await;
        assert!(polled.errors.is_empty(), "{:?}", polled.errors);
        assert_eq!(polled.messages.len(), 14, "the capture's 14 events");
        for m in &polled.messages {
            assert_eq!((m.kind(), m.time), (Kind::Odds, at));
            let Replayed::Odds(p) = &m.payload else {
                panic!("not odds")
            };
            assert_eq!(m.key(), p.event.id);
        }
        assert!(server
            .last_request()
            .starts_with("/v4/sports/basketball_nba/odds?"));
    }

    #[tokio::test]
    async fn a_scoreboard_poll_publishes_a_game_only_when_it_changed() {
        let server = TestServer::start().await;
        let client =
            EspnClient::new(server.config("espn_nba_scoreboard_andrewscheiner")).expect("client");
        let source = GamesSource::new(client);
        let first = source.poll(&[sport("nba")], Utc::now()).await;
        assert_eq!(first.messages.len(), 11, "every game of the scoreboard");
        source.delivered(&first.messages).await;
        let second = source.poll(&[sport("nba")], Utc::now()).await;
        assert!(second.errors.is_empty(), "{:?}", second.errors);
        assert!(second.messages.is_empty(), "nothing changed between polls");
    }

    #[tokio::test]
    async fn a_source_that_is_down_is_reported_per_sport_not_fatal() {
        let server = TestServer::start().await;
        let client = EspnClient::new(server.config("down")).expect("client");
        let source = GamesSource::new(client);
        let polled = source.poll(&[sport("nfl"), sport("nba")], Utc::now()).await;
        assert!(polled.messages.is_empty());
        assert_eq!(polled.errors.len(), 2, "{:?}", polled.errors);
        assert!(
            polled.errors[0].starts_with("nfl scoreboard"),
            "{:?}",
            polled.errors
        );
        assert!(
            polled.errors[1].starts_with("nba scoreboard"),
            "{:?}",
            polled.errors
        );
    }
}
