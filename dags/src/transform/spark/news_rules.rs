//! The rules the news scripts apply, exported from the Rust code that
//! applies them in the polars engine and the live stream: the text bounds
//! of the feed parser, each sport's team phrases (built by
//! [`TeamMatcher`] from the bundled ESPN captures) and the sentiment
//! lexicon. Like the schemas, the export is checked in (`glue/news.json`,
//! kept equal to [`export`] by a test) and shipped beside the scripts, so
//! the Python side reproduces the algorithms, never the data.

use serde_json::{json, Map, Value};
use sources::news::parse::MAX_URL;
use sources::news::TeamMatcher;
use sources::text::{MAX_NAME, MAX_TITLE};
use sources::SPORTS;

use crate::live::news::{LEXICON, NEGATIONS, NEGATION_REACH, NORMALISATION_ALPHA};

/// Bumped when the file's shape (not its data) changes.
pub const FORMAT_VERSION: u32 = 1;

/// `glue/news.json`'s text: pretty JSON with a final newline.
pub fn export() -> Result<String, sources::SourceError> {
    let mut teams: Map<String, Value> = Map::new();
    for sport in SPORTS {
        let matcher = TeamMatcher::for_sport(sport.key)?;
        let phrases: Vec<Value> = matcher
            .phrases()
            .map(|(phrase, team, location)| json!([phrase, team, location]))
            .collect();
        teams.insert(
            sport.key.to_owned(),
            json!({"teams": matcher.teams(), "phrases": phrases}),
        );
    }
    let lexicon: Vec<Value> = LEXICON.iter().map(|(w, s)| json!([w, s])).collect();
    let file = json!({
        "version": FORMAT_VERSION,
        "limits": {"max_title": MAX_TITLE, "max_name": MAX_NAME, "max_url": MAX_URL},
        "sentiment": {
            "lexicon": lexicon,
            "negations": NEGATIONS,
            "negation_reach": NEGATION_REACH,
            "alpha": NORMALISATION_ALPHA,
        },
        "teams": teams,
    });
    let mut text = serde_json::to_string_pretty(&file).expect("JSON of plain values");
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new capture, lexicon word or limit without re-exporting would
    /// have the Spark engine match and score differently from polars.
    #[test]
    fn the_checked_in_news_rules_are_the_rust_ones() {
        assert_eq!(
            super::super::scripts::NEWS_RULES,
            export().expect("team names of the bundled captures"),
            "glue/news.json is stale: run `betflow glue news-rules > glue/news.json`"
        );
    }
}
