//! Serde helpers for the ways real payloads vary: numbers sent as strings
//! (and back), `null` where a list is expected, and times as ISO text or
//! Unix seconds (The Odds API's `dateFormat=iso|unix`).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string, number or bool as text; `null`/missing as `None`. ESPN sends
/// scores and ids as strings, but other endpoints send the same fields as
/// numbers or as `{value, displayValue}` objects.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<Value> = Option::deserialize(d)?;
    Ok(value.and_then(|v| value_as_string(&v)))
}

fn value_as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Object(map) => map
            .get("displayValue")
            .or_else(|| map.get("value"))
            .and_then(value_as_string),
        Value::Null | Value::Array(_) => None,
    }
}

/// A list where the source may send `null` instead of `[]`.
pub fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A number that may arrive as a JSON number or a numeric string.
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value: Option<Value> = Option::deserialize(d)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("not a number: {s:?}"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a number, got {other}"
        ))),
    }
}

/// Parses a timestamp as sent by our sources: RFC 3339, ESPN's minute
/// precision `2022-09-11T17:00Z`, or a zone-less ISO time taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t: &str = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    const FORMATS: &[&str] = &[
        "%Y-%m-%dT%H:%MZ",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .map(|naive| Utc.from_utc_datetime(&naive))
}

/// Unix seconds (integer or fractional) as a UTC time.
pub fn from_unix(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    let whole: i64 = secs.floor() as i64;
    let nanos: u32 = ((secs - secs.floor()) * 1e9).round().min(999_999_999.0) as u32;
    Utc.timestamp_opt(whole, nanos).single()
}

/// A time sent as ISO text or Unix seconds; `null`/missing as `None`.
pub fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value: Option<Value> = Option::deserialize(d)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {s:?}"))),
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(from_unix)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a Unix time: {n}"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a timestamp, got {other}"
        ))),
    }
}

/// A required time sent as ISO text or Unix seconds.
pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    opt_time(d)?.ok_or_else(|| serde::de::Error::custom("missing timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_format_the_sources_use() {
        let expected: DateTime<Utc> = Utc
            .with_ymd_and_hms(2022, 9, 11, 17, 0, 0)
            .single()
            .expect("time");
        assert_eq!(parse_time("2022-09-11T17:00Z"), Some(expected));
        assert_eq!(parse_time("2022-09-11T17:00:00Z"), Some(expected));
        assert_eq!(parse_time("2022-09-11T13:00:00-04:00"), Some(expected));
        assert_eq!(parse_time("2022-09-11T17:00"), Some(expected));
        assert_eq!(from_unix(1_662_915_600.0), Some(expected));
        assert_eq!(parse_time("yesterday"), None);
    }
}
