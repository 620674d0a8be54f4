//! The fair opening and closing lines of the gold marts, through
//! `pricing::Rules::fair_line`: the de-vig method and anchor books the
//! live alerts and the markets page use, so a bookmaker's closing-line
//! value in gold and a value alert on the board measure against the same
//! line (docs/formulas.md#fair-line, #closing-line-value).
//!
//! The line marts' [`outcome_lines`](super::prices::outcome_lines) hold one
//! row per price series with its opening and closing snapshot. A
//! bookmaker's market at a snapshot is its series' rows of that snapshot
//! and line; the fair line of a (game, market, line) is formed from every
//! bookmaker's market there. A day of a sport is a few thousand series, so
//! this runs in Rust over the collected rows rather than as expressions.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use pricing::Rules;

/// Which snapshot of each series a fair line is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// Each bookmaker's first market at the line.
    Opening,
    /// Each bookmaker's last pre-game market at the line.
    Closing,
}

impl At {
    fn prefix(self) -> &'static str {
        match self {
            At::Opening => "opening",
            At::Closing => "closing",
        }
    }
}

/// The line a series' point belongs to, as a point key (hundredths): the
/// total, the home spread (an away spread negated), none for h2h.
fn line_key(market: &str, outcome: &str, point: Option<f64>) -> Option<i64> {
    let key = |p: f64| (p * 100.0).round() as i64;
    match (market, outcome) {
        ("h2h", _) => None,
        ("spreads", "away") => point.map(|p| key(-p)),
        _ => point.map(key),
    }
}

/// A (sport, game, market, line).
type LineId<'a> = (&'a str, &'a str, &'a str, Option<i64>);

/// Each bookmaker's market at its snapshot time, by (bookmaker, time).
type BookMarkets<'a> = BTreeMap<(&'a str, Option<i64>), Vec<Quote<'a>>>;

/// One outcome's row at the snapshot: its point key and implied probability.
struct Quote<'a> {
    outcome: &'a str,
    point_key: Option<i64>,
    prob: f64,
}

/// One row per (sport, game_id, market, outcome, point_key) with a fair
/// line at `at`: `fair_prob`, `fair_books` (the bookmakers that formed it:
/// the anchor's that quoted, or all for the median) and `fair_basis`
/// (pricing's `Basis`, e.g. `pinnacle` or `median of 5 bookmakers`).
pub(super) fn fair_lines(lines: LazyFrame, at: At, rules: &Rules) -> PolarsResult<LazyFrame> {
    let p = at.prefix();
    let df = lines
        .select([
            col("sport"),
            col("game_id"),
            col("market"),
            col("bookmaker"),
            col("outcome"),
            col(format!("{p}_time")).cast(DataType::Int64).alias("time"),
            col(format!("{p}_point")).alias("point"),
            col(format!("{p}_point_key")).alias("point_key"),
            col(format!("{p}_prob")).alias("prob"),
        ])
        .filter(col("prob").is_not_null())
        .collect()?;
    let sport = df.column("sport")?.str()?;
    let game = df.column("game_id")?.str()?;
    let market = df.column("market")?.str()?;
    let bookmaker = df.column("bookmaker")?.str()?;
    let outcome = df.column("outcome")?.str()?;
    let time = df.column("time")?.i64()?;
    let point = df.column("point")?.f64()?;
    let point_key = df.column("point_key")?.i64()?;
    let prob = df.column("prob")?.f64()?;

    // Per line, each bookmaker's market at its snapshot.
    let mut markets: BTreeMap<LineId<'_>, BookMarkets<'_>> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(s), Some(g), Some(m), Some(b), Some(o), Some(pr)) = (
            sport.get(i),
            game.get(i),
            market.get(i),
            bookmaker.get(i),
            outcome.get(i),
            prob.get(i),
        ) else {
            continue;
        };
        markets
            .entry((s, g, m, line_key(m, o, point.get(i))))
            .or_default()
            .entry((b, time.get(i)))
            .or_default()
            .push(Quote {
                outcome: o,
                point_key: point_key.get(i),
                prob: pr,
            });
    }

    let mut out = FairColumns::default();
    for ((s, g, m, _), books) in &markets {
        let outcomes: BTreeSet<&str> = books
            .values()
            .flat_map(|quotes| quotes.iter().map(|q| q.outcome))
            .collect();
        // Each bookmaker's implied probabilities in `outcomes` order; one
        // that misses an outcome (or quotes one twice) cannot be de-vigged.
        let implied: Vec<(&str, Vec<f64>)> = books
            .iter()
            .filter(|(_, quotes)| quotes.len() == outcomes.len())
            .filter_map(|((book, _), quotes)| {
                outcomes
                    .iter()
                    .map(|o| quotes.iter().find(|q| q.outcome == *o).map(|q| q.prob))
                    .collect::<Option<Vec<f64>>>()
                    .map(|probs| (*book, probs))
            })
            .collect();
        if implied.is_empty() {
            continue;
        }
        let line = rules.fair_line(&implied);
        let formed_by = match &line.basis {
            pricing::fair::Basis::Anchor(books) => books.len(),
            pricing::fair::Basis::Median(n) => *n,
        };
        for (o, fair) in outcomes.iter().zip(&line.probabilities) {
            let Some(fair) = fair else { continue };
            let key = books
                .values()
                .flat_map(|quotes| quotes.iter())
                .find(|q| q.outcome == *o)
                .and_then(|q| q.point_key);
            out.push(
                s,
                g,
                m,
                o,
                key,
                *fair,
                formed_by as i64,
                &line.basis.to_string(),
            );
        }
    }
    Ok(out.frame()?.lazy())
}

/// The columns of [`fair_lines`], row by row.
#[derive(Default)]
struct FairColumns {
    sport: Vec<String>,
    game_id: Vec<String>,
    market: Vec<String>,
    outcome: Vec<String>,
    point_key: Vec<Option<i64>>,
    fair_prob: Vec<f64>,
    fair_books: Vec<i64>,
    fair_basis: Vec<String>,
}

impl FairColumns {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        sport: &str,
        game_id: &str,
        market: &str,
        outcome: &str,
        point_key: Option<i64>,
        fair_prob: f64,
        fair_books: i64,
        fair_basis: &str,
    ) {
        self.sport.push(sport.to_owned());
        self.game_id.push(game_id.to_owned());
        self.market.push(market.to_owned());
        self.outcome.push(outcome.to_owned());
        self.point_key.push(point_key);
        self.fair_prob.push(fair_prob);
        self.fair_books.push(fair_books);
        self.fair_basis.push(fair_basis.to_owned());
    }

    fn frame(self) -> PolarsResult<DataFrame> {
        df!(
            "sport" => self.sport,
            "game_id" => self.game_id,
            "market" => self.market,
            "outcome" => self.outcome,
            "point_key" => self.point_key,
            "fair_prob" => self.fair_prob,
            "fair_books" => self.fair_books,
            "fair_basis" => self.fair_basis,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{odds, Quote as Q};
    use super::super::prices;
    use super::*;

    fn fair(quotes: &[Q], at: At, rules: &Rules) -> DataFrame {
        let lines = prices::outcome_lines(prices::priced(odds(quotes).lazy()).unwrap()).unwrap();
        fair_lines(lines, at, rules)
            .unwrap()
            .sort(["market", "outcome", "point_key"], Default::default())
            .collect()
            .unwrap()
    }

    fn cell(df: &DataFrame, outcome: &str, c: &str) -> AnyValue<'static> {
        let i = df
            .column("outcome")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .position(|o| o == Some(outcome))
            .unwrap();
        df.column(c).unwrap().get(i).unwrap().into_static()
    }

    /// docs/formulas.md#closing-line-value: two bookmakers close home 1.80
    /// / away 2.10: c(home) = 0.538462 from both.
    #[test]
    fn the_closing_line_is_the_median_without_an_anchor_book() {
        let quotes = [
            Q::h2h("a", 0, "home", 2.00),
            Q::h2h("a", 0, "away", 1.80),
            Q::h2h("a", 90, "home", 1.80),
            Q::h2h("a", 90, "away", 2.10),
            Q::h2h("b", 90, "home", 1.80),
            Q::h2h("b", 90, "away", 2.10),
        ];
        let df = fair(&quotes, At::Closing, &Rules::default());
        let AnyValue::Float64(home) = cell(&df, "home", "fair_prob") else {
            panic!("{df}")
        };
        assert!((home - 0.538462).abs() < 1e-6, "{df}");
        assert_eq!(cell(&df, "home", "fair_books"), AnyValue::Int64(2));
        assert_eq!(
            cell(&df, "home", "fair_basis"),
            AnyValue::StringOwned("median of 2 bookmakers".into())
        );
        // Each bookmaker's first market: a's at 0 (2.00 / 1.80, fair home
        // 0.473684) and b's at 90 (0.538462); their median is the open.
        let open = fair(&quotes, At::Opening, &Rules::default());
        let AnyValue::Float64(open_home) = cell(&open, "home", "fair_prob") else {
            panic!("{open}")
        };
        let (h, a) = (1.0 / 2.00, 1.0 / 1.80);
        let a_open = h / (h + a);
        let b_open = (1.0 / 1.80) / (1.0 / 1.80 + 1.0 / 2.10);
        assert!((open_home - (a_open + b_open) / 2.0).abs() < 1e-9, "{open}");
    }

    /// docs/formulas.md#fair-line: Pinnacle closing sets the fair close.
    #[test]
    fn a_sharp_book_at_the_close_sets_the_line() {
        let quotes = [
            Q::h2h("draftkings", 90, "home", 1.80),
            Q::h2h("draftkings", 90, "away", 2.10),
            Q::h2h("pinnacle", 90, "home", 1.91),
            Q::h2h("pinnacle", 90, "away", 2.00),
        ];
        let df = fair(&quotes, At::Closing, &Rules::default());
        let AnyValue::Float64(home) = cell(&df, "home", "fair_prob") else {
            panic!("{df}")
        };
        assert!((home - 0.511509).abs() < 1e-6, "{df}");
        assert_eq!(cell(&df, "home", "fair_books"), AnyValue::Int64(1));
    }

    /// Spreads pair a home −3.5 with an away +3.5 into one line, and each
    /// side keeps its own point key.
    #[test]
    fn spread_sides_meet_on_the_home_line() {
        let quotes = [
            Q::spread("a", 90, "home", -3.5, 1.91),
            Q::spread("a", 90, "away", 3.5, 1.91),
            Q::spread("b", 90, "home", -3.5, 1.95),
            Q::spread("b", 90, "away", 3.5, 1.87),
        ];
        let df = fair(&quotes, At::Closing, &Rules::default());
        assert_eq!(df.height(), 2, "{df}");
        assert_eq!(cell(&df, "away", "point_key"), AnyValue::Int64(350));
        assert_eq!(cell(&df, "home", "point_key"), AnyValue::Int64(-350));
        assert_eq!(cell(&df, "home", "fair_books"), AnyValue::Int64(2));
    }
}
