//! Replays what the fuzzers (`make fuzz`, `fuzz/`) saved: every input of the corpus and
//! every crash they ever found, through the same functions the fuzz targets call
//! (`lifeboat::fuzzing`), on stable Rust. A crash the fuzzer found is kept under
//! `fuzz/artifacts/<target>/` (and a policy crash also as a case in
//! `tests/policies/bad/`), so it stays a failing test until it is fixed, and a passing
//! one after.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["fuzz/corpus", "fuzz/artifacts"] {
        let dir = Path::new(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(
            entries
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.is_file()),
        );
    }
    files.sort();
    files
}

/// Runs `f` on every input of `target`, and names the inputs that panicked.
fn replay(target: &str, min: usize, f: impl Fn(&[u8])) {
    let files = inputs(target);
    assert!(
        files.len() >= min,
        "fuzz/corpus/{target} holds {} inputs, expected at least {min}",
        files.len()
    );
    let mut crashed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("read input");
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&data))).is_err() {
            crashed.push(file.display().to_string());
        }
    }
    assert!(crashed.is_empty(), "inputs that crash: {crashed:#?}");
}

#[test]
fn every_saved_policy_input_loads_or_is_refused_without_a_panic() {
    replay("policy", 50, lifeboat::fuzzing::policy);
}

#[test]
fn every_saved_api_request_is_answered_without_a_panic_and_only_a_control_token_controls() {
    let harness = lifeboat::fuzzing::ApiHarness::new();
    replay("api_request", 20, |d| harness.request(d));
}
