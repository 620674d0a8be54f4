//! The weather consumer's sink: [`WeatherProcessor`] per partition,
//! upserting `serving.weather_latest` and `serving.weather_alerts`.

use async_trait::async_trait;
use sqlx::PgConnection;

use crate::live::envelope::Kind;
use crate::live::serving::{WeatherAlertRow, WeatherLatestRow};
use crate::live::weather::{Thresholds, WeatherOutput, WeatherProcessor, PROCESSOR};
use streaming::kafka::consumer::{Counters, KafkaConsumer, Meta, TopicProcessor};
use streaming::kafka::KafkaSettings;
use streaming::window::WindowError;

/// Alert thresholds of `serving.weather_alerts`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeatherSink {
    pub thresholds: Thresholds,
}

/// The weather consumer on `kafka`'s cluster (group `{prefix}-weather`).
pub fn weather_consumer(kafka: &KafkaSettings) -> KafkaConsumer<WeatherSink> {
    KafkaConsumer::new(kafka.consumer(PROCESSOR), WeatherSink::default())
}

#[async_trait]
impl TopicProcessor for WeatherSink {
    const NAME: &'static str = PROCESSOR;
    const KIND: Kind = Kind::Weather;
    const COUNTERS: &'static [&'static str] = &["latest_rows", "alerts"];
    type State = WeatherProcessor;

    fn fingerprint(&self) -> String {
        let t: &Thresholds = &self.thresholds;
        format!(
            "v1 wind={:?} precipitation={:?} temperature={:?}",
            t.wind_speed_ms, t.precipitation_mm, t.temperature_c
        )
    }

    fn fresh(&self) -> Result<WeatherProcessor, WindowError> {
        Ok(WeatherProcessor::new(self.thresholds))
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        meta: &Meta,
        out: &WeatherOutput,
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        if let Some(current) = &out.current {
            upsert_latest(
                conn,
                &WeatherLatestRow::new(&meta.sport, current, meta.ingest_time),
            )
            .await?;
            *counters.entry("latest_rows").or_default() += 1;
        }
        for change in &out.changes {
            upsert_alert(
                conn,
                &WeatherAlertRow::new(&meta.sport, change, meta.ingest_time),
            )
            .await?;
            *counters.entry("alerts").or_default() += 1;
        }
        Ok(())
    }
}

/// Venues see observations from several games' keys, hence partitions:
/// the newest observation wins whatever the arrival order.
const UPSERT_LATEST: &str = "INSERT INTO serving.weather_latest (venue_id, game_id, sport,
        temperature_c, wind_speed_ms, wind_deg, wind_cardinal, precipitation_mm, humidity_pct,
        condition, event_time, ingest_time, write_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12, now())
    ON CONFLICT (venue_id) DO UPDATE SET
        game_id = EXCLUDED.game_id, sport = EXCLUDED.sport,
        temperature_c = EXCLUDED.temperature_c, wind_speed_ms = EXCLUDED.wind_speed_ms,
        wind_deg = EXCLUDED.wind_deg, wind_cardinal = EXCLUDED.wind_cardinal,
        precipitation_mm = EXCLUDED.precipitation_mm, humidity_pct = EXCLUDED.humidity_pct,
        condition = EXCLUDED.condition, event_time = EXCLUDED.event_time,
        ingest_time = EXCLUDED.ingest_time, write_time = now()
    WHERE EXCLUDED.event_time >= weather_latest.event_time";

async fn upsert_latest(conn: &mut PgConnection, r: &WeatherLatestRow) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT_LATEST)
        .bind(&r.venue_id)
        .bind(&r.game_id)
        .bind(&r.sport)
        .bind(r.temperature_c)
        .bind(r.wind_speed_ms)
        .bind(r.wind_deg)
        .bind(r.wind_cardinal)
        .bind(r.precipitation_mm)
        .bind(r.humidity_pct)
        .bind(&r.condition)
        .bind(r.event_time)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}

const UPSERT_ALERT: &str = "INSERT INTO serving.weather_alerts (venue_id, field, event_time,
        game_id, sport, from_value, to_value, ingest_time, write_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8, now())
    ON CONFLICT (venue_id, field, event_time) DO UPDATE SET
        game_id = EXCLUDED.game_id, sport = EXCLUDED.sport,
        from_value = EXCLUDED.from_value, to_value = EXCLUDED.to_value,
        ingest_time = EXCLUDED.ingest_time, write_time = now()";

async fn upsert_alert(conn: &mut PgConnection, r: &WeatherAlertRow) -> Result<(), sqlx::Error> {
    sqlx::query(UPSERT_ALERT)
        .bind(&r.venue_id)
        .bind(r.field.as_str())
        .bind(r.event_time)
        .bind(&r.game_id)
        .bind(&r.sport)
        .bind(r.from_value)
        .bind(r.to_value)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}
