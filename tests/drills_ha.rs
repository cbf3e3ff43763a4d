//! The HA sandbox's drills end to end (policies/sandbox-ha.toml: a three-member etcd on
//! loopback, a controller in each region, an observer in a third): the acting controller
//! is killed, or stopped past its lease, in the middle of a failover, and another one
//! must finish the run with each effect once. After each drill its invariant checker has
//! read etcd's history, every node's journal and PostgreSQL; the report carries its
//! verdicts, and this test asserts them by name so a checker that stopped checking fails.
//! The other HA drills (`controller-partitioned-from-etcd`, `etcd-member-lost`,
//! `observer-partitioned`) run by hand and in soaks; tests/coord_etcd_faults.rs and
//! tests/coord_daemon.rs cover their faults against real etcd in CI.

use std::collections::BTreeMap;

use lifeboat::drill::report::Report;

mod support;

/// Runs `policies/drills/NAME.toml` on a scratch copy of the HA sandbox policy; returns
/// whether the command passed and its report.
fn drill(name: &str) -> (bool, Report) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("policies")).expect("mkdir");
    let policy = tmp.path().join("policies/sandbox-ha.toml");
    std::fs::copy("policies/sandbox-ha.toml", &policy).expect("copy the HA policy");
    let out = tmp.path().join("reports");
    let support::DrillRun {
        passed,
        stderr,
        report,
        ..
    } = support::run_drill(name, &policy, &out);
    if !passed {
        eprintln!(
            "drill {name} failed:\n{}\n--- stderr\n{stderr}",
            report.markdown()
        );
    }
    assert!(
        !tmp.path()
            .join(".lifeboat/sandbox-ha/sandbox.json")
            .exists(),
        "the drill's rollback takes the sandbox down"
    );
    for node in ["ctl-usw2", "ctl-use1", "obs-euw1"] {
        assert!(
            out.join(format!("{name}-1-{node}.log")).exists(),
            "the drill keeps {node}'s log beside the report"
        );
    }
    (passed, report)
}

/// The checks of `report` by what they say, with whether each passed.
fn checks(report: &Report) -> BTreeMap<String, bool> {
    report
        .checks
        .iter()
        .map(|c| (c.what.clone(), c.passed))
        .collect()
}

/// A takeover drill: the run completed, another controller took over, and the invariant
/// checker ran each of its checks and found nothing wrong.
fn assert_taken_over_safely(name: &str) {
    let (ok, report) = drill(name);
    let checks = checks(&report);
    for what in [
        "another controller takes over",
        "at most one epoch recorded each step done",
        "no fenced write from an epoch older than one already seen",
        "each run's promotion, DNS switch and notification happened once",
        "the database was promoted once per failover",
        "never two writable primaries",
    ] {
        assert_eq!(
            checks.get(what),
            Some(&true),
            "{name}: `{what}` must be checked and pass:\n{}",
            report.markdown()
        );
    }
    assert!(ok, "{name} passes:\n{}", report.markdown());
    let handover = report.figures.handover.expect("the handover is measured");
    assert!(
        handover > 0.0 && handover < 20.0,
        "{name}: handover {handover}s"
    );
    assert_eq!(report.figures.lost_writes, Some(0), "{}", report.markdown());
}

#[test]
fn a_controller_killed_mid_failover_is_replaced_and_the_run_finishes_with_each_effect_once() {
    assert_taken_over_safely("controller-lost-mid-failover");
}

#[test]
fn a_controller_paused_past_its_lease_mid_failover_acts_no_more_when_it_wakes() {
    assert_taken_over_safely("acting-controller-paused");
}

/// The HA sandbox policy is the sandbox policy with another coordination (and readiness
/// checked less often, for moto's sake): the same services, probes, detection and
/// runbooks, so figures from the two compare.
#[test]
fn the_ha_sandbox_policy_differs_from_the_sandbox_policy_only_in_its_coordination() {
    let read = |p: &str| -> toml::Table {
        std::fs::read_to_string(p)
            .expect("read")
            .parse()
            .expect("parse")
    };
    let (mut plain, mut ha) = (
        read("policies/sandbox.toml"),
        read("policies/sandbox-ha.toml"),
    );
    for t in [&mut plain, &mut ha] {
        for key in ["vars", "journal", "coordination", "readiness"] {
            t.remove(key);
        }
        let targets = t["targets"].as_table_mut().expect("[targets]");
        let db = targets["orders-db"].as_table_mut().expect("orders-db");
        db.remove("password");
        let guard = t["guardrails"].as_table_mut().expect("[guardrails]");
        for key in ["quorum", "witnesses", "witness_key"] {
            guard.remove(key);
        }
    }
    assert_eq!(plain, ha);
}
