//! Counting the rows a rule rejects and naming a few of them, so a failed
//! check says which rows to look at.

use polars::prelude::*;

use super::SAMPLE_SIZE;

/// Name of the row-number column added when a suite has no key.
const ROW: &str = "__quality_row";

/// How many rows `mask` selects (a null mask value selects nothing), and up
/// to [`SAMPLE_SIZE`] of them by `key` (`game_id=1`), or by row number
/// (`row 7`) when the key is empty or not in the frame.
pub(super) fn failing_rows(
    df: &DataFrame,
    mask: Expr,
    key: &[String],
) -> PolarsResult<(u64, Vec<String>)> {
    let failing = df.clone().lazy().filter(mask.clone());
    let count = failing.select([len().alias("n")]).collect()?;
    let n = count.column("n")?.get(0)?.extract::<u64>().unwrap_or(0);
    if n == 0 {
        return Ok((0, Vec::new()));
    }
    let schema = df.schema();
    let by_key = !key.is_empty() && key.iter().all(|k| schema.contains(k));
    let cols: Vec<Expr> = if by_key {
        key.iter().map(|k| col(k.as_str())).collect()
    } else {
        vec![col(ROW)]
    };
    let rows = df
        .clone()
        .lazy()
        .with_row_index(ROW, None)
        .filter(mask)
        .limit(SAMPLE_SIZE as IdxSize)
        .select(cols)
        .collect()?;
    let sample = if by_key {
        key_rows(&rows, key)?
    } else {
        let idx = rows.column(ROW)?;
        (0..rows.height())
            .map(|i| Ok(format!("row {}", show(&idx.get(i)?))))
            .collect::<PolarsResult<Vec<_>>>()?
    };
    Ok((n, sample))
}

/// Each row of `df` as `a=1, b=x` over the columns `key`.
pub(super) fn key_rows(df: &DataFrame, key: &[String]) -> PolarsResult<Vec<String>> {
    let cols = key
        .iter()
        .map(|k| df.column(k))
        .collect::<PolarsResult<Vec<_>>>()?;
    (0..df.height())
        .map(|i| {
            let parts = key
                .iter()
                .zip(&cols)
                .map(|(k, c)| Ok(format!("{k}={}", show(&c.get(i)?))))
                .collect::<PolarsResult<Vec<_>>>()?;
            Ok(parts.join(", "))
        })
        .collect()
}

/// Up to [`SAMPLE_SIZE`] distinct values of `column` in the rows `mask`
/// selects, in order of first appearance (unmapped keys, unexpected values).
pub(super) fn distinct_values(
    df: &DataFrame,
    mask: Expr,
    column: &str,
) -> PolarsResult<Vec<String>> {
    let out = df
        .clone()
        .lazy()
        .filter(mask)
        .select([col(column).unique_stable().head(Some(SAMPLE_SIZE))])
        .collect()?;
    let values = out.column(column)?;
    (0..values.len())
        .map(|i| Ok(show(&values.get(i)?)))
        .collect()
}

/// A value as a person would type it: strings without quotes, `null` for null.
pub(super) fn show(v: &AnyValue<'_>) -> String {
    if v.is_null() {
        return "null".to_owned();
    }
    match v.extract_str() {
        Some(s) => s.to_owned(),
        None => v.to_string(),
    }
}
