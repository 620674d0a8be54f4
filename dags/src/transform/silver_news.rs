//! silver.news: the day's articles, deduplicated, one row per team each
//! names (or one row without a team), with a sentiment score.
//!
//! Team matching and scoring are per-article Rust functions, not column
//! expressions: the bronze rows are read out, matched with the sport's
//! [`TeamMatcher`] and scored with the streaming side's lexicon
//! ([`crate::live::news::sentiment`]: BetFlow's own hand-written list of
//! sports-headline words with weights, negation within three words, and
//! VADER's `s/√(s²+15)` to map the sum into (−1, 1); no VADER data), so the
//! nightly and the live figures of an article agree.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;

use super::frame::FrameBuilder;
use sources::news::{TeamMatch, TeamMatcher};

/// One silver row.
struct Row {
    sport: String,
    date: Option<NaiveDate>,
    item_id: String,
    team: Option<TeamMatch>,
    published_at: Option<DateTime<Utc>>,
    source: String,
    title: String,
    url: String,
    sentiment: f64,
}

/// silver.news from the bronze.news rows of the days being modelled.
pub fn news(bronze: LazyFrame, run_id: &str) -> PolarsResult<DataFrame> {
    let latest = bronze
        .sort(
            ["ingested_at"],
            SortMultipleOptions::default().with_order_descending(true),
        )
        .unique_stable(Some(cols(["sport", "item_id"])), UniqueKeepStrategy::First)
        .sort(["sport", "item_id"], SortMultipleOptions::default())
        .collect()?;
    let text = |c: &str| -> PolarsResult<StringChunked> { Ok(latest.column(c)?.str()?.clone()) };
    let (sport, item, title, summary, url, outlet) = (
        text("sport")?,
        text("item_id")?,
        text("title")?,
        text("summary")?,
        text("url")?,
        text("outlet")?,
    );
    let date = latest.column("sports_date")?.cast(&DataType::Int32)?;
    let date = date.i32()?;
    let published = latest.column("published_at")?.cast(&DataType::Int64)?;
    let published = published.i64()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut matchers: BTreeMap<String, &'static TeamMatcher> = BTreeMap::new();
    let mut rows: Vec<Row> = Vec::with_capacity(latest.height());
    for i in 0..latest.height() {
        let s: &str = sport.get(i).unwrap_or_default();
        let matcher = match matchers.get(s) {
            Some(m) => *m,
            None => {
                let m = TeamMatcher::for_sport(s).map_err(|e| polars_err!(ComputeError: "{e}"))?;
                matchers.insert(s.to_owned(), m);
                m
            }
        };
        let t: &str = title.get(i).unwrap_or_default();
        let body: String = match summary.get(i) {
            Some(d) => format!("{t} {d}"),
            None => t.to_owned(),
        };
        let sentiment: f64 = crate::live::news::sentiment(&body);
        let teams: Vec<TeamMatch> = matcher.matches(&body);
        let teams: Vec<Option<TeamMatch>> = if teams.is_empty() {
            vec![None]
        } else {
            teams.into_iter().map(Some).collect()
        };
        for team in teams {
            rows.push(Row {
                sport: s.to_owned(),
                date: date
                    .get(i)
                    .map(|d| epoch + chrono::Duration::days(i64::from(d))),
                item_id: item.get(i).unwrap_or_default().to_owned(),
                team,
                published_at: published.get(i).and_then(DateTime::from_timestamp_micros),
                source: outlet.get(i).unwrap_or_default().to_owned(),
                title: t.to_owned(),
                url: url.get(i).unwrap_or_default().to_owned(),
                sentiment,
            });
        }
    }
    let team = |f: fn(&TeamMatch) -> String| rows.iter().map(move |r| r.team.as_ref().map(f));
    FrameBuilder::new()
        .str("sport", rows.iter().map(|r| Some(r.sport.clone())))
        .date("sports_date", rows.iter().map(|r| r.date))
        .str("item_id", rows.iter().map(|r| Some(r.item_id.clone())))
        .str("team_id", team(|t| t.team_id.clone()))
        .str("team_name", team(|t| t.team_name.clone()))
        .str("matched_on", team(|t| t.phrase.clone()))
        .ts("published_at", rows.iter().map(|r| r.published_at))
        .str("source", rows.iter().map(|r| Some(r.source.clone())))
        .str("title", rows.iter().map(|r| Some(r.title.clone())))
        .str("url", rows.iter().map(|r| Some(r.url.clone())))
        .f64("sentiment", rows.iter().map(|r| Some(r.sentiment)))
        .str("run_id", rows.iter().map(|_| Some(run_id)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::bronze::{news_frame, Origin};
    use sources::news::{item_id, FeedItem};

    fn item(url: &str, title: &str, summary: Option<&str>) -> FeedItem {
        FeedItem {
            item_id: item_id(url),
            url: url.into(),
            title: title.into(),
            summary: summary.map(Into::into),
            published_at: "2024-09-08T15:00:00Z".parse().unwrap(),
            source: "ESPN".into(),
        }
    }

    #[test]
    fn one_row_per_team_named_and_one_for_none() {
        let origin = Origin {
            sport: "nfl".into(),
            sports_date: NaiveDate::from_ymd_opt(2024, 9, 8).unwrap(),
            source: "replay".into(),
            raw_key: "k".into(),
            run_id: "r".into(),
            ingested_at: Utc::now(),
        };
        let items = [
            item(
                "https://x/1",
                "Eagles beat Cowboys",
                Some("A dominant victory"),
            ),
            item("https://x/2", "League announces new jersey rules", None),
            // The same article loaded twice: kept once.
            item("https://x/2", "League announces new jersey rules", None),
        ];
        let rows: Vec<(FeedItem, &Origin)> = items.into_iter().map(|i| (i, &origin)).collect();
        let bronze = news_frame(&rows).unwrap();
        let silver = news(bronze.lazy(), "run-1").unwrap();
        assert_eq!(silver.height(), 3, "{silver}");
        let teams: Vec<Option<&str>> = silver
            .column("team_name")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert!(teams.contains(&Some("Philadelphia Eagles")), "{teams:?}");
        assert!(teams.contains(&Some("Dallas Cowboys")), "{teams:?}");
        assert!(teams.contains(&None), "{teams:?}");
        let sentiment = silver.column("sentiment").unwrap().f64().unwrap();
        assert!(sentiment.iter().flatten().all(|s| (-1.0..1.0).contains(&s)));
        let def = &crate::transform::silver_tables::NEWS;
        let names: Vec<&str> = silver
            .get_column_names()
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(names, def.column_names());
    }
}
