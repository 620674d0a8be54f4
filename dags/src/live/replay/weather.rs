//! Replayed weather: hourly conditions from three hours before kickoff to
//! four after at the venue of each outdoor game, keyed by game, from the
//! generated Open-Meteo archive the weather DAG stores in replay mode (so a
//! game's streamed and batch weather agree). Indoor venues, and venues
//! without seed coordinates, get none.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::{ReplayError, ReplayMessage, Replayed};
use crate::ingest::weather::{generated_archive, seed_coordinates, OutdoorVenue};
use crate::live::weather::WeatherUpdate;
use crate::Sport;
use sources::espn::GameRecord;
use sources::weather::OpenMeteo;

/// Observations from this long before kickoff …
pub const BEFORE_KICKOFF: TimeDelta = TimeDelta::hours(3);
/// … to this long after.
pub const AFTER_KICKOFF: TimeDelta = TimeDelta::hours(4);

pub fn replay(
    sport: &'static Sport,
    day: NaiveDate,
    games: &[GameRecord],
) -> Result<Vec<ReplayMessage>, ReplayError> {
    let err = |e: &dyn ToString| ReplayError::source(sport, "weather", day, e.to_string());
    let mut out: Vec<ReplayMessage> = Vec::new();
    for g in games {
        let Some(venue) = g.venue.as_ref().filter(|v| v.indoor == Some(false)) else {
            continue;
        };
        let Some((lat, lon)) = seed_coordinates(&venue.venue_id) else {
            continue;
        };
        let outdoor = OutdoorVenue {
            venue_id: venue.venue_id.clone(),
            name: venue.name.clone(),
            lat,
            lon,
            game_ids: vec![g.game_id.clone()],
        };
        let (from, to): (DateTime<Utc>, DateTime<Utc>) =
            (g.start_time - BEFORE_KICKOFF, g.start_time + AFTER_KICKOFF);
        let fetched =
            generated_archive(&outdoor, from.date_naive(), to.date_naive()).map_err(|e| err(&e))?;
        let archive: OpenMeteo = serde_json::from_slice(&fetched.body).map_err(|e| {
            err(&format!(
                "archive {} is not Open-Meteo JSON: {e}",
                fetched.url
            ))
        })?;
        for o in archive.observations() {
            if o.observed_at < from || o.observed_at > to {
                continue;
            }
            out.push(ReplayMessage {
                time: o.observed_at,
                sport,
                payload: Replayed::Weather(WeatherUpdate::observed(&g.game_id, &venue.venue_id, o)),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::replay::games;

    #[test]
    fn outdoor_games_get_hourly_weather_around_kickoff() {
        let nfl: &'static Sport = crate::sport("nfl").expect("nfl");
        let day = NaiveDate::from_ymd_opt(2025, 10, 12).expect("date");
        let played = games::replay(nfl, day).expect("games").records;
        let messages = replay(nfl, day, &played).expect("weather");
        assert!(!messages.is_empty());
        for m in &messages {
            let Replayed::Weather(w) = &m.payload else {
                panic!("not weather");
            };
            let g = played
                .iter()
                .find(|g| g.game_id == w.game_id)
                .expect("a game's");
            assert_eq!(g.venue.as_ref().and_then(|v| v.indoor), Some(false));
            assert!(
                m.time >= g.start_time - BEFORE_KICKOFF && m.time <= g.start_time + AFTER_KICKOFF
            );
            assert!(w.temperature_c.is_some() && w.wind_speed_ms.is_some());
        }
        let mut per_game: std::collections::BTreeMap<&str, usize> = Default::default();
        for m in &messages {
            *per_game.entry(m.key()).or_default() += 1;
        }
        // Hourly from −3 h to +4 h: 8 readings, 7 when kickoff is off the hour.
        assert!(
            per_game.values().all(|n| (7..=8).contains(n)),
            "{per_game:?}"
        );
    }
}
