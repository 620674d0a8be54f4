//! Feed documents → [`FeedItem`]s: RSS and Atom through feed-rs, NewsAPI
//! JSON by hand. Each article is checked on its own, so one without a link
//! or a date is rejected with that reason and its neighbours are kept.

use chrono::{DateTime, Utc};
use feed_rs::model::{Entry, Feed, Link};
use reqwest::Url;
use serde_json::{json, Value};

use super::{item_id, FeedItem};
use crate::error::SourceError;
use crate::text::{self, MAX_NAME, MAX_TITLE};
use crate::{lenient, Validated};

/// Longest link accepted, in bytes (browsers' and CDNs' common limit).
pub const MAX_URL: usize = 2_048;

/// `Rejected::source` of an RSS/Atom entry.
pub const RSS_SOURCE: &str = "news.rss";
/// `Rejected::source` of a NewsAPI article.
pub const NEWSAPI_SOURCE: &str = "news.newsapi";

/// Parses an RSS 0.x/1.0/2.0 or Atom document fetched from `feed_url`.
/// `Err` only when the bytes are not a feed at all.
pub fn parse_feed(bytes: &[u8], feed_url: &str) -> Result<Validated<FeedItem>, SourceError> {
    let feed: Feed = feed_rs::parser::parse(bytes).map_err(|e| SourceError::Decode {
        api: super::API,
        what: feed_url.to_owned(),
        path: ".".to_owned(),
        message: e.to_string(),
    })?;
    let outlet: String = feed
        .title
        .as_ref()
        .map(|t| clean(&t.content))
        // Out of the name bounds, the feed is named by its host instead:
        // every article carries the outlet, and stream decoding refuses
        // one out of bounds.
        .filter(|t| !t.is_empty() && text::check(t, MAX_NAME).is_ok())
        .or_else(|| host(feed_url))
        .unwrap_or_else(|| feed_url.to_owned());
    let mut out: Validated<FeedItem> = Validated::default();
    for entry in &feed.entries {
        match entry_item(entry, &outlet) {
            Ok(item) => out.good.push(item),
            Err(reason) => out.reject(RSS_SOURCE, reason, &entry_json(entry)),
        }
    }
    Ok(out)
}

/// The article's link: the first `alternate` (or untyped) link, else any.
fn link(links: &[Link]) -> Option<&str> {
    links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| links.first())
        .map(|l| l.href.trim())
        .filter(|h| !h.is_empty())
}

fn entry_item(entry: &Entry, outlet: &str) -> Result<FeedItem, String> {
    let url: &str = link(&entry.links).ok_or("no link")?;
    let url: String = http_url(url)?;
    // RSS has pubDate only; Atom requires `updated` and makes `published`
    // optional. feed-rs leaves a date it cannot parse as None.
    let published_at = entry
        .published
        .or(entry.updated)
        .ok_or("no date (pubDate/published/updated missing or unparseable)")?;
    let title: String = entry
        .title
        .as_ref()
        .map(|t| clean(&t.content))
        .filter(|t| !t.is_empty())
        .ok_or("no title")?;
    let title: String = text::field("title", &title, MAX_TITLE)?;
    let summary: Option<String> = entry
        .summary
        .as_ref()
        .map(|t| clean(&t.content))
        .or_else(|| {
            entry
                .content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .map(clean)
        })
        .and_then(summary_text);
    Ok(FeedItem {
        item_id: item_id(&url),
        url,
        title,
        summary,
        published_at,
        source: outlet.to_owned(),
    })
}

/// What a rejected entry held, for the dead-letter record (feed-rs does not
/// keep the entry's XML).
fn entry_json(entry: &Entry) -> Value {
    json!({
        "id": entry.id,
        "title": entry.title.as_ref().map(|t| &t.content),
        "links": entry.links.iter().map(|l| &l.href).collect::<Vec<_>>(),
        "published": entry.published.map(|t| t.to_rfc3339()),
        "updated": entry.updated.map(|t| t.to_rfc3339()),
        "summary": entry.summary.as_ref().map(|t| &t.content),
    })
}

/// Parses a NewsAPI response (`{status, totalResults, articles: […]}`)
/// fetched from `feed`.
pub fn parse_newsapi(body: &Value, feed: &str) -> Result<Validated<FeedItem>, String> {
    if let Some(status) = body.get("status").and_then(Value::as_str) {
        if status != "ok" {
            let message = body.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(format!("{feed}: NewsAPI status {status:?}: {message}"));
        }
    }
    let articles = body
        .get("articles")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{feed}: no `articles` list"))?;
    let mut out: Validated<FeedItem> = Validated::default();
    for a in articles {
        match article_item(a, feed) {
            Ok(item) => out.good.push(item),
            Err(reason) => out.reject(NEWSAPI_SOURCE, reason, a),
        }
    }
    Ok(out)
}

fn article_item(a: &Value, feed: &str) -> Result<FeedItem, String> {
    let text = |k: &str| a.get(k).and_then(Value::as_str).map(clean);
    let url: String = text("url").filter(|u| !u.is_empty()).ok_or("no link")?;
    let url: String = http_url(&url)?;
    let published_at: DateTime<Utc> = a
        .get("publishedAt")
        .and_then(Value::as_str)
        .and_then(lenient::parse_time)
        .ok_or("no date (publishedAt missing or unparseable)")?;
    let outlet: String = a
        .pointer("/source/name")
        .and_then(Value::as_str)
        .map(clean)
        .filter(|s| !s.is_empty() && text::check(s, MAX_NAME).is_ok())
        .or_else(|| host(&url))
        .unwrap_or_else(|| feed.to_owned());
    let title: String = text("title")
        .map(|t| strip_outlet(&t, &outlet))
        .filter(|t| !t.is_empty())
        .ok_or("no title")?;
    let title: String = text::field("title", &title, MAX_TITLE)?;
    Ok(FeedItem {
        item_id: item_id(&url),
        url,
        title,
        summary: text("description").and_then(summary_text),
        published_at,
        source: outlet,
    })
}

/// NewsAPI appends " - {outlet}" to headlines; the outlet has its own column.
fn strip_outlet(title: &str, outlet: &str) -> String {
    title
        .strip_suffix(outlet)
        .and_then(|t| t.strip_suffix(" - "))
        .unwrap_or(title)
        .trim()
        .to_owned()
}

/// A summary within the text bounds: a long one is cut at
/// [`MAX_TITLE`] characters (it only feeds the sentiment lexicon and a
/// tooltip); one holding NUL or bidi overrides is dropped.
fn summary_text(s: String) -> Option<String> {
    let cut: String = match s.char_indices().nth(MAX_TITLE) {
        Some((at, _)) => s[..at].to_owned(),
        None => s,
    };
    text::bounded(&cut, MAX_TITLE)
        .ok()
        .filter(|s| !s.is_empty())
}

/// `url` if it is absolute http(s) and at most [`MAX_URL`] long, else why not.
fn http_url(url: &str) -> Result<String, String> {
    if url.len() > MAX_URL {
        return Err(format!(
            "link is {} bytes long (at most {MAX_URL})",
            url.len()
        ));
    }
    text::check(url, MAX_URL).map_err(|p| format!("link {p}"))?;
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(url.to_owned()),
        _ => Err(format!("link {url:?} is not an absolute http(s) URL")),
    }
}

fn host(url: &str) -> Option<String> {
    Url::parse(url).ok()?.host_str().map(str::to_owned)
}

/// Text without HTML tags or entities' markup, on one line: feeds put HTML
/// in descriptions (`<p>…</p>`, links), which would otherwise reach
/// headlines on dashboards and the sentiment lexicon.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A tag opens with a letter, `/` or `!`; "3 < 4" is text.
            '<' if !in_tag
                && chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!')) =>
            {
                in_tag = true;
            }
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    // One pass over every named and numeric entity: `&amp;lt;` is the text
    // `&lt;`, not `<`, and `&#8217;` is a right quote.
    let decoded = html_escape::decode_html_entities(&out);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_tags_entities_and_extra_space() {
        assert_eq!(
            clean("<p>Brazilian  legend\n Pele &amp; co</p>"),
            "Brazilian legend Pele & co"
        );
        assert_eq!(clean("a<b>b</b>c"), "a b c");
        assert_eq!(clean("3 < 4 is <i>true</i>"), "3 < 4 is true");
    }

    #[test]
    fn entities_are_decoded_once_numeric_and_named_alike() {
        assert_eq!(clean("Brady&#8217;s return"), "Brady\u{2019}s return");
        assert_eq!(clean("Brady&#x2019;s return"), "Brady\u{2019}s return");
        assert_eq!(
            clean("caf&eacute; &mdash; 5&nbsp;pts"),
            "caf\u{e9} \u{2014} 5 pts"
        );
        // Escaped markup stays text, decoded one level only.
        assert_eq!(clean("&amp;lt;b&amp;gt; tag"), "&lt;b&gt; tag");
        assert_eq!(clean("&lt;b&gt; is a tag"), "<b> is a tag");
        assert_eq!(clean("Rock &amp; Roll"), "Rock & Roll");
    }

    #[test]
    fn newsapi_titles_lose_the_outlet_suffix() {
        assert_eq!(strip_outlet("Big win - CNN", "CNN"), "Big win");
        assert_eq!(
            strip_outlet("Big win - Yahoo Sports", "CNN"),
            "Big win - Yahoo Sports"
        );
    }

    #[test]
    fn titles_out_of_bounds_are_rejected_and_long_summaries_cut() {
        let article = |title: &str, description: &str| {
            json!({"url": "https://example.com/a", "publishedAt": "2024-09-08T12:00:00Z",
                   "title": title, "description": description})
        };
        let long: String = "word ".repeat(1_000);
        let body = json!({"articles": [
            article("Chiefs win\u{0}", "x"),
            article(&"t".repeat(MAX_TITLE + 1), "x"),
            article("Chiefs win\u{202E}", "x"),
            article("Chiefs win", &long),
        ]});
        let v = parse_newsapi(&body, "newsapi").expect("articles");
        let reasons: Vec<&str> = v.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "title holds a NUL character",
                "title is 2001 characters long (at most 2000)",
                "title holds the bidirectional override U+202E",
            ]
        );
        let summary = v.good[0].summary.as_deref().expect("summary");
        assert_eq!(summary.chars().count(), MAX_TITLE - 1, "cut, then trimmed");
    }

    #[test]
    fn newsapi_articles_without_link_or_date_are_rejected() {
        let body = json!({"status": "ok", "articles": [
            {"source": {"name": "CNN"}, "title": "A - CNN", "url": "https://cnn.com/a",
             "publishedAt": "2023-03-05T12:29:00Z", "description": "<b>x</b>"},
            {"source": {"name": "CNN"}, "title": "B", "url": null, "publishedAt": "2023-03-05T12:29:00Z"},
            {"source": {"name": "CNN"}, "title": "C", "url": "https://cnn.com/c", "publishedAt": "soon"},
            {"source": {"name": "CNN"}, "title": "D", "url": "ftp://cnn.com/d", "publishedAt": "2023-03-05T12:29:00Z"},
        ]});
        let v = parse_newsapi(&body, "replay://x").unwrap();
        assert_eq!(v.good.len(), 1);
        assert_eq!(v.good[0].title, "A");
        assert_eq!(v.good[0].summary.as_deref(), Some("x"));
        assert_eq!(v.good[0].source, "CNN");
        let reasons: Vec<&str> = v.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons[0], "no link");
        assert!(reasons[1].starts_with("no date"), "{reasons:?}");
        assert!(
            reasons[2].contains("not an absolute http(s) URL"),
            "{reasons:?}"
        );
        assert!(v.rejected.iter().all(|r| r.source == NEWSAPI_SOURCE));
        assert!(
            parse_newsapi(&json!({"status": "error", "message": "bad key"}), "x")
                .unwrap_err()
                .contains("bad key")
        );
    }
}
