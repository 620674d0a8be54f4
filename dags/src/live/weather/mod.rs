//! The weather processor: current conditions per venue and change alerts
//! when wind, precipitation or temperature move beyond configurable
//! thresholds.
//!
//! A change is measured against the value last *reported* (the baseline),
//! not the previous observation, so a slow drift of 1 m/s per poll still
//! raises an alert once it adds up to the threshold.

pub mod processor;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::live::envelope::Keyed;

pub use processor::{WeatherOutput, WeatherProcessor};

/// Processor name in the serving tables' `processor` column.
pub const PROCESSOR: &str = "weather";

/// A weather message's payload: one observation at a game's venue, in SI
/// units (docs/topics.md#weather-payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeatherUpdate {
    pub game_id: String,
    pub venue_id: String,
    pub temperature_c: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_deg: Option<f64>,
    pub precipitation_mm: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub condition: Option<String>,
}

impl WeatherUpdate {
    /// A source's observation at the venue of `game_id`.
    pub fn observed(game_id: &str, venue_id: &str, o: sources::weather::Observation) -> Self {
        WeatherUpdate {
            game_id: game_id.to_owned(),
            venue_id: venue_id.to_owned(),
            temperature_c: o.temperature_c,
            wind_speed_ms: o.wind_speed_ms,
            wind_deg: o.wind_deg,
            precipitation_mm: o.precipitation_mm,
            humidity_pct: o.humidity_pct,
            condition: o.condition,
        }
    }
}

impl Keyed for WeatherUpdate {
    /// Weather is keyed by game (docs/topics.md#message-keys), so a game's
    /// weather stays on one partition.
    fn message_key(&self) -> &str {
        &self.game_id
    }

    fn text_problem(&self) -> Option<String> {
        use crate::live::text::{field, optional};
        use sources::text::{MAX_ID, MAX_NAME};
        field("game id", &self.game_id, MAX_ID)
            .and_then(|()| field("venue id", &self.venue_id, MAX_ID))
            .and_then(|()| optional("condition", self.condition.as_deref(), MAX_NAME))
            .err()
    }
}

/// Smallest moves worth an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub wind_speed_ms: f64,
    pub precipitation_mm: f64,
    pub temperature_c: f64,
}

impl Default for Thresholds {
    /// The thresholds of docs/formulas.md#live-weather-figures. 5 m/s is the
    /// width of gold's wind buckets (docs/formulas.md#weather-impact); 1 mm
    /// of rain and 5 °C are visible on a field.
    fn default() -> Self {
        Self {
            wind_speed_ms: 5.0,
            precipitation_mm: 1.0,
            temperature_c: 5.0,
        }
    }
}

/// A measured quantity that can trigger an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    WindSpeedMs,
    PrecipitationMm,
    TemperatureC,
}

impl Field {
    /// The serialized name (`serving.weather_alerts.field`).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::WindSpeedMs => "wind_speed_ms",
            Field::PrecipitationMm => "precipitation_mm",
            Field::TemperatureC => "temperature_c",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeatherChange {
    pub venue_id: String,
    pub game_id: String,
    pub field: Field,
    pub from: f64,
    pub to: f64,
    pub event_time: DateTime<Utc>,
}

/// An observation outside physical ranges.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InvalidWeather {
    #[error("{field} = {value} is outside [{min}, {max}]")]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

/// What became of one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Now the venue's current conditions, with any alerts it raised.
    Current(Vec<WeatherChange>),
    /// Older than the venue's current conditions: not applied.
    Stale {
        latest: DateTime<Utc>,
    },
    Invalid(InvalidWeather),
}

/// Current conditions of one venue: the `serving.weather_latest` row.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueWeather {
    pub observation: WeatherUpdate,
    pub event_time: DateTime<Utc>,
    baseline: BTreeMap<Field, f64>,
}

/// Current conditions of every venue seen.
#[derive(Debug, Default)]
pub struct WeatherTracker {
    thresholds: Thresholds,
    venues: HashMap<String, VenueWeather>,
}

fn validate(u: &WeatherUpdate) -> Result<(), InvalidWeather> {
    let ranges: [(&'static str, Option<f64>, f64, f64); 5] = [
        ("temperature_c", u.temperature_c, -70.0, 60.0),
        ("wind_speed_ms", u.wind_speed_ms, 0.0, 120.0),
        ("wind_deg", u.wind_deg, -360.0, 720.0),
        ("precipitation_mm", u.precipitation_mm, 0.0, 500.0),
        ("humidity_pct", u.humidity_pct, 0.0, 100.0),
    ];
    for (field, value, min, max) in ranges {
        if let Some(value) = value {
            if !(min..=max).contains(&value) {
                return Err(InvalidWeather::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                });
            }
        }
    }
    Ok(())
}

impl WeatherTracker {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            venues: HashMap::new(),
        }
    }

    pub fn current(&self, venue_id: &str) -> Option<&VenueWeather> {
        self.venues.get(venue_id)
    }

    /// Venues tracked.
    pub fn len(&self) -> usize {
        self.venues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.venues.is_empty()
    }

    /// Forgets venues last observed before `before`; their next observation
    /// starts a new baseline. Returns how many were dropped.
    pub fn evict_before(&mut self, before: DateTime<Utc>) -> usize {
        let n: usize = self.venues.len();
        self.venues.retain(|_, v| v.event_time >= before);
        n - self.venues.len()
    }

    /// Forgets venues last observed after `not_after`: a checkpoint from
    /// before event times were checked against the clock may hold one
    /// stamped years ahead, and every true observation after it would be
    /// stale. Returns how many were dropped.
    pub fn forget_after(&mut self, not_after: DateTime<Utc>) -> usize {
        let n: usize = self.venues.len();
        self.venues.retain(|_, v| v.event_time <= not_after);
        n - self.venues.len()
    }

    /// Applies one observation made at `event_time`.
    pub fn observe(&mut self, event_time: DateTime<Utc>, u: &WeatherUpdate) -> Observed {
        if let Err(e) = validate(u) {
            return Observed::Invalid(e);
        }
        let venue: &mut VenueWeather =
            self.venues
                .entry(u.venue_id.clone())
                .or_insert_with(|| VenueWeather {
                    observation: u.clone(),
                    event_time,
                    baseline: BTreeMap::new(),
                });
        if event_time < venue.event_time {
            return Observed::Stale {
                latest: venue.event_time,
            };
        }
        let measured: [(Field, Option<f64>, f64); 3] = [
            (
                Field::WindSpeedMs,
                u.wind_speed_ms,
                self.thresholds.wind_speed_ms,
            ),
            (
                Field::PrecipitationMm,
                u.precipitation_mm,
                self.thresholds.precipitation_mm,
            ),
            (
                Field::TemperatureC,
                u.temperature_c,
                self.thresholds.temperature_c,
            ),
        ];
        let mut changes: Vec<WeatherChange> = Vec::new();
        for (field, value, threshold) in measured {
            let Some(to) = value else { continue };
            match venue.baseline.get(&field).copied() {
                None => {
                    venue.baseline.insert(field, to);
                }
                Some(from) if (to - from).abs() >= threshold => {
                    venue.baseline.insert(field, to);
                    changes.push(WeatherChange {
                        venue_id: u.venue_id.clone(),
                        game_id: u.game_id.clone(),
                        field,
                        from,
                        to,
                        event_time,
                    });
                }
                Some(_) => {}
            }
        }
        venue.observation = u.clone();
        venue.event_time = event_time;
        Observed::Current(changes)
    }
}

/// Cardinal wind direction (docs/formulas.md#live-weather-figures): N is
/// [348.75, 11.25), NE [11.25, 78.75), E [78.75, 101.25), … (degrees mod 360).
pub fn cardinal(deg: f64) -> &'static str {
    let d: f64 = deg.rem_euclid(360.0);
    match d {
        d if !(11.25..348.75).contains(&d) => "N",
        d if d < 78.75 => "NE",
        d if d < 101.25 => "E",
        d if d < 168.75 => "SE",
        d if d < 191.25 => "S",
        d if d < 258.75 => "SW",
        d if d < 281.25 => "W",
        _ => "NW",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60, 0).expect("valid")
    }

    fn obs(temp: f64, wind: f64, rain: f64) -> WeatherUpdate {
        WeatherUpdate {
            game_id: "g".into(),
            venue_id: "v".into(),
            temperature_c: Some(temp),
            wind_speed_ms: Some(wind),
            wind_deg: Some(90.0),
            precipitation_mm: Some(rain),
            humidity_pct: Some(50.0),
            condition: Some("Clear".into()),
        }
    }

    fn fields(o: Observed) -> Vec<(Field, f64, f64)> {
        match o {
            Observed::Current(c) => c.into_iter().map(|c| (c.field, c.from, c.to)).collect(),
            other => panic!("expected current, got {other:?}"),
        }
    }

    #[test]
    fn changes_beyond_thresholds_against_the_last_reported_value() {
        let mut t = WeatherTracker::new(Thresholds::default());
        assert!(fields(t.observe(at(0), &obs(10.0, 2.0, 0.0))).is_empty());
        // Drift of 2 m/s per poll: below 5 twice, then 6 − 2 = 4 still below, 8 − 2 = 6 alerts.
        assert!(fields(t.observe(at(15), &obs(11.0, 4.0, 0.5))).is_empty());
        assert!(fields(t.observe(at(30), &obs(12.0, 6.0, 0.5))).is_empty());
        assert_eq!(
            fields(t.observe(at(45), &obs(16.0, 8.0, 1.2))),
            vec![
                (Field::WindSpeedMs, 2.0, 8.0),
                (Field::PrecipitationMm, 0.0, 1.2),
                (Field::TemperatureC, 10.0, 16.0)
            ]
        );
        assert!(fields(t.observe(at(60), &obs(14.0, 9.0, 1.5))).is_empty());
        assert_eq!(t.current("v").map(|v| v.event_time), Some(at(60)));
    }

    #[test]
    fn thresholds_are_configurable_and_stale_or_invalid_rejected() {
        let mut t = WeatherTracker::new(Thresholds {
            wind_speed_ms: 1.0,
            precipitation_mm: 10.0,
            temperature_c: 10.0,
        });
        t.observe(at(10), &obs(10.0, 2.0, 0.0));
        assert_eq!(
            fields(t.observe(at(20), &obs(10.0, 3.0, 0.0))),
            vec![(Field::WindSpeedMs, 2.0, 3.0)]
        );
        assert_eq!(
            t.observe(at(5), &obs(10.0, 9.0, 0.0)),
            Observed::Stale { latest: at(20) }
        );
        assert!(matches!(
            t.observe(at(30), &obs(10.0, -1.0, 0.0)),
            Observed::Invalid(InvalidWeather::OutOfRange {
                field: "wind_speed_ms",
                ..
            })
        ));
    }

    #[test]
    fn cardinal_bins_match_the_documented_table() {
        for (deg, dir) in [
            (0.0, "N"),
            (360.0, "N"),
            (-360.0, "N"),
            (45.0, "NE"),
            (405.0, "NE"),
            (22.5, "NE"),
            (67.5, "NE"),
            (-45.0, "NW"),
            (315.0, "NW"),
            (337.5, "NW"),
            (90.0, "E"),
            (135.0, "SE"),
            (180.0, "S"),
            (225.0, "SW"),
            (270.0, "W"),
        ] {
            assert_eq!(cardinal(deg), dir, "{deg}");
        }
    }
}
