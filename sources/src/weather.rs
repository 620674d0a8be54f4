//! Weather: OpenWeather current conditions (live, keyed) and Open-Meteo's
//! archive (history, keyless). Both become [`Observation`]s in SI units,
//! whatever units the payload used, since weather only matters for outdoor
//! venues' kickoff conditions.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::SourceError;
use super::http::{ApiKey, Fetched, HttpClient, HttpConfig};
use super::lenient;

pub const OPENWEATHER_BASE_URL: &str = "https://api.openweathermap.org";
pub const OPENWEATHER_API: &str = "openweather";
pub const OPENWEATHER_KEY_VAR: &str = "OPENWEATHER_API_KEY";
pub const OPENWEATHER_RATE: f64 = 1.0;
pub const OPEN_METEO_ARCHIVE_URL: &str = "https://archive-api.open-meteo.com";
pub const OPEN_METEO_API: &str = "open_meteo";
pub const OPEN_METEO_RATE: f64 = 2.0;
/// Hourly variables requested from the archive.
pub const HOURLY: &str = "temperature_2m,precipitation,wind_speed_10m,relative_humidity_2m";

/// One observation in SI units (docs/data-model.md#silverweather).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub observed_at: DateTime<Utc>,
    pub temperature_c: Option<f64>,
    pub wind_speed_ms: Option<f64>,
    pub wind_deg: Option<f64>,
    pub precipitation_mm: Option<f64>,
    pub humidity_pct: Option<f64>,
    pub condition: Option<String>,
}

/// OpenWeather's `units` parameter: it changes temperature and wind units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// Kelvin, m/s (no `units` parameter).
    Standard,
    /// °C, m/s.
    Metric,
    /// °F, mph.
    Imperial,
}

/// `/data/2.5/weather` response.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct CurrentWeather {
    pub coord: Option<Coord>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub weather: Vec<Condition>,
    pub main: Option<MainReadings>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub visibility: Option<f64>,
    pub wind: Option<Wind>,
    pub clouds: Option<Clouds>,
    pub rain: Option<Precipitation>,
    pub snow: Option<Precipitation>,
    /// Observation time, Unix seconds.
    pub dt: i64,
    pub name: Option<String>,
    /// Offset from UTC in seconds.
    pub timezone: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
pub struct Coord {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Condition {
    pub id: Option<i64>,
    pub main: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct MainReadings {
    pub temp: Option<f64>,
    pub feels_like: Option<f64>,
    pub pressure: Option<f64>,
    pub humidity: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Wind {
    pub speed: Option<f64>,
    pub deg: Option<f64>,
    pub gust: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Clouds {
    pub all: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Precipitation {
    #[serde(rename = "1h")]
    pub one_hour: Option<f64>,
    #[serde(rename = "3h")]
    pub three_hours: Option<f64>,
}

impl CurrentWeather {
    /// This reading in SI units, given the `units` it was requested in.
    pub fn observation(&self, units: Units) -> Option<Observation> {
        let observed_at: DateTime<Utc> = lenient::from_unix(self.dt as f64)?;
        let main: Option<&MainReadings> = self.main.as_ref();
        let wind: Option<&Wind> = self.wind.as_ref();
        let precipitation: Option<f64> = match (
            self.rain.as_ref().and_then(|r| r.one_hour),
            self.snow.as_ref().and_then(|s| s.one_hour),
        ) {
            (None, None) => None,
            (rain, snow) => Some(rain.unwrap_or(0.0) + snow.unwrap_or(0.0)),
        };
        Some(Observation {
            observed_at,
            temperature_c: main.and_then(|m| m.temp).map(|t| celsius(t, units)),
            wind_speed_ms: wind
                .and_then(|w| w.speed)
                .map(|s| metres_per_second(s, units)),
            wind_deg: wind.and_then(|w| w.deg),
            precipitation_mm: precipitation,
            humidity_pct: main.and_then(|m| m.humidity),
            condition: self.weather.first().and_then(|c| c.main.clone()),
        })
    }
}

fn celsius(t: f64, units: Units) -> f64 {
    match units {
        Units::Standard => t - 273.15,
        Units::Metric => t,
        Units::Imperial => (t - 32.0) * 5.0 / 9.0,
    }
}

fn metres_per_second(speed: f64, units: Units) -> f64 {
    match units {
        Units::Imperial => speed * 0.44704,
        Units::Standard | Units::Metric => speed,
    }
}

/// Open-Meteo response (archive or forecast): hourly series keyed by
/// variable name. Older captures use `windspeed_10m`/`relativehumidity_2m`,
/// multi-model ones suffix the model (`temperature_2m_ecmwf_ifs025`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct OpenMeteo {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub utc_offset_seconds: i64,
    #[serde(default)]
    pub hourly_units: BTreeMap<String, String>,
    pub hourly: Option<Hourly>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Hourly {
    /// Local times (`2023-08-09T00:00`) in the response's timezone.
    #[serde(default)]
    pub time: Vec<String>,
    #[serde(flatten)]
    pub series: BTreeMap<String, Vec<Option<f64>>>,
}

impl OpenMeteo {
    /// The series of `names[0]` (or an older alias) with the unit Open-Meteo
    /// reported. In a multi-model response (`temperature_2m_ecmwf_ifs025`,
    /// `temperature_2m_gfs_global` …) the model with the most values wins:
    /// regional models leave hours outside their horizon `null`.
    fn series(&self, names: &[&str]) -> Option<(&[Option<f64>], Option<&str>)> {
        let hourly: &Hourly = self.hourly.as_ref()?;
        let filled = |k: &String| -> usize {
            hourly
                .series
                .get(k)
                .map_or(0, |v| v.iter().flatten().count())
        };
        let key: &String = match names
            .iter()
            .find_map(|n| hourly.series.get_key_value(*n).map(|(k, _)| k))
        {
            Some(k) => k,
            None => {
                // Model names are the suffixes of the temperature series; matching
                // against them keeps `precipitation_probability_*` out of `precipitation`.
                let models: Vec<&str> = hourly
                    .series
                    .keys()
                    .filter_map(|k| k.strip_prefix("temperature_2m_"))
                    .collect();
                let mut best: Option<&String> = None;
                for n in names {
                    for m in &models {
                        if let Some((k, _)) = hourly.series.get_key_value(&format!("{n}_{m}")) {
                            if best.is_none_or(|b| filled(k) > filled(b)) {
                                best = Some(k);
                            }
                        }
                    }
                }
                best?
            }
        };
        let values: &Vec<Option<f64>> = hourly.series.get(key)?;
        Some((
            values.as_slice(),
            self.hourly_units.get(key).map(String::as_str),
        ))
    }

    /// Hourly observations in SI units; steps with unparsable times are skipped.
    pub fn observations(&self) -> Vec<Observation> {
        let Some(hourly) = self.hourly.as_ref() else {
            return Vec::new();
        };
        let temperature = self.series(&["temperature_2m"]);
        let precipitation = self.series(&["precipitation"]);
        let wind = self.series(&["wind_speed_10m", "windspeed_10m"]);
        let humidity = self.series(&["relative_humidity_2m", "relativehumidity_2m"]);
        let at = |s: Option<(&[Option<f64>], Option<&str>)>,
                  i: usize|
         -> Option<(f64, Option<String>)> {
            let (values, unit) = s?;
            values
                .get(i)
                .copied()
                .flatten()
                .map(|v| (v, unit.map(str::to_string)))
        };
        hourly
            .time
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let local: NaiveDateTime = lenient::parse_time(t)?.naive_utc();
                let observed_at: DateTime<Utc> =
                    (local - ChronoDuration::seconds(self.utc_offset_seconds)).and_utc();
                Some(Observation {
                    observed_at,
                    temperature_c: at(temperature, i).map(|(v, u)| match u.as_deref() {
                        Some("°F") => (v - 32.0) * 5.0 / 9.0,
                        _ => v,
                    }),
                    wind_speed_ms: at(wind, i).map(|(v, u)| match u.as_deref() {
                        Some("m/s") => v,
                        Some("mp/h") | Some("mph") => v * 0.44704,
                        Some("kn") => v * 0.514_444,
                        // Open-Meteo's default is km/h.
                        _ => v / 3.6,
                    }),
                    wind_deg: None,
                    precipitation_mm: at(precipitation, i).map(|(v, u)| match u.as_deref() {
                        Some("inch") => v * 25.4,
                        _ => v,
                    }),
                    humidity_pct: at(humidity, i).map(|(v, _)| v),
                    condition: None,
                })
            })
            .collect()
    }
}

/// OpenWeather current-conditions client (key `OPENWEATHER_API_KEY`).
#[derive(Debug, Clone)]
pub struct OpenWeatherClient {
    http: HttpClient,
    key: ApiKey,
}

impl OpenWeatherClient {
    pub fn new(config: HttpConfig, key: ApiKey) -> Result<Self, SourceError> {
        Ok(Self {
            http: HttpClient::new(OPENWEATHER_API, config)?,
            key,
        })
    }

    /// `/data/2.5/weather?lat&lon&units=metric`, raw.
    pub async fn fetch_current(&self, lat: f64, lon: f64) -> Result<Fetched, SourceError> {
        let query: Vec<(&str, String)> = vec![
            ("lat", lat.to_string()),
            ("lon", lon.to_string()),
            ("units", "metric".to_string()),
            ("appid", self.key.expose().to_string()),
        ];
        self.http.get("/data/2.5/weather", &query).await
    }

    /// Current conditions in SI units.
    pub async fn current(
        &self,
        lat: f64,
        lon: f64,
    ) -> Result<(CurrentWeather, Option<Observation>), SourceError> {
        let reading: CurrentWeather = self
            .fetch_current(lat, lon)
            .await?
            .decode(OPENWEATHER_API)?;
        let observation: Option<Observation> = reading.observation(Units::Metric);
        Ok((reading, observation))
    }
}

/// Open-Meteo historical archive client (no key).
#[derive(Debug, Clone)]
pub struct OpenMeteoClient {
    http: HttpClient,
}

impl OpenMeteoClient {
    pub fn production() -> Result<Self, SourceError> {
        Self::new(HttpConfig::new(OPEN_METEO_ARCHIVE_URL, OPEN_METEO_RATE))
    }

    pub fn new(config: HttpConfig) -> Result<Self, SourceError> {
        Ok(Self {
            http: HttpClient::new(OPEN_METEO_API, config)?,
        })
    }

    /// `/v1/archive` hourly history for `start..=end` at a point, in UTC, raw.
    pub async fn fetch_archive(
        &self,
        lat: f64,
        lon: f64,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Fetched, SourceError> {
        let query: Vec<(&str, String)> = vec![
            ("latitude", lat.to_string()),
            ("longitude", lon.to_string()),
            ("start_date", start.format("%Y-%m-%d").to_string()),
            ("end_date", end.format("%Y-%m-%d").to_string()),
            ("hourly", HOURLY.to_string()),
            ("timezone", "GMT".to_string()),
        ];
        self.http.get("/v1/archive", &query).await
    }

    /// Hourly history, decoded, with its observations in SI units.
    pub async fn archive(
        &self,
        lat: f64,
        lon: f64,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<(OpenMeteo, Vec<Observation>), SourceError> {
        let payload: OpenMeteo = self
            .fetch_archive(lat, lon, start, end)
            .await?
            .decode(OPEN_METEO_API)?;
        let observations: Vec<Observation> = payload.observations();
        Ok((payload, observations))
    }
}
