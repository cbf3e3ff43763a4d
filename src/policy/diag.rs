//! Policy diagnostics: what is wrong, where (file:line:column), and how to fix it, rendered
//! rustc-style for people and as JSON for scripts.

use std::ops::Range;
use std::path::{Path, PathBuf};

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};
use serde::Serialize;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a policy file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A short stable name for the rule, e.g. `unknown-field`, `inline-secret`.
    pub code: &'static str,
    pub message: String,
    /// Byte range in the file; `None` when the finding is about the file as a whole.
    pub span: Option<Range<usize>>,
    /// A few words printed under the underlined text.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: None,
            label: None,
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Everything found in one policy file, with the text needed to show it.
#[derive(Clone, Debug)]
pub struct Report {
    pub path: PathBuf,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// A diagnostic as `--json` prints it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct JsonDiagnostic<'a> {
    pub severity: Severity,
    pub code: &'a str,
    pub message: &'a str,
    pub file: String,
    /// 1-based; absent for findings about the whole file.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub help: Option<&'a str>,
}

impl Report {
    pub fn new(path: &Path, source: String) -> Self {
        Report {
            path: path.to_path_buf(),
            source,
            diagnostics: Vec::new(),
        }
    }

    pub fn push(&mut self, d: Diagnostic) {
        // The same shared field can be reported once per region; say it once.
        if !self.diagnostics.contains(&d) {
            self.diagnostics.push(d);
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Sorts by position so the output reads top to bottom; whole-file findings first.
    pub fn sort(&mut self) {
        self.diagnostics.sort_by_key(|d| {
            (
                d.span.as_ref().map(|s| s.start + 1).unwrap_or(0),
                d.severity,
            )
        });
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = self.source[line_start..offset].chars().count() + 1;
        (line, column)
    }

    pub fn to_json(&self) -> Vec<JsonDiagnostic<'_>> {
        self.diagnostics
            .iter()
            .map(|d| {
                let (line, column) = match &d.span {
                    Some(s) => {
                        let (l, c) = self.line_col(s.start);
                        (Some(l), Some(c))
                    }
                    None => (None, None),
                };
                JsonDiagnostic {
                    severity: d.severity,
                    code: d.code,
                    message: &d.message,
                    file: self.path.display().to_string(),
                    line,
                    column,
                    help: d.help.as_deref(),
                }
            })
            .collect()
    }

    /// rustc-style text: the message, `file:line:col`, the offending line underlined, the fix.
    pub fn render(&self, color: bool) -> String {
        let file = SimpleFile::new(self.path.display().to_string(), self.source.as_str());
        let config = Config::default();
        let mut out = String::new();
        for d in &self.diagnostics {
            let cs = match d.severity {
                Severity::Error => CsDiagnostic::error(),
                Severity::Warning => CsDiagnostic::warning(),
            }
            .with_code(d.code)
            .with_message(&d.message);
            let mut notes = Vec::new();
            let cs = match &d.span {
                Some(span) => {
                    let span = clamp(span.clone(), self.source.len());
                    cs.with_labels(vec![
                        Label::primary((), span).with_message(d.label.clone().unwrap_or_default()),
                    ])
                }
                None => {
                    notes.push(format!("in {}", self.path.display()));
                    cs
                }
            };
            if let Some(h) = &d.help {
                notes.push(format!("help: {h}"));
            }
            let cs = cs.with_notes(notes);
            if color {
                let mut buf = term::termcolor::Buffer::ansi();
                if term::emit_to_write_style(&mut buf, &config, &file, &cs).is_ok() {
                    out.push_str(&String::from_utf8_lossy(buf.as_slice()));
                    continue;
                }
            }
            if term::emit_to_string(&mut out, &config, &file, &cs).is_err() {
                out.push_str(&format!("{}: {}\n", d.code, d.message));
            }
        }
        out
    }
}

fn clamp(span: Range<usize>, len: usize) -> Range<usize> {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    start..end
}
