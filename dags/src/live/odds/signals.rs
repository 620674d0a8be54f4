//! Market signals the odds consumer records as alerts beside arbitrage
//! (docs/formulas.md#value and #steam), judged by the deployment's
//! [`Rules`]:
//!
//! - **value**: within one poll, an outcome's best price has an expected
//!   return of at least `rules.value_edge` at the consensus fair
//!   probability (the median over the poll's bookmakers of their
//!   de-vigged probabilities on the same line);
//! - **steam**: within one closed window, enough bookmakers moved the
//!   outcome's implied probability the same way (`rules.steam`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pricing::consensus::expected_value;
use pricing::steam::implied_move;
use pricing::Rules;
use serde::Serialize;

use super::market::{BookMarket, Line};
use super::window::OddsWindowOutput;
use super::OddsKey;
use sources::odds_api::Side;
use streaming::window::Closed;

/// What kind of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Value,
    Steam,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Value => "value",
            SignalKind::Steam => "steam",
        }
    }
}

/// One alert of `serving.market_alerts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    pub event_id: String,
    pub market: String,
    pub outcome: Side,
    /// Hundredths of a point; `None` for h2h.
    pub line: Option<i64>,
    /// Value: the expected value (0.03 = 3 %). Steam: the movers' mean move
    /// in implied probability, signed (positive: the outcome shortened).
    pub magnitude: f64,
    /// Value: the bookmakers at the best price. Steam: the movers.
    pub bookmakers: Vec<String>,
    /// Value: best decimal, fair probability, Kelly. Steam: the window.
    pub detail: serde_json::Value,
    pub event_time: DateTime<Utc>,
}

/// Value alerts of one poll's bookmaker markets, at `event_time`.
pub fn value_signals(
    markets: &[BookMarket],
    event_time: DateTime<Utc>,
    rules: &Rules,
) -> Vec<Signal> {
    let mut lines: BTreeMap<(&str, &str, Line), Vec<&BookMarket>> = BTreeMap::new();
    for m in markets {
        if let Some(line) = m.line() {
            lines
                .entry((&m.event_id, &m.market, line))
                .or_default()
                .push(m);
        }
    }
    let mut out = Vec::new();
    for ((event_id, market, line), books) in lines {
        let mut sides: Vec<Side> = books
            .iter()
            .flat_map(|m| m.quotes.iter().map(|q| q.side))
            .collect();
        sides.sort();
        sides.dedup();
        // Each bookmaker's implied probabilities in `sides` order; one
        // missing a side cannot be de-vigged against the others.
        let implied: Vec<(&str, Vec<f64>)> = books
            .iter()
            .filter_map(|m| {
                sides
                    .iter()
                    .map(|s| m.quotes.iter().find(|q| q.side == *s).map(|q| q.implied()))
                    .collect::<Option<Vec<f64>>>()
                    .map(|p| (m.bookmaker.as_str(), p))
            })
            .collect();
        // One bookmaker is not a consensus.
        if implied.len() < 2 {
            continue;
        }
        let fair_line = rules.fair_line(&implied);
        let basis = fair_line.basis.to_string();
        for (side, fair) in sides.iter().zip(fair_line.probabilities) {
            let Some(fair) = fair else { continue };
            let quotes: Vec<(&str, f64)> = books
                .iter()
                .filter_map(|m| {
                    m.quotes
                        .iter()
                        .find(|q| q.side == *side)
                        .map(|q| (m.bookmaker.as_str(), q.decimal))
                })
                .collect();
            let best: f64 = quotes.iter().map(|q| q.1).fold(f64::MIN, f64::max);
            let edge: f64 = expected_value(best, fair);
            if edge < rules.value_edge {
                continue;
            }
            let mut at_best: Vec<String> = quotes
                .iter()
                .filter(|q| q.1 == best)
                .map(|q| q.0.to_owned())
                .collect();
            at_best.sort();
            out.push(Signal {
                kind: SignalKind::Value,
                event_id: event_id.to_owned(),
                market: market.to_owned(),
                outcome: *side,
                line: line.0,
                magnitude: edge,
                bookmakers: at_best,
                detail: serde_json::json!({
                    "best_decimal": best,
                    "fair_probability": fair,
                    "kelly": pricing::consensus::kelly(best, fair),
                    "devig": rules.devig.as_str(),
                    "fair_basis": basis,
                    "quoted_by": quotes.len(),
                }),
                event_time,
            });
        }
    }
    out
}

/// Steam alerts of one batch's closed windows.
pub fn steam_signals(closed: &[Closed<OddsKey, OddsWindowOutput>], rules: &Rules) -> Vec<Signal> {
    // (event, market, window start, side) → [(bookmaker, move, line)] and
    // the newest event time among them.
    type Key<'a> = (&'a str, &'a str, DateTime<Utc>, Side);
    type Moves<'a> = Vec<(&'a str, Option<f64>, Option<f64>)>;
    let mut groups: BTreeMap<Key<'_>, (Moves<'_>, DateTime<Utc>)> = BTreeMap::new();
    for c in closed {
        for o in &c.output.outcomes {
            let change = o
                .open_decimal
                .map(|open| implied_move(open, o.latest_decimal));
            let entry = groups
                .entry((&c.key.event_id, &c.key.market, c.window.start, o.side))
                .or_insert((Vec::new(), c.max_event_time));
            entry.0.push((&c.key.bookmaker, change, o.latest_point));
            entry.1 = entry.1.max(c.max_event_time);
        }
    }
    let mut out = Vec::new();
    for ((event_id, market, start, side), (moves, event_time)) in groups {
        let Some(steam) = rules.steam.judge(moves.iter().map(|m| m.1)) else {
            continue;
        };
        let moved = |d: f64| {
            if steam.shortened {
                d >= rules.steam.min_move
            } else {
                d <= -rules.steam.min_move
            }
        };
        let movers: Vec<&(&str, Option<f64>, Option<f64>)> =
            moves.iter().filter(|m| m.1.is_some_and(moved)).collect();
        let mut books: Vec<String> = movers.iter().map(|m| m.0.to_owned()).collect();
        books.sort();
        let line = movers
            .first()
            .and_then(|m| m.2)
            .map(|p| (p * 100.0).round() as i64);
        out.push(Signal {
            kind: SignalKind::Steam,
            event_id: event_id.to_owned(),
            market: market.to_owned(),
            outcome: side,
            line,
            magnitude: steam.mean_move,
            bookmakers: books,
            detail: serde_json::json!({"window_start": start, "quoted_by": moves.len()}),
            event_time,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::odds::market::Quote;
    use crate::live::odds::window::OutcomeWindow;
    use streaming::window::Window;

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_725_800_000 + minute * 60, 0).unwrap()
    }

    fn h2h(book: &str, home: f64, away: f64) -> BookMarket {
        BookMarket {
            event_id: "e1".into(),
            market: "h2h".into(),
            bookmaker: book.into(),
            time: t(0),
            quotes: vec![
                Quote {
                    side: Side::Home,
                    point: None,
                    decimal: home,
                },
                Quote {
                    side: Side::Away,
                    point: None,
                    decimal: away,
                },
            ],
        }
    }

    /// docs/formulas.md#arbitrage's two bookmakers: away 2.05 at B against
    /// a fair away of median(0.534, 0.468) = 0.5007 is a 2.6 % edge.
    #[test]
    fn value_is_the_best_price_against_the_median_fair_price() {
        let markets = [h2h("A", 2.10, 1.833333), h2h("B", 1.80, 2.05)];
        let signals = value_signals(&markets, t(1), &Rules::default());
        let away = signals
            .iter()
            .find(|s| s.outcome == Side::Away)
            .expect("away value");
        assert!(
            (away.magnitude - 0.02646).abs() < 1e-4,
            "{}",
            away.magnitude
        );
        assert_eq!(away.bookmakers, ["B"]);
        assert_eq!(away.line, None);
        let home = signals
            .iter()
            .find(|s| s.outcome == Side::Home)
            .expect("home value");
        assert!(
            (home.magnitude - 0.04850).abs() < 1e-4,
            "{}",
            home.magnitude
        );
        // Three tight bookmakers: no value anywhere.
        let tight = [
            h2h("a", 1.80, 2.10),
            h2h("b", 1.85, 2.00),
            h2h("c", 1.83, 2.05),
        ];
        assert!(value_signals(&tight, t(1), &Rules::default()).is_empty());
        // One bookmaker alone is no consensus.
        assert!(value_signals(&markets[..1], t(1), &Rules::default()).is_empty());
    }

    fn window(book: &str, open: f64, latest: f64) -> Closed<OddsKey, OddsWindowOutput> {
        let side = |s, open: f64, latest: f64| OutcomeWindow {
            side: s,
            open_decimal: Some(open),
            open_point: None,
            latest_decimal: latest,
            latest_point: None,
            move_decimal: Some(latest - open),
            move_american: None,
            move_point: None,
            implied_probability: 1.0 / latest,
            no_vig_probability: 0.5,
            volatility: None,
            snapshots: 2,
        };
        Closed {
            key: OddsKey {
                event_id: "e1".into(),
                market: "h2h".into(),
                bookmaker: book.into(),
            },
            window: Window {
                start: t(0),
                end: t(5),
            },
            events: 2,
            max_event_time: t(4),
            max_ingest_time: t(4),
            output: OddsWindowOutput {
                snapshots: 2,
                open_time: t(0),
                latest_time: t(4),
                overround_latest: 0.04,
                overround_avg: 0.04,
                overround_min: 0.04,
                overround_max: 0.04,
                outcomes: vec![side(Side::Home, open, latest), side(Side::Away, 2.0, 2.0)],
            },
        }
    }

    #[test]
    fn steam_needs_three_bookmakers_moving_together() {
        // 2.00 → 1.90 is +2.6 points of implied probability at each.
        let closed = [
            window("a", 2.0, 1.9),
            window("b", 2.0, 1.9),
            window("c", 2.0, 1.9),
            window("d", 2.0, 2.0),
        ];
        let steam = steam_signals(&closed, &Rules::default());
        assert_eq!(steam.len(), 1, "{steam:?}");
        assert_eq!(steam[0].outcome, Side::Home);
        assert_eq!(steam[0].bookmakers, ["a", "b", "c"]);
        assert!((steam[0].magnitude - (1.0 / 1.9 - 0.5)).abs() < 1e-12);
        assert_eq!(steam[0].event_time, t(4));
        assert!(
            steam_signals(&closed[..2], &Rules::default()).is_empty(),
            "two bookmakers are not steam"
        );
    }
}
