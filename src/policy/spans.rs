//! Helpers over the spanned TOML tree: deserialize one piece at a time, so one bad probe
//! or step does not hide the errors of the others, and turn serde's errors into
//! diagnostics with a span and a hint.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};

use super::diag::{Diagnostic, Report};

pub type Value<'i> = Spanned<DeValue<'i>>;
pub type Table<'i> = DeTable<'i>;

/// Deserializes `value` into a raw struct; on failure reports why and returns `None`.
/// `extra_help` is appended to the hint (e.g. the fields every step accepts).
pub fn de<T: DeserializeOwned>(
    report: &mut Report,
    value: Value<'_>,
    extra_help: Option<&str>,
) -> Option<T> {
    let whole = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            report.push(from_toml_error(&e, whole, extra_help));
            None
        }
    }
}

/// A serde/TOML error as a diagnostic with a stable code and a fix.
pub fn from_toml_error(
    e: &toml::de::Error,
    fallback: Range<usize>,
    extra_help: Option<&str>,
) -> Diagnostic {
    let msg = e.message().trim().to_string();
    let span = e.span().unwrap_or(fallback);
    let (code, label, mut help) = if let Some(rest) = msg.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let help = match names.split_first() {
            Some((bad, expected)) => match closest(bad, expected.iter().map(String::as_str)) {
                Some(s) => Some(format!("did you mean `{s}`?")),
                None if expected.is_empty() => {
                    Some(format!("remove `{bad}`: this table takes no such field"))
                }
                None => Some(format!("remove `{bad}` or use one of the fields listed")),
            },
            None => None,
        };
        ("unknown-field", "unknown field", help)
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        let field = backticked(rest).into_iter().next().unwrap_or_default();
        (
            "missing-field",
            "in this table",
            Some(format!("add `{field} = …` to this table")),
        )
    } else if msg.starts_with("invalid type") {
        ("wrong-type", "wrong type", None)
    } else if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        let help = names
            .split_first()
            .and_then(|(bad, expected)| closest(bad, expected.iter().map(String::as_str)))
            .map(|s| format!("did you mean `{s}`?"));
        ("unknown-variant", "not one of the accepted values", help)
    } else if msg.contains("duration") {
        ("bad-duration", "not a duration", None)
    } else if msg.contains("secret reference") {
        ("bad-secret", "not a secret reference", None)
    } else {
        ("invalid-value", "invalid value", None)
    };
    if let Some(extra) = extra_help {
        help = Some(match help {
            Some(h) => format!("{h} ({extra})"),
            None => extra.to_string(),
        });
    }
    let mut d = Diagnostic::error(code, msg).at(span).label(label);
    d.help = help;
    d
}

/// A TOML syntax error.
pub fn syntax_error(e: &toml::de::Error, len: usize) -> Diagnostic {
    let span = e.span().unwrap_or(len..len);
    Diagnostic::error("syntax", format!("TOML syntax error: {}", e.message().trim()))
        .at(span)
        .label("here")
        .help("fix the TOML syntax; strings need quotes, tables are written [name], arrays of tables [[name]]")
}

/// Names in backticks, in order: "`a`, expected one of `b`, `c`" → [a, b, c].
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, w)| w.to_string())
        .collect()
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The table inside a value, or a `wrong-type` diagnostic naming what was expected.
pub fn as_table<'i>(
    report: &mut Report,
    value: Value<'i>,
    what: &str,
) -> Option<(Range<usize>, Table<'i>)> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(t) => Some((span, t)),
        other => {
            report.push(
                Diagnostic::error(
                    "wrong-type",
                    format!("{what} must be a table, not {}", other.type_str()),
                )
                .at(span)
                .label("expected a table"),
            );
            None
        }
    }
}

/// The array inside a value, or a `wrong-type` diagnostic.
pub fn as_array<'i>(
    report: &mut Report,
    value: Value<'i>,
    what: &str,
    hint: &str,
) -> Option<Vec<Value<'i>>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(a) => Some(a.into_iter().collect()),
        other => {
            report.push(
                Diagnostic::error(
                    "wrong-type",
                    format!(
                        "{what} must be an array of tables, not {}",
                        other.type_str()
                    ),
                )
                .at(span)
                .label("expected an array of tables")
                .help(hint.to_string()),
            );
            None
        }
    }
}

/// Takes `key` out of a table.
pub fn take<'i>(table: &mut Table<'i>, key: &str) -> Option<(Range<usize>, Value<'i>)> {
    let k = table.keys().find(|k| k.get_ref().as_ref() == key)?.clone();
    let span = k.span();
    table.remove(&k).map(|v| (span, v))
}

/// Splits a table into (the entries named in `keys`, the rest).
pub fn split<'i>(table: Table<'i>, keys: &[&str]) -> (Table<'i>, Table<'i>) {
    let mut picked = Table::new();
    let mut rest = Table::new();
    for (k, v) in table {
        if keys.contains(&k.get_ref().as_ref()) {
            picked.insert(k, v);
        } else {
            rest.insert(k, v);
        }
    }
    (picked, rest)
}

/// A table value with the given span.
pub fn table_value(span: Range<usize>, table: Table<'_>) -> Value<'_> {
    Spanned::new(span, DeValue::Table(table))
}

/// The string in a value, if it is one.
pub fn as_str<'a>(value: &'a Value<'_>) -> Option<&'a str> {
    value.get_ref().as_str()
}

/// A key's text.
pub fn key_str<'a>(key: &'a Spanned<DeString<'_>>) -> &'a str {
    key.get_ref().as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_unrelated_words_do_not() {
        let fields = ["interval", "timeout", "failure_threshold"];
        assert_eq!(closest("intervall", fields), Some("interval"));
        assert_eq!(
            closest("failure_treshold", fields),
            Some("failure_threshold")
        );
        assert_eq!(closest("colour", fields), None);
    }
}
