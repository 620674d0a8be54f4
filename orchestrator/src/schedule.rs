//! Cron schedules in a timezone, and the data intervals they cut time into.
//!
//! A run covers the data interval `[start, end)` between two consecutive cron
//! ticks; its logical date is `start` and it becomes due once `end` has passed,
//! as in Airflow. Ticks are computed in the DAG's timezone so "every day at
//! 06:00 Europe/London" stays at 06:00 local time across DST changes.
//!
//! Expressions mean what they mean to crontab and to Airflow (croniter):
//! five fields `minute hour day-of-month month day-of-week`; day of week 0 or
//! 7 is Sunday, names such as `MON` or `sun` work; and when both day fields
//! are restricted a day matching EITHER fires (`0 6 1 * 1` runs on the 1st of
//! each month and on every Monday). The `croner` crate does the matching.
//!
//! Around DST changes ticks follow the wall clock: a time that happens twice
//! when clocks go back fires once, at its first occurrence (so an hourly
//! schedule has one interval for the repeated hour). A time that clocks skip
//! when they go forward fires when the clocks land, right after the gap, for
//! schedules at one fixed time of day (`30 2 * * *`); schedules that fire
//! every hour or several times a day just skip the missing ticks, as Vixie
//! cron does.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, JobType};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression `{expr}`: {reason}")]
    Cron { expr: String, reason: String },
    #[error("unknown timezone `{0}`")]
    Timezone(String),
}

/// `[start, end)`: the slice of time a run processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// When a DAG runs on its own.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// No cron (Airflow's `schedule=None`): runs only when triggered, or
    /// on assets. Dates given without a time are midnight in `tz`.
    Manual {
        tz: Tz,
    },
    /// `@once`: one scheduled run, at the DAG's start date, with an empty
    /// data interval `[start_date, start_date]`.
    Once {
        expr: String,
        tz: Tz,
    },
    Cron(Box<CronSchedule>),
}

#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    cron: Cron,
    tz: Tz,
    /// One fixed time of day: a tick that a DST gap skips fires right after
    /// the gap instead of not at all.
    fixed_time: bool,
}

/// The presets Airflow accepts besides `@once`, and what they stand for.
const PRESETS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

impl Schedule {
    /// No cron, in an IANA timezone.
    pub fn manual(timezone: &str) -> Result<Self, ScheduleError> {
        let tz =
            Tz::from_str(timezone).map_err(|_| ScheduleError::Timezone(timezone.to_owned()))?;
        Ok(Self::Manual { tz })
    }

    /// A cron schedule: five fields (`m h dom mon dow`, day 0 or 7 = Sunday,
    /// either day field matching when both are restricted, as Airflow and
    /// crontab read them), six with seconds first, seven with a year last, or
    /// a preset (`@hourly`, `@daily` = `@midnight`, `@weekly`, `@monthly`,
    /// `@yearly` = `@annually`, and `@once`).
    pub fn cron(expr: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz =
            Tz::from_str(timezone).map_err(|_| ScheduleError::Timezone(timezone.to_owned()))?;
        let bad = |reason: String| ScheduleError::Cron {
            expr: expr.to_owned(),
            reason,
        };
        let trimmed = expr.trim();
        let pattern = if trimmed.starts_with('@') {
            let preset = trimmed.to_ascii_lowercase();
            if preset == "@once" {
                return Ok(Self::Once {
                    expr: expr.to_owned(),
                    tz,
                });
            }
            PRESETS
                .iter()
                .find(|(name, _)| *name == preset)
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    bad(
                        "unknown preset; expected @once, @hourly, @daily, @midnight, \
                         @weekly, @monthly, @yearly or @annually"
                            .to_owned(),
                    )
                })?
        } else {
            match trimmed.split_whitespace().count() {
                5..=7 => trimmed,
                n => {
                    return Err(bad(format!(
                        "expected 5 fields (minute hour day month weekday), got {n}"
                    )))
                }
            }
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Optional)
            // POSIX: a day matching either day field fires (`+MON` asks for both).
            .dom_and_dow(false)
            .build()
            .parse(pattern)
            .map_err(|e| bad(e.to_string()))?;
        // Such as `0 0 30 2 *`: every search for its next tick would scan
        // thousands of years before giving up.
        if cron
            .find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false)
            .is_err()
        {
            return Err(bad("it never fires".to_owned()));
        }
        let fixed_time = cron.determine_job_type() == JobType::FixedTime;
        Ok(Self::Cron(Box::new(CronSchedule {
            expr: expr.to_owned(),
            cron,
            tz,
            fixed_time,
        })))
    }

    /// The expression as the user wrote it, or `None` for manual DAGs.
    pub fn expression(&self) -> Option<&str> {
        match self {
            Self::Manual { .. } => None,
            Self::Once { expr, .. } => Some(expr),
            Self::Cron(c) => Some(&c.expr),
        }
    }

    pub fn timezone(&self) -> Tz {
        match self {
            Self::Manual { tz } => *tz,
            Self::Once { tz, .. } => *tz,
            Self::Cron(c) => c.tz,
        }
    }

    /// First tick strictly after `t`. `@once` and manual DAGs have no ticks.
    pub fn next_tick(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Cron(c) = self else { return None };
        c.next_tick(t)
    }

    /// Latest tick at or before `t`.
    pub fn prev_tick_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Cron(c) = self else { return None };
        c.prev_tick_at_or_before(t)
    }

    /// First tick at or after `t`.
    pub fn tick_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_tick(t - Duration::nanoseconds(1))
    }

    /// The interval that starts at the tick `start`.
    pub fn interval_from(&self, start: DateTime<Utc>) -> Option<DataInterval> {
        self.next_tick(start).map(|end| DataInterval { start, end })
    }

    /// The interval of a manual run at `logical_date`: from that date to the
    /// next tick, or an empty interval for `@once` and manual DAGs.
    pub fn manual_interval(&self, logical_date: DateTime<Utc>) -> DataInterval {
        let end = self.next_tick(logical_date).unwrap_or(logical_date);
        DataInterval {
            start: logical_date,
            end,
        }
    }

    /// Intervals the scheduler should create now, oldest first, at most `limit`.
    ///
    /// `last_end` is the end of the newest scheduled run so far. Without
    /// catchup only the most recent complete interval is due (never one
    /// before `last_end`); with catchup, every complete interval since.
    /// An `@once` DAG's single run is due once its start date has passed,
    /// if it has had no scheduled run yet.
    pub fn due_intervals(
        &self,
        bounds: &RunBounds,
        last_end: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DataInterval> {
        if let Self::Once { .. } = self {
            let start = bounds.start_date;
            let due = last_end.is_none()
                && limit > 0
                && start <= now
                && bounds.end_date.is_none_or(|end| start <= end);
            return if due {
                vec![DataInterval { start, end: start }]
            } else {
                Vec::new()
            };
        }
        let Some(mut start) =
            self.tick_at_or_after(last_end.unwrap_or(bounds.start_date).max(bounds.start_date))
        else {
            return Vec::new();
        };
        if !bounds.catchup {
            // Jump to the newest interval that has ended by now.
            if let Some(latest_end) = self.prev_tick_at_or_before(now) {
                if let Some(latest_start) =
                    self.prev_tick_at_or_before(latest_end - chrono::Duration::seconds(1))
                {
                    if latest_start > start {
                        start = latest_start;
                    }
                }
            }
        }
        let mut out = Vec::new();
        while out.len() < limit {
            if bounds.end_date.is_some_and(|end| start > end) {
                break;
            }
            let Some(interval) = self.interval_from(start) else {
                break;
            };
            if interval.end > now {
                break;
            }
            out.push(interval);
            start = interval.end;
        }
        out
    }

    /// Intervals whose logical date lies in `[from, to]`: what a backfill
    /// creates. For `@once` DAGs, one empty interval at `from`, as Airflow's
    /// backfill of a once-timetable makes.
    pub fn intervals_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DataInterval> {
        let mut out = Vec::new();
        if let Self::Once { .. } = self {
            if from <= to && limit > 0 {
                out.push(DataInterval {
                    start: from,
                    end: from,
                });
            }
            return out;
        }
        let Some(mut start) = self.tick_at_or_after(from) else {
            return out;
        };
        while start <= to && out.len() < limit {
            let Some(interval) = self.interval_from(start) else {
                break;
            };
            out.push(interval);
            start = interval.end;
        }
        out
    }
}

impl CronSchedule {
    /// Ticks are matched on the local wall clock; `instant` says when the
    /// matching wall-clock time `local` happens. It never decreases as
    /// `local` grows, which is what the searches below rely on.
    fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            // The repeated hour when clocks go back: the first occurrence.
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            // Skipped when clocks go forward.
            LocalResult::None if self.fixed_time => gap_end(self.tz, local),
            LocalResult::None => None,
        }
    }

    /// `t` on the local wall clock, to the whole second (ticks have no fractions).
    fn wall_clock(&self, t: DateTime<Utc>) -> NaiveDateTime {
        let local = t.with_timezone(&self.tz).naive_local();
        local.with_nanosecond(0).unwrap_or(local)
    }

    /// The first wall-clock time after `local` that the expression matches.
    /// The search runs in UTC, which has no DST, so it sees every wall-clock time once.
    fn match_after(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron
            .find_next_occurrence(&local.and_utc(), false)
            .ok()
            .map(|t| t.naive_utc())
    }

    fn match_before(&self, local: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
        self.cron
            .find_previous_occurrence(&local.and_utc(), inclusive)
            .ok()
            .map(|t| t.naive_utc())
    }

    fn next_tick(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Wall-clock times up to `t`'s own happen at or before `t`; after it,
        // only those in a repeated hour can (they fold onto earlier instants).
        let mut local = self.wall_clock(t);
        loop {
            local = self.match_after(local)?;
            if let Some(at) = self.instant(local).filter(|at| *at > t) {
                return Some(at);
            }
        }
    }

    fn prev_tick_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut local = self.match_before(self.wall_clock(t), true)?;
        let mut latest = loop {
            match self.instant(local) {
                Some(at) if at <= t => break at,
                _ => local = self.match_before(local, false)?,
            }
        };
        // Inside a repeated hour, later wall-clock times can still be at or before `t`.
        while let Some(next) = self.match_after(local) {
            match self.instant(next) {
                Some(at) if at > t => break,
                Some(at) => latest = at,
                None => {}
            }
            local = next;
        }
        Some(latest)
    }
}

/// When the clocks land after jumping over the wall-clock time `local`: the
/// first instant whose local time is later than `local`.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // Offsets stay within a day, so a day either side reads earlier and later.
    let mut before = (local - Duration::days(1)).and_utc().timestamp();
    let mut after = (local + Duration::days(1)).and_utc().timestamp();
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if tz.timestamp_opt(mid, 0).single()?.naive_local() < local {
            before = mid;
        } else {
            after = mid;
        }
    }
    DateTime::from_timestamp(after, 0)
}

/// Where in time a DAG's scheduled runs may fall.
#[derive(Debug, Clone)]
pub struct RunBounds {
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    pub catchup: bool,
}

/// Parse a user-given date: RFC 3339, or `YYYY-MM-DD` meaning midnight in `tz`.
pub fn parse_date(input: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(input) {
        return Ok(dt.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(input, "%Y-%m-%d").map_err(|_| {
        format!("bad date `{input}`: expected YYYY-MM-DD or RFC 3339 (e.g. 2024-01-31T06:00:00Z)")
    })?;
    let naive = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| format!("bad date `{input}`"))?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| format!("date `{input}` does not exist in timezone {tz}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn bounds(start: &str, catchup: bool) -> RunBounds {
        RunBounds {
            start_date: utc(start),
            end_date: None,
            catchup,
        }
    }

    /// The first `n` ticks after `after`, as RFC 3339 strings in UTC.
    fn ticks(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let s = Schedule::cron(expr, tz).unwrap();
        let mut t = utc(after);
        (0..n)
            .map(|_| {
                t = s
                    .next_tick(t)
                    .unwrap_or_else(|| panic!("`{expr}` stops after {t}"));
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            })
            .collect()
    }

    #[test]
    fn expressions_fire_at_these_times() {
        let table: &[(&str, &str, &str, &[&str])] = &[
            // Day of month OR day of week: the 1st of each month and every Monday.
            (
                "0 6 1 * 1",
                "UTC",
                "2026-06-01T07:00:00Z",
                &[
                    "2026-06-08T06:00:00Z",
                    "2026-06-15T06:00:00Z",
                    "2026-06-22T06:00:00Z",
                    "2026-06-29T06:00:00Z",
                    "2026-07-01T06:00:00Z", // a Wednesday
                    "2026-07-06T06:00:00Z",
                ],
            ),
            // 0 and 7 are both Sunday; names too, in any case.
            (
                "0 0 * * 0",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z"],
            ),
            (
                "0 0 * * 7",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z"],
            ),
            (
                "0 0 * * sun",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z"],
            ),
            (
                "0 0 * * 5-7",
                "UTC",
                "2026-06-01T00:00:00Z",
                &[
                    "2026-06-05T00:00:00Z",
                    "2026-06-06T00:00:00Z",
                    "2026-06-07T00:00:00Z",
                    "2026-06-12T00:00:00Z",
                ],
            ),
            // Presets.
            (
                "@weekly",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z"],
            ),
            (
                "@monthly",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z"],
            ),
            (
                "@yearly",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
            ),
            (
                "@annually",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2027-01-01T00:00:00Z"],
            ),
            (
                "@daily",
                "UTC",
                "2026-06-01T12:00:00Z",
                &["2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z"],
            ),
            (
                "@midnight",
                "UTC",
                "2026-06-01T12:00:00Z",
                &["2026-06-02T00:00:00Z"],
            ),
            (
                "@hourly",
                "UTC",
                "2026-06-01T12:30:00Z",
                &["2026-06-01T13:00:00Z", "2026-06-01T14:00:00Z"],
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2026-06-01T12:07:00Z",
                &[
                    "2026-06-01T12:15:00Z",
                    "2026-06-01T12:30:00Z",
                    "2026-06-01T12:45:00Z",
                    "2026-06-01T13:00:00Z",
                ],
            ),
            // Friday afternoon: the last hour of the week, then Monday morning.
            (
                "0 9-17 * * MON-FRI",
                "UTC",
                "2026-06-05T16:30:00Z",
                &[
                    "2026-06-05T17:00:00Z",
                    "2026-06-08T09:00:00Z",
                    "2026-06-08T10:00:00Z",
                ],
            ),
            // Months without a 31st are skipped.
            (
                "0 0 31 * *",
                "UTC",
                "2026-01-31T00:00:00Z",
                &[
                    "2026-03-31T00:00:00Z",
                    "2026-05-31T00:00:00Z",
                    "2026-07-31T00:00:00Z",
                    "2026-08-31T00:00:00Z",
                ],
            ),
            // Six fields: seconds first.
            (
                "30 0 12 * * *",
                "UTC",
                "2026-06-01T00:00:00Z",
                &["2026-06-01T12:00:30Z", "2026-06-02T12:00:30Z"],
            ),
            // 06:00 in London: GMT (UTC+0) until 2026-03-29, BST (UTC+1) after.
            (
                "0 6 * * *",
                "Europe/London",
                "2026-03-27T12:00:00Z",
                &[
                    "2026-03-28T06:00:00Z",
                    "2026-03-29T05:00:00Z",
                    "2026-03-30T05:00:00Z",
                ],
            ),
            // Tokyo has no DST: always UTC+9.
            (
                "0 9 * * MON",
                "Asia/Tokyo",
                "2026-06-01T00:00:00Z",
                &["2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z"],
            ),
        ];
        for (expr, tz, after, expected) in table {
            assert_eq!(
                ticks(expr, tz, after, expected.len()),
                *expected,
                "`{expr}` in {tz} after {after}"
            );
        }
    }

    #[test]
    fn presets_are_the_expressions_airflow_expands_them_to() {
        for (preset, expr) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@DAILY", "0 0 * * *"),
        ] {
            assert_eq!(
                ticks(preset, "America/New_York", "2024-02-27T00:00:00Z", 5),
                ticks(expr, "America/New_York", "2024-02-27T00:00:00Z", 5),
                "{preset}"
            );
            assert_eq!(
                Schedule::cron(preset, "UTC").unwrap().expression(),
                Some(preset),
                "the expression is kept as written"
            );
        }
    }

    #[test]
    fn restricted_day_of_month_and_day_of_week_each_fire_on_their_own() {
        let s = Schedule::cron("0 6 1 * 1", "UTC").unwrap();
        // Wednesday 2026-07-01 is not a Monday, but it is the 1st.
        assert_eq!(
            s.tick_at_or_after(utc("2026-07-01T06:00:00Z")),
            Some(utc("2026-07-01T06:00:00Z"))
        );
        // Friday 2026-06-05: the last tick was Monday the 1st (both at once).
        assert_eq!(
            s.prev_tick_at_or_before(utc("2026-06-05T12:00:00Z")),
            Some(utc("2026-06-01T06:00:00Z"))
        );
        // A `*` day of month leaves only the weekday, and the other way round.
        let mondays = Schedule::cron("0 6 * * 1", "UTC").unwrap();
        assert_eq!(
            mondays.next_tick(utc("2026-06-29T07:00:00Z")),
            Some(utc("2026-07-06T06:00:00Z"))
        );
        let firsts = Schedule::cron("0 6 1 * *", "UTC").unwrap();
        assert_eq!(
            firsts.next_tick(utc("2026-06-01T07:00:00Z")),
            Some(utc("2026-07-01T06:00:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_when_the_clocks_land() {
        // 02:30 does not exist in New York on 2024-03-10 (02:00 EST -> 03:00 EDT).
        assert_eq!(
            ticks("30 2 * * *", "America/New_York", "2024-03-09T00:00:00Z", 3),
            [
                "2024-03-09T07:30:00Z", // 02:30 EST
                "2024-03-10T07:00:00Z", // 03:00 EDT, right after the gap
                "2024-03-11T06:30:00Z", // 02:30 EDT
            ]
        );
        let s = Schedule::cron("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.prev_tick_at_or_before(utc("2024-03-10T12:00:00Z")),
            Some(utc("2024-03-10T07:00:00Z"))
        );
    }

    #[test]
    fn hourly_schedules_skip_the_hour_spring_forward_removes() {
        assert_eq!(
            ticks("0 * * * *", "America/New_York", "2024-03-10T05:30:00Z", 3),
            [
                "2024-03-10T06:00:00Z", // 01:00 EST
                "2024-03-10T07:00:00Z", // 03:00 EDT
                "2024-03-10T08:00:00Z", // 04:00 EDT
            ]
        );
    }

    #[test]
    fn the_repeated_hour_at_fall_back_is_one_stretch_of_ticks() {
        // 01:00-02:00 happens twice in New York on 2024-11-03 (EDT, then EST).
        let s = Schedule::cron("*/15 * * * *", "America/New_York").unwrap();
        assert_eq!(
            ticks(
                "*/15 * * * *",
                "America/New_York",
                "2024-11-03T05:30:00Z",
                3
            ),
            [
                "2024-11-03T05:45:00Z", // 01:45 EDT
                "2024-11-03T07:00:00Z", // 02:00 EST
                "2024-11-03T07:15:00Z",
            ]
        );
        // From inside the second 01:00-02:00 the neighbours are the same.
        assert_eq!(
            s.prev_tick_at_or_before(utc("2024-11-03T06:20:00Z")),
            Some(utc("2024-11-03T05:45:00Z"))
        );
        assert_eq!(
            s.next_tick(utc("2024-11-03T06:20:00Z")),
            Some(utc("2024-11-03T07:00:00Z"))
        );
        let daily = Schedule::cron("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            daily.next_tick(utc("2024-11-03T06:00:00Z")),
            Some(utc("2024-11-04T06:30:00Z")),
            "01:30 EST repeats a time that already fired"
        );
        assert_eq!(
            daily.prev_tick_at_or_before(utc("2024-11-03T06:45:00Z")),
            Some(utc("2024-11-03T05:30:00Z"))
        );
    }

    #[test]
    fn tick_lookups_ignore_fractions_of_a_second() {
        let s = Schedule::cron("@daily", "UTC").unwrap();
        let just_after_midnight = utc("2024-01-02T00:00:00.250Z");
        assert_eq!(
            s.prev_tick_at_or_before(just_after_midnight),
            Some(utc("2024-01-02T00:00:00Z"))
        );
        assert_eq!(
            s.tick_at_or_after(just_after_midnight),
            Some(utc("2024-01-03T00:00:00Z"))
        );
        assert_eq!(
            s.tick_at_or_after(utc("2024-01-02T00:00:00Z")),
            Some(utc("2024-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn once_dags_get_exactly_one_run_at_their_start_date() {
        let s = Schedule::cron("@once", "Europe/London").unwrap();
        assert_eq!(s.expression(), Some("@once"));
        assert_eq!(s.timezone().name(), "Europe/London");
        let b = bounds("2024-01-01T06:00:00Z", true);
        let start = utc("2024-01-01T06:00:00Z");
        assert!(
            s.due_intervals(&b, None, utc("2024-01-01T05:59:59Z"), 10)
                .is_empty(),
            "not before the start date"
        );
        let due = s.due_intervals(&b, None, utc("2024-03-01T00:00:00Z"), 10);
        assert_eq!(due, vec![DataInterval { start, end: start }]);
        assert!(
            s.due_intervals(&b, Some(start), utc("2024-03-01T00:00:00Z"), 10)
                .is_empty(),
            "never again once it has run"
        );
        let without_catchup = bounds("2024-01-01T06:00:00Z", false);
        assert_eq!(
            s.due_intervals(&without_catchup, None, utc("2024-03-01T00:00:00Z"), 10),
            due
        );
        assert_eq!(s.next_tick(start), None);
        assert_eq!(s.tick_at_or_after(start), None);
        let manual = utc("2024-02-01T00:00:00Z");
        assert_eq!(
            s.manual_interval(manual),
            DataInterval {
                start: manual,
                end: manual
            }
        );
    }

    #[test]
    fn dags_without_a_schedule_only_run_when_triggered() {
        let s = Schedule::Manual { tz: Tz::UTC };
        assert_eq!(s.expression(), None);
        assert!(s
            .due_intervals(
                &bounds("2024-01-01T00:00:00Z", true),
                None,
                utc("2024-03-01T00:00:00Z"),
                10
            )
            .is_empty());
        assert!(s
            .intervals_between(utc("2024-01-01T00:00:00Z"), utc("2024-03-01T00:00:00Z"), 10)
            .is_empty());
        let at = utc("2024-02-01T00:00:00Z");
        assert_eq!(s.manual_interval(at), DataInterval { start: at, end: at });
    }

    #[test]
    fn unknown_presets_bad_fields_and_impossible_dates_are_rejected_by_name() {
        for expr in [
            "@fortnightly",
            "@reboot",
            "0 0 * * 8",
            "0 24 * * *",
            "0 0 32 * *",
            "0 0 * 13 *",
            "0 0 * * FUNDAY",
            "0 0 * * * * * *",
            "0 0 30 2 *",
        ] {
            let e = Schedule::cron(expr, "UTC").unwrap_err().to_string();
            assert!(e.contains(expr), "{e}");
        }
    }

    #[test]
    fn daily_interval_runs_from_midnight_to_midnight() {
        let s = Schedule::cron("0 0 * * *", "UTC").unwrap();
        let iv = s.interval_from(utc("2024-01-01T00:00:00Z")).unwrap();
        assert_eq!(iv.end, utc("2024-01-02T00:00:00Z"));
    }

    #[test]
    fn catchup_creates_every_missed_interval_in_order() {
        let s = Schedule::cron("@daily", "UTC").unwrap();
        let due = s.due_intervals(
            &bounds("2024-01-01T00:00:00Z", true),
            None,
            utc("2024-01-04T12:00:00Z"),
            100,
        );
        let starts: Vec<_> = due.iter().map(|i| i.start).collect();
        assert_eq!(
            starts,
            vec![
                utc("2024-01-01T00:00:00Z"),
                utc("2024-01-02T00:00:00Z"),
                utc("2024-01-03T00:00:00Z")
            ]
        );
    }

    #[test]
    fn without_catchup_only_the_latest_interval_is_due() {
        let s = Schedule::cron("@daily", "UTC").unwrap();
        let due = s.due_intervals(
            &bounds("2024-01-01T00:00:00Z", false),
            None,
            utc("2024-01-04T12:00:00Z"),
            100,
        );
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].start, utc("2024-01-03T00:00:00Z"));
    }

    #[test]
    fn nothing_is_due_before_an_interval_ends_or_after_the_end_date() {
        let s = Schedule::cron("@daily", "UTC").unwrap();
        let mut b = bounds("2024-01-01T00:00:00Z", true);
        assert!(s
            .due_intervals(&b, None, utc("2024-01-01T23:59:59Z"), 100)
            .is_empty());
        b.end_date = Some(utc("2024-01-02T00:00:00Z"));
        let due = s.due_intervals(&b, None, utc("2024-01-10T00:00:00Z"), 100);
        assert_eq!(due.len(), 2, "start dates 01-01 and 01-02 only");
    }

    #[test]
    fn resumes_after_the_last_created_interval() {
        let s = Schedule::cron("@daily", "UTC").unwrap();
        let due = s.due_intervals(
            &bounds("2024-01-01T00:00:00Z", true),
            Some(utc("2024-01-03T00:00:00Z")),
            utc("2024-01-04T01:00:00Z"),
            100,
        );
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].start, utc("2024-01-03T00:00:00Z"));
    }

    #[test]
    fn local_time_is_kept_across_spring_forward() {
        // 06:00 in New York is 11:00 UTC in winter and 10:00 UTC in summer.
        let s = Schedule::cron("0 6 * * *", "America/New_York").unwrap();
        let iv = s.interval_from(utc("2024-03-09T11:00:00Z")).unwrap();
        assert_eq!(iv.end, utc("2024-03-10T10:00:00Z"));
        assert_eq!(iv.end - iv.start, chrono::Duration::hours(23));
    }

    #[test]
    fn ambiguous_hour_at_fall_back_fires_once_for_daily_schedules() {
        // 01:30 happens twice in New York on 2024-11-03.
        let s = Schedule::cron("30 1 * * *", "America/New_York").unwrap();
        let first = s.next_tick(utc("2024-11-02T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2024-11-03T05:30:00Z"));
        let second = s.next_tick(first).unwrap();
        assert_eq!(second, utc("2024-11-04T06:30:00Z"));
    }

    #[test]
    fn hourly_schedules_fold_the_repeated_hour_into_one_interval() {
        let s = Schedule::cron("0 * * * *", "America/New_York").unwrap();
        let one_am_edt = s.next_tick(utc("2024-11-03T04:30:00Z")).unwrap();
        assert_eq!(one_am_edt, utc("2024-11-03T05:00:00Z"));
        let two_am_est = s.next_tick(one_am_edt).unwrap();
        assert_eq!(two_am_est, utc("2024-11-03T07:00:00Z"));
    }

    #[test]
    fn crontab_weekdays_mean_monday_to_friday() {
        let s = Schedule::cron("0 6 * * 1-5", "UTC").unwrap();
        // 2024-01-06 is a Saturday: the next tick is Monday the 8th.
        assert_eq!(
            s.next_tick(utc("2024-01-05T07:00:00Z")).unwrap(),
            utc("2024-01-08T06:00:00Z")
        );
        let sun = Schedule::cron("0 0 * * 0", "UTC").unwrap();
        assert_eq!(
            sun.next_tick(utc("2024-01-01T00:00:00Z")).unwrap(),
            utc("2024-01-07T00:00:00Z")
        );
    }

    #[test]
    fn backfill_range_is_inclusive_of_both_ends() {
        let s = Schedule::cron("@daily", "UTC").unwrap();
        let ivs = s.intervals_between(
            utc("2024-01-01T00:00:00Z"),
            utc("2024-01-07T00:00:00Z"),
            1000,
        );
        assert_eq!(ivs.len(), 7);
    }

    #[test]
    fn bad_expressions_and_timezones_are_named_in_the_error() {
        let e = Schedule::cron("0 0 * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("0 0 * *"), "{e}");
        assert!(Schedule::cron("@daily", "Mars/Olympus")
            .unwrap_err()
            .to_string()
            .contains("Mars/Olympus"));
    }

    #[test]
    fn dates_parse_as_local_midnight_or_rfc3339() {
        let tz: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            parse_date("2024-01-02", tz).unwrap(),
            utc("2024-01-02T05:00:00Z")
        );
        assert_eq!(
            parse_date("2024-01-02T03:00:00+01:00", tz).unwrap(),
            utc("2024-01-02T02:00:00Z")
        );
        assert!(parse_date("2024-13-02", tz)
            .unwrap_err()
            .contains("2024-13-02"));
    }
}
