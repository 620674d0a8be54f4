//! Generated box scores that agree with the generated score: basketball
//! shooting whose made shots add up to the points, hockey saves that are
//! the other side's shots minus its goals, football yardage leaders, and
//! each team's season record before the game plus its result.
//!
//! Players are made up: a name per (team, role), fixed per seed, drawn from
//! short lists of common first and last names.

use chrono::{Datelike, NaiveDate};

use super::{Game, Rng, SeasonGenerator, TeamInfo};
use crate::espn::{BoxScore, PlayerLeader, TeamBox};

const FIRST: &[&str] = &[
    "James", "Marcus", "Tyler", "Jalen", "Chris", "Devin", "Luka", "Mikko", "Connor", "Erik",
    "Jordan", "Andre", "Nikita", "Drew", "Sam", "Kyle", "Trey", "Mason", "Elias", "Owen",
];
const LAST: &[&str] = &[
    "Carter",
    "Brooks",
    "Hughes",
    "Lindqvist",
    "Morgan",
    "Reyes",
    "Walker",
    "Novak",
    "Hayes",
    "Bennett",
    "Foster",
    "Kowalski",
    "Mitchell",
    "Sato",
    "Price",
    "Dubois",
    "Grant",
    "Ellis",
];

/// One side as the box score needs it.
pub(super) struct Side<'a> {
    pub team: &'a TeamInfo,
    pub team_id: &'a str,
    pub points: u32,
    pub won: bool,
}

impl SeasonGenerator {
    /// The box score of a final game on `date`.
    pub(super) fn box_score(
        &self,
        sport: &str,
        date: NaiveDate,
        game: &Game,
        home: Side<'_>,
        away: Side<'_>,
    ) -> BoxScore {
        let mut rng: Rng = self.rng(&["box", sport, &game.id]);
        let mut leaders: Vec<PlayerLeader> = Vec::new();
        let mut teams: Vec<TeamBox> = Vec::new();
        for (us, them) in [(&home, &away), (&away, &home)] {
            let mut stats = std::collections::BTreeMap::new();
            let mut lead = |category: &str, role: &str, value: u32, display: String| {
                leaders.push(PlayerLeader {
                    category: category.to_string(),
                    team_id: us.team_id.to_string(),
                    athlete: self.player(sport, us.team_id, role),
                    display_value: display,
                    value: f64::from(value),
                });
            };
            match sport {
                "nba" => {
                    let s = Shooting::draw(us.points, &mut rng);
                    let rebounds: u32 = 36 + rng.below(16) as u32;
                    let assists: u32 = 18 + rng.below(12) as u32;
                    for (name, v) in [
                        ("points", f64::from(us.points)),
                        ("fieldGoalsMade", f64::from(s.fgm)),
                        ("fieldGoalsAttempted", f64::from(s.fga)),
                        ("fieldGoalPct", pct(s.fgm, s.fga)),
                        ("threePointFieldGoalsMade", f64::from(s.tpm)),
                        ("threePointFieldGoalsAttempted", f64::from(s.tpa)),
                        ("threePointFieldGoalPct", pct(s.tpm, s.tpa)),
                        ("freeThrowsMade", f64::from(s.ftm)),
                        ("freeThrowsAttempted", f64::from(s.fta)),
                        ("freeThrowPct", pct(s.ftm, s.fta)),
                        ("rebounds", f64::from(rebounds)),
                        ("assists", f64::from(assists)),
                    ] {
                        stats.insert(name.to_string(), v);
                    }
                    let share = |rng: &mut Rng, total: u32, low: f64| {
                        (f64::from(total) * (low + 0.1 * rng.unit())).round() as u32
                    };
                    let p: u32 = share(&mut rng, us.points, 0.2);
                    lead("points", "star", p, p.to_string());
                    let r: u32 = share(&mut rng, rebounds, 0.22);
                    lead("rebounds", "big", r, r.to_string());
                    let a: u32 = share(&mut rng, assists, 0.25);
                    lead("assists", "guard", a, a.to_string());
                }
                "nhl" => {
                    // Shots the other side faced from us, and we from them.
                    let shots_against: u32 = (24 + rng.below(14) as u32).max(them.points);
                    let saves: u32 = shots_against - them.points;
                    let assists: u32 =
                        (f64::from(us.points) * (1.4 + 0.4 * rng.unit())).round() as u32;
                    for (name, v) in [
                        ("goals", f64::from(us.points)),
                        ("assists", f64::from(assists)),
                        ("points", f64::from(us.points + assists)),
                        ("saves", f64::from(saves)),
                        (
                            "savePct",
                            round3(f64::from(saves) / f64::from(shots_against.max(1))),
                        ),
                    ] {
                        stats.insert(name.to_string(), v);
                    }
                    if us.points > 0 {
                        let g: u32 = us.points.min(1 + rng.below(2) as u32);
                        lead("goals", "sniper", g, g.to_string());
                        let a: u32 = assists.min(1 + rng.below(2) as u32);
                        if a > 0 {
                            lead("assists", "playmaker", a, a.to_string());
                        }
                        lead("points", "sniper", g + a.min(1), (g + a.min(1)).to_string());
                    }
                }
                // Football scoreboards carry yardage leaders, not team stats.
                _ => {
                    let pts: f64 = f64::from(us.points);
                    let att: u32 = 24 + rng.below(16) as u32;
                    let cmp: u32 = (f64::from(att) * (0.55 + 0.15 * rng.unit())).round() as u32;
                    let pass_yds: u32 = (120.0 + 5.5 * pts + 60.0 * rng.unit()).round() as u32;
                    let pass_td: u32 = us.points / 14;
                    lead(
                        "passingYards",
                        "quarterback",
                        pass_yds,
                        format!("{cmp}-{att}, {pass_yds} YDS, {pass_td} TD"),
                    );
                    let car: u32 = 10 + rng.below(14) as u32;
                    let rush_yds: u32 = (f64::from(car) * (3.0 + 2.5 * rng.unit())).round() as u32;
                    lead(
                        "rushingYards",
                        "running back",
                        rush_yds,
                        format!("{car} CAR, {rush_yds} YDS"),
                    );
                    let rec: u32 = 3 + rng.below(7) as u32;
                    let rec_yds: u32 =
                        (f64::from(pass_yds) * (0.25 + 0.15 * rng.unit())).round() as u32;
                    lead(
                        "receivingYards",
                        "receiver",
                        rec_yds,
                        format!("{rec} REC, {rec_yds} YDS"),
                    );
                }
            }
            teams.push(TeamBox {
                record: Some(self.record(sport, date, us.team, us.won)),
                stats,
            });
        }
        leaders.sort_by(|a, b| (&a.category, &a.team_id).cmp(&(&b.category, &b.team_id)));
        let away_box: TeamBox = teams.pop().unwrap_or_default();
        let home_box: TeamBox = teams.pop().unwrap_or_default();
        BoxScore {
            home: home_box,
            away: away_box,
            leaders,
        }
    }

    /// A made-up player of `team` in `role`, the same for every game.
    fn player(&self, sport: &str, team_id: &str, role: &str) -> String {
        let mut rng: Rng = self.rng(&["player", sport, team_id, role]);
        format!(
            "{} {}",
            FIRST[rng.below(FIRST.len())],
            LAST[rng.below(LAST.len())]
        )
    }

    /// The team's season record after this game: the games it had played
    /// by `date` (about one a week in football, one every two days in the
    /// winter leagues), split by its strength, plus this result.
    fn record(&self, sport: &str, date: NaiveDate, team: &TeamInfo, won: bool) -> String {
        let (start, every, most): ((u32, u32), f64, f64) = match sport {
            "nba" => ((10, 22), 2.2, 81.0),
            "nhl" => ((10, 8), 2.2, 81.0),
            "ncaaf" => ((8, 24), 7.0, 12.0),
            _ => ((9, 5), 7.0, 16.0),
        };
        let year: i32 = if (date.month(), date.day()) >= start {
            date.year()
        } else {
            date.year() - 1
        };
        let opened: NaiveDate = NaiveDate::from_ymd_opt(year, start.0, start.1).unwrap_or(date);
        let before: f64 = ((date - opened).num_days() as f64 / every)
            .floor()
            .clamp(0.0, most);
        let p_win: f64 = 1.0 / (1.0 + (-0.8 * self.strength(sport, team)).exp());
        let wins: u32 = (before * p_win).round() as u32 + u32::from(won);
        let losses: u32 = before as u32 - (before * p_win).round() as u32 + u32::from(!won);
        format!("{wins}-{losses}")
    }
}

/// Basketball shooting that adds up: 2 × twos + 3 × threes + free throws
/// = points.
struct Shooting {
    fgm: u32,
    fga: u32,
    tpm: u32,
    tpa: u32,
    ftm: u32,
    fta: u32,
}

impl Shooting {
    fn draw(points: u32, rng: &mut Rng) -> Self {
        let mut ftm: u32 = points.min(12 + rng.below(10) as u32);
        let tpm: u32 = ((points - ftm) / 3).min(9 + rng.below(9) as u32);
        let mut rest: u32 = points - ftm - 3 * tpm;
        if rest % 2 == 1 {
            ftm += 1;
            rest -= 1;
        }
        let fgm: u32 = rest / 2 + tpm;
        let attempts =
            |made: u32, rate: f64| (f64::from(made) / rate).round().max(f64::from(made)) as u32;
        Self {
            fgm,
            fga: attempts(fgm, 0.42 + 0.1 * rng.unit()),
            tpm,
            tpa: attempts(tpm, 0.30 + 0.1 * rng.unit()),
            ftm,
            fta: attempts(ftm, 0.70 + 0.15 * rng.unit()),
        }
    }
}

/// `made / attempted` in percent with one decimal, as ESPN shows it.
fn pct(made: u32, attempted: u32) -> f64 {
    if attempted == 0 {
        return 0.0;
    }
    (1000.0 * f64::from(made) / f64::from(attempted)).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shooting_adds_up_to_the_points() {
        for points in [0u32, 1, 2, 3, 57, 88, 101, 131, 160] {
            for seed in 0..20u64 {
                let mut rng = Rng::keyed(&[&points.to_string(), &seed.to_string()]);
                let s = Shooting::draw(points, &mut rng);
                let twos: u32 = s.fgm - s.tpm;
                assert_eq!(2 * twos + 3 * s.tpm + s.ftm, points, "{points}");
                assert!(s.fga >= s.fgm && s.tpa >= s.tpm && s.fta >= s.ftm);
            }
        }
    }
}
