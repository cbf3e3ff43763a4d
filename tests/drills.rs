//! Game-day drills end to end, with the real binary: each starts a fresh sandbox (real
//! PostgreSQL with streaming replication, Redis, moto, the regions' APIs, the witness),
//! runs the daemon against it under a write load, injects the scenario's faults and
//! checks the outcome from the report the drill writes. They share nothing, but run one
//! at a time (`.config/nextest.toml`): each is timing-sensitive and uses a dozen processes.

use std::path::Path;
use std::process::Command;

use lifeboat::drill::report::Report;

mod support;

/// Runs `policies/drills/NAME.toml` once; returns whether the command passed and its report.
fn drill(name: &str) -> (bool, Report) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = support::scratch_sandbox_policy(tmp.path());
    let out = tmp.path().join("reports");
    let support::DrillRun {
        passed,
        stderr,
        report,
        text,
    } = support::run_drill(name, Path::new(&policy), &out);
    contracts(&text, &report);
    let daemon_log =
        std::fs::read_to_string(out.join(format!("{name}-1-daemon.log"))).unwrap_or_default();
    if !passed {
        eprintln!(
            "drill {name} failed:\n{}\n--- stderr\n{stderr}\n--- daemon log (tail)\n{}",
            report.markdown(),
            daemon_log
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        !tmp.path().join(".lifeboat/sandbox/sandbox.json").exists(),
        "the drill's rollback takes the sandbox down"
    );
    (passed, report)
}

/// The drill's report, and what `history` and `show` print from the journal it kept,
/// match the schemas published for `--json` outputs: real runs, decisions and evidence.
fn contracts(text: &str, report: &Report) {
    support::contract::assert_output_valid("drill", text.as_bytes());
    let Some(journal) = &report.journal else {
        return;
    };
    let lifeboat = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .args(["--journal", journal, "--json"])
            .env_remove("LIFEBOAT_STATE_DIR")
            .output()
            .expect("run lifeboat");
        assert!(
            out.status.success(),
            "lifeboat {args:?} --journal {journal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    support::contract::assert_output_valid("decisions", &lifeboat(&["history", "--decisions"]));
    let history = lifeboat(&["history"]);
    support::contract::assert_output_valid("history", &history);
    let runs: serde_json::Value = serde_json::from_slice(&history).expect("history is JSON");
    for run in runs.as_array().into_iter().flatten() {
        let id = run["run_id"].as_str().expect("run_id");
        support::contract::assert_output_valid("show", &lifeboat(&["show", id]));
    }
}

fn check<'r>(report: &'r Report, starts_with: &str) -> &'r lifeboat::drill::report::Assertion {
    report
        .checks
        .iter()
        .find(|c| c.what.starts_with(starts_with))
        .unwrap_or_else(|| panic!("no check \"{starts_with}…\" in {:#?}", report.checks))
}

#[test]
fn region_outage_fails_over_by_itself_then_fails_back_without_losing_a_write() {
    let (ok, r) = drill("region-outage");
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    let f = &r.figures;
    let detection = f.detection.expect("the outage was detected");
    let failover = f.failover.expect("the failover completed");
    // interval 1s × threshold 3 (+ timeout 500ms) bounds detection; generous for 2 cores.
    assert!(detection < 10.0, "detected after {detection:.2}s");
    assert!(
        failover >= detection,
        "failover {failover:.2}s before detection"
    );
    assert!(f.failback.is_some(), "the failback completed");
    assert_eq!(
        f.failback_lost_writes,
        Some(0),
        "a planned failback loses nothing"
    );
    assert!(!f.two_writable, "never two writable primaries");
    assert!(f.writable_samples > 10, "the writable sampler ran");
    assert!(
        f.writes_acked > 50,
        "the write load ran: {}",
        f.writes_acked
    );
    let kinds: Vec<&str> = r.steps.iter().map(|s| s.step.as_str()).collect();
    for step in ["promote-standby", "move-dns", "promote-primary", "dns-back"] {
        assert!(kinds.contains(&step), "step {step} ran: {kinds:?}");
    }
}

#[test]
fn a_flapping_api_never_triggers_a_failover() {
    let (ok, r) = drill("flapping-api");
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    assert!(check(&r, "does not fail over").passed);
    assert_eq!(r.figures.failover, None);
    assert!(!r.figures.unexpected_failover);
    assert_eq!(r.figures.lost_writes, Some(0));
    assert!(!r.figures.two_writable);
}

#[test]
fn a_lagging_standby_holds_the_failover_until_an_operator_accepts_the_loss() {
    let (ok, r) = drill("replica-lag");
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    let held = check(&r, "holds the failover");
    assert!(held.passed && held.detail.contains("lag"), "{held:?}");
    assert!(
        r.figures.failover.is_some(),
        "the approved failover completed"
    );
    assert!(
        r.figures.lost_writes.unwrap_or(0) > 0,
        "the writes the standby never received are reported lost"
    );
    assert!(!r.figures.two_writable);
}

#[test]
fn a_controller_cut_off_from_a_live_primary_does_not_fail_over() {
    let (ok, r) = drill("controller-cut-off");
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    let held = check(&r, "does not fail over");
    assert!(held.passed);
    assert!(
        held.detail.contains("quorum"),
        "the witness's missing vote is why: {}",
        held.detail
    );
    assert!(
        r.figures.detection.is_some(),
        "the controller did see its own outage"
    );
    assert_eq!(r.figures.lost_writes, Some(0));
    assert!(!r.figures.two_writable);
}

#[test]
fn a_controller_stopped_for_five_seconds_freezes_on_waking_and_does_not_fail_over() {
    let (ok, r) = drill("controller-paused");
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    let froze = check(&r, "freezes automatic decisions");
    assert!(
        froze.passed && froze.detail.contains("stalled"),
        "{froze:?}"
    );
    assert!(check(&r, "does not fail over").passed);
    assert_eq!(r.figures.lost_writes, Some(0));
}

#[test]
fn with_its_witness_dead_the_controller_holds_a_real_outage_and_status_says_why() {
    let (ok, r) = drill("witness-lost");
    assert!(ok, "every expectation holds: {:#?}", r.checks);
    assert!(check(&r, "does not fail over").passed);
    assert!(check(&r, "holds for no_quorum").passed);
    let says = check(&r, "lifeboat status says");
    assert!(
        says.detail.contains("has not answered") && says.detail.contains("lifeboat failover"),
        "{says:?}"
    );
    assert!(
        r.figures.detection.is_some(),
        "the controller saw the outage it did not act on"
    );
}
