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
    WHERE EXCLUDED.event_time >= weather_latest.event_time
       -- A row stamped a day past its own ingest time came from a clock
       -- gone wrong, before such events were dead-lettered as `future`:
       -- a true observation replaces it (the processor forgets it on restore).
       OR weather_latest.event_time > weather_latest.ingest_time + interval '1 day'";

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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;

    fn row(wind: f64, event_time: DateTime<Utc>, ingest_time: DateTime<Utc>) -> WeatherLatestRow {
        WeatherLatestRow {
            venue_id: "v-heal".into(),
            game_id: "g".into(),
            sport: "nfl".into(),
            temperature_c: None,
            wind_speed_ms: Some(wind),
            wind_deg: None,
            wind_cardinal: None,
            precipitation_mm: None,
            humidity_pct: None,
            condition: None,
            event_time,
            ingest_time,
        }
    }

    async fn wind(conn: &mut PgConnection) -> f64 {
        sqlx::query_scalar(
            "SELECT wind_speed_ms FROM serving.weather_latest WHERE venue_id = 'v-heal'",
        )
        .fetch_one(conn)
        .await
        .expect("the row")
    }

    #[tokio::test]
    async fn a_row_stamped_by_a_wrong_clock_gives_way_to_a_true_observation() {
        let metadata = crate::tests::metadata().await;
        let mut conn = metadata.pool().acquire().await.expect("connection");
        let now = Utc::now();
        let poisoned = row(1.0, now + TimeDelta::days(365 * 70), now);
        upsert_latest(&mut conn, &poisoned).await.expect("upsert");
        upsert_latest(&mut conn, &row(2.0, now, now))
            .await
            .expect("upsert");
        assert_eq!(
            wind(&mut conn).await,
            2.0,
            "the true observation replaced it"
        );
        // An older true observation still does not replace a newer one.
        let older = row(3.0, now - TimeDelta::minutes(5), now);
        upsert_latest(&mut conn, &older).await.expect("upsert");
        assert_eq!(wind(&mut conn).await, 2.0);
    }
}
