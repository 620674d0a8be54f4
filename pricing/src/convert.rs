//! Price conversions needed by every consumer of odds: American ↔ decimal
//! and implied probability (docs/formulas.md#american-and-decimal-odds,
//! docs/formulas.md#implied-probability).

/// Decimal odds of an American price: A > 0 → 1 + A/100; A < 0 → 1 + 100/|A|.
/// `None` for prices that are not valid American odds (|A| < 100 or not finite).
pub fn american_to_decimal(american: f64) -> Option<f64> {
    if !american.is_finite() || american.abs() < 100.0 {
        return None;
    }
    Some(if american > 0.0 {
        1.0 + american / 100.0
    } else {
        1.0 + 100.0 / american.abs()
    })
}

/// American odds of a decimal price: d ≥ 2 → (d − 1)·100; d < 2 → −100/(d − 1).
/// `None` for decimal prices ≤ 1 or not finite.
pub fn decimal_to_american(decimal: f64) -> Option<f64> {
    if !decimal.is_finite() || decimal <= 1.0 {
        return None;
    }
    Some(if decimal >= 2.0 {
        (decimal - 1.0) * 100.0
    } else {
        -100.0 / (decimal - 1.0)
    })
}

/// Implied probability p = 1 / decimal. `None` for decimal ≤ 1.
pub fn implied_probability(decimal: f64) -> Option<f64> {
    (decimal.is_finite() && decimal > 1.0).then(|| 1.0 / decimal)
}

/// Implied probability of an American price.
pub fn implied_probability_american(american: f64) -> Option<f64> {
    american_to_decimal(american).and_then(implied_probability)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn american_to_decimal_exact_values() {
        assert_eq!(american_to_decimal(100.0), Some(2.0));
        assert_eq!(american_to_decimal(-100.0), Some(2.0));
        assert_eq!(american_to_decimal(-200.0), Some(1.5));
        assert_eq!(american_to_decimal(150.0), Some(2.5));
        assert!(close(
            american_to_decimal(-110.0).unwrap_or(0.0),
            1.0 + 100.0 / 110.0
        ));
        assert_eq!(american_to_decimal(50.0), None);
        assert_eq!(american_to_decimal(f64::NAN), None);
    }

    #[test]
    fn decimal_to_american_exact_values() {
        assert_eq!(decimal_to_american(2.0), Some(100.0));
        assert_eq!(decimal_to_american(1.5), Some(-200.0));
        assert_eq!(decimal_to_american(2.5), Some(150.0));
        assert!(close(
            decimal_to_american(1.0 + 100.0 / 110.0).unwrap_or(0.0),
            -110.0
        ));
        assert_eq!(decimal_to_american(1.0), None);
    }

    #[test]
    fn implied_probabilities() {
        assert_eq!(implied_probability_american(100.0), Some(0.5));
        assert!(close(
            implied_probability_american(-200.0).unwrap_or(0.0),
            2.0 / 3.0
        ));
        assert!(close(
            implied_probability_american(-110.0).unwrap_or(0.0),
            110.0 / 210.0
        ));
        assert_eq!(implied_probability(4.0), Some(0.25));
        assert_eq!(implied_probability(0.9), None);
    }

    #[test]
    fn round_trips() {
        for a in [-10000.0, -350.0, -110.0, -105.0, 100.0, 120.0, 900.0] {
            let back: f64 = american_to_decimal(a)
                .and_then(decimal_to_american)
                .unwrap_or(0.0);
            assert!((back - a).abs() < 1e-9, "{a} → {back}");
        }
    }
}
