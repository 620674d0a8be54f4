//! The Odds API events → ESPN games, by sport, teams and commence time
//! within a tolerance (docs/data-model.md#event-to-game-mapping).
//!
//! An event maps to the game of its sport whose home and away team ids are
//! the ones the event's team names resolve to, and whose start is nearest
//! the event's commence time, within [`TOLERANCE_HOURS`]. Names resolve
//! through the games themselves: every name a team was listed under in
//! silver.games resolves to its id, so a renamed team still matches.
//!
//! Markets open up to [`LEAD_HOURS`] before a game, so the snapshots of one
//! sports day quote games of the following days, which the nightly games
//! DAG has not modelled when that day's odds are. The map that counts is
//! therefore gold's: gold derives it afresh over the whole history each
//! night, when every game played so far is in silver, so it does not
//! depend on the order in which the nightly DAGs ran. Silver maps its day
//! with the same rule against the games modelled by then ([`silver_window`])
//! and keeps what it could not map null; its quality gate flags only the
//! events whose games should have been there ([`modelled_until`]).

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use polars::prelude::*;

/// The start of an event and of its game may differ by this much (sources
/// disagree by minutes; a game moved by a day is another slate, and the
/// same pairing can meet again the next day).
pub const TOLERANCE_HOURS: i64 = 12;

/// How far ahead of its start a game is quoted in the day's snapshots
/// (the offline season generator opens markets this early too), which
/// bounds the days of games one day's snapshots can name.
pub const LEAD_HOURS: i64 = 72;

/// The silver.odds columns the map is derived from.
pub const EVENT_COLUMNS: [&str; 6] = [
    "sport",
    "event_id",
    "snapshot_time",
    "commence_time",
    "home_team",
    "away_team",
];

/// The silver.games columns the map reads.
pub const GAME_COLUMNS: [&str; 7] = [
    "sport",
    "game_id",
    "start_time",
    "home_team_id",
    "away_team_id",
    "home_team_name",
    "away_team_name",
];

const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// The sports days whose games the snapshots of `day` can quote: the day
/// before (a start moved across midnight within the tolerance) to the
/// last day a game opened on `day` can start on, plus the tolerance.
pub fn silver_window(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let ahead = (LEAD_HOURS + TOLERANCE_HOURS + 23) / 24;
    (day - Duration::days(1), day + Duration::days(ahead))
}

/// When the games of sports days up to `through` (inclusive) are all
/// modelled, an event commencing before this instant should have its game:
/// the end of `through` in New York, as UTC.
pub fn modelled_until(through: NaiveDate) -> DateTime<Utc> {
    let next = through + Duration::days(1);
    chrono_tz::America::New_York
        .from_local_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&next.and_hms_opt(5, 0, 0).unwrap_or_default()))
}

/// One row per (sport, event) of `odds` (any frame with
/// [`EVENT_COLUMNS`]) holding its latest snapshot's columns: a rescheduled
/// game keeps its event id, and the latest snapshot has its final time and
/// names. The events of stacked frames reduce again to the events of the
/// whole, so a long history can be reduced part by part.
pub fn events(odds: LazyFrame) -> LazyFrame {
    odds.select(EVENT_COLUMNS.map(col))
        .sort(
            ["sport", "event_id", "snapshot_time"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .unique_stable(Some(cols(["sport", "event_id"])), UniqueKeepStrategy::Last)
}

/// (sport, name, team id) for every name each team was listed under.
fn team_names(games: LazyFrame) -> PolarsResult<LazyFrame> {
    let side = |us: &str| {
        games.clone().select([
            col("sport"),
            col(format!("{us}_team_name")).alias("team_name"),
            col(format!("{us}_team_id")).alias("team_id"),
        ])
    };
    Ok(concat([side("home"), side("away")], UnionArgs::default())?
        .drop_nulls(None)
        .unique_stable(None, UniqueKeepStrategy::First))
}

/// For every event of `events` (as [`events`] returns them): sport,
/// event_id, commence_time and the game it maps to (null when none does).
/// `games` is any frame with [`GAME_COLUMNS`].
pub fn event_games(events: LazyFrame, games: LazyFrame) -> PolarsResult<LazyFrame> {
    let names = team_names(games.clone())?;
    let resolve = |lf: LazyFrame, side: &str| {
        let by_name = names.clone().select([
            col("sport"),
            col("team_name").alias(format!("{side}_team")),
            col("team_id").alias(format!("{side}_team_id")),
        ]);
        lf.join(
            by_name,
            [col("sport"), col(format!("{side}_team"))],
            [col("sport"), col(format!("{side}_team"))],
            JoinArgs::new(JoinType::Inner),
        )
    };
    let resolved = resolve(
        resolve(
            events.clone().select([
                col("sport"),
                col("event_id"),
                col("commence_time"),
                col("home_team"),
                col("away_team"),
            ]),
            "home",
        ),
        "away",
    );
    let candidates = games.select([
        col("sport"),
        col("home_team_id"),
        col("away_team_id"),
        col("game_id"),
        col("start_time"),
    ]);
    let micros = |c: &str| col(c).cast(DataType::Int64);
    let matched = resolved
        .join(
            candidates,
            [col("sport"), col("home_team_id"), col("away_team_id")],
            [col("sport"), col("home_team_id"), col("away_team_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .with_column(
            (micros("commence_time") - micros("start_time"))
                .abs()
                .alias("gap"),
        )
        .filter(col("gap").lt_eq(lit(TOLERANCE_HOURS * MICROS_PER_HOUR)))
        // The nearest game wins; the id breaks a tie so reruns agree.
        .sort(
            ["sport", "event_id", "gap", "game_id"],
            SortMultipleOptions::default(),
        )
        .unique_stable(Some(cols(["sport", "event_id"])), UniqueKeepStrategy::First)
        .select([col("sport"), col("event_id"), col("game_id")]);
    Ok(events
        .select([col("sport"), col("event_id"), col("commence_time")])
        .join(
            matched,
            [col("sport"), col("event_id")],
            [col("sport"), col("event_id")],
            JoinArgs::new(JoinType::Left),
        ))
}

/// `odds` with `game_id` from `map` ([`event_games`]), replacing any it
/// had: whatever mapped the rows before, one rule decides.
pub fn with_games(odds: LazyFrame, map: LazyFrame) -> LazyFrame {
    join_games(odds, map, JoinType::Left)
}

/// The rows of `odds` whose events are in `map` (a part of an
/// [`event_games`] map), with their `game_id` as [`with_games`] sets it.
pub fn of_mapped_events(odds: LazyFrame, map: LazyFrame) -> LazyFrame {
    join_games(odds, map, JoinType::Inner)
}

fn join_games(odds: LazyFrame, map: LazyFrame, how: JoinType) -> LazyFrame {
    const MAPPED: &str = "mapped_game_id";
    odds.join(
        map.select([col("sport"), col("event_id"), col("game_id").alias(MAPPED)]),
        [col("sport"), col("event_id")],
        [col("sport"), col("event_id")],
        JoinArgs::new(how),
    )
    .with_column(col(MAPPED).alias("game_id"))
    .drop(by_name([MAPPED], true, false))
}

/// Counts of a map: events, those mapped, and of the unmapped ones those
/// commencing at or after `until` (their games are not modelled yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MapCounts {
    pub events: usize,
    pub mapped: usize,
    pub awaiting_games: usize,
}

impl MapCounts {
    /// Events neither mapped nor waiting for their games.
    pub fn unmatched(&self) -> usize {
        self.events
            .saturating_sub(self.mapped)
            .saturating_sub(self.awaiting_games)
    }
}

/// Unmapped, and commencing at or after `until` (the end of the last day
/// whose games are modelled): its game may simply not be in silver yet, so
/// it is not counted as a miss.
pub fn awaiting_games(until: DateTime<Utc>) -> Expr {
    col("game_id").is_null().and(
        col("commence_time")
            .cast(DataType::Int64)
            .gt_eq(lit(until.timestamp_micros())),
    )
}

/// The map already applied to `odds` (rows with [`EVENT_COLUMNS`] and
/// `game_id`), in [`event_games`]' shape: each event's game and latest
/// commence time.
pub fn applied(odds: LazyFrame) -> LazyFrame {
    odds.select([
        col("sport"),
        col("event_id"),
        col("snapshot_time"),
        col("commence_time"),
        col("game_id"),
    ])
    .sort(
        ["sport", "event_id", "snapshot_time"],
        SortMultipleOptions::default().with_maintain_order(true),
    )
    .unique_stable(Some(cols(["sport", "event_id"])), UniqueKeepStrategy::Last)
}

/// [`MapCounts`] of a map ([`event_games`] or [`applied`]).
pub fn counts(map: LazyFrame, until: DateTime<Utc>) -> PolarsResult<MapCounts> {
    let out = map
        .select([
            len().alias("events"),
            col("game_id").is_not_null().sum().alias("mapped"),
            awaiting_games(until).sum().alias("awaiting"),
        ])
        .collect()?;
    let get = |c: &str| -> PolarsResult<usize> {
        let v = out.column(c)?.cast(&DataType::UInt64)?;
        Ok(v.u64()?.get(0).unwrap_or(0) as usize)
    };
    Ok(MapCounts {
        events: get("events")?,
        mapped: get("mapped")?,
        awaiting_games: get("awaiting")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
    use polars::prelude::*;

    use super::*;
    use crate::transform::frame::FrameBuilder;

    fn kickoff(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 9, day, hour, 0, 0).unwrap()
    }

    /// silver.games rows: (game id, home name, away name, start); NFL
    /// teams whose ids are their lower-cased names. Silver's tests use it too.
    pub(crate) fn games(rows: &[(&str, &str, &str, DateTime<Utc>)]) -> LazyFrame {
        let id = |name: &str| Some(format!("nfl:{}", name.to_ascii_lowercase()));
        FrameBuilder::new()
            .str("sport", rows.iter().map(|_| Some("nfl")))
            .str("game_id", rows.iter().map(|r| Some(r.0)))
            .ts("start_time", rows.iter().map(|r| Some(r.3)))
            .str("home_team_id", rows.iter().map(|r| id(r.1)))
            .str("away_team_id", rows.iter().map(|r| id(r.2)))
            .str("home_team_name", rows.iter().map(|r| Some(r.1)))
            .str("away_team_name", rows.iter().map(|r| Some(r.2)))
            .build()
            .unwrap()
            .lazy()
    }

    /// Odds rows: (event, home, away, commence, snapshot).
    type Row<'a> = (&'a str, &'a str, &'a str, DateTime<Utc>, DateTime<Utc>);

    fn odds(rows: &[Row]) -> LazyFrame {
        FrameBuilder::new()
            .str("sport", rows.iter().map(|_| Some("nfl")))
            .str("event_id", rows.iter().map(|r| Some(r.0)))
            .ts("snapshot_time", rows.iter().map(|r| Some(r.4)))
            .ts("commence_time", rows.iter().map(|r| Some(r.3)))
            .str("home_team", rows.iter().map(|r| Some(r.1)))
            .str("away_team", rows.iter().map(|r| Some(r.2)))
            .build()
            .unwrap()
            .lazy()
    }

    fn mapped(odds: LazyFrame, games: LazyFrame) -> Vec<(String, Option<String>)> {
        let map = event_games(events(odds.clone()), games).unwrap();
        let df = with_games(odds, map)
            .sort(["event_id"], SortMultipleOptions::default())
            .collect()
            .unwrap();
        let ev = df.column("event_id").unwrap().str().unwrap().clone();
        let game = df.column("game_id").unwrap().str().unwrap().clone();
        ev.iter()
            .zip(game.iter())
            .map(|(e, g)| (e.unwrap().to_owned(), g.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn a_snapshot_two_days_out_maps_to_its_game_and_another_matchup_does_not() {
        let sunday = kickoff(8, 17);
        let slate = games(&[
            ("nfl:1", "Bills", "Jets", sunday),
            ("nfl:2", "Chiefs", "Ravens", sunday),
        ]);
        let friday = sunday - Duration::hours(48);
        let got = mapped(
            odds(&[
                // Taken on Friday, two days before Sunday's game.
                ("a", "Bills", "Jets", sunday, friday),
                // Same teams, home and away the other way round: another game.
                ("b", "Jets", "Bills", sunday, friday),
                // Bills against someone else at the same time.
                ("c", "Bills", "Ravens", sunday, friday),
            ]),
            slate,
        );
        assert_eq!(
            got,
            [
                ("a".to_owned(), Some("nfl:1".to_owned())),
                ("b".to_owned(), None),
                ("c".to_owned(), None),
            ]
        );
    }

    #[test]
    fn the_nearest_game_within_the_tolerance_wins() {
        let first = kickoff(8, 17);
        let rematch = kickoff(22, 17);
        let slate = games(&[
            ("nfl:1", "Bills", "Jets", first),
            ("nfl:9", "Bills", "Jets", rematch),
        ]);
        let got = mapped(
            odds(&[
                // Sources disagree by half an hour.
                ("a", "Bills", "Jets", first + Duration::minutes(30), first),
                ("b", "Bills", "Jets", rematch, rematch - Duration::hours(60)),
                // A day off either game: no match.
                ("c", "Bills", "Jets", first + Duration::hours(24), first),
            ]),
            slate,
        );
        let game = |e: &str| got.iter().find(|(x, _)| x == e).unwrap().1.clone();
        assert_eq!(game("a").as_deref(), Some("nfl:1"));
        assert_eq!(game("b").as_deref(), Some("nfl:9"));
        assert_eq!(game("c"), None);
    }

    #[test]
    fn a_rescheduled_event_maps_by_its_latest_commence_time() {
        let planned = kickoff(8, 17);
        let moved = kickoff(9, 23);
        let slate = games(&[("nfl:1", "Bills", "Jets", moved)]);
        let got = mapped(
            odds(&[
                ("a", "Bills", "Jets", planned, planned - Duration::hours(50)),
                ("a", "Bills", "Jets", moved, planned - Duration::hours(2)),
            ]),
            slate,
        );
        assert!(
            got.iter().all(|(_, g)| g.as_deref() == Some("nfl:1")),
            "{got:?}"
        );
    }

    #[test]
    fn events_reduce_part_by_part_as_a_whole() {
        let t = kickoff(8, 17);
        let rows = [
            ("a", "Bills", "Jets", t, t - Duration::hours(30)),
            (
                "a",
                "Bills",
                "Jets",
                t + Duration::hours(1),
                t - Duration::hours(3),
            ),
            ("b", "Chiefs", "Ravens", t, t - Duration::hours(5)),
        ];
        let whole = events(odds(&rows)).sort(["event_id"], Default::default());
        let parts = concat(
            [events(odds(&rows[..1])), events(odds(&rows[1..]))],
            UnionArgs::default(),
        )
        .unwrap();
        let again = events(parts).sort(["event_id"], Default::default());
        assert!(whole
            .collect()
            .unwrap()
            .equals_missing(&again.collect().unwrap()));
    }

    #[test]
    fn counts_tell_waiting_events_from_unmatched_ones() {
        let sunday = kickoff(8, 17);
        let slate = games(&[("nfl:1", "Bills", "Jets", sunday)]);
        let next_week = kickoff(15, 17);
        let rows = [
            ("a", "Bills", "Jets", sunday, sunday - Duration::hours(2)),
            ("b", "Chiefs", "Ravens", sunday, sunday - Duration::hours(2)),
            ("c", "Bills", "Jets", next_week, sunday - Duration::hours(2)),
        ];
        let map = event_games(events(odds(&rows)), slate).unwrap();
        let day = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        let c = counts(map, modelled_until(day)).unwrap();
        assert_eq!(
            c,
            MapCounts {
                events: 3,
                mapped: 1,
                awaiting_games: 1
            }
        );
        assert_eq!(c.unmatched(), 1);
    }

    #[test]
    fn the_silver_window_covers_every_game_a_days_snapshots_quote() {
        let day = NaiveDate::from_ymd_opt(2024, 9, 8).unwrap();
        let (from, to) = silver_window(day);
        assert_eq!(from, NaiveDate::from_ymd_opt(2024, 9, 7).unwrap());
        assert_eq!(to, NaiveDate::from_ymd_opt(2024, 9, 12).unwrap());
        // New York midnight after Sept 8 is 04:00 UTC (EDT).
        assert_eq!(
            modelled_until(day),
            Utc.with_ymd_and_hms(2024, 9, 9, 4, 0, 0).unwrap()
        );
    }
}
