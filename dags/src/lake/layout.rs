//! Raw-lake key layout (docs/lake-layout.md#raw-historical-objects,
//! docs/lake-layout.md#dead-letters):
//!
//! - `raw/historical/{sport}/{kind}/date=YYYY-MM-DD/{source}-{run_id}.{json|ndjson}.gz`
//! - `raw/dead_letter/{source}/{sport}/date=YYYY-MM-DD/{run_id}.ndjson.gz`
//!
//! Sports and sources are our own identifiers, so they are validated, not
//! encoded: lower-case ASCII letters, digits, `_` and inner `.` (sources name
//! their payload as `espn.scoreboard`); no `-`, which separates the source
//! from the run id in a file name. Run ids come from the
//! orchestrator and carry `:` and `+` (`scheduled__2024-09-08T00:00:00+00:00`),
//! which some S3 tools, Hadoop paths and shells mangle, so they are escaped as
//! `~HH` (hex of each UTF-8 byte) and decoded back by [`RawKey::parse`].

use chrono::NaiveDate;

use super::LakeError;

/// Root of batch pulls.
pub const HISTORICAL_ROOT: &str = "raw/historical";
/// Root of rejected records.
pub const DEAD_LETTER_ROOT: &str = "raw/dead_letter";

/// The data family segment of a raw key: the one kind enum of every layer.
pub use sources::DataKind as Kind;

/// How the payload is framed before gzip: one JSON document as the source
/// returned it, or one JSON record per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Ndjson,
}

impl Format {
    /// File-name suffix, compression included.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Json => ".json.gz",
            Format::Ndjson => ".ndjson.gz",
        }
    }
}

/// The parts of one raw batch object's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawKey {
    /// Sport key from [`crate::SPORTS`] (`nfl`, `nba`, …).
    pub sport: String,
    pub kind: Kind,
    /// The sports day the object covers.
    pub date: NaiveDate,
    /// Which API the bytes came from (`espn`, `odds_api`, …).
    pub source: String,
    /// The orchestrator run that wrote it, unescaped.
    pub run_id: String,
    pub format: Format,
}

impl RawKey {
    /// A key for `run_id`'s pull of `source` on `date`, validating the parts.
    pub fn new(
        sport: &str,
        kind: Kind,
        date: NaiveDate,
        source: &str,
        run_id: &str,
        format: Format,
    ) -> Result<Self, LakeError> {
        check_ident("sport", sport)?;
        check_ident("source", source)?;
        if run_id.is_empty() {
            return Err(LakeError::InvalidPart("empty run id".to_owned()));
        }
        Ok(RawKey {
            sport: sport.to_owned(),
            kind,
            date,
            source: source.to_owned(),
            run_id: run_id.to_owned(),
            format,
        })
    }

    /// The directory-like prefix every object of this sport, kind and date
    /// shares, ending in `/`.
    pub fn date_prefix(&self) -> String {
        date_prefix(&self.sport, self.kind, self.date)
    }

    /// The full object key.
    pub fn to_key(&self) -> String {
        format!(
            "{}{}-{}{}",
            self.date_prefix(),
            self.source,
            encode_run_id(&self.run_id),
            self.format.suffix()
        )
    }

    /// Reads a key written by [`RawKey::to_key`] back into its parts.
    pub fn parse(key: &str) -> Result<Self, LakeError> {
        let bad = |why: &str| LakeError::InvalidPart(format!("{key:?} is not a raw key: {why}"));
        let rest = key
            .strip_prefix(HISTORICAL_ROOT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("expected raw/historical/…"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [sport, kind, date, file] = parts.as_slice() else {
            return Err(bad("expected {sport}/{kind}/date=…/{file}"));
        };
        let date = parse_date_segment(date).ok_or_else(|| bad("expected date=YYYY-MM-DD"))?;
        let (stem, format) = if let Some(stem) = file.strip_suffix(Format::Ndjson.suffix()) {
            (stem, Format::Ndjson)
        } else if let Some(stem) = file.strip_suffix(Format::Json.suffix()) {
            (stem, Format::Json)
        } else {
            return Err(bad("expected a .json.gz or .ndjson.gz file"));
        };
        let (source, run_id) = stem
            .split_once('-')
            .ok_or_else(|| bad("expected {source}-{run_id}"))?;
        let run_id = decode_run_id(run_id).ok_or_else(|| bad("badly escaped run id"))?;
        let kind: Kind = kind
            .parse()
            .map_err(|e: sources::sport::UnknownKind| LakeError::InvalidPart(e.to_string()))?;
        RawKey::new(sport, kind, date, source, &run_id, format)
    }
}

/// `raw/historical/{sport}/{kind}/date=YYYY-MM-DD/`.
pub fn date_prefix(sport: &str, kind: Kind, date: NaiveDate) -> String {
    format!(
        "{HISTORICAL_ROOT}/{sport}/{kind}/date={}/",
        date.format("%Y-%m-%d")
    )
}

/// Where a fetch keeps, on its last try, a body it refused (not JSON):
/// beside the run's rejected records, under a name of its own so the
/// validate task's rewrite of those never removes it. Its `~fetch`
/// suffix cannot end an encoded run id (escapes are upper-case hex).
pub fn fetch_dead_letter_key(
    source: &str,
    sport: &str,
    date: NaiveDate,
    run_id: &str,
) -> Result<String, LakeError> {
    let key = dead_letter_key(source, sport, date, run_id)?;
    let suffix = Format::Ndjson.suffix();
    let stem = key.strip_suffix(suffix).unwrap_or(&key);
    Ok(format!("{stem}~fetch{suffix}"))
}

/// `raw/dead_letter/{source}/{sport}/date=YYYY-MM-DD/{run_id}.ndjson.gz`:
/// one object per source, sport and run, replaced whole when the run is
/// retried. The sport keeps the per-sport tasks of one run from
/// overwriting each other's rejects.
pub fn dead_letter_key(
    source: &str,
    sport: &str,
    date: NaiveDate,
    run_id: &str,
) -> Result<String, LakeError> {
    check_ident("source", source)?;
    check_ident("sport", sport)?;
    if run_id.is_empty() {
        return Err(LakeError::InvalidPart("empty run id".to_owned()));
    }
    Ok(format!(
        "{DEAD_LETTER_ROOT}/{source}/{sport}/date={}/{}{}",
        date.format("%Y-%m-%d"),
        encode_run_id(run_id),
        Format::Ndjson.suffix()
    ))
}

fn parse_date_segment(segment: &str) -> Option<NaiveDate> {
    let date = segment.strip_prefix("date=")?;
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// Sports and sources are identifiers we choose, so anything else is a bug
/// in the caller, reported rather than silently rewritten.
fn check_ident(what: &str, value: &str) -> Result<(), LakeError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && !value.ends_with('.')
        && !value.contains("..")
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(LakeError::InvalidPart(format!(
            "{what} {value:?} must be 1-64 characters of a-z, 0-9, _ and inner single dots"
        )))
    }
}

/// Keeps `[A-Za-z0-9_.-]`, escapes every other byte as `~HH`. A leading `.`
/// is escaped too, so an encoded run id never looks like a hidden file.
pub fn encode_run_id(run_id: &str) -> String {
    let mut out = String::with_capacity(run_id.len());
    for (i, b) in run_id.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// Inverse of [`encode_run_id`]; `None` for a malformed escape.
pub fn decode_run_id(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 9, 8).expect("valid date")
    }

    #[test]
    fn keys_round_trip_with_escaped_run_ids() {
        let run = "scheduled__2024-09-08T04:00:00+00:00";
        let key =
            RawKey::new("nfl", Kind::Odds, day(), "odds_api", run, Format::Json).expect("key");
        let text = key.to_key();
        assert_eq!(
            text,
            "raw/historical/nfl/odds/date=2024-09-08/odds_api-scheduled__2024-09-08T04~3A00~3A00~2B00~3A00.json.gz"
        );
        assert_eq!(RawKey::parse(&text).expect("parse"), key);
    }

    #[test]
    fn bad_parts_are_rejected() {
        assert!(RawKey::new("NFL", Kind::Games, day(), "espn", "r", Format::Json).is_err());
        assert!(RawKey::new("nfl", Kind::Games, day(), "es-pn", "r", Format::Json).is_err());
        assert!(RawKey::new("nfl", Kind::Games, day(), "../x", "r", Format::Json).is_err());
        assert!(RawKey::new("nfl", Kind::Games, day(), ".espn", "r", Format::Json).is_err());
        assert!(RawKey::new("nfl", Kind::Games, day(), "espn.", "r", Format::Json).is_err());
        assert!(RawKey::new("nfl", Kind::Games, day(), "espn", "", Format::Json).is_err());
        assert!(RawKey::parse("raw/historical/nfl/games/2024-09-08/espn-r.json.gz").is_err());
        assert!(decode_run_id("a~G1").is_none());
    }

    #[test]
    fn dead_letter_keys_follow_the_layout() {
        let key = dead_letter_key("espn.scoreboard", "nfl", day(), "manual__x:y").expect("key");
        assert_eq!(
            key,
            "raw/dead_letter/espn.scoreboard/nfl/date=2024-09-08/manual__x~3Ay.ndjson.gz"
        );
        assert!(dead_letter_key("espn.scoreboard", "NFL", day(), "r").is_err());
        assert_eq!(
            fetch_dead_letter_key("espn.scoreboard", "nfl", day(), "manual__x:y").expect("key"),
            "raw/dead_letter/espn.scoreboard/nfl/date=2024-09-08/manual__x~3Ay~fetch.ndjson.gz"
        );
        assert!(dead_letter_key("espn.scoreboard", "", day(), "r").is_err());
        assert_eq!(encode_run_id(".hidden"), "~2Ehidden");
    }
}
