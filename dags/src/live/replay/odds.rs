//! Replayed odds: the historical snapshots of a sports day (what
//! a `sport.fetch_odds_snapshots` instance stores in replay mode), one message per
//! event and snapshot, at the snapshot's timestamp.

use chrono::NaiveDate;
use serde_json::Value;

use super::{DayReplay, ReplayError, ReplayMessage, Replayed};
use crate::ingest::odds::replay_day;
use crate::live::odds::OddsPayload;
use crate::Sport;
use sources::odds_api::{self, OddsFormat};

/// Replay prices are American (what the odds DAG records and generates).
pub const FORMAT: OddsFormat = OddsFormat::American;

pub fn replay(
    sport: &'static Sport,
    day: NaiveDate,
    minutes: u32,
) -> Result<DayReplay, ReplayError> {
    let err = |e: &dyn ToString| ReplayError::source(sport, "odds", day, e.to_string());
    let mut out = DayReplay::default();
    for f in replay_day(sport, day, minutes).map_err(|e| err(&e))? {
        let body: Value = serde_json::from_slice(&f.body)
            .map_err(|e| err(&format!("snapshot {} is not JSON: {e}", f.url)))?;
        let (times, checked) = odds_api::validate_historical(&body, FORMAT)
            .map_err(|e| err(&format!("snapshot {}: {e}", f.url)))?;
        out.rejected += checked.rejected.len();
        out.messages
            .extend(checked.good.into_iter().map(|event| ReplayMessage {
                time: times.timestamp,
                sport,
                payload: Replayed::Odds(OddsPayload {
                    odds_format: FORMAT,
                    event,
                }),
            }));
    }
    Ok(out)
}
