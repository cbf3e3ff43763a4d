//! The policy corpus: every broken policy under `tests/policies/bad/` must be refused with
//! exactly the errors its header announces, at the right line:column, with exit status 1
//! and no panic; the shipped policies must validate and plan in both directions.
//!
//! Each bad file starts with two comment lines:
//! ```text
//! # what is broken
//! # expect: code@LINE:COL, code@LINE:COL   (or code@file for a finding about the whole file)
//! ```
//! The human-readable output of all of them is kept in one snapshot,
//! `tests/policies/bad.stdout`; refresh it with `UPDATE_EXPECT=1 cargo test --test policy_corpus`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/contract.rs"]
mod contract;

fn lifeboat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run lifeboat")
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The `# expect:` line of a corpus file, as a sorted list of `code@LINE:COL`.
fn expected(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read corpus file");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect:"))
        .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
    let mut v: Vec<String> = line
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn every_broken_policy_is_refused_with_its_expected_errors_at_the_right_place() {
    let files = toml_files("tests/policies/bad");
    assert!(
        files.len() >= 30,
        "the corpus must keep at least 30 broken policies, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    // Every output, checked against `validate --json`'s schema in one go at the end.
    let mut outputs = Vec::new();
    for f in &files {
        let path = f.to_str().expect("utf-8 path");
        let out = lifeboat(&["validate", "--json", path]);
        outputs.extend_from_slice(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || stderr.contains("panicked") {
            failures.push(format!(
                "{path}: exit {:?}, stderr: {stderr}",
                out.status.code()
            ));
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("validate --json prints JSON");
        let mut got: Vec<String> = json["files"][0]["diagnostics"]
            .as_array()
            .expect("diagnostics array")
            .iter()
            .filter(|d| d["severity"] == "error")
            .map(|d| match (d["line"].as_u64(), d["column"].as_u64()) {
                (Some(l), Some(c)) => format!("{}@{l}:{c}", d["code"].as_str().unwrap_or("?")),
                _ => format!("{}@file", d["code"].as_str().unwrap_or("?")),
            })
            .collect();
        got.sort();
        let want = expected(f);
        if got != want {
            failures.push(format!("{path}: expected {want:?}, got {got:?}"));
        }
        // Every error says how to fix it.
        for d in json["files"][0]["diagnostics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if d["help"].as_str().is_none_or(str::is_empty) {
                failures.push(format!("{path}: `{}` has no help", d["code"]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    contract::assert_output_valid("validate", &outputs);
}

#[test]
fn broken_policies_read_like_rustc_diagnostics() {
    let mut all = String::new();
    for f in toml_files("tests/policies/bad") {
        let path = f.to_str().expect("utf-8 path");
        let out = lifeboat(&["validate", "--color", "never", path]);
        all.push_str(&format!("=== {path} (exit {:?})\n", out.status.code()));
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    expect_test::expect_file!["policies/bad.stdout"].assert_eq(&all);
}

#[test]
fn shipped_policies_validate() {
    let json = lifeboat(&["validate", "--json", "policies/", "tests/policies/good/"]);
    contract::assert_output_valid("validate", &json.stdout);
    let out = lifeboat(&["validate", "policies/", "tests/policies/good/"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_shipped_policy_plans_in_both_directions() {
    let mut files = toml_files("policies");
    files.extend(toml_files("policies/examples"));
    assert!(files.len() >= 3);
    let mut outputs = Vec::new();
    for f in files {
        let path = f.to_str().expect("utf-8 path");
        for direction in ["failover", "failback"] {
            let out = lifeboat(&["plan", direction, "--policy", path, "--json"]);
            outputs.extend_from_slice(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "plan {direction} {path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let plan: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("plan --json prints JSON");
            assert_eq!(plan["direction"], direction);
            let steps: usize = plan["stages"]
                .as_array()
                .expect("stages")
                .iter()
                .map(|s| s["steps"].as_array().map_or(0, Vec::len))
                .sum();
            assert!(steps > 0, "{path} {direction} plans no steps");
        }
    }
    contract::assert_output_valid("plan", &outputs);
}

#[test]
fn plan_refuses_a_region_the_service_does_not_have() {
    let out = lifeboat(&[
        "plan",
        "failover",
        "--policy",
        "policies/sandbox.toml",
        "--to",
        "eu-west-9",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`eu-west-9` is not a region of this service"),
        "{stderr}"
    );
    assert!(stderr.contains("us-east-1, us-west-2"), "{stderr}");
}

#[test]
fn plan_of_an_invalid_policy_shows_its_errors_and_fails() {
    let out = lifeboat(&[
        "plan",
        "failover",
        "--policy",
        "tests/policies/bad/threshold-zero.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`failure_threshold` is 0"), "{stderr}");
    assert!(stderr.contains("is not a valid policy"), "{stderr}");
}

#[test]
fn a_missing_policy_file_is_an_error_that_names_it() {
    let out = lifeboat(&["validate", "policies/does-not-exist.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cannot read policies/does-not-exist.toml"),
        "{stdout}"
    );
}

#[test]
fn wrong_usage_exits_2_with_a_hint() {
    let out = lifeboat(&["plan", "sideways", "--policy", "policies/sandbox.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: failover, failback"));
}

/// verify-full is the default for remote hosts; with no ca_file it trusts the system's
/// roots, and a machine without any (no ca-certificates) is told so where the host is.
#[test]
fn a_verified_connection_with_no_ca_file_on_a_machine_without_roots_is_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("no-roots.pem");
    std::fs::write(&empty, "").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["validate", "--json", "tests/policies/good/minimal.toml"])
        .env("NO_COLOR", "1")
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", dir.path())
        .output()
        .expect("run lifeboat");
    assert_eq!(out.status.code(), Some(0), "a warning, not an error");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let no_ca: Vec<String> = json["files"][0]["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == "no-ca")
        .map(|d| format!("{}:{} {}", d["line"], d["column"], d["message"]))
        .collect();
    assert_eq!(no_ca.len(), 2, "one per region's host: {no_ca:?}");
    assert!(no_ca[0].starts_with("25:26 "), "at the host: {no_ca:?}");
    assert!(
        no_ca[0].contains("verify-full checks the server's certificate"),
        "{no_ca:?}"
    );
}
