//! `/analytics`: the nightly gold marts as an analyst reads them — market
//! efficiency, closing-line value, line movement, bookmaker comparison,
//! team trends, scoring patterns, weather impact and news sentiment. Each
//! section is one named query over a `serving.gold_*` table (the nightly
//! `publish_serving` task loads them), drawn as a bar chart beside its
//! table, and downloadable as `/analytics.csv?section=…`.
//!
//! Each section's rows are kept a minute per filter (the marts change
//! nightly). Filters: the sport, and a date range applied to the marts that carry a
//! time (efficiency, closing-line value, movement, news); the others are
//! season aggregates and say so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use chrono::NaiveDate;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::chart::bars;
use super::ttl_cache::TtlCache;
use super::{csv, render, seg, ErrorPage, Nav};
use crate::auth::extract::PageUser;
use crate::problem::Problem;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/analytics", get(analytics_page))
        .route("/analytics.csv", get(analytics_csv))
        .layer(Extension(Arc::new(MartCache::default())))
}

/// The marts change once a night (`publish_serving`), so each section's
/// rows for one filter are kept for a minute: a page view is then eight
/// lookups, not eight aggregates over a season.
struct MartCache(TtlCache<Rows>);

impl Default for MartCache {
    fn default() -> Self {
        MartCache(TtlCache::new(Duration::from_secs(60), 512))
    }
}

impl MartCache {
    async fn rows(&self, state: &AppState, section: &Section, f: &Filter) -> Result<Rows, Problem> {
        let key = format!("{}?{}", section.key, f.query());
        self.0.get_or_load(key, rows_of(state, section, f)).await
    }
}

/// One mart as the page shows it. Its query takes `$1` sport (NULL: all),
/// `$2`/`$3` the date range (NULL: open), and returns `label` (the chart's
/// bar name), `chart` (its value, a double) and then the table's columns as
/// text, in [`Section::columns`] order.
struct Section {
    key: &'static str,
    title: &'static str,
    /// What the chart shows and how to read it.
    about: &'static str,
    /// Whether the date range applies.
    dated: bool,
    columns: &'static [&'static str],
    chart_format: fn(f64) -> String,
    sql: &'static str,
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn pct_points(v: f64) -> String {
    format!("{v:.2}%")
}

fn signed(v: f64) -> String {
    format!("{v:+.3}")
}

fn plain(v: f64) -> String {
    format!("{v:.1}")
}

const SECTIONS: &[Section] = &[
    Section {
        key: "market_efficiency",
        title: "Market efficiency by bookmaker",
        about: "Average vig (overround, %) of each bookmaker's markets, with its spread across games: lower is a tighter market.",
        dated: true,
        columns: &["Bookmaker", "Markets", "Avg vig %", "Min vig %", "Max vig %", "Highly efficient", "Inefficient"],
        chart_format: pct_points,
        sql: "SELECT bookmaker AS label, avg(avg_vig_pct) AS chart, bookmaker,
                count(*)::text, round(avg(avg_vig_pct)::numeric, 2)::text,
                round(min(min_vig_pct)::numeric, 2)::text, round(max(max_vig_pct)::numeric, 2)::text,
                count(*) FILTER (WHERE efficiency_rating = 'highly_efficient')::text,
                count(*) FILTER (WHERE efficiency_rating = 'inefficient')::text
            FROM serving.gold_market_efficiency
            WHERE ($1::text IS NULL OR sport = $1)
              AND ($2::date IS NULL OR first_snapshot >= $2::date)
              AND ($3::date IS NULL OR first_snapshot < $3::date + 1)
            GROUP BY bookmaker HAVING avg(avg_vig_pct) IS NOT NULL
            ORDER BY chart",
    },
    Section {
        key: "closing_line_value",
        title: "Closing-line value by bookmaker",
        about: "Average CLV of each bookmaker's opening prices against the fair closing price (a sharp book's de-vigged close when one closed, else the median of all), and their expected value against the fair opening price: positive means its openers beat the line.",
        dated: true,
        columns: &["Bookmaker", "Prices", "Avg CLV", "Positive share", "Avg opening EV", "EV positive share", "Fair-close books (avg)"],
        chart_format: signed,
        sql: "SELECT bookmaker AS label, avg(clv) AS chart, bookmaker, count(clv)::text,
                round(avg(clv)::numeric, 4)::text,
                round((avg((clv > 0)::int) * 100)::numeric, 1)::text || '%',
                coalesce(round(avg(opening_ev)::numeric, 4)::text, ''),
                coalesce(round((avg((opening_ev > 0)::int) * 100)::numeric, 1)::text || '%', ''),
                round(avg(consensus_bookmakers)::numeric, 1)::text
            FROM serving.gold_closing_line_value
            WHERE clv IS NOT NULL AND ($1::text IS NULL OR sport = $1)
              AND ($2::date IS NULL OR opening_time >= $2::date)
              AND ($3::date IS NULL OR opening_time < $3::date + 1)
            GROUP BY bookmaker ORDER BY chart DESC",
    },
    Section {
        key: "odds_movement",
        title: "Line movement by sport",
        about: "Share of price series whose implied probability moved 3 points or more from open to close, and the sharp moves (1.5 points or more between two snapshots).",
        dated: true,
        columns: &["Sport", "Series", "Avg |move| (pts)", "Moved ≥ 3 pts", "Sharp moves", "Avg volatility"],
        chart_format: pct,
        sql: "SELECT sport AS label,
                avg((abs(movement_prob) >= 0.03)::int)::float8 AS chart, sport,
                count(*)::text, round((avg(abs(movement_prob)) * 100)::numeric, 2)::text,
                count(*) FILTER (WHERE abs(movement_prob) >= 0.03)::text,
                count(*) FILTER (WHERE abs(biggest_move_prob) >= 0.015)::text,
                round(avg(volatility)::numeric, 4)::text
            FROM serving.gold_odds_movement
            WHERE movement_prob IS NOT NULL AND ($1::text IS NULL OR sport = $1)
              AND ($2::date IS NULL OR opening_time >= $2::date)
              AND ($3::date IS NULL OR opening_time < $3::date + 1)
            GROUP BY sport ORDER BY sport",
    },
    Section {
        key: "bookmaker_comparison",
        title: "Bookmaker comparison",
        about: "Share of contested prices at which each bookmaker had the best price (season aggregates; the date range does not apply).",
        dated: false,
        columns: &["Bookmaker", "Sport", "Season", "Games", "Avg vig %", "Best-price share", "Mean |dev| from consensus", "Opening CLV avg", "Opening EV avg"],
        chart_format: pct,
        sql: "SELECT bookmaker || ' · ' || sport AS label, coalesce(best_price_share, 0) AS chart,
                bookmaker, sport, coalesce(season::text, ''), games::text,
                coalesce(round(avg_vig_pct::numeric, 2)::text, ''),
                coalesce(round((best_price_share * 100)::numeric, 1)::text || '%', ''),
                coalesce(round(mean_abs_deviation::numeric, 4)::text, ''),
                coalesce(round(opening_clv_avg::numeric, 4)::text, ''),
                coalesce(round(opening_ev_avg::numeric, 4)::text, '')
            FROM serving.gold_bookmaker_comparison
            WHERE ($1::text IS NULL OR sport = $1) AND ($2::date IS NULL OR TRUE) AND ($3::date IS NULL OR TRUE)
            ORDER BY chart DESC LIMIT 40",
    },
    Section {
        key: "team_trends",
        title: "Team trends against the spread and totals",
        about: "Cover rate of the teams with the most spread results (home and away apart); over rate beside it (season aggregates).",
        dated: false,
        columns: &["Team", "Sport", "Side", "Games", "Win rate", "ATS games", "Cover rate", "O/U games", "Over rate"],
        chart_format: pct,
        sql: "SELECT coalesce(team_name, team_id) || ' (' || side || ')' AS label,
                coalesce(cover_rate, 0) AS chart, coalesce(team_name, team_id), sport, side,
                games::text, round((win_rate * 100)::numeric, 1)::text || '%', ats_games::text,
                coalesce(round((cover_rate * 100)::numeric, 1)::text || '%', ''), ou_games::text,
                coalesce(round((over_rate * 100)::numeric, 1)::text || '%', '')
            FROM serving.gold_team_trends
            WHERE ats_games > 0 AND ($1::text IS NULL OR sport = $1)
              AND ($2::date IS NULL OR TRUE) AND ($3::date IS NULL OR TRUE)
            ORDER BY ats_games DESC, cover_rate DESC NULLS LAST LIMIT 20",
    },
    Section {
        key: "scoring_patterns",
        title: "Scoring patterns by period",
        about: "League average points per team in each period (overtime apart), per sport (season aggregates).",
        dated: false,
        columns: &["Sport", "Period", "Overtime", "Team-games", "League avg points"],
        chart_format: plain,
        sql: "SELECT sport || ' P' || period || CASE WHEN is_overtime THEN ' OT' ELSE '' END AS label,
                avg(league_avg_points) AS chart, sport, period::text,
                CASE WHEN is_overtime THEN 'yes' ELSE 'no' END, sum(games)::text,
                round(avg(league_avg_points)::numeric, 2)::text
            FROM serving.gold_scoring_patterns
            WHERE ($1::text IS NULL OR sport = $1) AND ($2::date IS NULL OR TRUE) AND ($3::date IS NULL OR TRUE)
            GROUP BY sport, period, is_overtime ORDER BY sport, is_overtime, period",
    },
    Section {
        key: "weather_impact",
        title: "Weather impact on totals",
        about: "Average total points by wind bucket (m/s) at outdoor games, with the over rate against the closing total (season aggregates).",
        dated: false,
        columns: &["Sport", "Wind", "Games", "Avg total", "Avg wind m/s", "Avg temp °C", "Over rate", "Total vs close"],
        chart_format: plain,
        sql: "SELECT sport || ' · wind ' || bucket AS label, avg_total_points AS chart, sport,
                bucket, games::text, round(avg_total_points::numeric, 1)::text,
                coalesce(round(avg_wind_ms::numeric, 1)::text, ''),
                coalesce(round(avg_temperature_c::numeric, 1)::text, ''),
                coalesce(round((over_rate * 100)::numeric, 1)::text || '%', ''),
                coalesce(round(avg_total_vs_close::numeric, 2)::text, '')
            FROM serving.gold_weather_impact,
                LATERAL (SELECT CASE wind_bucket WHEN 'lt_5' THEN '< 5 m/s' WHEN '5_to_10' THEN '5–10 m/s'
                    WHEN 'gt_10' THEN '> 10 m/s' ELSE 'any' END AS bucket) b
            WHERE ($1::text IS NULL OR sport = $1) AND ($2::date IS NULL OR TRUE) AND ($3::date IS NULL OR TRUE)
            ORDER BY sport, array_position(ARRAY['lt_5', '5_to_10', 'gt_10', 'all'], wind_bucket)",
    },
    Section {
        key: "news_sentiment",
        title: "News sentiment by team",
        about: "Mean lexicon sentiment of the teams with the most articles in the range, and the consensus move of their next game after the news.",
        dated: true,
        columns: &["Team", "Sport", "Articles", "Positive", "Negative", "Mean sentiment", "Avg consensus move"],
        chart_format: signed,
        sql: "SELECT coalesce(max(team_name), team_id) AS label,
                sum(mean_sentiment * articles) / sum(articles) AS chart,
                coalesce(max(team_name), team_id), max(sport), sum(articles)::text,
                sum(positive_articles)::text, sum(negative_articles)::text,
                round((sum(mean_sentiment * articles) / sum(articles))::numeric, 3)::text,
                coalesce(round(avg(consensus_move)::numeric, 4)::text, '')
            FROM serving.gold_news_sentiment_daily
            WHERE ($1::text IS NULL OR sport = $1)
              AND ($2::date IS NULL OR sports_date >= $2::date)
              AND ($3::date IS NULL OR sports_date <= $3::date)
            GROUP BY team_id ORDER BY sum(articles) DESC LIMIT 20",
    },
];

/// The page's filter: sport and an optional date range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    sport: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

fn parse_filter(
    query: &HashMap<String, String>,
    sports: &[String],
) -> Result<Filter, (&'static str, String)> {
    let sport = match query.get("sport").map(|s| s.trim()) {
        None | Some("") => None,
        Some(s) if sports.iter().any(|k| k == s) => Some(s.to_owned()),
        Some(s) => {
            return Err((
                "sport",
                format!(
                    "`{s}` is not a sport here; use one of {}",
                    sports.join(", ")
                ),
            ))
        }
    };
    let date = |name: &'static str| -> Result<Option<NaiveDate>, (&'static str, String)> {
        match query.get(name).map(|s| s.trim()) {
            None | Some("") => Ok(None),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| (name, format!("`{s}` is not a date; use YYYY-MM-DD"))),
        }
    };
    let (from, to) = (date("from")?, date("to")?);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(("from", format!("{f} is after `to` ({t})")));
        }
    }
    Ok(Filter { sport, from, to })
}

impl Filter {
    fn query(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(s) = &self.sport {
            parts.push(format!("sport={}", seg(s)));
        }
        if let Some(f) = self.from {
            parts.push(format!("from={f}"));
        }
        if let Some(t) = self.to {
            parts.push(format!("to={t}"));
        }
        parts.join("&")
    }
}

/// A section's rows: (bar label, bar value, cells).
type Rows = Vec<(String, f64, Vec<String>)>;

async fn rows_of(state: &AppState, section: &Section, f: &Filter) -> Result<Rows, Problem> {
    let rows: Vec<PgRow> = sqlx::query(section.sql)
        .bind(f.sport.as_deref())
        .bind(f.from.filter(|_| section.dated))
        .bind(f.to.filter(|_| section.dated))
        .fetch_all(&state.db)
        .await?;
    rows.iter()
        .map(|r| {
            let label: String = r.try_get("label")?;
            let chart: Option<f64> = r.try_get("chart")?;
            let cells: Vec<String> = (2..r.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .map(Option::unwrap_or_default)
                })
                .collect::<Result<_, _>>()?;
            Ok((label, chart.unwrap_or(0.0), cells))
        })
        .collect::<Result<Rows, sqlx::Error>>()
        .map_err(Problem::from)
}

struct SectionView {
    key: &'static str,
    title: &'static str,
    about: &'static str,
    dated: bool,
    columns: &'static [&'static str],
    /// Cells, and whether each is a number (right-aligned).
    rows: Vec<Vec<(String, bool)>>,
    chart: String,
    csv: String,
}

#[derive(Template)]
#[template(path = "analytics.html")]
struct AnalyticsPage {
    nav: Nav,
    sports: Vec<String>,
    sport: String,
    from: String,
    to: String,
    /// No section has a row: one message says why, not eight.
    all_empty: bool,
    sections: Vec<SectionView>,
}

async fn analytics_page(
    user: PageUser,
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<MartCache>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let nav = Nav::new(&user, "analytics");
    let f = match parse_filter(&query, &state.sports) {
        Ok(f) => f,
        Err((name, message)) => return Ok(ErrorPage::bad_param(nav, name, &message)),
    };
    let mut sections = Vec::with_capacity(SECTIONS.len());
    for s in SECTIONS {
        let rows = cache.rows(&state, s, &f).await?;
        let bars_of: Vec<(String, f64)> = rows.iter().map(|(l, v, _)| (l.clone(), *v)).collect();
        let q = f.query();
        sections.push(SectionView {
            key: s.key,
            title: s.title,
            about: s.about,
            dated: s.dated,
            columns: s.columns,
            chart: bars(&bars_of, 720, s.chart_format),
            rows: rows
                .into_iter()
                .map(|(_, _, cells)| {
                    cells
                        .into_iter()
                        .map(|c| {
                            let n = is_number(&c);
                            (c, n)
                        })
                        .collect()
                })
                .collect(),
            csv: if q.is_empty() {
                format!("/analytics.csv?section={}", s.key)
            } else {
                format!("/analytics.csv?section={}&{q}", s.key)
            },
        });
    }
    let page = AnalyticsPage {
        nav,
        sports: state.sports.to_vec(),
        sport: f.sport.clone().unwrap_or_default(),
        from: f.from.map(|d| d.to_string()).unwrap_or_default(),
        to: f.to.map(|d| d.to_string()).unwrap_or_default(),
        all_empty: sections.iter().all(|s| s.rows.is_empty()),
        sections,
    };
    Ok(render(&page, StatusCode::OK))
}

/// `12`, `-0.03`, `45.1%`: cells a table right-aligns.
fn is_number(cell: &str) -> bool {
    let t = cell.trim_end_matches('%');
    !t.is_empty() && t.parse::<f64>().is_ok()
}

async fn analytics_csv(
    _user: PageUser,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let f = parse_filter(&query, &state.sports).map_err(|(name, message)| {
        Problem::new(StatusCode::BAD_REQUEST, format!("{name}: {message}"))
    })?;
    let key = query.get("section").map(String::as_str).unwrap_or("");
    let Some(section) = SECTIONS.iter().find(|s| s.key == key) else {
        let keys: Vec<&str> = SECTIONS.iter().map(|s| s.key).collect();
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!(
                "section: `{key}` is not a section; use one of {}",
                keys.join(", ")
            ),
        ));
    };
    let rows = rows_of(&state, section, &f).await?;
    let header: Vec<String> = section.columns.iter().map(|c| (*c).to_owned()).collect();
    let mut out = csv::line(&header);
    out.push('\n');
    for (_, _, cells) in &rows {
        out.push_str(&csv::line(cells));
        out.push('\n');
    }
    Ok(csv::download(&format!("{}.csv", section.key), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_lists_as_many_columns_as_its_query_returns_cells() {
        for s in SECTIONS {
            // label and chart, then one expression per column before FROM.
            let select = &s.sql[..s.sql.find("FROM serving.").expect("a FROM")];
            let depth_zero_commas = select
                .chars()
                .scan(0i32, |depth, c| {
                    match c {
                        '(' => *depth += 1,
                        ')' => *depth -= 1,
                        _ => {}
                    }
                    Some((c, *depth))
                })
                .filter(|(c, d)| *c == ',' && *d == 0)
                .count();
            assert_eq!(depth_zero_commas + 1, s.columns.len() + 2, "{}", s.key);
        }
    }

    #[test]
    fn the_range_must_be_dates_in_order() {
        let sports = vec!["nfl".to_owned()];
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            parse_filter(&q(&[("from", "2024-13-01")]), &sports)
                .unwrap_err()
                .0,
            "from"
        );
        assert_eq!(
            parse_filter(&q(&[("from", "2024-10-02"), ("to", "2024-10-01")]), &sports)
                .unwrap_err()
                .0,
            "from"
        );
        assert_eq!(
            parse_filter(&q(&[("sport", "mlb")]), &sports)
                .unwrap_err()
                .0,
            "sport"
        );
        let f = parse_filter(&q(&[("sport", "nfl"), ("to", "2024-10-01")]), &sports).unwrap();
        assert_eq!(f.query(), "sport=nfl&to=2024-10-01");
    }
}
