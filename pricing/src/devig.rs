//! De-vig methods: a bookmaker's implied probabilities of one market (their
//! sum above 1 by the overround) turned into fair probabilities summing to
//! 1 (docs/formulas.md#no-vig-probability).
//!
//! - multiplicative (the default): `p_i / Σp`, the vig spread in proportion;
//! - additive: `p_i − (Σp − 1)/n`, the vig spread evenly;
//! - power: `p_i^k` with `k` such that `Σ p_i^k = 1`, which takes more vig
//!   from long shots (the favourite–longshot bias);
//! - Shin: the probabilities a bookmaker facing a share `z` of insiders
//!   would quote, `z` solved so they sum to 1.

use std::fmt;
use std::str::FromStr;

/// A de-vig method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Devig {
    #[default]
    Multiplicative,
    Additive,
    Power,
    Shin,
}

impl Devig {
    pub const ALL: [Devig; 4] = [
        Devig::Multiplicative,
        Devig::Additive,
        Devig::Power,
        Devig::Shin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Devig::Multiplicative => "multiplicative",
            Devig::Additive => "additive",
            Devig::Power => "power",
            Devig::Shin => "shin",
        }
    }

    /// Fair probabilities of `implied` (each in (0, 1), at least two),
    /// summing to 1; `None` when the method has no answer (an additive
    /// share below zero, or implied probabilities that sum to less than 1
    /// for the power and Shin methods, which assume a vig).
    pub fn fair(self, implied: &[f64]) -> Option<Vec<f64>> {
        if implied.len() < 2
            || implied
                .iter()
                .any(|p| !(p.is_finite() && *p > 0.0 && *p < 1.0))
        {
            return None;
        }
        let total: f64 = implied.iter().sum();
        match self {
            Devig::Multiplicative => Some(implied.iter().map(|p| p / total).collect()),
            Devig::Additive => {
                let share = (total - 1.0) / implied.len() as f64;
                let fair: Vec<f64> = implied.iter().map(|p| p - share).collect();
                fair.iter().all(|p| *p > 0.0).then_some(fair)
            }
            Devig::Power => {
                if total <= 1.0 {
                    return (total == 1.0).then(|| implied.to_vec());
                }
                // Σ p^k falls as k grows (p < 1): find k > 1 where it is 1.
                let sum = |k: f64| implied.iter().map(|p| p.powf(k)).sum::<f64>();
                let k = bisect(1.0, 20.0, |k| sum(k) - 1.0)?;
                Some(implied.iter().map(|p| p.powf(k)).collect())
            }
            Devig::Shin => {
                if total <= 1.0 {
                    return (total == 1.0).then(|| implied.to_vec());
                }
                let at = |z: f64| -> Vec<f64> {
                    implied
                        .iter()
                        .map(|p| {
                            ((z * z + 4.0 * (1.0 - z) * p * p / total).sqrt() - z)
                                / (2.0 * (1.0 - z))
                        })
                        .collect()
                };
                // The sum is above 1 at z = 0 and falls as z grows: solve for 1.
                let z = bisect(0.0, 0.5, |z| at(z).iter().sum::<f64>() - 1.0)?;
                Some(at(z))
            }
        }
    }
}

/// The root of a decreasing `f` in `[lo, hi]`, by bisection to 1e-12.
fn bisect(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> Option<f64> {
    if f(lo) < 0.0 || f(hi) > 0.0 {
        return None;
    }
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    Some((lo + hi) / 2.0)
}

impl fmt::Display for Devig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Devig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Devig::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| "use multiplicative, additive, power or shin".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formulas.md#no-vig-probability: a favourite at 1.50 and an
    /// underdog at 2.70 (implied 0.666667 and 0.370370, Σ 1.037037).
    const MARKET: [f64; 2] = [1.0 / 1.50, 1.0 / 2.70];
    /// Shin's fair probabilities of home 2.20, draw 3.40, away 3.60 (z = 0.013230).
    const SHIN_THREE: [f64; 3] = [0.444996, 0.285617, 0.269386];

    fn close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert!(
            (got.iter().sum::<f64>() - 1.0).abs() < 1e-9,
            "{got:?} sums to 1"
        );
    }

    #[test]
    fn each_method_follows_its_worked_example() {
        close(
            &Devig::Multiplicative.fair(&MARKET).unwrap(),
            &[0.642857, 0.357143],
        );
        close(
            &Devig::Additive.fair(&MARKET).unwrap(),
            &[0.648148, 0.351852],
        );
        close(&Devig::Power.fair(&MARKET).unwrap(), &[0.650822, 0.349178]);
        // With two outcomes Shin's answer is the additive one (z = 0.037164).
        close(&Devig::Shin.fair(&MARKET).unwrap(), &[0.648148, 0.351852]);
        // With three it is not: a home 2.20, draw 3.40, away 3.60 market.
        let three = [1.0 / 2.20, 1.0 / 3.40, 1.0 / 3.60];
        let shin = Devig::Shin.fair(&three).unwrap();
        let additive = Devig::Additive.fair(&three).unwrap();
        assert!(
            (shin[0] - additive[0]).abs() > 1e-4,
            "{shin:?} vs {additive:?}"
        );
        close(&shin, &SHIN_THREE);
    }

    #[test]
    fn methods_refuse_what_they_cannot_answer() {
        assert_eq!(Devig::Multiplicative.fair(&[0.5]), None, "one outcome");
        assert_eq!(
            Devig::Additive.fair(&[0.95, 0.02, 0.2]),
            None,
            "a negative share"
        );
        assert_eq!(Devig::Power.fair(&[0.4, 0.4]), None, "no vig to take");
        assert_eq!(Devig::Shin.fair(&[1.2, 0.1]), None, "not a probability");
        assert_eq!(Devig::Power.fair(&[0.5, 0.5]), Some(vec![0.5, 0.5]));
    }

    #[test]
    fn names_parse_back() {
        for d in Devig::ALL {
            assert_eq!(d.as_str().parse::<Devig>(), Ok(d));
        }
        assert!("proportional".parse::<Devig>().is_err());
    }
}
