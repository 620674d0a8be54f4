//! The validation rules of one odds event
//! (docs/quality.md#validation-and-dead-letters).
//!
//! What is wrong with the event itself (no id, a team name missing or out
//! of the text bounds) rejects the event. What is wrong with one quote
//! rejects only the bookmaker's market it is in, because a market is
//! priced as a whole (its sides' prices set its hold): a price that cannot
//! be odds, an outcome name out of bounds, an h2h market without both
//! teams. A bookmaker listed twice keeps its first entry; one whose key is
//! out of bounds is rejected whole. The rest of the event is kept.

use serde::Deserializer;
use serde_json::{json, Value};

use super::{Market, OddsEvent, OddsFormat, Side};
use crate::text::{self, MAX_ID, MAX_NAME};

/// Why a price breaks the validation rules, if it does.
pub fn price_problem(price: f64, format: OddsFormat) -> Option<String> {
    match format {
        OddsFormat::American if !(price.abs() >= 100.0 && price.abs() < 100_000.0) => Some(
            format!("American price {} outside ±[100, 100000)", shown(price)),
        ),
        OddsFormat::Decimal if !(price > 1.0 && price < 1001.0) => {
            Some(format!("decimal price {} not in (1, 1001)", shown(price)))
        }
        _ => None,
    }
}

/// A price for a message: `1e300`, not three hundred digits.
fn shown(price: f64) -> String {
    if price.is_finite() && price != 0.0 && !(1e-3..1e9).contains(&price.abs()) {
        format!("{price:e}")
    } else {
        price.to_string()
    }
}

/// A part of an event that [`screen`] took out, by its position in the
/// event as received.
#[derive(Debug, Clone, PartialEq)]
struct Removed {
    bookmaker: usize,
    /// `None`: the whole bookmaker entry.
    market: Option<usize>,
    reason: String,
}

/// What [`screen`] took out of an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Screened {
    removed: Vec<Removed>,
}

impl Screened {
    /// Nothing was taken out.
    pub fn is_clean(&self) -> bool {
        self.removed.is_empty()
    }

    /// Why each part was taken out.
    pub fn reasons(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(|r| r.reason.as_str())
    }

    /// Each part taken out, as received in `raw` (the event's JSON), with
    /// its reason: `{event_id, bookmaker, market}` for a market,
    /// `{event_id, bookmaker}` for a whole bookmaker entry.
    pub fn rejected_parts(&self, event_id: &str, raw: &Value) -> Vec<(String, Value)> {
        self.removed
            .iter()
            .map(|r| {
                let book: &Value = &raw["bookmakers"][r.bookmaker];
                let part: Value = match r.market {
                    Some(m) => json!({
                        "event_id": event_id,
                        "bookmaker": book.get("key").cloned().unwrap_or(Value::Null),
                        "market": book["markets"][m],
                    }),
                    None => json!({"event_id": event_id, "bookmaker": book}),
                };
                (r.reason.clone(), part)
            })
            .collect()
    }
}

/// Checks `e` against the rules and takes out the bookmakers and markets
/// that break them; `Err` when the event itself must be rejected.
pub fn screen(e: &mut OddsEvent, format: OddsFormat) -> Result<Screened, String> {
    check_header(e)?;
    let mut out = Screened::default();
    for (b, book) in e.bookmakers.iter().enumerate() {
        if let Some(problem) = bookmaker_problem(e, b) {
            out.removed.push(Removed {
                bookmaker: b,
                market: None,
                reason: format!("event {}: {problem}", e.id),
            });
            continue;
        }
        for (m, market) in book.markets.iter().enumerate() {
            if let Some(reason) = market_problem(e, market, format) {
                out.removed.push(Removed {
                    bookmaker: b,
                    market: Some(m),
                    reason: format!("event {}: {} {}: {reason}", e.id, book.key, market.key),
                });
            }
        }
    }
    if !out.is_clean() {
        remove(e, &out.removed);
    }
    Ok(out)
}

/// Why a bookmaker is refused with all its markets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookmakerProblem {
    /// Its key is out of the text bounds (and so is not quoted).
    Key(text::TextProblem),
    /// Listed before in the same event: the first entry is kept.
    Twice(String),
}

impl std::fmt::Display for BookmakerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BookmakerProblem::Key(p) => write!(f, "bookmaker key {p}"),
            BookmakerProblem::Twice(key) => write!(f, "bookmaker {key} listed twice"),
        }
    }
}

/// Why bookmaker `i` of `e` is refused whole, if it is: the ingest
/// validation and the stream's odds processor apply the same rule.
pub fn bookmaker_problem(e: &OddsEvent, i: usize) -> Option<BookmakerProblem> {
    let key: &str = &e.bookmakers[i].key;
    if let Err(p) = text::check(key, MAX_ID) {
        return Some(BookmakerProblem::Key(p));
    }
    e.bookmakers[..i]
        .iter()
        .any(|earlier| earlier.key == key)
        .then(|| BookmakerProblem::Twice(key.to_owned()))
}

fn check_header(e: &OddsEvent) -> Result<(), String> {
    if e.id.trim().is_empty() {
        return Err("event has no id".to_string());
    }
    text::check(&e.id, MAX_ID).map_err(|p| format!("event id {p}"))?;
    if e.home_team.trim().is_empty() || e.away_team.trim().is_empty() {
        return Err(format!("event {} lacks a team name", e.id));
    }
    for (which, name) in [("home", &e.home_team), ("away", &e.away_team)] {
        text::check(name, MAX_NAME).map_err(|p| format!("event {}: {which} team {p}", e.id))?;
    }
    Ok(())
}

fn market_problem(e: &OddsEvent, m: &Market, format: OddsFormat) -> Option<String> {
    for o in &m.outcomes {
        if let Err(p) = text::check(&o.name, MAX_NAME) {
            return Some(format!("outcome name {p}"));
        }
        if let Some(problem) = price_problem(o.price, format) {
            return Some(format!("{}: {problem}", o.name));
        }
    }
    if m.key == "h2h" {
        let n: usize = m.outcomes.len();
        let has_draw: bool = m
            .outcomes
            .iter()
            .any(|o| e.side(&o.name) == Some(Side::Draw));
        if n != 2 && !(n == 3 && has_draw) {
            return Some(format!("h2h market has {n} outcomes, expected 2"));
        }
        for side in [Side::Home, Side::Away] {
            if !m.outcomes.iter().any(|o| e.side(&o.name) == Some(side)) {
                return Some(format!("h2h market lacks the {side:?} team"));
            }
        }
    }
    None
}

/// Takes the `removed` parts (positions as received) out of `e`.
fn remove(e: &mut OddsEvent, removed: &[Removed]) {
    let mut b: usize = 0;
    e.bookmakers.retain_mut(|book| {
        let here: usize = b;
        b += 1;
        if removed
            .iter()
            .any(|r| r.bookmaker == here && r.market.is_none())
        {
            return false;
        }
        let mut m: usize = 0;
        book.markets.retain(|_| {
            let at: usize = m;
            m += 1;
            !removed
                .iter()
                .any(|r| r.bookmaker == here && r.market == Some(at))
        });
        true
    });
}

/// A price as sent: a JSON number, or numeric text; anything else (other
/// text, `null`, a list, an object) is NaN, which [`price_problem`]
/// refuses, so one bad price costs its market, not the event's decode.
pub(super) fn price<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    struct Price;
    impl<'de> serde::de::Visitor<'de> for Price {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a price")
        }
        fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E>(self, v: &str) -> Result<f64, E> {
            Ok(v.trim().parse().unwrap_or(f64::NAN))
        }
        fn visit_bool<E>(self, _: bool) -> Result<f64, E> {
            Ok(f64::NAN)
        }
        fn visit_unit<E>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
        fn visit_none<E>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<f64, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(f64::NAN)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<f64, A::Error> {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            Ok(f64::NAN)
        }
    }
    d.deserialize_any(Price)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{validate_odds, OddsFormat};

    fn event(books: serde_json::Value) -> serde_json::Value {
        json!({"id": "e1", "commence_time": "2024-09-08T17:00:00Z",
               "home_team": "Home", "away_team": "Away", "bookmakers": books})
    }

    fn h2h(book: &str, home: serde_json::Value, away: serde_json::Value) -> serde_json::Value {
        json!({"key": book, "markets": [
            {"key": "h2h", "outcomes": [{"name": "Home", "price": home}, {"name": "Away", "price": away}]},
            {"key": "totals", "outcomes": [{"name": "Over", "price": 1.9, "point": 44.5},
                                           {"name": "Under", "price": 1.9, "point": 44.5}]}
        ]})
    }

    #[test]
    fn prices_that_cannot_be_odds_reject_their_market_and_keep_the_rest() {
        let payload = json!([event(json!([
            h2h("good", json!(1.8), json!(2.1)),
            h2h("huge", json!(1e300), json!(2.1)),
            h2h("nan", json!("abc"), json!(2.1)),
            h2h("low", json!(1.0), json!(2.1)),
            h2h("null", json!(null), json!(2.1)),
            h2h("good", json!(1.7), json!(2.2)),
        ]))]);
        let v = validate_odds(&payload, OddsFormat::Decimal).expect("a list");
        assert_eq!(v.good.len(), 1, "{:?}", v.rejected);
        let e = &v.good[0];
        let kept: Vec<String> = e
            .bookmakers
            .iter()
            .map(|b| {
                let markets: Vec<&str> = b.markets.iter().map(|m| m.key.as_str()).collect();
                format!("{}:{}", b.key, markets.join("+"))
            })
            .collect();
        assert_eq!(
            kept,
            [
                "good:h2h+totals",
                "huge:totals",
                "nan:totals",
                "low:totals",
                "null:totals"
            ]
        );
        let reasons: Vec<&str> = v.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "event e1: huge h2h: Home: decimal price 1e300 not in (1, 1001)",
                "event e1: nan h2h: Home: decimal price NaN not in (1, 1001)",
                "event e1: low h2h: Home: decimal price 1 not in (1, 1001)",
                "event e1: null h2h: Home: decimal price NaN not in (1, 1001)",
                "event e1: bookmaker good listed twice",
            ]
        );
        // The dead letter keeps the quote as received.
        assert_eq!(v.rejected[1].raw["market"]["outcomes"][0]["price"], "abc");
        assert_eq!(v.rejected[1].raw["bookmaker"], "nan");
        assert_eq!(
            v.rejected[4].raw["bookmaker"]["markets"][0]["outcomes"][0]["price"],
            1.7
        );
    }

    #[test]
    fn an_event_whose_team_breaks_the_text_bounds_is_rejected_whole() {
        let mut bad = event(json!([h2h("good", json!(1.8), json!(2.1))]));
        bad["home_team"] = json!("Home\u{0}");
        let v = validate_odds(&json!([bad]), OddsFormat::Decimal).expect("a list");
        assert!(v.good.is_empty());
        assert_eq!(
            v.rejected[0].reason,
            "event e1: home team holds a NUL character"
        );
    }
}
