//! Live pollers: with `BETFLOW_SOURCES=live`, one stream task per source
//! polls the real API on its own interval and publishes what it found:
//!
//! - `odds_poller`: The Odds API's current odds per sport (needs
//!   `ODDS_API_KEY`), every event every poll, stamped with the poll time
//!   like a historical snapshot;
//! - `games_poller`: ESPN's current scoreboards, a game only when its state
//!   changed since the last poll;
//! - `weather_poller`: OpenWeather's current conditions at the outdoor
//!   venues of games from 3 hours before kickoff to 4 after (needs
//!   `OPENWEATHER_API_KEY`);
//! - `news_poller`: the sports' RSS/Atom feeds, each article once (by its
//!   url hash), stamped with the time BetFlow first saw it: feeds publish
//!   late and out of order, and an article from yesterday is news now.
//!
//! Records a source sends that fail validation go to the lake's dead-letter
//! area with their reason, as in the batch DAGs; the rest are published.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use orchestrator::{StreamContext, StreamTask, TaskError};
use serde_json::json;
use sqlx::postgres::PgPool;
use tokio::sync::Mutex;
use tokio::time::MissedTickBehavior;

use super::lease;
use super::{send_group, Sent, SharedProducer};
use crate::ingest::weather::seed_coordinates;
use crate::ingest::Settings;
use crate::lake::{write_dead_letters, ObjectStore};
use crate::live::envelope::{Kind, Topic};
use crate::live::games::GameUpdate;
use crate::live::odds::OddsPayload;
use crate::live::replay::{news::messages as news_messages, ReplayMessage, Replayed};
use crate::live::weather::WeatherUpdate;
use crate::settings::PollPeriods;
use crate::{sports_day, Sport};
use lakehouse::LakeSettings;
use sources::espn::{self, EspnClient, GameRecord};
use sources::news::{self as news_source, NewsClient, TeamMatcher};
use sources::odds_api::{self, OddsApiClient};
use sources::weather::{
    self as weather_source, OpenWeatherClient, OPENWEATHER_BASE_URL, OPENWEATHER_KEY_VAR,
    OPENWEATHER_RATE,
};
use sources::{HttpConfig, Rejected};

/// What one poll found.
#[derive(Debug, Default)]
pub struct Polled {
    pub messages: Vec<ReplayMessage>,
    /// Records that failed validation, per sport, for the dead-letter area.
    pub rejected: Vec<(&'static Sport, Rejected)>,
    /// Requests that failed (the others' results are still published).
    pub errors: Vec<String>,
}

/// One live source: what it polls and how its messages are named.
#[async_trait]
pub trait LiveSource: Send + Sync + 'static {
    /// Task id, lease name and log name.
    const NAME: &'static str;
    /// The envelopes' `source`.
    const SOURCE: &'static str;
    /// The topic family it publishes to.
    const KIND: Kind;

    async fn poll(&self, sports: &[&'static Sport], at: DateTime<Utc>) -> Polled;

    /// Called once `polled` is delivered, to remember what was published
    /// (a failed delivery is polled and sent again).
    async fn delivered(&self, _polled: &[ReplayMessage]) {}
}

/// Polls current odds of every sport.
pub struct OddsSource {
    pub client: OddsApiClient,
}

#[async_trait]
impl LiveSource for OddsSource {
    const NAME: &'static str = "odds_poller";
    const SOURCE: &'static str = odds_api::API;
    const KIND: Kind = Kind::Odds;

    async fn poll(&self, sports: &[&'static Sport], at: DateTime<Utc>) -> Polled {
        let mut out = Polled::default();
        for &sport in sports {
            match self.client.odds(sport).await {
                Ok(found) => {
                    if let Some(q) = &found.quota {
                        tracing::info!(sport = sport.key, remaining = ?q.remaining, used = ?q.used, "odds API quota");
                    }
                    let format = self.client.odds_format();
                    out.messages
                        .extend(found.value.good.into_iter().map(|event| ReplayMessage {
                            time: at,
                            sport,
                            payload: Replayed::Odds(OddsPayload {
                                odds_format: format,
                                event,
                            }),
                        }));
                    out.rejected
                        .extend(found.value.rejected.into_iter().map(|r| (sport, r)));
                }
                Err(e) => out.errors.push(format!("{} odds: {e}", sport.key)),
            }
        }
        out
    }
}

/// Polls ESPN's current scoreboards; publishes a game when it changed.
pub struct GamesSource {
    pub client: EspnClient,
    last: Mutex<HashMap<String, GameUpdate>>,
}

impl GamesSource {
    pub fn new(client: EspnClient) -> Self {
        Self {
            client,
            last: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl LiveSource for GamesSource {
    const NAME: &'static str = "games_poller";
    const SOURCE: &'static str = espn::API;
    const KIND: Kind = Kind::Games;

    async fn poll(&self, sports: &[&'static Sport], at: DateTime<Utc>) -> Polled {
        let mut out = Polled::default();
        let last = self.last.lock().await;
        for &sport in sports {
            match self.client.games(sport, None).await {
                Ok(found) => {
                    for g in &found.good {
                        let update = GameUpdate::from(g);
                        if last.get(&update.game_id) != Some(&update) {
                            out.messages.push(ReplayMessage {
                                time: at,
                                sport,
                                payload: Replayed::Games(update),
                            });
                        }
                    }
                    out.rejected
                        .extend(found.rejected.into_iter().map(|r| (sport, r)));
                }
                Err(e) => out.errors.push(format!("{} scoreboard: {e}", sport.key)),
            }
        }
        out
    }

    async fn delivered(&self, published: &[ReplayMessage]) {
        let mut last = self.last.lock().await;
        for m in published {
            if let Replayed::Games(u) = &m.payload {
                last.insert(u.game_id.clone(), u.clone());
            }
        }
        // Finished games stop changing; forget them after a day's polls.
        if last.len() > 10_000 {
            last.retain(|_, u| u.status != crate::live::games::GameStatus::Final);
        }
    }
}

/// How long before kickoff and after it a venue's weather is polled.
pub const WEATHER_BEFORE: TimeDelta = TimeDelta::hours(3);
pub const WEATHER_AFTER: TimeDelta = TimeDelta::hours(4);

/// Polls current weather at the outdoor venues of today's games.
pub struct WeatherSource {
    pub scoreboards: EspnClient,
    pub client: OpenWeatherClient,
}

/// The games of `games` whose weather matters at `at`: outdoor venues with
/// known coordinates, from [`WEATHER_BEFORE`] kickoff to [`WEATHER_AFTER`].
pub fn weather_games(games: &[GameRecord], at: DateTime<Utc>) -> Vec<(&GameRecord, f64, f64)> {
    games
        .iter()
        .filter(|g| at >= g.start_time - WEATHER_BEFORE && at <= g.start_time + WEATHER_AFTER)
        .filter_map(|g| {
            let venue = g.venue.as_ref().filter(|v| v.indoor == Some(false))?;
            let (lat, lon) = seed_coordinates(&venue.venue_id)?;
            Some((g, lat, lon))
        })
        .collect()
}

#[async_trait]
impl LiveSource for WeatherSource {
    const NAME: &'static str = "weather_poller";
    const SOURCE: &'static str = weather_source::OPENWEATHER_API;
    const KIND: Kind = Kind::Weather;

    async fn poll(&self, sports: &[&'static Sport], at: DateTime<Utc>) -> Polled {
        let mut out = Polled::default();
        for &sport in sports {
            let games = match self.scoreboards.games(sport, None).await {
                Ok(found) => found.good,
                Err(e) => {
                    out.errors.push(format!("{} scoreboard: {e}", sport.key));
                    continue;
                }
            };
            for (g, lat, lon) in weather_games(&games, at) {
                let Some(venue) = &g.venue else { continue };
                match self.client.current(lat, lon).await {
                    Ok((_, Some(o))) => out.messages.push(ReplayMessage {
                        time: at,
                        sport,
                        payload: Replayed::Weather(WeatherUpdate::observed(
                            &g.game_id,
                            &venue.venue_id,
                            o,
                        )),
                    }),
                    Ok((reading, None)) => out.rejected.push((
                        sport,
                        Rejected {
                            source: "openweather.current",
                            reason: format!("no usable observation for venue {}", venue.venue_id),
                            raw: serde_json::to_value(&reading).unwrap_or_default(),
                        },
                    )),
                    Err(e) => out
                        .errors
                        .push(format!("weather at venue {}: {e}", venue.venue_id)),
                }
            }
        }
        out
    }
}

/// Polls each sport's feeds; publishes each article once per team it names.
pub struct NewsSource {
    pub client: NewsClient,
    pub feeds: BTreeMap<String, Vec<String>>,
    /// Item ids published, with when they were seen: kept a week, so feeds
    /// that list the same articles for days publish them once.
    seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// How long a published article is remembered.
pub const NEWS_MEMORY: TimeDelta = TimeDelta::days(7);

impl NewsSource {
    pub fn new(client: NewsClient, feeds: BTreeMap<String, Vec<String>>) -> Self {
        Self {
            client,
            feeds,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl LiveSource for NewsSource {
    const NAME: &'static str = "news_poller";
    const SOURCE: &'static str = news_source::API;
    const KIND: Kind = Kind::News;

    async fn poll(&self, sports: &[&'static Sport], at: DateTime<Utc>) -> Polled {
        let mut out = Polled::default();
        let seen = self.seen.lock().await;
        for &sport in sports {
            let matcher: &TeamMatcher = match TeamMatcher::for_sport(sport.key) {
                Ok(m) => m,
                Err(e) => {
                    out.errors.push(format!("{} teams: {e}", sport.key));
                    continue;
                }
            };
            let mut fresh: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
            for url in self.feeds.get(sport.key).into_iter().flatten() {
                match self.client.fetch_items(url).await {
                    Ok(found) => {
                        for item in found.good {
                            if seen.contains_key(&item.item_id)
                                || !fresh.insert(item.item_id.clone())
                            {
                                continue;
                            }
                            let mut item = item;
                            item.published_at = at;
                            out.messages.extend(news_messages(sport, matcher, &item));
                        }
                        out.rejected
                            .extend(found.rejected.into_iter().map(|r| (sport, r)));
                    }
                    Err(e) => out.errors.push(format!(
                        "{} feed {}: {e}",
                        sport.key,
                        news_source::masked(url)
                    )),
                }
            }
        }
        out
    }

    async fn delivered(&self, published: &[ReplayMessage]) {
        let mut seen = self.seen.lock().await;
        let now: DateTime<Utc> = Utc::now();
        for m in published {
            if let Replayed::News(item) = &m.payload {
                seen.insert(item.item_id.clone(), m.time);
            }
        }
        seen.retain(|_, at| now - *at < NEWS_MEMORY);
    }
}

/// The stream task that runs a [`LiveSource`] every `interval`.
pub struct Poller<S: LiveSource> {
    source: S,
    producer: Arc<SharedProducer>,
    sports: Vec<&'static Sport>,
    interval: Duration,
    lake: LakeSettings,
}

impl<S: LiveSource> Poller<S> {
    pub fn new(
        source: S,
        producer: Arc<SharedProducer>,
        sports: Vec<&'static Sport>,
        interval: Duration,
        lake: LakeSettings,
    ) -> Self {
        Self {
            source,
            producer,
            sports,
            interval,
            lake,
        }
    }

    /// Writes a poll's rejected records to the lake's dead-letter area, one
    /// object per sport and poll.
    async fn dead_letter(
        &self,
        store: &dyn ObjectStore,
        at: DateTime<Utc>,
        rejected: Vec<(&'static Sport, Rejected)>,
    ) -> Result<usize, TaskError> {
        let mut by_sport: BTreeMap<&'static str, Vec<Rejected>> = BTreeMap::new();
        for (sport, r) in rejected {
            by_sport.entry(sport.key).or_default().push(r);
        }
        let run_id: String = format!("{}-{}", S::NAME, at.format("%Y%m%dT%H%M%SZ"));
        let mut n: usize = 0;
        for (sport, records) in by_sport {
            n += records.len();
            write_dead_letters(store, S::SOURCE, sport, sports_day(at), &run_id, &records)
                .await
                .map_err(|e| fail(S::NAME, "writing dead letters", e))?;
        }
        Ok(n)
    }
}

fn fail(name: &str, what: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::msg(format!("{name}: {what}: {e}"))
}

#[async_trait]
impl<S: LiveSource> StreamTask for Poller<S> {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        let pool: PgPool = ctx.database().clone();
        let standby = || ctx.report(json!({"role": "standby", "mode": "live", "lease": S::NAME}));
        let Some(mut lease) = lease::acquire(
            &pool,
            S::NAME,
            &ctx.cancel,
            Duration::from_secs(15),
            standby,
        )
        .await
        .map_err(|e| fail(S::NAME, "taking the publisher lease", e))?
        else {
            return Ok(());
        };
        let store: Arc<dyn ObjectStore> = (self.lake)
            .open()
            .map_err(|e| fail(S::NAME, "opening the lake", e))?;
        let producer = self
            .producer
            .get()
            .await
            .map_err(|e| fail(S::NAME, "creating the producer", e))?;
        let topics: Vec<Topic> = self.sports.iter().map(|s| Topic::new(S::KIND, s)).collect();
        producer
            .ensure_topics(&topics)
            .await
            .map_err(|e| fail(S::NAME, "creating topics", e))?;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut polls, mut published, mut dead_lettered, mut errors) =
            (0u64, 0usize, 0usize, 0usize);
        loop {
            tokio::select! {
                () = ctx.cancel.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            lease
                .check()
                .await
                .map_err(|e| fail(S::NAME, "publisher lease lost", e))?;
            let at: DateTime<Utc> = Utc::now();
            let polled: Polled = self.source.poll(&self.sports, at).await;
            polls += 1;
            for e in &polled.errors {
                tracing::warn!(poller = S::NAME, "{e}");
            }
            errors += polled.errors.len();
            dead_lettered += self
                .dead_letter(store.as_ref(), at, polled.rejected)
                .await?;
            let messages: Vec<ReplayMessage> = polled.messages;
            let sent: Sent = send_group(producer, S::SOURCE, messages.clone(), Utc::now()).await;
            if let Some((_, why)) = sent.failed.first() {
                return Err(fail(
                    S::NAME,
                    &format!(
                        "{} of {} message(s) undelivered",
                        sent.failed.len(),
                        messages.len()
                    ),
                    why,
                ));
            }
            published += sent.delivered();
            self.source.delivered(&messages).await;
            ctx.report(json!({
                "role": "leader",
                "mode": "live",
                "polls": polls,
                "last_poll": at.to_rfc3339_opts(SecondsFormat::Secs, true),
                "last_poll_messages": messages.len(),
                "published": published,
                "dead_lettered": dead_lettered,
                "request_errors": errors,
                "interval_secs": self.interval.as_secs(),
            }));
        }
    }
}

/// Stream tasks by id.
pub type StreamTasks = Vec<(&'static str, Arc<dyn StreamTask>)>;

/// What every poller of a deployment shares.
struct Shared {
    producer: Arc<SharedProducer>,
    sports: Vec<&'static Sport>,
    lake: LakeSettings,
    periods: PollPeriods,
}

impl Shared {
    /// `source` as the stream task `S::NAME`, on its kind's interval.
    fn task<S: LiveSource>(&self, source: S) -> (&'static str, Arc<dyn StreamTask>) {
        let poller = Poller::new(
            source,
            self.producer.clone(),
            self.sports.clone(),
            self.periods.of(S::KIND),
            self.lake.clone(),
        );
        (S::NAME, Arc::new(poller))
    }
}

/// The live pollers of `settings`: games and news always (ESPN and RSS need
/// no key), odds with `ODDS_API_KEY`, weather with `OPENWEATHER_API_KEY`.
/// Returns the tasks and, for each source left out, why.
pub fn pollers(
    settings: &Settings,
    producer: Arc<SharedProducer>,
    sports: Vec<&'static Sport>,
) -> (StreamTasks, Vec<String>) {
    let shared = Shared {
        producer,
        sports,
        lake: settings.lake.clone(),
        periods: settings.live.poll_every,
    };
    let mut tasks: StreamTasks = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let espn_url: String = match &settings.mode {
        crate::ingest::SourceMode::Live { base_url } => base_url.clone(),
        crate::ingest::SourceMode::Replay => espn::BASE_URL.to_string(),
    };
    let espn_client = || EspnClient::new(HttpConfig::new(espn_url.clone(), espn::RATE_PER_SECOND));

    match espn_client() {
        Ok(client) => tasks.push(shared.task(GamesSource::new(client))),
        Err(e) => skipped.push(format!("{}: {e}", GamesSource::NAME)),
    }
    let odds = match &settings.odds_api_key {
        Some(key) => OddsApiClient::new(
            HttpConfig::new(settings.odds_api_url.clone(), odds_api::RATE_PER_SECOND),
            key.clone(),
        )
        .map_err(|e| e.to_string()),
        None => Err(format!("{} is not set", odds_api::KEY_VAR)),
    };
    match odds {
        Ok(client) => tasks.push(shared.task(OddsSource { client })),
        Err(why) => skipped.push(format!("{}: {why}", OddsSource::NAME)),
    }
    let weather = match &settings.live.openweather_key {
        Some(key) => OpenWeatherClient::new(
            HttpConfig::new(OPENWEATHER_BASE_URL, OPENWEATHER_RATE),
            key.clone(),
        )
        .map_err(|e| e.to_string()),
        None => Err(format!("{OPENWEATHER_KEY_VAR} is not set")),
    };
    match (weather, espn_client().map_err(|e| e.to_string())) {
        (Ok(client), Ok(scoreboards)) => tasks.push(shared.task(WeatherSource {
            scoreboards,
            client,
        })),
        (Err(e), _) | (_, Err(e)) => skipped.push(format!("{}: {e}", WeatherSource::NAME)),
    }
    let feeds = settings.news_feeds.clone();
    tasks.push(shared.task(NewsSource::new(NewsClient::production(), feeds)));
    (tasks, skipped)
}
