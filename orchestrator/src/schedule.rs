//! Cron schedules in a timezone, and the data intervals they cut time into.
//!
//! A run covers the data interval `[start, end)` between two consecutive cron
//! ticks; its logical date is `start` and it becomes due once `end` has passed,
//! as in Airflow. Ticks are computed in the DAG's timezone so "every day at
//! 06:00 Europe/London" stays at 06:00 local time across DST changes.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
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

/// When a DAG runs on its own. `Manual` DAGs run only when triggered.
#[derive(Debug, Clone)]
pub enum Schedule {
    Manual,
    Cron(Box<CronSchedule>),
}

#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    cron: cron::Schedule,
    tz: Tz,
}

impl Schedule {
    /// A cron schedule: five fields (`m h dom mon dow`, day 0 or 7 = Sunday, as
    /// Airflow and crontab read them), six with seconds, or a preset
    /// (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
    pub fn cron(expr: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz =
            Tz::from_str(timezone).map_err(|_| ScheduleError::Timezone(timezone.to_owned()))?;
        let normalized = normalize_cron(expr)?;
        let cron = cron::Schedule::from_str(&normalized).map_err(|e| ScheduleError::Cron {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self::Cron(Box::new(CronSchedule {
            expr: expr.to_owned(),
            cron,
            tz,
        })))
    }

    /// The expression as the user wrote it, or `None` for manual DAGs.
    pub fn expression(&self) -> Option<&str> {
        match self {
            Self::Manual => None,
            Self::Cron(c) => Some(&c.expr),
        }
    }

    pub fn timezone(&self) -> Tz {
        match self {
            Self::Manual => Tz::UTC,
            Self::Cron(c) => c.tz,
        }
    }

    /// First tick strictly after `t`.
    pub fn next_tick(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Cron(c) = self else { return None };
        // Ticks are found by local wall-clock time, so an ambiguous local time
        // (the repeated hour at the end of DST) fires once, at its first occurrence.
        let local = t.with_timezone(&c.tz);
        c.cron.after(&local).next().map(|d| d.with_timezone(&Utc))
    }

    /// Latest tick at or before `t`.
    pub fn prev_tick_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Cron(c) = self else { return None };
        let local = t.with_timezone(&c.tz);
        if c.cron.includes(local) {
            return Some(t);
        }
        c.cron
            .after(&local)
            .next_back()
            .map(|d| d.with_timezone(&Utc))
    }

    /// First tick at or after `t`.
    pub fn tick_at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Self::Cron(c) = self else { return None };
        if c.cron.includes(t.with_timezone(&c.tz)) {
            return Some(t);
        }
        self.next_tick(t)
    }

    /// The interval that starts at the tick `start`.
    pub fn interval_from(&self, start: DateTime<Utc>) -> Option<DataInterval> {
        self.next_tick(start).map(|end| DataInterval { start, end })
    }

    /// The interval of a manual run at `logical_date`: from that date to the
    /// next tick, or an empty interval for manual DAGs.
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
    pub fn due_intervals(
        &self,
        bounds: &RunBounds,
        last_end: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DataInterval> {
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

    /// Intervals whose logical date lies in `[from, to]`: what a backfill creates.
    pub fn intervals_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DataInterval> {
        let mut out = Vec::new();
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

/// Turn crontab's five fields into the `cron` crate's six (seconds first,
/// days of week 1 = Sunday).
fn normalize_cron(expr: &str) -> Result<String, ScheduleError> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        return Ok(trimmed.to_owned());
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    match fields.len() {
        5 => {
            let dow = crontab_dow_to_cron(fields[4]).map_err(|reason| ScheduleError::Cron {
                expr: expr.to_owned(),
                reason,
            })?;
            Ok(format!(
                "0 {} {} {} {} {}",
                fields[0], fields[1], fields[2], fields[3], dow
            ))
        }
        6 | 7 => Ok(trimmed.to_owned()),
        n => Err(ScheduleError::Cron {
            expr: expr.to_owned(),
            reason: format!("expected 5 fields (minute hour day month weekday), got {n}"),
        }),
    }
}

fn crontab_dow_to_cron(field: &str) -> Result<String, String> {
    let map_num = |s: &str| -> Result<String, String> {
        match s.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(((n % 7) + 1).to_string()),
            Ok(n) => Err(format!("day of week {n} out of range 0-7")),
            Err(_) => Ok(s.to_owned()), // names such as MON, or `*`, `?`
        }
    };
    field
        .split(',')
        .map(|part| {
            let (base, step) = match part.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (part, None),
            };
            let base = match base.split_once('-') {
                Some((a, b)) => format!("{}-{}", map_num(a)?, map_num(b)?),
                None => map_num(base)?,
            };
            Ok(match step {
                Some(s) => format!("{base}/{s}"),
                None => base,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|parts| parts.join(","))
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
