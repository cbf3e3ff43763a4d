//! The series added for the alert rules, driven through the calls the engine makes.

use std::path::Path;
use std::time::Duration;

use super::Metrics;
use crate::core::controller::{HealthSummary, ObserverVote, Phase, RegionSummary, State, Verdict};
use crate::core::health::{HealthTracker, Observation, Role};
use crate::core::ids::{Epoch, RunId};
use crate::core::model::{Policy, RegionName};
use crate::core::time::Ts;

fn policy() -> Policy {
    crate::policy::load_valid(Path::new("tests/policies/good/minimal.toml"))
        .expect("the minimal policy")
        .0
}

fn east() -> RegionName {
    RegionName("us-east-1".into())
}

fn west() -> RegionName {
    RegionName("us-west-2".into())
}

/// The value of one series, by its name and labels as printed.
fn value(m: &Metrics, series: &str) -> Option<String> {
    m.encode().lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')
            .map(str::to_string)
    })
}

fn role(m: &Metrics, p: &Policy, region: RegionName, role: Role) {
    let mut obs = Observation::ok("db", &region, Ts(1), Duration::from_millis(3));
    obs.role = Some(role);
    m.observed(p, &obs, &HealthTracker::for_policy(p));
}

fn failing_over(p: &Policy, waiting: Option<&str>) -> State {
    let mut s = State::new(p, east(), Ts(0));
    s.phase = Phase::FailingOver {
        run: RunId("fo-test".into()),
        epoch: Epoch(1),
        to: west(),
        started: Ts(0),
        waiting: waiting.map(str::to_string),
    };
    s
}

#[test]
fn an_old_primary_that_could_not_be_fenced_stays_flagged_until_it_is_seen_fenced() {
    let p = policy();
    let m = Metrics::for_policy(&p);
    let series = "lifeboat_unfenced_primary{service=\"corpus\",region=\"us-east-1\"}";
    assert_eq!(value(&m, series).as_deref(), Some("0"));
    m.controller(&failing_over(&p, None));
    m.fence_failed();
    assert_eq!(value(&m, series).as_deref(), Some("1"));
    // Coming back as a writer does not clear it; refusing writes does.
    role(&m, &p, east(), Role::Primary);
    assert_eq!(value(&m, series).as_deref(), Some("1"));
    role(&m, &p, east(), Role::Fenced);
    assert_eq!(value(&m, series).as_deref(), Some("0"));
    let fenced = "lifeboat_database_role{service=\"corpus\",region=\"us-east-1\",role=\"fenced\"}";
    assert_eq!(value(&m, fenced).as_deref(), Some("1"));
}

#[test]
fn a_run_waiting_for_approval_is_flagged_while_it_waits() {
    let p = policy();
    let m = Metrics::for_policy(&p);
    let series = "lifeboat_awaiting_approval{service=\"corpus\"}";
    m.controller(&failing_over(&p, None));
    assert_eq!(value(&m, series).as_deref(), Some("0"));
    m.controller(&failing_over(&p, Some("step confirm: go?")));
    assert_eq!(value(&m, series).as_deref(), Some("1"));
    m.controller(&State::new(&p, west(), Ts(5)));
    assert_eq!(value(&m, series).as_deref(), Some("0"));
    let active = "lifeboat_active_region{service=\"corpus\",region=\"us-west-2\"}";
    assert_eq!(value(&m, active).as_deref(), Some("1"));
}

#[test]
fn votes_count_only_while_the_serving_region_is_seen_down() {
    let p = policy();
    let m = Metrics::for_policy(&p);
    let series = "lifeboat_quorum_votes{service=\"corpus\"}";
    let summary = |verdict: Verdict| HealthSummary {
        regions: vec![RegionSummary {
            region: east(),
            verdict,
            healthy_since: None,
            replica_lag: None,
            in_sync: None,
            failing: Vec::new(),
        }],
        observers: vec![ObserverVote {
            observer: "this controller".into(),
            sees_down: matches!(verdict, Verdict::Down { .. }),
        }],
    };
    let mut s = State::new(&p, east(), Ts(0));
    s.health = Some(summary(Verdict::Healthy));
    m.controller(&s);
    assert_eq!(value(&m, series).as_deref(), Some("0"));
    s.health = Some(summary(Verdict::Down { since: Ts(0) }));
    m.controller(&s);
    assert_eq!(value(&m, series).as_deref(), Some("1"));
}

#[test]
fn the_counters_the_alerts_watch_exist_at_zero_from_the_start() {
    let m = Metrics::for_policy(&policy());
    for series in [
        "lifeboat_runs_total{service=\"corpus\",direction=\"failover\",outcome=\"failed\"}",
        "lifeboat_failovers_total{service=\"corpus\",trigger=\"automatic\"}",
        "lifeboat_blocked{service=\"corpus\",reason=\"no_quorum\"}",
        "lifeboat_info{service=\"corpus\",version=\"0.1.0\",mode=\"manual\"}",
    ] {
        assert!(
            value(&m, series).is_some(),
            "no {series} in:\n{}",
            m.encode()
        );
    }
}

#[test]
fn two_services_merge_into_one_exposition_with_each_family_described_once() {
    let a = policy();
    let mut b = policy();
    b.service = "payments".into();
    let (ma, mb) = (Metrics::for_policy(&a), Metrics::for_policy(&b));
    ma.run_ended("failover", "completed");
    let merged = super::merge(vec![ma.encode(), mb.encode()]);

    for kind in ["HELP", "TYPE"] {
        let mut seen = std::collections::HashSet::new();
        for l in merged
            .lines()
            .filter(|l| l.starts_with(&format!("# {kind} ")))
        {
            assert!(seen.insert(l.to_string()), "described twice: {l}");
        }
    }
    assert_eq!(merged.matches("# EOF").count(), 1);
    assert!(merged.ends_with("# EOF\n"));
    let runs = |service: &str| {
        merged
            .lines()
            .find(|l| {
                l.starts_with("lifeboat_runs_total{")
                    && l.contains(&format!("service=\"{service}\""))
                    && l.contains("direction=\"failover\"")
                    && l.contains("outcome=\"completed\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    };
    assert_eq!(runs(&a.service).as_deref(), Some("1"), "{merged}");
    assert_eq!(runs("payments").as_deref(), Some("0"), "{merged}");
    // Every sample still follows its own family's metadata.
    let parsed = prometheus_parse::Scrape::parse(merged.lines().map(|l| Ok(l.to_string())))
        .expect("the merged exposition parses");
    let services: std::collections::BTreeSet<_> = parsed
        .samples
        .iter()
        .filter_map(|s| s.labels.get("service").map(str::to_string))
        .collect();
    assert_eq!(services.len(), 2, "{services:?}");
}
