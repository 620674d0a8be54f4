//! Which teams an article is about: their names, nicknames, locations and
//! abbreviations looked up in its headline and summary.
//!
//! Teams are those of the bundled ESPN captures (the same the season
//! generator schedules, [`crate::generator`]), with ids as silver
//! writes them (`{sport}:{espn team id}`), so news joins games, odds and
//! `dim_teams`. A team that never appears in a capture is never matched.
//!
//! Rules, chosen to prefer a missed match over a wrong one:
//! * phrases match case-sensitively on word boundaries ("Kings" is a team,
//!   "kings" is not; "Eagles'" matches "Eagles");
//! * a phrase that names two teams of the sport ("Los Angeles", "New York",
//!   college "Tigers") is not used; the full display name always is;
//! * a location counts only standing alone: not next to another capitalised
//!   word, which makes it part of another name ("Washington Capitals" in the
//!   NFL's feed, "North Carolina", "Seattle Sounders");
//! * abbreviations count only in capitals, and not those that are common
//!   words or acronyms in headlines ("NO" is New Orleans's).
//!
//! Known limits: a location in another sense ("agents leave Indianapolis")
//! matches that city's team, and an article about one league's "Kings"
//! matches the other league's when it appears in that league's feed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::Value;

use crate::error::SourceError;
use crate::http::decode_bytes;
use crate::replay::{Kind, Replay};

/// Abbreviations never matched: English words and acronyms that headlines
/// write in capitals.
const STOP_ABBREVIATIONS: &[&str] = &[
    "AM", "AN", "AS", "AT", "BE", "BY", "DO", "GO", "HE", "IF", "IN", "IS", "IT", "ME", "MY", "NO",
    "OF", "OK", "ON", "OR", "PM", "SO", "TO", "TV", "UP", "US", "WE", "ALL", "AND", "ARE", "FOR",
    "GM", "MVP", "NBA", "NFL", "NHL", "THE", "USA", "WIN",
];

/// Names of one team as ESPN gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamNames {
    /// ESPN team id (without the sport).
    pub espn_id: String,
    /// `Philadelphia Eagles`.
    pub display_name: String,
    /// Nickname and short name (`Eagles`).
    pub names: Vec<String>,
    /// `Philadelphia`; college teams' short names are often theirs too.
    pub locations: Vec<String>,
    /// `PHI`.
    pub abbreviation: Option<String>,
}

impl TeamNames {
    /// From an ESPN `competitors[].team` object; `None` without id or name.
    pub fn from_espn(team: &Value) -> Option<Self> {
        let s = |k: &str| {
            team.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let locations: Vec<String> = s("location").into_iter().collect();
        Some(TeamNames {
            espn_id: s("id")?,
            display_name: s("displayName")?,
            names: ["name", "shortDisplayName"]
                .iter()
                .filter_map(|k| s(k))
                .filter(|n| !locations.contains(n))
                .collect(),
            locations,
            abbreviation: s("abbreviation"),
        })
    }
}

/// One team an article mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMatch {
    /// `{sport}:{espn team id}`.
    pub team_id: String,
    pub team_name: String,
    /// The first phrase of the text that named the team.
    pub phrase: String,
}

/// The phrases of one sport's teams.
#[derive(Debug, Clone)]
pub struct TeamMatcher {
    sport: String,
    /// (team id, display name) by index.
    teams: Vec<(String, String)>,
    /// Phrase → (team index, whether it is a location); only phrases
    /// naming exactly one team.
    phrases: BTreeMap<String, (usize, bool)>,
}

impl TeamMatcher {
    /// A matcher over `teams` of `sport`.
    pub fn new(sport: &str, teams: impl IntoIterator<Item = TeamNames>) -> Self {
        let mut by_id: BTreeMap<String, TeamNames> = BTreeMap::new();
        for t in teams {
            by_id.entry(t.espn_id.clone()).or_insert(t);
        }
        let mut owners: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let mut locations: BTreeSet<String> = BTreeSet::new();
        let mut display: BTreeMap<String, (usize, bool)> = BTreeMap::new();
        let mut list: Vec<(String, String)> = Vec::with_capacity(by_id.len());
        for (i, t) in by_id.values().enumerate() {
            list.push((format!("{sport}:{}", t.espn_id), t.display_name.clone()));
            display.insert(t.display_name.clone(), (i, false));
            for n in t.names.iter().chain(&t.locations) {
                if n.chars().count() >= 3 {
                    owners.entry(n.clone()).or_default().insert(i);
                }
            }
            locations.extend(t.locations.iter().cloned());
            if let Some(a) = t.abbreviation.as_deref().filter(|a| usable_abbreviation(a)) {
                owners.entry(a.to_owned()).or_default().insert(i);
            }
        }
        let mut phrases: BTreeMap<String, (usize, bool)> = owners
            .into_iter()
            .filter(|(_, o)| o.len() == 1)
            .map(|(p, o)| {
                let location = locations.contains(&p);
                (p, (*o.first().expect("one owner"), location))
            })
            .collect();
        phrases.extend(display);
        TeamMatcher {
            sport: sport.to_owned(),
            teams: list,
            phrases,
        }
    }

    /// The matcher of `sport` over the teams of the bundled captures
    /// (built once per process).
    pub fn for_sport(sport: &str) -> Result<&'static TeamMatcher, SourceError> {
        static ALL: OnceLock<Result<BTreeMap<&'static str, TeamMatcher>, String>> = OnceLock::new();
        let all = ALL.get_or_init(|| {
            crate::sport::SPORTS
                .iter()
                .map(|s| Ok((s.key, TeamMatcher::from_captures(s.key)?)))
                .collect::<Result<_, SourceError>>()
                .map_err(|e| e.to_string())
        });
        let all = all.as_ref().map_err(|e| SourceError::Config {
            api: super::API,
            message: format!("team names from the bundled captures: {e}"),
        })?;
        all.get(sport).ok_or_else(|| SourceError::Config {
            api: super::API,
            message: format!("no teams for sport `{sport}`"),
        })
    }

    /// A matcher over the teams in `sport`'s bundled ESPN scoreboards.
    pub fn from_captures(sport: &str) -> Result<Self, SourceError> {
        let mut teams: Vec<TeamNames> = Vec::new();
        for capture in Replay.captures(sport, |k| k == Kind::EspnScoreboard) {
            let payload: Value = decode_bytes(super::API, capture.file, capture.bytes)?;
            let competitors = payload
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.pointer("/competitions/0/competitors"))
                .filter_map(Value::as_array)
                .flatten();
            teams.extend(competitors.filter_map(|c| c.get("team").and_then(TeamNames::from_espn)));
        }
        Ok(Self::new(sport, teams))
    }

    /// (team id, display name) of every team, by the index
    /// [`TeamMatcher::phrases`] names.
    pub fn teams(&self) -> &[(String, String)] {
        &self.teams
    }

    /// Every phrase used, with its team's index and whether it is a
    /// location (matched only standing alone), in phrase order: what
    /// `glue/news.json` exports for the Spark scripts.
    pub fn phrases(&self) -> impl Iterator<Item = (&str, usize, bool)> + '_ {
        self.phrases
            .iter()
            .map(|(p, &(team, location))| (p.as_str(), team, location))
    }

    pub fn sport(&self) -> &str {
        &self.sport
    }

    /// Teams known to this matcher.
    pub fn len(&self) -> usize {
        self.teams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.teams.is_empty()
    }

    /// Every team `text` names, once each, in order of first mention.
    pub fn matches(&self, text: &str) -> Vec<TeamMatch> {
        let mut found: Vec<(usize, usize, &str)> = Vec::new();
        for (phrase, &(team, location)) in &self.phrases {
            if let Some(at) = find_word(text, phrase, location) {
                found.push((at, team, phrase));
            }
        }
        found.sort();
        let mut seen: BTreeSet<usize> = BTreeSet::new();
        found
            .into_iter()
            .filter(|(_, team, _)| seen.insert(*team))
            .map(|(_, team, phrase)| TeamMatch {
                team_id: self.teams[team].0.clone(),
                team_name: self.teams[team].1.clone(),
                phrase: phrase.to_owned(),
            })
            .collect()
    }
}

fn usable_abbreviation(a: &str) -> bool {
    a.len() >= 2
        && a.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && !STOP_ABBREVIATIONS.contains(&a)
}

/// Byte offset of the first occurrence of `phrase` in `text` that is not
/// inside a longer word and, when `alone`, not next to a capitalised word.
fn find_word(text: &str, phrase: &str, alone: bool) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric();
    let mut from = 0;
    while let Some(rel) = text[from..].find(phrase) {
        let at = from + rel;
        let end = at + phrase.len();
        let before_ok = !text[..at].chars().next_back().is_some_and(is_word);
        let after_ok = !text[end..].chars().next().is_some_and(is_word);
        let standalone =
            !alone || (!capitalised_before(&text[..at]) && !capitalised_after(&text[end..]));
        if before_ok && after_ok && standalone {
            return Some(at);
        }
        from = at + phrase.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Whether the word just before `head`'s end (across one run of spaces)
/// starts with a capital.
fn capitalised_before(head: &str) -> bool {
    let trimmed = head.trim_end_matches(' ');
    if trimmed.len() == head.len() {
        return false;
    }
    let word_start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric())
        .last()
        .map(|(i, _)| i);
    word_start.is_some_and(|i| trimmed[i..].starts_with(|c: char| c.is_uppercase()))
}

/// Whether the word just after `tail`'s start (across one run of spaces)
/// starts with a capital.
fn capitalised_after(tail: &str) -> bool {
    let trimmed = tail.trim_start_matches(' ');
    trimmed.len() != tail.len() && trimmed.starts_with(|c: char| c.is_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(id: &str, display: &str, names: &[&str], abbr: &str) -> TeamNames {
        TeamNames {
            espn_id: id.into(),
            display_name: display.into(),
            names: names[..1].iter().map(|n| (*n).to_owned()).collect(),
            locations: names[1..].iter().map(|n| (*n).to_owned()).collect(),
            abbreviation: Some(abbr.into()),
        }
    }

    fn nfl() -> TeamMatcher {
        TeamMatcher::new(
            "nfl",
            [
                team(
                    "21",
                    "Philadelphia Eagles",
                    &["Eagles", "Philadelphia"],
                    "PHI",
                ),
                team(
                    "24",
                    "Los Angeles Chargers",
                    &["Chargers", "Los Angeles"],
                    "LAC",
                ),
                team("14", "Los Angeles Rams", &["Rams", "Los Angeles"], "LAR"),
                team("18", "New Orleans Saints", &["Saints", "New Orleans"], "NO"),
            ],
        )
    }

    fn ids(m: &TeamMatcher, text: &str) -> Vec<String> {
        m.matches(text).into_iter().map(|t| t.team_id).collect()
    }

    #[test]
    fn names_locations_and_abbreviations_match_on_word_boundaries() {
        let m = nfl();
        assert_eq!(ids(&m, "Eagles' Kelce retires"), ["nfl:21"]);
        assert_eq!(ids(&m, "PHI beats LAR"), ["nfl:21", "nfl:14"]);
        assert_eq!(ids(&m, "Philadelphia Eagles sign a tackle"), ["nfl:21"]);
        assert!(ids(&m, "eagles soar over the Ramsgate pier").is_empty());
        // One mention per team, with the phrase that named it.
        let found = m.matches("Saints, New Orleans and the Saints again");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].phrase, "Saints");
        assert_eq!(found[0].team_name, "New Orleans Saints");
    }

    #[test]
    fn shared_phrases_and_stop_words_do_not_match() {
        let m = nfl();
        assert!(ids(&m, "Los Angeles traffic").is_empty());
        assert_eq!(ids(&m, "Los Angeles Rams win"), ["nfl:14"]);
        assert!(ids(&m, "NO WAY: a wild finish").is_empty());
    }

    #[test]
    fn a_location_inside_another_name_does_not_match() {
        let m = nfl();
        assert!(ids(&m, "Philadelphia Union win the cup").is_empty());
        assert!(ids(&m, "West Philadelphia grown").is_empty());
        assert_eq!(ids(&m, "Philadelphia's comeback"), ["nfl:21"]);
        assert_eq!(ids(&m, "A win for Philadelphia, again"), ["nfl:21"]);
        // Nicknames are not held to it.
        assert_eq!(ids(&m, "Fly Eagles Fly"), ["nfl:21"]);
    }

    #[test]
    fn bundled_captures_name_every_league() {
        for sport in crate::sport::SPORTS {
            let m = TeamMatcher::for_sport(sport.key).unwrap();
            assert!(m.len() >= 15, "{}: {} teams", sport.key, m.len());
        }
        let nba = TeamMatcher::for_sport("nba").unwrap();
        assert_eq!(
            nba.matches("Celtics rally past Philadelphia")
                .iter()
                .map(|t| t.team_name.as_str())
                .collect::<Vec<_>>(),
            ["Boston Celtics", "Philadelphia 76ers"]
        );
    }
}
