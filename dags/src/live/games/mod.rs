//! The games processor: live game state per game (score progression, points
//! per period, scoring pace, lead changes, status), and short event-time
//! windows of scoring (3 minutes by default: docs/topics.md#consumers;
//! figures: docs/formulas.md#live-game-figures).
//!
//! Updates are applied in event-time order per game. One older than the
//! game's latest is *stale* (the newer state already includes it) and is
//! reported, not applied. A status that goes back (final → in progress), a
//! period that goes back or a score that drops is an *anomaly*: reported
//! for the dead-letter table and not applied, so one bad poll cannot rewind
//! a finished game on the dashboard.

pub mod processor;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::live::envelope::Keyed;
use sources::espn::{self, BoxScore, GameRecord};
use streaming::window::Aggregate;

pub use processor::{GamesOutput, GamesProcessor};

/// Processor name in the serving tables' `processor` column.
pub const PROCESSOR: &str = "games";

/// A game's status, ordered: a game only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GameStatus {
    #[serde(alias = "pre")]
    Scheduled,
    #[serde(alias = "in")]
    InProgress,
    #[serde(alias = "post")]
    Final,
}

impl GameStatus {
    /// The serialized name (`serving.game_state.status`).
    pub fn as_str(self) -> &'static str {
        match self {
            GameStatus::Scheduled => "scheduled",
            GameStatus::InProgress => "in_progress",
            GameStatus::Final => "final",
        }
    }
}

/// A games message's payload: one poll of one game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameUpdate {
    pub game_id: String,
    pub status: GameStatus,
    /// 0 before the start.
    #[serde(default)]
    pub period: u32,
    #[serde(default)]
    pub clock: Option<String>,
    pub home_team_id: String,
    pub away_team_id: String,
    #[serde(default)]
    pub home_score: u32,
    #[serde(default)]
    pub away_score: u32,
    /// Who plays and when, for pages that show the game by name; absent in
    /// messages published before it was carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matchup: Option<Matchup>,
    /// Team statistics, records and leaders as the poll saw them; absent
    /// when the scoreboard had none (or in older messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_score: Option<BoxScore>,
}

/// The teams' names and the scheduled start of a game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matchup {
    pub home_team: String,
    pub away_team: String,
    pub start_time: DateTime<Utc>,
}

impl Keyed for GameUpdate {
    fn message_key(&self) -> &str {
        &self.game_id
    }

    fn text_problem(&self) -> Option<String> {
        use sources::text::{MAX_ID, MAX_NAME};
        let check = || -> Result<(), String> {
            crate::live::text::field("game id", &self.game_id, MAX_ID)?;
            crate::live::text::field("home team id", &self.home_team_id, MAX_ID)?;
            crate::live::text::field("away team id", &self.away_team_id, MAX_ID)?;
            crate::live::text::optional("clock", self.clock.as_deref(), MAX_ID)?;
            if let Some(m) = &self.matchup {
                crate::live::text::field("home team name", &m.home_team, MAX_NAME)?;
                crate::live::text::field("away team name", &m.away_team, MAX_NAME)?;
            }
            if let Some(b) = &self.box_score {
                let value = serde_json::to_value(b).map_err(|e| format!("box score: {e}"))?;
                crate::live::text::strings("box score", &value, MAX_NAME)?;
            }
            Ok(())
        };
        check().err()
    }
}

impl From<&GameRecord> for GameUpdate {
    /// One polled ESPN game as a games message: what a live scoreboard
    /// poller and the replay publish alike.
    fn from(g: &GameRecord) -> Self {
        Self {
            game_id: g.game_id.clone(),
            status: match g.state {
                espn::GameState::Pre => GameStatus::Scheduled,
                espn::GameState::In => GameStatus::InProgress,
                espn::GameState::Post => GameStatus::Final,
            },
            period: g.period,
            clock: Some(g.clock.clone()),
            home_team_id: g.home.team_id.clone(),
            away_team_id: g.away.team_id.clone(),
            home_score: g.home.score.unwrap_or(0),
            away_score: g.away.score.unwrap_or(0),
            matchup: Some(Matchup {
                home_team: g.home.name.clone(),
                away_team: g.away.name.clone(),
                start_time: g.start_time,
            }),
            box_score: (!g.box_score.is_empty()).then(|| g.box_score.clone()),
        }
    }
}

/// Who is ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Leader {
    Home,
    Away,
    Tied,
}

impl Leader {
    /// The serialized name (`serving.game_state.leader`).
    pub fn as_str(self) -> &'static str {
        match self {
            Leader::Home => "home",
            Leader::Away => "away",
            Leader::Tied => "tied",
        }
    }
}

fn leader(home: u32, away: u32) -> Leader {
    match home.cmp(&away) {
        std::cmp::Ordering::Greater => Leader::Home,
        std::cmp::Ordering::Less => Leader::Away,
        std::cmp::Ordering::Equal => Leader::Tied,
    }
}

/// A point in the score progression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScorePoint {
    pub event_time: DateTime<Utc>,
    pub period: u32,
    pub home: u32,
    pub away: u32,
}

/// A status the game entered, and when (event time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: GameStatus,
    pub event_time: DateTime<Utc>,
}

/// Live state of one game: the `serving.game_state` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameState {
    pub game_id: String,
    pub status: GameStatus,
    pub period: u32,
    pub clock: Option<String>,
    pub home_team_id: String,
    pub away_team_id: String,
    pub home_score: u32,
    pub away_score: u32,
    pub leader: Leader,
    /// Times the lead passed from one team to the other (through a tie or not).
    pub lead_changes: u32,
    /// Points per period (home, away). Points between two polls count in the
    /// later poll's period, so a poll gap across a period end misattributes.
    pub period_points: BTreeMap<u32, (u32, u32)>,
    /// Every score change, in event-time order.
    pub progression: Vec<ScorePoint>,
    /// The status first seen, then each transition (scheduled → in
    /// progress → final), in event-time order. Empty in checkpoints
    /// written before it was kept.
    #[serde(default)]
    pub transitions: Vec<StatusChange>,
    /// The newest matchup an update carried (none in older checkpoints).
    #[serde(default)]
    pub matchup: Option<Matchup>,
    /// The newest box score an update carried.
    #[serde(default)]
    pub box_score: Option<BoxScore>,
    pub event_time: DateTime<Utc>,
    /// Last side to hold the lead, for counting changes through ties.
    last_leader: Option<Leader>,
}

impl GameState {
    /// Combined points per period played so far (the current one counted
    /// as played); `None` before the start.
    pub fn pace_per_period(&self) -> Option<f64> {
        (self.period > 0)
            .then(|| f64::from(self.home_score + self.away_score) / f64::from(self.period))
    }
}

/// An update that breaks a game's forward-only rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GameAnomaly {
    #[error("status went back from {from:?} to {to:?}")]
    StatusRegression { from: GameStatus, to: GameStatus },
    #[error("period went back from {from} to {to}")]
    PeriodRegression { from: u32, to: u32 },
    #[error("score dropped from {from_home}-{from_away} to {to_home}-{to_away}")]
    ScoreRegression {
        from_home: u32,
        from_away: u32,
        to_home: u32,
        to_away: u32,
    },
    #[error("teams changed from {from} to {to}")]
    TeamsChanged { from: String, to: String },
}

/// What became of one update.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The state changed (or was created); upsert it.
    Updated,
    /// Older than the game's latest update: already superseded.
    Stale { latest: DateTime<Utc> },
    /// Broke a rule; not applied.
    Anomaly(GameAnomaly),
}

/// Live state of every game in progress (serializable whole: consumers
/// checkpoint it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GameTracker {
    games: HashMap<String, GameState>,
}

impl GameTracker {
    pub fn get(&self, game_id: &str) -> Option<&GameState> {
        self.games.get(game_id)
    }

    pub fn len(&self) -> usize {
        self.games.len()
    }

    pub fn is_empty(&self) -> bool {
        self.games.is_empty()
    }

    /// Applies one update that happened at `event_time`.
    pub fn apply(&mut self, event_time: DateTime<Utc>, u: &GameUpdate) -> Applied {
        let Some(state) = self.games.get_mut(&u.game_id) else {
            let lead: Leader = leader(u.home_score, u.away_score);
            let mut state = GameState {
                game_id: u.game_id.clone(),
                status: u.status,
                period: u.period,
                clock: u.clock.clone(),
                home_team_id: u.home_team_id.clone(),
                away_team_id: u.away_team_id.clone(),
                home_score: u.home_score,
                away_score: u.away_score,
                leader: lead,
                lead_changes: 0,
                period_points: BTreeMap::new(),
                progression: Vec::new(),
                transitions: vec![StatusChange {
                    status: u.status,
                    event_time,
                }],
                matchup: u.matchup.clone(),
                box_score: u.box_score.clone(),
                event_time,
                last_leader: (lead != Leader::Tied).then_some(lead),
            };
            if u.home_score + u.away_score > 0 {
                state
                    .period_points
                    .insert(u.period, (u.home_score, u.away_score));
                state.progression.push(ScorePoint {
                    event_time,
                    period: u.period,
                    home: u.home_score,
                    away: u.away_score,
                });
            }
            self.games.insert(u.game_id.clone(), state);
            return Applied::Updated;
        };
        if event_time < state.event_time {
            return Applied::Stale {
                latest: state.event_time,
            };
        }
        if let Some(anomaly) = check(state, u) {
            return Applied::Anomaly(anomaly);
        }
        let (dh, da): (u32, u32) = (
            u.home_score - state.home_score,
            u.away_score - state.away_score,
        );
        if dh + da > 0 {
            let entry: &mut (u32, u32) = state.period_points.entry(u.period).or_insert((0, 0));
            entry.0 += dh;
            entry.1 += da;
            state.progression.push(ScorePoint {
                event_time,
                period: u.period,
                home: u.home_score,
                away: u.away_score,
            });
        }
        let lead: Leader = leader(u.home_score, u.away_score);
        if lead != Leader::Tied {
            if state.last_leader.is_some_and(|l| l != lead) {
                state.lead_changes += 1;
            }
            state.last_leader = Some(lead);
        }
        state.leader = lead;
        if u.status != state.status {
            state.transitions.push(StatusChange {
                status: u.status,
                event_time,
            });
        }
        state.status = u.status;
        state.period = u.period;
        state.clock = u.clock.clone();
        state.home_score = u.home_score;
        state.away_score = u.away_score;
        if u.matchup.is_some() {
            state.matchup = u.matchup.clone();
        }
        if u.box_score.is_some() {
            state.box_score = u.box_score.clone();
        }
        state.event_time = event_time;
        Applied::Updated
    }

    /// Forgets games whose latest update is stamped after `not_after` (a
    /// checkpoint from before event times were checked against the clock):
    /// every true update after it would be stale. Returns how many.
    pub fn forget_after(&mut self, not_after: DateTime<Utc>) -> usize {
        let n: usize = self.games.len();
        self.games.retain(|_, g| g.event_time <= not_after);
        n - self.games.len()
    }

    /// Forgets final games last updated before `final_before` (e.g. the
    /// watermark minus an hour), games in progress last updated before
    /// `started_before` (abandoned: their final never comes) and scheduled
    /// ones last updated before `scheduled_before` (postponed), so a
    /// season-long stream keeps only live games. A game forgotten and seen
    /// again starts its state, and its serving row, afresh.
    pub fn evict(
        &mut self,
        final_before: DateTime<Utc>,
        started_before: DateTime<Utc>,
        scheduled_before: DateTime<Utc>,
    ) -> usize {
        let n: usize = self.games.len();
        self.games.retain(|_, g| {
            let before: DateTime<Utc> = match g.status {
                GameStatus::Final => final_before,
                GameStatus::InProgress => started_before,
                GameStatus::Scheduled => scheduled_before,
            };
            g.event_time >= before
        });
        n - self.games.len()
    }
}

fn check(state: &GameState, u: &GameUpdate) -> Option<GameAnomaly> {
    if u.status < state.status {
        return Some(GameAnomaly::StatusRegression {
            from: state.status,
            to: u.status,
        });
    }
    if u.period < state.period {
        return Some(GameAnomaly::PeriodRegression {
            from: state.period,
            to: u.period,
        });
    }
    if u.home_score < state.home_score || u.away_score < state.away_score {
        return Some(GameAnomaly::ScoreRegression {
            from_home: state.home_score,
            from_away: state.away_score,
            to_home: u.home_score,
            to_away: u.away_score,
        });
    }
    if u.home_team_id != state.home_team_id || u.away_team_id != state.away_team_id {
        return Some(GameAnomaly::TeamsChanged {
            from: format!("{}/{}", state.home_team_id, state.away_team_id),
            to: format!("{}/{}", u.home_team_id, u.away_team_id),
        });
    }
    None
}

/// Scoring within one window: the scoring run (last − first score in the
/// window, docs/formulas.md#live-game-figures), by event time whatever the
/// arrival order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GameWindow {
    first: Option<(DateTime<Utc>, GameUpdate)>,
    last: Option<(DateTime<Utc>, GameUpdate)>,
}

/// A closed game window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameWindowOutput {
    pub first_time: DateTime<Utc>,
    pub last_time: DateTime<Utc>,
    pub period: u32,
    pub status: GameStatus,
    pub home_score: u32,
    pub away_score: u32,
    /// Points scored between the window's first and last update (negative
    /// only if a correction lowered a score).
    pub home_run: i64,
    pub away_run: i64,
}

impl Aggregate for GameWindow {
    type Event = GameUpdate;
    type Output = GameWindowOutput;

    fn add(&mut self, t: DateTime<Utc>, u: &GameUpdate) {
        if self.first.as_ref().is_none_or(|(f, _)| t < *f) {
            self.first = Some((t, u.clone()));
        }
        if self.last.as_ref().is_none_or(|(l, _)| t >= *l) {
            self.last = Some((t, u.clone()));
        }
    }

    fn finish(&self) -> Option<GameWindowOutput> {
        let (first_time, first) = self.first.as_ref()?;
        let (last_time, last) = self.last.as_ref()?;
        Some(GameWindowOutput {
            first_time: *first_time,
            last_time: *last_time,
            period: last.period,
            status: last.status,
            home_score: last.home_score,
            away_score: last.away_score,
            home_run: i64::from(last.home_score) - i64::from(first.home_score),
            away_run: i64::from(last.away_score) - i64::from(first.away_score),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60, 0).expect("valid")
    }

    fn upd(status: GameStatus, period: u32, home: u32, away: u32) -> GameUpdate {
        GameUpdate {
            game_id: "g1".into(),
            status,
            period,
            clock: None,
            home_team_id: "h".into(),
            away_team_id: "a".into(),
            home_score: home,
            away_score: away,
            matchup: None,
            box_score: None,
        }
    }

    use GameStatus::{Final, InProgress, Scheduled};

    #[test]
    fn progression_periods_pace_and_lead_changes() {
        let mut t = GameTracker::default();
        let steps: [(i64, GameUpdate); 7] = [
            (0, upd(Scheduled, 0, 0, 0)),
            (10, upd(InProgress, 1, 7, 0)),   // home leads
            (20, upd(InProgress, 1, 7, 7)),   // tie
            (30, upd(InProgress, 2, 7, 10)),  // away leads: change 1 (through a tie)
            (40, upd(InProgress, 2, 14, 10)), // home leads: change 2
            (50, upd(InProgress, 3, 17, 10)),
            (60, upd(Final, 4, 17, 13)),
        ];
        for (m, u) in &steps {
            assert_eq!(t.apply(at(*m), u), Applied::Updated);
        }
        let g = t.get("g1").expect("tracked");
        assert_eq!(g.lead_changes, 2);
        assert_eq!(g.leader, Leader::Home);
        assert_eq!(g.status, Final);
        let periods: Vec<(u32, (u32, u32))> =
            g.period_points.iter().map(|(p, s)| (*p, *s)).collect();
        assert_eq!(
            periods,
            vec![(1, (7, 7)), (2, (7, 3)), (3, (3, 0)), (4, (0, 3))]
        );
        assert_eq!(g.progression.len(), 6);
        assert_eq!(g.pace_per_period(), Some(30.0 / 4.0));
        let transitions: Vec<(GameStatus, DateTime<Utc>)> = g
            .transitions
            .iter()
            .map(|c| (c.status, c.event_time))
            .collect();
        assert_eq!(
            transitions,
            [(Scheduled, at(0)), (InProgress, at(10)), (Final, at(60))]
        );
    }

    #[test]
    fn regressions_are_anomalies_and_old_updates_stale() {
        let mut t = GameTracker::default();
        t.apply(at(0), &upd(InProgress, 2, 10, 3));
        t.apply(at(5), &upd(Final, 4, 20, 3));
        assert!(matches!(
            t.apply(at(6), &upd(InProgress, 4, 20, 3)),
            Applied::Anomaly(GameAnomaly::StatusRegression {
                from: Final,
                to: InProgress
            })
        ));
        assert!(matches!(
            t.apply(at(7), &upd(Final, 3, 20, 3)),
            Applied::Anomaly(GameAnomaly::PeriodRegression { .. })
        ));
        assert!(matches!(
            t.apply(at(8), &upd(Final, 4, 19, 3)),
            Applied::Anomaly(GameAnomaly::ScoreRegression { .. })
        ));
        assert_eq!(
            t.apply(at(1), &upd(InProgress, 2, 12, 3)),
            Applied::Stale { latest: at(5) }
        );
        assert_eq!(
            t.get("g1").map(|g| (g.status, g.home_score)),
            Some((Final, 20))
        );
        assert_eq!(t.evict(at(5), at(0), at(0)), 0);
        assert_eq!(t.evict(at(6), at(0), at(0)), 1);
        assert!(t.is_empty());

        // A game that never reaches final goes once it has been idle long
        // enough: sooner once started than while scheduled.
        let started = upd(InProgress, 2, 12, 3);
        assert_eq!(t.apply(at(10), &started), Applied::Updated);
        assert_eq!(t.evict(at(20), at(10), at(20)), 0);
        assert_eq!(t.evict(at(20), at(11), at(0)), 1);
        let scheduled = upd(Scheduled, 0, 0, 0);
        assert_eq!(t.apply(at(30), &scheduled), Applied::Updated);
        assert_eq!(t.evict(at(40), at(40), at(30)), 0);
        assert_eq!(t.evict(at(40), at(40), at(31)), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn window_scoring_run_by_event_time() {
        let mut w = GameWindow::default();
        w.add(at(2), &upd(InProgress, 1, 5, 2));
        w.add(at(1), &upd(InProgress, 1, 2, 2));
        w.add(at(3), &upd(InProgress, 1, 9, 4));
        let out = w.finish().expect("updates");
        assert_eq!((out.home_run, out.away_run), (7, 2));
        assert_eq!((out.first_time, out.last_time), (at(1), at(3)));
    }

    #[test]
    fn espn_states_decode() {
        let u: GameUpdate = serde_json::from_str(
            r#"{"game_id":"1","status":"in","period":2,"home_team_id":"h","away_team_id":"a","home_score":3}"#,
        )
        .expect("valid");
        assert_eq!((u.status, u.away_score), (InProgress, 0));
    }
}
