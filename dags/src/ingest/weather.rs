//! The real ingestion tasks of `weather_daily`: pick the sports day's
//! outdoor venues from the games already in the raw lake, fetch Open-Meteo's
//! hourly history at each, store it, then validate it.
//!
//! ESPN scoreboards carry no venue coordinates, so they come from
//! [`VENUE_SEED`]: seed data, not a source — approximate public locations
//! (about ±1 km, finer than Open-Meteo's ~10 km grid) of the outdoor
//! venues in the bundled ESPN captures, which are also the home venues the
//! season generator schedules. A venue missing from it is reported by
//! `select_outdoor_venues` (`missing_coordinates`) and not fetched; its row
//! is what to add. Once `dim_venues` has lat/lon, read them from there.
//!
//! Replay has no recorded archive responses for these venues and dates, so
//! it serves a deterministic generated archive response per venue and day
//! (`replay://generated/open_meteo/…`), in Open-Meteo's shape, so offline
//! runs exercise the same store-and-validate path as live ones.

use super::{StoredPayload, ValidateFrom};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use orchestrator::{Output, TaskContext, TaskError, TypedSpec, TypedTask};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    lake_failed, mapped_sport, per_sport, source_failed, BodyCheck, Settings, SharedSettings,
    SourceMode,
};
use crate::lake::layout::date_prefix;
use crate::lake::{
    read_raw, write_dead_letters, write_raw, Format, Kind, ObjectMeta, ObjectStore, RawKey,
};
use crate::selected_sports;
use crate::{sport, sports_day, Sport};
use sources::espn;
use sources::weather::{OpenMeteo, OpenMeteoClient, HOURLY, OPEN_METEO_API, OPEN_METEO_RATE};
use sources::{Fetched, HttpConfig, Rejected};

/// `{source}` of the weather's dead-letter keys.
pub const DEAD_LETTER_SOURCE: &str = "open_meteo.archive";

/// Seed data (see the module docs): ESPN venue id → (lat, lon).
pub const VENUE_SEED: &[(&str, f64, f64)] = &[
    // NFL
    ("3752", 40.4468, -80.0158),  // Acrisure Stadium, Pittsburgh
    ("3628", 35.2258, -80.8528),  // Bank of America Stadium, Charlotte
    ("8748", -23.5453, -46.4742), // Corinthians Arena, São Paulo
    ("3937", 39.7439, -105.0201), // Empower Field at Mile High, Denver
    ("3712", 30.3239, -81.6373),  // EverBank Stadium, Jacksonville
    ("3719", 38.9078, -76.8645),  // FedExField, Landover
    ("3738", 42.0909, -71.2643),  // Gillette Stadium, Foxborough
    ("3948", 25.9580, -80.2389),  // Hard Rock Stadium, Miami Gardens
    ("3883", 42.7738, -78.7870),  // Highmark Stadium, Orchard Park
    ("3679", 41.5061, -81.6995),  // Huntington Bank Field, Cleveland
    ("3798", 44.5013, -88.0622),  // Lambeau Field, Green Bay
    ("4738", 37.4030, -121.9700), // Levi's Stadium, Santa Clara
    ("3806", 39.9008, -75.1675),  // Lincoln Financial Field, Philadelphia
    ("3673", 47.5952, -122.3316), // Lumen Field, Seattle
    ("3839", 40.8135, -74.0745),  // MetLife Stadium, East Rutherford
    ("3810", 36.1665, -86.7713),  // Nissan Stadium, Nashville
    ("3874", 39.0955, -84.5161),  // Paycor Stadium, Cincinnati
    ("3933", 41.8623, -87.6167),  // Soldier Field, Chicago
    ("5534", 51.6043, -0.0664),   // Tottenham Hotspur Stadium, London
    // College football
    ("3626", 44.0582, -123.0685), // Autzen Stadium, Eugene
    ("3636", 39.2020, -96.5939),  // Bill Snyder Family Stadium, Manhattan KS
    ("3654", 33.7935, -79.0170),  // Brooks Stadium, Conway
    ("3696", 41.1420, -81.3150),  // Dix Stadium, Kent
    ("3772", 42.0140, -93.6358),  // Jack Trice Stadium, Ames
    ("3786", 43.5770, -84.7700),  // Kelly/Shorts Stadium, Mount Pleasant
    ("3683", 38.0222, -84.5053),  // Kroger Field, Lexington
    ("3799", 37.2200, -80.4180),  // Lane Stadium, Blacksburg
    ("4727", 31.5583, -97.1156),  // McLane Stadium, Waco
    ("3830", 39.1808, -86.5256),  // Memorial Stadium, Bloomington
    ("3834", 40.8206, -96.7056),  // Memorial Stadium, Lincoln
    ("3838", 38.9359, -92.3332),  // Faurot Field, Columbia MO
    ("3841", 41.3875, -73.9640),  // Michie Stadium, West Point
    ("3558", 42.2658, -83.7487),  // Michigan Stadium, Ann Arbor
    ("3842", 39.6500, -79.9548),  // Milan Puskar Stadium, Morgantown
    ("3947", 33.4264, -111.9325), // Mountain America Stadium, Tempe
    ("3855", 41.6984, -86.2339),  // Notre Dame Stadium
    ("3893", 44.5595, -123.2813), // Reser Stadium, Corvallis
    ("1056", 34.1613, -118.1676), // Rose Bowl, Pasadena
    ("3911", 42.0655, -87.6923),  // Ryan Field, Evanston
    ("3919", 40.2150, -85.4120),  // Scheumann Stadium, Muncie
    ("3923", 38.0311, -78.5137),  // Scott Stadium, Charlottesville
    ("3994", 33.9730, -81.0192),  // Williams-Brice Stadium, Columbia SC
];

/// (lat, lon) of an outdoor venue in [`VENUE_SEED`].
pub fn seed_coordinates(venue_id: &str) -> Option<(f64, f64)> {
    VENUE_SEED
        .iter()
        .find(|(id, ..)| *id == venue_id)
        .map(|(_, lat, lon)| (*lat, *lon))
}

/// One outdoor venue of the day, with the games played there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutdoorVenue {
    pub venue_id: String,
    pub name: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub game_ids: Vec<String>,
}

/// One sport's part of `select_outdoor_venues`' output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SportVenues {
    /// The games object read, `None` when the lake has none for the day.
    pub games_key: Option<String>,
    pub venues: Vec<OutdoorVenue>,
    /// Outdoor venue ids with no known coordinates (not fetched).
    pub missing_coordinates: Vec<String>,
    /// Valid games of the day that are indoors or say nothing.
    pub indoor_or_unknown_games: usize,
}

/// XCom of `select_outdoor_venues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VenuesOutput {
    pub date: NaiveDate,
    pub sports: BTreeMap<String, SportVenues>,
    /// Outdoor venues with coordinates, over all sports (downstream count).
    pub records: usize,
}

/// `select_outdoor_venues`: per selected sport, the outdoor venues of the
/// sports day's valid games in the raw lake.
#[derive(Debug, Clone)]
pub struct SelectOutdoorVenues {
    settings: SharedSettings,
}

impl SelectOutdoorVenues {
    pub fn new(settings: SharedSettings) -> Self {
        Self { settings }
    }

    pub fn spec(self, id: &str, doc: String) -> TypedSpec<VenuesOutput> {
        TypedSpec::new(id, self).doc(doc)
    }
}

/// The newest games object of `sport` on `date` from `source`.
async fn latest_games(
    store: &dyn ObjectStore,
    sport: &str,
    date: NaiveDate,
    source: &str,
) -> Result<Option<String>, TaskError> {
    let objects: Vec<ObjectMeta> = store.list(&date_prefix(sport, Kind::Games, date)).await?;
    Ok(objects
        .into_iter()
        .filter(|m| RawKey::parse(&m.key).is_ok_and(|k| k.source == source))
        .max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
        .map(|m| m.key))
}

#[async_trait]
impl TypedTask for SelectOutdoorVenues {
    type Output = VenuesOutput;

    async fn run(&self, ctx: TaskContext) -> Result<VenuesOutput, TaskError> {
        let settings: &Settings = &self.settings;
        let date: NaiveDate = sports_day(ctx.data_interval.start);
        let store: Arc<dyn ObjectStore> = settings.lake.open()?;
        let source: &str = settings.mode.lake_source();
        let mut sports: BTreeMap<String, SportVenues> = BTreeMap::new();
        for key in selected_sports(&ctx)? {
            let sport: &Sport =
                sport(&key).ok_or_else(|| TaskError::msg(format!("unknown sport `{key}`")))?;
            let mut out = SportVenues::default();
            let Some(games_key) = latest_games(store.as_ref(), sport.key, date, source).await?
            else {
                ctx.log.warn(format!(
                    "no {source} games object for {} on {date} in {}: run historical_games_daily for the date first; no venues",
                    sport.key,
                    store.location()
                ));
                sports.insert(sport.key.to_owned(), out);
                continue;
            };
            let bytes: Vec<u8> = read_raw(store.as_ref(), &games_key)
                .await
                .map_err(lake_failed)?
                .unwrap_or_default();
            // A stored object does not change between tries: fail at once.
            let payload: Value = serde_json::from_slice(&bytes).map_err(|e| {
                TaskError::fatal(format!("games object {games_key} is not JSON ({e})"))
            })?;
            let checked =
                espn::validate_scoreboard(sport.key, &payload).map_err(TaskError::fatal)?;
            let mut by_id: BTreeMap<String, OutdoorVenue> = BTreeMap::new();
            let mut missing: BTreeSet<String> = BTreeSet::new();
            for game in &checked.good {
                let Some(venue) = game.venue.as_ref().filter(|v| v.indoor == Some(false)) else {
                    out.indoor_or_unknown_games += 1;
                    continue;
                };
                let Some((lat, lon)) = seed_coordinates(&venue.venue_id) else {
                    missing.insert(venue.venue_id.clone());
                    continue;
                };
                by_id
                    .entry(venue.venue_id.clone())
                    .or_insert_with(|| OutdoorVenue {
                        venue_id: venue.venue_id.clone(),
                        name: venue.name.clone(),
                        lat,
                        lon,
                        game_ids: Vec::new(),
                    })
                    .game_ids
                    .push(game.game_id.clone());
            }
            out.games_key = Some(games_key);
            out.venues = by_id.into_values().collect();
            out.missing_coordinates = missing.into_iter().collect();
            ctx.log.info(format!(
                "{} on {date}: {} outdoor venues with coordinates, {} without, {} indoor/unknown games",
                sport.key,
                out.venues.len(),
                out.missing_coordinates.len(),
                out.indoor_or_unknown_games
            ));
            sports.insert(sport.key.to_owned(), out);
        }
        let records: usize = sports.values().map(|s| s.venues.len()).sum();
        Ok(VenuesOutput {
            date,
            sports,
            records,
        })
    }
}

/// XCom of an instance of `sport.fetch_open_meteo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchOutput {
    pub sport: String,
    pub date: NaiveDate,
    pub key: String,
    pub bytes: usize,
    /// `replay` or `open_meteo`.
    pub source: String,
    pub venues: usize,
}

/// XCom of an instance of `sport.validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateOutput {
    pub sport: String,
    pub date: NaiveDate,
    /// Venues whose response passed.
    pub venues: usize,
    /// Hourly observations of those venues.
    pub observations: usize,
    pub rejected: usize,
    pub records: usize,
}

/// `sport.fetch_open_meteo`, one instance per sport: hourly history (UTC, the
/// sports day and the next, so evening kickoffs are covered) at each of the
/// sport's venues.
#[derive(Debug, Clone)]
pub struct FetchOpenMeteo {
    venues: Output<VenuesOutput>,
    settings: SharedSettings,
}

impl FetchOpenMeteo {
    pub fn new(venues: Output<VenuesOutput>, settings: SharedSettings) -> Self {
        Self { venues, settings }
    }

    /// The spec, mapped over the run's sports in `pool`; every instance
    /// reads the venues selected for all of them and takes its sport's.
    pub fn spec(self, id: &str, doc: String, pool: &str) -> TypedSpec<FetchOutput> {
        let input = self.venues.clone();
        per_sport(TypedSpec::new(id, self).doc(doc).reads(&input), pool)
    }
}

/// FNV-1a then SplitMix64 steps: a stable seeded stream per key.
struct Noise(u64);

impl Noise {
    fn new(parts: &[&str]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in parts.iter().flat_map(|p| p.bytes().chain([0xff])) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Noise(h)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z: u64 = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A generated `/v1/archive` response for `venue` over `start..=end` (see
/// the module docs): seasonal and daily temperature cycles by latitude,
/// seeded wind, humidity and showers. Also the weather `betflow stream
/// replay` publishes, so batch and stream see the same conditions.
pub fn generated_archive(
    venue: &OutdoorVenue,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Fetched, TaskError> {
    let mut time: Vec<String> = Vec::new();
    let (mut temp, mut rain, mut wind, mut hum) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut day: NaiveDate = start;
    while day <= end {
        let mut n = Noise::new(&["open_meteo", &venue.venue_id, &day.to_string()]);
        let season: f64 =
            (2.0 * std::f64::consts::PI * (f64::from(day.ordinal()) - 200.0) / 365.0).cos();
        let north: f64 = venue.lat.signum();
        let mean: f64 =
            27.0 - 0.45 * venue.lat.abs() + 10.0 * season * north + 4.0 * (n.unit() - 0.5);
        let wet: bool = n.unit() < 0.25;
        let base_wind: f64 = 6.0 + 14.0 * n.unit();
        for h in 0..24u32 {
            time.push(format!("{}T{h:02}:00", day.format("%Y-%m-%d")));
            // Coldest near dawn local time, ~lon/15 h off UTC.
            let local: f64 = f64::from(h) + venue.lon / 15.0;
            let cycle: f64 = (2.0 * std::f64::consts::PI * (local - 15.0) / 24.0).cos();
            temp.push(round1(mean + 5.0 * cycle + n.unit() - 0.5));
            rain.push(round1(if wet && n.unit() < 0.4 {
                3.0 * n.unit()
            } else {
                0.0
            }));
            wind.push(round1(base_wind + 6.0 * n.unit()));
            hum.push(
                (55.0 - 15.0 * cycle + 20.0 * n.unit())
                    .clamp(5.0, 100.0)
                    .round(),
            );
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    let body = json!({
        "latitude": venue.lat,
        "longitude": venue.lon,
        "timezone": "GMT",
        "utc_offset_seconds": 0,
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C", "precipitation": "mm",
                         "wind_speed_10m": "km/h", "relative_humidity_2m": "%"},
        "hourly": {"time": time, "temperature_2m": temp, "precipitation": rain,
                   "wind_speed_10m": wind, "relative_humidity_2m": hum},
    });
    Ok(Fetched {
        url: format!(
            "replay://generated/open_meteo/v1/archive?latitude={}&longitude={}&start_date={start}&end_date={end}&hourly={HOURLY}",
            venue.lat, venue.lon
        ),
        body: serde_json::to_vec(&body)?,
        quota: None,
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[async_trait]
impl TypedTask for FetchOpenMeteo {
    type Output = FetchOutput;

    async fn run(&self, ctx: TaskContext) -> Result<FetchOutput, TaskError> {
        let sport: &Sport = mapped_sport(&ctx)?;
        let settings: &Settings = &self.settings;
        let selection: VenuesOutput = self.venues.get(&ctx)?;
        let date: NaiveDate = selection.date;
        let end: NaiveDate = date.succ_opt().unwrap_or(date);
        let venues: Vec<OutdoorVenue> = selection
            .sports
            .get(sport.key)
            .map(|s| s.venues.clone())
            .unwrap_or_default();
        let client: Option<OpenMeteoClient> = match &settings.mode {
            SourceMode::Replay => None,
            SourceMode::Live { .. } => Some(
                OpenMeteoClient::new(HttpConfig::new(
                    settings.open_meteo_url.clone(),
                    OPEN_METEO_RATE,
                ))
                .map_err(source_failed)?,
            ),
        };
        // `[{"venue": …, "url": …, "response": <untouched body>}, …]`
        let mut body: Vec<u8> = b"[".to_vec();
        for (i, venue) in venues.iter().enumerate() {
            let fetched: Fetched = match &client {
                Some(c) => {
                    let f = c
                        .fetch_archive(venue.lat, venue.lon, date, end)
                        .await
                        .map_err(source_failed)?;
                    BodyCheck::new(&ctx, settings, DEAD_LETTER_SOURCE, sport.key, date)
                        .require_json(&f, "a venue's weather")
                        .await?;
                    f
                }
                None => generated_archive(venue, date, end)?,
            };
            if i > 0 {
                body.push(b',');
            }
            let head = json!({"venue": venue, "url": fetched.url}).to_string();
            // Splice the response in after the head's fields, byte for byte.
            body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
            body.extend_from_slice(b",\"response\":");
            body.extend_from_slice(&fetched.body);
            body.push(b'}');
        }
        body.push(b']');
        let source: &str = settings.mode.lake_source_for(OPEN_METEO_API);
        let key = RawKey::new(
            sport.key,
            Kind::Weather,
            date,
            source,
            &ctx.run_id,
            Format::Json,
        )?;
        let store: Arc<dyn ObjectStore> = settings.lake.open().map_err(lake_failed)?;
        let written: String = write_raw(store.as_ref(), &key, &body)
            .await
            .map_err(lake_failed)?;
        ctx.log.info(format!(
            "fetched {source} hourly weather {date}..={end} at {} outdoor {} venues ({} bytes) into {}/{written}",
            venues.len(),
            sport.key,
            body.len(),
            store.location()
        ));
        Ok(FetchOutput {
            sport: sport.key.to_owned(),
            date,
            key: written,
            bytes: body.len(),
            source: source.to_owned(),
            venues: venues.len(),
        })
    }
}

/// Why one venue's response is unusable, if it is.
fn check_response(venue: &OutdoorVenue, response: &Value) -> Result<usize, String> {
    let parsed: OpenMeteo = sources::decode_value(response)?;
    let (Some(lat), Some(lon)) = (parsed.latitude, parsed.longitude) else {
        return Err("response has no latitude/longitude".to_owned());
    };
    // Open-Meteo answers for the nearest grid cell: allow half a degree.
    if (lat - venue.lat).abs() > 0.5 || (lon - venue.lon).abs() > 0.5 {
        return Err(format!(
            "response is for ({lat}, {lon}), not venue {} at ({}, {})",
            venue.venue_id, venue.lat, venue.lon
        ));
    }
    let hourly = parsed
        .hourly
        .as_ref()
        .ok_or("response has no hourly data")?;
    if hourly.time.is_empty() {
        return Err("hourly.time is empty".to_owned());
    }
    for (name, values) in &hourly.series {
        if values.len() != hourly.time.len() {
            return Err(format!(
                "hourly.{name} has {} values for {} times",
                values.len(),
                hourly.time.len()
            ));
        }
    }
    for var in HOURLY.split(',') {
        if !hourly.series.contains_key(var) {
            return Err(format!("hourly.{var} is missing"));
        }
        if !parsed.hourly_units.contains_key(var) {
            return Err(format!("hourly_units.{var} is missing"));
        }
    }
    Ok(parsed.observations().len())
}

/// `sport.validate`, one instance per fetched sport: the stored responses, checked venue by venue.
#[derive(Debug, Clone)]
pub struct ValidateWeather(ValidateFrom<FetchOutput>);

super::validate_task!(ValidateWeather, FetchOutput, ValidateOutput);

#[async_trait]
impl TypedTask for ValidateWeather {
    type Output = ValidateOutput;

    async fn run(&self, ctx: TaskContext) -> Result<ValidateOutput, TaskError> {
        let StoredPayload {
            sport,
            store,
            key,
            date,
            payload,
        } = self.0.load(&ctx, "weather").await?;
        let items: &Vec<Value> = payload.as_array().ok_or_else(|| {
            TaskError::msg(format!("{} weather {} is not a JSON array", sport.key, key))
        })?;
        let mut rejected: Vec<Rejected> = Vec::new();
        let (mut venues, mut observations) = (0usize, 0usize);
        for item in items {
            let checked: Result<usize, String> = item
                .get("venue")
                .ok_or_else(|| "no venue".to_owned())
                .and_then(sources::decode_value::<OutdoorVenue>)
                .and_then(|venue| {
                    check_response(&venue, item.get("response").unwrap_or(&Value::Null))
                });
            match checked {
                Ok(n) => {
                    venues += 1;
                    observations += n;
                }
                Err(reason) => rejected.push(Rejected {
                    source: DEAD_LETTER_SOURCE,
                    reason,
                    raw: item.clone(),
                }),
            }
        }
        let dead: Option<String> = write_dead_letters(
            store.as_ref(),
            DEAD_LETTER_SOURCE,
            sport.key,
            date,
            &ctx.run_id,
            &rejected,
        )
        .await?;
        let out = ValidateOutput {
            sport: sport.key.to_owned(),
            date,
            venues,
            observations,
            rejected: rejected.len(),
            records: observations,
        };
        let message: String = format!(
            "validated {} weather for {}: {} venues, {} hourly observations, {} rejected",
            sport.key, out.date, out.venues, out.observations, out.rejected
        );
        match dead {
            Some(key) => ctx.log.warn(format!("{message} → dead letters in {key}")),
            None => ctx.log.info(message),
        }
        Ok(out)
    }
}
