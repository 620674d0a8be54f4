//! Building DataFrames from Rust records, column by column, in the dtypes
//! the Iceberg tables declare ([`lakehouse::iceberg::Kind::polars`]).

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::{
    Column, DataFrame, DataType, IntoColumn, NamedFrom, PolarsResult, Series, TimeUnit,
};

/// Columns collected one at a time; [`FrameBuilder::build`] checks lengths.
#[derive(Default)]
pub struct FrameBuilder {
    columns: Vec<Column>,
    error: Option<polars::error::PolarsError>,
}

/// A date as polars stores it: days since 1970-01-01.
pub fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    (date - epoch).num_days() as i32
}

impl FrameBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, series: PolarsResult<Series>) -> Self {
        match series {
            Ok(s) => self.columns.push(s.into_column()),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    pub fn str<S: Into<String>>(
        self,
        name: &str,
        values: impl IntoIterator<Item = Option<S>>,
    ) -> Self {
        let v: Vec<Option<String>> = values.into_iter().map(|s| s.map(Into::into)).collect();
        self.push(Ok(Series::new(name.into(), v)))
    }

    pub fn int(self, name: &str, values: impl IntoIterator<Item = Option<i32>>) -> Self {
        let v: Vec<Option<i32>> = values.into_iter().collect();
        self.push(Ok(Series::new(name.into(), v)))
    }

    pub fn long(self, name: &str, values: impl IntoIterator<Item = Option<i64>>) -> Self {
        let v: Vec<Option<i64>> = values.into_iter().collect();
        self.push(Ok(Series::new(name.into(), v)))
    }

    pub fn f64(self, name: &str, values: impl IntoIterator<Item = Option<f64>>) -> Self {
        let v: Vec<Option<f64>> = values.into_iter().collect();
        self.push(Ok(Series::new(name.into(), v)))
    }

    pub fn bool(self, name: &str, values: impl IntoIterator<Item = Option<bool>>) -> Self {
        let v: Vec<Option<bool>> = values.into_iter().collect();
        self.push(Ok(Series::new(name.into(), v)))
    }

    pub fn date(self, name: &str, values: impl IntoIterator<Item = Option<NaiveDate>>) -> Self {
        let v: Vec<Option<i32>> = values
            .into_iter()
            .map(|d| d.map(days_since_epoch))
            .collect();
        self.push(Series::new(name.into(), v).cast(&DataType::Date))
    }

    pub fn ts(self, name: &str, values: impl IntoIterator<Item = Option<DateTime<Utc>>>) -> Self {
        let v: Vec<Option<i64>> = values
            .into_iter()
            .map(|t| t.map(|t| t.timestamp_micros()))
            .collect();
        self.push(
            Series::new(name.into(), v).cast(&DataType::Datetime(TimeUnit::Microseconds, None)),
        )
    }

    pub fn build(self) -> PolarsResult<DataFrame> {
        if let Some(e) = self.error {
            return Err(e);
        }
        DataFrame::new_infer_height(self.columns)
    }
}
