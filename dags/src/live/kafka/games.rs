//! The games consumer's sink: [`GamesProcessor`] per partition, upserting
//! `serving.game_state` and `serving.game_windows`.

use async_trait::async_trait;
use chrono::TimeDelta;
use sqlx::PgConnection;

use crate::live::envelope::Kind;
use crate::live::games::{GamesOutput, GamesProcessor, PROCESSOR};
use crate::live::serving::{GameLeaderRow, GameStateRow, GameWindowRow};
use crate::settings::LiveSettings;
use streaming::kafka::config::DEFAULT_ALLOWED_LATENESS;
use streaming::kafka::consumer::{Counters, KafkaConsumer, Meta, TopicProcessor};
use streaming::kafka::KafkaSettings;
use streaming::window::{WindowError, WindowSpec};

/// Scoring windows of `serving.game_windows` and their allowed lateness.
#[derive(Debug, Clone, Copy)]
pub struct GamesSink {
    pub spec: WindowSpec,
    pub allowed_lateness: TimeDelta,
}

impl Default for GamesSink {
    /// 3-minute tumbling windows, 1 minute of lateness (docs/topics.md#consumers).
    fn default() -> Self {
        Self {
            spec: WindowSpec::tumbling_whole_minutes(3),
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
        }
    }
}

/// The games consumer on `kafka`'s cluster (group `{prefix}-games`),
/// with the deployment's windows.
pub fn games_consumer(kafka: &KafkaSettings, live: &LiveSettings) -> KafkaConsumer<GamesSink> {
    let sink = GamesSink {
        spec: live.games_window,
        allowed_lateness: live.allowed_lateness,
    };
    KafkaConsumer::new(kafka.consumer(PROCESSOR), sink)
}

#[async_trait]
impl TopicProcessor for GamesSink {
    const NAME: &'static str = PROCESSOR;
    const KIND: Kind = Kind::Games;
    const COUNTERS: &'static [&'static str] = &["state_rows", "window_rows", "leader_rows"];
    type State = GamesProcessor;

    fn fingerprint(&self) -> String {
        format!("v1 {}", self.spec.fingerprint(self.allowed_lateness))
    }

    fn fresh(&self) -> Result<GamesProcessor, WindowError> {
        GamesProcessor::new(self.spec, self.allowed_lateness)
    }

    async fn write(
        &self,
        conn: &mut PgConnection,
        meta: &Meta,
        out: &GamesOutput,
        counters: &mut Counters,
    ) -> Result<(), sqlx::Error> {
        if let Some(state) = &out.state {
            upsert_state(
                conn,
                &GameStateRow::new(&meta.sport, state, meta.ingest_time),
            )
            .await?;
            *counters.entry("state_rows").or_default() += 1;
            let leaders: Vec<GameLeaderRow> = GameLeaderRow::of(&meta.sport, state);
            if !leaders.is_empty() {
                upsert_leaders(conn, &leaders).await?;
                *counters.entry("leader_rows").or_default() += leaders.len() as u64;
            }
        }
        for closed in &out.closed {
            upsert_window(conn, &GameWindowRow::new(&meta.sport, closed)).await?;
            *counters.entry("window_rows").or_default() += 1;
        }
        Ok(())
    }
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A state older than the stored one (a game forgotten after its final and
/// corrected much later) never replaces it.
const UPSERT_STATE: &str = "INSERT INTO serving.game_state (game_id, sport, status, period,
        clock, home_team_id, away_team_id, home_score, away_score, leader, lead_changes,
        pace_per_period, period_points, progression, status_history, event_time, ingest_time,
        home_team, away_team, start_time, home_record, away_record, home_stats, away_stats,
        write_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,
        $23,$24, now())
    ON CONFLICT (game_id) DO UPDATE SET
        sport = EXCLUDED.sport, status = EXCLUDED.status, period = EXCLUDED.period,
        clock = EXCLUDED.clock, home_team_id = EXCLUDED.home_team_id,
        away_team_id = EXCLUDED.away_team_id, home_score = EXCLUDED.home_score,
        away_score = EXCLUDED.away_score, leader = EXCLUDED.leader,
        lead_changes = EXCLUDED.lead_changes, pace_per_period = EXCLUDED.pace_per_period,
        period_points = EXCLUDED.period_points, progression = EXCLUDED.progression,
        status_history = EXCLUDED.status_history, event_time = EXCLUDED.event_time, ingest_time = EXCLUDED.ingest_time,
        home_team = COALESCE(EXCLUDED.home_team, game_state.home_team),
        away_team = COALESCE(EXCLUDED.away_team, game_state.away_team),
        start_time = COALESCE(EXCLUDED.start_time, game_state.start_time),
        home_record = COALESCE(EXCLUDED.home_record, game_state.home_record),
        away_record = COALESCE(EXCLUDED.away_record, game_state.away_record),
        home_stats = COALESCE(EXCLUDED.home_stats, game_state.home_stats),
        away_stats = COALESCE(EXCLUDED.away_stats, game_state.away_stats),
        write_time = now()
    WHERE EXCLUDED.event_time >= game_state.event_time
       -- A row stamped a day past its own ingest time came from a clock
       -- gone wrong, before such events were dead-lettered as `future`:
       -- a true update replaces it (the processor forgets it on restore).
       OR game_state.event_time > game_state.ingest_time + interval '1 day'";

async fn upsert_state(conn: &mut PgConnection, r: &GameStateRow) -> Result<(), sqlx::Error> {
    let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
    sqlx::query(UPSERT_STATE)
        .bind(&r.game_id)
        .bind(&r.sport)
        .bind(r.status.as_str())
        .bind(int(r.period))
        .bind(&r.clock)
        .bind(&r.home_team_id)
        .bind(&r.away_team_id)
        .bind(int(r.home_score))
        .bind(int(r.away_score))
        .bind(r.leader.as_str())
        .bind(int(r.lead_changes))
        .bind(r.pace_per_period)
        .bind(json(serde_json::to_value(&r.period_points)))
        .bind(json(serde_json::to_value(&r.progression)))
        .bind(json(serde_json::to_value(&r.status_history)))
        .bind(r.event_time)
        .bind(r.ingest_time)
        .bind(&r.home_team)
        .bind(&r.away_team)
        .bind(r.start_time)
        .bind(&r.home_record)
        .bind(&r.away_record)
        .bind(r.home_stats.as_ref().map(|s| json(serde_json::to_value(s))))
        .bind(r.away_stats.as_ref().map(|s| json(serde_json::to_value(s))))
        .execute(conn)
        .await?;
    Ok(())
}

/// A game's leaders, one statement for all of them; an older poll's
/// leader never replaces a newer one.
const UPSERT_LEADERS: &str = "INSERT INTO serving.game_leaders (game_id, sport, category,
        team_id, athlete, display_value, value, event_time, write_time)
    SELECT * , now() FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::float8[], $8::timestamptz[])
    ON CONFLICT (game_id, category, team_id) DO UPDATE SET
        sport = EXCLUDED.sport, athlete = EXCLUDED.athlete,
        display_value = EXCLUDED.display_value, value = EXCLUDED.value,
        event_time = EXCLUDED.event_time, write_time = now()
    WHERE EXCLUDED.event_time >= game_leaders.event_time";

async fn upsert_leaders(
    conn: &mut PgConnection,
    rows: &[GameLeaderRow],
) -> Result<(), sqlx::Error> {
    let col = |f: fn(&GameLeaderRow) -> &str| -> Vec<&str> { rows.iter().map(f).collect() };
    sqlx::query(UPSERT_LEADERS)
        .bind(col(|r| &r.game_id))
        .bind(col(|r| &r.sport))
        .bind(col(|r| &r.category))
        .bind(col(|r| &r.team_id))
        .bind(col(|r| &r.athlete))
        .bind(col(|r| &r.display_value))
        .bind(rows.iter().map(|r| r.value).collect::<Vec<f64>>())
        .bind(rows.iter().map(|r| r.event_time).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

const UPSERT_WINDOW: &str = "INSERT INTO serving.game_windows (processor, key, window_start,
        window_end, sport, events, first_time, last_time, status, period, home_score,
        away_score, home_run, away_run, event_time, ingest_time, write_time)
    VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16, now())
    ON CONFLICT (processor, key, window_start) DO UPDATE SET
        window_end = EXCLUDED.window_end, sport = EXCLUDED.sport, events = EXCLUDED.events,
        first_time = EXCLUDED.first_time, last_time = EXCLUDED.last_time,
        status = EXCLUDED.status, period = EXCLUDED.period,
        home_score = EXCLUDED.home_score, away_score = EXCLUDED.away_score,
        home_run = EXCLUDED.home_run, away_run = EXCLUDED.away_run,
        event_time = EXCLUDED.event_time, ingest_time = EXCLUDED.ingest_time,
        write_time = now()";

async fn upsert_window(conn: &mut PgConnection, r: &GameWindowRow) -> Result<(), sqlx::Error> {
    let run = |n: i64| i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX });
    sqlx::query(UPSERT_WINDOW)
        .bind(r.processor)
        .bind(&r.key)
        .bind(r.window_start)
        .bind(r.window_end)
        .bind(&r.sport)
        .bind(i64::try_from(r.events).unwrap_or(i64::MAX))
        .bind(r.first_time)
        .bind(r.last_time)
        .bind(r.status.as_str())
        .bind(int(r.period))
        .bind(int(r.home_score))
        .bind(int(r.away_score))
        .bind(run(r.home_run))
        .bind(run(r.away_run))
        .bind(r.event_time)
        .bind(r.ingest_time)
        .execute(conn)
        .await?;
    Ok(())
}
