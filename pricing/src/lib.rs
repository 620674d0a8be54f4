//! The betting-price formulas BetFlow computes, in one place, so the stream
//! consumers, the batch marts' checks and the web pages cannot disagree:
//! price conversions ([`convert`]), de-vig methods ([`devig`]), the
//! consensus of several bookmakers and what a price is worth against it
//! ([`consensus`]: median, hold, expected value, Kelly stakes) and steam
//! moves ([`steam`]). Pure functions over numbers; each is documented with
//! a worked example in docs/formulas.md and tested against it.

pub mod consensus;
pub mod convert;
pub mod devig;
pub mod steam;

use devig::Devig;
use steam::SteamRule;

/// How a deployment judges prices: its de-vig method, what makes steam and
/// value, and the share of Kelly it shows. The stream's alerts and the
/// markets pages use the same.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub devig: Devig,
    pub steam: SteamRule,
    /// Expected return at which a best price is flagged as value.
    pub value_edge: f64,
    /// The share of the full Kelly stake shown beside it.
    pub kelly_fraction: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            devig: Devig::default(),
            steam: SteamRule::default(),
            value_edge: consensus::VALUE_EDGE,
            kelly_fraction: consensus::KELLY_FRACTION,
        }
    }
}

impl Rules {
    /// The consensus fair probability of each outcome, by position: per
    /// bookmaker, its market's implied probabilities de-vigged with this
    /// deployment's method; then the median over bookmakers. `markets`
    /// holds each bookmaker's implied probabilities in one outcome order;
    /// a bookmaker the method cannot de-vig is left out.
    pub fn consensus(&self, markets: &[Vec<f64>]) -> Vec<Option<f64>> {
        let n = markets.iter().map(Vec::len).max().unwrap_or(0);
        let fair: Vec<Vec<f64>> = markets
            .iter()
            .filter(|m| m.len() == n)
            .filter_map(|m| self.devig.fair(m))
            .collect();
        (0..n)
            .map(|i| consensus::median(fair.iter().map(|f| f[i]).collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formulas.md#consensus-probability: three bookmakers' h2h.
    #[test]
    fn the_consensus_is_the_median_fair_probability() {
        let books: Vec<Vec<f64>> = [(1.80, 2.10), (1.85, 2.00), (1.83, 2.05)]
            .iter()
            .map(|(h, a)| vec![1.0 / h, 1.0 / a])
            .collect();
        let c = Rules::default().consensus(&books);
        assert!((c[0].unwrap() - 0.528351).abs() < 1e-6, "{c:?}");
        assert!((c[1].unwrap() - 0.471649).abs() < 1e-6, "{c:?}");
    }
}
