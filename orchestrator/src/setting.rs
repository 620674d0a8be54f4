//! Reading settings from a lookup (`name → value`) instead of from the
//! process environment directly, so every crate resolves its settings once
//! when the binary starts, and tests hand in a map instead of changing a
//! process-wide environment other tests share.
//!
//! A value that does not parse is an error naming the variable and the
//! value ([`SettingError`]); the binary stops with exit code 2 on it. A
//! value is never silently replaced by a default.

use std::fmt;
use std::str::FromStr;

/// A variable's value, `None` when unset. Blank counts as unset, so an
/// `export X=` left in a shell profile is not configuration.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;

    /// The value as set, blank included, for the few settings where an
    /// empty value means "none" rather than "the default".
    fn get_raw(&self, name: &str) -> Option<String> {
        self.get(name)
    }
}

/// The process environment, read once at start by whoever holds it.
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.get_raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn get_raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables: tests, and programs configured in code.
#[derive(Debug, Clone, Default)]
pub struct Vars(pub std::collections::BTreeMap<String, String>);

impl Vars {
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Vars(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl Lookup for Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.get_raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn get_raw(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Two lookups, the first's values winning: a command's own values over
/// the environment (`up`'s embedded broker over `KAFKA_BROKERS`).
pub struct Layered<A, B>(pub A, pub B);

impl<A: Lookup, B: Lookup> Lookup for Layered<A, B> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).or_else(|| self.1.get(name))
    }

    fn get_raw(&self, name: &str) -> Option<String> {
        self.0.get_raw(name).or_else(|| self.1.get_raw(name))
    }
}

/// A variable whose value is not what it must be, or that is missing while
/// another one needs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{name}={value:?}: {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
    #[error("{name} is not set: {why}")]
    Missing { name: String, why: String },
}

impl SettingError {
    pub fn invalid(name: &str, value: &str, expected: impl fmt::Display) -> Self {
        SettingError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            expected: expected.to_string(),
        }
    }

    pub fn missing(name: &str, why: impl fmt::Display) -> Self {
        SettingError::Missing {
            name: name.to_owned(),
            why: why.to_string(),
        }
    }
}

/// `name` parsed as `T`, `None` when unset; `expected` says what a good
/// value looks like.
pub fn parsed<T: FromStr>(
    env: &impl Lookup,
    name: &str,
    expected: &str,
) -> Result<Option<T>, SettingError> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| SettingError::invalid(name, &value, expected))
}

/// [`parsed`] for a number that must be above zero.
pub fn positive<T: FromStr + PartialOrd + Default>(
    env: &impl Lookup,
    name: &str,
) -> Result<Option<T>, SettingError> {
    const EXPECTED: &str = "must be a whole number above zero";
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    match value.parse::<T>() {
        Ok(v) if v > T::default() => Ok(Some(v)),
        _ => Err(SettingError::invalid(name, &value, EXPECTED)),
    }
}

/// A yes/no variable: `1/true/yes/on` or `0/false/no/off`.
pub fn flag(env: &impl Lookup, name: &str) -> Result<Option<bool>, SettingError> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(SettingError::invalid(name, &value, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let env = Vars::new([("A", "  "), ("B", " 7 ")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(positive::<u32>(&env, "B"), Ok(Some(7)));
        assert_eq!(positive::<u32>(&env, "C"), Ok(None));
    }

    #[test]
    fn a_bad_value_is_named_with_the_variable() {
        let env = Vars::new([("N", "0"), ("F", "maybe")]);
        let err = positive::<u32>(&env, "N").unwrap_err();
        assert_eq!(
            err.to_string(),
            "N=\"0\": must be a whole number above zero"
        );
        assert!(flag(&env, "F")
            .unwrap_err()
            .to_string()
            .starts_with("F=\"maybe\""));
    }
}
