//! The betting-price formulas BetFlow computes, in one place, so the stream
//! consumers, the batch marts' checks and the web pages cannot disagree:
//! price conversions ([`convert`]), de-vig methods ([`devig`]), the
//! consensus of several bookmakers and what a price is worth against it
//! ([`consensus`]: median, hold, expected value, Kelly stakes), the fair
//! line a sharp book or the crowd sets ([`fair`]), middles and low-hold
//! markets ([`middle`]) and steam moves ([`steam`]). Pure functions over numbers; each is documented with
//! a worked example in docs/formulas.md and tested against it.

pub mod consensus;
pub mod convert;
pub mod devig;
pub mod fair;
pub mod middle;
pub mod steam;

use devig::Devig;
use fair::{Anchor, FairLine};
use steam::SteamRule;

/// How a deployment judges prices: its de-vig method, what makes steam and
/// value, and the share of Kelly it shows. The stream's alerts and the
/// markets pages use the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub devig: Devig,
    /// The bookmakers whose prices are the fair line when they quote.
    pub anchor: Anchor,
    pub steam: SteamRule,
    /// Expected return at which a best price is flagged as value.
    pub value_edge: f64,
    /// The share of the full Kelly stake shown beside it.
    pub kelly_fraction: f64,
    /// Hold of the best prices under which a market is flagged low-hold.
    pub low_hold: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            devig: Devig::default(),
            anchor: Anchor::default(),
            steam: SteamRule::default(),
            value_edge: consensus::VALUE_EDGE,
            kelly_fraction: consensus::KELLY_FRACTION,
            low_hold: middle::LOW_HOLD,
        }
    }
}

impl Rules {
    /// The fair line of a market from each bookmaker's implied
    /// probabilities, all in one outcome order: de-vigged with this
    /// deployment's method, then the anchor's weighted when one quotes,
    /// else the median ([`fair::fair_line`]).
    pub fn fair_line(&self, markets: &[(&str, Vec<f64>)]) -> FairLine {
        fair::fair_line(self.devig, &self.anchor, markets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formulas.md#consensus-probability: three bookmakers' h2h.
    #[test]
    fn the_consensus_is_the_median_fair_probability() {
        let books: Vec<(&str, Vec<f64>)> =
            [("a", 1.80, 2.10), ("b", 1.85, 2.00), ("c", 1.83, 2.05)]
                .iter()
                .map(|(book, h, a)| (*book, vec![1.0 / h, 1.0 / a]))
                .collect();
        let c = Rules::default().fair_line(&books).probabilities;
        assert!((c[0].unwrap() - 0.528351).abs() < 1e-6, "{c:?}");
        assert!((c[1].unwrap() - 0.471649).abs() < 1e-6, "{c:?}");
    }
}
