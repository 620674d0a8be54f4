//! One partition's weather processing: the [`WeatherTracker`] with bounded
//! memory, what each message produced, and an exact checkpoint of it.
//!
//! A venue is forgotten a day (of event time) after its last observation,
//! measured against the newest observation the partition has seen: weather
//! matters around a game, and a venue's next game starts a new baseline.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Field, Observed, Thresholds, VenueWeather, WeatherChange, WeatherTracker, WeatherUpdate,
};
use crate::live::envelope::Envelope;
use crate::live::PartitionState;
use streaming::dead_letter::DeadLetterReason;

/// Keep a venue this long after its last observation.
pub const VENUE_RETENTION: TimeDelta = TimeDelta::hours(24);

/// What one weather message produced.
#[derive(Debug, Default)]
pub struct WeatherOutput {
    /// The venue's current conditions: upsert into `serving.weather_latest`.
    pub current: Option<VenueWeather>,
    /// Changes beyond the thresholds: `serving.weather_alerts`.
    pub changes: Vec<WeatherChange>,
    /// Stale or invalid: one dead-letter row.
    pub problem: Option<DeadLetterReason>,
}

/// Current conditions of one partition's venues.
pub struct WeatherProcessor {
    tracker: WeatherTracker,
    /// Newest event time accepted: the clock of eviction.
    newest: Option<DateTime<Utc>>,
}

impl WeatherProcessor {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            tracker: WeatherTracker::new(thresholds),
            newest: None,
        }
    }

    pub fn tracker(&self) -> &WeatherTracker {
        &self.tracker
    }

    pub fn handle(&mut self, envelope: &Envelope<WeatherUpdate>) -> WeatherOutput {
        let u: &WeatherUpdate = &envelope.payload;
        let mut out = WeatherOutput::default();
        match self.tracker.observe(envelope.event_time, u) {
            Observed::Current(changes) => {
                out.current = self.tracker.current(&u.venue_id).cloned();
                out.changes = changes;
                self.newest = self.newest.max(Some(envelope.event_time));
            }
            Observed::Stale { latest } => {
                out.problem = Some(DeadLetterReason::new(
                    "stale",
                    format!(
                        "venue {}: observation at {} is older than its current one at {latest}",
                        u.venue_id, envelope.event_time
                    ),
                ));
            }
            Observed::Invalid(e) => {
                out.problem = Some(DeadLetterReason::new(
                    "invalid",
                    format!("venue {}: {e}", u.venue_id),
                ));
            }
        }
        if let Some(newest) = self.newest {
            self.tracker.evict_before(newest - VENUE_RETENTION);
        }
        out
    }
}

impl PartitionState for WeatherProcessor {
    type Topics = crate::live::envelope::Topics;
    type Payload = WeatherUpdate;
    type Output = WeatherOutput;
    type Snapshot = WeatherSnapshot;

    fn apply(
        &mut self,
        envelope: &Envelope<WeatherUpdate>,
    ) -> (WeatherOutput, Option<DeadLetterReason>) {
        let mut out: WeatherOutput = self.handle(envelope);
        let problem: Option<DeadLetterReason> = out.problem.take();
        (out, problem)
    }

    fn snapshot(&self) -> WeatherSnapshot {
        let mut venues: Vec<VenueSnapshot> = self
            .tracker
            .venues
            .values()
            .map(VenueSnapshot::of)
            .collect();
        venues.sort_by(|a, b| a.observation.venue_id.cmp(&b.observation.venue_id));
        WeatherSnapshot {
            newest: self.newest,
            venues,
        }
    }

    /// A checkpoint whose newest observation is stamped in the future would
    /// evict every venue at each message, and its venue would make every
    /// true observation stale: both are pulled back.
    fn heal(&mut self, not_after: DateTime<Utc>) {
        let forgotten: usize = self.tracker.forget_after(not_after);
        let newest_in_future: bool = self.newest.is_some_and(|n| n > not_after);
        if newest_in_future {
            self.newest = Some(not_after);
        }
        if forgotten > 0 || newest_in_future {
            tracing::warn!(%not_after, forgotten, "restored weather held event times past now; pulled back");
        }
    }

    fn restore(&mut self, snapshot: WeatherSnapshot) {
        self.newest = snapshot.newest;
        self.tracker.venues = snapshot
            .venues
            .into_iter()
            .map(|v| {
                let weather: VenueWeather = v.into_weather();
                (weather.observation.venue_id.clone(), weather)
            })
            .collect();
    }
}

/// A [`WeatherProcessor`]'s state with exact floats (`streaming::exact`); the
/// thresholds are configuration, not state.
#[derive(Debug, Serialize, Deserialize)]
pub struct WeatherSnapshot {
    newest: Option<DateTime<Utc>>,
    venues: Vec<VenueSnapshot>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VenueSnapshot {
    observation: ExactObservation,
    event_time: DateTime<Utc>,
    baseline: Vec<Baseline>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Baseline {
    field: Field,
    #[serde(with = "streaming::exact")]
    value: f64,
}

/// [`WeatherUpdate`] with exact floats; the payload itself stays plain JSON.
#[derive(Debug, Serialize, Deserialize)]
struct ExactObservation {
    game_id: String,
    venue_id: String,
    #[serde(with = "streaming::exact::option")]
    temperature_c: Option<f64>,
    #[serde(with = "streaming::exact::option")]
    wind_speed_ms: Option<f64>,
    #[serde(with = "streaming::exact::option")]
    wind_deg: Option<f64>,
    #[serde(with = "streaming::exact::option")]
    precipitation_mm: Option<f64>,
    #[serde(with = "streaming::exact::option")]
    humidity_pct: Option<f64>,
    condition: Option<String>,
}

impl VenueSnapshot {
    fn of(v: &VenueWeather) -> Self {
        let o: &WeatherUpdate = &v.observation;
        let baseline: Vec<Baseline> = v
            .baseline
            .iter()
            .map(|(field, value)| Baseline {
                field: *field,
                value: *value,
            })
            .collect();
        Self {
            observation: ExactObservation {
                game_id: o.game_id.clone(),
                venue_id: o.venue_id.clone(),
                temperature_c: o.temperature_c,
                wind_speed_ms: o.wind_speed_ms,
                wind_deg: o.wind_deg,
                precipitation_mm: o.precipitation_mm,
                humidity_pct: o.humidity_pct,
                condition: o.condition.clone(),
            },
            event_time: v.event_time,
            baseline,
        }
    }

    fn into_weather(self) -> VenueWeather {
        let o: ExactObservation = self.observation;
        VenueWeather {
            observation: WeatherUpdate {
                game_id: o.game_id,
                venue_id: o.venue_id,
                temperature_c: o.temperature_c,
                wind_speed_ms: o.wind_speed_ms,
                wind_deg: o.wind_deg,
                precipitation_mm: o.precipitation_mm,
                humidity_pct: o.humidity_pct,
                condition: o.condition,
            },
            event_time: self.event_time,
            baseline: self
                .baseline
                .into_iter()
                .map(|b| (b.field, b.value))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::envelope::{Kind, SCHEMA_VERSION};

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(hour * 3600, 0).expect("valid")
    }

    fn msg(venue: &str, hour: i64, wind: f64) -> Envelope<WeatherUpdate> {
        Envelope {
            schema_version: SCHEMA_VERSION,
            source: "test".into(),
            sport: "nfl".into(),
            kind: Kind::Weather,
            event_time: at(hour),
            ingest_time: at(hour),
            payload: WeatherUpdate {
                game_id: format!("game-{venue}"),
                venue_id: venue.into(),
                temperature_c: Some(10.0 + 1.0 / 3.0),
                wind_speed_ms: Some(wind),
                wind_deg: None,
                precipitation_mm: Some(0.1 + 0.2),
                humidity_pct: None,
                condition: None,
            },
        }
    }

    #[test]
    fn alerts_problems_eviction_and_exact_restore() {
        let script: Vec<Envelope<WeatherUpdate>> = vec![
            msg("v1", 0, 2.0 / 3.6),
            msg("v2", 1, 3.0),
            msg("v1", 2, 25.0 / 3.6),
            msg("v1", 1, 9.0),
            msg("v2", 3, 130.0),
            msg("v2", 4, 9.5),
            msg("v1", 30, 1.0),
        ];
        let run = |cut: Option<usize>| -> Vec<String> {
            let mut p = WeatherProcessor::new(Thresholds::default());
            let mut seen: Vec<String> = Vec::new();
            for (i, m) in script.iter().enumerate() {
                if cut == Some(i) {
                    let json = serde_json::to_string(&p.snapshot()).expect("json");
                    p = WeatherProcessor::new(Thresholds::default());
                    p.restore(serde_json::from_str(&json).expect("restores"));
                }
                let out = p.handle(m);
                seen.push(format!(
                    "{:?} {:?} {:?}",
                    out.current, out.changes, out.problem
                ));
            }
            seen.push(format!("{}", p.tracker().len()));
            seen
        };
        let clean = run(None);
        assert!(clean[2].contains("WindSpeedMs"), "{}", clean[2]);
        assert!(clean[3].contains("stale"), "{}", clean[3]);
        assert!(clean[4].contains("invalid"), "{}", clean[4]);
        assert!(clean[5].contains("WindSpeedMs"), "{}", clean[5]);
        // v2 (last seen at hour 4) is more than a day behind hour 30.
        assert_eq!(clean.last().map(String::as_str), Some("1"));
        for cut in 1..script.len() {
            assert_eq!(run(Some(cut)), clean, "restored before message {cut}");
        }
    }

    /// A checkpoint taken after a message stamped far ahead (before event
    /// times were checked against the clock) heals on restore: true
    /// observations are current again, and other venues are not evicted.
    #[test]
    fn a_restored_future_observation_is_forgotten_on_heal() {
        let mut poisoned = WeatherProcessor::new(Thresholds::default());
        poisoned.handle(&msg("v1", 10, 2.0));
        poisoned.handle(&msg("v2", 24 * 365 * 70, 2.0));
        let json = serde_json::to_string(&poisoned.snapshot()).expect("json");

        let mut p = WeatherProcessor::new(Thresholds::default());
        p.restore(serde_json::from_str(&json).expect("restores"));
        p.heal(at(12));
        // v1 was evicted already against the future clock; v2 is forgotten.
        assert_eq!(p.tracker().len(), 0);
        let v2 = p.handle(&msg("v2", 11, 3.0));
        assert!(v2.problem.is_none(), "{:?}", v2.problem);
        assert!(v2.current.is_some());
        p.handle(&msg("v1", 11, 2.0));
        let v1 = p.handle(&msg("v1", 12, 9.5));
        assert!(
            v1.changes
                .iter()
                .any(|c| format!("{c:?}").contains("WindSpeedMs")),
            "{v1:?}"
        );
        assert_eq!(
            p.tracker().len(),
            2,
            "nothing evicted against a future clock"
        );

        let mut unhealed = WeatherProcessor::new(Thresholds::default());
        unhealed.restore(serde_json::from_str(&json).expect("restores"));
        let stale = unhealed.handle(&msg("v2", 11, 3.0));
        assert!(
            stale.problem.is_some(),
            "without heal the true observation is stale"
        );
    }
}
