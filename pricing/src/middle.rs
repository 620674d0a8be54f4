//! Middles and low-hold markets (docs/formulas.md#middles,
//! #low-hold-markets).
//!
//! A middle is two bets on opposite sides at different lines, at different
//! bookmakers, that both win when the result lands between the lines:
//! over 220.5 and under 222.5 both win on 221 or 222. A low-hold market is
//! one whose best prices across bookmakers leave the bettor paying little
//! margin: the step before an arbitrage.

use crate::consensus::hold;

/// One bookmaker's price on one side at one point: the total, or the
/// spread as quoted for that side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offer<'a> {
    pub bookmaker: &'a str,
    pub point: f64,
    pub decimal: f64,
}

/// The best middle of a market.
#[derive(Debug, Clone, PartialEq)]
pub struct Middle<'a> {
    /// The over (totals) or the home side (spreads).
    pub first: Offer<'a>,
    /// The under (totals) or the away side (spreads).
    pub second: Offer<'a>,
    /// How wide the winning band is, in points.
    pub width: f64,
    /// `Σ 1/decimal − 1` of the two prices: what the pair costs when the
    /// result misses the band (one bet wins, one loses).
    pub overround: f64,
}

/// The widest middle between overs and unders: over at `o` and under at
/// `u` both win when the total lands strictly between, so a middle needs
/// `u > o`; width `u − o`. On equal widths, the cheaper pair.
pub fn totals_middle<'a>(overs: &[Offer<'a>], unders: &[Offer<'a>]) -> Option<Middle<'a>> {
    widest(overs, unders, |over, under| under.point - over.point)
}

/// The widest middle between home and away spreads: home at `h` wins when
/// the home margin beats `−h`, away at `a` when it stays under `a`, so both
/// win in between when `h + a > 0`; width `h + a`.
pub fn spreads_middle<'a>(homes: &[Offer<'a>], aways: &[Offer<'a>]) -> Option<Middle<'a>> {
    widest(homes, aways, |home, away| home.point + away.point)
}

fn widest<'a>(
    firsts: &[Offer<'a>],
    seconds: &[Offer<'a>],
    width: impl Fn(&Offer<'a>, &Offer<'a>) -> f64,
) -> Option<Middle<'a>> {
    let mut best: Option<Middle<'a>> = None;
    for a in firsts {
        for b in seconds {
            let w = width(a, b);
            // Lines are quoted in halves: a gap under a quarter point is
            // rounding, not a band.
            if w < 0.25 || a.bookmaker == b.bookmaker {
                continue;
            }
            let candidate = Middle {
                first: *a,
                second: *b,
                width: w,
                overround: 1.0 / a.decimal + 1.0 / b.decimal - 1.0,
            };
            let better = match &best {
                None => true,
                Some(m) => {
                    w > m.width + 1e-9
                        || ((w - m.width).abs() <= 1e-9 && candidate.overround < m.overround)
                }
            };
            if better {
                best = Some(candidate);
            }
        }
    }
    best
}

/// A market's hold over the best price of each side, when it is at least 0
/// (below 0 it is an arbitrage) and under `threshold`.
pub fn low_hold(best_decimals: &[f64], threshold: f64) -> Option<f64> {
    if best_decimals.len() < 2 {
        return None;
    }
    let inverse_sum: f64 = best_decimals.iter().map(|d| 1.0 / d).sum();
    if inverse_sum < 1.0 {
        return None;
    }
    let h = hold(inverse_sum - 1.0);
    (h < threshold).then_some(h)
}

/// Hold under which a market is flagged as low-hold: 2 %.
pub const LOW_HOLD: f64 = 0.02;

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(bookmaker: &str, point: f64, decimal: f64) -> Offer<'_> {
        Offer {
            bookmaker,
            point,
            decimal,
        }
    }

    /// docs/formulas.md#middles: over 220.5 at 1.91 (a), under 222.5 at
    /// 1.95 (b): a 2-point band that costs 3.64 % outside it.
    #[test]
    fn a_totals_middle_of_two_points() {
        let overs = [offer("a", 220.5, 1.91), offer("b", 222.5, 1.91)];
        let unders = [offer("a", 220.5, 1.91), offer("b", 222.5, 1.95)];
        let m = totals_middle(&overs, &unders).unwrap();
        assert_eq!((m.first.bookmaker, m.second.bookmaker), ("a", "b"));
        assert_eq!(m.width, 2.0);
        assert!((m.overround - 0.036381).abs() < 1e-6, "{m:?}");
    }

    /// docs/formulas.md#middles: home +3.5 at 1.87 (a), away −2.5 at 1.95
    /// (b) both win when the home side loses by exactly 3.
    #[test]
    fn a_spreads_middle_on_a_key_number() {
        let homes = [offer("a", 3.5, 1.87), offer("b", 2.5, 2.00)];
        let aways = [offer("a", -3.5, 1.95), offer("b", -2.5, 1.95)];
        let m = spreads_middle(&homes, &aways).unwrap();
        assert_eq!((m.first.point, m.second.point), (3.5, -2.5));
        assert_eq!(m.width, 1.0);
        assert!((m.overround - 0.047580).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn one_line_everywhere_is_no_middle() {
        let overs = [offer("a", 220.5, 1.91), offer("b", 220.5, 1.95)];
        let unders = [offer("a", 220.5, 1.91), offer("b", 220.5, 1.87)];
        assert_eq!(totals_middle(&overs, &unders), None);
        // The same bookmaker's own two lines are not a middle either.
        let overs = [offer("a", 220.5, 1.91)];
        let unders = [offer("a", 222.5, 1.91)];
        assert_eq!(totals_middle(&overs, &unders), None);
    }

    /// docs/formulas.md#low-hold-markets: best 2.00 / 1.96, hold 1.01 %.
    #[test]
    fn low_hold_between_zero_and_the_threshold() {
        let h = low_hold(&[2.00, 1.96], LOW_HOLD).unwrap();
        assert!((h - 0.010101).abs() < 1e-6, "{h}");
        assert_eq!(low_hold(&[1.91, 1.91], LOW_HOLD), None, "4.5 % is not low");
        assert_eq!(low_hold(&[2.10, 2.05], LOW_HOLD), None, "an arbitrage");
    }
}
