//! Scripted observation traces through `HealthTracker`, with explicit times and no
//! waiting, plus a table for the verdict function itself.

use expect_test::{Expect, expect};

use super::*;

fn r(name: &str) -> RegionName {
    RegionName::new(name)
}

/// Regions `a` (primary) and `b`; critical probes `db` and `api`, advisory `cache`.
fn tracker(failure: u32, recovery: u32) -> HealthTracker {
    HealthTracker::new(
        Thresholds::counts(failure, recovery),
        vec![r("a"), r("b")],
        [
            ("db".to_string(), true),
            ("api".to_string(), true),
            ("cache".to_string(), false),
        ],
    )
}

fn short(v: Verdict) -> String {
    match v {
        Verdict::Unknown => "unknown".into(),
        Verdict::Healthy => "healthy".into(),
        Verdict::Suspect { failures } => format!("suspect({failures})"),
        Verdict::Down { since } => format!("down(since {})", since.as_millis() as f64 / 1000.0),
        Verdict::Recovering { successes } => format!("recovering({successes})"),
        Verdict::ObserverIsolated { since } => {
            format!("isolated(since {})", since.as_millis() / 1000)
        }
    }
}

/// Feeds a script of `SECONDS PROBE REGION ok|fail` lines; prints every region's verdict
/// after each, and the verdict changes the tracker reported.
fn trace(t: &mut HealthTracker, script: &str) -> String {
    let mut out = String::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let secs: f64 = f[0].parse().expect("seconds");
        let at = Ts::from_millis((secs * 1000.0).round() as u64);
        let lat = Duration::from_millis(5);
        let obs = match f[3] {
            "ok" => Observation::ok(f[1], &r(f[2]), at, lat),
            _ => Observation::failed(f[1], &r(f[2]), at, lat, "boom"),
        };
        let changes = t.observe(obs);
        let verdicts: Vec<String> = t
            .verdicts()
            .into_iter()
            .map(|(reg, v)| format!("{reg}={}", short(v)))
            .collect();
        let changed = if changes.is_empty() { "" } else { "  *" };
        out.push_str(&format!("{line:<16}→ {}{changed}\n", verdicts.join(" ")));
    }
    out
}

fn check(t: &mut HealthTracker, script: &str, expected: Expect) {
    expected.assert_eq(&trace(t, script));
}

#[test]
fn a_region_goes_down_exactly_when_a_critical_probe_reaches_the_threshold() {
    let mut t = tracker(3, 2);
    check(
        &mut t,
        "1 db b ok
         1 db a fail
         2 db a fail
         3 db a fail
         4 db a fail",
        expect![[r#"
            1 db b ok       → a=unknown b=healthy  *
            1 db a fail     → a=suspect(1) b=healthy  *
            2 db a fail     → a=suspect(2) b=healthy  *
            3 db a fail     → a=down(since 3) b=healthy  *
            4 db a fail     → a=down(since 3) b=healthy
        "#]],
    );
    assert_eq!(
        t.probe("db", &r("a")).map(|p| p.consecutive_failures),
        Some(4)
    );
}

#[test]
fn one_success_resets_the_failure_count() {
    let mut t = tracker(3, 2);
    check(
        &mut t,
        "1 db a fail
         2 db a fail
         3 db a ok
         4 db a fail
         5 db a fail",
        expect![[r#"
            1 db a fail     → a=suspect(1) b=unknown  *
            2 db a fail     → a=suspect(2) b=unknown  *
            3 db a ok       → a=healthy b=unknown  *
            4 db a fail     → a=suspect(1) b=unknown  *
            5 db a fail     → a=suspect(2) b=unknown  *
        "#]],
    );
    let p = t.probe("db", &r("a")).expect("tracked");
    assert_eq!(p.last_success, Some(Ts::from_secs(3)));
    assert_eq!(
        p.last_failure,
        Some(LastFailure {
            at: Ts::from_secs(5),
            reason: "boom".into()
        })
    );
}

#[test]
fn a_flapping_probe_never_takes_its_region_down_at_threshold_three() {
    let mut t = tracker(3, 3);
    let mut s = 0;
    for _ in 0..50 {
        for ok in [false, false, true] {
            s += 1;
            let at = Ts::from_secs(s);
            let lat = Duration::ZERO;
            let obs = if ok {
                Observation::ok("db", &r("a"), at, lat)
            } else {
                Observation::failed("db", &r("a"), at, lat, "flap")
            };
            t.observe(obs);
            assert!(
                !matches!(t.verdict(&r("a")), Verdict::Down { .. }),
                "down at {s}s"
            );
        }
    }
    assert_eq!(t.verdict(&r("a")), Verdict::Healthy);
}

/// Threshold 3 over at least 2 s; recovery 2 over at least 1 s.
fn spanning() -> HealthTracker {
    HealthTracker::new(
        Thresholds {
            failure: 3,
            recovery: 2,
            failure_span: Duration::from_secs(2),
            recovery_span: Duration::from_secs(1),
        },
        vec![r("a"), r("b")],
        [("db".to_string(), true), ("api".to_string(), true)],
    )
}

#[test]
fn bunched_failures_take_a_region_down_only_once_they_span_the_minimum() {
    // Five failures in 0.6 s (rounds run back to back after a stall) are not an outage;
    // the streak becomes one when it covers 2 s, however many rounds that takes.
    let mut t = spanning();
    check(
        &mut t,
        "1.0 db a fail
         1.1 db a fail
         1.2 db a fail
         1.4 db a fail
         1.6 db a fail
         2.5 db a fail
         3.0 db a fail",
        expect![[r#"
            1.0 db a fail   → a=suspect(1) b=unknown  *
            1.1 db a fail   → a=suspect(2) b=unknown  *
            1.2 db a fail   → a=suspect(3) b=unknown  *
            1.4 db a fail   → a=suspect(4) b=unknown  *
            1.6 db a fail   → a=suspect(5) b=unknown  *
            2.5 db a fail   → a=suspect(6) b=unknown  *
            3.0 db a fail   → a=down(since 3) b=unknown  *
        "#]],
    );
}

#[test]
fn the_span_runs_from_the_first_failed_rounds_start_so_a_slow_first_round_counts_whole() {
    // The first failure took 0.5 s (a timeout): its round started at 0.5, so by the third
    // failure at 2.5 the streak spans 2 s.
    let mut t = spanning();
    let lat = Duration::from_millis(500);
    t.observe(Observation::failed(
        "db",
        &r("a"),
        Ts::from_millis(1000),
        lat,
        "timeout",
    ));
    t.observe(Observation::failed(
        "db",
        &r("a"),
        Ts::from_millis(1800),
        Duration::ZERO,
        "x",
    ));
    assert_eq!(t.verdict(&r("a")), Verdict::Suspect { failures: 2 });
    t.observe(Observation::failed(
        "db",
        &r("a"),
        Ts::from_millis(2500),
        Duration::ZERO,
        "x",
    ));
    assert_eq!(
        t.verdict(&r("a")),
        Verdict::Down {
            since: Ts::from_millis(2500)
        }
    );
    assert_eq!(
        t.probe("db", &r("a")).map(|p| p.streak().span()),
        Some(Duration::from_secs(2))
    );
}

#[test]
fn two_probes_failing_in_turn_never_add_up_to_one_streak() {
    // Each probe's streak is its own: db and api alternating failures, each probe's
    // streak reset by its own passes, never reach three rounds over 2 s.
    let mut t = spanning();
    check(
        &mut t,
        "1 db a fail
         1.5 api a fail
         2 db a fail
         2.5 api a ok
         3 db a ok
         3.5 api a fail
         4 db a fail",
        expect![[r#"
            1 db a fail     → a=suspect(1) b=unknown  *
            1.5 api a fail  → a=suspect(1) b=unknown
            2 db a fail     → a=suspect(2) b=unknown  *
            2.5 api a ok    → a=suspect(2) b=unknown
            3 db a ok       → a=healthy b=unknown  *
            3.5 api a fail  → a=suspect(1) b=unknown  *
            4 db a fail     → a=suspect(1) b=unknown
        "#]],
    );
}

#[test]
fn recovery_needs_its_span_too() {
    let mut t = spanning();
    check(
        &mut t,
        "1 db a fail
         2 db a fail
         3 db a fail
         4 db a ok
         4.2 db a ok
         4.4 db a ok
         5.1 db a ok",
        expect![[r#"
            1 db a fail     → a=suspect(1) b=unknown  *
            2 db a fail     → a=suspect(2) b=unknown  *
            3 db a fail     → a=down(since 3) b=unknown  *
            4 db a ok       → a=recovering(1) b=unknown  *
            4.2 db a ok     → a=recovering(2) b=unknown  *
            4.4 db a ok     → a=recovering(3) b=unknown  *
            5.1 db a ok     → a=healthy b=unknown  *
        "#]],
    );
}

#[test]
fn a_failing_probe_is_confirmed_until_its_streak_takes_the_region_down() {
    let th = Thresholds {
        failure: 3,
        recovery: 2,
        failure_span: Duration::from_millis(450),
        recovery_span: Duration::ZERO,
    };
    let lat = Duration::from_millis(5);
    let mut s = Streak::default().then(true, Ts::from_millis(1000), lat);
    assert!(
        !th.confirming(&s),
        "a passing probe keeps the normal interval"
    );
    s = s.then(false, Ts::from_millis(2000), lat);
    assert!(th.confirming(&s));
    s = s.then(false, Ts::from_millis(2250), lat);
    s = s.then(false, Ts::from_millis(2400), lat);
    assert!(th.confirming(&s), "three rounds, but over 405 ms only");
    s = s.then(false, Ts::from_millis(2650), lat);
    assert!(
        th.fails(&s) && !th.confirming(&s),
        "down: back to the normal interval"
    );
}

#[test]
fn recovery_needs_the_success_threshold_and_a_relapse_keeps_the_original_outage() {
    let mut t = tracker(2, 3);
    check(
        &mut t,
        "1 db a fail
         2 db a fail
         3 db a ok
         4 db a ok
         5 db a fail
         6 db a ok
         7 db a ok
         8 db a ok
         9 db a ok",
        expect![[r#"
            1 db a fail     → a=suspect(1) b=unknown  *
            2 db a fail     → a=down(since 2) b=unknown  *
            3 db a ok       → a=recovering(1) b=unknown  *
            4 db a ok       → a=recovering(2) b=unknown  *
            5 db a fail     → a=down(since 2) b=unknown  *
            6 db a ok       → a=recovering(1) b=unknown  *
            7 db a ok       → a=recovering(2) b=unknown  *
            8 db a ok       → a=healthy b=unknown  *
            9 db a ok       → a=healthy b=unknown
        "#]],
    );
}

#[test]
fn recovery_waits_for_the_slowest_critical_probe() {
    let mut t = tracker(1, 2);
    check(
        &mut t,
        "1 api a ok
         2 db a fail
         3 api a ok
         3 db a ok
         4 api a ok
         5 db a ok",
        expect![[r#"
            1 api a ok      → a=healthy b=unknown  *
            2 db a fail     → a=down(since 2) b=unknown  *
            3 api a ok      → a=down(since 2) b=unknown
            3 db a ok       → a=recovering(1) b=unknown  *
            4 api a ok      → a=recovering(1) b=unknown
            5 db a ok       → a=healthy b=unknown  *
        "#]],
    );
}

#[test]
fn every_region_down_at_once_is_observer_isolation_not_two_outages() {
    let mut t = tracker(2, 1);
    check(
        &mut t,
        "1 db a fail
         1 db b fail
         2 db a fail
         3 db b fail
         4 db b ok
         5 db a fail",
        expect![[r#"
            1 db a fail     → a=suspect(1) b=unknown  *
            1 db b fail     → a=suspect(1) b=suspect(1)  *
            2 db a fail     → a=down(since 2) b=suspect(1)  *
            3 db b fail     → a=isolated(since 3) b=isolated(since 3)  *
            4 db b ok       → a=down(since 2) b=healthy  *
            5 db a fail     → a=down(since 2) b=healthy
        "#]],
    );
}

#[test]
fn a_region_nobody_has_observed_does_not_make_an_outage_look_like_isolation() {
    let mut t = tracker(1, 1);
    t.observe(Observation::failed(
        "db",
        &r("a"),
        Ts::from_secs(1),
        Duration::ZERO,
        "x",
    ));
    assert_eq!(
        t.verdicts(),
        vec![
            (
                r("a"),
                Verdict::Down {
                    since: Ts::from_secs(1)
                }
            ),
            (r("b"), Verdict::Unknown)
        ]
    );
}

#[test]
fn advisory_probes_are_tracked_but_never_change_a_verdict() {
    let mut t = tracker(2, 1);
    check(
        &mut t,
        "1 db a ok
         2 cache a fail
         3 cache a fail
         4 cache a fail
         5 cache b fail
         6 cache b fail",
        expect![[r#"
            1 db a ok       → a=healthy b=unknown  *
            2 cache a fail  → a=healthy b=unknown
            3 cache a fail  → a=healthy b=unknown
            4 cache a fail  → a=healthy b=unknown
            5 cache b fail  → a=healthy b=unknown
            6 cache b fail  → a=healthy b=unknown
        "#]],
    );
    let cache = t.probe("cache", &r("a")).expect("tracked");
    assert!(!cache.critical);
    assert_eq!(cache.consecutive_failures, 3);
}

#[test]
fn a_probe_the_policy_does_not_know_counts_as_advisory() {
    let mut t = tracker(1, 1);
    t.observe(Observation::failed(
        "stranger",
        &r("a"),
        Ts::from_secs(1),
        Duration::ZERO,
        "x",
    ));
    assert_eq!(t.verdict(&r("a")), Verdict::Unknown);
}

#[test]
fn the_worst_critical_probe_sets_the_suspect_count() {
    let mut t = tracker(3, 1);
    check(
        &mut t,
        "1 db a fail
         2 api a fail
         3 db a fail
         4 api a ok",
        expect![[r#"
            1 db a fail     → a=suspect(1) b=unknown  *
            2 api a fail    → a=suspect(1) b=unknown
            3 db a fail     → a=suspect(2) b=unknown  *
            4 api a ok      → a=suspect(2) b=unknown
        "#]],
    );
}

#[test]
fn healthy_for_counts_from_the_first_healthy_round_and_any_failure_restarts_it() {
    let mut t = tracker(2, 2);
    let a = r("a");
    let at = Ts::from_secs;
    let z = Duration::ZERO;
    t.observe(Observation::failed("db", &a, at(1), z, "x"));
    t.observe(Observation::failed("db", &a, at(2), z, "x"));
    t.observe(Observation::ok("db", &a, at(3), z));
    assert_eq!(t.healthy_since(&a), None, "recovering is not healthy yet");
    t.observe(Observation::ok("db", &a, at(4), z));
    assert_eq!(t.healthy_since(&a), Some(at(4)));
    t.observe(Observation::ok("db", &a, at(10), z));
    assert_eq!(t.healthy_for(&a, at(34)), Duration::from_secs(30));
    t.observe(Observation::failed("db", &a, at(35), z, "blip"));
    assert_eq!(t.healthy_for(&a, at(36)), Duration::ZERO);
    t.observe(Observation::ok("db", &a, at(37), z));
    assert_eq!(t.healthy_since(&a), Some(at(37)));
}

#[test]
fn a_late_observation_older_than_the_newest_is_ignored() {
    let mut t = tracker(1, 1);
    let a = r("a");
    t.observe(Observation::ok("db", &a, Ts::from_secs(5), Duration::ZERO));
    let changes = t.observe(Observation::failed(
        "db",
        &a,
        Ts::from_secs(4),
        Duration::ZERO,
        "late",
    ));
    assert!(changes.is_empty());
    assert_eq!(t.verdict(&a), Verdict::Healthy);
}

#[test]
fn lag_and_role_are_easy_to_read_per_region() {
    let mut t = tracker(3, 1);
    let b = r("b");
    let z = Duration::ZERO;
    t.observe(Observation::ok("db", &r("a"), Ts::from_secs(1), z).with_role(Role::Primary));
    t.observe(
        Observation::ok("db", &b, Ts::from_secs(1), z)
            .with_role(Role::Standby)
            .with_lag(Lag {
                bytes: Some(4096),
                seconds: Some(0.5),
                streaming: Some(true),
            }),
    );
    t.observe(
        Observation::ok("api", &b, Ts::from_secs(2), z).with_lag(Lag {
            bytes: None,
            seconds: Some(2.0),
            streaming: None,
        }),
    );
    let lag = t.replica_lag(&b).expect("lag");
    assert_eq!((lag.probe.as_str(), lag.lag.seconds), ("api", Some(2.0)));
    assert_eq!(lag.lag.duration(), Some(Duration::from_secs(2)));
    assert_eq!(t.role(&b).map(|x| x.role), Some(Role::Standby));
    assert_eq!(t.role(&r("a")).map(|x| x.role), Some(Role::Primary));
    assert!(t.replica_lag(&r("a")).is_none());
    assert_eq!(
        t.latest("db", &b).and_then(|o| o.lag).and_then(|l| l.bytes),
        Some(4096)
    );
}

/// A case: name, streaks, the latch before, the latch after, the verdict.
type Row = (&'static str, Vec<Streak>, Option<Ts>, Option<Ts>, Verdict);

#[test]
fn the_verdict_table() {
    let th = Thresholds::counts(3, 2);
    let s = |failures, successes| Streak {
        failures,
        successes,
        ..Streak::default()
    };
    let t5 = Ts::from_secs(5);
    let t1 = Ts::from_secs(1);
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("nothing reported",            vec![],               None,     None,     Verdict::Unknown),
        ("all pass",                    vec![s(0, 1), s(0, 9)], None,   None,     Verdict::Healthy),
        ("one below threshold",         vec![s(2, 0), s(0, 4)], None,   None,     Verdict::Suspect { failures: 2 }),
        ("threshold reached now",       vec![s(3, 0), s(0, 4)], None,   Some(t5), Verdict::Down { since: t5 }),
        ("stays down with original since", vec![s(4, 0)],     Some(t1), Some(t1), Verdict::Down { since: t1 }),
        ("relapse below threshold",     vec![s(1, 0)],        Some(t1), Some(t1), Verdict::Down { since: t1 }),
        ("recovering",                  vec![s(0, 1), s(0, 7)], Some(t1), Some(t1), Verdict::Recovering { successes: 1 }),
        ("recovered",                   vec![s(0, 2), s(0, 7)], Some(t1), None,   Verdict::Healthy),
        ("never down: one pass is healthy", vec![s(0, 1)],    None,     None,     Verdict::Healthy),
    ];
    for (name, streaks, before, after, verdict) in table {
        assert_eq!(assess(&streaks, before, th, t5), (after, verdict), "{name}");
    }
}

#[test]
fn isolation_needs_every_serving_region_down() {
    let d = |s| Verdict::Down {
        since: Ts::from_secs(s),
    };
    let iso = Verdict::ObserverIsolated {
        since: Ts::from_secs(7),
    };
    assert_eq!(isolate(&[d(3), d(7)]), vec![iso, iso]);
    assert_eq!(isolate(&[d(3), d(7), d(5)]), vec![iso, iso, iso]);
    assert_eq!(
        isolate(&[d(3), Verdict::Suspect { failures: 2 }]),
        vec![d(3), Verdict::Suspect { failures: 2 }]
    );
    assert_eq!(
        isolate(&[d(3)]),
        vec![d(3)],
        "one region alone is an outage"
    );
}

#[test]
fn observations_and_snapshots_serialize_for_scripts() {
    let obs = Observation::failed(
        "db",
        &r("a"),
        Ts::from_secs(2),
        Duration::from_millis(12),
        "PostgreSQL lifeboat@h:5432/orders: connection refused",
    )
    .with_role(Role::Standby);
    let json = serde_json::to_string(&obs).expect("json");
    expect![[r#"{"probe":"db","region":"a","at":2000,"latency_ms":12,"status":"failed","reason":"PostgreSQL lifeboat@h:5432/orders: connection refused","role":"standby"}"#]].assert_eq(&json);
    let back: Observation = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, obs);

    let mut t = tracker(1, 1);
    t.observe(obs);
    let snap = serde_json::to_value(t.snapshot()).expect("json");
    assert_eq!(snap["regions"][0]["verdict"], "down");
    assert_eq!(snap["regions"][0]["since"], 2000);
    assert_eq!(snap["probes"][0]["consecutive_failures"], 1);
}
