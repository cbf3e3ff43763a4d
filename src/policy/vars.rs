//! `[vars]`: values a policy takes from outside itself, written `${name}` in any string.
//!
//! ```toml
//! [vars]
//! file = "../.lifeboat/sandbox/state.toml"  # optional; its values win when it exists
//! pg_port = 15432                            # defaults, used when the file is absent
//! ```
//!
//! A string that is exactly `"${name}"` takes the variable's value *and type* (so ports
//! stay integers); `${name}` inside a longer string is replaced by its text. This is how
//! the sandbox policy reads the ports and AWS identifiers `lifeboat sandbox up` records,
//! and how a team can feed `terraform output` values into a policy.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, Report};
use super::spans::{closest, key_str, take};

/// A variable's value: a string, or another TOML scalar kept as its TOML text.
#[derive(Clone, Debug)]
enum Var {
    Str(String),
    Scalar(String),
}

impl Var {
    fn text(&self) -> &str {
        match self {
            Var::Str(s) | Var::Scalar(s) => s,
        }
    }
}

/// The variables of one policy: its `[vars]` defaults, overridden by the file it names.
#[derive(Debug, Default)]
pub struct Vars(BTreeMap<String, Var>);

/// Reads `[vars]` (and its file) out of the policy text. Syntax errors are left to the
/// main parse, which reports them.
/// `override_file`, when given, replaces the file `[vars]` names (the defaults still apply).
pub fn collect(
    report: &mut Report,
    text: &str,
    base_dir: &Path,
    override_file: Option<&Path>,
) -> Vars {
    let mut vars = Vars::default();
    let Ok(doc) = DeTable::parse(text) else {
        return vars;
    };
    let mut doc = doc.into_inner();
    let Some((_, value)) = take(&mut doc, "vars") else {
        return vars;
    };
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        report.push(
            Diagnostic::error("wrong-type", "`vars` must be a table")
                .at(span)
                .label("expected a table")
                .help("write [vars] followed by name = value lines"),
        );
        return vars;
    };
    let mut file: Option<(String, Range<usize>)> = None;
    for (k, v) in table {
        let name = key_str(&k).to_string();
        let Some(var) = scalar(v.get_ref()) else {
            report.push(
                Diagnostic::error(
                    "wrong-type",
                    format!("variable `{name}` must be a string, number or boolean"),
                )
                .at(v.span())
                .label("not a single value")
                .help("variables hold single values"),
            );
            continue;
        };
        if name == "file" {
            file = Some((var.text().to_string(), v.span()));
        } else {
            vars.0.insert(name, var);
        }
    }
    if let Some(o) = override_file {
        file = Some((
            o.display().to_string(),
            file.map(|(_, sp)| sp).unwrap_or(span.clone()),
        ));
    }
    if let Some((path, fspan)) = file {
        let full = base_dir.join(&path);
        match std::fs::read_to_string(&full) {
            Ok(text) => match text.parse::<toml::Table>() {
                Ok(t) => {
                    for (k, v) in t {
                        if let Some(var) = owned_scalar(&v) {
                            vars.0.insert(k, var);
                        }
                    }
                }
                Err(e) => report.push(
                    Diagnostic::error("bad-vars-file", format!("cannot parse {}: {}", full.display(), e.message()))
                        .at(fspan)
                        .label("this variables file")
                        .help("the file holds name = value lines; if a tool wrote it, rerun that tool (e.g. lifeboat sandbox up)"),
                ),
            },
            // A missing file is normal (before `lifeboat sandbox up`): the defaults apply.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.push(
                Diagnostic::error("bad-vars-file", format!("cannot read {}: {e}", full.display()))
                    .at(fspan)
                    .label("this variables file")
                    .help("check the file's permissions"),
            ),
        }
    }
    vars
}

fn scalar(v: &DeValue<'_>) -> Option<Var> {
    match v {
        DeValue::String(s) => Some(Var::Str(s.to_string())),
        DeValue::Integer(i) => Some(Var::Scalar(format!("{i}"))),
        DeValue::Float(f) => Some(Var::Scalar(format!("{f}"))),
        DeValue::Boolean(b) => Some(Var::Scalar(b.to_string())),
        _ => None,
    }
}

fn owned_scalar(v: &toml::Value) -> Option<Var> {
    match v {
        toml::Value::String(s) => Some(Var::Str(s.clone())),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
            Some(Var::Scalar(v.to_string()))
        }
        _ => None,
    }
}

/// Replaces every `${name}` in the document's strings. Values borrow from `vars`, which
/// therefore outlives the document.
pub fn substitute<'i>(report: &mut Report, table: &mut DeTable<'i>, vars: &'i Vars) {
    for (_, v) in table.iter_mut() {
        substitute_value(report, v, vars);
    }
}

fn substitute_value<'i>(report: &mut Report, value: &mut Spanned<DeValue<'i>>, vars: &'i Vars) {
    let span = value.span();
    match value.get_mut() {
        DeValue::Table(t) => substitute(report, t, vars),
        DeValue::Array(a) => {
            for item in a.iter_mut() {
                substitute_value(report, item, vars);
            }
        }
        DeValue::String(s) if s.contains("${") => {
            let text = s.to_string();
            if let Some(new) = replace(report, &text, span, vars) {
                *value.get_mut() = new;
            }
        }
        _ => {}
    }
}

fn replace<'i>(
    report: &mut Report,
    text: &str,
    span: Range<usize>,
    vars: &'i Vars,
) -> Option<DeValue<'i>> {
    let lookup = |report: &mut Report, name: &str| -> Option<&'i Var> {
        if let Some(v) = vars.0.get(name) {
            return Some(v);
        }
        let mut d = Diagnostic::error(
            "unknown-variable",
            format!("`${{{name}}}` names no variable"),
        )
        .at(span.clone())
        .label("unknown variable");
        d.help = Some(match closest(name, vars.0.keys().map(String::as_str)) {
            Some(s) => format!("did you mean `${{{s}}}`?"),
            None => format!("define it under [vars]: {name} = …"),
        });
        report.push(d);
        None
    };
    // The whole string is one variable: take its value with its type.
    if let Some(name) = text.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
        && !name.contains("${")
        && !name.contains('}')
    {
        return match lookup(report, name)? {
            Var::Str(s) => Some(DeValue::String(Cow::Borrowed(s.as_str()))),
            Var::Scalar(s) => DeValue::parse(s).ok().map(Spanned::into_inner),
        };
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            report.push(
                Diagnostic::error("unknown-variable", "unclosed `${` in a string")
                    .at(span)
                    .label("missing `}`")
                    .help("write variables as ${name}"),
            );
            return None;
        };
        out.push_str(lookup(report, &after[..end])?.text());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(DeValue::String(Cow::Owned(out)))
}
