//! The game page's box score: each team's record and the statistics its
//! sport's scoreboard lists, and each team's leader per category
//! (docs/data-model.md#box-scores).

use serde_json::Value;

use super::read::{BoxRow, LeaderRow};

/// Columns shown per sport: (header, ESPN statistic, decimals). Rates keep
/// ESPN's scale (43.4 for basketball shooting, 0.929 for save percentage).
fn columns(sport: &str) -> &'static [(&'static str, &'static str, usize)] {
    match sport {
        "nba" => &[
            ("PTS", "points", 0),
            ("FG%", "fieldGoalPct", 1),
            ("3P%", "threePointFieldGoalPct", 1),
            ("FT%", "freeThrowPct", 1),
            ("REB", "rebounds", 0),
            ("AST", "assists", 0),
        ],
        "nhl" => &[
            ("G", "goals", 0),
            ("A", "assists", 0),
            ("PTS", "points", 0),
            ("Saves", "saves", 0),
            ("SV%", "savePct", 3),
        ],
        _ => &[],
    }
}

pub struct BoxView {
    pub headers: Vec<&'static str>,
    /// Team, record, then one cell per header.
    pub rows: Vec<(String, String, Vec<String>)>,
    pub leaders: Vec<LeaderView>,
}

impl BoxView {
    pub fn is_empty(&self) -> bool {
        self.rows
            .iter()
            .all(|(_, record, cells)| record.is_empty() && cells.iter().all(String::is_empty))
            && self.leaders.is_empty()
    }
}

pub struct LeaderView {
    pub category: String,
    pub team: String,
    pub athlete: String,
    pub line: String,
}

/// The view of a game's box score; `home` and `away` are (team id, name).
pub fn view(
    sport: &str,
    row: Option<&BoxRow>,
    leaders: &[LeaderRow],
    home: (&str, &str),
    away: (&str, &str),
) -> BoxView {
    let stats_of = |v: Option<&Value>, key: &str, decimals: usize| -> String {
        v.and_then(|s| s.get(key))
            .and_then(Value::as_f64)
            .map(|x| format!("{x:.decimals$}"))
            .unwrap_or_default()
    };
    // Only the columns some team has.
    let cols: Vec<&(&str, &str, usize)> = columns(sport)
        .iter()
        .filter(|(_, key, _)| {
            row.is_some_and(|r| {
                [&r.home_stats, &r.away_stats]
                    .iter()
                    .any(|s| s.as_ref().and_then(|s| s.get(*key)).is_some())
            })
        })
        .collect();
    let line = |name: &str, record: Option<&String>, stats: Option<&Value>| {
        (
            name.to_owned(),
            record.cloned().unwrap_or_default(),
            cols.iter()
                .map(|(_, key, d)| stats_of(stats, key, *d))
                .collect(),
        )
    };
    let rows = match row {
        None => Vec::new(),
        Some(r) => vec![
            line(away.1, r.away_record.as_ref(), r.away_stats.as_ref()),
            line(home.1, r.home_record.as_ref(), r.home_stats.as_ref()),
        ],
    };
    let team_name = |id: &str| -> String {
        if id == home.0 {
            home.1.to_owned()
        } else if id == away.0 {
            away.1.to_owned()
        } else {
            id.to_owned()
        }
    };
    let leaders = leaders
        .iter()
        .filter(|l| l.category != "rating")
        .map(|l| LeaderView {
            category: category_name(&l.category),
            team: team_name(&l.team_id),
            athlete: l.athlete.clone(),
            line: l.display_value.clone(),
        })
        .collect();
    BoxView {
        headers: cols.iter().map(|(h, _, _)| *h).collect(),
        rows,
        leaders,
    }
}

/// `passingYards` → `Passing yards`.
fn category_name(category: &str) -> String {
    let mut out = String::with_capacity(category.len() + 4);
    for (i, c) in category.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn basketball_shows_its_columns_and_leaders_by_team_name() {
        let row = BoxRow {
            home_record: Some("56-26".into()),
            away_record: None,
            home_stats: Some(json!({"fieldGoalPct": 43.4, "rebounds": 36.0})),
            away_stats: Some(json!({"fieldGoalPct": 50.7})),
        };
        let leaders = [LeaderRow {
            category: "points".into(),
            team_id: "2".into(),
            athlete: "Jaylen Brown".into(),
            display_value: "28".into(),
        }];
        let v = view(
            "nba",
            Some(&row),
            &leaders,
            ("2", "Boston"),
            ("20", "Philadelphia"),
        );
        assert_eq!(v.headers, ["FG%", "REB"]);
        assert_eq!(
            v.rows[0],
            (
                "Philadelphia".into(),
                String::new(),
                vec!["50.7".into(), String::new()]
            )
        );
        assert_eq!(
            v.rows[1],
            (
                "Boston".into(),
                "56-26".into(),
                vec!["43.4".into(), "36".into()]
            )
        );
        assert_eq!(
            (v.leaders[0].team.as_str(), v.leaders[0].category.as_str()),
            ("Boston", "Points")
        );
        assert!(!v.is_empty());
    }

    #[test]
    fn no_box_score_is_empty() {
        assert!(view("nfl", None, &[], ("h", "H"), ("a", "A")).is_empty());
        assert_eq!(category_name("receivingYards"), "Receiving yards");
    }
}
