//! One partition's games processing: live state per game ([`GameTracker`])
//! and scoring windows per game ([`GameWindow`]), with what each message
//! produced for the serving tables and the dead-letter table.
//!
//! Final games are forgotten an hour (of event time) after the windows'
//! watermark passes their last update, so a season-long stream holds only
//! the games still being played; a correction arriving later starts a new
//! state for the game, which the `serving.game_state` upsert refuses to
//! apply over a newer row.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Applied, GameState, GameTracker, GameUpdate, GameWindow, GameWindowOutput};
use crate::live::envelope::Envelope;
use crate::live::PartitionState;
use streaming::dead_letter::DeadLetterReason;
use streaming::window::{Closed, WindowError, WindowSpec, Windowed, WindowedSnapshot};

/// Keep final games this long behind the watermark.
pub const FINAL_RETENTION: TimeDelta = TimeDelta::hours(1);
/// Keep a started game this long without an update (an abandoned one never
/// sends its final): longer than any game lasts.
pub const STARTED_RETENTION: TimeDelta = TimeDelta::hours(24);
/// Keep a scheduled game this long without an update: scoreboards list
/// games days ahead, and a postponed one may never start.
pub const SCHEDULED_RETENTION: TimeDelta = TimeDelta::days(14);

/// What one games message produced.
#[derive(Debug, Default)]
pub struct GamesOutput {
    /// The game's new state: upsert into `serving.game_state`.
    pub state: Option<GameState>,
    /// Scoring windows the watermark closed: `serving.game_windows`.
    pub closed: Vec<Closed<String, GameWindowOutput>>,
    /// Stale, anomalous or late: one dead-letter row.
    pub problem: Option<DeadLetterReason>,
}

/// Game states and scoring windows of one partition.
pub struct GamesProcessor {
    tracker: GameTracker,
    windows: Windowed<String, GameWindow>,
}

/// A [`GamesProcessor`]'s accumulated state, for a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct GamesSnapshot {
    tracker: GameTracker,
    windows: WindowedSnapshot<String, GameWindow>,
}

impl GamesProcessor {
    pub fn new(spec: WindowSpec, allowed_lateness: TimeDelta) -> Result<Self, WindowError> {
        Ok(Self {
            tracker: GameTracker::default(),
            windows: Windowed::new(spec, allowed_lateness, GameWindow::default())?,
        })
    }

    pub fn tracker(&self) -> &GameTracker {
        &self.tracker
    }

    /// Applies one decoded message. Only updates the tracker accepted feed
    /// the scoring windows: a stale one is already part of a newer state and
    /// an anomalous one is not applied at all.
    pub fn handle(&mut self, envelope: &Envelope<GameUpdate>) -> GamesOutput {
        let update: &GameUpdate = &envelope.payload;
        let mut out = GamesOutput::default();
        let mut problems: Vec<DeadLetterReason> = Vec::new();
        match self.tracker.apply(envelope.event_time, update) {
            Applied::Updated => {
                out.state = self.tracker.get(&update.game_id).cloned();
                if let Err(late) = self.windows.push(
                    update.game_id.clone(),
                    envelope.event_time,
                    envelope.ingest_time,
                    update.clone(),
                ) {
                    problems.push(DeadLetterReason::new(
                        "late",
                        format!(
                            "{}: scoring window closed (event {} behind watermark {}); game state applied",
                            late.key, late.event_time, late.watermark
                        ),
                    ));
                }
            }
            Applied::Stale { latest } => problems.push(DeadLetterReason::new(
                "stale",
                format!(
                    "{}: update at {} is older than the game's latest at {latest}",
                    update.game_id, envelope.event_time
                ),
            )),
            Applied::Anomaly(a) => problems.push(DeadLetterReason::new(
                "anomaly",
                format!("{}: {a}", update.game_id),
            )),
        }
        out.closed = self.windows.drain_closed();
        if let Some(wm) = self.windows.watermark() {
            self.tracker.evict(
                wm - FINAL_RETENTION,
                wm - STARTED_RETENTION,
                wm - SCHEDULED_RETENTION,
            );
        }
        out.problem = DeadLetterReason::join(problems);
        out
    }
}

impl PartitionState for GamesProcessor {
    type Topics = crate::live::envelope::Topics;
    type Payload = GameUpdate;
    type Output = GamesOutput;
    type Snapshot = GamesSnapshot;

    fn apply(
        &mut self,
        envelope: &Envelope<GameUpdate>,
    ) -> (GamesOutput, Option<DeadLetterReason>) {
        let mut out: GamesOutput = self.handle(envelope);
        let problem: Option<DeadLetterReason> = out.problem.take();
        (out, problem)
    }

    fn snapshot(&self) -> GamesSnapshot {
        GamesSnapshot {
            tracker: self.tracker.clone(),
            windows: self.windows.snapshot(),
        }
    }

    fn restore(&mut self, snapshot: GamesSnapshot) {
        self.tracker = snapshot.tracker;
        self.windows.restore(snapshot.windows);
    }

    fn heal(&mut self, not_after: DateTime<Utc>) {
        if self.windows.heal(not_after) {
            tracing::warn!(%not_after, "restored windows held event times past now; pulled back");
        }
        let forgotten: usize = self.tracker.forget_after(not_after);
        if forgotten > 0 {
            tracing::warn!(%not_after, forgotten, "restored games updated past now; forgotten");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::live::envelope::{Kind, SCHEMA_VERSION};
    use crate::live::games::GameStatus::{self, Final, InProgress, Scheduled};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60, 0).expect("valid")
    }

    fn msg(
        game: &str,
        minute: i64,
        status: GameStatus,
        period: u32,
        h: u32,
        a: u32,
    ) -> Envelope<GameUpdate> {
        Envelope {
            schema_version: SCHEMA_VERSION,
            source: "test".into(),
            sport: "nfl".into(),
            kind: Kind::Games,
            event_time: at(minute),
            ingest_time: at(minute),
            payload: GameUpdate {
                game_id: game.into(),
                status,
                period,
                clock: None,
                home_team_id: "h".into(),
                away_team_id: "a".into(),
                home_score: h,
                away_score: a,
                matchup: None,
                box_score: None,
            },
        }
    }

    fn processor() -> GamesProcessor {
        GamesProcessor::new(
            WindowSpec::tumbling_minutes(3).expect("valid"),
            TimeDelta::minutes(1),
        )
        .expect("valid")
    }

    #[test]
    fn states_windows_problems_and_eviction() {
        let mut p = processor();
        let out = p.handle(&msg("g1", 0, Scheduled, 0, 0, 0));
        assert_eq!(out.state.map(|s| s.status), Some(Scheduled));
        let out = p.handle(&msg("g1", 10, InProgress, 1, 7, 0));
        assert_eq!(out.state.map(|s| s.home_score), Some(7));
        // The window [0, 3) closed when the watermark reached 9.
        assert_eq!(out.closed.len(), 1);
        let stale = p.handle(&msg("g1", 5, InProgress, 1, 3, 0));
        assert_eq!(stale.problem.map(|p| p.code), Some("stale"));
        let bad = p.handle(&msg("g1", 11, InProgress, 1, 0, 0));
        assert_eq!(bad.problem.map(|p| p.code), Some("anomaly"));
        // A new game behind the watermark: state applied, window late.
        let late = p.handle(&msg("g2", 2, InProgress, 1, 0, 3));
        assert!(late.state.is_some());
        assert_eq!(late.problem.map(|p| p.code), Some("late"));
        p.handle(&msg("g1", 20, Final, 4, 14, 3));
        assert!(p.tracker().get("g1").is_some());
        // 61 minutes past the final update (plus lateness): g1 is forgotten.
        p.handle(&msg("g3", 20 + 62, Scheduled, 0, 0, 0));
        assert!(p.tracker().get("g1").is_none());
        assert!(p.tracker().get("g2").is_some(), "not final: kept");
    }

    #[test]
    fn a_restored_snapshot_continues_identically() {
        let script: Vec<Envelope<GameUpdate>> = (0..40)
            .map(|i: u32| {
                let game: &str = if i.is_multiple_of(2) { "g1" } else { "g2" };
                let period: u32 = 1 + i / 10;
                let status = if i >= 38 { Final } else { InProgress };
                msg(game, i64::from(i) * 4, status, period, i * 2 / 3, i / 2)
            })
            .collect();
        let run = |cut: Option<usize>| -> Vec<String> {
            let mut p = processor();
            let mut seen: Vec<String> = Vec::new();
            for (i, m) in script.iter().enumerate() {
                if cut == Some(i) {
                    let json = serde_json::to_string(&p.snapshot()).expect("json");
                    p = processor();
                    p.restore(serde_json::from_str(&json).expect("restores"));
                }
                let out = p.handle(m);
                seen.push(format!(
                    "{:?} {:?} {:?}",
                    out.state, out.closed, out.problem
                ));
            }
            seen
        };
        let clean = run(None);
        for cut in [3, 17, 39] {
            assert_eq!(run(Some(cut)), clean, "restored before message {cut}");
        }
    }

    #[test]
    fn a_restored_future_update_is_forgotten_on_heal() {
        let mut poisoned = processor();
        poisoned.handle(&msg("g1", 10, InProgress, 1, 7, 0));
        poisoned.handle(&msg("g2", 60 * 24 * 365 * 70, InProgress, 1, 0, 0));
        let json = serde_json::to_string(&poisoned.snapshot()).expect("json");
        let restored = || {
            let mut p = processor();
            p.restore(serde_json::from_str(&json).expect("restores"));
            p
        };

        let mut p = restored();
        p.heal(at(20));
        // (g1 was evicted already, against the future watermark.)
        assert!(
            p.tracker().get("g2").is_none(),
            "the future game is forgotten"
        );
        let g2 = p.handle(&msg("g2", 25, InProgress, 1, 3, 0));
        assert!(g2.problem.is_none(), "{:?}", g2.problem);
        assert_eq!(g2.state.map(|s| s.home_score), Some(3));

        let stale = restored().handle(&msg("g2", 25, InProgress, 1, 3, 0));
        assert!(
            stale.problem.is_some(),
            "without heal the true update is refused"
        );
    }
}
