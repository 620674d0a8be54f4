//! The real ingestion tasks of `news_daily`: fetch a sport's news feeds
//! into the raw lake, then read them back and validate them article by
//! article.
//!
//! One raw object per sport and day holds every feed fetched, as a JSON
//! array of [`StoredFeed`]s (the XML as text, or the NewsAPI document). A
//! feed that could not be fetched is stored with its error and the others
//! are kept; only when every feed fails does the fetch fail (and retry).
//!
//! Feeds list recent articles whatever the date, so the day's news is the
//! articles published on the run's sports day (New York); the others are
//! counted (`outside_day`) and left to the run of their own day. Live feeds
//! keep no history: a backfill of old dates in live mode finds no articles.

use super::{StoredPayload, ValidateFrom};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use orchestrator::{TaskContext, TaskError, TypedSpec, TypedTask};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{lake_failed, mapped_sport, per_sport, Settings, SharedSettings, SourceMode};
use crate::lake::{write_dead_letters, write_raw, Format, Kind, ObjectStore, RawKey};
use crate::{sports_day, Sport};
use sources::news::{
    self, FeedFormat, FeedItem, NewsClient, StoredFeed, TeamMatcher, DEAD_LETTER_SOURCE,
};
use sources::replay::Replay;
use sources::Rejected;

/// XCom of an instance of `sport.fetch_news`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchOutput {
    pub sport: String,
    pub date: NaiveDate,
    /// Raw-lake key of the object written.
    pub key: String,
    /// Size of the stored payload (before gzip).
    pub bytes: usize,
    /// `replay` or `rss`: the `{source}` of the key.
    pub source: String,
    /// Feeds requested, and those whose fetch failed (stored with the error).
    pub feeds: usize,
    pub failed_feeds: usize,
}

/// XCom of an instance of `sport.validate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateOutput {
    pub sport: String,
    pub date: NaiveDate,
    pub feeds: usize,
    /// Valid articles published on the sports day (distinct urls).
    pub items: usize,
    /// Valid articles of other days, left to their own day's run.
    pub outside_day: usize,
    /// Articles (or whole feeds) sent to the dead-letter area.
    pub rejected: usize,
    /// Of `items`: those naming at least one of the sport's teams, and not.
    pub matched_items: usize,
    pub unmatched_items: usize,
    /// What the downstream steps count: the day's articles.
    pub records: usize,
}

/// The articles of a stored news object that belong to sports day `date`.
#[derive(Debug, Default)]
pub struct DayItems {
    pub feeds: usize,
    /// The day's valid articles, first occurrence of each url, feed order.
    pub items: Vec<FeedItem>,
    pub outside_day: usize,
    pub rejected: Vec<Rejected>,
}

/// Splits a stored news object (a JSON array of [`StoredFeed`]s) into the
/// day's articles and rejections. A feed that cannot be read at all is one
/// rejection holding the whole stored feed.
pub fn read_day(payload: &Value, date: NaiveDate) -> Result<DayItems, String> {
    let feeds = payload
        .as_array()
        .ok_or("the news object is not a JSON array of feeds")?;
    let mut out = DayItems {
        feeds: feeds.len(),
        ..DayItems::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for raw in feeds {
        let checked = sources::decode_value::<StoredFeed>(raw)
            .map_err(|e| format!("not a stored feed {e}"))
            .and_then(|feed| feed.items());
        match checked {
            Ok(v) => {
                out.rejected.extend(v.rejected);
                for item in v.good {
                    if sports_day(item.published_at) != date {
                        out.outside_day += 1;
                    } else if seen.insert(item.item_id.clone()) {
                        out.items.push(item);
                    }
                }
            }
            Err(reason) => out.rejected.push(Rejected {
                source: DEAD_LETTER_SOURCE,
                reason,
                raw: raw.clone(),
            }),
        }
    }
    Ok(out)
}

/// `sport.fetch_news`, one instance per sport: the sport's feeds of the day,
/// stored as fetched.
#[derive(Debug, Clone)]
pub struct FetchNews {
    settings: SharedSettings,
}

impl FetchNews {
    pub fn new(settings: SharedSettings) -> Self {
        Self { settings }
    }

    /// The spec, mapped over the run's sports in `pool`.
    pub fn spec(self, id: &str, doc: String, pool: &str) -> TypedSpec<FetchOutput> {
        per_sport(TypedSpec::new(id, self).doc(doc), pool)
    }
}

/// The replayed feeds of sports day `date`: the recorded NewsAPI responses
/// moved onto it (see [`Replay::news`]); the same for every sport.
pub fn replay_day(date: NaiveDate) -> Result<Vec<StoredFeed>, TaskError> {
    Ok(Replay
        .news(date)?
        .into_iter()
        .map(|f| {
            let body: Option<Value> = serde_json::from_slice(&f.body).ok();
            StoredFeed {
                feed: f.url,
                format: FeedFormat::Newsapi,
                body,
                error: None,
            }
        })
        .collect())
}

#[async_trait]
impl TypedTask for FetchNews {
    type Output = FetchOutput;

    async fn run(&self, ctx: TaskContext) -> Result<FetchOutput, TaskError> {
        let sport: &Sport = mapped_sport(&ctx)?;
        let settings: &Settings = &self.settings;
        let date: NaiveDate = sports_day(ctx.data_interval.start);
        let feeds: Vec<StoredFeed> = match &settings.mode {
            SourceMode::Replay => replay_day(date)?,
            SourceMode::Live { .. } => {
                let urls: &[String] = settings
                    .news_feeds
                    .get(sport.key)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if urls.is_empty() {
                    ctx.log.warn(format!(
                        "no news feed configured for {} ({}{}): storing an empty day",
                        sport.key,
                        news::FEEDS_VAR_PREFIX,
                        sport.key.to_ascii_uppercase()
                    ));
                }
                let client = NewsClient::production();
                let mut out: Vec<StoredFeed> = Vec::with_capacity(urls.len());
                for url in urls {
                    match client.fetch_feed(url).await {
                        Ok(f) => out.push(StoredFeed::xml(&f)),
                        Err(e) => {
                            ctx.log.warn(format!(
                                "{} feed {}: {e}; kept as failed",
                                sport.key,
                                news::masked(url)
                            ));
                            out.push(StoredFeed::failed(url, FeedFormat::Xml, &e));
                        }
                    }
                }
                if !out.is_empty() && out.iter().all(|f| f.error.is_some()) {
                    let errors: Vec<&str> = out.iter().filter_map(|f| f.error.as_deref()).collect();
                    return Err(TaskError::msg(format!(
                        "every {} news feed failed: {}",
                        sport.key,
                        errors.join("; ")
                    )));
                }
                out
            }
        };
        let body: Vec<u8> = serde_json::to_vec(&feeds)?;
        let source: &str = settings.mode.lake_source_for(news::API);
        let key = RawKey::new(
            sport.key,
            Kind::News,
            date,
            source,
            &ctx.run_id,
            Format::Json,
        )?;
        let store: Arc<dyn ObjectStore> = settings.lake.open().map_err(lake_failed)?;
        let written: String = write_raw(store.as_ref(), &key, &body)
            .await
            .map_err(lake_failed)?;
        let failed: usize = feeds.iter().filter(|f| f.error.is_some()).count();
        ctx.log.info(format!(
            "fetched {} {} news feeds for {date} ({failed} failed, {} bytes) into {}/{written}",
            feeds.len(),
            sport.key,
            body.len(),
            store.location(),
        ));
        let out = FetchOutput {
            sport: sport.key.to_owned(),
            date,
            key: written,
            bytes: body.len(),
            source: source.to_owned(),
            feeds: feeds.len(),
            failed_feeds: failed,
        };
        Ok(out)
    }
}

/// `sport.validate`, one instance per fetched sport: the stored feeds, checked article by article.
#[derive(Debug, Clone)]
pub struct ValidateNews(ValidateFrom<FetchOutput>);

super::validate_task!(ValidateNews, FetchOutput, ValidateOutput);

#[async_trait]
impl TypedTask for ValidateNews {
    type Output = ValidateOutput;

    async fn run(&self, ctx: TaskContext) -> Result<ValidateOutput, TaskError> {
        let StoredPayload {
            sport,
            store,
            key,
            date,
            payload,
        } = self.0.load(&ctx, "news feeds").await?;
        let day = read_day(&payload, date)
            .map_err(|e| TaskError::msg(format!("{} news object {key}: {e}", sport.key)))?;
        let matcher = TeamMatcher::for_sport(sport.key)?;
        let matched: usize = day
            .items
            .iter()
            .filter(|i| !matcher.matches(&i.text()).is_empty())
            .count();
        let dead: Option<String> = write_dead_letters(
            store.as_ref(),
            DEAD_LETTER_SOURCE,
            sport.key,
            date,
            &ctx.run_id,
            &day.rejected,
        )
        .await?;
        let out = ValidateOutput {
            sport: sport.key.to_owned(),
            date,
            feeds: day.feeds,
            items: day.items.len(),
            outside_day: day.outside_day,
            rejected: day.rejected.len(),
            matched_items: matched,
            unmatched_items: day.items.len() - matched,
            records: day.items.len(),
        };
        let message: String = format!(
            "validated {} news for {}: {} feeds, {} articles of the day ({} name a team, {} none), {} of other days, {} rejected",
            sport.key,
            out.date,
            out.feeds,
            out.items,
            out.matched_items,
            out.unmatched_items,
            out.outside_day,
            out.rejected
        );
        match dead {
            Some(key) => ctx.log.warn(format!("{message} → dead letters in {key}")),
            None => ctx.log.info(message),
        }
        Ok(out)
    }
}
