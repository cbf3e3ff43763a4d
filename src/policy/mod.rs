//! Policies as code: TOML files → a validated `core::model::Policy`, with every problem
//! reported at file:line:column with a fix.
//!
//! Loading has two stages. `raw` deserializes the shape (types, unknown fields, missing
//! fields) piece by piece; `build` turns the pieces into the typed policy and checks the
//! semantic rules, collecting all errors rather than stopping at the first.

mod build;
mod channels;
mod checks;
pub mod diag;
mod probes;
mod raw;
mod runbooks;
mod spans;
mod targets;
mod vars;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Report, Severity};

use crate::core::model::Policy;

/// The outcome of loading one file: the policy when it has no errors, and the report
/// (errors and warnings) either way.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Option<Policy>,
    pub report: Report,
}

/// Reads and validates a policy file. Relative paths inside it (the journal) are
/// resolved against the file's directory.
pub fn load(path: &Path) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(path, text),
        Err(e) => {
            let mut report = Report::new(path, String::new());
            report.push(
                Diagnostic::error("unreadable", format!("cannot read {}: {e}", path.display()))
                    .help("check the path; policies are TOML files, usually under policies/"),
            );
            Loaded {
                policy: None,
                report,
            }
        }
    }
}

/// Validates policy text that came from `path`.
pub fn load_str(path: &Path, text: String) -> Loaded {
    let mut report = Report::new(path, text);
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let policy = build::build(&mut report, &base_dir);
    report.sort();
    Loaded { policy, report }
}

/// Loads a policy that must be valid, for commands that act on it. The error carries the
/// rendered diagnostics.
pub fn load_valid(path: &Path) -> anyhow::Result<(Policy, Report)> {
    let loaded = load(path);
    match loaded.policy {
        Some(p) => Ok((p, loaded.report)),
        None => anyhow::bail!(
            "{}\n{} is not a valid policy; fix the errors above (lifeboat validate {} shows them all)",
            loaded.report.render(false).trim_end(),
            path.display(),
            path.display()
        ),
    }
}

/// Expands files and directories into the policy files to check: `*.toml` files, walked
/// recursively in sorted order. Drill scenarios (under a `drills/` directory) are not
/// service policies and are skipped.
pub fn expand(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "drills") {
                continue;
            }
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}
