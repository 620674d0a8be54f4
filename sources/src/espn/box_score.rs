//! The box score a scoreboard carries beside the score: team statistics
//! (NBA shooting, rebounds and assists; NHL saves and save percentage …),
//! each team's season record, and the game's leaders per category
//! (docs/data-model.md#box-scores).
//!
//! It is read leniently: the score is what a game is validated on, so a
//! statistic, record or leader that is malformed is left out alone and
//! never rejects its game.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::text::{self, MAX_ID, MAX_NAME};

/// More statistics than a scoreboard lists for one team are not kept.
const MAX_STATS: usize = 64;
/// Leader categories kept per game.
const MAX_CATEGORIES: usize = 24;
/// A record summary (`56-26`, `3-1-0`) is short.
const MAX_RECORD: usize = 16;

/// One team's line of the box score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeamBox {
    /// The season record before or after this game, as ESPN summarises it
    /// (`wins-losses[-ties/overtime losses]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// ESPN's statistic name (`fieldGoalPct`, `rebounds`, `saves`,
    /// `savePct` …) to its value. Percentages keep ESPN's scale: 43.4 for
    /// basketball's field goals, 0.929 for hockey's save percentage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, f64>,
}

impl TeamBox {
    pub fn is_empty(&self) -> bool {
        self.record.is_none() && self.stats.is_empty()
    }
}

/// The top player of one category for one team (`passingYards`,
/// `points`, `saves` …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerLeader {
    pub category: String,
    pub team_id: String,
    pub athlete: String,
    /// ESPN's summary, e.g. `21-30, 212 YDS, 2 TD` or `28`.
    pub display_value: String,
    pub value: f64,
}

/// Everything a scoreboard says about a game beyond its score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoxScore {
    #[serde(default, skip_serializing_if = "TeamBox::is_empty")]
    pub home: TeamBox,
    #[serde(default, skip_serializing_if = "TeamBox::is_empty")]
    pub away: TeamBox,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaders: Vec<PlayerLeader>,
}

impl BoxScore {
    pub fn is_empty(&self) -> bool {
        self.home.is_empty() && self.away.is_empty() && self.leaders.is_empty()
    }

    /// The box score as a scoreboard's JSON puts it: `(home competitor
    /// fields, away competitor fields, competition leaders)`. What the
    /// replay writes, so its polls go through the live parser.
    pub fn to_payload(&self) -> (Value, Value, Value) {
        let side = |t: &TeamBox| {
            let stats: Vec<Value> = t
                .stats
                .iter()
                .map(|(name, v)| json!({"name": name, "displayValue": v.to_string()}))
                .collect();
            let records: Vec<Value> = t
                .record
                .iter()
                .map(|r| json!({"name": "overall", "type": "total", "summary": r}))
                .collect();
            json!({"statistics": stats, "records": records})
        };
        let mut categories: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for l in &self.leaders {
            categories.entry(&l.category).or_default().push(json!({
                "displayValue": l.display_value,
                "value": l.value,
                "athlete": {"displayName": l.athlete},
                "team": {"id": l.team_id},
            }));
        }
        let leaders: Vec<Value> = categories
            .into_iter()
            .map(|(name, leaders)| json!({"name": name, "leaders": leaders}))
            .collect();
        (side(&self.home), side(&self.away), Value::Array(leaders))
    }
}

/// The box score of a competition whose home and away teams are
/// `home_id` and `away_id`. Leaders come from the competitors (basketball,
/// hockey) and from the competition (football, which names each leader's
/// team); one whose team is neither side is left out.
pub(super) fn read(
    competition_leaders: &Value,
    home: &super::Competitor,
    home_id: &str,
    away: &super::Competitor,
    away_id: &str,
) -> BoxScore {
    let mut leaders: Vec<PlayerLeader> = Vec::new();
    for (c, id) in [(home, home_id), (away, away_id)] {
        leaders.extend(read_leaders(&c.leaders, Some(id), &[home_id, away_id]));
    }
    leaders.extend(read_leaders(competition_leaders, None, &[home_id, away_id]));
    // One leader per (category, team), in that order: the first listed
    // is ESPN's top (the sort is stable).
    leaders.sort_by(|a, b| (&a.category, &a.team_id).cmp(&(&b.category, &b.team_id)));
    leaders.dedup_by(|a, b| a.category == b.category && a.team_id == b.team_id);
    leaders.truncate(MAX_CATEGORIES * 2);
    BoxScore {
        home: team_box(home),
        away: team_box(away),
        leaders,
    }
}

fn team_box(c: &super::Competitor) -> TeamBox {
    let mut stats: BTreeMap<String, f64> = BTreeMap::new();
    for s in c.statistics.as_array().into_iter().flatten() {
        if stats.len() == MAX_STATS {
            break;
        }
        let Some(name) = s.get("name").and_then(Value::as_str).and_then(stat_name) else {
            continue;
        };
        if let Some(v) = s
            .get("displayValue")
            .or_else(|| s.get("value"))
            .and_then(number)
        {
            stats.insert(name, v);
        }
    }
    let record: Option<String> = c
        .records
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r.get("type").and_then(Value::as_str) == Some("total"))
        .and_then(|r| r.get("summary").and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| {
            !s.is_empty()
                && s.len() <= MAX_RECORD
                && s.chars().all(|c| c.is_ascii_digit() || c == '-')
        })
        .map(str::to_string);
    TeamBox { record, stats }
}

fn read_leaders(categories: &Value, team: Option<&str>, sides: &[&str]) -> Vec<PlayerLeader> {
    let mut out: Vec<PlayerLeader> = Vec::new();
    for cat in categories
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_CATEGORIES)
    {
        let Some(category) = cat.get("name").and_then(Value::as_str).and_then(stat_name) else {
            continue;
        };
        for entry in cat
            .get("leaders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(l) = leader(&category, entry, team, sides) {
                out.push(l);
            }
        }
    }
    out
}

fn leader(
    category: &str,
    entry: &Value,
    team: Option<&str>,
    sides: &[&str],
) -> Option<PlayerLeader> {
    let team_id: String = match team {
        Some(id) => id.to_string(),
        None => {
            let id: &Value = entry.get("team")?.get("id")?;
            let id: String = match id {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            sides.contains(&id.as_str()).then_some(id)?
        }
    };
    let athlete: &Value = entry.get("athlete")?;
    let name: &str = athlete
        .get("displayName")
        .or_else(|| athlete.get("fullName"))
        .and_then(Value::as_str)?;
    let athlete: String = text::bounded(name, MAX_NAME)
        .ok()
        .filter(|s| !s.is_empty())?;
    let value: f64 = entry.get("value").and_then(number)?;
    let display_value: String = match entry.get("displayValue").and_then(Value::as_str) {
        Some(d) => text::bounded(d, MAX_NAME).ok()?,
        None => value.to_string(),
    };
    Some(PlayerLeader {
        category: category.to_string(),
        team_id,
        athlete,
        display_value,
        value,
    })
}

/// A statistic or category name: a short identifier, as ESPN's are.
fn stat_name(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= MAX_ID && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| s.to_string())
}

/// A finite number from a JSON number or numeric text (`"43.4"`, `".929"`).
fn number(v: &Value) -> Option<f64> {
    let n: f64 = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::espn::{validate_scoreboard, GameRecord};

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!("{}/fixtures/real/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(&path).expect(&path)).expect("json")
    }

    fn first_game(sport: &str, payload: &serde_json::Value) -> GameRecord {
        let v = validate_scoreboard(sport, payload).expect("events");
        v.good.into_iter().next().expect("a good game")
    }

    #[test]
    fn a_basketball_scoreboard_gives_shooting_rebounds_assists_and_leaders() {
        let g = first_game("nba", &fixture("espn_nba_scoreboard_JoeyG1973.json"));
        let home = &g.box_score.home;
        let away = &g.box_score.away;
        let (fg, reb) = if g.home.team_id == "2" {
            (home.stats["fieldGoalPct"], home.stats["rebounds"])
        } else {
            (away.stats["fieldGoalPct"], away.stats["rebounds"])
        };
        assert_eq!((fg, reb), (43.4, 36.0));
        assert!(home.record.is_some() && away.record.is_some());
        let brown = g
            .box_score
            .leaders
            .iter()
            .find(|l| l.category == "points" && l.team_id == "2")
            .expect("Boston's points leader");
        assert_eq!(
            (brown.athlete.as_str(), brown.value),
            ("Jaylen Brown", 28.0)
        );
    }

    #[test]
    fn a_hockey_scoreboard_gives_saves_and_save_percentage() {
        let g = first_game("nhl", &fixture("espn_nhl_scoreboard_vasqued2.json"));
        let sides = [&g.box_score.home, &g.box_score.away];
        assert!(sides.iter().all(|t| t.stats.contains_key("saves")));
        let pct: Vec<f64> = sides.iter().map(|t| t.stats["savePct"]).collect();
        assert!(pct.iter().all(|p| (0.0..=1.0).contains(p)), "{pct:?}");
        assert!(g.box_score.leaders.iter().any(|l| l.category == "goals"));
    }

    #[test]
    fn football_leaders_come_from_the_competition_with_their_team() {
        let g = first_game("nfl", &fixture("espn_nfl_scoreboard_vasqued2.json"));
        let passing: Vec<_> = g
            .box_score
            .leaders
            .iter()
            .filter(|l| l.category == "passingYards")
            .collect();
        assert!(!passing.is_empty());
        assert!(passing
            .iter()
            .all(|l| l.team_id == g.home.team_id || l.team_id == g.away.team_id));
    }

    #[test]
    fn a_malformed_box_score_costs_only_itself() {
        let event = json!({
            "id": "1", "date": "2024-01-01T00:00Z",
            "competitions": [{
                "leaders": "not a list",
                "competitors": [
                    {"homeAway": "home", "team": {"id": "h", "displayName": "Home"}, "score": "3",
                     "statistics": [{"name": "saves", "displayValue": "NaN"},
                                    {"name": "bad name!", "displayValue": "1"},
                                    {"name": "goals", "displayValue": "3"}],
                     "leaders": [{"name": "goals", "leaders": [
                         {"value": 2, "displayValue": "2", "athlete": {"displayName": "Evil\u{202E}Name"}},
                         {"value": 1, "displayValue": "1", "athlete": {"displayName": "Good Name"}}]}],
                     "records": [{"type": "total", "summary": "<script>"}]},
                    {"homeAway": "away", "team": {"id": "a", "displayName": "Away"}, "score": "1",
                     "statistics": {"weird": true}}
                ],
                "status": {"period": 3, "type": {"state": "post"}}
            }]
        });
        let g = first_game("nhl", &json!({"events": [event]}));
        assert_eq!(g.home.score, Some(3));
        assert_eq!(g.box_score.home.stats.len(), 1);
        assert_eq!(g.box_score.home.stats["goals"], 3.0);
        assert_eq!(g.box_score.home.record, None);
        assert!(g.box_score.away.is_empty());
        let names: Vec<&str> = g
            .box_score
            .leaders
            .iter()
            .map(|l| l.athlete.as_str())
            .collect();
        assert_eq!(names, ["Good Name"]);
    }

    #[test]
    fn the_payload_form_reads_back_the_same() {
        let g = first_game("nba", &fixture("espn_nba_scoreboard_JoeyG1973.json"));
        let (home, away, leaders) = g.box_score.to_payload();
        let mut event = json!({
            "id": "9", "date": "2024-01-01T00:00Z",
            "competitions": [{
                "leaders": leaders,
                "competitors": [
                    {"homeAway": "home", "team": {"id": g.home.team_id, "displayName": "H"}, "score": "1"},
                    {"homeAway": "away", "team": {"id": g.away.team_id, "displayName": "A"}, "score": "2"}
                ],
                "status": {"period": 4, "type": {"state": "post"}}
            }]
        });
        for (i, side) in [home, away].into_iter().enumerate() {
            let c = &mut event["competitions"][0]["competitors"][i];
            for (k, v) in side.as_object().expect("object") {
                c[k] = v.clone();
            }
        }
        let back = first_game("nba", &json!({"events": [event]}));
        assert_eq!(back.box_score, g.box_score);
    }
}
