//! `/markets/{sport}/{event}`: one game — the board's value table, each
//! bookmaker's line over time and the consensus fair probability (from the
//! closed windows), the arbitrage history with stake shares, the status
//! timeline, the venue's weather and both teams' news sentiment.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use pricing::consensus::median;

use super::board::{self, name_key, GameCard, Inputs};
use super::box_score::{self, BoxView};
use super::read::{self, BookWindow, EventRow, GameRow};
use super::{card_view, fmt_price, CardView};
use crate::auth::extract::PageUser;
use crate::pages::chart::{lines, Series};
use crate::pages::{fmt_time, render, ErrorPage, Nav};
use crate::problem::Problem;
use crate::AppState;

/// One market's charts: the line per bookmaker of its first side, and the
/// consensus fair probability of that side.
struct MarketCharts {
    title: String,
    prices: String,
    fair: String,
}

struct ArbView {
    time: String,
    market: String,
    line: String,
    margin: String,
    legs: String,
}

struct StatusView {
    status: String,
    time: String,
}

struct SentimentView {
    team: String,
    articles: i64,
    mean: String,
    chart: String,
}

#[derive(Template)]
#[template(path = "market_game.html")]
struct GamePage {
    nav: Nav,
    card: CardView,
    back: String,
    charts: Vec<MarketCharts>,
    arbitrage: Vec<ArbView>,
    timeline: Vec<StatusView>,
    weather: String,
    sentiment: Vec<SentimentView>,
    box_score: BoxView,
}

/// The game of the same sport whose teams carry the event's names and that
/// starts within half a day of it.
fn matching_game<'a>(event: &EventRow, games: &'a [GameRow]) -> Option<&'a GameRow> {
    games.iter().find(|g| {
        g.home_team.as_deref().map(name_key) == Some(name_key(&event.home_team))
            && g.away_team.as_deref().map(name_key) == Some(name_key(&event.away_team))
    })
}

/// The side a market's charts follow: home for moneyline and spread, over
/// for totals.
fn charted_outcome(market: &str) -> &'static str {
    if market == "totals" {
        "over"
    } else {
        "home"
    }
}

fn charts_of(card: &GameCard, windows: &[BookWindow]) -> Vec<MarketCharts> {
    let mut out = Vec::new();
    for m in &card.markets {
        let outcome = charted_outcome(&m.market);
        let Some(side) = m.sides.iter().find(|s| s.outcome == outcome) else {
            continue;
        };
        let on_side: Vec<&BookWindow> = windows
            .iter()
            .filter(|w| {
                w.market == m.market
                    && w.outcome == outcome
                    && w.point.map(|p| (p * 100.0).round())
                        == side.point.map(|p| (p * 100.0).round())
            })
            .collect();
        if on_side.is_empty() {
            continue;
        }
        let mut per_book: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        let mut fair_at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for w in &on_side {
            let x = w.window_end.timestamp() as f64;
            per_book
                .entry(&w.bookmaker)
                .or_default()
                .push((x, w.latest_decimal));
            fair_at
                .entry(w.window_end.timestamp())
                .or_default()
                .push(w.no_vig_probability);
        }
        let price_series: Vec<Series> = per_book
            .into_iter()
            .map(|(book, points)| Series {
                name: book.to_owned(),
                points,
            })
            .collect();
        let fair_points: Vec<(f64, f64)> = fair_at
            .into_iter()
            .filter_map(|(t, ps)| median(ps).map(|p| (t as f64, p)))
            .collect();
        let label = match (m.market.as_str(), side.point) {
            ("spreads", Some(p)) => format!("{} {}", card.home_team, super::fmt_point(p)),
            ("totals", Some(p)) => format!("over {p}"),
            _ => card.home_team.clone(),
        };
        out.push(MarketCharts {
            title: format!("{} · {label}", super::market_name(&m.market)),
            prices: lines(&price_series, 960, 200, |v| format!("{v:.2}")),
            fair: lines(
                &[Series {
                    name: format!("consensus fair probability, {label}"),
                    points: fair_points,
                }],
                960,
                140,
                |v| format!("{:.1}%", v * 100.0),
            ),
        });
    }
    out
}

fn arbitrage_view(rows: &[read::ArbitrageRow]) -> Vec<ArbView> {
    rows.iter()
        .map(|a| {
            let legs: Vec<String> = a
                .legs
                .as_array()
                .map(|legs| {
                    legs.iter()
                        .map(|l| {
                            let books: Vec<&str> = l["bookmakers"]
                                .as_array()
                                .map(|b| b.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            format!(
                                "{} {} at {} — stake {:.1}%",
                                l["side"].as_str().unwrap_or("?"),
                                l["decimal"]
                                    .as_f64()
                                    .map(|d| fmt_price(d, None))
                                    .unwrap_or_default(),
                                books.join("/"),
                                l["stake_share"].as_f64().unwrap_or(0.0) * 100.0
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            ArbView {
                time: fmt_time(Some(a.event_time)),
                market: super::market_name(&a.market).to_owned(),
                line: a.line.map(|l| l.to_string()).unwrap_or_default(),
                margin: format!("{:.2}%", a.margin * 100.0),
                legs: legs.join("; "),
            }
        })
        .collect()
}

fn timeline_of(game: &GameRow) -> Vec<StatusView> {
    game.status_history
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| StatusView {
                    status: c["status"].as_str().unwrap_or("?").replace('_', " "),
                    time: c["event_time"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| fmt_time(Some(t.with_timezone(&Utc))))
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn weather_text(w: &read::WeatherRow) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = &w.condition {
        parts.push(c.clone());
    }
    if let Some(t) = w.temperature_c {
        parts.push(format!("{t:.1} °C"));
    }
    if let Some(s) = w.wind_speed_ms {
        let from = w.wind_cardinal.clone().unwrap_or_default();
        parts.push(format!("wind {s:.1} m/s {from}").trim_end().to_owned());
    }
    if let Some(p) = w.precipitation_mm {
        parts.push(format!("precipitation {p:.1} mm"));
    }
    if let Some(h) = w.humidity_pct {
        parts.push(format!("humidity {h:.0}%"));
    }
    format!(
        "{} (as of {})",
        parts.join(", "),
        fmt_time(Some(w.event_time))
    )
}

pub async fn game_page(
    user: PageUser,
    State(state): State<AppState>,
    Path((sport, event_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let nav = Nav::new(&user, "markets");
    if !state.sports.contains(&sport) {
        return Ok(ErrorPage::bad_param(
            nav,
            "sport",
            &format!(
                "`{sport}` is not a sport here; use one of {}",
                state.sports.join(", ")
            ),
        ));
    }
    let Some(event) = read::event(&state.db, &sport, &event_id).await? else {
        return Ok(ErrorPage::not_found(
            nav,
            &format!(
                "No {sport} game with odds event `{event_id}`: the odds consumer has not seen it."
            ),
        ));
    };
    let around = |hours| event.commence_time + TimeDelta::hours(hours);
    let games = read::games(&state.db, around(-12), around(12), Some(&sport)).await?;
    let game = matching_game(&event, &games);
    let ids = vec![event.event_id.clone()];
    let prices = read::prices(&state.db, &ids).await?;
    let since = event.commence_time - TimeDelta::days(2);
    let movement = read::movement(&state.db, &ids, 900.0, since).await?;
    let window_moves = read::latest_window_moves(&state.db, &ids).await?;
    let matched: Vec<GameRow> = game.cloned().into_iter().collect();
    let cards = board::build(&Inputs {
        rules: &state.rules,
        events: std::slice::from_ref(&event),
        games: &matched,
        prices: &prices,
        movement: &movement,
        window_moves: &window_moves,
    });
    let Some(card) = cards.into_iter().next() else {
        return Err(Problem::internal("a board of one event has its card"));
    };
    let windows = read::event_windows(&state.db, &event.event_id).await?;
    let arbitrage = read::event_arbitrage(&state.db, &event.event_id).await?;
    let box_view: BoxView = match game {
        None => box_score::view(&sport, None, &[], ("", ""), ("", "")),
        Some(g) => {
            let row = read::game_box(&state.db, &g.game_id).await?;
            let leaders = read::game_leaders(&state.db, &g.game_id).await?;
            box_score::view(
                &sport,
                row.as_ref(),
                &leaders,
                (&g.home_team_id, &card.home_team),
                (&g.away_team_id, &card.away_team),
            )
        }
    };
    let (timeline, weather, sentiment) = match game {
        None => (Vec::new(), String::new(), Vec::new()),
        Some(g) => {
            let weather = read::game_weather(&state.db, &g.game_id)
                .await?
                .map(|w| weather_text(&w))
                .unwrap_or_default();
            let teams = vec![g.home_team_id.clone(), g.away_team_id.clone()];
            let rows = read::team_sentiment(&state.db, &teams, since).await?;
            let mut by_team: HashMap<&str, Vec<&read::SentimentRow>> = HashMap::new();
            for r in &rows {
                by_team.entry(&r.team_id).or_default().push(r);
            }
            let sentiment = [
                (&g.home_team_id, &card.home_team),
                (&g.away_team_id, &card.away_team),
            ]
            .into_iter()
            .map(|(id, name)| {
                let rows = by_team.get(id.as_str()).cloned().unwrap_or_default();
                let articles: i64 = rows.iter().map(|r| r.article_count).sum();
                let weighted: f64 = rows
                    .iter()
                    .map(|r| r.mean_sentiment * r.article_count as f64)
                    .sum();
                SentimentView {
                    team: name.clone(),
                    articles,
                    mean: if articles > 0 {
                        format!("{:+.2}", weighted / articles as f64)
                    } else {
                        "–".to_owned()
                    },
                    chart: lines(
                        &[Series {
                            name: format!("{name} sentiment"),
                            points: rows
                                .iter()
                                .map(|r| (r.window_start.timestamp() as f64, r.mean_sentiment))
                                .collect(),
                        }],
                        420,
                        100,
                        |v| format!("{v:+.2}"),
                    ),
                }
            })
            .collect();
            (timeline_of(g), weather, sentiment)
        }
    };
    let back = format!(
        "/markets?sport={}&date={}",
        super::seg(&sport),
        super::Filter::day_of(event.commence_time)
    );
    let page = GamePage {
        nav,
        charts: charts_of(&card, &windows),
        card: card_view(&card, state.rules.kelly_fraction),
        back,
        arbitrage: arbitrage_view(&arbitrage),
        timeline,
        weather,
        sentiment,
        box_score: box_view,
    };
    Ok(render(&page, StatusCode::OK))
}
