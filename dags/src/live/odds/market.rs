//! One bookmaker's market at one moment, and the cross-bookmaker view of a
//! poll: overround, no-vig probabilities, best prices and arbitrage
//! (docs/formulas.md#overround-and-vig, #no-vig-probability, #best-price,
//! #arbitrage), on the helpers of `odds_math`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use sources::odds_math::implied_probability;

/// Which side an outcome is, mapped by name, never by position
/// (docs/data-model.md#identifiers).
pub use sources::odds_api::Side;

/// One outcome's price in a bookmaker's market.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quote {
    pub side: Side,
    /// Spread or total line; `None` for h2h.
    pub point: Option<f64>,
    /// Decimal price, > 1.
    pub decimal: f64,
}

impl Quote {
    pub fn implied(&self) -> f64 {
        implied_probability(self.decimal).unwrap_or(f64::NAN)
    }
}

/// A bookmaker's whole market at one update time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BookMarket {
    pub event_id: String,
    pub market: String,
    pub bookmaker: String,
    /// The market's (else the bookmaker's) `last_update`, else the envelope's
    /// event time: the moment these prices were offered.
    pub time: DateTime<Utc>,
    pub quotes: Vec<Quote>,
}

impl BookMarket {
    /// Overround (vig) as a fraction: Σ p_i − 1 over the outcomes.
    pub fn overround(&self) -> f64 {
        overround(&self.quotes)
    }

    /// No-vig probability of each quote, in the quotes' order.
    pub fn no_vig(&self) -> Vec<f64> {
        no_vig(&self.quotes)
    }

    /// The line this market is on, so only like markets are compared across
    /// books: none for h2h, the total for totals, the home spread for spreads.
    /// `None` (incomparable) when the quotes disagree on the line.
    pub fn line(&self) -> Option<Line> {
        let points: Vec<Option<f64>> = self.quotes.iter().map(|q| q.point).collect();
        match self.market.as_str() {
            "h2h" => Some(Line(None)),
            "totals" => {
                let first: f64 = points.first().copied().flatten()?;
                points
                    .iter()
                    .all(|p| *p == Some(first))
                    .then(|| Line(Some(centi(first))))
            }
            "spreads" => {
                let home: f64 = self.quotes.iter().find(|q| q.side == Side::Home)?.point?;
                let away: f64 = self.quotes.iter().find(|q| q.side == Side::Away)?.point?;
                ((home + away).abs() < 1e-9).then(|| Line(Some(centi(home))))
            }
            _ => None,
        }
    }
}

/// A market line in hundredths of a point (floats do not hash or order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Line(pub Option<i64>);

fn centi(point: f64) -> i64 {
    (point * 100.0).round() as i64
}

/// Σ p_i − 1.
pub fn overround(quotes: &[Quote]) -> f64 {
    quotes.iter().map(Quote::implied).sum::<f64>() - 1.0
}

/// p_i / Σ p_j (proportional method).
pub fn no_vig(quotes: &[Quote]) -> Vec<f64> {
    let total: f64 = quotes.iter().map(Quote::implied).sum();
    quotes.iter().map(|q| q.implied() / total).collect()
}

/// The best decimal price of one outcome across bookmakers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestPrice {
    pub side: Side,
    pub point: Option<f64>,
    pub decimal: f64,
    /// Every bookmaker offering it (ties included), sorted.
    pub bookmakers: Vec<String>,
}

/// Σ 1/best < 1: backing every outcome at its best price wins regardless.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arbitrage {
    /// 1 − Σ 1/best_i: the guaranteed return per unit staked.
    pub margin: f64,
    /// Share of the total stake on each outcome: (1/best_i) / Σ 1/best_j.
    pub stakes: Vec<(Side, f64)>,
}

/// Best prices of one event's market on one line, across the bookmakers of a poll.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketBest {
    pub event_id: String,
    pub market: String,
    /// Hundredths of a point; `None` for h2h.
    pub line: Option<i64>,
    pub best: Vec<BestPrice>,
    pub arbitrage: Option<Arbitrage>,
}

/// Best price per outcome across the bookmakers of one poll: the highest
/// decimal price at the same moment, one poll being one moment
/// (docs/formulas.md#best-price); and arbitrage where Σ 1/best < 1
/// (docs/formulas.md#arbitrage). Markets are compared only on the same line.
pub fn best_prices(markets: &[BookMarket]) -> Vec<MarketBest> {
    type Group = BTreeMap<Side, BestPrice>;
    let mut groups: BTreeMap<(&str, &str, Line), Group> = BTreeMap::new();
    for m in markets {
        let Some(line) = m.line() else { continue };
        let group: &mut Group = groups
            .entry((m.event_id.as_str(), m.market.as_str(), line))
            .or_default();
        for q in &m.quotes {
            let best: &mut BestPrice = group.entry(q.side).or_insert_with(|| BestPrice {
                side: q.side,
                point: q.point,
                decimal: q.decimal,
                bookmakers: Vec::new(),
            });
            if q.decimal > best.decimal {
                best.decimal = q.decimal;
                best.bookmakers.clear();
            }
            if q.decimal == best.decimal && !best.bookmakers.contains(&m.bookmaker) {
                best.bookmakers.push(m.bookmaker.clone());
                best.bookmakers.sort();
            }
        }
    }
    groups
        .into_iter()
        .map(|((event_id, market, line), group)| {
            let best: Vec<BestPrice> = group.into_values().collect();
            MarketBest {
                event_id: event_id.to_string(),
                market: market.to_string(),
                line: line.0,
                arbitrage: arbitrage(&best),
                best,
            }
        })
        .collect()
}

/// Arbitrage over a complete set of best prices (at least two outcomes).
pub fn arbitrage(best: &[BestPrice]) -> Option<Arbitrage> {
    if best.len() < 2 {
        return None;
    }
    let inverse_sum: f64 = best.iter().map(|b| 1.0 / b.decimal).sum();
    (inverse_sum < 1.0).then(|| Arbitrage {
        margin: 1.0 - inverse_sum,
        stakes: best
            .iter()
            .map(|b| (b.side, (1.0 / b.decimal) / inverse_sum))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sources::odds_math::american_to_decimal;

    fn q(side: Side, american: f64) -> Quote {
        Quote {
            side,
            point: None,
            decimal: american_to_decimal(american).expect("valid price"),
        }
    }

    fn book(name: &str, market: &str, quotes: Vec<Quote>) -> BookMarket {
        BookMarket {
            event_id: "e1".into(),
            market: market.into(),
            bookmaker: name.into(),
            time: DateTime::from_timestamp(0, 0).expect("epoch"),
            quotes,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn minus_110_both_sides() {
        let m = book(
            "fanduel",
            "h2h",
            vec![q(Side::Home, -110.0), q(Side::Away, -110.0)],
        );
        // p = 110/210 each; Σ = 220/210; overround = 10/210 = 4.7619 %.
        assert!(close(m.overround(), 10.0 / 210.0));
        assert!(close(m.overround() * 100.0, 4.761_904_761_904_762));
        let fair = m.no_vig();
        assert!(close(fair[0], 0.5) && close(fair[1], 0.5));
    }

    #[test]
    fn uneven_market_no_vig() {
        // −200 / +170: p = 2/3 and 100/270; Σ = 1.0370370…
        let m = book(
            "b",
            "h2h",
            vec![q(Side::Home, -200.0), q(Side::Away, 170.0)],
        );
        let sum: f64 = 2.0 / 3.0 + 100.0 / 270.0;
        assert!(close(m.overround(), sum - 1.0));
        let fair = m.no_vig();
        assert!(close(fair[0], (2.0 / 3.0) / sum));
        assert!(close(fair[0] + fair[1], 1.0));
    }

    #[test]
    fn arbitrage_across_two_books() {
        // A: home +110 (2.10), away −120; B: home −125, away +105 (2.05).
        let a = book(
            "a",
            "h2h",
            vec![q(Side::Home, 110.0), q(Side::Away, -120.0)],
        );
        let b = book(
            "b",
            "h2h",
            vec![q(Side::Home, -125.0), q(Side::Away, 105.0)],
        );
        let best = best_prices(&[a, b]);
        assert_eq!(best.len(), 1);
        let home = &best[0].best[0];
        let away = &best[0].best[1];
        assert_eq!(
            (home.side, home.decimal, home.bookmakers.clone()),
            (Side::Home, 2.1, vec!["a".to_string()])
        );
        assert_eq!(
            (away.side, away.decimal, away.bookmakers.clone()),
            (Side::Away, 2.05, vec!["b".to_string()])
        );
        // Σ 1/best = 1/2.10 + 1/2.05 = 0.476190 + 0.487805 = 0.963995.
        let arb = best[0].arbitrage.clone().expect("an arbitrage");
        let inv: f64 = 1.0 / 2.1 + 1.0 / 2.05;
        assert!(close(arb.margin, 1.0 - inv));
        assert!((arb.margin - 0.036005).abs() < 1e-6);
        assert!(close(arb.stakes[0].1, (1.0 / 2.1) / inv));
        assert!((arb.stakes[0].1 - 0.493976).abs() < 1e-6);
        assert!(close(arb.stakes[0].1 + arb.stakes[1].1, 1.0));
    }

    #[test]
    fn no_arbitrage_and_ties() {
        let a = book(
            "a",
            "h2h",
            vec![q(Side::Home, -110.0), q(Side::Away, -110.0)],
        );
        let b = book(
            "b",
            "h2h",
            vec![q(Side::Home, -110.0), q(Side::Away, -105.0)],
        );
        let best = best_prices(&[a, b]);
        assert_eq!(
            best[0].best[0].bookmakers,
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(best[0].best[1].bookmakers, vec!["b".to_string()]);
        assert!(best[0].arbitrage.is_none());
    }

    #[test]
    fn lines_separate_spreads_and_totals() {
        let spread = |name: &str, home: f64| {
            book(
                name,
                "spreads",
                vec![
                    Quote {
                        side: Side::Home,
                        point: Some(home),
                        decimal: 2.2,
                    },
                    Quote {
                        side: Side::Away,
                        point: Some(-home),
                        decimal: 2.2,
                    },
                ],
            )
        };
        let best = best_prices(&[spread("a", -3.5), spread("b", -4.0)]);
        assert_eq!(best.len(), 2, "different spreads are different markets");
        assert_eq!(best[0].line, Some(-400));
        assert!(
            best.iter().all(|b| b.arbitrage.is_some()),
            "2.2/2.2 is an arb on its own line"
        );
        let bad = book(
            "c",
            "totals",
            vec![
                Quote {
                    side: Side::Over,
                    point: Some(45.5),
                    decimal: 1.9,
                },
                Quote {
                    side: Side::Under,
                    point: Some(46.0),
                    decimal: 1.9,
                },
            ],
        );
        assert_eq!(bad.line(), None);
        assert!(best_prices(&[bad]).is_empty());
    }
}
