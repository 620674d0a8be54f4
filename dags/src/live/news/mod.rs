//! The news processor: a lexicon sentiment score per article and per-team
//! windows of article count and mean sentiment (5 minutes by default:
//! docs/topics.md#consumers).
//!
//! The lexicon is BetFlow's own, written by hand for sports headlines (words
//! that move a team's outlook: injuries, suspensions, wins, returns), not a
//! general-purpose list: general lexicons score "hit", "shot" or "killer" as
//! negative, which in a box score they are not. The normalisation
//! `s / sqrt(s² + 15)` follows the idea published with VADER (Hutto and
//! Gilbert, 2014) to map an unbounded sum into (−1, 1); no VADER data is used.

pub mod processor;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::live::envelope::Keyed;
use streaming::window::Aggregate;

pub use processor::{NewsOutput, NewsProcessor};

/// Processor name in the serving tables' `processor` column.
pub const PROCESSOR: &str = "news";

/// A news message's payload: one article matched to one team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewsItem {
    /// Hash of the url (docs/data-model.md#identifiers), so a re-fetched
    /// article counts once.
    pub item_id: String,
    pub team_id: String,
    pub source: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

impl Keyed for NewsItem {
    /// News is keyed by team (docs/topics.md#message-keys): a team's articles
    /// stay in order on one partition.
    fn message_key(&self) -> &str {
        &self.team_id
    }

    fn text_problem(&self) -> Option<String> {
        use crate::live::text::{field, optional, prose};
        use sources::text::{MAX_ID, MAX_NAME, MAX_TITLE};
        field("item id", &self.item_id, MAX_ID)
            .and_then(|()| field("team id", &self.team_id, MAX_ID))
            .and_then(|()| optional("source", self.source.as_deref(), MAX_NAME))
            .and_then(|()| prose("title", &self.title, MAX_TITLE))
            .and_then(|()| {
                self.description
                    .as_deref()
                    .map_or(Ok(()), |d| prose("description", d, MAX_TITLE))
            })
            .err()
    }
}

/// Word weights in [−1, 1]; absent words are neutral.
pub const LEXICON: &[(&str, f64)] = &[
    ("win", 0.6),
    ("wins", 0.6),
    ("won", 0.6),
    ("victory", 0.7),
    ("dominant", 0.8),
    ("dominates", 0.8),
    ("streak", 0.3),
    ("healthy", 0.6),
    ("returns", 0.5),
    ("return", 0.4),
    ("cleared", 0.6),
    ("upgraded", 0.5),
    ("star", 0.3),
    ("record", 0.3),
    ("clinch", 0.8),
    ("clinches", 0.8),
    ("comeback", 0.6),
    ("boost", 0.6),
    ("extension", 0.4),
    ("signs", 0.3),
    ("strong", 0.5),
    ("best", 0.6),
    ("lose", -0.6),
    ("loses", -0.6),
    ("lost", -0.6),
    ("loss", -0.6),
    ("defeat", -0.7),
    ("injury", -0.7),
    ("injured", -0.7),
    ("out", -0.3),
    ("doubtful", -0.5),
    ("questionable", -0.3),
    ("suspended", -0.8),
    ("suspension", -0.8),
    ("torn", -0.9),
    ("surgery", -0.8),
    ("ruled", -0.2),
    ("slump", -0.6),
    ("benched", -0.5),
    ("fired", -0.7),
    ("eliminated", -0.8),
    ("collapse", -0.8),
    ("struggles", -0.5),
    ("worst", -0.7),
    ("concussion", -0.8),
    ("sidelined", -0.7),
    ("downgraded", -0.5),
    ("trade", -0.1),
];

/// Words that flip the next sentiment word within three tokens.
pub const NEGATIONS: &[&str] = &[
    "not", "no", "never", "without", "isn't", "won't", "didn't", "unlikely",
];

/// How many tokens before a sentiment word a negation reaches.
pub const NEGATION_REACH: usize = 3;

/// The constant of `s / sqrt(s² + α)` that maps a sum into (−1, 1).
pub const NORMALISATION_ALPHA: f64 = 15.0;

fn weight(word: &str) -> Option<f64> {
    LEXICON.iter().find(|(w, _)| *w == word).map(|(_, s)| *s)
}

/// Sentiment of a text in (−1, 1): 0 when no lexicon word appears.
pub fn sentiment(text: &str) -> f64 {
    let lower: String = text.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|t| !t.is_empty())
        .collect();
    let mut sum: f64 = 0.0;
    for (i, token) in tokens.iter().enumerate() {
        let Some(w) = weight(token) else { continue };
        let negated: bool = tokens[i.saturating_sub(NEGATION_REACH)..i]
            .iter()
            .any(|t| NEGATIONS.contains(t));
        sum += if negated { -w } else { w };
    }
    sum / (sum * sum + NORMALISATION_ALPHA).sqrt()
}

/// Article count and mean sentiment of one team over a window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewsWindow {
    seen: BTreeSet<String>,
    #[serde(with = "streaming::exact")]
    total: f64,
}

/// A closed news window: the `serving.news_sentiment` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewsWindowOutput {
    pub article_count: u64,
    pub mean_sentiment: f64,
}

impl Aggregate for NewsWindow {
    type Event = NewsItem;
    type Output = NewsWindowOutput;

    fn add(&mut self, _event_time: DateTime<Utc>, item: &NewsItem) {
        if !self.seen.insert(item.item_id.clone()) {
            return;
        }
        let text: String = match &item.description {
            Some(d) => format!("{} {d}", item.title),
            None => item.title.clone(),
        };
        self.total += sentiment(&text);
    }

    fn finish(&self) -> Option<NewsWindowOutput> {
        let n: u64 = self.seen.len() as u64;
        (n > 0).then(|| NewsWindowOutput {
            article_count: n,
            mean_sentiment: self.total / n as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, title: &str) -> NewsItem {
        NewsItem {
            item_id: id.into(),
            team_id: "t".into(),
            source: None,
            title: title.into(),
            description: None,
        }
    }

    #[test]
    fn scores_signs_negation_and_bounds() {
        assert_eq!(sentiment("Team announces new jersey design"), 0.0);
        // injury (−0.7) + out (−0.3) = −1.0 → −1/sqrt(16) = −0.25.
        assert!(
            (sentiment("Star guard injury, out for season")
                - (0.3 - 1.0) / ((0.7_f64).powi(2) + 15.0).sqrt())
            .abs()
                < 1e-12
        );
        assert!((sentiment("Injury, out") + 0.25).abs() < 1e-12);
        assert!(sentiment("Celtics win fifth straight, dominant victory") > 0.3);
        assert!(sentiment("Quarterback not injured after scare") > 0.0);
        let extreme: f64 = sentiment(&"torn surgery suspended ".repeat(50));
        assert!(extreme > -1.0 && extreme < -0.99);
    }

    #[test]
    fn window_mean_dedupes_articles() {
        let mut w = NewsWindow::default();
        let t = DateTime::from_timestamp(0, 0).expect("epoch");
        w.add(t, &item("a", "Injury, out"));
        w.add(t, &item("a", "Injury, out"));
        w.add(t, &item("b", "New jersey"));
        let out = w.finish().expect("articles");
        assert_eq!(out.article_count, 2);
        assert!((out.mean_sentiment + 0.125).abs() < 1e-12);
        assert!(NewsWindow::default().finish().is_none());
    }
}
