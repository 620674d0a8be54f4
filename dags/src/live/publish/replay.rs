//! `replay_publisher`: the replay source's current sports day, published in
//! real time.
//!
//! The season generator covers any date, so "live" offline is simply today:
//! each odds snapshot, game poll, weather reading and headline is published
//! when its event time comes. On start it catches up on the day so far (from
//! its cursor, or from the start of the sports day the first time) as fast
//! as the broker takes it, then waits for each next message; at midnight in
//! New York it moves on to the next day (whose messages include the end of
//! the previous day's late games). The cursor makes a restart resume
//! where delivery stopped, so consumers never get the same updates again
//! behind their watermark.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::America::New_York;
use orchestrator::{StreamContext, StreamTask, TaskError};
use serde_json::{json, Value};
use sqlx::postgres::PgPool;

use super::lease::{self, Lease};
use super::{cursor, groups, send_group, Sent, SharedProducer};
use crate::live::envelope::{Kind, Topic};
use crate::live::replay::{replay_day, ReplayMessage, SOURCE};
use crate::{sports_day, Sport};
use streaming::kafka::producer::Producer;

/// Lease and cursor name.
pub const NAME: &str = "replay_publisher";

/// `BETFLOW_REPLAY_FROM` (RFC 3339): where the first start's catch-up
/// begins instead of the start of today's sports day, e.g. to give the
/// dashboards the last few days too. Ignored once a cursor exists.
pub const FROM_ENV: &str = "BETFLOW_REPLAY_FROM";

/// Days a catch-up may span at most, against a mistyped `BETFLOW_REPLAY_FROM`.
pub const MAX_CATCH_UP_DAYS: i64 = 7;

/// Minutes between replayed odds snapshots: The Odds API's own cadence.
pub const ODDS_MINUTES: u32 = 5;

/// Longest sleep between two looks at the clock and the lease while waiting
/// for the next message.
const WAKE: Duration = Duration::from_secs(15);

pub struct ReplayPublisher {
    producer: Arc<SharedProducer>,
    sports: Vec<&'static Sport>,
    /// [`FROM_ENV`], resolved with the deployment's settings.
    first: Option<DateTime<Utc>>,
}

impl ReplayPublisher {
    pub fn new(
        producer: Arc<SharedProducer>,
        sports: Vec<&'static Sport>,
        first: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            producer,
            sports,
            first,
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> TaskError {
    TaskError::msg(format!("{NAME}: {what}: {e}"))
}

/// 00:00 in New York of sports day `day`, in UTC.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    New_York
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// Where to resume: after the cursor, but never before today's sports day
/// (older days are the batch side's history, not live updates); the first
/// time, from `first` when given (at most [`MAX_CATCH_UP_DAYS`] back).
pub fn resume_after(
    cursor: Option<DateTime<Utc>>,
    first: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let before = |t: DateTime<Utc>| t - chrono::TimeDelta::nanoseconds(1);
    let today: DateTime<Utc> = before(day_start(sports_day(now)));
    match (cursor, first) {
        (Some(c), _) => c.max(today),
        (None, Some(f)) => before(f.max(now - chrono::TimeDelta::days(MAX_CATCH_UP_DAYS))),
        (None, None) => today,
    }
}

/// What the task reports as health.
#[derive(Default)]
struct Progress {
    day: Option<NaiveDate>,
    through: Option<DateTime<Utc>>,
    next_at: Option<DateTime<Utc>>,
    day_messages: usize,
    sent: Sent,
}

impl Progress {
    fn json(&self, producer: &Producer) -> Value {
        let stats = producer.stats();
        let by_kind: BTreeMap<String, usize> = self
            .sent
            .by_kind
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        let time =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        json!({
            "role": "leader",
            "mode": "replay",
            "day": self.day,
            "day_messages": self.day_messages,
            "published_through": time(self.through),
            "next_message_at": time(self.next_at),
            "published": self.sent.delivered(),
            "published_by_kind": by_kind,
            "failed": self.sent.failed.len(),
            "retried": stats.retried.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

#[async_trait]
impl StreamTask for ReplayPublisher {
    async fn run(&self, ctx: StreamContext) -> Result<(), TaskError> {
        let pool: PgPool = ctx.database().clone();
        let standby = || ctx.report(json!({"role": "standby", "mode": "replay", "lease": NAME}));
        let Some(mut lease) = lease::acquire(&pool, NAME, &ctx.cancel, WAKE, standby)
            .await
            .map_err(|e| fail("taking the publisher lease", e))?
        else {
            return Ok(());
        };
        // It leads from here: building the day's replay can take a minute on
        // a loaded machine, and health should not say "standby" meanwhile.
        ctx.report(
            json!({"role": "leader", "mode": "replay", "lease": NAME, "state": "preparing"}),
        );
        let producer: &Producer = self
            .producer
            .get()
            .await
            .map_err(|e| fail("creating the producer", e))?;
        let topics: Vec<Topic> = self
            .sports
            .iter()
            .flat_map(|s| Kind::ALL.map(|k| Topic::new(k, s)))
            .collect();
        producer
            .ensure_topics(&topics)
            .await
            .map_err(|e| fail("creating topics", e))?;

        let stored = cursor::load(&pool, NAME)
            .await
            .map_err(|e| fail("reading the cursor", e))?;
        let mut through: DateTime<Utc> = resume_after(stored, self.first, Utc::now());
        let mut progress = Progress::default();
        loop {
            let day: NaiveDate = sports_day(through + chrono::TimeDelta::nanoseconds(1));
            let day_end: DateTime<Utc> = day_start(day + chrono::Days::new(1));
            let pending: Vec<Vec<ReplayMessage>> = self.due_in(day, through, day_end).await?;
            progress.day = Some(day);
            progress.day_messages = pending.iter().map(Vec::len).sum();
            for group in pending {
                let at: DateTime<Utc> = group[0].time;
                progress.next_at = Some(at);
                ctx.report(progress.json(producer));
                if !wait_until(at, &ctx, &mut lease).await? {
                    return Ok(());
                }
                let sent: Sent = send_group(producer, SOURCE, group, Utc::now()).await;
                if let Some((kind, why)) = sent.failed.first() {
                    let (n, kind, why) = (sent.failed.len(), *kind, why.clone());
                    progress.sent.add(sent);
                    ctx.report(progress.json(producer));
                    // The cursor stays before this group: it is sent again
                    // after the restart.
                    return Err(fail(
                        &format!("{n} message(s) of {at} undelivered (first: {kind})"),
                        why,
                    ));
                }
                progress.sent.add(sent);
                through = at;
                progress.through = Some(at);
                cursor::save(&pool, NAME, at)
                    .await
                    .map_err(|e| fail("saving the cursor", e))?;
            }
            // Everything due by the end of the day is out: wait for it to end.
            progress.next_at = Some(day_end);
            ctx.report(progress.json(producer));
            if !wait_until(day_end, &ctx, &mut lease).await? {
                return Ok(());
            }
            through = through.max(day_end - chrono::TimeDelta::nanoseconds(1));
        }
    }
}

impl ReplayPublisher {
    /// The messages due in (`after`, `until`], grouped by event time: those
    /// of sports day `day` and of the day before (its late games and
    /// weather run past midnight). Generating days is CPU work: off the
    /// async workers.
    async fn due_in(
        &self,
        day: NaiveDate,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Vec<ReplayMessage>>, TaskError> {
        let sports: Vec<&'static Sport> = self.sports.clone();
        tokio::task::spawn_blocking(move || {
            let mut messages: Vec<ReplayMessage> = Vec::new();
            let days = [day.pred_opt(), Some(day)];
            for d in days.into_iter().flatten() {
                for &sport in &sports {
                    let replayed = replay_day(sport, d, ODDS_MINUTES)
                        .map_err(|e| fail(&format!("replaying {d}"), e))?;
                    messages.extend(
                        replayed
                            .messages
                            .into_iter()
                            .filter(|m| m.time > after && m.time <= until),
                    );
                }
            }
            messages.sort_by_key(|m| m.time);
            Ok(groups(messages))
        })
        .await
        .map_err(|e| fail("replay generation", e))?
    }
}

/// Sleeps until `at`, waking every [`WAKE`] to check the lease; `false`
/// when cancelled first.
async fn wait_until(
    at: DateTime<Utc>,
    ctx: &StreamContext,
    lease: &mut Lease,
) -> Result<bool, TaskError> {
    loop {
        let left: Duration = (at - Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return Ok(true);
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => return Ok(false),
            () = tokio::time::sleep(left.min(WAKE)) => {}
        }
        lease
            .check()
            .await
            .map_err(|e| fail(&format!("lease `{}` lost", lease.name()), e))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_first_start_catches_up_from_the_start_of_the_sports_day() {
        // 02:00 UTC on the 26th is still the 25th in New York.
        let now = utc("2026-11-26T02:00:00Z");
        let from = resume_after(None, None, now);
        assert_eq!(
            from + chrono::TimeDelta::nanoseconds(1),
            utc("2026-11-25T05:00:00Z")
        );
    }

    #[test]
    fn a_restart_resumes_after_the_cursor_but_never_in_an_earlier_day() {
        let now = utc("2026-11-25T20:00:00Z");
        let cursor = utc("2026-11-25T18:30:00Z");
        assert_eq!(resume_after(Some(cursor), None, now), cursor);
        let last_week = utc("2026-11-18T18:30:00Z");
        assert_eq!(
            resume_after(Some(last_week), Some(last_week), now) + chrono::TimeDelta::nanoseconds(1),
            utc("2026-11-25T05:00:00Z")
        );
    }

    #[test]
    fn a_first_start_may_catch_up_from_an_earlier_time_but_not_a_month() {
        let now = utc("2026-11-25T20:00:00Z");
        let two_days = utc("2026-11-23T05:00:00Z");
        let nano = chrono::TimeDelta::nanoseconds(1);
        assert_eq!(resume_after(None, Some(two_days), now) + nano, two_days);
        let typo = utc("2025-11-23T05:00:00Z");
        assert_eq!(
            resume_after(None, Some(typo), now) + nano,
            now - chrono::TimeDelta::days(MAX_CATCH_UP_DAYS)
        );
    }

    #[test]
    fn summer_days_start_at_four_utc() {
        let day = NaiveDate::from_ymd_opt(2026, 7, 4).expect("date");
        assert_eq!(day_start(day), utc("2026-07-04T04:00:00Z"));
    }
}
