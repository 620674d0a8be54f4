//! The markets board: each game of a sports day with its live state and,
//! per market, the main line's best prices, the consensus fair price, the
//! hold, the movement since open and the arbitrage, steam and value flags.
//! The figures follow docs/formulas.md (consensus, best price, arbitrage,
//! hold, steam, value); this module is pure, so they are tested here.

use std::borrow::Cow;
use std::collections::BTreeMap;

// A board hashes every price's names a few times over; SipHash was a
// fifth of building one (`betflow bench web`, "markets, uncached").
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use chrono::{DateTime, Utc};

use pricing::consensus::{expected_value, hold, kelly, median};
use pricing::middle::{low_hold, spreads_middle, totals_middle, Offer};
use pricing::steam::{implied_move, Steam};
use pricing::Rules;

use super::read::{EventRow, GameRow, MovePoint, PriceRow, WindowMove};

/// Markets in the order the board shows them.
pub const MARKETS: [&str; 3] = ["h2h", "spreads", "totals"];

/// The score and clock of a game the games consumer follows.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveState {
    pub status: String,
    pub period: i32,
    pub clock: Option<String>,
    pub home_score: i32,
    pub away_score: i32,
    pub updated: DateTime<Utc>,
}

/// One game on the board.
#[derive(Debug, Clone)]
pub struct GameCard {
    pub sport: String,
    /// The odds event, when the game has prices.
    pub event_id: Option<String>,
    pub home_team: String,
    pub away_team: String,
    pub start: DateTime<Utc>,
    pub live: Option<LiveState>,
    pub markets: Vec<MarketLine>,
}

/// A market's main line: the line most bookmakers quote.
#[derive(Debug, Clone)]
pub struct MarketLine {
    pub market: String,
    /// The home spread or the total; `None` for h2h.
    pub line: Option<f64>,
    /// Median hold of the bookmakers quoting the line.
    pub hold: f64,
    pub bookmakers: usize,
    /// `1 − Σ 1/best` when positive.
    pub arbitrage: Option<f64>,
    /// The hold of the best prices, when under the low-hold threshold.
    pub low_hold: Option<f64>,
    /// What the fair prices were formed from: the anchor's books, or the
    /// median of how many (docs/formulas.md#fair-line).
    pub fair_basis: String,
    /// The widest middle across the market's lines.
    pub middle: Option<MiddleLine>,
    pub sides: Vec<Side>,
}

/// Two offers at different lines that both win inside the band between
/// them (docs/formulas.md#middles).
#[derive(Debug, Clone, PartialEq)]
pub struct MiddleLine {
    /// (outcome, point, decimal, bookmaker) of the over or home side.
    pub first: MiddleLeg,
    /// The same of the under or away side.
    pub second: MiddleLeg,
    pub width: f64,
    pub overround: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MiddleLeg {
    pub outcome: String,
    pub point: f64,
    pub decimal: f64,
    pub bookmaker: String,
}

/// One outcome of a market line.
#[derive(Debug, Clone)]
pub struct Side {
    pub outcome: String,
    pub point: Option<f64>,
    pub best_decimal: f64,
    pub best_american: Option<f64>,
    /// Every bookmaker offering the best price (ties included).
    pub best_bookmakers: Vec<String>,
    /// Median no-vig probability across bookmakers.
    pub fair_probability: f64,
    /// Median implied probability now minus at each bookmaker's open, in
    /// probability (0.02 = 2 points); `None` without an open on this line.
    pub movement: Option<f64>,
    /// Mean implied probability per time bucket, oldest first.
    pub history: Vec<f64>,
    pub steam: Option<Steam>,
    /// `best × fair − 1` at the best price.
    pub expected_value: f64,
    /// The same, when it reaches the deployment's value threshold.
    pub value_edge: Option<f64>,
    /// The full Kelly stake at the best price, a fraction of the bankroll.
    pub kelly: f64,
}

impl Side {
    pub fn fair_decimal(&self) -> f64 {
        1.0 / self.fair_probability
    }
}

/// A point as a map key: lines are quoted in halves, so hundredths are exact.
fn point_key(p: Option<f64>) -> Option<i64> {
    p.map(|v| (v * 100.0).round() as i64)
}

/// The line a bookmaker's outcome row belongs to: the home spread, the
/// total, or none for h2h.
fn line_of(market: &str, outcome: &str, point: Option<f64>) -> Option<i64> {
    match (market, outcome) {
        ("spreads", "away") => point_key(point.map(|p| -p)),
        ("h2h", _) => None,
        _ => point_key(point),
    }
}

/// Names compared loosely: case, spaces and punctuation aside, so
/// "LA Clippers" and "L.A. Clippers" meet.
pub fn name_key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What the board is built from.
pub struct Inputs<'a> {
    pub rules: &'a Rules,
    pub events: &'a [EventRow],
    pub games: &'a [GameRow],
    pub prices: &'a [PriceRow],
    pub movement: &'a [MovePoint],
    pub window_moves: &'a [WindowMove],
}

/// Every game of the day: each odds event with its game's live state when
/// the names match, then the games no odds event matched.
pub fn build(inputs: &Inputs<'_>) -> Vec<GameCard> {
    let mut games_by_name: HashMap<(String, String, String), &GameRow> = HashMap::new();
    for g in inputs.games {
        if let (Some(h), Some(a)) = (&g.home_team, &g.away_team) {
            games_by_name.insert((g.sport.clone(), name_key(h), name_key(a)), g);
        }
    }
    // Each event's rows apart, so a day of a hundred games is one pass over
    // the prices rather than one per game; rows arrive grouped by event
    // (the reads order them so), and are then borrowed, not copied.
    let prices = grouped(inputs.prices, |r| &r.event_id);
    let movement = grouped(inputs.movement, |r| &r.event_id);
    let window_moves = grouped(inputs.window_moves, |r| &r.event_id);
    let prices = by_event(&prices, |r| &r.event_id);
    let movement = by_event(&movement, |r| &r.event_id);
    let window_moves = by_event(&window_moves, |r| &r.event_id);
    let mut matched: Vec<&str> = Vec::new();
    let mut cards: Vec<GameCard> = Vec::new();
    for e in inputs.events {
        let id = e.event_id.as_str();
        let own = Inputs {
            rules: inputs.rules,
            events: &[],
            games: &[],
            prices: prices.get(id).copied().unwrap_or(&[]),
            movement: movement.get(id).copied().unwrap_or(&[]),
            window_moves: window_moves.get(id).copied().unwrap_or(&[]),
        };
        let key = (
            e.sport.clone(),
            name_key(&e.home_team),
            name_key(&e.away_team),
        );
        let game = games_by_name.get(&key).copied();
        if let Some(g) = game {
            matched.push(&g.game_id);
        }
        cards.push(GameCard {
            sport: e.sport.clone(),
            event_id: Some(e.event_id.clone()),
            home_team: e.home_team.clone(),
            away_team: e.away_team.clone(),
            start: e.commence_time,
            live: game.map(live_state),
            markets: markets_of(&e.event_id, &own),
        });
    }
    for g in inputs.games {
        if matched.contains(&g.game_id.as_str()) {
            continue;
        }
        cards.push(GameCard {
            sport: g.sport.clone(),
            event_id: None,
            home_team: g.home_team.clone().unwrap_or_else(|| "home".to_owned()),
            away_team: g.away_team.clone().unwrap_or_else(|| "away".to_owned()),
            start: g.start_time.unwrap_or(g.event_time),
            live: Some(live_state(g)),
            markets: Vec::new(),
        });
    }
    cards.sort_by(|a, b| (a.start, &a.sport, &a.home_team).cmp(&(b.start, &b.sport, &b.home_team)));
    cards
}

/// `rows` with each event's rows next to each other: as given when they
/// already are, else a sorted copy.
fn grouped<T: Clone>(rows: &[T], id: impl Fn(&T) -> &str) -> Cow<'_, [T]> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut last: Option<&str> = None;
    let is_grouped = rows.iter().all(|r| {
        let key = id(r);
        if last == Some(key) {
            return true;
        }
        last = Some(key);
        seen.insert(key)
    });
    if is_grouped {
        return Cow::Borrowed(rows);
    }
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| id(a).cmp(id(b)));
    Cow::Owned(sorted)
}

/// Each event's run of rows of `rows` (grouped by event, see [`grouped`]).
fn by_event<T>(rows: &[T], id: impl Fn(&T) -> &str) -> HashMap<&str, &[T]> {
    // `chunk_by` never yields an empty run.
    rows.chunk_by(|a, b| id(a) == id(b))
        .map(|run| (id(&run[0]), run))
        .collect()
}

fn live_state(g: &GameRow) -> LiveState {
    LiveState {
        status: g.status.clone(),
        period: g.period,
        clock: g.clock.clone().filter(|c| !c.is_empty()),
        home_score: g.home_score,
        away_score: g.away_score,
        updated: g.event_time,
    }
}

/// The main line of each market of one event, in [`MARKETS`] order.
pub fn markets_of(event_id: &str, inputs: &Inputs<'_>) -> Vec<MarketLine> {
    let rows = filtered(inputs.prices.iter(), |p| &*p.event_id == event_id);
    MARKETS
        .iter()
        .filter_map(|market| {
            let of_market = filtered(rows.iter().copied(), |p| &*p.market == *market);
            main_line(event_id, market, &of_market, inputs)
        })
        .collect()
}

/// The rows of `rows` that `keep` keeps, in a vector sized once: a board
/// filters its ten thousand prices down a few times per market, and
/// growing each vector as it filled was a tenth of building a board.
fn filtered<'a>(
    rows: impl ExactSizeIterator<Item = &'a PriceRow>,
    keep: impl Fn(&PriceRow) -> bool,
) -> Vec<&'a PriceRow> {
    let mut kept = Vec::with_capacity(rows.len());
    kept.extend(rows.filter(|r| keep(r)));
    kept
}

fn main_line(
    event_id: &str,
    market: &str,
    rows: &[&PriceRow],
    inputs: &Inputs<'_>,
) -> Option<MarketLine> {
    // Bookmakers per line; the most quoted line is the main one, the
    // smaller point on a tie.
    let mut books: BTreeMap<Option<i64>, Vec<&str>> = BTreeMap::new();
    for r in rows {
        let entry = books
            .entry(line_of(market, &r.outcome, r.point))
            .or_default();
        if !entry.contains(&&*r.bookmaker) {
            entry.push(&r.bookmaker);
        }
    }
    let (line, bookmakers) = books
        .into_iter()
        .max_by(|(la, a), (lb, b)| a.len().cmp(&b.len()).then(lb.cmp(la)))?;
    let on_line = filtered(rows.iter().copied(), |r| {
        line_of(market, &r.outcome, r.point) == line
    });
    let mut outcomes: Vec<&str> = on_line.iter().map(|r| &*r.outcome).collect();
    outcomes.sort_by_key(|o| outcome_order(o));
    outcomes.dedup();
    // Each bookmaker's implied probabilities in `outcomes` order, de-vigged
    // by the deployment's method; the anchor's, or the median, is fair.
    let quoted: HashMap<(&str, &str), &PriceRow> = on_line
        .iter()
        .map(|r| ((&*r.bookmaker, &*r.outcome), *r))
        .collect();
    let implied: Vec<(&str, Vec<f64>)> = bookmakers
        .iter()
        .filter_map(|book| {
            outcomes
                .iter()
                .map(|o| quoted.get(&(*book, *o)).map(|r| 1.0 / r.price_decimal))
                .collect::<Option<Vec<f64>>>()
                .map(|p| (*book, p))
        })
        .collect();
    let fair_line = inputs.rules.fair_line(&implied);
    let sides: Vec<Side> = outcomes
        .iter()
        .zip(fair_line.probabilities)
        .filter_map(|(o, fair)| side(event_id, market, o, fair?, &on_line, inputs))
        .collect();
    if sides.len() < 2 {
        return None;
    }
    let mut overrounds: HashMap<&str, f64> = HashMap::new();
    for r in &on_line {
        overrounds.insert(&r.bookmaker, r.overround);
    }
    let hold: f64 = median(overrounds.values().map(|o| hold(*o)).collect()).unwrap_or(0.0);
    let inverse_sum: f64 = sides.iter().map(|s| 1.0 / s.best_decimal).sum();
    let best: Vec<f64> = sides.iter().map(|s| s.best_decimal).collect();
    Some(MarketLine {
        market: market.to_owned(),
        line: line.map(|l| l as f64 / 100.0),
        hold,
        bookmakers: bookmakers.len(),
        arbitrage: (inverse_sum < 1.0).then_some(1.0 - inverse_sum),
        low_hold: low_hold(&best, inputs.rules.low_hold),
        fair_basis: fair_line.basis.to_string(),
        middle: middle_of(market, rows),
        sides,
    })
}

/// The widest middle among every line of a spreads or totals market.
fn middle_of(market: &str, rows: &[&PriceRow]) -> Option<MiddleLine> {
    let offers = |outcome: &str| -> Vec<Offer<'_>> {
        rows.iter()
            .filter(|r| &*r.outcome == outcome)
            .filter_map(|r| {
                Some(Offer {
                    bookmaker: &r.bookmaker,
                    point: r.point?,
                    decimal: r.price_decimal,
                })
            })
            .collect()
    };
    let (first, second, found) = match market {
        "totals" => {
            let (overs, unders) = (offers("over"), offers("under"));
            (
                "over",
                "under",
                totals_middle(&overs, &unders).map(owned_middle),
            )
        }
        "spreads" => {
            let (homes, aways) = (offers("home"), offers("away"));
            (
                "home",
                "away",
                spreads_middle(&homes, &aways).map(owned_middle),
            )
        }
        _ => return None,
    };
    found.map(|(a, b, width, overround)| MiddleLine {
        first: MiddleLeg {
            outcome: first.to_owned(),
            ..a
        },
        second: MiddleLeg {
            outcome: second.to_owned(),
            ..b
        },
        width,
        overround,
    })
}

fn owned_middle(m: pricing::middle::Middle<'_>) -> (MiddleLeg, MiddleLeg, f64, f64) {
    let leg = |o: Offer<'_>| MiddleLeg {
        outcome: String::new(),
        point: o.point,
        decimal: o.decimal,
        bookmaker: o.bookmaker.to_owned(),
    };
    (leg(m.first), leg(m.second), m.width, m.overround)
}

fn outcome_order(outcome: &str) -> u8 {
    match outcome {
        "away" => 0,
        "home" => 1,
        "draw" => 2,
        "over" => 3,
        _ => 4,
    }
}

fn side(
    event_id: &str,
    market: &str,
    outcome: &str,
    fair_probability: f64,
    on_line: &[&PriceRow],
    inputs: &Inputs<'_>,
) -> Option<Side> {
    let rows = filtered(on_line.iter().copied(), |r| &*r.outcome == outcome);
    let best: &PriceRow = rows
        .iter()
        .copied()
        .max_by(|a, b| a.price_decimal.total_cmp(&b.price_decimal))?;
    let mut best_bookmakers: Vec<String> = rows
        .iter()
        .filter(|r| r.price_decimal == best.price_decimal)
        .map(|r| r.bookmaker.to_string())
        .collect();
    best_bookmakers.sort();
    let now: Option<f64> = median(rows.iter().map(|r| 1.0 / r.price_decimal).collect());
    let opened: Vec<f64> = rows
        .iter()
        .filter(|r| point_key(r.open_point) == point_key(r.point))
        .map(|r| 1.0 / r.open_decimal)
        .collect();
    let movement: Option<f64> = now.zip(median(opened)).map(|(n, o)| n - o);
    let history: Vec<f64> = inputs
        .movement
        .iter()
        .filter(|m| {
            m.event_id == event_id
                && m.market == market
                && m.outcome == outcome
                && point_key(m.point) == point_key(best.point)
        })
        .map(|m| m.implied)
        .collect();
    let steam = inputs.rules.steam.judge(
        inputs
            .window_moves
            .iter()
            .filter(|w| w.event_id == event_id && w.market == market && w.outcome == outcome)
            .map(|w| {
                w.open_decimal
                    .map(|open| implied_move(open, w.latest_decimal))
            }),
    );
    let edge: f64 = expected_value(best.price_decimal, fair_probability);
    Some(Side {
        outcome: outcome.to_owned(),
        point: best.point,
        best_decimal: best.price_decimal,
        best_american: best.price_american,
        best_bookmakers,
        fair_probability,
        movement,
        history,
        steam,
        expected_value: edge,
        value_edge: (edge >= inputs.rules.value_edge).then_some(edge),
        kelly: kelly(best.price_decimal, fair_probability),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_725_800_000 + minute * 60, 0).unwrap()
    }

    fn price(
        book: &str,
        market: &str,
        outcome: &str,
        point: Option<f64>,
        decimal: f64,
        overround: f64,
    ) -> PriceRow {
        PriceRow {
            event_id: "e1".into(),
            market: market.into(),
            bookmaker: book.into(),
            outcome: outcome.into(),
            point,
            price_decimal: decimal,
            price_american: None,
            overround,
            open_decimal: decimal,
            open_point: point,
        }
    }

    fn inputs<'a>(events: &'a [EventRow], prices: &'a [PriceRow]) -> Inputs<'a> {
        Inputs {
            rules: Box::leak(Box::new(Rules::default())),
            events,
            games: &[],
            prices,
            movement: &[],
            window_moves: &[],
        }
    }

    /// docs/formulas.md, consensus and best price: three bookmakers' h2h.
    #[test]
    fn best_price_consensus_and_hold_follow_the_worked_example() {
        let prices = [
            price(
                "a",
                "h2h",
                "home",
                None,
                1.80,
                1.0 / 1.80 + 1.0 / 2.10 - 1.0,
            ),
            price(
                "a",
                "h2h",
                "away",
                None,
                2.10,
                1.0 / 1.80 + 1.0 / 2.10 - 1.0,
            ),
            price(
                "b",
                "h2h",
                "home",
                None,
                1.85,
                1.0 / 1.85 + 1.0 / 2.00 - 1.0,
            ),
            price(
                "b",
                "h2h",
                "away",
                None,
                2.00,
                1.0 / 1.85 + 1.0 / 2.00 - 1.0,
            ),
            price(
                "c",
                "h2h",
                "home",
                None,
                1.83,
                1.0 / 1.83 + 1.0 / 2.05 - 1.0,
            ),
            price(
                "c",
                "h2h",
                "away",
                None,
                2.05,
                1.0 / 1.83 + 1.0 / 2.05 - 1.0,
            ),
        ];
        let markets = markets_of("e1", &inputs(&[], &prices));
        let h2h = &markets[0];
        assert_eq!(h2h.market, "h2h");
        assert_eq!(h2h.line, None);
        assert_eq!(h2h.bookmakers, 3);
        let (away, home) = (&h2h.sides[0], &h2h.sides[1]);
        assert_eq!(
            (home.best_decimal, home.best_bookmakers.clone()),
            (1.85, vec!["b".to_owned()])
        );
        assert_eq!(
            (away.best_decimal, away.best_bookmakers.clone()),
            (2.10, vec!["a".to_owned()])
        );
        assert!((home.fair_probability - 0.528351).abs() < 1e-6);
        // Holds: a 0.03012, b 0.03846, c 0.03368 → median c.
        let c_overround = 1.0 / 1.83 + 1.0 / 2.05 - 1.0;
        assert!((h2h.hold - hold(c_overround)).abs() < 1e-12);
        // 1/1.85 + 1/2.10 = 1.0167 > 1: no arbitrage.
        assert_eq!(h2h.arbitrage, None);
        // Best home 1.85 × fair 0.528351 = 0.9774: no value.
        assert_eq!(home.value_edge, None);
        assert_eq!(home.movement, Some(0.0));
    }

    /// docs/formulas.md, arbitrage: home 2.10 at A, away 2.05 at B.
    #[test]
    fn arbitrage_margin_is_one_minus_the_inverse_sum() {
        let prices = [
            price("A", "h2h", "home", None, 2.10, 0.02),
            price("A", "h2h", "away", None, 1.833333, 0.02),
            price("B", "h2h", "home", None, 1.80, 0.04),
            price("B", "h2h", "away", None, 2.05, 0.04),
        ];
        let line = &markets_of("e1", &inputs(&[], &prices))[0];
        let margin = line.arbitrage.expect("arbitrage");
        assert!((margin - 0.036005).abs() < 1e-6, "{margin}");
        // Fair away: median of A's 0.533898 and B's 0.467532 (each de-vigged
        // from its prices) = 0.500715; 2.05 × 0.500715 − 1 = 0.0265: value.
        assert!((line.sides[0].value_edge.unwrap() - 0.026466).abs() < 1e-6);
        // Kelly at 2.05: (1.05 × 0.500715 − 0.499285) / 1.05 = 0.025206.
        assert!((line.sides[0].kelly - 0.025206).abs() < 1e-6);
    }

    #[test]
    fn the_most_quoted_line_is_the_main_one() {
        let prices = [
            price("a", "spreads", "home", Some(-3.5), 1.91, 0.047),
            price("a", "spreads", "away", Some(3.5), 1.91, 0.047),
            price("b", "spreads", "home", Some(-3.5), 1.95, 0.03),
            price("b", "spreads", "away", Some(3.5), 1.87, 0.03),
            price("c", "spreads", "home", Some(-2.5), 1.80, 0.05),
            price("c", "spreads", "away", Some(2.5), 2.02, 0.05),
        ];
        let line = &markets_of("e1", &inputs(&[], &prices))[0];
        assert_eq!(line.line, Some(-3.5));
        assert_eq!(line.bookmakers, 2);
        assert_eq!(line.sides[0].point, Some(3.5));
        assert_eq!(line.sides[1].best_decimal, 1.95);
    }

    /// docs/formulas.md#middles: home +3.5 at a, away −2.5 at c both win
    /// when the home side loses by 3; the main line stays a's and b's.
    #[test]
    fn a_middle_spans_two_lines_at_two_bookmakers() {
        let prices = [
            price("a", "spreads", "home", Some(3.5), 1.87, 0.047),
            price("a", "spreads", "away", Some(-3.5), 1.95, 0.047),
            price("b", "spreads", "home", Some(3.5), 1.91, 0.047),
            price("b", "spreads", "away", Some(-3.5), 1.91, 0.047),
            price("c", "spreads", "home", Some(2.5), 1.80, 0.05),
            price("c", "spreads", "away", Some(-2.5), 1.95, 0.05),
        ];
        let line = &markets_of("e1", &inputs(&[], &prices))[0];
        assert_eq!(line.line, Some(3.5));
        let m = line.middle.as_ref().expect("a middle");
        assert_eq!((m.first.bookmaker.as_str(), m.first.point), ("b", 3.5));
        assert_eq!((m.second.bookmaker.as_str(), m.second.point), ("c", -2.5));
        assert_eq!(m.width, 1.0);
        // b's 1.91 is the cheaper of the two +3.5 prices that make it.
        assert!((m.overround - (1.0 / 1.91 + 1.0 / 1.95 - 1.0)).abs() < 1e-9);
    }

    /// docs/formulas.md#low-hold-markets: best 2.00 and 1.96, hold 1.01 %;
    /// with no anchor book quoting, the fair line says it is a median.
    #[test]
    fn a_market_whose_best_prices_hold_little_is_flagged() {
        let prices = [
            price("a", "h2h", "home", None, 2.00, 0.04),
            price("a", "h2h", "away", None, 1.85, 0.04),
            price("b", "h2h", "home", None, 1.87, 0.04),
            price("b", "h2h", "away", None, 1.96, 0.04),
        ];
        let line = &markets_of("e1", &inputs(&[], &prices))[0];
        assert!((line.low_hold.unwrap() - 0.010101).abs() < 1e-6);
        assert_eq!(line.arbitrage, None);
        assert_eq!(line.fair_basis, "median of 2 bookmakers");
    }

    /// docs/formulas.md#fair-line: Pinnacle quoting sets the fair line.
    #[test]
    fn a_quoted_sharp_book_sets_the_fair_price() {
        let prices = [
            price("draftkings", "h2h", "home", None, 1.80, 0.03),
            price("draftkings", "h2h", "away", None, 2.10, 0.03),
            price("pinnacle", "h2h", "home", None, 1.91, 0.02),
            price("pinnacle", "h2h", "away", None, 2.00, 0.02),
        ];
        let line = &markets_of("e1", &inputs(&[], &prices))[0];
        assert_eq!(line.fair_basis, "pinnacle");
        // Sides are in away, home order.
        assert!((line.sides[1].fair_probability - 0.511509).abs() < 1e-6);
    }

    #[test]
    fn games_meet_their_odds_event_by_name() {
        let events = [EventRow {
            event_id: "e1".into(),
            sport: "nba".into(),
            home_team: "LA Clippers".into(),
            away_team: "Denver Nuggets".into(),
            commence_time: t(60),
        }];
        let game = |id: &str, home: &str| GameRow {
            game_id: id.into(),
            sport: "nba".into(),
            status: "in_progress".into(),
            period: 2,
            clock: Some("4:12".into()),
            home_team: Some(home.into()),
            away_team: Some("Denver Nuggets".into()),
            home_score: 50,
            away_score: 48,
            start_time: Some(t(60)),
            status_history: serde_json::json!([]),
            event_time: t(90),
            home_team_id: "h".into(),
            away_team_id: "a".into(),
        };
        let games = [game("g1", "L.A. Clippers"), game("g2", "Utah Jazz")];
        let mut i = inputs(&events, &[]);
        i.games = &games;
        let cards = build(&i);
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].event_id.as_deref(), Some("e1"));
        assert_eq!(cards[0].live.as_ref().map(|l| l.home_score), Some(50));
        assert_eq!(cards[1].home_team, "Utah Jazz");
        assert!(cards[1].markets.is_empty());
    }
}
