//! Replayed news: the recorded NewsAPI headlines moved onto the sports day
//! (what `news_daily` stores in replay mode), one message per article and
//! team it names, at the article's publication time.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::{ReplayError, ReplayMessage, Replayed};
use crate::ingest::news::replay_day;
use crate::live::news::NewsItem;
use crate::{sports_day, Sport};
use sources::news::{FeedItem, TeamMatcher};

/// Messages of the day's articles naming one of `sport`'s teams, and the
/// count of feed entries the validation refused.
pub fn replay(
    sport: &'static Sport,
    day: NaiveDate,
) -> Result<(Vec<ReplayMessage>, usize), ReplayError> {
    let err = |e: &dyn ToString| ReplayError::source(sport, "news", day, e.to_string());
    let matcher: &TeamMatcher = TeamMatcher::for_sport(sport.key).map_err(|e| err(&e))?;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out: Vec<ReplayMessage> = Vec::new();
    let mut rejected: usize = 0;
    for feed in replay_day(day).map_err(|e| err(&e))? {
        let checked = match feed.items() {
            Ok(v) => v,
            Err(_) => {
                rejected += 1;
                continue;
            }
        };
        rejected += checked.rejected.len();
        for item in checked.good {
            if sports_day(item.published_at) != day || !seen.insert(item.item_id.clone()) {
                continue;
            }
            out.extend(messages(sport, matcher, &item));
        }
    }
    Ok((out, rejected))
}

/// One message per team `item` names: the news processor counts an article
/// once for each team it is about.
pub fn messages(
    sport: &'static Sport,
    matcher: &TeamMatcher,
    item: &FeedItem,
) -> Vec<ReplayMessage> {
    matcher
        .matches(&item.text())
        .into_iter()
        .map(|m| ReplayMessage {
            time: item.published_at,
            sport,
            payload: Replayed::News(NewsItem {
                item_id: item.item_id.clone(),
                team_id: m.team_id,
                source: Some(item.source.clone()),
                title: item.title.clone(),
                description: item.summary.clone(),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::envelope::Kind;

    #[test]
    fn a_replayed_day_publishes_headlines_that_name_a_team() {
        let nba: &'static Sport = crate::sport("nba").expect("nba");
        let day = NaiveDate::from_ymd_opt(2024, 11, 20).expect("date");
        let (messages, _rejected) = replay(nba, day).expect("replay");
        assert!(
            !messages.is_empty(),
            "the recorded headlines name NBA teams"
        );
        for m in &messages {
            assert_eq!(m.kind(), Kind::News);
            assert_eq!(sports_day(m.time), day);
            let Replayed::News(item) = &m.payload else {
                panic!("not news: {m:?}");
            };
            assert!(item.team_id.starts_with("nba:"), "{}", item.team_id);
            assert!(!item.title.is_empty());
        }
        let again = replay(nba, day).expect("replay").0;
        assert_eq!(messages, again, "the same day replays the same messages");
    }
}
