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
    let msg = plain_words(e.message().trim());
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
        (
            "wrong-type",
            "wrong type",
            Some(type_hint(&msg).to_string()),
        )
    } else if let Some(rest) = msg.strip_prefix("unknown value ") {
        let names = backticked(rest);
        let help = match names.split_first() {
            Some((bad, expected)) => match closest(bad, expected.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("use one of: {}", expected.join(", ")),
            },
            None => "use one of the values listed".to_string(),
        };
        (
            "unknown-variant",
            "not one of the accepted values",
            Some(help),
        )
    } else if msg.contains("duration") {
        (
            "bad-duration",
            "not a duration",
            Some(
                "write a number and a unit in quotes: \"250ms\", \"30s\", \"5m\", \"1h30m\""
                    .to_string(),
            ),
        )
    } else if msg.contains("secret reference") {
        (
            "bad-secret",
            "not a secret reference",
            Some("write { env = \"VAR\" } or { file = \"/run/secrets/name\" }".to_string()),
        )
    } else {
        (
            "invalid-value",
            "invalid value",
            Some("see the message for what this field accepts".to_string()),
        )
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

/// serde's words for types, in TOML's words.
fn plain_words(msg: &str) -> String {
    let mut m = msg.replace("unknown variant", "unknown value");
    for (from, to) in [
        ("a sequence", "a list"),
        ("a map", "a table"),
        ("expected i64", "expected an integer"),
        ("expected u64", "expected an integer"),
        ("expected u32", "expected an integer"),
        ("expected u16", "expected an integer"),
        ("expected a boolean", "expected true or false"),
    ] {
        m = m.replace(from, to);
    }
    m
}

/// How to write a value of the type serde expected.
fn type_hint(msg: &str) -> &'static str {
    let expected = msg.rsplit("expected ").next().unwrap_or("");
    if expected.contains("integer") {
        "write a whole number without quotes, e.g. 3"
    } else if expected.contains("list") {
        "write a list in brackets, e.g. [\"us-west-2\"]"
    } else if expected.contains("true or false") {
        "write true or false, without quotes"
    } else if expected.contains("string") {
        "put the value in double quotes"
    } else if expected.contains("table") || expected.contains("struct") {
        "write a table: a [name] header, or { key = value } inline"
    } else {
        "change the value to the type named in the message"
    }
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
