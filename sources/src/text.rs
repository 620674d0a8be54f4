//! Bounds on text that arrives from outside: names, titles and ids.
//!
//! A team name of five megabytes, a NUL byte (which Postgres `TEXT` refuses,
//! so one would later fail the serving copy of a whole batch) or a bidi
//! override (which makes a name display as something else) must never get
//! past validation (docs/quality.md#text-fields). Callers choose what a bad
//! field costs: a required field rejects its record, an optional one is
//! dropped.

use thiserror::Error;

/// Longest id (game, team, venue, athlete …) accepted, in characters.
pub const MAX_ID: usize = 128;
/// Longest name (team, venue, athlete, bookmaker …) accepted, in characters.
pub const MAX_NAME: usize = 200;
/// Longest title or description (news) accepted, in characters.
pub const MAX_TITLE: usize = 2_000;

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextProblem {
    #[error("is {chars} characters long (at most {max})")]
    TooLong { chars: usize, max: usize },
    #[error("holds a NUL character")]
    Nul,
    #[error("holds the control character U+{0:04X}")]
    Control(u32),
    #[error("holds the bidirectional override U+{0:04X}")]
    Bidi(u32),
}

/// `text`, trimmed, when it is at most `max` characters and holds no NUL,
/// other control character (tab, newline and carriage return are allowed
/// inside titles only as spaces: they are turned into one) or bidi
/// override/isolate.
pub fn bounded(text: &str, max: usize) -> Result<String, TextProblem> {
    let trimmed: &str = text.trim();
    if trimmed.chars().nth(max).is_some() {
        return Err(TextProblem::TooLong {
            chars: trimmed.chars().count(),
            max,
        });
    }
    let mut out = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match c {
            '\0' => return Err(TextProblem::Nul),
            '\t' | '\n' | '\r' => out.push(' '),
            c if is_bidi_control(c) => return Err(TextProblem::Bidi(c as u32)),
            c if c.is_control() => return Err(TextProblem::Control(c as u32)),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks `text` against the same bounds as [`bounded`] without copying
/// it, for the hot paths that keep the decoded string as it is; here a
/// tab or line break is refused like any other control character.
pub fn check(text: &str, max: usize) -> Result<(), TextProblem> {
    if text.len() > max && text.chars().nth(max).is_some() {
        return Err(TextProblem::TooLong {
            chars: text.chars().count(),
            max,
        });
    }
    if text.is_ascii() {
        return match text.bytes().find(|b| b.is_ascii_control()) {
            None => Ok(()),
            Some(0) => Err(TextProblem::Nul),
            Some(b) => Err(TextProblem::Control(u32::from(b))),
        };
    }
    for c in text.chars() {
        match c {
            '\0' => return Err(TextProblem::Nul),
            c if is_bidi_control(c) => return Err(TextProblem::Bidi(c as u32)),
            c if c.is_control() => return Err(TextProblem::Control(c as u32)),
            _ => {}
        }
    }
    Ok(())
}

/// Like [`bounded`], for a field that names itself in the error:
/// `"home team name holds a NUL character"`.
pub fn field(name: &str, text: &str, max: usize) -> Result<String, String> {
    bounded(text, max).map_err(|p| format!("{name} {p}"))
}

/// Like [`check`], for a field that names itself in the error (and never
/// quotes its value): `"home team holds a NUL character"`.
pub fn check_field(name: &str, text: &str, max: usize) -> Result<(), String> {
    check(text, max).map_err(|p| format!("{name} {p}"))
}

/// The explicit embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069): the characters of "Trojan Source" spoofing. Marks that
/// only hint direction (U+200E/F) are harmless and kept.
fn is_bidi_control(c: char) -> bool {
    matches!(c as u32, 0x202A..=0x202E | 0x2066..=0x2069)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_trimmed() {
        assert_eq!(
            bounded("  Boston Celtics ", MAX_NAME).as_deref(),
            Ok("Boston Celtics")
        );
        assert_eq!(
            bounded("Montréal Canadiens", MAX_NAME).as_deref(),
            Ok("Montréal Canadiens")
        );
        assert_eq!(bounded("a\tb", MAX_NAME).as_deref(), Ok("a b"));
    }

    #[test]
    fn nul_control_and_bidi_characters_are_refused() {
        assert_eq!(bounded("Bos\0ton", MAX_NAME), Err(TextProblem::Nul));
        assert_eq!(
            bounded("Bos\u{1b}[31m", MAX_NAME),
            Err(TextProblem::Control(0x1b))
        );
        assert_eq!(
            bounded("abc\u{202E}fed", MAX_NAME),
            Err(TextProblem::Bidi(0x202E))
        );
        assert_eq!(
            bounded("x\u{2067}y", MAX_NAME),
            Err(TextProblem::Bidi(0x2067))
        );
        // A left-to-right mark is only a hint: kept.
        assert!(bounded("x\u{200E}y", MAX_NAME).is_ok());
    }

    #[test]
    fn check_agrees_with_bounded_without_copying() {
        for text in [
            "Boston",
            "Bos\0ton",
            "Montréal",
            "abc\u{202E}",
            "a\u{1b}",
            "x\u{85}y",
        ] {
            assert_eq!(
                check(text, MAX_NAME),
                bounded(text, MAX_NAME).map(drop),
                "{text:?}"
            );
        }
        assert_eq!(check("a\tb", MAX_NAME), Err(TextProblem::Control(9)));
        assert!(matches!(
            check(&"é".repeat(201), MAX_NAME),
            Err(TextProblem::TooLong { chars: 201, .. })
        ));
        assert!(check(&"é".repeat(200), MAX_NAME).is_ok());
    }

    #[test]
    fn long_values_are_refused_with_their_length() {
        let huge: String = "a".repeat(5 * 1024 * 1024);
        assert_eq!(
            bounded(&huge, MAX_NAME),
            Err(TextProblem::TooLong {
                chars: 5 * 1024 * 1024,
                max: MAX_NAME
            })
        );
        assert!(bounded(&"é".repeat(MAX_NAME), MAX_NAME).is_ok());
        assert_eq!(
            field("home team name", &"b".repeat(201), MAX_NAME),
            Err("home team name is 201 characters long (at most 200)".to_string())
        );
    }
}
