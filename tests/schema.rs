//! The policy's JSON Schema in the editors' own tool: `deploy/policy.schema.json` is what
//! `lifeboat schema` prints (so it cannot drift from the loader), every shipped policy and
//! drill names its schema with a `#:schema` line, taplo (the engine of VS Code's Even
//! Better TOML and of Neovim's taplo language server) accepts them all, and refuses
//! known-bad policies.
//!
//! taplo comes from PyPI (`pip install taplo`, a prebuilt binary); install-deps.sh
//! installs it. Refresh the checked-in schemas with `UPDATE_EXPECT=1 cargo test --test schema`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .output()
        .expect("run lifeboat")
}

/// `taplo lint` on some files; offline (no catalogs, no configuration file).
fn taplo(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new("taplo")
        .args(["lint", "--no-auto-config", "--colors", "never"])
        .args(args)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "taplo is not installed ({e}): run tests/setup/install-deps.sh (pip install taplo)"
            )
        })
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {dir}: {e}")) {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(toml_files(p.to_str().expect("utf-8")));
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_checked_in_schemas_are_what_lifeboat_schema_prints() {
    let policy = lifeboat(&["schema"]);
    assert!(policy.status.success(), "{}", text(&policy));
    expect_test::expect_file!["../deploy/policy.schema.json"]
        .assert_eq(&String::from_utf8_lossy(&policy.stdout));
    let drill = lifeboat(&["schema", "--drill"]);
    assert!(drill.status.success(), "{}", text(&drill));
    expect_test::expect_file!["../deploy/drill.schema.json"]
        .assert_eq(&String::from_utf8_lossy(&drill.stdout));
}

/// The schema a file's `#:schema` line names, resolved against the file.
fn directive(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).expect("read");
    let first = text.lines().next()?;
    let target = first.strip_prefix("#:schema ")?;
    Some(path.parent().expect("dir").join(target.trim()))
}

#[test]
fn every_shipped_policy_and_drill_names_its_schema() {
    let mut files = toml_files("policies");
    files.extend(toml_files("tests/policies/good"));
    assert!(files.len() >= 10, "found only {files:?}");
    let mut wrong = Vec::new();
    for f in &files {
        let want = if f.starts_with("policies/drills") {
            "deploy/drill.schema.json"
        } else {
            "deploy/policy.schema.json"
        };
        match directive(f) {
            Some(s) if s.canonicalize().ok() == Path::new(want).canonicalize().ok() => {}
            other => wrong.push(format!("{}: {other:?}, want {want}", f.display())),
        }
    }
    assert!(
        wrong.is_empty(),
        "start each file with `#:schema <relative path to the schema>`:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn taplo_accepts_every_shipped_policy_and_drill_against_its_schema() {
    let mut files = toml_files("policies");
    files.extend(toml_files("tests/policies/good"));
    // The schema each file names with its `#:schema` line.
    let out = taplo(&[], &files);
    assert!(
        out.status.success(),
        "taplo refused a shipped file:\n{}",
        text(&out)
    );
    // A policy full of `${name}` variables (ports, booleans, thresholds, a mode) passes
    // too: the schema accepts a reference wherever a scalar goes.
    let dir = tempfile::tempdir().expect("tempdir");
    let with_vars = dir.path().join("vars.toml");
    let minimal =
        std::fs::read_to_string("tests/policies/good/minimal.toml").expect("minimal policy");
    let body = minimal
        .lines()
        .filter(|l| !l.starts_with("#:schema"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "failure_threshold = 3",
            "failure_threshold = \"${threshold}\"",
        )
        .replace("mode = \"manual\"", "mode = \"${mode}\"")
        .replace("interval = \"10s\"", "interval = \"${interval}\"");
    std::fs::write(
        &with_vars,
        format!("[vars]\nthreshold = 3\nmode = \"manual\"\ninterval = \"10s\"\n\n{body}\n"),
    )
    .expect("write");
    let loaded = lifeboat(&["validate", with_vars.to_str().expect("utf-8")]);
    assert!(loaded.status.success(), "{}", text(&loaded));
    let schema = schema_url();
    let out = taplo(&["--schema", &schema], std::slice::from_ref(&with_vars));
    assert!(out.status.success(), "{}", text(&out));
}

fn schema_url() -> String {
    let p = Path::new("deploy/policy.schema.json")
        .canonicalize()
        .expect("the schema");
    format!("file://{}", p.display())
}

#[test]
fn taplo_refuses_policies_of_the_wrong_shape() {
    // Shape errors the schema can see; semantic ones (promote before DNS, names that
    // must exist) are `lifeboat validate`'s alone.
    let bad = [
        "bad-service-name",
        "duration-bare-number",
        "duration-words",
        "inline-secret-password",
        "inline-secret-webhook",
        "missing-mode",
        "missing-section-regions",
        "port-out-of-range",
        "secret-ref-both",
        "step-param-not-for-kind",
        "target-field-for-other-kind",
        "threshold-zero",
        "unknown-field-typo",
        "unknown-mode",
        "unknown-section",
        "unknown-step-kind",
        "wrong-type-secondaries",
        "wrong-type-threshold",
    ];
    let schema = schema_url();
    let files: Vec<PathBuf> = bad
        .iter()
        .map(|name| PathBuf::from(format!("tests/policies/bad/{name}.toml")))
        .collect();
    for f in &files {
        assert!(f.exists(), "{} is gone from the corpus", f.display());
    }
    // One run per file, judged by its exit status: with several files in one run, taplo
    // sometimes exits before logging the last file it found invalid (about 2 runs in 15
    // here), so its log cannot say which files it refused.
    let mut report = String::new();
    let accepted: Vec<&str> = bad
        .iter()
        .zip(&files)
        .filter(|(_, f)| {
            let out = taplo(&["--schema", &schema], std::slice::from_ref(*f));
            report.push_str(&text(&out));
            out.status.success()
        })
        .map(|(name, _)| *name)
        .collect();
    assert!(
        accepted.is_empty(),
        "taplo accepted these broken policies: {accepted:?}\n{report}"
    );
    // And the good twin of one of them passes, so the refusals are about the breakage.
    let out = taplo(
        &["--schema", &schema],
        &[PathBuf::from("tests/policies/good/minimal.toml")],
    );
    assert!(out.status.success(), "{}", text(&out));
}
