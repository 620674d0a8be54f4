//! `/markets`: the sports day's games with their live state and, per
//! market, the best prices, the consensus fair price, the hold, the
//! movement since open and the arbitrage, steam and value flags
//! ([`board`]). The board re-fetches itself from `/markets/live` every
//! second, so a price the odds consumer wrote shows within two. The same
//! rows download as `/markets.csv`; `/markets/{sport}/{event}` is one
//! game ([`game`]).

mod board;
mod box_score;
mod game;
mod read;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::America::New_York;

use super::chart::sparkline;
use super::{csv, render, seg, ErrorPage, Nav};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;
use board::{GameCard, Inputs, MarketLine, MiddleLeg, Side};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/markets", get(markets_page))
        .route("/markets/live", get(markets_fragment))
        .route("/markets.csv", get(markets_csv))
        .route("/markets/{sport}/{event}", get(game::game_page))
}

/// The sport and sports day a markets page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `None`: every sport.
    pub sport: Option<String>,
    /// The New York date games are listed under.
    pub date: NaiveDate,
}

/// Why a query parameter was refused: named, with what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    pub name: &'static str,
    pub message: String,
}

/// A bad parameter of a fragment or download: a plain 400 naming it.
impl From<BadParam> for Problem {
    fn from(bad: BadParam) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("{}: {}", bad.name, bad.message),
        )
    }
}

impl Filter {
    /// From `?sport=&date=`; unknown parameters are ignored, as browsers
    /// and dashboards add their own.
    pub fn parse(
        query: &HashMap<String, String>,
        sports: &[String],
        today: NaiveDate,
    ) -> Result<Filter, BadParam> {
        let sport = match query.get("sport").map(|s| s.trim()) {
            None | Some("") => None,
            Some(s) if sports.iter().any(|k| k == s) => Some(s.to_owned()),
            Some(s) => {
                return Err(BadParam {
                    name: "sport",
                    message: format!(
                        "`{s}` is not a sport here; use one of {}",
                        sports.join(", ")
                    ),
                })
            }
        };
        let date = match query.get("date").map(|s| s.trim()) {
            None | Some("") => today,
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| BadParam {
                name: "date",
                message: format!("`{s}` is not a date; use YYYY-MM-DD"),
            })?,
        };
        Ok(Filter { sport, date })
    }

    /// `[start, end)` of the sports day in UTC: New York midnight to midnight.
    pub fn bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = |d: NaiveDate| -> DateTime<Utc> {
            let midnight = d.and_hms_opt(0, 0, 0).unwrap_or_default();
            New_York
                .from_local_datetime(&midnight)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
        };
        (start(self.date), start(self.date + TimeDelta::days(1)))
    }

    /// The sports day of a moment: its New York date.
    pub fn day_of(t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&New_York).date_naive()
    }

    /// The query string that shows this filter again.
    pub fn query(&self) -> String {
        match &self.sport {
            Some(s) => format!("sport={}&date={}", seg(s), self.date),
            None => format!("date={}", self.date),
        }
    }
}

/// Today's sports day: the New York date now.
pub fn today() -> NaiveDate {
    Filter::day_of(Utc::now())
}

fn filter_of(state: &AppState, query: &HashMap<String, String>) -> Result<Filter, BadParam> {
    Filter::parse(query, &state.sports, today())
}

/// The board of one filter: five reads in two steps, whatever the number
/// of games.
async fn load(state: &AppState, f: &Filter) -> Result<Vec<GameCard>, Problem> {
    let (from, to) = f.bounds();
    let sport = f.sport.as_deref();
    // Reads that do not wait for each other go together: on connections
    // of their own when the pool has them free.
    let (events, games) = tokio::try_join!(
        read::events(&state.db, from, to, sport),
        read::games(&state.db, from, to, sport)
    )?;
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    // A point per 15 minutes since a day before the day starts: the line's
    // run-up, a hundred-odd points at most.
    let (prices, movement, window_moves) = tokio::try_join!(
        read::prices(&state.db, &ids),
        read::movement(&state.db, &ids, 900.0, from - TimeDelta::days(1)),
        read::latest_window_moves(&state.db, &ids)
    )?;
    Ok(board::build(&Inputs {
        rules: &state.rules,
        events: &events,
        games: &games,
        prices: &prices,
        movement: &movement,
        window_moves: &window_moves,
    }))
}

/// A game as the page shows it.
pub struct CardView {
    pub sport: String,
    pub href: String,
    pub away_team: String,
    pub home_team: String,
    pub start: String,
    pub status: String,
    pub status_class: &'static str,
    pub score: String,
    pub markets: Vec<MarketView>,
}

pub struct MarketView {
    pub name: &'static str,
    pub line: String,
    pub hold: String,
    pub bookmakers: usize,
    pub arbitrage: String,
    pub low_hold: String,
    pub middle: String,
    pub fair_basis: String,
    pub sides: Vec<SideView>,
}

pub struct SideView {
    pub label: String,
    pub best: String,
    pub best_bookmakers: String,
    pub fair: String,
    pub movement: String,
    pub movement_class: &'static str,
    pub spark: String,
    pub steam: String,
    pub value: String,
}

/// `¼`, `½`, `full`, or a percentage: the share of Kelly shown.
fn fmt_fraction(f: f64) -> String {
    match f {
        f if (f - 0.25).abs() < 1e-9 => "¼".to_owned(),
        f if (f - 0.5).abs() < 1e-9 => "½".to_owned(),
        f if (f - 1.0).abs() < 1e-9 => "full".to_owned(),
        f => format!("{:.0}%", f * 100.0),
    }
}

fn market_name(market: &str) -> &'static str {
    match market {
        "h2h" => "Moneyline",
        "spreads" => "Spread",
        "totals" => "Total",
        _ => "Other",
    }
}

/// A decimal price and its American equivalent: `2.10 (+110)`.
pub fn fmt_price(decimal: f64, american: Option<f64>) -> String {
    let american = american.unwrap_or(if decimal >= 2.0 {
        (decimal - 1.0) * 100.0
    } else {
        -100.0 / (decimal - 1.0)
    });
    format!("{decimal:.2} ({american:+.0})")
}

/// A spread or total point: `+3.5`, `-3.5`, and `PK` for a pick'em (a
/// spread of zero, which would otherwise print as `-0` on one side).
pub fn fmt_point(p: f64) -> String {
    if p == 0.0 {
        "PK".to_owned()
    } else if p > 0.0 {
        format!("+{p}")
    } else {
        format!("{p}")
    }
}

fn side_label(card: &GameCard, market: &str, s: &Side) -> String {
    let team = |o: &str| match o {
        "home" => card.home_team.clone(),
        "away" => card.away_team.clone(),
        "draw" => "Draw".to_owned(),
        "over" => "Over".to_owned(),
        _ => "Under".to_owned(),
    };
    match (market, s.point) {
        ("spreads", Some(p)) => format!("{} {}", team(&s.outcome), fmt_point(p)),
        ("totals", Some(p)) => format!("{} {p}", team(&s.outcome)),
        _ => team(&s.outcome),
    }
}

fn status_view(card: &GameCard) -> (String, &'static str, String) {
    match &card.live {
        None => ("not started".to_owned(), "s-scheduled", String::new()),
        Some(l) => {
            let score = format!("{} – {}", l.away_score, l.home_score);
            match l.status.as_str() {
                "in_progress" => {
                    let clock = l.clock.clone().map(|c| format!(" {c}")).unwrap_or_default();
                    (format!("live · P{}{clock}", l.period), "s-running", score)
                }
                "final" => ("final".to_owned(), "s-success", score),
                _ => ("scheduled".to_owned(), "s-scheduled", String::new()),
            }
        }
    }
}

fn market_view(card: &GameCard, m: &MarketLine, kelly_fraction: f64) -> MarketView {
    MarketView {
        name: market_name(&m.market),
        line: match (m.market.as_str(), m.line) {
            ("spreads", Some(l)) => format!("home {}", fmt_point(l)),
            (_, Some(l)) => format!("{l}"),
            _ => String::new(),
        },
        hold: format!("{:.1}%", m.hold * 100.0),
        bookmakers: m.bookmakers,
        arbitrage: m
            .arbitrage
            .map(|a| format!("arb {:.2}%", a * 100.0))
            .unwrap_or_default(),
        low_hold: m
            .low_hold
            .map(|h| format!("low hold {:.2}%", h * 100.0))
            .unwrap_or_default(),
        middle: m
            .middle
            .as_ref()
            .map(|mid| {
                let leg = |l: &MiddleLeg| {
                    let point = match m.market.as_str() {
                        "spreads" => fmt_point(l.point),
                        _ => l.point.to_string(),
                    };
                    let side = match l.outcome.as_str() {
                        "home" => card.home_team.clone(),
                        "away" => card.away_team.clone(),
                        "over" => "over".to_owned(),
                        _ => "under".to_owned(),
                    };
                    format!("{side} {point} {:.2} ({})", l.decimal, l.bookmaker)
                };
                format!(
                    "middle {} pt: {} + {}",
                    mid.width,
                    leg(&mid.first),
                    leg(&mid.second)
                )
            })
            .unwrap_or_default(),
        // "median of 5", short enough for the market's column.
        fair_basis: m.fair_basis.trim_end_matches(" bookmakers").to_owned(),
        sides: m
            .sides
            .iter()
            .map(|s| SideView {
                label: side_label(card, &m.market, s),
                best: fmt_price(s.best_decimal, s.best_american),
                best_bookmakers: s.best_bookmakers.join(", "),
                fair: format!(
                    "{:.2} · {:.1}%",
                    s.fair_decimal(),
                    s.fair_probability * 100.0
                ),
                movement: s
                    .movement
                    .map(|d| format!("{:+.1} pts", d * 100.0))
                    .unwrap_or_else(|| "–".to_owned()),
                movement_class: match s.movement {
                    Some(d) if d > 0.0005 => "up",
                    Some(d) if d < -0.0005 => "down",
                    _ => "flat",
                },
                spark: sparkline(&s.history, 90, 22, "implied probability since a day before"),
                steam: s
                    .steam
                    .map(|st| {
                        let way = if st.shortened {
                            "shortening"
                        } else {
                            "drifting"
                        };
                        format!("steam: {} books {way}", st.bookmakers)
                    })
                    .unwrap_or_default(),
                value: s
                    .value_edge
                    .map(|e| {
                        format!(
                            "value +{:.1}% · stake {:.1}% ({} Kelly)",
                            e * 100.0,
                            s.kelly * kelly_fraction * 100.0,
                            fmt_fraction(kelly_fraction)
                        )
                    })
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

fn card_view(card: &GameCard, kelly_fraction: f64) -> CardView {
    let (status, status_class, score) = status_view(card);
    CardView {
        sport: card.sport.clone(),
        href: card
            .event_id
            .as_ref()
            .map(|e| format!("/markets/{}/{}", seg(&card.sport), seg(e)))
            .unwrap_or_default(),
        away_team: card.away_team.clone(),
        home_team: card.home_team.clone(),
        start: card.start.format("%H:%M UTC").to_string(),
        status,
        status_class,
        score,
        markets: card
            .markets
            .iter()
            .map(|m| market_view(card, m, kelly_fraction))
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "markets_fragment.html")]
struct BoardFragment {
    cards: Vec<CardView>,
    query: String,
    date: String,
    sport_label: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "markets.html")]
struct MarketsPage {
    nav: Nav,
    sports: Vec<String>,
    sport: String,
    date: String,
    query: String,
    /// The board as `/markets/live` renders it, so the first paint and
    /// every refresh are the same markup.
    board_html: String,
}

fn fragment(f: &Filter, cards: &[GameCard], kelly_fraction: f64) -> BoardFragment {
    BoardFragment {
        cards: cards.iter().map(|c| card_view(c, kelly_fraction)).collect(),
        query: f.query(),
        date: f.date.to_string(),
        sport_label: f.sport.clone().unwrap_or_else(|| "any sport".to_owned()),
        updated: Utc::now().format("%H:%M:%S UTC").to_string(),
    }
}

/// The board of `f` rendered, from the half-second cache when fresh.
async fn board_html(state: &AppState, f: &Filter) -> Result<Arc<str>, Problem> {
    let load_and_render = async {
        let cards = load(state, f).await?;
        let html = fragment(f, &cards, state.rules.kelly_fraction)
            .render()
            .map_err(Problem::internal)?;
        Ok::<Arc<str>, Problem>(Arc::from(html))
    };
    state
        .board_cache
        .get_or_load(f.query(), load_and_render)
        .await
}

async fn markets_page(
    user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let nav = Nav::new(&user, "markets");
    let f = match filter_of(&state, &query) {
        Ok(f) => f,
        Err(bad) => return Ok(ErrorPage::bad_param(nav, bad.name, &bad.message)),
    };
    let board_html = board_html(&state, &f).await?.to_string();
    let page = MarketsPage {
        nav,
        sports: state.sports.to_vec(),
        sport: f.sport.clone().unwrap_or_default(),
        date: f.date.to_string(),
        query: f.query(),
        board_html,
    };
    Ok(render(&page, StatusCode::OK))
}

async fn markets_fragment(
    _user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let f = filter_of(&state, &query).map_err(Problem::from)?;
    let html = board_html(&state, &f).await?;
    Ok((StatusCode::OK, axum::response::Html(html.to_string())).into_response())
}

/// One row per game, market and side of the board.
pub fn board_csv(cards: &[GameCard]) -> String {
    let mut out = String::from(
        "sport,event_id,start_utc,away_team,home_team,status,away_score,home_score,market,line,outcome,point,best_decimal,best_american,best_bookmakers,fair_probability,fair_decimal,hold,movement_prob,arbitrage_margin,steam_bookmakers,expected_value,kelly,fair_basis,low_hold,middle_width\n",
    );
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for c in cards {
        let (status, away, home) = match &c.live {
            Some(l) => (
                l.status.clone(),
                l.away_score.to_string(),
                l.home_score.to_string(),
            ),
            None => ("not_started".to_owned(), String::new(), String::new()),
        };
        let game = [
            csv::field(&c.sport),
            csv::field(c.event_id.as_deref().unwrap_or("")),
            c.start.to_rfc3339(),
            csv::field(&c.away_team),
            csv::field(&c.home_team),
            status,
            away,
            home,
        ]
        .join(",");
        if c.markets.is_empty() {
            let _ = writeln!(out, "{game}{}", ",".repeat(18));
        }
        for m in &c.markets {
            for s in &m.sides {
                let _ = writeln!(
                    out,
                    "{game},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    m.market,
                    opt(m.line),
                    s.outcome,
                    opt(s.point),
                    s.best_decimal,
                    opt(s.best_american),
                    csv::field(&s.best_bookmakers.join(" ")),
                    s.fair_probability,
                    s.fair_decimal(),
                    m.hold,
                    opt(s.movement),
                    opt(m.arbitrage),
                    s.steam
                        .map(|st| st.bookmakers.to_string())
                        .unwrap_or_default(),
                    s.expected_value,
                    s.kelly,
                    csv::field(&m.fair_basis),
                    opt(m.low_hold),
                    opt(m.middle.as_ref().map(|mid| mid.width)),
                );
            }
        }
    }
    out
}

async fn markets_csv(
    _user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let f = filter_of(&state, &query).map_err(Problem::from)?;
    let cards = load(&state, &f).await?;
    let name = format!(
        "markets-{}-{}.csv",
        f.sport.as_deref().unwrap_or("all"),
        f.date
    );
    Ok(csv::download(&name, board_csv(&cards)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_name_the_bad_parameter() {
        let sports = vec!["nfl".to_owned(), "nba".to_owned()];
        let today = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        assert_eq!(
            Filter::parse(&q(&[]), &sports, today),
            Ok(Filter {
                sport: None,
                date: today
            })
        );
        let f = Filter::parse(
            &q(&[("sport", "nba"), ("date", "2024-10-22")]),
            &sports,
            today,
        )
        .unwrap();
        assert_eq!(f.query(), "sport=nba&date=2024-10-22");
        assert_eq!(
            Filter::parse(&q(&[("sport", "cricket")]), &sports, today)
                .unwrap_err()
                .name,
            "sport"
        );
        assert_eq!(
            Filter::parse(&q(&[("date", "8/9/2024")]), &sports, today)
                .unwrap_err()
                .name,
            "date"
        );
    }

    #[test]
    fn a_sports_day_is_new_york_midnight_to_midnight() {
        let f = Filter {
            sport: None,
            date: NaiveDate::from_ymd_opt(2024, 9, 8).unwrap(),
        };
        let (from, to) = f.bounds();
        assert_eq!(from.to_rfc3339(), "2024-09-08T04:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2024-09-09T04:00:00+00:00");
    }

    #[test]
    fn prices_show_decimal_and_american() {
        assert_eq!(fmt_price(2.10, None), "2.10 (+110)");
        assert_eq!(fmt_price(1.80, None), "1.80 (-125)");
        assert_eq!(fmt_price(1.91, Some(-110.0)), "1.91 (-110)");
    }

    #[test]
    fn a_zero_spread_is_a_pickem_on_both_sides() {
        assert_eq!(fmt_point(-0.0), "PK");
        assert_eq!(fmt_point(0.0), "PK");
        assert_eq!(fmt_point(3.5), "+3.5");
        assert_eq!(fmt_point(-3.5), "-3.5");
    }
}
