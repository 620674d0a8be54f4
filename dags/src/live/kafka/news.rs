//! The news consumer's sink: [`NewsProcessor`] per partition, upserting
//! `serving.news_sentiment`.

use async_trait::async_trait;
use chrono::TimeDelta;
use sqlx::PgConnection;

use crate::live::envelope::Kind;
use crate::live::news::{NewsOutput, NewsProcessor, PROCESSOR};
use crate::live::serving::NewsSentimentRow;
use crate::settings::LiveSettings;
use streaming::kafka::config::DEFAULT_ALLOWED_LATENESS;
use streaming::kafka::consumer::{Counters, KafkaConsumer, Meta, TopicProcessor};
use streaming::kafka::KafkaSettings;
use streaming::window::{WindowError, WindowSpec};

/// Sentiment windows of `serving.news_sentiment` and their allowed lateness.
#[derive(Debug, Clone, Copy)]
pub struct NewsSink {
    pub spec: WindowSpec,
    pub allowed_lateness: TimeDelta,
}

impl Default for NewsSink {
    /// 5-minute tumbling windows, 1 minute of lateness (docs/topics.md#consumers).
    fn default() -> Self {
        Self {
            spec: WindowSpec::tumbling_whole_minutes(5),
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
        }
    }
}

/// The news consumer on `kafka`'s cluster (group `{prefix}-news`),
/// with the deployment's windows.
pub fn news_consumer(kafka: &KafkaSettings, live: &LiveSettings) -> KafkaConsumer<NewsSink> {
    let sink = NewsSink {
        spec: live.news_window,
        allowed_lateness: live.allowed_lateness,
    };
    KafkaConsumer::new(kafka.consumer(PROCESSOR), sink)
}

#[async_trait]
impl TopicProcessor for NewsSink {
    const NAME: &'static str = PROCESSOR;
    const KIND: Kind = Kind::News;
    const COUNTERS: &'static [&'static str] = &["window_rows"];
    type State = NewsProcessor;

    fn fingerprint(&self) -> String {
        format!("v1 {}", self.spec.fingerprint(self.allowed_lateness))
    }

    fn fresh(&self) -> Result<NewsProcessor, WindowError> {
        NewsProcessor::new(self.spec, self.allowed_lateness)
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        meta: &Meta,
        out: &NewsOutput,
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        for closed in &out.closed {
            upsert_sentiment(conn, &NewsSentimentRow::new(&meta.sport, closed)).await?;
            *counters.entry("window_rows").or_default() += 1;
        }
        Ok(())
    }
}

const UPSERT_SENTIMENT: &str = "INSERT INTO serving.news_sentiment (processor, key,
        window_start, window_end, sport, team_id, article_count, mean_sentiment, event_time,
        ingest_time, write_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10, now())
    ON CONFLICT (processor, key, window_start) DO UPDATE SET
        window_end = EXCLUDED.window_end, sport = EXCLUDED.sport, team_id = EXCLUDED.team_id,
        article_count = EXCLUDED.article_count, mean_sentiment = EXCLUDED.mean_sentiment,
        event_time = EXCLUDED.event_time, ingest_time = EXCLUDED.ingest_time,
        write_time = now()";

async fn upsert_sentiment(
    conn: &mut PgConnection,
    r: &NewsSentimentRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT_SENTIMENT)
        .bind(r.processor)
        .bind(&r.key)
        .bind(r.window_start)
        .bind(r.window_end)
        .bind(&r.sport)
        .bind(&r.team_id)
        .bind(i64::try_from(r.article_count).unwrap_or(i64::MAX))
        .bind(r.mean_sentiment)
        .bind(r.event_time)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}
