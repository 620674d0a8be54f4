//! Offline sources of the live topics: a sports day of the replay source
//! (bundled captures, else the offline season generator) as the messages a
//! live poller would have published, in event time, so the whole real-time
//! path runs without network access (`betflow stream replay`).
//!
//! - [`odds`]: the historical odds snapshots the batch DAG stores, one
//!   message per event and snapshot;
//! - [`games`]: each game's score progression through the day (scheduled,
//!   in progress period by period, final), built as ESPN scoreboard events
//!   and read back through the ESPN validation, as a live poll would be;
//! - [`weather`]: hourly conditions around kickoff at each outdoor venue,
//!   from the same generated archive the weather DAG stores;
//! - [`news`]: the recorded headlines moved onto the day, one message per
//!   article and team it names, as `news_daily` reads them.

pub mod games;
pub mod news;
pub mod odds;
pub mod weather;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use thiserror::Error;

use crate::live::envelope::{encode, Envelope, Keyed, Kind, Topic, SCHEMA_VERSION};
use crate::live::games::GameUpdate;
use crate::live::news::NewsItem;
use crate::live::odds::OddsPayload;
use crate::live::weather::WeatherUpdate;
use crate::Sport;

/// `source` of replayed envelopes.
pub const SOURCE: &str = "replay";

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("replaying {sport} {what} of {day}: {message}")]
    Source {
        sport: &'static str,
        what: &'static str,
        day: NaiveDate,
        message: String,
    },
}

impl ReplayError {
    fn source(sport: &Sport, what: &'static str, day: NaiveDate, e: impl ToString) -> Self {
        ReplayError::Source {
            sport: sport.key,
            what,
            day,
            message: e.to_string(),
        }
    }
}

/// One message's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Replayed {
    Odds(OddsPayload),
    Games(GameUpdate),
    Weather(WeatherUpdate),
    News(NewsItem),
}

/// One message to publish at `time` (its event time).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayMessage {
    pub time: DateTime<Utc>,
    pub sport: &'static Sport,
    pub payload: Replayed,
}

impl ReplayMessage {
    pub fn kind(&self) -> Kind {
        match self.payload {
            Replayed::Odds(_) => Kind::Odds,
            Replayed::Games(_) => Kind::Games,
            Replayed::Weather(_) => Kind::Weather,
            Replayed::News(_) => Kind::News,
        }
    }

    pub fn topic(&self) -> Topic {
        Topic::new(self.kind(), self.sport)
    }

    /// The message key: event id (odds), game id (games, weather) or team id (news).
    pub fn key(&self) -> &str {
        match &self.payload {
            Replayed::Odds(p) => p.message_key(),
            Replayed::Games(p) => p.message_key(),
            Replayed::Weather(p) => p.message_key(),
            Replayed::News(p) => p.message_key(),
        }
    }

    /// (key, value) of the envelope from the replay source, stamped with
    /// `ingest_time` (publish time).
    pub fn encode(
        &self,
        ingest_time: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
        self.encode_from(SOURCE, ingest_time)
    }

    /// (key, value) of the envelope, naming `source` (the polled API's
    /// name, or `replay`).
    pub fn encode_from(
        &self,
        source: &str,
        ingest_time: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
        match &self.payload {
            Replayed::Odds(p) => self.encode_with(source, p, ingest_time),
            Replayed::Games(p) => self.encode_with(source, p, ingest_time),
            Replayed::Weather(p) => self.encode_with(source, p, ingest_time),
            Replayed::News(p) => self.encode_with(source, p, ingest_time),
        }
    }

    fn encode_with<P: Serialize + Keyed + Clone>(
        &self,
        source: &str,
        payload: &P,
        ingest_time: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
        encode(&Envelope {
            schema_version: SCHEMA_VERSION,
            source: source.to_string(),
            sport: self.sport.key.to_string(),
            kind: self.kind(),
            event_time: self.time,
            ingest_time,
            payload: payload.clone(),
        })
    }
}

/// Everything replayed for one sport and day.
#[derive(Debug, Default)]
pub struct DayReplay {
    pub messages: Vec<ReplayMessage>,
    /// Source records the validation refused (not published).
    pub rejected: usize,
}

/// The odds, games, weather and news messages of `sport` on sports day
/// `day`; odds snapshots every `odds_minutes`.
pub fn replay_day(
    sport: &'static Sport,
    day: NaiveDate,
    odds_minutes: u32,
) -> Result<DayReplay, ReplayError> {
    let mut out: DayReplay = odds::replay(sport, day, odds_minutes)?;
    let games = games::replay(sport, day)?;
    out.messages
        .extend(weather::replay(sport, day, &games.records)?);
    out.messages.extend(games.messages);
    out.rejected += games.rejected;
    let (news, rejected) = news::replay(sport, day)?;
    out.messages.extend(news);
    out.rejected += rejected;
    Ok(out)
}
