//! bronze.odds built column by column, straight from raw odds objects.
//!
//! A season is millions of prices; going through a `serde_json::Value` tree
//! and a row struct per price allocated a dozen strings a row. Here a raw
//! object is decoded into the typed models in one pass and every price is
//! appended to its column builders, borrowing the decoded strings.
//!
//! Only an object whose every snapshot decodes takes that path. Any other is
//! decoded snapshot by snapshot and event by event through the validators
//! ([`odds_api::validate_historical`]), which skip exactly what they reject,
//! so both paths keep the same rows.

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::{
    Column, DataFrame, DataType, IntoColumn, NamedFrom, PolarsResult, Series, StringChunkedBuilder,
    TimeUnit,
};
use serde_json::Value;

use super::bronze::Origin;
use crate::sources::odds_api::{self, HistoricalOdds, OddsEvent, OddsFormat};

/// The columns of bronze.odds, in its table's order, filled price by price.
pub struct OddsColumns {
    sport: StringChunkedBuilder,
    sports_date: Vec<i32>,
    snapshot_time: Vec<i64>,
    event_id: StringChunkedBuilder,
    commence_time: Vec<i64>,
    home_team: StringChunkedBuilder,
    away_team: StringChunkedBuilder,
    bookmaker: StringChunkedBuilder,
    market: StringChunkedBuilder,
    outcome: StringChunkedBuilder,
    outcome_name: StringChunkedBuilder,
    price_american: Vec<f64>,
    price_decimal: Vec<f64>,
    point: Vec<Option<f64>>,
    last_update: Vec<Option<i64>>,
    source: StringChunkedBuilder,
    raw_key: StringChunkedBuilder,
    run_id: StringChunkedBuilder,
    ingested_at: Vec<i64>,
}

fn strings(name: &str, capacity: usize) -> StringChunkedBuilder {
    StringChunkedBuilder::new(name.into(), capacity)
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    (date - epoch).num_days() as i32
}

impl Default for OddsColumns {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl OddsColumns {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            sport: strings("sport", rows),
            sports_date: Vec::with_capacity(rows),
            snapshot_time: Vec::with_capacity(rows),
            event_id: strings("event_id", rows),
            commence_time: Vec::with_capacity(rows),
            home_team: strings("home_team", rows),
            away_team: strings("away_team", rows),
            bookmaker: strings("bookmaker", rows),
            market: strings("market", rows),
            outcome: strings("outcome", rows),
            outcome_name: strings("outcome_name", rows),
            price_american: Vec::with_capacity(rows),
            price_decimal: Vec::with_capacity(rows),
            point: Vec::with_capacity(rows),
            last_update: Vec::with_capacity(rows),
            source: strings("source", rows),
            raw_key: strings("raw_key", rows),
            run_id: strings("run_id", rows),
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
            Ok(snapshots) => {
                for snapshot in &snapshots {
                    for event in &snapshot.data {
                        if odds_api::check_event(event, format).is_ok() {
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
        event.each_quoted_price(format, |price| {
            self.sport.append_value(&origin.sport);
            self.sports_date.push(sports_date);
            self.snapshot_time.push(at);
            self.event_id.append_value(&event.id);
            self.commence_time.push(commence);
            self.home_team.append_value(&event.home_team);
            self.away_team.append_value(&event.away_team);
            self.bookmaker.append_value(price.bookmaker);
            self.market.append_value(price.market);
            self.outcome.append_value(price.side.key());
            self.outcome_name.append_value(price.outcome_name);
            self.price_american.push(price.american);
            self.price_decimal.push(price.decimal);
            self.point.push(price.point);
            self.last_update
                .push(price.last_update.map(|t| t.timestamp_micros()));
            self.source.append_value(&origin.source);
            self.raw_key.append_value(&origin.raw_key);
            self.run_id.append_value(&origin.run_id);
            self.ingested_at.push(ingested);
        });
    }

    /// The bronze.odds frame, in the table's column order and dtypes.
    pub fn finish(self) -> PolarsResult<DataFrame> {
        let s = |b: StringChunkedBuilder| -> Column { b.finish().into_column() };
        let ts = |name: &str, v: Vec<i64>| -> PolarsResult<Column> {
            Ok(Series::new(name.into(), v)
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
                .into_column())
        };
        let opt_ts = |name: &str, v: Vec<Option<i64>>| -> PolarsResult<Column> {
            Ok(Series::new(name.into(), v)
                .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
                .into_column())
        };
        let f64s = |name: &str, v: Vec<f64>| Series::new(name.into(), v).into_column();
        let columns: Vec<Column> = vec![
            s(self.sport),
            Series::new("sports_date".into(), self.sports_date)
                .cast(&DataType::Date)?
                .into_column(),
            ts("snapshot_time", self.snapshot_time)?,
            s(self.event_id),
            ts("commence_time", self.commence_time)?,
            s(self.home_team),
            s(self.away_team),
            s(self.bookmaker),
            s(self.market),
            s(self.outcome),
            s(self.outcome_name),
            f64s("price_american", self.price_american),
            f64s("price_decimal", self.price_decimal),
            Series::new("point".into(), self.point).into_column(),
            opt_ts("last_update", self.last_update)?,
            s(self.source),
            s(self.raw_key),
            s(self.run_id),
            ts("ingested_at", self.ingested_at)?,
        ];
        DataFrame::new_infer_height(columns)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    /// Real `/odds` events, priced in decimal, `last_update` in epoch seconds.
    const REAL_ODDS: &str = include_str!("../../fixtures/real/theoddsapi_nfl_odds_5050club.json");
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
    fn an_event_that_fails_decoding_is_skipped_and_the_rest_kept() {
        let good = real_events();
        let mut with_bad = good.clone();
        let bad = json!({"id": "bad", "commence_time": "2023-09-10T17:00:00Z",
                         "home_team": "A", "away_team": "B",
                         "bookmakers": [{"key": "x", "markets": [{"key": "h2h",
                           "outcomes": [{"name": "A", "price": "not a number"}]}]}]});
        with_bad.as_array_mut().expect("list").insert(1, bad);
        let kept = decoded_from_bytes(&stored_object(&with_bad));
        let expected = decoded_from_bytes(&stored_object(&good));
        assert!(kept.equals_missing(&expected));
    }

    #[test]
    fn an_event_with_an_invalid_price_is_skipped_on_the_fast_path_too() {
        let good = real_events();
        let mut with_bad = good.clone();
        let bad = json!({"id": "bad", "commence_time": "2023-09-10T17:00:00Z",
                         "home_team": "A", "away_team": "B",
                         "bookmakers": [{"key": "x", "markets": [{"key": "h2h",
                           "outcomes": [{"name": "A", "price": 0.5}, {"name": "B", "price": 1.9}]}]}]});
        with_bad.as_array_mut().expect("list").push(bad);
        let kept = decoded_from_bytes(&stored_object(&with_bad));
        let expected = decoded_from_bytes(&stored_object(&good));
        assert_eq!(kept.height(), expected.height());
        assert!(kept.equals_missing(&expected));
    }

    #[test]
    fn an_object_that_is_not_json_is_an_error() {
        let mut columns = OddsColumns::default();
        let result = columns.add_object(b"[{\"timestamp\": ", &origin(), FORMAT);
        assert!(result.is_err());
        assert!(columns.is_empty());
    }
}
