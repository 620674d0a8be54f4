//! Steam: several bookmakers moving one outcome the same way at once
//! (docs/formulas.md#steam).

/// When moves make steam.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SteamRule {
    /// A bookmaker's move in implied probability that counts.
    pub min_move: f64,
    /// Bookmakers that must move the same way.
    pub min_bookmakers: usize,
}

impl Default for SteamRule {
    /// 1.5 points, three bookmakers.
    fn default() -> Self {
        SteamRule {
            min_move: 0.015,
            min_bookmakers: 3,
        }
    }
}

/// A steam move found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steam {
    /// `true`: the outcome shortened (its implied probability rose).
    pub shortened: bool,
    pub bookmakers: usize,
    /// The movers' mean change of implied probability, signed.
    pub mean_move: f64,
}

impl SteamRule {
    /// Steam among `moves` — each quoting bookmaker's change of implied
    /// probability over the window, `None` when it has no opening price in
    /// it — when at least `min_bookmakers`, and at least half of those
    /// quoting, moved `min_move` or more the same way.
    pub fn judge(&self, moves: impl IntoIterator<Item = Option<f64>>) -> Option<Steam> {
        let (mut up, mut down): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        let mut quoted = 0usize;
        for m in moves {
            quoted += 1;
            match m {
                Some(d) if d >= self.min_move => up.push(d),
                Some(d) if d <= -self.min_move => down.push(d),
                _ => {}
            }
        }
        let (shortened, movers) = if up.len() >= down.len() {
            (true, up)
        } else {
            (false, down)
        };
        (movers.len() >= self.min_bookmakers && movers.len() * 2 >= quoted).then(|| Steam {
            shortened,
            bookmakers: movers.len(),
            mean_move: movers.iter().sum::<f64>() / movers.len() as f64,
        })
    }
}

/// A bookmaker's change of implied probability from `open` to `latest`
/// (decimal prices).
pub fn implied_move(open: f64, latest: f64) -> f64 {
    1.0 / latest - 1.0 / open
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formulas.md#steam: three of four bookmakers 2.00 → 1.90.
    #[test]
    fn three_of_four_moving_together_is_steam() {
        let m = Some(implied_move(2.0, 1.9));
        let rule = SteamRule::default();
        let steam = rule.judge([m, m, m, Some(0.0)]).expect("steam");
        assert!(steam.shortened);
        assert_eq!(steam.bookmakers, 3);
        assert!((steam.mean_move - 0.026316).abs() < 1e-6);
        assert_eq!(rule.judge([m, m, Some(0.0)]), None, "two bookmakers");
        assert_eq!(
            rule.judge([m, m, m, None, None, None, None, None]),
            None,
            "3 of 8"
        );
        let drift = Some(implied_move(2.0, 2.02));
        assert_eq!(rule.judge([drift, drift, drift]), None, "half a point");
    }
}
