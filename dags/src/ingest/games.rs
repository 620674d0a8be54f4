//! The real ingestion tasks of `historical_games_daily`: fetch each
//! selected sport's ESPN scoreboard for the run's sports day into the raw
//! lake, then read it back and validate it, sending bad events to the
//! dead-letter area. Both are mapped over the run's sports.
//!
//! Fetch and validate are separate tasks so a validation bug can be fixed
//! and re-run (`tasks clear --task sport.validate`) without calling the API
//! again: validate reads the object fetch wrote, never the network.

use super::{StoredPayload, ValidateFrom};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use orchestrator::{TaskContext, TaskError, TypedSpec, TypedTask};
use serde::{Deserialize, Serialize};

use super::{
    lake_failed, mapped_sport, per_sport, source_failed, BodyCheck, Settings, SharedSettings,
    SourceMode, REPLAY_SEED,
};
use crate::lake::{write_dead_letters, write_raw, Format, Kind, ObjectStore, RawKey};
use crate::{sports_day, Sport};
use sources::espn::{self, EspnClient, GameState};
use sources::generator::SeasonGenerator;
use sources::replay::Replay;
use sources::{Fetched, HttpConfig};

/// `{source}` of the games' dead-letter keys (the sport is its own segment).
pub const DEAD_LETTER_SOURCE: &str = "espn.scoreboard";

/// XCom of an instance of `sport.fetch_scoreboard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchOutput {
    pub sport: String,
    pub date: NaiveDate,
    /// Raw-lake key of the object written.
    pub key: String,
    /// Size of the untouched payload (before gzip).
    pub bytes: usize,
    /// `replay` or `espn`: the `{source}` of the key.
    pub source: String,
    /// Where the bytes came from (`replay://…` or the masked HTTP URL).
    pub url: String,
}

/// XCom of an instance of `sport.validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateOutput {
    pub sport: String,
    pub date: NaiveDate,
    /// Events that passed validation.
    pub games: usize,
    /// Events sent to the dead-letter area.
    pub rejected: usize,
    /// Valid games that are over (`post`): what silver.games will keep.
    pub final_games: usize,
}

/// `sport.fetch_scoreboard`, one instance per sport: the sport's scoreboard of
/// the sports day, stored untouched in the raw lake.
#[derive(Debug, Clone)]
pub struct FetchScoreboard {
    settings: SharedSettings,
}

impl FetchScoreboard {
    pub fn new(settings: SharedSettings) -> Self {
        Self { settings }
    }

    /// The spec, mapped over the run's sports in `pool`.
    pub fn spec(self, id: &str, doc: String, pool: &str) -> TypedSpec<FetchOutput> {
        per_sport(TypedSpec::new(id, self).doc(doc), pool)
    }
}

/// The scoreboard bytes of `sport` on `date` from `mode`.
async fn fetch(mode: &SourceMode, sport: &Sport, date: NaiveDate) -> Result<Fetched, TaskError> {
    match mode {
        SourceMode::Live { base_url } => {
            let client = EspnClient::new(HttpConfig::new(base_url.clone(), espn::RATE_PER_SECOND))
                .map_err(source_failed)?;
            let fetched = client
                .fetch_scoreboard(sport, Some(date))
                .await
                .map_err(source_failed)?;
            Ok(fetched)
        }
        SourceMode::Replay => replay_scoreboard(sport, date),
    }
}

/// The replayed scoreboard of `sport` on `date`: what
/// a `sport.fetch_scoreboard` instance stores in replay mode (also what
/// `betflow stream replay` turns into live score updates). A real capture
/// beats a generated day; the generator fills every other date so
/// backfills over whole seasons have games.
pub fn replay_scoreboard(sport: &Sport, date: NaiveDate) -> Result<Fetched, TaskError> {
    if Replay.scoreboard_dates(sport.key)?.contains(&date) {
        return Ok(Replay.scoreboard(sport.key, date)?);
    }
    Ok(SeasonGenerator::new(REPLAY_SEED)?.scoreboard(sport, date)?)
}

#[async_trait]
impl TypedTask for FetchScoreboard {
    type Output = FetchOutput;

    async fn run(&self, ctx: TaskContext) -> Result<FetchOutput, TaskError> {
        let sport: &Sport = mapped_sport(&ctx)?;
        let settings: &Settings = &self.settings;
        let date: NaiveDate = sports_day(ctx.data_interval.start);
        let fetched: Fetched = fetch(&settings.mode, sport, date).await?;
        if settings.mode.is_live() {
            BodyCheck::new(&ctx, settings, DEAD_LETTER_SOURCE, sport.key, date)
                .require_json(&fetched, "the scoreboard")
                .await?;
        }
        let source: &str = settings.mode.lake_source();
        let key = RawKey::new(
            sport.key,
            Kind::Games,
            date,
            source,
            &ctx.run_id,
            Format::Json,
        )?;
        let store: Arc<dyn ObjectStore> = settings.lake.open().map_err(lake_failed)?;
        let written: String = write_raw(store.as_ref(), &key, &fetched.body)
            .await
            .map_err(lake_failed)?;
        ctx.log.info(format!(
            "fetched {} scoreboard for {date} from {} ({} bytes) into {}/{written}",
            sport.key,
            fetched.url,
            fetched.body.len(),
            store.location(),
        ));
        let out = FetchOutput {
            sport: sport.key.to_owned(),
            date,
            key: written,
            bytes: fetched.body.len(),
            source: source.to_owned(),
            url: fetched.url,
        };
        Ok(out)
    }
}

/// `sport.validate`, one instance per fetched sport: the stored scoreboard,
/// checked event by event.
#[derive(Debug, Clone)]
pub struct ValidateScoreboard(ValidateFrom<FetchOutput>);

super::validate_task!(ValidateScoreboard, FetchOutput, ValidateOutput);

#[async_trait]
impl TypedTask for ValidateScoreboard {
    type Output = ValidateOutput;

    async fn run(&self, ctx: TaskContext) -> Result<ValidateOutput, TaskError> {
        let StoredPayload {
            sport,
            store,
            date,
            payload,
            ..
        } = self.0.load(&ctx, "scoreboard").await?;
        // The stored payload will not change: a shape we cannot read fails at once.
        let checked = espn::validate_scoreboard(sport.key, &payload).map_err(TaskError::fatal)?;
        let dead: Option<String> = write_dead_letters(
            store.as_ref(),
            DEAD_LETTER_SOURCE,
            sport.key,
            date,
            &ctx.run_id,
            &checked.rejected,
        )
        .await?;
        let out = ValidateOutput {
            sport: sport.key.to_owned(),
            date,
            games: checked.good.len(),
            rejected: checked.rejected.len(),
            final_games: checked
                .good
                .iter()
                .filter(|g| g.state == GameState::Post)
                .count(),
        };
        let message: String = format!(
            "validated {} scoreboard for {}: {} games ({} final), {} rejected",
            sport.key, out.date, out.games, out.final_games, out.rejected
        );
        match dead {
            Some(key) => ctx.log.warn(format!("{message} → dead letters in {key}")),
            None => ctx.log.info(message),
        }
        Ok(out)
    }
}
