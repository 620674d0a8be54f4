//! One partition's news processing: per-team windows of article count and
//! mean sentiment, and what each message produced.

use chrono::{DateTime, TimeDelta, Utc};

use super::{NewsItem, NewsWindow, NewsWindowOutput};
use crate::live::envelope::Envelope;
use crate::live::PartitionState;
use streaming::dead_letter::DeadLetterReason;
use streaming::window::{Closed, WindowError, WindowSpec, Windowed, WindowedSnapshot};

/// What one news message produced.
#[derive(Debug, Default)]
pub struct NewsOutput {
    /// Windows the watermark closed: `serving.news_sentiment`.
    pub closed: Vec<Closed<String, NewsWindowOutput>>,
    /// Behind the watermark: one dead-letter row.
    pub problem: Option<DeadLetterReason>,
}

/// Per-team sentiment windows of one partition.
pub struct NewsProcessor {
    windows: Windowed<String, NewsWindow>,
}

/// A [`NewsProcessor`]'s accumulated state, for a checkpoint.
pub type NewsSnapshot = WindowedSnapshot<String, NewsWindow>;

impl NewsProcessor {
    pub fn new(spec: WindowSpec, allowed_lateness: TimeDelta) -> Result<Self, WindowError> {
        Ok(Self {
            windows: Windowed::new(spec, allowed_lateness, NewsWindow::default())?,
        })
    }

    pub fn handle(&mut self, envelope: &Envelope<NewsItem>) -> NewsOutput {
        let item: &NewsItem = &envelope.payload;
        let problem: Option<DeadLetterReason> = self
            .windows
            .push(
                item.team_id.clone(),
                envelope.event_time,
                envelope.ingest_time,
                item.clone(),
            )
            .err()
            .map(|late| {
                DeadLetterReason::new(
                    "late",
                    format!(
                        "team {}: article {} at {} is behind watermark {}",
                        late.key, item.item_id, late.event_time, late.watermark
                    ),
                )
            });
        NewsOutput {
            closed: self.windows.drain_closed(),
            problem,
        }
    }
}

impl PartitionState for NewsProcessor {
    type Topics = crate::live::envelope::Topics;
    type Payload = NewsItem;
    type Output = NewsOutput;
    type Snapshot = NewsSnapshot;

    fn apply(&mut self, envelope: &Envelope<NewsItem>) -> (NewsOutput, Option<DeadLetterReason>) {
        let mut out: NewsOutput = self.handle(envelope);
        let problem: Option<DeadLetterReason> = out.problem.take();
        (out, problem)
    }

    fn snapshot(&self) -> NewsSnapshot {
        self.windows.snapshot()
    }

    fn restore(&mut self, snapshot: NewsSnapshot) {
        self.windows.restore(snapshot);
    }

    fn heal(&mut self, not_after: DateTime<Utc>) {
        if self.windows.heal(not_after) {
            tracing::warn!(%not_after, "restored windows held event times past now; pulled back");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::live::envelope::{Kind, SCHEMA_VERSION};

    fn msg(team: &str, id: &str, minute: i64, title: &str) -> Envelope<NewsItem> {
        let t: DateTime<Utc> = DateTime::from_timestamp(minute * 60, 0).expect("valid");
        Envelope {
            schema_version: SCHEMA_VERSION,
            source: "test".into(),
            sport: "nba".into(),
            kind: Kind::News,
            event_time: t,
            ingest_time: t,
            payload: NewsItem {
                item_id: id.into(),
                team_id: team.into(),
                source: None,
                title: title.into(),
                description: None,
            },
        }
    }

    #[test]
    fn windows_close_late_articles_dead_letter_and_restore_is_exact() {
        let script = [
            msg("t1", "a", 0, "Star guard injury, out for season"),
            msg("t1", "b", 1, "Celtics win fifth straight"),
            msg("t2", "c", 2, "Coach fired after slump"),
            msg("t1", "a", 3, "Star guard injury, out for season"),
            msg("t2", "d", 12, "Dominant victory"),
            msg("t1", "e", 1, "Too late to count"),
            msg("t1", "f", 30, "Returns healthy"),
        ];
        let fresh = || {
            NewsProcessor::new(
                WindowSpec::tumbling_minutes(5).expect("valid"),
                TimeDelta::minutes(1),
            )
            .expect("valid")
        };
        let run = |cut: Option<usize>| -> Vec<String> {
            let mut p = fresh();
            let mut seen: Vec<String> = Vec::new();
            for (i, m) in script.iter().enumerate() {
                if cut == Some(i) {
                    let json = serde_json::to_string(&p.snapshot()).expect("json");
                    p = fresh();
                    p.restore(serde_json::from_str(&json).expect("restores"));
                }
                let out = p.handle(m);
                seen.push(format!("{:?} {:?}", out.closed, out.problem));
            }
            seen
        };
        let clean = run(None);
        // Minute 12 closes [0, 5): t1 with 2 distinct articles, t2 with 1.
        assert!(clean[4].contains("article_count: 2"), "{}", clean[4]);
        assert!(clean[4].contains("article_count: 1"), "{}", clean[4]);
        assert!(clean[5].contains("late"), "{}", clean[5]);
        for cut in 1..script.len() {
            assert_eq!(run(Some(cut)), clean, "restored before message {cut}");
        }
    }
}
