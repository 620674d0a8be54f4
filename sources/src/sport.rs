//! The leagues BetFlow covers, the sports day every batch run and topic
//! message is dated by, and the four data kinds every layer is split into.
//! Everything that fans out over sports or kinds reads these tables, so
//! adding a league is a row here, not new code (docs/data-model.md#sports).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One supported league.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sport {
    /// Our key: task group ids, the `sports` param, lake paths
    /// (`raw/historical/{key}/…`) and Kafka topics (`betflow.odds.{key}`).
    pub key: &'static str,
    /// ESPN site API path: `/apis/site/v2/sports/{espn_path}/scoreboard`.
    pub espn_path: &'static str,
    /// The Odds API v4 sport key: `/v4/sports/{odds_api_key}/odds`.
    pub odds_api_key: &'static str,
    /// Default RSS/Atom feeds of the league's news (`news_daily`, live mode),
    /// replaced by `BETFLOW_NEWS_FEEDS_{KEY}`. ESPN publishes one per league
    /// at `https://www.espn.com/espn/rss/{league}/news`, where college
    /// football's league is `ncf`.
    pub news_feeds: &'static [&'static str],
}

/// The leagues BetFlow covers (docs/data-model.md#sports).
pub const SPORTS: &[Sport] = &[
    Sport {
        key: "nfl",
        espn_path: "football/nfl",
        odds_api_key: "americanfootball_nfl",
        news_feeds: &["https://www.espn.com/espn/rss/nfl/news"],
    },
    Sport {
        key: "ncaaf",
        espn_path: "football/college-football",
        odds_api_key: "americanfootball_ncaaf",
        news_feeds: &["https://www.espn.com/espn/rss/ncf/news"],
    },
    Sport {
        key: "nba",
        espn_path: "basketball/nba",
        odds_api_key: "basketball_nba",
        news_feeds: &["https://www.espn.com/espn/rss/nba/news"],
    },
    Sport {
        key: "nhl",
        espn_path: "hockey/nhl",
        odds_api_key: "icehockey_nhl",
        news_feeds: &["https://www.espn.com/espn/rss/nhl/news"],
    },
];

/// The row of a sport key, if we cover it.
pub fn sport(key: &str) -> Option<&'static Sport> {
    SPORTS.iter().find(|s| s.key == key)
}

/// Timezone of the nightly schedules and of the "sports day". US leagues
/// list games by their Eastern date (ESPN's `dates=YYYYMMDD`), and a
/// schedule in this zone stays at the same local hour across daylight
/// saving time.
pub const TIMEZONE: &str = "America/New_York";

/// The sports day a run covers: the New York date of its data interval's start.
pub fn sports_day(interval_start: DateTime<Utc>) -> NaiveDate {
    interval_start
        .with_timezone(&chrono_tz::America::New_York)
        .date_naive()
}

/// The data family of a raw lake object, a transform task, a Kafka topic
/// and an envelope's `kind`: one enum for every layer, so a kind cannot be
/// spelled differently in two of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    Games,
    Odds,
    Weather,
    News,
}

impl DataKind {
    pub const ALL: [DataKind; 4] = [
        DataKind::Games,
        DataKind::Odds,
        DataKind::Weather,
        DataKind::News,
    ];

    /// The lake path segment, topic segment and envelope value.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Games => "games",
            DataKind::Odds => "odds",
            DataKind::Weather => "weather",
            DataKind::News => "news",
        }
    }

    pub fn parse(s: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`DataKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?} (games, odds, weather or news)")]
pub struct UnknownKind(pub String);

impl FromStr for DataKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataKind::parse(s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_late_eastern_game_belongs_to_the_new_york_day() {
        // 01:30 UTC on the 9th is 21:30 on the 8th in New York (EDT).
        let t = Utc.with_ymd_and_hms(2024, 9, 9, 1, 30, 0).unwrap();
        assert_eq!(sports_day(t), NaiveDate::from_ymd_opt(2024, 9, 8).unwrap());
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in DataKind::ALL {
            assert_eq!(k.as_str().parse::<DataKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!("scores".parse::<DataKind>().is_err());
    }
}
