//! The policy's JSON Schema in the editors' own tool: `deploy/policy.schema.json` is what
//! `lifeboat schema` prints (so it cannot drift from the loader), every shipped policy and
//! drill names its schema with a `#:schema` line, taplo (the engine of VS Code's Even
//! Better TOML and of Neovim's taplo language server) accepts them all, and refuses
//! known-bad policies.
//!
//! The same holds for the other generated contracts: the `--json` outputs' schemas in
//! `deploy/schemas/` (`lifeboat schema --output NAME`) and the API's OpenAPI document in
//! `deploy/openapi.json` (`lifeboat schema --openapi`).
//!
//! taplo comes from PyPI (`pip install taplo`, a prebuilt binary); install-deps.sh
//! installs it. Refresh every checked-in schema with `make schemas` (which runs
//! `UPDATE_EXPECT=1 cargo test --test schema`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/contract.rs"]
mod contract;

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

/// The `--json` outputs `lifeboat schema --output` knows, each with its file.
const OUTPUTS: &[&str] = &[
    "probe",
    "status",
    "plan",
    "history",
    "decisions",
    "show",
    "validate",
    "readiness",
    "drill",
];

/// Compares a generated file with what `lifeboat schema ARGS` prints, and says how to
/// refresh it (expect-test's own hint names only `UPDATE_EXPECT=1`).
fn assert_generated(args: &[&str], file: &str) {
    let out = lifeboat(args);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    let kept = std::fs::read_to_string(file).unwrap_or_default();
    if printed != kept && std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(Path::new(file).parent().expect("dir")).expect("mkdir");
        std::fs::write(file, printed.as_bytes()).expect("write");
        return;
    }
    assert!(
        printed == kept,
        "{file} is stale: it is not what `lifeboat {}` prints. Regenerate every schema with `make schemas` and commit the result.",
        args.join(" ")
    );
}

#[test]
fn the_checked_in_output_schemas_and_api_document_are_what_lifeboat_schema_prints() {
    for name in OUTPUTS {
        assert_generated(
            &["schema", "--output", name],
            &format!("deploy/schemas/{name}.schema.json"),
        );
    }
    assert_generated(&["schema", "--openapi"], "deploy/openapi.json");
    // No schema is left over from an output that is gone.
    let mut kept: Vec<String> = std::fs::read_dir("deploy/schemas")
        .expect("deploy/schemas")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let mut want: Vec<String> = OUTPUTS.iter().map(|n| format!("{n}.schema.json")).collect();
    want.sort();
    assert_eq!(
        kept, want,
        "deploy/schemas holds exactly one schema per --json output"
    );
}

/// openapi-spec-validator (Python; moto's server depends on it) checks the document
/// against the OpenAPI 3.1 specification's own schema and rules (unique operation ids,
/// path parameters declared, references that resolve).
#[test]
fn openapi_spec_validator_accepts_the_api_document() {
    let script = r#"
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.versions import get_spec_version
doc = json.load(open(sys.argv[1]))
assert get_spec_version(doc).minor == "1", "not OpenAPI 3.1"
validate(doc)
"#;
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", script, "deploy/openapi.json"])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused deploy/openapi.json (or is missing: run tests/setup/install-deps.sh):\n{}",
        text(&out)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("deploy/openapi.json").expect("read"))
            .expect("json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    // Control calls need the token, views do not; both kinds of error body are described.
    let failover = &doc["paths"]["/v1/failover"]["post"];
    assert_eq!(failover["security"], serde_json::json!([{"bearer": []}]));
    for code in ["200", "400", "401", "409"] {
        assert!(
            failover["responses"][code].is_object(),
            "no {code} for failover"
        );
    }
    // Views: open on loopback (the empty requirement), a token beyond it.
    assert_eq!(
        doc["paths"]["/v1/status"]["get"]["security"],
        serde_json::json!([{}, {"bearer": []}])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"]["required"] == serde_json::json!(["error"]));
}

#[test]
fn every_output_schema_is_valid_json_schema_2020_12() {
    let script = r#"
import json, sys, jsonschema
for f in sys.argv[1:]:
    s = json.load(open(f))
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema", f
    jsonschema.Draft202012Validator.check_schema(s)
"#;
    let files: Vec<String> = OUTPUTS
        .iter()
        .map(|n| format!("deploy/schemas/{n}.schema.json"))
        .collect();
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", script])
        .args(&files)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "{}", text(&out));
}

/// The validator the other tests use finds what it should: a missing field, a field of
/// the wrong type, and (being strict) a field the schema does not describe.
#[test]
fn the_contract_check_refuses_outputs_that_break_the_schema() {
    let out = lifeboat(&["validate", "--json", "tests/policies/good/minimal.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    contract::assert_output_valid("validate", &out.stdout);
    let good: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let broken = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        contract::validate(
            "deploy/schemas/validate.schema.json",
            None,
            v.to_string().as_bytes(),
        )
    };
    let missing = broken(&|v| {
        v["files"][0].as_object_mut().expect("file").remove("valid");
    });
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.contains("'valid' is a required property")),
        "{missing:?}"
    );
    let wrong = broken(&|v| v["files"][0]["errors"] = "none".into());
    assert!(
        wrong.as_ref().is_err_and(|e| e.contains("files/0/errors")),
        "{wrong:?}"
    );
    let extra = broken(&|v| v["files"][0]["surprise"] = true.into());
    assert!(
        extra.as_ref().is_err_and(|e| e.contains("surprise")),
        "{extra:?}"
    );
}

#[test]
fn lifeboat_schema_refuses_an_output_it_does_not_know() {
    let out = lifeboat(&["schema", "--output", "nonsense"]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(err.contains("status") && err.contains("drill"), "{err}");
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
