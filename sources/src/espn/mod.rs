//! ESPN's unofficial site API: scoreboard and game summary.
//!
//! The models keep only what BetFlow uses and tolerate what varies between
//! captures (missing, extra and `null` fields); the lake keeps the full
//! bytes. [`validate_scoreboard`] turns a payload into [`GameRecord`]s.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SourceError;
use crate::http::{Fetched, HttpClient, HttpConfig};
use crate::lenient;
use crate::sport::Sport;
use crate::text::{self, MAX_ID, MAX_NAME};
use crate::{decode_value, Validated};

pub mod box_score;

pub use box_score::{BoxScore, PlayerLeader, TeamBox};

/// Production base URL.
pub const BASE_URL: &str = "https://site.api.espn.com";
/// Short name in logs, errors and rejections.
pub const API: &str = "espn";
/// Requests per second (docs/data-model.md#sources): the API is keyless but
/// unofficial.
pub const RATE_PER_SECOND: f64 = 2.0;

/// `/scoreboard` response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Scoreboard {
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub events: Vec<Event>,
    pub season: Option<Season>,
    pub week: Option<Week>,
}

/// Season reference: `{year, type}` (type 1 pre, 2 regular, 3 post season).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Season {
    pub year: Option<i32>,
    #[serde(rename = "type")]
    pub season_type: Option<i32>,
    pub slug: Option<String>,
}

/// A week: `{number}` on scoreboards, a bare number in summary headers.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Week {
    Number(u32),
    Object { number: Option<u32> },
}

impl Week {
    pub fn number(&self) -> Option<u32> {
        match self {
            Week::Number(n) => Some(*n),
            Week::Object { number } => *number,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    pub date: Option<String>,
    pub name: Option<String>,
    pub short_name: Option<String>,
    pub season: Option<Season>,
    pub week: Option<Week>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub competitions: Vec<Competition>,
    pub status: Option<Status>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Competition {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    pub date: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub attendance: Option<f64>,
    pub neutral_site: Option<bool>,
    pub venue: Option<Venue>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub competitors: Vec<Competitor>,
    pub status: Option<Status>,
    /// Football's game leaders (`[{name, leaders: [{athlete, team, value}]}]`),
    /// kept as sent: [`box_score`] reads them leniently.
    #[serde(default)]
    pub leaders: Value,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Venue {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    pub full_name: Option<String>,
    pub address: Option<Address>,
    pub indoor: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub capacity: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Competitor {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// `home` or `away`.
    pub home_away: Option<String>,
    pub team: Option<Team>,
    /// A string in the payload (`"24"`), empty or `"0"` before kickoff.
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub score: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub linescores: Vec<LineScore>,
    pub winner: Option<bool>,
    /// Team statistics (`[{name, displayValue}]`), the team's leaders and
    /// its records, kept as sent: [`box_score`] reads them leniently, so
    /// a malformed one never rejects the game.
    #[serde(default)]
    pub statistics: Value,
    #[serde(default)]
    pub leaders: Value,
    #[serde(default)]
    pub records: Value,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub abbreviation: Option<String>,
    pub location: Option<String>,
}

/// Points in one period: scoreboards send `value` (number), summaries only
/// `displayValue` (string).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LineScore {
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub value: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub display_value: Option<String>,
    pub period: Option<u32>,
}

impl LineScore {
    /// The period's points, if it is a non-negative whole number.
    pub fn points(&self) -> Option<u32> {
        let v: f64 = match self.value {
            Some(v) => v,
            None => self.display_value.as_deref()?.trim().parse::<f64>().ok()?,
        };
        whole(v)
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Seconds left in the period (int or float depending on the sport).
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub clock: Option<f64>,
    pub display_clock: Option<String>,
    pub period: Option<u32>,
    #[serde(rename = "type")]
    pub kind: Option<StatusType>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusType {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    /// e.g. `STATUS_FINAL`, `STATUS_POSTPONED`.
    pub name: Option<String>,
    /// `pre`, `in` or `post`.
    pub state: Option<String>,
    pub completed: Option<bool>,
    pub description: Option<String>,
    pub detail: Option<String>,
    pub short_detail: Option<String>,
}

/// `/summary?event=ID` response: the header (teams, scores, status) and
/// game info (venue, attendance). Box scores and plays stay in the raw bytes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub header: Option<SummaryHeader>,
    pub game_info: Option<GameInfo>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryHeader {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    pub season: Option<Season>,
    pub week: Option<Week>,
    #[serde(default, deserialize_with = "lenient::null_as_empty")]
    pub competitions: Vec<Competition>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GameInfo {
    pub venue: Option<Venue>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    pub attendance: Option<f64>,
}

/// Game state as ESPN reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GameState {
    Pre,
    In,
    Post,
}

impl GameState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pre" => Some(GameState::Pre),
            "in" => Some(GameState::In),
            "post" => Some(GameState::Post),
            _ => None,
        }
    }
}

/// One side of a game, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamLine {
    pub team_id: String,
    pub name: String,
    pub abbreviation: Option<String>,
    /// `None` before the game starts.
    pub score: Option<u32>,
    /// Points per period, overtime periods included.
    pub linescores: Vec<u32>,
}

/// A venue, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenueRecord {
    pub venue_id: String,
    pub name: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// `None` when ESPN does not say (summaries never do).
    pub indoor: Option<bool>,
}

/// One game as BetFlow's silver `games` table needs it
/// (docs/data-model.md#silvergames).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameRecord {
    pub sport: String,
    pub game_id: String,
    pub start_time: DateTime<Utc>,
    pub season: Option<i32>,
    pub season_type: Option<i32>,
    pub week: Option<u32>,
    pub state: GameState,
    /// ESPN's status name, e.g. `STATUS_FINAL`, `STATUS_POSTPONED`.
    pub status_name: Option<String>,
    pub status_detail: Option<String>,
    pub period: u32,
    pub clock: String,
    pub home: TeamLine,
    pub away: TeamLine,
    pub venue: Option<VenueRecord>,
    pub attendance: Option<u64>,
    pub neutral_site: bool,
    /// Team statistics, records and leaders, when the scoreboard has them.
    pub box_score: BoxScore,
}

impl GameRecord {
    /// More periods than regulation (4; NHL 3) were played.
    pub fn overtime(&self, regulation_periods: u32) -> bool {
        self.home.linescores.len().max(self.away.linescores.len()) > regulation_periods as usize
    }
}

/// Payload-level context a game inherits when the event lacks it.
#[derive(Debug, Clone, Default)]
struct Context {
    season: Option<Season>,
    week: Option<u32>,
    venue: Option<Venue>,
    attendance: Option<f64>,
}

const SCOREBOARD: &str = "espn.scoreboard";
const SUMMARY: &str = "espn.summary";

/// Turns a scoreboard payload into games; an event that cannot be decoded
/// or breaks a rule is rejected alone. Errors only when the payload itself
/// has no `events` list.
pub fn validate_scoreboard(
    sport: &str,
    payload: &Value,
) -> Result<Validated<GameRecord>, SourceError> {
    let events: &Vec<Value> = payload
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| SourceError::Decode {
            api: API,
            what: format!("{sport} scoreboard"),
            path: "events".to_string(),
            message: "missing or not a list".to_string(),
        })?;
    let context = Context {
        season: payload
            .get("season")
            .and_then(|v| decode_value::<Season>(v).ok()),
        week: payload
            .get("week")
            .and_then(|v| decode_value::<Week>(v).ok())
            .and_then(|w| w.number()),
        ..Context::default()
    };
    let mut out: Validated<GameRecord> = Validated::default();
    for raw in events {
        match decode_value::<Event>(raw) {
            Ok(event) => match game_from_event(sport, &event, &context) {
                Ok(game) => out.good.push(game),
                Err(reason) => out.reject(SCOREBOARD, reason, raw),
            },
            Err(reason) => out.reject(SCOREBOARD, reason, raw),
        }
    }
    Ok(out)
}

/// Turns a summary payload into its one game (good or rejected).
pub fn validate_summary(sport: &str, payload: &Value) -> Validated<GameRecord> {
    let mut out: Validated<GameRecord> = Validated::default();
    let summary: Summary = match decode_value::<Summary>(payload) {
        Ok(s) => s,
        Err(reason) => {
            out.reject(SUMMARY, reason, payload);
            return out;
        }
    };
    let Some(header) = summary.header else {
        out.reject(SUMMARY, "no header", payload);
        return out;
    };
    let game_info: GameInfo = summary.game_info.unwrap_or_default();
    let event = Event {
        id: header.id.clone(),
        competitions: header.competitions.clone(),
        ..Event::default()
    };
    let context = Context {
        season: header.season.clone(),
        week: header.week.as_ref().and_then(Week::number),
        venue: game_info.venue,
        attendance: game_info.attendance,
    };
    match game_from_event(sport, &event, &context) {
        Ok(game) => out.good.push(game),
        Err(reason) => out.reject(SUMMARY, reason, payload),
    }
    out
}

/// The rules a game must pass (docs/quality.md#validation-and-dead-letters).
fn game_from_event(sport: &str, event: &Event, ctx: &Context) -> Result<GameRecord, String> {
    let game_id: String = non_empty(event.id.as_deref()).ok_or("event has no id")?;
    let game_id: String = text::field("event id", &game_id, MAX_ID)?;
    let comp: &Competition = event
        .competitions
        .first()
        .ok_or_else(|| format!("event {game_id} has no competitions"))?;
    if comp.competitors.is_empty() {
        return Err(format!("event {game_id} has no competitors"));
    }
    let side = |which: &str| -> Result<&Competitor, String> {
        comp.competitors
            .iter()
            .find(|c| c.home_away.as_deref() == Some(which))
            .ok_or_else(|| format!("event {game_id} has no {which} competitor"))
    };
    let status: &Status = comp
        .status
        .as_ref()
        .or(event.status.as_ref())
        .ok_or_else(|| format!("event {game_id} has no status"))?;
    let kind: &StatusType = status
        .kind
        .as_ref()
        .ok_or_else(|| format!("event {game_id} has no status type"))?;
    let state_text: &str = kind.state.as_deref().unwrap_or("");
    let state: GameState = GameState::parse(state_text).ok_or_else(|| {
        format!("event {game_id} has status state {state_text:?}, not pre|in|post")
    })?;
    let date_text: &str = comp
        .date
        .as_deref()
        .or(event.date.as_deref())
        .ok_or_else(|| format!("event {game_id} has no date"))?;
    let start_time: DateTime<Utc> = lenient::parse_time(date_text)
        .ok_or_else(|| format!("event {game_id} has an invalid date {date_text:?}"))?;
    let (home_c, away_c): (&Competitor, &Competitor) = (side("home")?, side("away")?);
    let home: TeamLine = team_line(&game_id, home_c, state)?;
    let away: TeamLine = team_line(&game_id, away_c, state)?;
    let box_score: BoxScore =
        box_score::read(&comp.leaders, home_c, &home.team_id, away_c, &away.team_id);
    let season: Option<&Season> = event.season.as_ref().or(ctx.season.as_ref());
    let venue: Option<VenueRecord> = comp
        .venue
        .as_ref()
        .or(ctx.venue.as_ref())
        .and_then(venue_record);
    let attendance: Option<u64> = comp
        .attendance
        .or(ctx.attendance)
        .and_then(whole)
        .map(u64::from)
        .filter(|a| *a > 0);
    Ok(GameRecord {
        sport: sport.to_string(),
        game_id,
        start_time,
        season: season.and_then(|s| s.year),
        season_type: season.and_then(|s| s.season_type),
        week: event.week.as_ref().and_then(Week::number).or(ctx.week),
        state,
        status_name: kind.name.clone(),
        status_detail: kind.detail.clone().or_else(|| kind.description.clone()),
        period: status.period.unwrap_or(0),
        clock: status
            .display_clock
            .clone()
            .unwrap_or_else(|| "0:00".to_string()),
        home,
        away,
        venue,
        attendance,
        neutral_site: comp.neutral_site.unwrap_or(false),
        box_score,
    })
}

fn team_line(game_id: &str, c: &Competitor, state: GameState) -> Result<TeamLine, String> {
    let side: &str = c.home_away.as_deref().unwrap_or("?");
    let team: &Team = c
        .team
        .as_ref()
        .ok_or_else(|| format!("event {game_id}: {side} competitor has no team"))?;
    let team_id: String = non_empty(team.id.as_deref().or(c.id.as_deref()))
        .ok_or_else(|| format!("event {game_id}: {side} team has no id"))?;
    let team_id: String = text::field(
        &format!("event {game_id}: {side} team id"),
        &team_id,
        MAX_ID,
    )?;
    let name: String = non_empty(team.display_name.as_deref().or(team.name.as_deref()))
        .ok_or_else(|| format!("event {game_id}: {side} team has no name"))?;
    let name: String = text::field(
        &format!("event {game_id}: {side} team name"),
        &name,
        MAX_NAME,
    )?;
    let score: Option<u32> = match c.score.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<f64>().ok().and_then(whole).ok_or_else(|| {
            format!("event {game_id}: {side} score {text:?} is not a whole number ≥ 0")
        })?),
    };
    if state != GameState::Pre && score.is_none() {
        return Err(format!(
            "event {game_id}: {side} has no score though the game is {state:?}"
        ));
    }
    let linescores: Vec<u32> = c
        .linescores
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.points().ok_or_else(|| {
                format!(
                    "event {game_id}: {side} linescore {} is not a whole number ≥ 0",
                    i + 1
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(TeamLine {
        team_id,
        name,
        abbreviation: team
            .abbreviation
            .as_deref()
            .and_then(|a| text::bounded(a, MAX_ID).ok()),
        score: if state == GameState::Pre { None } else { score },
        linescores,
    })
}

fn venue_record(v: &Venue) -> Option<VenueRecord> {
    let venue_id: String = text::bounded(&non_empty(v.id.as_deref())?, MAX_ID).ok()?;
    let address: Option<&Address> = v.address.as_ref();
    // Optional text that breaks the bounds is dropped, not the game.
    let clean = |s: Option<&String>| s.and_then(|s| text::bounded(s, MAX_NAME).ok());
    Some(VenueRecord {
        venue_id,
        name: clean(v.full_name.as_ref()),
        city: clean(address.and_then(|a| a.city.as_ref())),
        state: clean(address.and_then(|a| a.state.as_ref())),
        indoor: v.indoor,
    })
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `v` as a count, when it is a finite whole number ≥ 0.
fn whole(v: f64) -> Option<u32> {
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX)).then_some(v as u32)
}

/// The ESPN site API client.
#[derive(Debug, Clone)]
pub struct EspnClient {
    http: HttpClient,
}

impl EspnClient {
    /// A client with production settings against [`BASE_URL`].
    pub fn production() -> Result<Self, SourceError> {
        Self::new(HttpConfig::new(BASE_URL, RATE_PER_SECOND))
    }

    pub fn new(config: HttpConfig) -> Result<Self, SourceError> {
        Ok(Self {
            http: HttpClient::new(API, config)?,
        })
    }

    /// The scoreboard of `sport` for the sports day `date` (ESPN lists games
    /// by Eastern date), or the current one when `date` is `None` (live
    /// polling). Returns the raw bytes; see [`Self::scoreboard`] for a decode.
    pub async fn fetch_scoreboard(
        &self,
        sport: &Sport,
        date: Option<NaiveDate>,
    ) -> Result<Fetched, SourceError> {
        let path: String = format!("/apis/site/v2/sports/{}/scoreboard", sport.espn_path);
        let query: Vec<(&str, String)> = date
            .map(|d| vec![("dates", d.format("%Y%m%d").to_string())])
            .unwrap_or_default();
        self.http.get(&path, &query).await
    }

    /// The scoreboard, decoded.
    pub async fn scoreboard(
        &self,
        sport: &Sport,
        date: Option<NaiveDate>,
    ) -> Result<Scoreboard, SourceError> {
        self.fetch_scoreboard(sport, date).await?.decode(API)
    }

    /// The scoreboard's games, validated: good games and rejected events.
    pub async fn games(
        &self,
        sport: &Sport,
        date: Option<NaiveDate>,
    ) -> Result<Validated<GameRecord>, SourceError> {
        let payload: Value = self.fetch_scoreboard(sport, date).await?.decode(API)?;
        validate_scoreboard(sport.key, &payload)
    }

    /// The game summary (box score, plays …) of `event_id`, raw.
    pub async fn fetch_summary(
        &self,
        sport: &Sport,
        event_id: &str,
    ) -> Result<Fetched, SourceError> {
        let path: String = format!("/apis/site/v2/sports/{}/summary", sport.espn_path);
        self.http
            .get(&path, &[("event", event_id.to_string())])
            .await
    }

    /// The game summary, decoded.
    pub async fn summary(&self, sport: &Sport, event_id: &str) -> Result<Summary, SourceError> {
        self.fetch_summary(sport, event_id).await?.decode(API)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::validate_scoreboard;

    fn event(id: &str, home_name: &str) -> Value {
        json!({
            "id": id, "date": "2024-01-01T00:00Z",
            "competitions": [{
                "competitors": [
                    {"homeAway": "home", "team": {"id": "h", "displayName": home_name}, "score": "3"},
                    {"homeAway": "away", "team": {"id": "a", "displayName": "Away"}, "score": "1"}
                ],
                "venue": {"id": "v", "fullName": "Arena\u{0}", "address": {"city": "Town"}},
                "status": {"period": 3, "type": {"state": "post"}}
            }]
        })
    }

    #[test]
    fn a_team_name_out_of_bounds_rejects_its_game_alone() {
        let huge: String = "x".repeat(5 * 1024 * 1024);
        let payload = json!({"events": [
            event("1", "Home\u{0}"),
            event("2", &huge),
            event("3", "Home\u{202E}emoH"),
            event("4", "Home"),
        ]});
        let v = validate_scoreboard("nhl", &payload).expect("events");
        let good: Vec<&str> = v.good.iter().map(|g| g.game_id.as_str()).collect();
        assert_eq!(good, ["4"]);
        let reasons: Vec<&str> = v.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "event 1: home team name holds a NUL character",
                "event 2: home team name is 5242880 characters long (at most 200)",
                "event 3: home team name holds the bidirectional override U+202E",
            ]
        );
        // An optional field out of bounds is dropped, the game kept.
        let venue = v.good[0].venue.as_ref().expect("venue");
        assert_eq!(
            (venue.name.as_deref(), venue.city.as_deref()),
            (None, Some("Town"))
        );
    }
}
