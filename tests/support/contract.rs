//! Checks real `--json` outputs and API bodies against their published schemas
//! (`deploy/schemas/`, `deploy/openapi.json`) with Python's jsonschema, strictly (see
//! validate_json.py): a field printed but not described fails too.
// Each test binary that includes this uses only some of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Panics with the validator's errors unless `doc` is valid against
/// `deploy/schemas/{name}.schema.json`.
pub fn assert_output_valid(name: &str, doc: &[u8]) {
    let schema = format!("deploy/schemas/{name}.schema.json");
    if let Err(e) = validate(&schema, None, doc) {
        panic!(
            "the {name} --json output does not match {schema}:\n{e}\n--- output\n{}",
            String::from_utf8_lossy(doc)
        );
    }
}

/// Panics unless `doc` is valid against the schema at `pointer` (a JSON pointer such as
/// an operation's response schema) in `deploy/openapi.json`.
pub fn assert_valid_at(pointer: &str, doc: &[u8]) {
    if let Err(e) = validate_at("deploy/openapi.json", pointer, doc) {
        panic!(
            "the body does not match {pointer} in deploy/openapi.json:\n{e}\n--- body\n{}",
            String::from_utf8_lossy(doc)
        );
    }
}

/// The validator's verdict on `doc`: `Err` with what it printed when `doc` is invalid.
pub fn validate(schema: &str, component: Option<&str>, doc: &[u8]) -> Result<(), String> {
    match component {
        Some(c) => run(schema, &["--component", c], doc),
        None => run(schema, &[], doc),
    }
}

fn validate_at(schema: &str, pointer: &str, doc: &[u8]) -> Result<(), String> {
    run(schema, &["--at", pointer], doc)
}

fn run(schema: &str, flags: &[&str], doc: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let instance = dir.path().join("doc.json");
    std::fs::write(&instance, doc).expect("write the document");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/validate_json.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = Command::new(&python);
    cmd.arg(script).arg(schema).args(flags);
    let out = cmd
        .arg(&instance)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} ({e}): run tests/setup/install-deps.sh"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(text),
        _ => panic!(
            "the validator failed ({}): {text}\n(it needs Python's jsonschema: run tests/setup/install-deps.sh)",
            out.status
        ),
    }
}
