use super::*;
use crate::live::envelope::decode;
use serde_json::{json, Value};

fn message(minute: u32, home_a: i64, away_b: i64) -> Vec<u8> {
    polled(minute, minute, home_a, away_b)
}

/// A poll at `poll_minute` of quotes last updated at `update_minute`.
fn polled(poll_minute: u32, update_minute: u32, home_a: i64, away_b: i64) -> Vec<u8> {
    let t: String = format!("2026-01-04T18:{update_minute:02}:00Z");
    let polled_at: String = format!("2026-01-04T18:{poll_minute:02}:30Z");
    let book = |key: &str, home: i64, away: i64| -> Value {
        json!({"key": key, "title": key, "last_update": t, "markets": [
            {"key": "h2h", "outcomes": [
                {"name": "Boston Celtics", "price": home},
                {"name": "New York Knicks", "price": away}
            ]}
        ]})
    };
    json!({
        "schema_version": 1, "source": "odds_api", "sport": "nba", "kind": "odds",
        "event_time": polled_at, "ingest_time": polled_at,
        "payload": {"odds_format": "american", "event": {
            "id": "ev1", "sport_key": "basketball_nba", "commence_time": "2026-01-05T00:00:00Z",
            "home_team": "Boston Celtics", "away_team": "New York Knicks",
            "bookmakers": [book("a", home_a, -120), book("b", -125, away_b),
                {"key": "bad", "markets": [{"key": "h2h", "outcomes": [
                    {"name": "Boston Celtics", "price": 50},
                    {"name": "New York Knicks", "price": -110}]}]}]
        }}
    })
    .to_string()
    .into_bytes()
}

fn decoded(minute: u32, home_a: i64, away_b: i64) -> Envelope<OddsPayload> {
    decode(
        "betflow.odds.nba",
        Some(b"ev1"),
        &message(minute, home_a, away_b),
    )
    .expect("valid message")
}

#[test]
fn message_to_latest_best_arbitrage_and_windows() {
    let spec = WindowSpec::tumbling_minutes(5).expect("valid");
    let mut p = OddsProcessor::new(spec, TimeDelta::minutes(1)).expect("valid");
    let first = p.handle(&decoded(1, 110, 105));
    assert_eq!(first.latest.len(), 2);
    assert_eq!(first.rejected.len(), 1);
    assert!(
        first.rejected[0].reason.contains("not valid american"),
        "{:?}",
        first.rejected
    );
    let arb = first.best[0]
        .arbitrage
        .clone()
        .expect("+110 / +105 across books");
    assert!((arb.margin - (1.0 - (1.0 / 2.1 + 1.0 / 2.05))).abs() < 1e-12);
    assert!(first.closed.is_empty());

    let second = p.handle(&decoded(3, 100, -110));
    assert!(second.best[0].arbitrage.is_none());
    // Minute 7 moves the watermark to 6: [0, 5) closes for both books.
    let third = p.handle(&decoded(7, 100, -110));
    assert_eq!(third.closed.len(), 2);
    let a = third
        .closed
        .iter()
        .find(|c| c.key.bookmaker == "a")
        .expect("book a");
    assert_eq!(a.key.as_key(), "ev1/h2h/a");
    let home = &a.output.outcomes[0];
    assert_eq!(home.side, Side::Home);
    assert_eq!((home.open_decimal, home.latest_decimal), (Some(2.1), 2.0));
    assert!((home.move_decimal.unwrap_or(0.0) + 0.1).abs() < 1e-12);
    assert_eq!(a.output.snapshots, 2);

    // A message from minute 2 is now behind the watermark: handed back, not dropped.
    let late = p.handle(&decoded(2, 100, -110));
    assert_eq!(late.late.len(), 2);
    assert_eq!(p.windows().stats().late, 2);

    // Minute 7 polled again, unchanged: a repeat, neither applied nor late.
    let again = p.handle(&decoded(7, 100, -110));
    assert_eq!((again.repeats, again.late.len()), (2, 0));
    assert!(again.latest.is_empty());
    assert_eq!(p.windows().stats().late, 2);
}

#[test]
fn a_restored_processor_still_knows_the_updates_of_its_open_windows() {
    let spec = WindowSpec::tumbling_minutes(5).expect("valid");
    let mut p = OddsProcessor::new(spec, TimeDelta::minutes(1)).expect("valid");
    p.handle(&decoded(1, 110, 105));
    let mut restored = OddsProcessor::new(spec, TimeDelta::minutes(1)).expect("valid");
    restored.restore(p.snapshot());
    let again = restored.handle(&decoded(1, 110, 105));
    assert_eq!((again.repeats, again.late.len()), (2, 0));
    assert_eq!(restored.remembered_keys(), 2);
}

#[test]
fn a_restored_processor_skips_the_same_repeats_as_the_one_that_saved_it() {
    let spec = WindowSpec::tumbling_minutes(5).expect("valid");
    let poll = |at: u32, updated: u32| {
        decode(
            "betflow.odds.nba",
            Some(b"ev1"),
            &polled(at, updated, 110, 105),
        )
        .expect("valid")
    };
    let mut p = OddsProcessor::new(spec, TimeDelta::minutes(1)).expect("valid");
    p.handle(&poll(1, 0));
    let mut restored = OddsProcessor::new(spec, TimeDelta::minutes(1)).expect("valid");
    restored.restore(p.snapshot());
    // The next poll repeats the quotes updated at minute 0.
    let again = restored.handle(&poll(2, 0));
    assert_eq!((again.repeats, again.late.len()), (2, 0));
    assert_eq!(p.handle(&poll(2, 0)).repeats, 2);
    assert_eq!(restored.snapshot(), p.snapshot());
    // Repeats are not snapshots: each window counted minute 0 once.
    let closed = restored.flush();
    assert!(closed.iter().all(|c| c.output.snapshots == 1), "{closed:?}");
}

#[test]
fn prices_that_cannot_be_odds_reject_their_market_alone() {
    // The poll's own `bad` bookmaker (American 50) is rejected already.
    for bad in [1e300, -1e300, f64::NAN, f64::INFINITY, 99.0] {
        let env = decoded(1, 110, 105);
        let mut payload: OddsPayload = env.payload.clone();
        payload.event.bookmakers[0].markets[0].outcomes[0].price = bad;
        let (markets, rejected) = book_markets(&payload, env.event_time);
        let mine: Vec<&Rejection> = rejected.iter().filter(|r| r.bookmaker == "a").collect();
        assert_eq!(mine.len(), 1, "{bad}: {rejected:?}");
        assert!(
            mine[0].reason.contains("outside ±[100, 100000)"),
            "{bad}: {}",
            mine[0].reason
        );
        let kept: Vec<&str> = markets.iter().map(|m| m.bookmaker.as_str()).collect();
        assert_eq!(kept, ["b"], "{bad}: the other bookmaker's market stays");
    }
}

#[test]
fn outcomes_are_mapped_by_name_not_position() {
    let env = decoded(1, 110, 105);
    let mut payload: OddsPayload = env.payload.clone();
    payload.event.bookmakers[0].markets[0].outcomes.reverse();
    let (markets, _) = book_markets(&payload, env.event_time);
    let home: &Quote = markets[0]
        .quotes
        .iter()
        .find(|q| q.side == Side::Home)
        .expect("home");
    assert_eq!(home.decimal, 2.1);
    payload.event.bookmakers[0].markets[0].outcomes[0].name = "Someone Else".into();
    let (_, rejected) = book_markets(&payload, env.event_time);
    assert!(rejected
        .iter()
        .any(|r| r.reason.contains("matches neither team")));
}

#[test]
fn a_bookmaker_listed_twice_keeps_its_first_entry() {
    let env = decoded(1, 110, 105);
    let mut payload: OddsPayload = env.payload.clone();
    let mut again = payload.event.bookmakers[0].clone();
    again.markets[0].outcomes[0].price = 900.0;
    payload.event.bookmakers.push(again);
    let (markets, rejected) = book_markets(&payload, env.event_time);
    let a: Vec<&BookMarket> = markets.iter().filter(|m| m.bookmaker == "a").collect();
    assert_eq!(a.len(), 1, "one market of `a`: {markets:?}");
    assert_eq!(a[0].quotes[0].decimal, 2.1, "the first entry's +110");
    let twice: Vec<&Rejection> = rejected
        .iter()
        .filter(|r| r.reason.contains("listed twice"))
        .collect();
    assert_eq!(twice.len(), 1, "{rejected:?}");
    assert_eq!(twice[0].bookmaker, "a");
}

/// Spoils one field of a payload.
type Spoil = fn(&mut OddsPayload);

#[test]
fn bad_text_in_a_bookmaker_or_market_rejects_it_alone_without_quoting_it() {
    let env = decoded(1, 110, 105);
    let cases: [(Spoil, &str); 3] = [
        (
            |p| p.event.bookmakers[0].key = "a\0".into(),
            "bookmaker key holds a NUL",
        ),
        (
            |p| p.event.bookmakers[0].markets[0].key = "h2\u{202E}h".into(),
            "market key holds the bidirectional override",
        ),
        (
            |p| p.event.bookmakers[0].markets[0].outcomes[0].name = "x".repeat(201),
            "outcome name is 201 characters long",
        ),
    ];
    for (spoil, expected) in cases {
        let mut payload: OddsPayload = env.payload.clone();
        spoil(&mut payload);
        let (markets, rejected) = book_markets(&payload, env.event_time);
        let kept: Vec<&str> = markets.iter().map(|m| m.bookmaker.as_str()).collect();
        assert_eq!(kept, ["b"], "{expected}: the other bookmaker stays");
        let mine: Vec<&Rejection> = rejected
            .iter()
            .filter(|r| r.reason.contains(expected))
            .collect();
        assert_eq!(mine.len(), 1, "{expected}: {rejected:?}");
        for r in &mine {
            let stored = format!("{}/{}: {}", r.bookmaker, r.market, r.reason);
            assert!(
                sources::text::check(&stored, usize::MAX).is_ok(),
                "{stored:?}"
            );
            assert!(!stored.contains('x'.to_string().repeat(201).as_str()));
        }
    }
}

#[test]
fn an_event_with_bad_text_is_dead_lettered_at_decoding() {
    for (field, value) in [
        ("home_team", "Boston\u{0}Celtics".to_owned()),
        ("away_team", "x".repeat(5 * 1024 * 1024)),
        ("sport_title", "NBA\u{2066}".to_owned()),
    ] {
        let mut v: Value = serde_json::from_slice(&message(1, 110, 105)).expect("json");
        v["payload"]["event"][field] = Value::String(value);
        let err = decode::<OddsPayload>("betflow.odds.nba", Some(b"ev1"), v.to_string().as_bytes())
            .expect_err(field);
        assert_eq!(err.code(), "bad_text", "{field}: {err}");
        assert!(!err.to_string().contains('\0'), "{field}");
        assert!(
            err.to_string().len() < 200,
            "{field}: the reason does not quote the value"
        );
    }
}
