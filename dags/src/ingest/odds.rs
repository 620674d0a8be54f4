//! The real ingestion tasks of `historical_odds_daily`: fetch a sport's
//! Odds API historical snapshots over the run's sports day into the raw
//! lake, then read them back and validate them event by event.
//!
//! One raw object per sport and day holds every snapshot of the day as a
//! JSON array whose elements are the untouched response bodies, in time
//! order. Snapshots are taken every `odds_snapshot_minutes` (default 60)
//! from New York midnight: the API keeps one every 5–10 minutes, but each
//! costs credits, so a day is a bounded 24 calls per sport by default.

use super::{StoredPayload, ValidateFrom};
use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use orchestrator::{TaskContext, TaskError, TypedSpec, TypedTask};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    lake_failed, mapped_sport, per_sport, source_failed, BodyCheck, Settings, SharedSettings,
    SourceMode, REPLAY_SEED,
};
use crate::lake::{write_dead_letters, write_raw, Format, Kind, ObjectStore, RawKey};
use crate::{sports_day, Sport};
use sources::generator::SeasonGenerator;
use sources::odds_api::{self, OddsApiClient, OddsFormat};
use sources::replay::Replay;
use sources::{Fetched, HttpConfig, Quota, Rejected};

/// `{source}` of the odds' dead-letter keys.
pub const DEAD_LETTER_SOURCE: &str = "odds_api.historical";

/// Prices are requested (live) and generated/recorded (replay) as American.
pub(crate) const FORMAT: OddsFormat = OddsFormat::American;

/// XCom of an instance of `sport.fetch_odds_snapshots`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchOutput {
    pub sport: String,
    pub date: NaiveDate,
    /// Raw-lake key of the object written.
    pub key: String,
    /// Size of the stored payload (before gzip).
    pub bytes: usize,
    /// `replay` or `odds_api`: the `{source}` of the key.
    pub source: String,
    /// Snapshots requested and snapshots stored (replay drops repeats of
    /// one recorded snapshot and times before the first one).
    pub requested: usize,
    pub snapshots: usize,
    /// Where the first snapshot came from (`replay://…` or the masked URL).
    pub url: Option<String>,
    /// Credits the calls cost and the quota left after the last (live only).
    pub credits_used: Option<f64>,
    pub credits_remaining: Option<f64>,
}

/// XCom of an instance of `sport.validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateOutput {
    pub sport: String,
    pub date: NaiveDate,
    pub snapshots: usize,
    /// Valid events summed over snapshots (an event in 24 snapshots is 24).
    pub events: usize,
    /// Distinct valid event ids of the day.
    pub distinct_events: usize,
    /// Prices of the valid events (h2h, spreads, totals): silver's grain.
    pub quotes: usize,
    /// Events (or whole malformed snapshots) sent to the dead-letter area.
    pub rejected: usize,
    /// Distinct bookmakers quoting the valid events.
    pub bookmakers: usize,
    /// What the downstream steps count: the quotes.
    pub records: usize,
}

/// Snapshot times of sports day `date`: New York midnight, then every
/// `minutes`, up to (not including) the next midnight.
pub fn snapshot_times(date: NaiveDate, minutes: u32) -> Vec<DateTime<Utc>> {
    let local = |d: NaiveDate| {
        New_York
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (local(date), date.succ_opt().and_then(local)) else {
        return Vec::new();
    };
    let step = Duration::minutes(i64::from(minutes.max(1)));
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        out.push(t);
        t += step;
    }
    out
}

/// `sport.fetch_odds_snapshots`, one instance per sport: the sport's snapshots
/// of the day, stored untouched.
#[derive(Debug, Clone)]
pub struct FetchOddsSnapshots {
    settings: SharedSettings,
}

impl FetchOddsSnapshots {
    pub fn new(settings: SharedSettings) -> Self {
        Self { settings }
    }

    /// The spec, mapped over the run's sports in `pool`.
    pub fn spec(self, id: &str, doc: String, pool: &str) -> TypedSpec<FetchOutput> {
        per_sport(TypedSpec::new(id, self).doc(doc), pool)
    }
}

/// The replayed snapshots of `sport` at `times`: the recorded odds when an
/// American-price capture (what replay's historical snapshots are built
/// from) has events commencing that sports day, else the season
/// generator's (deterministic either way).
fn replay(
    sport: &Sport,
    date: NaiveDate,
    times: &[DateTime<Utc>],
) -> Result<Vec<Fetched>, TaskError> {
    let mut out: Vec<Fetched> = Vec::new();
    let recorded: bool = Replay
        .odds(sport.key, Some(date))?
        .iter()
        .any(|(format, _)| *format == OddsFormat::American);
    if recorded {
        for t in times {
            if let Some(f) = Replay.historical_odds(sport.key, *t)? {
                // One capture answers every later time: keep it once.
                if out.last().is_none_or(|last| last.body != f.body) {
                    out.push(f);
                }
            }
        }
    } else {
        let generator = SeasonGenerator::new(REPLAY_SEED)?;
        for t in times {
            out.push(generator.historical_odds(sport, *t)?);
        }
    }
    Ok(out)
}

/// The replayed snapshots of `sport` over sports day `date`, one every
/// `minutes`: what a `sport.fetch_odds_snapshots` instance stores in replay mode
/// (also what `betflow stream replay` publishes).
pub fn replay_day(sport: &Sport, date: NaiveDate, minutes: u32) -> Result<Vec<Fetched>, TaskError> {
    replay(sport, date, &snapshot_times(date, minutes))
}

/// The JSON array of `bodies`, each kept byte for byte.
fn json_array(bodies: &[Fetched]) -> Vec<u8> {
    let mut out: Vec<u8> =
        Vec::with_capacity(bodies.iter().map(|f| f.body.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, f) in bodies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&f.body);
    }
    out.push(b']');
    out
}

#[async_trait]
impl TypedTask for FetchOddsSnapshots {
    type Output = FetchOutput;

    async fn run(&self, ctx: TaskContext) -> Result<FetchOutput, TaskError> {
        let sport: &Sport = mapped_sport(&ctx)?;
        let settings: &Settings = &self.settings;
        let date: NaiveDate = sports_day(ctx.data_interval.start);
        let times: Vec<DateTime<Utc>> = snapshot_times(date, settings.odds_snapshot_minutes);
        let mut credits_used: Option<f64> = None;
        let mut credits_remaining: Option<f64> = None;
        let fetched: Vec<Fetched> = match &settings.mode {
            SourceMode::Replay => replay(sport, date, &times)?,
            SourceMode::Live { .. } => {
                let key = settings.odds_api_key.clone().ok_or_else(|| {
                    TaskError::msg(format!(
                        "{} is not set: live historical odds need a key (or run with BETFLOW_SOURCES=replay)",
                        odds_api::KEY_VAR
                    ))
                })?;
                let client = OddsApiClient::new(
                    HttpConfig::new(settings.odds_api_url.clone(), odds_api::RATE_PER_SECOND),
                    key,
                )
                .map_err(source_failed)?;
                let mut out: Vec<Fetched> = Vec::with_capacity(times.len());
                for t in &times {
                    let f: Fetched = client
                        .fetch_historical_odds(sport, *t)
                        .await
                        .map_err(source_failed)?;
                    BodyCheck::new(&ctx, settings, DEAD_LETTER_SOURCE, sport.key, date)
                        .require_json(&f, "an odds snapshot")
                        .await?;
                    if let Some(Quota {
                        remaining,
                        used,
                        last,
                    }) = f.quota
                    {
                        ctx.log.info(format!(
                            "odds_api {} snapshot at {t}: cost {} credits, used {}, remaining {}",
                            sport.key,
                            show(last),
                            show(used),
                            show(remaining)
                        ));
                        if let Some(cost) = last {
                            credits_used = Some(credits_used.unwrap_or(0.0) + cost);
                        }
                        credits_remaining = remaining.or(credits_remaining);
                    }
                    out.push(f);
                }
                out
            }
        };
        let body: Vec<u8> = json_array(&fetched);
        let source: &str = settings.mode.lake_source_for(odds_api::API);
        let key = RawKey::new(
            sport.key,
            Kind::Odds,
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
            "fetched {} of {} {} odds snapshots for {date} every {} min ({} bytes) into {}/{written}",
            fetched.len(),
            times.len(),
            sport.key,
            settings.odds_snapshot_minutes,
            body.len(),
            store.location(),
        ));
        let out = FetchOutput {
            sport: sport.key.to_owned(),
            date,
            key: written,
            bytes: body.len(),
            source: source.to_owned(),
            requested: times.len(),
            snapshots: fetched.len(),
            url: fetched.first().map(|f| f.url.clone()),
            credits_used,
            credits_remaining,
        };
        Ok(out)
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

/// `sport.validate`, one instance per fetched sport: the stored snapshots, checked event by event.
#[derive(Debug, Clone)]
pub struct ValidateOddsSnapshots(ValidateFrom<FetchOutput>);

super::validate_task!(ValidateOddsSnapshots, FetchOutput, ValidateOutput);

#[async_trait]
impl TypedTask for ValidateOddsSnapshots {
    type Output = ValidateOutput;

    async fn run(&self, ctx: TaskContext) -> Result<ValidateOutput, TaskError> {
        let StoredPayload {
            sport,
            store,
            key,
            date,
            payload,
        } = self.0.load(&ctx, "odds snapshots").await?;
        let snapshots: &Vec<Value> = payload.as_array().ok_or_else(|| {
            TaskError::msg(format!(
                "{} odds object {} is not a JSON array of snapshots; nothing validated",
                sport.key, key
            ))
        })?;
        let mut rejected: Vec<Rejected> = Vec::new();
        let mut events: usize = 0;
        let mut quotes: usize = 0;
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let mut books: BTreeSet<String> = BTreeSet::new();
        for snapshot in snapshots {
            match odds_api::validate_historical(snapshot, FORMAT) {
                Ok((_, checked)) => {
                    for e in &checked.good {
                        events += 1;
                        quotes += e.quotes(FORMAT).len();
                        ids.insert(e.id.clone());
                        books.extend(e.bookmakers.iter().map(|b| b.key.clone()));
                    }
                    rejected.extend(checked.rejected);
                }
                // A snapshot without its timestamp or data list is one bad
                // record: kept whole, the other snapshots still count.
                Err(e) => rejected.push(Rejected {
                    source: DEAD_LETTER_SOURCE,
                    reason: e.to_string(),
                    raw: snapshot.clone(),
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
            snapshots: snapshots.len(),
            events,
            distinct_events: ids.len(),
            quotes,
            rejected: rejected.len(),
            bookmakers: books.len(),
            records: quotes,
        };
        let message: String = format!(
            "validated {} odds for {}: {} snapshots, {} events ({} distinct), {} quotes from {} bookmakers, {} rejected",
            sport.key,
            out.date,
            out.snapshots,
            out.events,
            out.distinct_events,
            out.quotes,
            out.bookmakers,
            out.rejected
        );
        match dead {
            Some(key) => ctx.log.warn(format!("{message} → dead letters in {key}")),
            None => ctx.log.info(message),
        }
        Ok(out)
    }
}
