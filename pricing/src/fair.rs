//! The fair line of one market: whose de-vigged prices stand for the true
//! probabilities (docs/formulas.md#fair-line).
//!
//! Bookmakers differ in how much their prices know. A sharp book (Pinnacle
//! and its Asian brand PS3838 take the largest limits and move first) is a
//! better estimate than the crowd, so when one quotes the market its
//! de-vigged prices, weighted, are the fair line; otherwise the median of
//! every bookmaker's de-vigged prices is. The line records which it was, so
//! a page or an alert can say what an edge was measured against.

use std::fmt;
use std::str::FromStr;

use crate::consensus::median;
use crate::devig::Devig;

/// Bookmakers whose de-vigged prices form the fair line when they quote a
/// market, each with a weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    books: Vec<(String, f64)>,
}

impl Default for Anchor {
    /// Pinnacle and PS3838 (the same book's Asian brand), equally weighted.
    fn default() -> Self {
        Anchor {
            books: vec![("pinnacle".to_owned(), 1.0), ("ps3838".to_owned(), 1.0)],
        }
    }
}

impl Anchor {
    /// No anchor: the fair line is always the median of all bookmakers.
    pub fn median_only() -> Anchor {
        Anchor { books: Vec::new() }
    }

    /// The weight of `bookmaker` (its key, as the odds source names it).
    pub fn weight(&self, bookmaker: &str) -> Option<f64> {
        self.books
            .iter()
            .find(|(b, _)| b == bookmaker)
            .map(|(_, w)| *w)
    }

    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }
}

/// `pinnacle=1,circasports=0.5`; a name alone weighs 1; `median` (or an
/// empty text) for no anchor.
impl FromStr for Anchor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("median") {
            return Ok(Anchor::median_only());
        }
        let mut books: Vec<(String, f64)> = Vec::new();
        for item in text.split(',') {
            let (name, weight) = match item.split_once('=') {
                Some((name, weight)) => {
                    let weight: f64 = weight
                        .trim()
                        .parse()
                        .map_err(|_| format!("the weight of {:?} is not a number", name.trim()))?;
                    (name.trim(), weight)
                }
                None => (item.trim(), 1.0),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "{name:?} is not a bookmaker key (letters, digits and _)"
                ));
            }
            if !(weight.is_finite() && weight > 0.0) {
                return Err(format!("the weight of {name:?} must be above 0"));
            }
            if books.iter().any(|(b, _)| b == name) {
                return Err(format!("{name:?} is listed twice"));
            }
            books.push((name.to_owned(), weight));
        }
        Ok(Anchor { books })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.books.is_empty() {
            return f.write_str("median");
        }
        let items: Vec<String> = self.books.iter().map(|(b, w)| format!("{b}={w}")).collect();
        f.write_str(&items.join(","))
    }
}

/// What a fair line was formed from.
#[derive(Debug, Clone, PartialEq)]
pub enum Basis {
    /// The anchor's bookmakers that quoted the market, sorted.
    Anchor(Vec<String>),
    /// The median of this many bookmakers' de-vigged prices.
    Median(usize),
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Basis::Anchor(books) => f.write_str(&books.join("+")),
            Basis::Median(1) => f.write_str("1 bookmaker"),
            Basis::Median(n) => write!(f, "median of {n} bookmakers"),
        }
    }
}

/// The fair probability of each outcome, by position, and its basis.
#[derive(Debug, Clone, PartialEq)]
pub struct FairLine {
    pub probabilities: Vec<Option<f64>>,
    pub basis: Basis,
}

/// The fair line of a market from each bookmaker's implied probabilities
/// (all in one outcome order): each bookmaker's de-vigged by `devig`; the
/// weighted mean of the anchor's that quote every outcome, else the median
/// per outcome. A bookmaker the method cannot de-vig, or that misses an
/// outcome others quote, is left out.
pub fn fair_line(devig: Devig, anchor: &Anchor, markets: &[(&str, Vec<f64>)]) -> FairLine {
    let n = markets.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    let fair: Vec<(&str, Vec<f64>)> = markets
        .iter()
        .filter(|(_, m)| m.len() == n)
        .filter_map(|(book, m)| devig.fair(m).map(|f| (*book, f)))
        .collect();
    let anchored: Vec<(&str, f64, &Vec<f64>)> = fair
        .iter()
        .filter_map(|(book, f)| anchor.weight(book).map(|w| (*book, w, f)))
        .collect();
    if !anchored.is_empty() {
        let total: f64 = anchored.iter().map(|(_, w, _)| w).sum();
        let probabilities = (0..n)
            .map(|i| Some(anchored.iter().map(|(_, w, f)| w * f[i]).sum::<f64>() / total))
            .collect();
        let mut books: Vec<String> = anchored.iter().map(|(b, _, _)| (*b).to_owned()).collect();
        books.sort();
        return FairLine {
            probabilities,
            basis: Basis::Anchor(books),
        };
    }
    FairLine {
        probabilities: (0..n)
            .map(|i| median(fair.iter().map(|(_, f)| f[i]).collect()))
            .collect(),
        basis: Basis::Median(fair.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn implied(prices: &[f64]) -> Vec<f64> {
        prices.iter().map(|d| 1.0 / d).collect()
    }

    /// docs/formulas.md#fair-line: Pinnacle 1.91 / 2.00 among two others.
    #[test]
    fn a_quoted_sharp_book_is_the_fair_line() {
        let books = [
            ("draftkings", implied(&[1.80, 2.10])),
            ("pinnacle", implied(&[1.91, 2.00])),
            ("fanduel", implied(&[1.85, 2.00])),
        ];
        let line = fair_line(Devig::Multiplicative, &Anchor::default(), &books);
        assert_eq!(line.basis, Basis::Anchor(vec!["pinnacle".to_owned()]));
        assert!((line.probabilities[0].unwrap() - 0.511509).abs() < 1e-6);
        assert!((line.probabilities[1].unwrap() - 0.488491).abs() < 1e-6);
        assert_eq!(line.basis.to_string(), "pinnacle");
    }

    /// docs/formulas.md#fair-line: Circa at half weight beside Pinnacle.
    #[test]
    fn anchor_books_are_weighted() {
        let anchor: Anchor = "pinnacle=1, circasports=0.5".parse().unwrap();
        let books = [
            ("circasports", implied(&[1.95, 1.95])),
            ("pinnacle", implied(&[1.91, 2.00])),
        ];
        let line = fair_line(Devig::Multiplicative, &anchor, &books);
        assert!((line.probabilities[0].unwrap() - 0.507673).abs() < 1e-6);
        assert!((line.probabilities[1].unwrap() - 0.492327).abs() < 1e-6);
        assert_eq!(line.basis.to_string(), "circasports+pinnacle");
    }

    /// Without a sharp book the median of all is the line, as in
    /// docs/formulas.md#consensus-probability.
    #[test]
    fn without_the_anchor_the_median_is_the_fair_line() {
        let books = [
            ("a", implied(&[1.80, 2.10])),
            ("b", implied(&[1.85, 2.00])),
            ("c", implied(&[1.83, 2.05])),
        ];
        let line = fair_line(Devig::Multiplicative, &Anchor::default(), &books);
        assert_eq!(line.basis, Basis::Median(3));
        assert!((line.probabilities[0].unwrap() - 0.528351).abs() < 1e-6);
        assert_eq!(line.basis.to_string(), "median of 3 bookmakers");
    }

    #[test]
    fn a_sharp_book_missing_an_outcome_does_not_anchor() {
        let books = [
            ("pinnacle", implied(&[1.91])),
            ("a", implied(&[1.80, 2.10])),
            ("b", implied(&[1.85, 2.00])),
        ];
        let line = fair_line(Devig::Multiplicative, &Anchor::default(), &books);
        assert_eq!(line.basis, Basis::Median(2));
    }

    #[test]
    fn anchors_parse_and_print() {
        assert_eq!("median".parse::<Anchor>().unwrap(), Anchor::median_only());
        assert_eq!("".parse::<Anchor>().unwrap(), Anchor::median_only());
        let a: Anchor = "pinnacle,circasports=0.5".parse().unwrap();
        assert_eq!(a.weight("pinnacle"), Some(1.0));
        assert_eq!(a.to_string(), "pinnacle=1,circasports=0.5");
        assert_eq!(Anchor::default().to_string(), "pinnacle=1,ps3838=1");
        for bad in ["pinnacle=0", "pinnacle=x", "pin nacle", "a,a", "=2"] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad} parsed");
        }
    }
}
