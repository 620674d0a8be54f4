//! Rows of the games, weather and news serving tables, field
//! for column (minus `id` and `write_time`, which the database sets); the
//! odds rows live beside their processor (`odds::rows`). A test checks every
//! row type against the migration, so the two cannot drift apart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::live::games::{
    GameState, GameStatus, GameWindowOutput, Leader, ScorePoint, StatusChange,
};
use crate::live::news::NewsWindowOutput;
use crate::live::weather::{cardinal, Field, VenueWeather, WeatherChange};
use crate::live::{games, news};
use streaming::window::Closed;

/// `serving.game_state`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameStateRow {
    pub game_id: String,
    pub sport: String,
    pub status: GameStatus,
    pub period: u32,
    pub clock: Option<String>,
    pub home_team_id: String,
    pub away_team_id: String,
    pub home_score: u32,
    pub away_score: u32,
    pub leader: Leader,
    pub lead_changes: u32,
    pub pace_per_period: Option<f64>,
    /// JSON object keyed by period number: `{"1": [home, away]}`.
    pub period_points: BTreeMap<String, (u32, u32)>,
    pub progression: Vec<ScorePoint>,
    /// `[{status, event_time}, …]`: the status first seen, then each change.
    pub status_history: Vec<StatusChange>,
    /// The teams' names and the scheduled start, when updates carry them.
    pub home_team: Option<String>,
    pub away_team: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    /// Season records and team statistics from the newest box score.
    pub home_record: Option<String>,
    pub away_record: Option<String>,
    pub home_stats: Option<BTreeMap<String, f64>>,
    pub away_stats: Option<BTreeMap<String, f64>>,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

impl GameStateRow {
    pub fn new(sport: &str, g: &GameState, ingest_time: DateTime<Utc>) -> Self {
        Self {
            game_id: g.game_id.clone(),
            sport: sport.to_string(),
            status: g.status,
            period: g.period,
            clock: g.clock.clone(),
            home_team_id: g.home_team_id.clone(),
            away_team_id: g.away_team_id.clone(),
            home_score: g.home_score,
            away_score: g.away_score,
            leader: g.leader,
            lead_changes: g.lead_changes,
            pace_per_period: g.pace_per_period(),
            period_points: g
                .period_points
                .iter()
                .map(|(p, s)| (p.to_string(), *s))
                .collect(),
            progression: g.progression.clone(),
            status_history: g.transitions.clone(),
            home_team: g.matchup.as_ref().map(|m| m.home_team.clone()),
            away_team: g.matchup.as_ref().map(|m| m.away_team.clone()),
            start_time: g.matchup.as_ref().map(|m| m.start_time),
            home_record: g.box_score.as_ref().and_then(|b| b.home.record.clone()),
            away_record: g.box_score.as_ref().and_then(|b| b.away.record.clone()),
            home_stats: g
                .box_score
                .as_ref()
                .map(|b| b.home.stats.clone())
                .filter(|s| !s.is_empty()),
            away_stats: g
                .box_score
                .as_ref()
                .map(|b| b.away.stats.clone())
                .filter(|s| !s.is_empty()),
            event_time: g.event_time,
            ingest_time,
        }
    }
}

/// `serving.game_leaders`: one per (game, category, team).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameLeaderRow {
    pub game_id: String,
    pub sport: String,
    pub category: String,
    pub team_id: String,
    pub athlete: String,
    pub display_value: String,
    pub value: f64,
    pub event_time: DateTime<Utc>,
}

impl GameLeaderRow {
    /// The leaders of a game's newest box score (none without one).
    pub fn of(sport: &str, g: &GameState) -> Vec<Self> {
        let Some(b) = &g.box_score else {
            return Vec::new();
        };
        b.leaders
            .iter()
            .map(|l| Self {
                game_id: g.game_id.clone(),
                sport: sport.to_string(),
                category: l.category.clone(),
                team_id: l.team_id.clone(),
                athlete: l.athlete.clone(),
                display_value: l.display_value.clone(),
                value: l.value,
                event_time: g.event_time,
            })
            .collect()
    }
}

/// `serving.game_windows`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameWindowRow {
    pub processor: &'static str,
    pub key: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub sport: String,
    pub events: u64,
    pub first_time: DateTime<Utc>,
    pub last_time: DateTime<Utc>,
    pub status: GameStatus,
    pub period: u32,
    pub home_score: u32,
    pub away_score: u32,
    pub home_run: i64,
    pub away_run: i64,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

impl GameWindowRow {
    pub fn new(sport: &str, c: &Closed<String, GameWindowOutput>) -> Self {
        let o: &GameWindowOutput = &c.output;
        Self {
            processor: games::PROCESSOR,
            key: c.key.clone(),
            window_start: c.window.start,
            window_end: c.window.end,
            sport: sport.to_string(),
            events: c.events,
            first_time: o.first_time,
            last_time: o.last_time,
            status: o.status,
            period: o.period,
            home_score: o.home_score,
            away_score: o.away_score,
            home_run: o.home_run,
            away_run: o.away_run,
            event_time: c.max_event_time,
            ingest_time: c.max_ingest_time,
        }
    }
}

/// `serving.weather_latest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeatherLatestRow {
    pub venue_id: String,
    pub game_id: String,
    pub sport: String,
    pub temperature_c: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_deg: Option<f64>,
    pub wind_cardinal: Option<&'static str>,
    pub precipitation_mm: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub condition: Option<String>,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

impl WeatherLatestRow {
    pub fn new(sport: &str, v: &VenueWeather, ingest_time: DateTime<Utc>) -> Self {
        let o = &v.observation;
        Self {
            venue_id: o.venue_id.clone(),
            game_id: o.game_id.clone(),
            sport: sport.to_string(),
            temperature_c: o.temperature_c,
            wind_speed_ms: o.wind_speed_ms,
            wind_deg: o.wind_deg,
            wind_cardinal: o.wind_deg.map(cardinal),
            precipitation_mm: o.precipitation_mm,
            humidity_pct: o.humidity_pct,
            condition: o.condition.clone(),
            event_time: v.event_time,
            ingest_time,
        }
    }
}

/// `serving.weather_alerts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeatherAlertRow {
    pub venue_id: String,
    pub field: Field,
    pub event_time: DateTime<Utc>,
    pub game_id: String,
    pub sport: String,
    pub from_value: f64,
    pub to_value: f64,
    pub ingest_time: DateTime<Utc>,
}

impl WeatherAlertRow {
    pub fn new(sport: &str, c: &WeatherChange, ingest_time: DateTime<Utc>) -> Self {
        Self {
            venue_id: c.venue_id.clone(),
            field: c.field,
            event_time: c.event_time,
            game_id: c.game_id.clone(),
            sport: sport.to_string(),
            from_value: c.from,
            to_value: c.to,
            ingest_time,
        }
    }
}

/// `serving.news_sentiment`; the window key is the team id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewsSentimentRow {
    pub processor: &'static str,
    pub key: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub sport: String,
    pub team_id: String,
    pub article_count: u64,
    pub mean_sentiment: f64,
    pub event_time: DateTime<Utc>,
    pub ingest_time: DateTime<Utc>,
}

impl NewsSentimentRow {
    pub fn new(sport: &str, c: &Closed<String, NewsWindowOutput>) -> Self {
        Self {
            processor: news::PROCESSOR,
            key: c.key.clone(),
            window_start: c.window.start,
            window_end: c.window.end,
            sport: sport.to_string(),
            team_id: c.key.clone(),
            article_count: c.output.article_count,
            mean_sentiment: c.output.mean_sentiment,
            event_time: c.max_event_time,
            ingest_time: c.max_ingest_time,
        }
    }
}

#[cfg(test)]
pub(crate) mod schema {
    //! Reads column names out of the serving migration for the row tests.

    use std::collections::BTreeSet;

    use serde::Serialize;

    const MIGRATION: &str = include_str!("../../../migrations/serving/20260101000004_serving.sql");
    /// Migrations that alter the serving tables after it, or add tables.
    const LATER_MIGRATIONS: &[&str] = &[
        include_str!("../../../migrations/serving/20260101000012_game_status_history.sql"),
        include_str!("../../../migrations/serving/20260101000013_market_names.sql"),
        include_str!("../../../migrations/serving/20260101000017_box_scores.sql"),
    ];

    /// Column names of `serving.{table}`, minus `id` and `write_time`.
    pub fn columns(table: &str) -> BTreeSet<String> {
        let create: String = format!("CREATE TABLE serving.{table} (");
        let (sql, start): (&str, usize) = std::iter::once(MIGRATION)
            .chain(LATER_MIGRATIONS.iter().copied())
            .find_map(|sql| sql.find(&create).map(|at| (sql, at)))
            .unwrap_or_else(|| panic!("no table {table}"));
        let body: &str = &sql[start..];
        let body: &str = &body[..body.find("\n);").expect("table end")];
        body.lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| {
                !l.starts_with("--") && !l.starts_with("PRIMARY") && !l.starts_with("CONSTRAINT")
            })
            .filter_map(|l| l.split_whitespace().next())
            .map(|c| c.trim_matches('"').to_string())
            .filter(|c| c != "write_time" && c != "id")
            .chain(added_columns(table))
            .collect()
    }

    /// Columns later migrations add to `serving.{table}`.
    fn added_columns(table: &str) -> Vec<String> {
        let alter: String = format!("ALTER TABLE serving.{table}");
        LATER_MIGRATIONS
            .iter()
            .filter_map(|sql| sql.split_once(alter.as_str()).map(|(_, rest)| rest))
            .flat_map(|rest| rest.split("ADD COLUMN").skip(1))
            .filter_map(|added| added.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// Field names of a row as serialized.
    pub fn fields<T: Serialize>(row: &T) -> BTreeSet<String> {
        match serde_json::to_value(row).expect("serializes") {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::schema::{columns, fields};
    use super::*;
    use crate::live::games::{GameTracker, GameUpdate, GameWindow};
    use crate::live::news::{NewsItem, NewsWindow};
    use crate::live::weather::{Observed, Thresholds, WeatherTracker, WeatherUpdate};
    use chrono::TimeDelta;
    use streaming::window::{WindowSpec, Windowed};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60, 0).expect("valid")
    }

    fn update(minute_score: u32) -> GameUpdate {
        GameUpdate {
            game_id: "g".into(),
            status: GameStatus::InProgress,
            period: 1,
            clock: Some("5:00".into()),
            home_team_id: "h".into(),
            away_team_id: "a".into(),
            home_score: minute_score,
            away_score: 0,
            matchup: None,
            box_score: None,
        }
    }

    #[test]
    fn game_rows_match_columns() {
        let mut t = GameTracker::default();
        t.apply(at(1), &update(3));
        let mut u = update(3);
        u.box_score = Some(sources::espn::BoxScore {
            home: sources::espn::TeamBox {
                record: Some("3-1".into()),
                stats: [("saves".to_string(), 20.0)].into(),
            },
            away: Default::default(),
            leaders: vec![sources::espn::PlayerLeader {
                category: "goals".into(),
                team_id: "h".into(),
                athlete: "A. Skater".into(),
                display_value: "2".into(),
                value: 2.0,
            }],
        });
        t.apply(at(2), &u);
        let state = t.get("g").expect("tracked");
        let row = GameStateRow::new("nfl", state, at(2));
        assert_eq!(fields(&row), columns("game_state"));
        assert_eq!(row.home_record.as_deref(), Some("3-1"));
        assert_eq!(row.away_stats, None, "no statistics: NULL, not {{}}");
        let leaders = GameLeaderRow::of("nhl", state);
        assert_eq!(leaders.len(), 1);
        assert_eq!(fields(&leaders[0]), columns("game_leaders"));
        let json = serde_json::to_value(&row).expect("serializes");
        assert_eq!(json["status"], "in_progress");
        assert_eq!(json["leader"], "home");
        assert_eq!(json["period_points"]["1"], serde_json::json!([3, 0]));

        let spec = WindowSpec::tumbling_minutes(3).expect("valid");
        let mut w: Windowed<String, GameWindow> =
            Windowed::new(spec, TimeDelta::minutes(1), GameWindow::default()).expect("valid");
        w.push("g".into(), at(1), at(1), update(3))
            .expect("on time");
        let closed = w.flush_all();
        assert_eq!(
            fields(&GameWindowRow::new("nfl", &closed[0])),
            columns("game_windows")
        );
    }

    #[test]
    fn weather_news_and_dead_letter_rows_match_columns() {
        use streaming::dead_letter::DeadLetterRow;
        let mut t = WeatherTracker::new(Thresholds::default());
        let obs = |wind: f64| WeatherUpdate {
            game_id: "g".into(),
            venue_id: "v".into(),
            temperature_c: Some(5.0),
            wind_speed_ms: Some(wind),
            wind_deg: Some(200.0),
            precipitation_mm: None,
            humidity_pct: None,
            condition: None,
        };
        t.observe(at(0), &obs(1.0));
        let Observed::Current(changes) = t.observe(at(15), &obs(9.0)) else {
            panic!("expected current conditions");
        };
        let latest = WeatherLatestRow::new("nfl", t.current("v").expect("seen"), at(16));
        assert_eq!(latest.wind_cardinal, Some("SW"));
        assert_eq!(fields(&latest), columns("weather_latest"));
        let alert = WeatherAlertRow::new("nfl", &changes[0], at(16));
        assert_eq!(fields(&alert), columns("weather_alerts"));
        assert_eq!(
            serde_json::to_value(&alert).expect("json")["field"],
            "wind_speed_ms"
        );

        let spec = WindowSpec::tumbling_minutes(5).expect("valid");
        let mut w: Windowed<String, NewsWindow> =
            Windowed::new(spec, TimeDelta::zero(), NewsWindow::default()).expect("valid");
        let item = NewsItem {
            item_id: "n1".into(),
            team_id: "t1".into(),
            source: None,
            title: "Injury, out".into(),
            description: None,
        };
        w.push("t1".into(), at(1), at(1), item).expect("on time");
        let closed = w.flush_all();
        assert_eq!(
            fields(&NewsSentimentRow::new("nba", &closed[0])),
            columns("news_sentiment")
        );

        let dead = DeadLetterRow {
            topic: "betflow.odds.nba".into(),
            partition: 0,
            offset: 7,
            processor: None,
            reason_code: "bad_json".into(),
            reason: "value is not a valid envelope".into(),
            message_key: None,
            payload: b"{".to_vec(),
            received_at: at(0),
            event_time: None,
            ingest_time: None,
        };
        assert_eq!(fields(&dead), columns("dead_letter"));
    }
}
