//! Bit-exact `f64` in checkpointed processor state.
//!
//! A consumer checkpoints its processors' in-memory state as JSON and a
//! restart must continue from *exactly* that state: a running mean one ulp
//! off would make a window restored after a crash differ from the same
//! window of an uninterrupted run. serde_json writes the shortest decimal
//! that round-trips, but its default parser is only best-effort precise (the
//! `float_roundtrip` feature would fix that workspace-wide at a cost to every
//! other parser). So checkpointed floats are written as strings of the
//! shortest round-trip form (`{:?}`) and read back with `str::parse`, which
//! is correctly rounded: the same bits come back, NaN and infinities included.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// `#[serde(with = "crate::exact")]` on an `f64` field.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:?}"))
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let text: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

fn parse(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|e| format!("`{text}` is not a float: {e}"))
}

/// `#[serde(with = "crate::exact::option")]` on an `Option<f64>` field.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(&format_args!("{v:?}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let text: Option<std::borrow::Cow<'de, str>> = Deserialize::deserialize(d)?;
        text.map(|t| parse(&t).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct S {
        #[serde(with = "super")]
        v: f64,
        #[serde(with = "super::option")]
        o: Option<f64>,
    }

    #[test]
    fn every_bit_comes_back() {
        let values: [f64; 9] = [
            0.1 + 0.2,
            1.0 + 100.0 / 110.0,
            1.0 / 3.0,
            -2.5e-310,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            -0.0,
            // 17 significant digits, where best-effort parsing slips.
            2.0_f64.sqrt(),
        ];
        for v in values {
            let text: String = serde_json::to_string(&S { v, o: Some(v) }).expect("json");
            let back: S = serde_json::from_str(&text).expect("parses");
            assert_eq!(back.v.to_bits(), v.to_bits(), "{text}");
            assert_eq!(back.o.map(f64::to_bits), Some(v.to_bits()), "{text}");
        }
        let nan: S = serde_json::from_str(r#"{"v":"NaN","o":null}"#).expect("parses");
        assert!(nan.v.is_nan() && nan.o.is_none());
        assert!(serde_json::from_str::<S>(r#"{"v":"x","o":null}"#).is_err());
    }
}
