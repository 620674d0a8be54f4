//! Replayed live scores: each game of the day's replayed scoreboard as the
//! polls a live scoreboard poller would have seen: scheduled half an hour
//! before kickoff, in progress at the middle and the end of every period
//! (overtime included) with the period's points split across the two, then
//! final. Every poll is written as an ESPN scoreboard event and read back
//! with [`espn::validate_scoreboard`], the live poller's parser, before it
//! becomes a [`GameUpdate`].
//!
//! Wall-clock period lengths are typical broadcast lengths (clock plus
//! stoppages and breaks), so updates land at plausible times of the day.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{json, Value};

use super::{ReplayError, ReplayMessage, Replayed};
use crate::ingest::games::replay_scoreboard;
use crate::live::games::GameUpdate;
use crate::Sport;
use sources::espn::{self, BoxScore, GameRecord, GameState, TeamBox, TeamLine};

/// A league's rhythm.
#[derive(Debug, Clone, Copy)]
struct Pace {
    regulation: u32,
    /// Game clock of a period and of an overtime period, seconds (0: untimed).
    clock_secs: u32,
    overtime_clock_secs: u32,
    /// Wall-clock minutes of a period and of an overtime period.
    minutes: i64,
    overtime_minutes: i64,
}

fn pace(sport: &str) -> Pace {
    match sport {
        "nba" => Pace {
            regulation: 4,
            clock_secs: 720,
            overtime_clock_secs: 300,
            minutes: 35,
            overtime_minutes: 15,
        },
        "nhl" => Pace {
            regulation: 3,
            clock_secs: 1200,
            overtime_clock_secs: 300,
            minutes: 50,
            overtime_minutes: 15,
        },
        // College overtime is untimed possessions.
        "ncaaf" => Pace {
            regulation: 4,
            clock_secs: 900,
            overtime_clock_secs: 0,
            minutes: 50,
            overtime_minutes: 15,
        },
        _ => Pace {
            regulation: 4,
            clock_secs: 900,
            overtime_clock_secs: 600,
            minutes: 45,
            overtime_minutes: 20,
        },
    }
}

/// Games never played that day: no live updates.
const NOT_PLAYED: &[&str] = &["STATUS_POSTPONED", "STATUS_CANCELED", "STATUS_FORFEIT"];

/// What one scoreboard poll shows of a game.
#[derive(Debug, Clone)]
struct Poll {
    at: DateTime<Utc>,
    state: GameState,
    period: u32,
    clock_secs: u32,
    home_lines: Vec<u32>,
    away_lines: Vec<u32>,
    home: u32,
    away: u32,
}

/// The games of a day: the records replayed and their messages.
#[derive(Debug, Default)]
pub struct GamesReplay {
    pub messages: Vec<ReplayMessage>,
    /// The day's games that were played (weather follows their venues).
    pub records: Vec<GameRecord>,
    pub rejected: usize,
}

pub fn replay(sport: &'static Sport, day: NaiveDate) -> Result<GamesReplay, ReplayError> {
    let err = |e: &dyn ToString| ReplayError::source(sport, "games", day, e.to_string());
    let fetched = replay_scoreboard(sport, day).map_err(|e| err(&e))?;
    let payload: Value = serde_json::from_slice(&fetched.body)
        .map_err(|e| err(&format!("scoreboard {} is not JSON: {e}", fetched.url)))?;
    let checked = espn::validate_scoreboard(sport.key, &payload).map_err(|e| err(&e))?;
    let mut out = GamesReplay {
        rejected: checked.rejected.len(),
        ..GamesReplay::default()
    };
    for game in checked.good {
        if game
            .status_name
            .as_deref()
            .is_some_and(|s| NOT_PLAYED.contains(&s))
        {
            continue;
        }
        for poll in polls(sport.key, &game) {
            let update: GameUpdate = reparse(sport.key, &game, &poll).map_err(|e| err(&e))?;
            out.messages.push(ReplayMessage {
                time: poll.at,
                sport,
                payload: Replayed::Games(update),
            });
        }
        out.records.push(game);
    }
    Ok(out)
}

/// The polls of one game, in time order, as far as the record goes (a
/// capture of a live game stops at its current period).
fn polls(sport: &str, g: &GameRecord) -> Vec<Poll> {
    let p: Pace = pace(sport);
    let start: DateTime<Utc> = g.start_time;
    let mut polls: Vec<Poll> = vec![Poll {
        at: start - TimeDelta::minutes(30),
        state: GameState::Pre,
        period: 0,
        clock_secs: p.clock_secs,
        home_lines: Vec::new(),
        away_lines: Vec::new(),
        home: 0,
        away: 0,
    }];
    if g.state == GameState::Pre {
        return polls;
    }
    let (home, away): (u32, u32) = (g.home.score.unwrap_or(0), g.away.score.unwrap_or(0));
    let periods: usize = g.home.linescores.len().min(g.away.linescores.len());
    let consistent: bool = periods > 0
        && sum(&g.home.linescores[..periods]) == home
        && sum(&g.away.linescores[..periods]) == away;
    let mut at: DateTime<Utc> = start;
    if consistent {
        for i in 0..periods {
            let period: u32 = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let overtime: bool = period > p.regulation;
            let (clock, minutes) = if overtime {
                (p.overtime_clock_secs, p.overtime_minutes)
            } else {
                (p.clock_secs, p.minutes)
            };
            let lines = |l: &[u32], half: bool| -> Vec<u32> {
                let mut v: Vec<u32> = l[..i].to_vec();
                v.push(if half { l[i] / 2 } else { l[i] });
                v
            };
            for half in [true, false] {
                let (hl, al) = (
                    lines(&g.home.linescores, half),
                    lines(&g.away.linescores, half),
                );
                polls.push(Poll {
                    at: at + TimeDelta::minutes(if half { minutes / 2 } else { minutes }),
                    state: GameState::In,
                    period,
                    clock_secs: if half { clock / 2 } else { 0 },
                    home: sum(&hl),
                    away: sum(&al),
                    home_lines: hl,
                    away_lines: al,
                });
            }
            at += TimeDelta::minutes(minutes);
        }
    } else {
        // No usable line scores: one poll at half time with half the points.
        let period: u32 = g.period.max(1);
        at += TimeDelta::minutes(p.minutes * i64::from(period));
        polls.push(Poll {
            at: start + TimeDelta::minutes(p.minutes * i64::from(period) / 2),
            state: GameState::In,
            period: period.div_ceil(2),
            clock_secs: 0,
            home_lines: Vec::new(),
            away_lines: Vec::new(),
            home: home / 2,
            away: away / 2,
        });
    }
    if g.state == GameState::Post {
        let last: &Poll = polls.last().unwrap_or(&polls[0]);
        polls.push(Poll {
            at: at + TimeDelta::minutes(5),
            state: GameState::Post,
            period: last.period.max(g.period),
            clock_secs: 0,
            home_lines: last.home_lines.clone(),
            away_lines: last.away_lines.clone(),
            home,
            away,
        });
    }
    polls
}

fn sum(lines: &[u32]) -> u32 {
    lines.iter().sum()
}

fn display_clock(secs: u32) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// The poll as an ESPN scoreboard event, parsed back the way a live poll is.
fn reparse(sport: &str, g: &GameRecord, poll: &Poll) -> Result<GameUpdate, String> {
    let (name, description) = match poll.state {
        GameState::Pre => ("STATUS_SCHEDULED", "Scheduled"),
        GameState::In => ("STATUS_IN_PROGRESS", "In Progress"),
        GameState::Post => ("STATUS_FINAL", "Final"),
    };
    let state: &str = match poll.state {
        GameState::Pre => "pre",
        GameState::In => "in",
        GameState::Post => "post",
    };
    let (home_box, away_box, leaders) = box_at(g, poll).to_payload();
    let side = |t: &TeamLine, home_away: &str, lines: &[u32], score: u32, extra: Value| {
        let mut c: Value = json!({
            "id": t.team_id,
            "homeAway": home_away,
            "team": {"id": t.team_id, "displayName": t.name, "abbreviation": t.abbreviation},
            "score": score.to_string(),
            "linescores": lines.iter().map(|v| json!({"value": v})).collect::<Vec<_>>(),
        });
        if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    };
    let date: String = g.start_time.format("%Y-%m-%dT%H:%MZ").to_string();
    let venue: Value = g.venue.as_ref().map_or(Value::Null, |v| {
        json!({"id": v.venue_id, "fullName": v.name, "indoor": v.indoor,
               "address": {"city": v.city, "state": v.state}})
    });
    let event: Value = json!({
        "id": g.game_id,
        "date": date,
        "competitions": [{
            "id": g.game_id,
            "date": date,
            "venue": venue,
            "neutralSite": g.neutral_site,
            "leaders": leaders,
            "competitors": [
                side(&g.home, "home", &poll.home_lines, poll.home, home_box),
                side(&g.away, "away", &poll.away_lines, poll.away, away_box),
            ],
            "status": {
                "clock": poll.clock_secs,
                "displayClock": display_clock(poll.clock_secs),
                "period": poll.period,
                "type": {"name": name, "state": state, "completed": poll.state == GameState::Post,
                         "description": description, "detail": description}
            }
        }]
    });
    let checked =
        espn::validate_scoreboard(sport, &json!({"events": [event]})).map_err(|e| e.to_string())?;
    match (checked.good.first(), checked.rejected.first()) {
        (Some(record), _) => Ok(GameUpdate::from(record)),
        (None, Some(r)) => Err(format!("poll of game {} rejected: {}", g.game_id, r.reason)),
        (None, None) => Err(format!("poll of game {} vanished", g.game_id)),
    }
}

/// What the box score showed at a poll: before the start only the
/// records; in progress the counting statistics scaled to the share of the
/// game played (rates and averages as final) and no leaders yet; at the
/// final poll all of it (docs/data-model.md#box-scores).
fn box_at(g: &GameRecord, poll: &Poll) -> BoxScore {
    let full: &BoxScore = &g.box_score;
    let records_only = |t: &TeamBox| TeamBox {
        record: t.record.clone(),
        stats: Default::default(),
    };
    match poll.state {
        GameState::Post => full.clone(),
        GameState::Pre => BoxScore {
            home: records_only(&full.home),
            away: records_only(&full.away),
            leaders: Vec::new(),
        },
        GameState::In => {
            let periods: usize = g.home.linescores.len().max(1);
            let played: f64 = f64::from(poll.period.saturating_sub(1))
                + if poll.clock_secs > 0 { 0.5 } else { 1.0 };
            let share: f64 = (played / periods as f64).clamp(0.0, 1.0);
            let scaled = |t: &TeamBox| TeamBox {
                record: t.record.clone(),
                stats: t
                    .stats
                    .iter()
                    .map(|(name, v)| {
                        let rate: bool = name.ends_with("Pct")
                            || name.starts_with("avg")
                            || name.contains("Percentage");
                        (name.clone(), if rate { *v } else { (v * share).round() })
                    })
                    .collect(),
            };
            BoxScore {
                home: scaled(&full.home),
                away: scaled(&full.away),
                leaders: Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::games::{GameStatus, GameTracker};

    #[test]
    fn a_generated_day_replays_every_game_from_scheduled_to_final() {
        let nfl: &'static Sport = crate::sport("nfl").expect("nfl");
        // A Sunday in the generated season (no capture needed).
        let day = NaiveDate::from_ymd_opt(2025, 10, 12).expect("date");
        let replay: GamesReplay = replay(nfl, day).expect("replays");
        assert!(replay.records.len() >= 10, "{} games", replay.records.len());
        let mut tracker = GameTracker::default();
        let mut messages = replay.messages.clone();
        messages.sort_by_key(|m| m.time);
        for m in &messages {
            let Replayed::Games(u) = &m.payload else {
                panic!("not a games message");
            };
            assert_eq!(
                tracker.apply(m.time, u),
                crate::live::games::Applied::Updated,
                "{u:?}"
            );
        }
        for g in &replay.records {
            let state = tracker.get(&g.game_id).expect("tracked");
            assert_eq!(state.status, GameStatus::Final, "{}", g.game_id);
            assert_eq!(
                (state.home_score, state.away_score),
                (g.home.score.unwrap_or(0), g.away.score.unwrap_or(0))
            );
            let by_period: u32 = state.period_points.values().map(|(h, a)| h + a).sum();
            assert_eq!(by_period, state.home_score + state.away_score);
            assert_eq!(state.period as usize, g.home.linescores.len());
            // The final poll carries the whole box score: yardage leaders
            // for both teams, and records that count this game.
            let b = state.box_score.as_ref().expect("a box score");
            assert_eq!(b, &g.box_score, "{}", g.game_id);
            assert_eq!(b.leaders.len(), 6, "{:?}", b.leaders);
            assert!(b.home.record.is_some() && b.away.record.is_some());
        }
        // Polls in progress carry no leaders yet, and scale the counts.
        let in_play: Vec<&GameUpdate> = messages
            .iter()
            .filter_map(|m| match &m.payload {
                Replayed::Games(u) if u.status == GameStatus::InProgress => Some(u),
                _ => None,
            })
            .collect();
        assert!(!in_play.is_empty());
        assert!(in_play
            .iter()
            .all(|u| u.box_score.as_ref().is_some_and(|b| b.leaders.is_empty())));
    }

    #[test]
    fn basketball_counts_grow_through_a_replayed_game_and_rates_stay() {
        let nba: &'static Sport = crate::sport("nba").expect("nba");
        let day = NaiveDate::from_ymd_opt(2025, 1, 15).expect("date");
        let replay: GamesReplay = replay(nba, day).expect("replays");
        let g = &replay.records[0];
        let mut rebounds: Vec<f64> = Vec::new();
        for m in replay.messages.iter().filter(|m| m.key() == g.game_id) {
            let Replayed::Games(u) = &m.payload else {
                continue;
            };
            if let Some(stats) = u.box_score.as_ref().map(|b| &b.home.stats) {
                if let Some(r) = stats.get("rebounds") {
                    rebounds.push(*r);
                    assert_eq!(
                        stats["fieldGoalPct"],
                        g.box_score.home.stats["fieldGoalPct"]
                    );
                }
            }
        }
        assert!(rebounds.windows(2).all(|w| w[0] <= w[1]), "{rebounds:?}");
        assert_eq!(rebounds.last(), g.box_score.home.stats.get("rebounds"));
    }
}

#[cfg(test)]
mod capture_tests {
    use super::*;
    use sources::replay::Replay;

    #[test]
    fn every_captured_scoreboard_replays() {
        for sport in crate::SPORTS {
            for day in Replay.scoreboard_dates(sport.key).expect("dates") {
                let r: GamesReplay = replay(sport, day).expect("replays");
                let mut last: std::collections::BTreeMap<&str, DateTime<Utc>> = Default::default();
                for m in &r.messages {
                    let previous = last.insert(m.key(), m.time);
                    assert!(
                        previous.is_none_or(|p| p < m.time),
                        "{} {}",
                        sport.key,
                        m.key()
                    );
                }
                eprintln!(
                    "{} {day}: {} games, {} messages",
                    sport.key,
                    r.records.len(),
                    r.messages.len()
                );
            }
        }
    }
}
