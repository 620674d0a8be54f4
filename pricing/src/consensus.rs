//! Several bookmakers' view of one outcome, and what a price is worth
//! against it (docs/formulas.md#consensus-probability, #overround-and-vig,
//! #value, #expected-value-and-kelly).

/// The median, the mean of the middle two for an even count; `None` for
/// no values.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// A bookmaker's margin on a balanced book: `1 − 1/Σp`, from its
/// overround `Σp − 1`.
pub fn hold(overround: f64) -> f64 {
    1.0 - 1.0 / (1.0 + overround)
}

/// Expected return per unit staked at `decimal` when the outcome's fair
/// probability is `fair`: `decimal × fair − 1`.
pub fn expected_value(decimal: f64, fair: f64) -> f64 {
    decimal * fair - 1.0
}

/// A price is value when its expected return reaches this.
pub const VALUE_EDGE: f64 = 0.02;

/// The expected value when it reaches [`VALUE_EDGE`].
pub fn value_edge(decimal: f64, fair: f64) -> Option<f64> {
    let edge = expected_value(decimal, fair);
    (edge >= VALUE_EDGE).then_some(edge)
}

/// The Kelly stake, as a fraction of the bankroll, of a bet at `decimal`
/// with win probability `fair`: `(b·p − q) / b` with `b = decimal − 1`,
/// `q = 1 − p`; zero when the bet has no edge.
pub fn kelly(decimal: f64, fair: f64) -> f64 {
    let b = decimal - 1.0;
    if b <= 0.0 {
        return 0.0;
    }
    ((b * fair - (1.0 - fair)) / b).max(0.0)
}

/// The share of the full Kelly stake the pages show beside it: a quarter,
/// the usual way to size below full Kelly's variance.
pub const KELLY_FRACTION: f64 = 0.25;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle_two_of_an_even_count() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![0.538462, 0.519481, 0.528351]), Some(0.528351));
        assert_eq!(median(vec![0.4, 0.6]), Some(0.5));
    }

    /// docs/formulas.md: −110 on both sides, overround 0.047619, hold 4.55 %.
    #[test]
    fn hold_of_a_minus_110_market() {
        assert!((hold(0.047619) - 0.045454).abs() < 1e-6);
    }

    /// docs/formulas.md#expected-value-and-kelly: 2.05 at a fair 0.500715.
    #[test]
    fn expected_value_and_kelly_of_the_worked_example() {
        assert!((expected_value(2.05, 0.500715) - 0.026466).abs() < 1e-6);
        assert_eq!(
            value_edge(2.05, 0.500715).map(|e| (e * 1e6).round()),
            Some(26466.0)
        );
        // b = 1.05: (1.05 × 0.500715 − 0.499285) / 1.05 = 0.025206.
        assert!((kelly(2.05, 0.500715) - 0.025206).abs() < 1e-6);
        assert_eq!(kelly(1.80, 0.5), 0.0, "no edge, no stake");
        assert_eq!(value_edge(1.95, 0.5), None);
    }
}
