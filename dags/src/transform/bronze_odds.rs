//! bronze.odds built column by column, straight from raw odds objects.
//!
//! A season is millions of prices; going through a `serde_json::Value` tree
//! and a row struct per price allocated a dozen strings a row. Here a raw
//! object is decoded into the typed models in one pass and every price is
//! appended to its column builders, borrowing the decoded strings.
//!
//! The strings of an event (its id, teams) and of the object (sport,
//! source, raw key, run id) repeat over runs of prices: each run stores its
//! value once and its rows share it, as Parquet's dictionary pages do, so a
//! price costs a 16-byte view for them, not a copy.
//!
//! Only an object whose every snapshot decodes takes that path. Any other is
//! decoded snapshot by snapshot and event by event through the validators
//! ([`odds_api::validate_historical`]), which skip exactly what they reject,
//! so both paths keep the same rows.

use chrono::{DateTime, Utc};
use polars::prelude::{
    Column, DataFrame, DataType, IntoColumn, NamedFrom, PolarsResult, Series, StringChunked,
    StringChunkedBuilder, TimeUnit,
};
use polars_arrow::array::MutableBinaryViewArray;
use serde_json::Value;

use super::bronze::Origin;
use super::frame::days_since_epoch;
use sources::odds_api::{self, HistoricalOdds, OddsEvent, OddsFormat};

/// The columns of bronze.odds, in its table's order, filled price by price.
pub struct OddsColumns {
    sport: RunStrings,
    sports_date: Vec<i32>,
    snapshot_time: Vec<i64>,
    event_id: RunStrings,
    commence_time: Vec<i64>,
    home_team: RunStrings,
    away_team: RunStrings,
    bookmaker: StringChunkedBuilder,
    market: StringChunkedBuilder,
    outcome: StringChunkedBuilder,
    outcome_name: StringChunkedBuilder,
    price_american: Vec<f64>,
    price_decimal: Vec<f64>,
    point: Vec<Option<f64>>,
    last_update: Vec<Option<i64>>,
    source: RunStrings,
    raw_key: RunStrings,
    run_id: RunStrings,
    ingested_at: Vec<i64>,
}

/// A string column filled in runs of one value, each value stored once.
#[derive(Default)]
struct RunStrings(MutableBinaryViewArray<str>);

impl RunStrings {
    fn with_capacity(rows: usize) -> Self {
        Self(MutableBinaryViewArray::with_capacity(rows))
    }

    fn push_run(&mut self, value: &str, rows: usize) {
        if rows > 0 {
            self.0.extend_constant(rows, Some(value));
        }
    }

    fn finish(self, name: &str) -> Column {
        StringChunked::with_chunk(name.into(), self.0.freeze()).into_column()
    }
}

fn strings(name: &str, capacity: usize) -> StringChunkedBuilder {
    StringChunkedBuilder::new(name.into(), capacity)
}

impl Default for OddsColumns {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl OddsColumns {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            sport: RunStrings::with_capacity(rows),
            sports_date: Vec::with_capacity(rows),
            snapshot_time: Vec::with_capacity(rows),
            event_id: RunStrings::with_capacity(rows),
            commence_time: Vec::with_capacity(rows),
            home_team: RunStrings::with_capacity(rows),
            away_team: RunStrings::with_capacity(rows),
            bookmaker: strings("bookmaker", rows),
            market: strings("market", rows),
            outcome: strings("outcome", rows),
            outcome_name: strings("outcome_name", rows),
            price_american: Vec::with_capacity(rows),
            price_decimal: Vec::with_capacity(rows),
            point: Vec::with_capacity(rows),
            last_update: Vec::with_capacity(rows),
            source: RunStrings::with_capacity(rows),
            raw_key: RunStrings::with_capacity(rows),
            run_id: RunStrings::with_capacity(rows),
            ingested_at: Vec::with_capacity(rows),
        }
    }

    /// Prices appended so far.
    pub fn len(&self) -> usize {
        self.price_decimal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the valid prices of one stored odds object (a JSON array of
    /// historical snapshots); returns how many. Errors only when the object
    /// is not JSON at all.
    pub fn add_object(
        &mut self,
        bytes: &[u8],
        origin: &Origin,
        format: OddsFormat,
    ) -> Result<usize, serde_json::Error> {
        let before = self.len();
        match serde_json::from_slice::<Vec<HistoricalOdds>>(bytes) {
            Ok(mut snapshots) => {
                for snapshot in &mut snapshots {
                    for event in &mut snapshot.data {
                        // The validators' rules: a bad quote costs its market.
                        if odds_api::screen(event, format).is_ok() {
                            self.push_event(event, snapshot.timestamp, origin, format);
                        }
                    }
                }
            }
            Err(_) => {
                let payload: Value = serde_json::from_slice(bytes)?;
                self.add_payload(&payload, origin, format);
            }
        }
        Ok(self.len() - before)
    }

    /// Appends the valid prices of an already decoded odds object; returns
    /// how many. A snapshot or event the validators reject is skipped: the
    /// `validate` task dead-lettered it.
    pub fn add_payload(&mut self, payload: &Value, origin: &Origin, format: OddsFormat) -> usize {
        let before = self.len();
        for snapshot in payload.as_array().map(Vec::as_slice).unwrap_or_default() {
            let Ok((times, checked)) = odds_api::validate_historical(snapshot, format) else {
                continue;
            };
            for event in &checked.good {
                self.push_event(event, times.timestamp, origin, format);
            }
        }
        self.len() - before
    }

    /// One row per quoted price of `event` (see [`OddsEvent::quotes`]).
    fn push_event(
        &mut self,
        event: &OddsEvent,
        at: DateTime<Utc>,
        origin: &Origin,
        format: OddsFormat,
    ) {
        let sports_date = days_since_epoch(origin.sports_date);
        let at = at.timestamp_micros();
        let commence = event.commence_time.timestamp_micros();
        let ingested = origin.ingested_at.timestamp_micros();
        let before = self.len();
        event.each_quoted_price(format, |price| {
            self.sports_date.push(sports_date);
            self.snapshot_time.push(at);
            self.commence_time.push(commence);
            self.bookmaker.append_value(price.bookmaker);
            self.market.append_value(price.market);
            self.outcome.append_value(price.side.as_str());
            self.outcome_name.append_value(price.outcome_name);
            self.price_american.push(price.american);
            self.price_decimal.push(price.decimal);
            self.point.push(price.point);
            self.last_update
                .push(price.last_update.map(|t| t.timestamp_micros()));
            self.ingested_at.push(ingested);
        });
        let rows = self.len() - before;
        self.sport.push_run(&origin.sport, rows);
        self.event_id.push_run(&event.id, rows);
        self.home_team.push_run(&event.home_team, rows);
        self.away_team.push_run(&event.away_team, rows);
        self.source.push_run(&origin.source, rows);
        self.raw_key.push_run(&origin.raw_key, rows);
        self.run_id.push_run(&origin.run_id, rows);
    }

    /// The bronze.odds frame, in the table's column order and dtypes.
    pub fn finish(self) -> PolarsResult<DataFrame> {
        let s = |b: StringChunkedBuilder| -> Column { b.finish().into_column() };
        // Microseconds since the epoch (required or optional) as timestamps.
        let ts = |micros: Series| -> PolarsResult<Column> {
            Ok(micros
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
                .into_column())
        };
        let f64s = |name: &str, v: Vec<f64>| Series::new(name.into(), v).into_column();
        let columns: Vec<Column> = vec![
            self.sport.finish("sport"),
            Series::new("sports_date".into(), self.sports_date)
                .cast(&DataType::Date)?
                .into_column(),
            ts(Series::new("snapshot_time".into(), self.snapshot_time))?,
            self.event_id.finish("event_id"),
            ts(Series::new("commence_time".into(), self.commence_time))?,
            self.home_team.finish("home_team"),
            self.away_team.finish("away_team"),
            s(self.bookmaker),
            s(self.market),
            s(self.outcome),
            s(self.outcome_name),
            f64s("price_american", self.price_american),
            f64s("price_decimal", self.price_decimal),
            Series::new("point".into(), self.point).into_column(),
            ts(Series::new("last_update".into(), self.last_update))?,
            self.source.finish("source"),
            self.raw_key.finish("raw_key"),
            self.run_id.finish("run_id"),
            ts(Series::new("ingested_at".into(), self.ingested_at))?,
        ];
        DataFrame::new_infer_height(columns)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use serde_json::json;

    use super::*;

    /// Real `/odds` events, priced in decimal, `last_update` in epoch seconds.
    const REAL_ODDS: &str =
        include_str!("../../../sources/fixtures/real/theoddsapi_nfl_odds_5050club.json");
    const FORMAT: OddsFormat = OddsFormat::Decimal;

    fn origin() -> Origin {
        Origin {
            sport: "nfl".to_owned(),
            sports_date: NaiveDate::from_ymd_opt(2023, 9, 10).expect("date"),
            source: "the_odds_api".to_owned(),
            raw_key: "raw/historical/nfl/odds/date=2023-09-10/the_odds_api-r1.json".to_owned(),
            run_id: "r1".to_owned(),
            ingested_at: Utc
                .with_ymd_and_hms(2023, 9, 11, 6, 0, 0)
                .single()
                .expect("time"),
        }
    }

    /// A stored odds object: the real `/odds` events as two historical snapshots.
    fn stored_object(events: &Value) -> Value {
        json!([
            {"timestamp": "2023-09-10T12:00:00Z", "previous_timestamp": "2023-09-10T11:55:00Z",
             "next_timestamp": "2023-09-10T12:05:00Z", "data": events},
            {"timestamp": "2023-09-10T12:05:00Z", "data": events},
        ])
    }

    fn decoded_from_bytes(object: &Value) -> DataFrame {
        let bytes = serde_json::to_vec(object).expect("json");
        let mut columns = OddsColumns::default();
        columns
            .add_object(&bytes, &origin(), FORMAT)
            .expect("decodes");
        columns.finish().expect("frame")
    }

    fn validated_value_by_value(object: &Value) -> DataFrame {
        let mut columns = OddsColumns::default();
        columns.add_payload(object, &origin(), FORMAT);
        columns.finish().expect("frame")
    }

    fn real_events() -> Value {
        serde_json::from_str(REAL_ODDS).expect("fixture is JSON")
    }

    #[test]
    fn a_real_object_decoded_in_one_pass_equals_the_validators_rows() {
        let object = stored_object(&real_events());
        let fast = decoded_from_bytes(&object);
        let checked = validated_value_by_value(&object);
        assert!(fast.height() > 100, "{} rows", fast.height());
        assert!(fast.equals_missing(&checked), "{fast}\n{checked}");
        let names: Vec<&str> = fast.get_column_names().iter().map(|n| n.as_str()).collect();
        let expected: Vec<&str> = super::super::bronze::ODDS.column_names();
        assert_eq!(names, expected);
    }

    #[test]
    fn an_events_id_and_teams_are_stored_once_for_all_its_prices() {
        let fast = decoded_from_bytes(&stored_object(&real_events()));
        let rows = fast.height();
        for name in ["event_id", "home_team", "away_team", "raw_key"] {
            let strings = fast.column(name).expect("column").str().expect("strings");
            let copied: usize = strings.iter().flatten().map(str::len).sum();
            let stored: usize = strings.downcast_iter().map(|a| a.total_buffer_len()).sum();
            // One copy per event and snapshot, far below a copy per price.
            assert!(
                stored * 3 < copied,
                "{name}: {stored} bytes stored for {rows} rows of {copied} bytes"
            );
        }
    }

    /// An h2h event of teams A and B priced by `outcomes`.
    fn event_priced(outcomes: Value) -> Value {
        json!({"id": "bad", "commence_time": "2023-09-10T17:00:00Z",
               "home_team": "A", "away_team": "B",
               "bookmakers": [{"key": "x", "markets": [{"key": "h2h", "outcomes": outcomes}]}]})
    }

    /// The real events with `bad` among them load exactly the real events' rows.
    fn assert_left_out(bad: Value) {
        let good = real_events();
        let mut with_bad = good.clone();
        with_bad.as_array_mut().expect("list").insert(1, bad);
        let kept = decoded_from_bytes(&stored_object(&with_bad));
        let expected = decoded_from_bytes(&stored_object(&good));
        assert_eq!(kept.height(), expected.height());
        assert!(kept.equals_missing(&expected));
    }

    #[test]
    fn an_event_that_fails_decoding_is_skipped_and_the_rest_kept() {
        assert_left_out(event_priced(
            json!([{"name": "A", "price": "not a number"}]),
        ));
    }

    #[test]
    fn an_event_with_an_invalid_price_is_skipped_on_the_fast_path_too() {
        assert_left_out(event_priced(
            json!([{"name": "A", "price": 0.5}, {"name": "B", "price": 1.9}]),
        ));
    }

    #[test]
    fn an_object_that_is_not_json_is_an_error() {
        let mut columns = OddsColumns::default();
        let result = columns.add_object(b"[{\"timestamp\": ", &origin(), FORMAT);
        assert!(result.is_err());
        assert!(columns.is_empty());
    }
}
