//! News: RSS/Atom feeds of sports outlets (ESPN's per-league feeds by
//! default, see [`crate::Sport::news_feeds`]) and, offline, the recorded
//! NewsAPI responses the replay source serves.
//!
//! Both shapes become one typed [`FeedItem`] per article ([`parse`]); an
//! article without a link, a date or a title is [`Rejected`](super::Rejected)
//! with the reason, and the rest of the feed is kept. Articles are assigned
//! to teams by [`teams::TeamMatcher`] when silver is modelled.
//!
//! A day's raw object is a JSON array of [`StoredFeed`]s, one per feed
//! fetched: the feed's bytes (XML as a string, NewsAPI JSON as is) or the
//! error that fetching it ended with, so one dead feed does not lose the
//! others' articles and is still on record.

pub mod parse;
pub mod teams;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::SourceError;
use super::http::{Fetched, HttpClient, HttpConfig};
use super::Validated;

pub use parse::{parse_feed, parse_newsapi};
pub use teams::{TeamMatch, TeamMatcher};

/// Name of the live feed client in logs, errors and the raw keys'
/// `{source}` (`raw/historical/{sport}/news/date=…/rss-{run}.json.gz`).
pub const API: &str = "rss";

/// Feed requests per second: outlets publish feeds to be polled, but a
/// backfill of many dates must not look like a crawl.
pub const RATE_PER_SECOND: f64 = 1.0;

/// `{source}` of the news dead-letter keys (the sport is its own segment).
pub const DEAD_LETTER_SOURCE: &str = "news.items";

/// Variable prefix of a sport's feed list: `BETFLOW_NEWS_FEEDS_NFL`, …
pub const FEEDS_VAR_PREFIX: &str = "BETFLOW_NEWS_FEEDS_";

/// One article, as every news source is reduced to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedItem {
    /// [`item_id`] of `url`: the same article in two feeds (or fetched on
    /// two nights) is one item.
    pub item_id: String,
    /// The article's link, absolute http(s).
    pub url: String,
    /// Headline, tags stripped and whitespace collapsed.
    pub title: String,
    /// Description or summary, likewise cleaned; `None` when the feed has none.
    pub summary: Option<String>,
    pub published_at: DateTime<Utc>,
    /// Outlet: NewsAPI's `source.name`, else the feed's title, else its host.
    pub source: String,
}

impl FeedItem {
    /// What sentiment and team matching read: the headline and the summary.
    pub fn text(&self) -> String {
        match &self.summary {
            Some(s) => format!("{} {s}", self.title),
            None => self.title.clone(),
        }
    }
}

/// The news item id (docs/data-model.md#identifiers): the first 128 bits
/// of SHA-256 of the trimmed URL, in hex. Stable across Rust versions and
/// processes (unlike std's hasher), so the stream and batch sides agree on
/// it.
pub fn item_id(url: &str) -> String {
    let digest = Sha256::digest(url.trim().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// How a stored feed's body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    /// RSS 0.x/1.0/2.0 or Atom, as text.
    Xml,
    /// A NewsAPI `/v2/top-headlines` or `/v2/everything` response.
    Newsapi,
}

/// One feed of a day's raw news object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFeed {
    /// The feed's URL (secrets masked) or `replay://…`.
    pub feed: String,
    pub format: FeedFormat,
    /// The body: a string for XML, the JSON document for NewsAPI. Absent
    /// when the fetch failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Why the fetch failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoredFeed {
    /// A fetched XML feed. Bytes are kept as UTF-8 text (ESPN's feeds are
    /// UTF-8); invalid sequences become U+FFFD rather than failing the day.
    pub fn xml(fetched: &Fetched) -> Self {
        StoredFeed {
            feed: fetched.url.clone(),
            format: FeedFormat::Xml,
            body: Some(Value::String(
                String::from_utf8_lossy(&fetched.body).into_owned(),
            )),
            error: None,
        }
    }

    /// A fetch that failed.
    pub fn failed(feed: &str, format: FeedFormat, error: &SourceError) -> Self {
        StoredFeed {
            feed: masked(feed),
            format,
            body: None,
            error: Some(error.to_string()),
        }
    }

    /// The feed's articles: typed items and rejected ones. `Err` when the
    /// whole feed is unusable (its fetch failed, or it is not a feed).
    pub fn items(&self) -> Result<Validated<FeedItem>, String> {
        if let Some(e) = &self.error {
            return Err(format!("fetching {} failed: {e}", self.feed));
        }
        let body = self
            .body
            .as_ref()
            .ok_or_else(|| format!("{}: no body stored", self.feed))?;
        match (self.format, body) {
            (FeedFormat::Xml, Value::String(xml)) => {
                parse_feed(xml.as_bytes(), &self.feed).map_err(|e| e.to_string())
            }
            (FeedFormat::Xml, _) => Err(format!("{}: XML body is not a string", self.feed)),
            (FeedFormat::Newsapi, json) => parse_newsapi(json, &self.feed),
        }
    }
}

/// Reads RSS/Atom feeds over HTTP with the shared plumbing (timeouts,
/// retries honouring `Retry-After`, rate limit, masked URLs).
#[derive(Debug, Clone)]
pub struct NewsClient {
    /// Settings every feed is fetched with; `base_url` is replaced by the
    /// feed's URL.
    template: HttpConfig,
}

impl NewsClient {
    pub fn new(template: HttpConfig) -> Self {
        Self { template }
    }

    /// Production settings: 10 s timeout, 4 attempts, [`RATE_PER_SECOND`].
    pub fn production() -> Self {
        Self::new(HttpConfig::new(String::new(), RATE_PER_SECOND))
    }

    /// The untouched bytes of the feed at `url`. Feeds live on many hosts at
    /// full URLs, so each gets a client of its own on the same settings.
    pub async fn fetch_feed(&self, url: &str) -> Result<Fetched, SourceError> {
        let config = HttpConfig {
            base_url: url.to_owned(),
            ..self.template.clone()
        };
        HttpClient::new(API, config)?.get("", &[]).await
    }

    /// The feed at `url`, fetched and parsed.
    pub async fn fetch_items(&self, url: &str) -> Result<Validated<FeedItem>, SourceError> {
        let fetched = self.fetch_feed(url).await?;
        parse_feed(&fetched.body, &fetched.url)
    }
}

/// `url` with secret query values (`token`, `apikey`, …) masked, as every
/// URL BetFlow logs or stores.
pub fn masked(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| url.to_owned(), |u| super::http::mask_url(&u))
}

/// `BETFLOW_NEWS_FEEDS_{SPORT}`: the feeds of `sport`, comma-separated.
pub fn feeds_var(sport: &crate::sport::Sport) -> String {
    format!("{FEEDS_VAR_PREFIX}{}", sport.key.to_ascii_uppercase())
}

/// The feeds configured for `sport`: the list `value` of [`feeds_var`]
/// (blank entries ignored) when set, else the sport's defaults. Set to an
/// empty value to fetch no feed for the sport.
pub fn feeds_from(sport: &crate::sport::Sport, value: Option<String>) -> Vec<String> {
    match value {
        Some(list) => split_feeds(&list),
        None => sport.news_feeds.iter().map(|f| (*f).to_owned()).collect(),
    }
}

/// `a, b,,c` → `[a, b, c]`.
pub fn split_feeds(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_hash_the_trimmed_url() {
        let id = item_id("https://example.com/a");
        assert_eq!(id.len(), 32);
        assert_eq!(id, item_id("  https://example.com/a\n"));
        assert_ne!(id, item_id("https://example.com/A"));
        // SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223.
        assert_eq!(item_id("abc"), "ba7816bf8f01cfea414140de5dae2223");
    }

    #[test]
    fn feed_lists_split_on_commas() {
        assert_eq!(
            split_feeds(" https://a/x ,, https://b/y,"),
            ["https://a/x", "https://b/y"]
        );
        assert!(split_feeds("").is_empty());
    }

    #[test]
    fn a_failed_fetch_is_one_unusable_feed() {
        let feed = StoredFeed {
            feed: "https://a/x".into(),
            format: FeedFormat::Xml,
            body: None,
            error: Some("HTTP 503".into()),
        };
        let e = feed.items().unwrap_err();
        assert!(e.contains("HTTP 503"), "{e}");
        let json = serde_json::to_value(&feed).unwrap();
        assert_eq!(json["format"], "xml");
        assert!(json.get("body").is_none());
    }
}
