//! Policies as code: TOML files → a validated `core::model::Policy`, with every problem
//! reported at file:line:column with a fix.
//!
//! Loading has two stages. `raw` deserializes the shape (types, unknown fields, missing
//! fields) piece by piece; `build` turns the pieces into the typed policy and checks the
//! semantic rules, collecting all errors rather than stopping at the first.

mod build;
mod channels;
mod checks;
mod commands;
mod coordination;
pub mod diag;
mod etcd_access;
mod limits;
mod ops;
mod probes;
mod raw;
mod runbooks;
pub mod schema;
mod spans;
mod targets;
mod tls;
mod vars;
mod witnesses;

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
    load_with_vars(path, None)
}

/// Like `load`, reading `[vars]` values from `vars_file` instead of the file the policy
/// names: the same policy seen from another place (a witness reaches the services directly).
pub fn load_with_vars(path: &Path, vars_file: Option<&Path>) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, text, vars_file),
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
    load_text(path, text, None)
}

fn load_text(path: &Path, text: String, vars_file: Option<&Path>) -> Loaded {
    let mut report = Report::new(path, text);
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let policy = build::build(&mut report, &base_dir, vars_file);
    report.sort();
    Loaded { policy, report }
}

/// Loads a policy that must be valid, for commands that act on it. The error carries the
/// rendered diagnostics.
pub fn load_valid(path: &Path) -> anyhow::Result<(Policy, Report)> {
    load_valid_with_vars(path, None)
}

/// `load_valid` with the vars file replaced (see `load_with_vars`).
pub fn load_valid_with_vars(
    path: &Path,
    vars_file: Option<&Path>,
) -> anyhow::Result<(Policy, Report)> {
    let loaded = load_with_vars(path, vars_file);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Endpoint, RegionName};

    fn sandbox_port(policy: &Policy, region: &str) -> u16 {
        match policy
            .target("orders-db")
            .and_then(|t| t.endpoint(&RegionName::new(region)))
        {
            Some(Endpoint::Postgres(pg)) => pg.port,
            other => panic!("unexpected endpoint {other:?}"),
        }
    }

    #[test]
    fn vars_default_when_their_file_is_absent_and_keep_their_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = std::fs::read_to_string("policies/sandbox.toml").expect("sandbox policy");
        let loaded = load_str(&dir.path().join("sandbox.toml"), text);
        let policy = loaded
            .policy
            .unwrap_or_else(|| panic!("{}", loaded.report.render(false)));
        assert_eq!(sandbox_port(&policy, "us-east-1"), 15432);
        assert_eq!(
            policy.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:15000")
        );
    }

    #[test]
    fn a_vars_file_overrides_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join(".lifeboat/sandbox");
        std::fs::create_dir_all(&state).expect("mkdir");
        std::fs::write(
            state.join("state.toml"),
            "pg_primary_port = 25432\nmoto_port = 25000\nzone_id = \"ZREAL\"\n",
        )
        .expect("write vars");
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).expect("mkdir");
        let text = std::fs::read_to_string("policies/sandbox.toml").expect("sandbox policy");
        let loaded = load_str(&policies.join("sandbox.toml"), text);
        let policy = loaded
            .policy
            .unwrap_or_else(|| panic!("{}", loaded.report.render(false)));
        assert_eq!(sandbox_port(&policy, "us-east-1"), 25432);
        assert_eq!(
            sandbox_port(&policy, "us-west-2"),
            15433,
            "unchanged default"
        );
        assert_eq!(
            policy.aws.endpoint_url.as_deref(),
            Some("http://127.0.0.1:25000")
        );
        let dns = policy.target("dns").and_then(|t| t.regions.values().next());
        assert!(
            matches!(dns, Some(Endpoint::Route53(r)) if r.zone_id == "ZREAL"),
            "{dns:?}"
        );
    }

    #[test]
    fn a_journal_path_is_resolved_against_the_policy_directory() {
        let loaded = load(Path::new("policies/sandbox.toml"));
        let policy = loaded.policy.expect("valid");
        assert_eq!(
            policy.journal.path,
            Some(PathBuf::from("policies/../.lifeboat/sandbox/journal.db"))
        );
    }

    #[test]
    fn expanding_a_directory_skips_drill_scenarios() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("drills")).expect("mkdir");
        std::fs::write(dir.path().join("a.toml"), "").expect("write");
        std::fs::write(dir.path().join("drills/outage.toml"), "").expect("write");
        std::fs::write(dir.path().join("notes.md"), "").expect("write");
        let files = expand(&[dir.path().to_path_buf()]).expect("expand");
        assert_eq!(files, vec![dir.path().join("a.toml")]);
    }

    #[test]
    fn an_inline_secret_never_reaches_the_report() {
        let text = std::fs::read_to_string("tests/policies/good/minimal.toml")
            .expect("minimal policy")
            .replace(
                "password = { env = \"DB_PASSWORD\" }",
                "password = \"correct-horse-battery\"",
            );
        let loaded = load_str(Path::new("inline.toml"), text);
        assert!(loaded.policy.is_none());
        let rendered = loaded.report.render(false);
        let json = serde_json::to_string(&loaded.report.to_json()).expect("json");
        // The source line is shown (it is the user's own file), but no message repeats it.
        for d in &loaded.report.diagnostics {
            assert!(!d.message.contains("correct-horse"), "{}", d.message);
            assert!(!d.help.as_deref().unwrap_or("").contains("correct-horse"));
        }
        assert!(!json.contains("correct-horse"), "{json}");
        assert!(rendered.contains("inline-secret"));
    }
}
